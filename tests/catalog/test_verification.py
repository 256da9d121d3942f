from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from catalog.errors import InvalidInput
from catalog.models import Case, Derivative, Document, Recording
from catalog.verification import BATCH, mark_verified

T0 = datetime(2020, 11, 5, 8, 50, tzinfo=UTC)


def _rows(session: Session, recordings: int = 2) -> tuple[list[Recording], list[Document], Derivative]:
    recs = [
        Recording(
            archive_no=f"KZCG-20201105-ST01-{n:04d}",
            kind="video",
            sha256=f"{n:064x}",
            size=n,
            original_name=f"{n}.mp4",
            ingested_at=T0,
            storage_key=f"originals/2020/11/05/{n}.mp4",
        )
        for n in range(recordings)
    ]
    case = Case(
        case_key="c-1",
        number="开城管罚立〔2020〕42号",
        unit="KZCG",
        opened_on=date(2020, 11, 5),
        created_at=T0,
        created_by="clerk",
    )
    session.add_all([*recs, case])
    session.flush()
    docs = [
        Document(
            case_id=case.id,
            doc_type="询问笔录",
            sha256=f"{n:064x}",
            size=n,
            original_name=f"{n}.pdf",
            storage_key=f"documents/c-1/{n}.pdf",
            created_at=T0,
        )
        for n in range(2)
    ]
    derivative = Derivative(recording_id=recs[0].id, kind="proxy", status="ok", created_at=T0)
    session.add_all([*docs, derivative])
    session.flush()
    return recs, docs, derivative


def _verified(session: Session, *rows) -> list[datetime | None]:
    for row in rows:
        session.refresh(row)
    return [row.last_verified_at for row in rows]


def test_each_way_of_naming_a_row_sets_only_that_row(engine) -> None:
    with Session(engine) as s, s.begin():
        (r0, r1), (d0, d1), v = _rows(s)
        assert mark_verified(s, at=T0, archive_nos=[r0.archive_no], document_keys=[d0.storage_key]) == 2
        assert _verified(s, r0, r1, d0, d1, v) == [T0, None, T0, None, None]
        later = T0 + timedelta(hours=1)
        assert (
            mark_verified(s, at=later, recording_ids=[r1.id], document_ids=[d1.id], derivative_ids=[v.id])
            == 3
        )
        assert _verified(s, r0, r1, d0, d1, v) == [T0, later, T0, later, later]


def test_nothing_named_unknown_names_and_repeats(engine) -> None:
    with Session(engine) as s, s.begin():
        (r0, _), _, _ = _rows(s)
        assert mark_verified(s, at=T0) == 0
        assert mark_verified(s, at=T0, archive_nos=["no such number"], derivative_ids=[999]) == 0
        assert mark_verified(s, at=T0, archive_nos=iter([r0.archive_no, r0.archive_no])) == 1


def test_long_lists_go_in_batches(engine) -> None:
    with Session(engine) as s, s.begin():
        recs, _, _ = _rows(s, recordings=BATCH + 3)
        assert mark_verified(s, at=T0, recording_ids=[r.id for r in recs]) == len(recs)
        assert set(_verified(s, *recs)) == {T0}


def test_a_time_without_offset_is_refused(engine) -> None:
    with Session(engine) as s, pytest.raises(InvalidInput):
        mark_verified(s, at=datetime(2020, 11, 5, 8, 50), recording_ids=[1])
