import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archive import encryption
from archive.context import ServiceContext
from archive.digest import hash_file
from archive.errors import ContentChanged, ObjectMissing
from archive.files import put_file
from archive.originals import OriginalFacts, store_original
from archive.policy import ArchivePolicy
from archive.retention import lock_until
from catalog import custody
from catalog.db import session_factory
from catalog.models import Recording
from catalog.numbering import NumberingFormats
from catalog.recordings import find_by_sha256, reserve_archive_number

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(UTC)
START = datetime(2020, 11, 5, 8, 50, 56, tzinfo=ZONE)  # an old recording docked today


def facts(**kw) -> OriginalFacts:
    base = dict(
        station="ST01",
        unit="KZCG",
        kind="video",
        original_name="A123456@202011050850560000.mp4",
        content_type="video/mp4",
        start_time=START,
        duration_s=2.0,
        device="A123456",
        officer="JX0227",
        sources={"device": "filename", "start_time": "filename"},
    )
    return OriginalFacts(**(base | kw))


@pytest.fixture
def recording_file(tmp_path: Path) -> Path:
    path = tmp_path / "A123456@202011050850560000.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + hashlib.sha256(b"v").digest() * 40_000)
    return path


def services(sessions, store, policy: ArchivePolicy, kek: bytes | None = None) -> ServiceContext:
    return ServiceContext(
        sessions.kw["bind"],
        sessions,
        store,
        NumberingFormats(),
        policy,
        "station:ST01",
        load_kek=(lambda: kek) if kek else None,
        clock=lambda: NOW,
    )


def archive_no(engine) -> str:
    return reserve_archive_number(engine, NumberingFormats(), ZONE, unit="KZCG", station="ST01", now=NOW)


def test_a_recording_is_stored_with_manifest_lock_and_custody(engine, store, recording_file) -> None:
    sessions = session_factory(engine)
    digests = hash_file(recording_file)
    number = archive_no(engine)
    policy = ArchivePolicy(zone=ZONE)
    rec = store_original(
        services(sessions, store, policy), recording_file, digests, facts(), archive_no=number
    )
    assert rec.storage_key == f"originals/2020/11/05/{number}.mp4"
    assert b"".join(store.read(rec.storage_key, rec.storage_version)) == recording_file.read_bytes()
    info = store.stat(rec.storage_key, rec.storage_version)
    assert info.metadata["sha256"] == digests.sha256
    assert info.retention.mode == "COMPLIANCE"
    # Recorded in 2020, archived now: locked for the routine period from now.
    assert abs((info.retention.until - lock_until(NOW, (6, "months"), now=NOW)).total_seconds()) < 1
    manifest = json.loads(b"".join(store.read(rec.manifest_key)))
    assert manifest["archive_no"] == number and manifest["sha256"] == digests.sha256
    assert manifest["original_name"] == "A123456@202011050850560000.mp4"
    assert manifest["officer"] == "JX0227" and manifest["sources"]["device"] == "filename"
    assert manifest["stored"]["sha256"] == digests.sha256  # plaintext stored as is
    with sessions() as s:
        assert find_by_sha256(s, digests.sha256).archive_no == number
        actions = [e.action for e in custody.events(s, subject=number)]
        assert actions == ["ingested", "stored"]
        assert custody.verify(s).ok


def test_a_protected_recording_is_stored_encrypted(engine, store, recording_file, tmp_path) -> None:
    kek = encryption.generate_kek()
    sessions = session_factory(engine)
    digests = hash_file(recording_file, sm3=True)
    ctx = services(sessions, store, ArchivePolicy(zone=ZONE, sm3=True), kek)
    rec = store_original(ctx, recording_file, digests, facts(protected=True), archive_no=archive_no(engine))
    stored = b"".join(store.read(rec.storage_key))
    assert stored != recording_file.read_bytes() and rec.encrypted
    assert rec.stored_sha256 == hashlib.sha256(stored).hexdigest() != rec.sha256
    assert rec.sm3 == digests.sm3
    # Format v2: the data key is only in the wrap object beside it (and the catalog's copy).
    assert encryption.read_header(stored).version == 2
    wrap = b"".join(store.read(f"keys/wraps/{rec.storage_key}/{encryption.kek_id(kek)}"))
    with pytest.raises(encryption.EncryptionKeyError, match="no key wrap"):
        b"".join(encryption.decrypt_stream(io.BytesIO(stored), kek, rec.storage_key))
    ring = encryption.Keyring.of(kek, wraps={rec.storage_key: [wrap]})
    plain = b"".join(encryption.decrypt_stream(io.BytesIO(stored), ring, rec.storage_key))
    assert plain == recording_file.read_bytes()
    assert b"".join(encryption.decrypt_stream(io.BytesIO(stored), ctx.kek(), rec.storage_key)) == plain
    manifest = json.loads(b"".join(store.read(rec.manifest_key)))
    assert manifest["encryption"] == {"algorithm": "AES-256-GCM", "kek_id": encryption.kek_id(kek)}


def test_a_file_changed_since_hashing_is_not_archived(engine, store, recording_file) -> None:
    sessions = session_factory(engine)
    digests = hash_file(recording_file)
    recording_file.write_bytes(recording_file.read_bytes() + b"appended later")
    number = archive_no(engine)
    with pytest.raises(ContentChanged):
        store_original(
            services(sessions, store, ArchivePolicy(zone=ZONE)),
            recording_file,
            digests,
            facts(),
            archive_no=number,
        )
    with pytest.raises(ObjectMissing):
        store.stat(f"originals/2020/11/05/{number}.mp4")
    with sessions() as s:
        assert s.query(Recording).count() == 0


@pytest.mark.parametrize("how", ["open file", "reopening callable"])
def test_the_bytes_may_come_from_an_open_file_not_a_path(
    engine, local_store, recording_file, how: str
) -> None:
    """The ingest passes its descriptor: what is stored is the file hashed, whatever stands at
    its path by then."""
    sessions = session_factory(engine)
    digests = hash_file(recording_file)
    data = recording_file.read_bytes()
    with open(recording_file, "rb") as held:
        recording_file.unlink()
        recording_file.write_bytes(b"someone else's file")
        opened: list[int] = []

        def reopen():
            opened.append(1)
            return open(f"/proc/self/fd/{held.fileno()}", "rb")

        source = held if how == "open file" else reopen
        rec = store_original(
            services(sessions, local_store, ArchivePolicy(zone=ZONE)),
            source,
            digests,
            facts(),
            archive_no=archive_no(engine),
        )
        assert not held.closed  # the caller's file is the caller's to close
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(local_store.read(rec.storage_key)) == data
    assert opened == ([] if how == "open file" else [1])


def test_a_retry_after_a_crash_completes_the_remaining_steps(engine, local_store, recording_file) -> None:
    """The bytes were stored, then the process died before the catalog commit."""
    sessions = session_factory(engine)
    digests = hash_file(recording_file)
    number = archive_no(engine)
    policy = ArchivePolicy(zone=ZONE)
    key = f"originals/2020/11/05/{number}.mp4"
    put_file(
        local_store,
        key,
        recording_file,
        digests,
        content_type="video/mp4",
        metadata={"sha256": digests.sha256},
        label=number,
        retain_until=NOW + timedelta(days=1),
    )
    rec = store_original(
        services(sessions, local_store, policy), recording_file, digests, facts(), archive_no=number
    )
    assert rec.storage_key == key and rec.stored_sha256 == digests.sha256
