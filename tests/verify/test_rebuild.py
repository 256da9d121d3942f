"""The disaster-recovery drill: a catalog rebuilt from storage alone matches the live one."""

import time

from sqlalchemy import select

from archive.checkpoints import make_and_publish
from archive.document_pages import document_pages
from archive.documents import NewDocument, store_document
from archive.holds import set_hold
from archive.links import link_recordings, unlink_item
from archive.purge import purge_recording
from catalog import custody, sequences
from catalog.checkpoint import Anchors, fingerprint
from catalog.db import make_engine, session_factory
from catalog.models import Recording
from catalog.recordings import reserve_archive_number
from tests import synthetic
from tests.conftest import FORMATS, ZONE
from verify.rebuild import compare, rebuild


def test_a_rebuilt_catalog_matches_and_never_reuses_a_number(env, sqlite_url, tmp_path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    case = env.case("开城管罚立〔2020〕42号")
    kept, unlinked, purged = env.recording(1), env.recording(2), env.recording(3)
    pairs = link_recordings(env.as_("r"), case.number, [kept.archive_no, unlinked.archive_no])
    unlink_item(env.as_("r"), case.number, pairs[1][1], reason="误关联")
    scan = synthetic.make_pdf(tmp_path / "立案.pdf", "立案审批表", ["案号：开城管罚立〔2020〕42号"], pages=2)
    _item, doc = store_document(
        env.as_("clerk"),
        NewDocument(case.case_key, scan, "立案审批表", officer="JX0227"),
        doc_types=["立案审批表"],
    )
    assert len(document_pages(env.as_("web:aud"), doc.id)) == 2  # drawn when an auditor opened it
    set_hold(env.as_("legal"), case.number, reason="复议")
    time.sleep(3.5)  # the routine lock of a few seconds runs out
    purge_recording(env.as_("cron"), purged.archive_no, reason="routine period over", due_at=None)
    make_and_publish(env.as_("cron"), key)

    target = make_engine(f"sqlite:///{tmp_path / 'rebuilt.sqlite3'}")
    report = rebuild(env.store, target, formats=FORMATS, anchors=Anchors({fingerprint(key.public_key())}))
    assert report.problems == []
    assert report.signers == {fingerprint(key.public_key())}
    assert report.counts["recordings"] == 2 and report.counts["tombstones"] == 1
    assert report.counts["cases"] == 1 and report.counts["documents"] == 1
    assert report.counts["document pages"] == 2
    with env.sessions() as live, session_factory(target)() as rebuilt:
        differences, notes = compare(live, rebuilt, last_checkpoint_seq=report.last_checkpoint_seq)
        assert differences == []
        assert [
            r for (r,) in rebuilt.execute(select(Recording.archive_no).order_by(Recording.archive_no))
        ] == sorted([kept.archive_no, unlinked.archive_no])
    # Only the event recording the checkpoint itself comes after it.
    assert len(notes) == 1 and notes[0].startswith("1 custody event(s) after the last checkpoint")
    # The purged recording's number (the day's highest) is never handed out again.
    number = reserve_archive_number(target, FORMATS, ZONE, unit="KZCG", station="ST01", now=env.now())
    assert number > purged.archive_no
    assert sequences.current(target, FORMATS.item_scope(case.case_key)) == 3
    with session_factory(target)() as rebuilt:  # the v2 bodies came back byte for byte
        assert custody.verify(rebuilt, Anchors({fingerprint(key.public_key())})).ok
    target.dispose()

    # Storage is not a trust anchor: without the pinned fingerprint the checkpoint is refused.
    untrusted = make_engine(f"sqlite:///{tmp_path / 'untrusted.sqlite3'}")
    report = rebuild(env.store, untrusted, formats=FORMATS)
    assert report.problems == [
        f"checkpoint 1: signature valid, signer not trusted: fingerprint {fingerprint(key.public_key())}"
    ]
    untrusted.dispose()
