"""The README's backup and restore, step by step ("Protected records and the keys to back up"):
an installation with a protected recording and a checkpoint loses its data folder (catalog,
keys, all of it) but not its store; the documented files come back from their backup into a
fresh data folder, the catalog is rebuilt from storage, and the protected recording reads back
byte for byte while the custody chain verifies against the restored pin."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from archive import encryption
from archive.digest import hash_file
from archive.originals import OriginalFacts, store_original
from archive.reading import read_plain
from catalog.models import Recording
from catalog.recordings import reserve_archive_number
from config.app import App
from config.commands.verify import same_database
from config.settings import load_settings
from tests.conftest import invoke_evidence

# What the README says to back up, relative to the data folder (the embedded default: no
# settings file, so the pinned fingerprints are in keys/trusted-keys.txt).
BACKED_UP = ("keys/custody-ed25519.pem", "keys/kek.key", "keys/web-session.key", "keys/trusted-keys.txt")


def evidence(*args: str, env: dict[str, str]) -> dict:
    done = invoke_evidence(*args, "--json", env=env)
    assert done.exit_code == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def archive_protected(env: dict[str, str], source: Path) -> tuple[str, str]:
    """A protected recording stored as a station stores it; returns (archive number, SHA-256)."""
    settings, _ = load_settings(None, env)
    app = App(settings, actor="station:ST01")
    try:
        now = datetime.now(UTC)
        number = reserve_archive_number(
            app.engine, settings.formats, settings.zone, unit="KZCG", station="ST01", now=now
        )
        digests = hash_file(source)
        facts = OriginalFacts(
            station="ST01",
            unit="KZCG",
            kind="video",
            original_name=source.name,
            content_type="video/mp4",
            start_time=now - timedelta(hours=1),
            protected=True,
        )
        rec = store_original(app.services, source, digests, facts, archive_no=number)
        assert rec.encrypted
        app.web_context()  # the web server's first start makes the session secret
        return number, digests.sha256
    finally:
        app.close()


@dataclass
class Installation:
    """Where one installation keeps its catalog and its evidence storage. ``lose_catalog`` is
    the disaster's effect on a catalog outside the data folder; a store inside the data folder
    (the embedded default) is moved out before the folder goes, and back into the fresh one."""

    env: Callable[[Path], dict[str, str]]
    database: Callable[[Path], str]
    lose_catalog: Callable[[], None]
    store_in_data_folder: bool


@pytest.fixture(
    params=["embedded", pytest.param("postgres+rgw", marks=[pytest.mark.postgres, pytest.mark.s3])]
)
def installation(request: pytest.FixtureRequest) -> Installation:
    if request.param == "embedded":
        return Installation(
            env=lambda data: {"EVIDENCE_DATA_DIR": str(data)},
            database=lambda data: f"sqlite:///{data / 'catalog.sqlite3'}",
            lose_catalog=lambda: None,  # the SQLite file goes with the data folder
            store_in_data_folder=True,
        )
    pg_admin, rgw = request.getfixturevalue("pg_admin"), request.getfixturevalue("rgw")
    url = request.getfixturevalue("pg_url")
    name = make_url(url).database
    bucket = f"r-{uuid.uuid4().hex[:12]}"
    access, secret = rgw.users["admin"]

    def lose_catalog() -> None:  # dropped, then an empty one made again (createdb)
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))

    return Installation(
        env=lambda data: {
            "EVIDENCE_DATA_DIR": str(data),
            "EVIDENCE_DATABASE_URL": url,
            "EVIDENCE_STORAGE_URL": f"s3://{rgw.endpoint}/{bucket}?secure=false",
            "EVIDENCE_S3_ACCESS_KEY": access,
            "EVIDENCE_S3_SECRET_KEY": secret,
        },
        database=lambda data: url,
        lose_catalog=lose_catalog,
        store_in_data_folder=False,
    )


def test_the_documented_backup_restores_a_lost_data_folder(
    tmp_path: Path, installation: Installation
) -> None:
    old = tmp_path / "old" / "data"
    env = installation.env(old)
    first = evidence("init", env=env)
    kek_id, signing_id = first["kek_id"], first["key_id"]  # written on the backup's label
    source = tmp_path / "A123456@20201105085000.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42" + hashlib.sha256(b"protected").digest() * 4000)
    number, sha256 = archive_protected(env, source)
    evidence("audit", "checkpoint", env=env)

    # Back up what the README names, keeping each file's mode (cp -p).
    backup = tmp_path / "backup"
    backup.mkdir(mode=0o700)
    for name in BACKED_UP:
        assert mode(old / name) == 0o600, name
        shutil.copy2(old / name, backup / Path(name).name)

    # The disaster: the data folder and the catalog are gone; the store (the evidence, kept on
    # storage of its own) survives and is mounted again where the fresh data folder expects it.
    survived = tmp_path / "store-disk"
    if installation.store_in_data_folder:
        shutil.move(old / "store", survived)
    shutil.rmtree(old.parent)
    installation.lose_catalog()

    new = tmp_path / "new" / "data"
    new.mkdir(parents=True, mode=0o700)
    (new / "keys").mkdir(mode=0o700)
    if installation.store_in_data_folder:
        shutil.move(survived, new / "store")
    for name in BACKED_UP:
        shutil.copy2(backup / Path(name).name, new / name)
    env = installation.env(new)

    # A key restored readable by others is refused by name, before anything is written.
    (new / "keys" / "kek.key").chmod(0o644)
    loose = invoke_evidence("init", env=env)
    assert loose.exit_code == 2 and "kek.key" in loose.stderr
    (new / "keys" / "kek.key").chmod(0o600)

    rebuilt = evidence(
        "catalog", "rebuild", "--from-storage", "--database", installation.database(new), env=env
    )
    assert rebuilt["restored"] is True and rebuilt["problems"] == [] and rebuilt["differences"] == []
    assert rebuilt["counts"]["recordings"] == 1 and len(rebuilt["signers"]) == 1
    # Before init: the key files' ids as found, to compare with the backup's label.
    done = invoke_evidence("doctor", "--quick", "--json", env=env)
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    assert done.exit_code == 0, checks
    # The rebuild recorded the KEK storage's key wraps name, which the restored file matches.
    assert rebuilt["kek_id"] == kek_id
    assert checks["keys.kek"]["status"] == "ok" and checks["keys.kek"]["data"]["key_id"] == kek_id
    assert checks["keys.signing"]["data"]["key_id"] == signing_id
    assert checks["keys.history"]["status"] == "ok"  # the restored key signed the newest checkpoint
    init = evidence("init", env=env)
    assert (init["kek_id"], init["key_id"]) == (kek_id, signing_id)
    assert init["signing_key_created"] is False and init["kek_created"] is False
    assert init["pinned_now"] is False  # the restored pin file already names the key
    assert evidence("audit", "verify", env=env)["ok"] is True
    assert evidence("verify", "--all", env=env)["problems"] == []  # decrypts every original

    settings, _ = load_settings(None, env)
    app = App(settings)
    try:
        shown = evidence("recordings", "show", number, env=env)
        assert shown["protected"] is True and shown["sha256"] == sha256
        assert encryption.kek_id(app.kek) == kek_id  # the restored file, checked against the catalog
        kek = app.services.kek()  # with the wraps the rebuild restored from storage
        with app.sessions() as session:
            rec = session.execute(select(Recording).where(Recording.archive_no == number)).scalar_one()
        assert rec.encrypted
        plain = b"".join(read_plain(app.store, rec.storage_key, rec.storage_version, encrypted=True, kek=kek))
        assert hashlib.sha256(plain).hexdigest() == sha256 and plain == source.read_bytes()
    finally:
        app.close()
    for name in BACKED_UP:
        assert mode(new / name) == 0o600, name


def test_only_the_settings_own_catalog_is_a_restore(tmp_path: Path) -> None:
    """Anything else is the drill, which compares with the live catalog and so needs it."""
    own = f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite3'}"
    assert same_database(f"sqlite:///{tmp_path / 'data' / '..' / 'data' / 'catalog.sqlite3'}", own)
    assert not same_database(f"sqlite:///{tmp_path / 'rebuilt.sqlite3'}", own)
    assert not same_database("postgresql+psycopg://evidence@127.0.0.1/evidence", own)
    pg = "postgresql+psycopg://evidence:secret@127.0.0.1:5432/evidence"
    assert same_database("postgresql+psycopg://evidence@127.0.0.1:5432/evidence", pg)
    assert not same_database("postgresql+psycopg://evidence@127.0.0.1:5432/evidence_drill", pg)
    # The drill into another database on a data folder without a catalog: run `evidence init`.
    env = {"EVIDENCE_DATA_DIR": str(tmp_path / "data")}
    drill = invoke_evidence(
        "catalog", "rebuild", "--from-storage", "--database", f"sqlite:///{tmp_path / 'x.sqlite3'}", env=env
    )
    assert drill.exit_code == 2 and "evidence init" in drill.stderr
