"""Fixity sweeps and reconciliation on both stores."""

import hashlib
import io
import json

from sqlalchemy import update

from catalog import custody
from catalog.models import Recording
from tests.verify.test_replay import _flip_a_byte
from verify.fixity import sweep


def run(env, **kw):
    return sweep(env.as_("cron"), **kw)


def test_an_intact_archive_passes_and_the_run_is_recorded(env) -> None:
    recs = [env.recording(n) for n in range(3)]
    report = run(env)
    assert report.problems == [] and report.checked == report.ok == 2 * len(recs)  # originals + manifests
    assert report.bytes_read >= sum(r.size for r in recs)
    with env.sessions() as s:
        (event,) = [e for e in custody.events(s) if e.action == "fixity_run"]
        assert all(s.get(Recording, r.id).last_verified_at is not None for r in recs)
    stored = b"".join(env.store.read(event.details["results_key"]))
    assert hashlib.sha256(stored).hexdigest() == event.details["results_sha256"]
    assert len(json.loads(stored)["results"]) == report.checked


def test_damage_loss_catalog_edits_and_orphans_are_named(env) -> None:
    flipped, lost, edited, fine = (env.recording(n) for n in range(4))
    _flip_a_byte(env, flipped)
    if hasattr(env.store, "root"):
        (env.store.root / "objects" / lost.storage_key).unlink()
    else:  # locked versions cannot go: the catalog names a version the store does not have
        with env.sessions.begin() as s:
            s.execute(
                update(Recording)
                .where(Recording.id == lost.id)
                .values(storage_version="3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
            )
    with env.sessions.begin() as s:
        s.execute(update(Recording).where(Recording.id == edited.id).values(sha256="0" * 64))
    env.store.put("originals/2020/11/05/STRAY-0001.mp4", io.BytesIO(b"who put this here"))
    report = run(env)
    problems = {(p["subject"], p["problem"]) for p in report.problems}
    assert problems == {
        (flipped.archive_no, "mismatch"),
        (lost.archive_no, "missing"),
        (edited.archive_no, "mismatch"),
        ("originals/2020/11/05/STRAY-0001.mp4", "orphan"),
    }
    edited_problem = next(p for p in report.problems if p["subject"] == edited.archive_no)
    assert edited_problem["expected"].startswith("0" * 64) and edited.sha256 in edited_problem["found"]
    with env.sessions() as s:
        events = [e for e in custody.events(s) if e.action == "fixity_problem"]
    assert {e.subject for e in events} == {p[0] for p in problems}
    # Nothing was deleted: the orphan is still there.
    assert b"".join(env.store.read("originals/2020/11/05/STRAY-0001.mp4")) == b"who put this here"
    assert fine.archive_no not in {p[0] for p in problems}


def test_a_budget_stops_the_sweep_and_the_next_run_goes_on(env) -> None:
    recs = [env.recording(n) for n in range(4)]
    first = run(env, budget_bytes=1, reconcile_storage=False)
    assert first.stopped_by == "volume" and first.checked == 1
    second = run(env, reconcile_storage=False)
    with env.sessions() as s:
        verified = [s.get(Recording, r.id).last_verified_at for r in recs]
    assert all(verified) and second.checked == 2 * len(recs)
    # Least recently verified first: the one checked by the first run comes last now.
    third = run(env, sample=2, reconcile_storage=False)
    assert third.checked == 2


def test_older_than_selects_only_stale_items(env) -> None:
    env.recording(1)
    run(env, reconcile_storage=False)
    env.recording(2)  # not verified yet
    # The new recording and its manifest (manifests are checked with their recording).
    assert run(env, older_than_days=1, reconcile_storage=False).checked == 2


def test_document_pages_are_swept_and_are_no_orphans(env) -> None:
    """A written record's page images (drawn when an auditor opened it) are checked like any
    derivative, encrypted ones through the key, and the sweep knows their keys."""
    from archive.document_pages import document_pages
    from archive.documents import NewDocument, store_document
    from archive.encryption import generate_kek
    from catalog.models import DocumentPage
    from tests import synthetic

    kek = generate_kek()
    pdf = synthetic.make_pdf(env.tmp / "record.pdf", "询问笔录", ["当事人：张某"], pages=2)
    _item, doc = store_document(
        env.as_("clerk", kek=kek),
        NewDocument(env.case().number, pdf, "询问笔录", protected=True),
        doc_types=["询问笔录"],
    )
    pages = document_pages(env.as_("web:aud", kek=kek), doc.id)
    report = sweep(env.as_("cron", kek=kek))
    assert report.problems == [] and report.checked == 2 + len(pages)  # document, manifest, pages
    with env.sessions() as s:
        assert all(p.last_verified_at is not None for p in s.query(DocumentPage))
    # A page whose digest no longer matches what is stored is named.
    with env.sessions.begin() as s:
        s.execute(update(DocumentPage).where(DocumentPage.page == 2).values(sha256="0" * 64))
    report = sweep(env.as_("cron", kek=kek))
    assert [(p["subject"], p["problem"]) for p in report.problems] == [(pages[1].storage_key, "mismatch")]


def test_key_wraps_are_checked_against_the_catalogs_copies(env) -> None:
    """A full sweep checks every key wrap (format v2) against the catalog's copy: an altered
    copy is a mismatch, a lost wrap object missing, each under the wrap's storage key."""
    from archive.documents import NewDocument, store_document
    from archive.encryption import generate_kek
    from catalog.models import KeyWrap
    from tests import synthetic

    kek = generate_kek()
    case = env.case()
    for n in range(2):
        pdf = synthetic.make_pdf(env.tmp / f"record-{n}.pdf", "询问笔录", [f"第 {n} 份"])
        store_document(
            env.as_("clerk", kek=kek),
            NewDocument(case.number, pdf, "询问笔录", protected=True),
            doc_types=["询问笔录"],
        )
    report = sweep(env.as_("cron", kek=kek))
    assert report.problems == [] and report.key_wraps >= 2
    with env.sessions() as s:
        altered, lost = s.query(KeyWrap).order_by(KeyWrap.id).limit(2).all()
    with env.sessions.begin() as s:
        s.execute(update(KeyWrap).where(KeyWrap.id == altered.id).values(wrap=bytes(altered.wrap)[::-1]))
        if not hasattr(env.store, "root"):  # a locked version cannot go: name one the store lacks
            s.execute(
                update(KeyWrap)
                .where(KeyWrap.id == lost.id)
                .values(storage_version="3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
            )
    if hasattr(env.store, "root"):
        (env.store.root / "objects" / lost.storage_key).unlink()
    report = sweep(env.as_("cron", kek=kek))
    assert {(p["subject"], p["problem"]) for p in report.problems} == {
        (altered.storage_key, "mismatch"),
        (lost.storage_key, "missing"),
        # Data keys are opened through the catalog's copies: the altered one no longer opens
        # its record, which the sweep names too.
        (altered.object_key, "mismatch"),
    }
    # Only a sweep that reconciles reads the wraps (a sample leaves them to the nightly one).
    named = {p["subject"] for p in sweep(env.as_("cron", kek=kek), reconcile_storage=False).problems}
    assert named == {altered.object_key}
