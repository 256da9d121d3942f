"""Every object the archive writes is locked in the mode the store is configured with.

Originals and their manifests, derivatives, documents, case events and tombstones (written
through the outbox), checkpoints and custody segments, fixity results: one walk of the whole
store after a busy day, on the local store and on a real Ceph RGW, in each mode.
"""

import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import sessionmaker

from archive.accounts import add_account
from archive.checkpoints import make_and_publish
from archive.derivatives import store_derivative
from archive.documents import NewDocument, store_document
from archive.holds import set_hold
from archive.links import link_recordings
from archive.local_store import LocalStore
from archive.policy import ArchivePolicy
from archive.purge import purge_recording
from archive.retention import Rules
from archive.retention_run import run as retention_run
from tests.conftest import ZONE, Env, s3_store_for
from verify.fixity import sweep


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def kind(request) -> str:
    return request.param


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_every_written_object_carries_the_configured_mode(engine, kind, mode, tmp_path, request) -> None:
    if kind == "local":
        store = LocalStore(tmp_path / "store", lock_mode=mode)
    else:
        store = s3_store_for(request.getfixturevalue("rgw"), lock_mode=mode)
    store.ensure_ready()
    env = Env(
        engine,
        sessionmaker(engine, expire_on_commit=False),
        store,
        tmp_path,
        ArchivePolicy(zone=ZONE, routine=(0, "days"), min_lock=timedelta(seconds=2)),
    )
    clerk = env.as_("clerk")
    # Ingest: originals and manifests; one expires soon so that it can be purged below.
    kept, expiring = env.recording(1), env.recording(2)
    proxy = tmp_path / "proxy.mp4"
    proxy.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"p" * 2000)
    store_derivative(
        env.as_("station:ST01"),
        kept,
        kind="proxy",
        path=proxy,
        ext="mp4",
        content_type="video/mp4",
        method="remux",
    )
    # Cases: opened, a document, a link, a hold (case events go through the outbox).
    case = env.case()
    scan = tmp_path / "立案.pdf"
    scan.write_bytes(b"%PDF-1.4 scan")
    store_document(clerk, NewDocument(case.number, scan, "立案审批表"), doc_types=["立案审批表"])
    link_recordings(clerk, case.number, [kept.archive_no])
    set_hold(clerk, case.number, reason="诉讼保全")
    add_account(clerk, "zhang", "auditor", "a long enough password", protected=False, by=None)
    # Checkpoint and its segment; a fixity sweep's results; a purge's tombstone.
    make_and_publish(clerk, Ed25519PrivateKey.generate())
    sweep(env.as_("cron"), reconcile_storage=False)
    time.sleep(2.5)  # the expiring recording's lock runs out on the real clock
    purge_recording(env.as_("cron"), expiring.archive_no, reason="routine period over", due_at=None)
    retention_run(env.as_("cron"), Rules(routine=(1, "days")), dry_run=True)

    seen: dict[str, str | None] = {}
    for info in store.list(""):
        retention = store.stat(info.key, info.version).retention
        seen[info.key] = retention.mode if retention else None
    prefixes = {key.split("/")[0] for key in seen}
    assert prefixes >= {
        "originals",
        "derivatives",
        "documents",
        "cases",
        "custody",
        "reports",
        "tombstones",
    }, prefixes
    wrong = {key: found for key, found in seen.items() if found != mode}
    assert wrong == {}, f"objects not locked in {mode}: {wrong}"
