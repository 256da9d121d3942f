"""Case replay: time order across kinds, and --verify catching damage in both stores."""

import io
import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from archive.documents import NewDocument, store_document
from archive.links import link_recordings, unlink_item
from catalog import custody
from catalog.errors import InvalidInput
from catalog.models import Document, Recording
from verify.replay import replay

TYPES = ["立案审批表", "询问笔录", "现场检查（勘验）笔录"]
T0 = datetime(2020, 11, 5, 0, 50, 56, tzinfo=UTC)


def doc(env, case, name: str, doc_type: str, when: datetime):
    path = env.tmp / name
    path.write_bytes(f"%PDF-1.4 {name}".encode())
    return store_document(
        env.as_("clerk"), NewDocument(case.case_key, path, doc_type, doc_date=when), doc_types=TYPES
    )


def test_items_interleave_in_time_order_with_ties_by_number(env) -> None:
    case = env.case("开城管罚立〔2020〕42号")
    doc(env, case, "立案.pdf", "立案审批表", T0 + timedelta(hours=2))  # 001D, latest
    early, tie_a, tie_b = (
        env.recording(n, start_time=t)
        for n, t in [(1, T0), (2, T0 + timedelta(hours=1)), (3, T0 + timedelta(hours=1))]
    )
    link_recordings(env.as_("r"), case.number, [tie_b.archive_no, early.archive_no, tie_a.archive_no])
    doc(env, case, "询问.pdf", "询问笔录", T0 + timedelta(hours=1))  # 005D, tie as well
    header, items = replay(env.as_("auditor"), case.number, verify=False)
    assert header["number"] == "开城管罚立〔2020〕42号"
    key = case.case_key
    assert [i.item_no for i in items] == [
        f"{key}-003V",
        f"{key}-002V",
        f"{key}-004V",
        f"{key}-005D",
        f"{key}-001D",
    ]
    assert items[0].archive_no == early.archive_no and items[3].doc_type == "询问笔录"
    with env.sessions() as s:
        (event,) = [e for e in custody.events(s, subject=key) if e.action == "replayed"]
    assert event.actor == "auditor" and event.details == {"verify": False, "items": 5, "problems": []}


def test_unlinked_items_leave_the_replay_and_their_numbers_are_not_reused(env) -> None:
    case = env.case()
    a, b = env.recording(1), env.recording(2)
    pairs = link_recordings(env.as_("r"), case.number, [a.archive_no, b.archive_no])
    unlink_item(env.as_("r"), case.number, pairs[0][1], reason="误关联")
    with pytest.raises(InvalidInput):
        unlink_item(env.as_("r"), case.number, pairs[0][1], reason="again")
    _, items = replay(env.as_("a"), case.number, verify=False)
    assert [i.item_no for i in items] == [pairs[1][1]]
    (again,) = link_recordings(env.as_("r"), case.number, [a.archive_no])
    assert again[1].endswith("-003V")  # 001 was a's first link and stays spent


def _flip_a_byte(env, rec: Recording) -> None:
    """Damage what storage holds for a recording, in the way each store allows."""
    if hasattr(env.store, "root"):
        path = env.store.root / "objects" / rec.storage_key
        os.chmod(path, 0o644)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        os.chmod(path, 0o444)
    else:
        # On S3 a version cannot change: point the catalog at a tampered new version.
        data = bytearray(b"".join(env.store.read(rec.storage_key, rec.storage_version)))
        data[len(data) // 2] ^= 0x01
        put = env.store.put(rec.storage_key, io.BytesIO(bytes(data)))
        with env.sessions.begin() as s:
            s.execute(update(Recording).where(Recording.id == rec.id).values(storage_version=put.version))


def _remove(env, document) -> None:
    """Lose a document's stored object, in the way each store allows."""
    if hasattr(env.store, "root"):
        (env.store.root / "objects" / document.storage_key).unlink()
    else:
        # A locked S3 version cannot be deleted: the catalog names a version the store lacks.
        with env.sessions.begin() as s:
            s.execute(
                update(Document)
                .where(Document.id == document.id)
                .values(storage_version="3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
            )


def test_verify_finds_a_flipped_byte_and_a_missing_object(env) -> None:
    case = env.case()
    good, bad = env.recording(1), env.recording(2)
    link_recordings(env.as_("r"), case.number, [good.archive_no, bad.archive_no])
    _, document = doc(env, case, "笔录.pdf", "现场检查（勘验）笔录", T0)
    _, items = replay(env.as_("a"), case.number, verify=True)
    assert {i.verified for i in items} == {"ok"}
    _flip_a_byte(env, bad)
    _remove(env, document)
    _, items = replay(env.as_("a"), case.number, verify=True)
    verdicts = {(i.archive_no or i.doc_type): i.verified for i in items}
    assert verdicts == {good.archive_no: "ok", bad.archive_no: "mismatch", "现场检查（勘验）笔录": "missing"}
    with env.sessions() as s:
        last = [e for e in custody.events(s, subject=case.case_key) if e.action == "replayed"][-1]
    assert len(last.details["problems"]) == 2
