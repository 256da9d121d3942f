"""Reading the custody chain by filter: actor, action, subject, period, pages, protected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from archive.encryption import generate_kek
from archive.links import link_recordings
from catalog import audit, custody
from catalog.audit import AuditFilter
from catalog.db import session_factory

T0 = datetime(2020, 11, 5, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(local_store):
    """The local store only: what is read here is the catalog; storage is tested elsewhere."""
    return local_store


def fill(engine) -> None:
    rows = [
        ("web:aud", "viewed", "KZCG-2020-0042"),
        ("web:aud", "viewed", "KZCG-2020-0042-001D"),
        ("web:audrey", "viewed", "KZCG-2020-0042-002V"),
        ("station:ST01", "ingested", "KZCG-20201105-ST01-0001"),
        ("aud", "downloaded", "KZCG-2020-0042-002V"),
        ("web:adm", "login", "user:adm"),
        ("web:aud", "played", "KZCG-2020-00421-001V"),  # another case whose key starts alike
        ("web:x%", "viewed", "KZCG_2020"),
    ]
    with session_factory(engine).begin() as s:
        for n, (actor, action, subject) in enumerate(rows):
            custody.append(s, actor=actor, action=action, subject=subject, now=T0 + timedelta(hours=n))


def seqs(engine, f: AuditFilter, **kw) -> list[int]:
    with session_factory(engine)() as s:
        return [e.seq for e in audit.page(s, f, **kw)]


def test_filters_by_actor_name_action_subject_prefix_and_period(engine) -> None:
    fill(engine)
    # "aud" is the account web:aud or the OS user aud; never web:audrey.
    assert seqs(engine, AuditFilter(actor="aud")) == [7, 5, 2, 1]
    assert seqs(engine, AuditFilter(actor="web:aud")) == [7, 2, 1]
    assert seqs(engine, AuditFilter(action="viewed")) == [8, 3, 2, 1]
    assert seqs(engine, AuditFilter(subject="KZCG-2020-0042")) == [7, 5, 3, 2, 1]
    assert seqs(engine, AuditFilter(subject="KZCG-2020-0042-")) == [5, 3, 2]
    assert seqs(engine, AuditFilter(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=4))) == [
        5,
        4,
        3,
    ]
    assert seqs(engine, AuditFilter(actor="aud", action="viewed", subject="KZCG-2020-0042-")) == [2]
    with session_factory(engine)() as s:
        assert audit.count(s, AuditFilter(actor="aud")) == 4


def test_like_wildcards_in_a_filter_match_only_themselves(engine) -> None:
    fill(engine)
    assert seqs(engine, AuditFilter(subject="KZCG_")) == [8]
    assert seqs(engine, AuditFilter(subject="%")) == []
    assert seqs(engine, AuditFilter(actor="x%")) == [8]
    assert seqs(engine, AuditFilter(actor="%")) == []


def test_pages_go_back_from_an_event_number(engine) -> None:
    fill(engine)
    assert seqs(engine, AuditFilter(), size=3) == [8, 7, 6]
    assert seqs(engine, AuditFilter(), before=6, size=3) == [5, 4, 3]
    assert seqs(engine, AuditFilter(), before=3, size=3) == [2, 1]
    with session_factory(engine)() as s:
        assert [e.seq for e in audit.stream(s, AuditFilter(action="viewed"))] == [1, 2, 3, 8]


def test_events_about_protected_records_are_left_out_without_the_grant(env) -> None:
    case = env.case()
    plain, secret = env.recording(1), env.recording(2, protected=True, kek=generate_kek())
    (_, plain_item), (_, secret_item) = link_recordings(
        env.as_("r"), case.number, [plain.archive_no, secret.archive_no]
    )
    with env.sessions.begin() as s:
        for item in (plain_item, secret_item):
            custody.append(s, actor="web:leg", action="viewed", subject=item)
    everything, shown = AuditFilter(), AuditFilter(include_protected=False)
    with env.sessions() as s:
        subjects = {e.subject for e in audit.stream(s, everything)}
        kept = {e.subject for e in audit.stream(s, shown)}
        assert {secret.archive_no, secret_item} <= subjects
        assert not {secret.archive_no, secret_item} & kept
        assert {plain.archive_no, plain_item, case.case_key} <= kept
        assert audit.count(s, shown) == len(list(audit.stream(s, shown))) < audit.count(s, everything)
        assert audit.protected_numbers(s) == {secret.archive_no, secret_item}
        assert {e.subject for e in audit.about(s, [case.case_key, plain_item])} == {case.case_key, plain_item}
