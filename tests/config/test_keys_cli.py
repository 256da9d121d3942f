"""`evidence keys rotate-kek` as the real command: killed with SIGKILL part way, run again,
it resumes the same rotation and finishes; then the old KEK file is destroyed and every
protected recording (format v1 and v2) still reads back."""

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archive import encryption
from tests.conftest import ROOT, invoke_evidence

N = 24


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def archive(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An initialised data folder (SQLite; the local store or a bucket on Ceph RGW) holding N
    protected recordings, the first half written in format v1."""
    from archive.digest import hash_file
    from archive.originals import OriginalFacts, store_original
    from catalog.recordings import reserve_archive_number
    from config.app import App
    from config.settings import load_settings

    env = {
        "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        "EVIDENCE_UNIT": "KZCG",
    }
    if request.param == "s3":
        rgw = request.getfixturevalue("rgw")
        access, secret = rgw.users["admin"]
        env |= {
            "EVIDENCE_STORAGE_URL": f"s3://{rgw.endpoint}/keys-{uuid.uuid4().hex[:10]}?secure=false",
            "EVIDENCE_S3_ACCESS_KEY": access,
            "EVIDENCE_S3_SECRET_KEY": secret,
        }
    assert invoke_evidence("init", "--json", env=env).exit_code == 0
    settings, _ = load_settings(None, env)
    app = App(settings, actor="station:ST01")
    stored = {}
    for n in range(N):
        monkeypatch.setattr(encryption, "FORMAT_VERSION", 1 if n < N // 2 else 2)
        path = tmp_path / f"A123456@2020110508{n:02d}560000.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
        now = datetime.now(UTC)
        number = reserve_archive_number(
            app.engine, settings.formats, settings.zone, unit="KZCG", station="ST01", now=now
        )
        rec = store_original(
            app.services.at(now),
            path,
            hash_file(path),
            OriginalFacts(
                station="ST01",
                unit="KZCG",
                kind="video",
                original_name=path.name,
                start_time=now,
                protected=True,
            ),
            archive_no=number,
        )
        stored[rec.storage_key] = (rec.storage_version, rec.sha256)
    old = encryption.kek_id(app.kek)
    app.close()
    yield env, settings, stored, old


def _wraps_under(db: Path, kek_id_: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from key_wraps where kek_id = ?", (kek_id_,)).fetchone()[0]


def _superseded(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from key_wraps where superseded_at is not null").fetchone()[0]


def _new_kek(db: Path, old: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("select key_id from catalog_keys where purpose = 'key-encryption'").fetchone()
    return row[0] if row and row[0] != old else None


def _killed_rotation(env: dict[str, str], db: Path, old: str) -> tuple[str, int]:
    """`keys rotate-kek` killed with SIGKILL once it has written a few wraps: (new KEK id,
    wraps written under it)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")} | env
    child = subprocess.Popen(
        [sys.executable, "-m", "config.cli", "keys", "rotate-kek", "--batch", "1", "--json"],
        env=full,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    new = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            new = new or _new_kek(db, old)
            if new and _wraps_under(db, new) >= 3:
                break
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert new is not None
    part = _wraps_under(db, new)
    assert 3 <= part < N, "the rotation finished before it could be killed"
    return new, part


def test_rotate_kek_killed_part_way_resumes_and_the_old_kek_can_go(archive, tmp_path: Path) -> None:
    env, settings, stored, old = archive
    db = tmp_path / "catalog.sqlite3"
    new, part = _killed_rotation(env, db, old)

    again = invoke_evidence("keys", "rotate-kek", "--json", env=env)
    assert again.exit_code == 0, again.output
    result = json.loads(again.stdout)
    assert (result["kek_id"], result["resumed"], result["done"]) == (new, True, True)
    assert result["rewrapped"] in (N - part, N - part + 1)  # the killed batch may have stored its wrap
    assert _wraps_under(db, new) == N
    listed = json.loads(invoke_evidence("keys", "list", "--json", env=env).stdout)
    assert listed["current"] == new and listed["rotation_in_progress"] is None

    (Path(env["EVIDENCE_DATA_DIR"]) / "keys" / "kek.key").unlink()  # the old KEK destroyed
    from archive.reading import hash_stored
    from config.app import App

    app = App(settings, actor="reader")
    try:
        assert list(app.keks[0]) == [new]
        ring = app.services.kek()
        versions = set()
        for key, (version, sha256) in stored.items():
            header = encryption.read_header(b"".join(app.store.read(key, version, start=0, length=100)))
            versions.add(header.version)
            got = hash_stored(app.store, key, version, encrypted=True, kek=ring)
            assert (got.problem, got.sha256) == (None, sha256), key
        assert versions == {1, 2}
    finally:
        app.close()
    # Commands that need the key keep working without the old file.
    init = invoke_evidence("init", "--json", env=env)
    assert init.exit_code == 0, init.output
    assert json.loads(init.stdout)["kek_id"] == new and json.loads(init.stdout)["kek_created"] is False
    doctor = json.loads(invoke_evidence("doctor", "--quick", "--json", env=env).stdout)
    kek_check = next(c for c in doctor["checks"] if c["check"] == "keys.kek")
    assert kek_check["status"] == "ok" and kek_check["data"]["key_id"] == new
    # The next rotation, to a KEK made first (and copied to the stations before it is used).
    made = json.loads(invoke_evidence("keys", "new-kek", "--json", env=env).stdout)
    assert stat.S_IMODE(Path(made["file"]).stat().st_mode) == 0o600
    assert json.loads(invoke_evidence("keys", "list", "--json", env=env).stdout)["current"] == new
    second = invoke_evidence("keys", "rotate-kek", "--kek-id", made["kek_id"], "--json", env=env)
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["rewrapped"] == N and _wraps_under(db, made["kek_id"]) == N
    # The wraps the rotations superseded are locked for [encryption] wrap_lock_days (a year):
    # listed with their dates, and --confirm deletes none of them before then.
    superseded = _superseded(db)
    assert superseded >= N  # at least those under the KEK the second rotation left
    for confirm in ([], ["--confirm"]):
        run = invoke_evidence("keys", "delete-superseded", *confirm, "--json", env=env)
        assert run.exit_code == 0, run.output
        result = json.loads(run.stdout)
        assert result["deleted"] == [] and len(result["waiting"]) == superseded, result
        assert all(datetime.fromisoformat(w["retain_until"]) > datetime.now(UTC) for w in result["waiting"])
    assert _superseded(db) == superseded
    # The current wraps were locked a year ahead just now: none is due for renewal.
    renew = invoke_evidence("keys", "renew-locks", "--json", env=env)
    assert renew.exit_code == 0 and json.loads(renew.stdout) == {"renewed": []}, renew.output


def test_a_catalog_restored_from_storage_keeps_the_rotated_kek_current(archive, tmp_path: Path) -> None:
    """The catalog is lost part way through a rotation, the old KEK file still there: the
    catalog rebuilt from storage knows the new KEK is current and the rotation unfinished, so
    `init` does not go back to the old file's KEK and `rotate-kek` finishes the same rotation."""
    env, _settings, _stored, old = archive
    db = tmp_path / "catalog.sqlite3"
    new, part = _killed_rotation(env, db, old)
    assert invoke_evidence("audit", "checkpoint", env=env).exit_code == 0  # the events in storage
    for lost in tmp_path.glob("catalog.sqlite3*"):
        lost.unlink()
    rebuilt = invoke_evidence(
        "catalog", "rebuild", "--from-storage", "--database", env["EVIDENCE_DATABASE_URL"], "--json", env=env
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.stdout)["kek_id"] == new
    assert invoke_evidence("init", "--json", env=env).exit_code == 0
    listed = json.loads(invoke_evidence("keys", "list", "--json", env=env).stdout)
    assert (listed["current"], listed["rotation_in_progress"]) == (new, new)
    again = invoke_evidence("keys", "rotate-kek", "--json", env=env)
    assert again.exit_code == 0, again.output
    result = json.loads(again.stdout)
    assert (result["kek_id"], result["resumed"], result["done"]) == (new, True, True)
    # Storage may hold the killed batch's wrap, which the dead catalog had not recorded yet.
    assert result["rewrapped"] in (N - part - 1, N - part) and _wraps_under(db, new) == N
