"""`evidence doctor`'s probes: thin adapters that gather values (files, catalog, store, tools)
and hand them to the judging functions in ``config.doctor``.

Nothing here writes to evidence storage: the store is asked about the bucket and answers a
read of a key that does not exist; the catalog is only read; an SQLite catalog that does not
exist is not created. A probe that fails unexpectedly becomes a problem finding of its own,
so one broken part never hides the others.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from archive import encryption
from catalog import custody, keys, schema, selftest
from catalog.actions import Action
from catalog.checkpoint import key_id, raw_public_key
from catalog.errors import EvidenceError
from catalog.models import CheckpointRow, CustodyEventRow, Recording, Station

from . import doctor
from .app import KEK, SIGNING, App
from .doctor import Finding, ok, problem, skipped
from .settings import Settings, _sqlite_file, load_settings

# Which roles must hold which key: the curator signs checkpoints, the reader's pages sign
# exports; every role that stores or reads protected records needs the key-encryption key.
SIGNING_ROLES = {"curator", "reader"}
# Roles whose credential may read objects (a station's must not).
READING_ROLES = {"curator", "reader", "worker"}
# Roles that see the bucket's configuration (s3:GetBucketVersioning and
# s3:GetBucketObjectLockConfiguration in their policy files).
BUCKET_ROLES = {"curator", "reader"}
# Roles that run ffmpeg (derivatives at ingest or on a worker).
FFMPEG_ROLES = {"station", "worker"}


def guarded(check: str, probe: Callable[[], list[Finding]]) -> list[Finding]:
    """Run one probe; anything it did not expect becomes a problem naming the check."""
    try:
        return probe()
    except EvidenceError as exc:
        return [problem(check, exc.message, exc.hint or "see the message")]
    except Exception as exc:  # noqa: BLE001 - the doctor reports, it does not crash
        return [
            problem(
                check,
                f"{type(exc).__name__}: {exc}",
                "run again with --log-level debug for the details",
            )
        ]


# --- settings --------------------------------------------------------------------------------


def load(
    config_path: str | None, environ: Mapping[str, str] | None = None
) -> tuple[Settings | None, list[Finding]]:
    try:
        settings, warnings = load_settings(config_path, environ)
    except EvidenceError as exc:
        return None, [problem(doctor.SETTINGS_CHECK, exc.message, exc.hint or "fix the settings file")]
    found = [ok(doctor.SETTINGS_CHECK, f"valid ({settings.source}), role {settings.storage.role}")]
    found += [doctor.warning(doctor.SETTINGS_CHECK, w) for w in warnings]
    return settings, found


# --- catalog ---------------------------------------------------------------------------------


def catalog_exists(settings: Settings) -> bool:
    """False only for an SQLite file that is not there (connecting would create it)."""
    file = _sqlite_file(settings.database_url)
    return file is None or file.exists()


def check_catalog(app: App) -> list[Finding]:
    if not catalog_exists(app.settings):
        return [problem("catalog", f"no catalog at {app.settings.database_url}", "run `evidence init`")]
    current = schema.current_revision(app.engine)
    known = [r.revision for r in ScriptDirectory(str(schema.MIGRATIONS)).walk_revisions()]
    return [doctor.judge_schema(current, schema.head_revision(), known)]


# --- keys ------------------------------------------------------------------------------------


def _recorded(app: App, purpose: str, catalog_ok: bool) -> str | None:
    if not catalog_ok:
        return None
    with app.reader_sessions() as session:
        return keys.recorded_key_id(session, purpose)


def _checkpoint_keys(app: App) -> list[str]:
    """Public keys (base64) of the checkpoints, oldest first."""
    with app.reader_sessions() as session:
        return list(session.execute(select(CheckpointRow.public_key).order_by(CheckpointRow.n)).scalars())


def check_signing_key(app: App, catalog_ok: bool) -> list[Finding]:
    import base64

    path, role = app.settings.signing_key_path, app.settings.storage.role
    if not path.exists() and not path.is_symlink():
        if role not in SIGNING_ROLES:
            return [skipped("keys.signing", f"no signing key on this machine (a {role} signs nothing)")]
        return [
            problem(
                "keys.signing",
                f"signing key {path} is missing",
                "restore it from its backup (or run `evidence init` on a new installation)",
            )
        ]
    key = keys.load_signing_key(path)  # checks owner and mode
    public = key.public_key()
    found = [
        doctor.judge_key_id(
            "keys.signing", "signing key", _recorded(app, SIGNING, catalog_ok), key_id(public)
        )
    ]
    if catalog_ok:
        found.append(
            doctor.judge_signing_history(
                base64.b64encode(raw_public_key(public)).decode(), _checkpoint_keys(app)
            )
        )
    return found


def check_kek(app: App, catalog_ok: bool) -> list[Finding]:
    path = app.settings.encryption_key_path
    paths = app.kek_paths()
    if any(p != path for p in paths):  # KEKs a rotation made (key_folder)
        found = {encryption.kek_id(encryption.load_kek(p)) for p in paths}  # owner, mode
        recorded = _recorded(app, KEK, catalog_ok)
        actual = recorded if recorded in found else sorted(found)[0]
        return [doctor.judge_key_id("keys.kek", "key-encryption key", recorded, actual)]
    if not path.exists() and not path.is_symlink():
        recorded = _recorded(app, KEK, catalog_ok)
        if app.settings.encryption.mode == "none" and recorded is None:
            return [skipped("keys.kek", "encryption is off and no key-encryption key was ever made")]
        return [
            problem(
                "keys.kek",
                f"key-encryption key {path} is missing",
                "restore it from its backup: protected records cannot be read or stored without it",
            )
        ]
    kek = encryption.load_kek(path)  # checks owner and mode
    return [
        doctor.judge_key_id(
            "keys.kek", "key-encryption key", _recorded(app, KEK, catalog_ok), encryption.kek_id(kek)
        )
    ]


def check_web_secret(app: App) -> list[Finding]:
    path = app.web_secret_path
    if not path.exists() and not path.is_symlink():
        return []  # made by the first `evidence serve`
    keys.read_key_file(path, "web session secret")
    return [ok("keys.web", f"web session secret {path}: owner and mode right")]


def check_algorithms(app: App) -> list[Finding]:
    """Each algorithm the settings use, run on its published test vector now."""
    found = []
    for name, refusal in selftest.results(app.algorithms):
        if refusal is None:
            found.append(ok(f"crypto {name}", "passes its known-answer test", algorithm=name))
        else:
            found.append(problem(f"crypto {name}", refusal.message, refusal.hint or "", algorithm=name))
    return found


# --- storage ---------------------------------------------------------------------------------


def check_store(app: App) -> list[Finding]:
    from archive.local_store import LocalStore
    from archive.s3_store import S3Store

    store = app.store
    if isinstance(store, LocalStore):
        return _check_local(store, app.settings.storage.role)
    if isinstance(store, S3Store):
        return _check_s3(store, app.settings.storage.role, app.settings.storage.lock_mode)
    return [skipped("storage", f"no checks for {store.url}")]


def _check_local(store, role: str) -> list[Finding]:
    root = Path(store.root)
    if not (root / "objects").is_dir() or not (root / "meta").is_dir():
        return [problem("storage", f"no store at {root}", "run `evidence init`")]
    want = os.R_OK | os.X_OK | (os.W_OK if role != "reader" else 0)
    if not os.access(root / "objects", want):
        return [
            problem(
                "storage",
                f"{root} is not usable by this account",
                f"give the service account access to {root}",
            )
        ]
    return [ok("storage", f"local store {root}: write-once by the archive, locks on the real clock")]


def s3_answer(fn: Callable[[], object]) -> str:
    """The S3 error code a call ends with, or "OK"."""
    from minio.error import S3Error

    try:
        fn()
    except S3Error as exc:
        return str(exc.code)
    return "OK"


def _check_s3(store, role: str, lock_mode: str) -> list[Finding]:
    import urllib3
    from minio.error import S3Error

    client, bucket = store.client, store.bucket
    missing = f"doctor/missing-{uuid.uuid4().hex}"  # never written: the read must fail

    def read_missing() -> None:
        response = client.get_object(bucket, missing)
        response.close()
        response.release_conn()

    try:
        answer = s3_answer(read_missing)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return [
            problem(
                "storage", f"cannot reach {store.url}: {exc}", "check the storage URL and that the store runs"
            )
        ]
    if answer == "NoSuchBucket":
        return [
            problem(
                "storage",
                f"bucket {bucket} does not exist",
                "run `evidence init` with the bucket owner's credential",
            )
        ]
    found = [ok("storage", f"{store.url} answers")]
    found.append(doctor.judge_credential(role, answer, may_read=role in READING_ROLES))
    if role not in BUCKET_ROLES or found[-1].status == "problem":
        return found
    try:
        versioning = client.get_bucket_versioning(bucket).status
    except S3Error as exc:
        if exc.code != "AccessDenied":
            raise
        return found + [_no_bucket_permission(role, "s3:GetBucketVersioning")]
    try:
        config = client.get_object_lock_config(bucket)
        lock_enabled, mode = True, config.mode
    except S3Error as exc:
        if exc.code == "AccessDenied":
            return found + [_no_bucket_permission(role, "s3:GetBucketObjectLockConfiguration")]
        if exc.code not in ("ObjectLockConfigurationNotFoundError", "InvalidRequest"):
            raise
        lock_enabled, mode = False, None
    return found + doctor.judge_bucket(versioning, lock_enabled, mode, lock_mode)


def _no_bucket_permission(role: str, action: str) -> Finding:
    return problem(
        "storage.bucket",
        f"the {role} credential may not read the bucket's settings ({action})",
        f"apply the current config/policies/{role}.json (it grants {action})",
    )


# --- the machine -----------------------------------------------------------------------------


def _existing(path: Path) -> Path:
    """The path, or its nearest existing parent (a folder not made yet fills the same disk)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_space(settings: Settings) -> list[Finding]:
    folders: list[tuple[str, Path]] = [("data folder", settings.data_path)]
    for station in settings.stations:
        folders += [(f"station {station.id}", Path(f).expanduser()) for f in station.folders]
    found = []
    for what, folder in folders:
        usage = shutil.disk_usage(_existing(folder))
        found.append(doctor.judge_free_space(what, str(folder), usage.free, settings.doctor.min_free_gib))
    return found


def tool_version(name: str) -> str | None:
    exe = shutil.which(name)
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (done.stdout or "").splitlines()
    return first[0].strip() if done.returncode == 0 and first else None


def check_tools(role: str) -> list[Finding]:
    return [
        doctor.judge_tool(name, tool_version(name), role in FFMPEG_ROLES) for name in ("ffmpeg", "ffprobe")
    ]


def clock_skew(app: App) -> float | None:
    """Seconds this machine's clock is ahead of the database server's (None on SQLite)."""
    if app.engine.dialect.name != "postgresql":
        return None
    with app.engine.connect() as conn:
        before = time.time()
        server = conn.execute(text("select extract(epoch from clock_timestamp())")).scalar_one()
        after = time.time()
    return (before + after) / 2 - float(server)


def check_clock(app: App) -> list[Finding]:
    return [
        doctor.judge_clock(
            clock_skew(app), app.settings.doctor.max_clock_skew_seconds, app.engine.dialect.name
        )
    ]


# --- schedules -------------------------------------------------------------------------------


def last_event(app: App, action: Action) -> datetime | None:
    with app.reader_sessions() as session:
        return session.execute(
            select(CustodyEventRow.time)
            .where(CustodyEventRow.action == action.value)
            .order_by(CustodyEventRow.seq.desc())
            .limit(1)
        ).scalar()


def last_checkpoint(app: App, now: datetime) -> datetime | None:
    """When the chain was last fully signed: the last checkpoint's time, or ``now`` when nothing
    happened since (the timer skips an idle chain, so an old checkpoint is not overdue then)."""
    with app.reader_sessions() as session:
        last = session.execute(select(CheckpointRow.time).order_by(CheckpointRow.n.desc()).limit(1)).scalar()
        return now if last is not None and custody.nothing_new(session) else last


def last_ingests(app: App, stations: Iterable[str] | None) -> dict[str, datetime | None]:
    """Each station's last successful ingest; ``stations`` None: every station the catalog knows."""
    with app.reader_sessions() as session:
        seen: dict[str, datetime | None] = {
            station: last
            for station, last in session.execute(
                select(Recording.station_id, func.max(Recording.ingested_at)).group_by(Recording.station_id)
            ).all()
            if station is not None
        }
        names = (
            set(stations)
            if stations is not None
            else set(seen) | set(session.execute(select(Station.id)).scalars())
        )
    return {name: seen.get(name) for name in sorted(names)}


def check_schedules(app: App, now: datetime) -> list[Finding]:
    s, d = app.settings, app.settings.doctor
    found = []
    configured = [st.id for st in s.stations]
    # A station machine answers for its own stations; the others for every station.
    wanted = configured if s.storage.role == "station" and configured else None
    for station, last in last_ingests(app, wanted).items():
        found.append(
            doctor.judge_age(
                f"station {station}",
                "successful ingest",
                last,
                now,
                timedelta(hours=d.ingest_hours),
                f"check station {station}'s daemon (systemctl status evidence-station@{station}) and its log",
            )
        )
    if s.storage.role != "curator":
        return found  # the central jobs run on the curator's machine
    found.append(
        doctor.judge_age(
            "fixity",
            "fixity sweep",
            last_event(app, Action.FIXITY_RUN),
            now,
            timedelta(days=d.fixity_days),
            "check the evidence-fixity timer (systemctl list-timers) or the cron job, and its log",
        )
    )
    found.append(
        doctor.judge_age(
            "checkpoint",
            "checkpoint",
            last_checkpoint(app, now),
            now,
            timedelta(days=d.checkpoint_days),
            "check the evidence-checkpoint timer or cron job; `evidence audit checkpoint` makes one now",
        )
    )
    found.append(
        doctor.judge_age(
            "retention",
            "retention run",
            last_event(app, Action.RETENTION_RUN),
            now,
            timedelta(days=d.retention_days),
            "check the evidence-retention timer or cron job, and its log",
        )
    )
    return found


# --- everything ------------------------------------------------------------------------------


def examine(app: App, *, quick: bool = False, now: datetime | None = None) -> list[Finding]:
    """Every check the settings' role calls for (``quick``: catalog and keys only)."""
    now = now or datetime.now(UTC)
    found = guarded("catalog", lambda: check_catalog(app))
    catalog_ok = bool(found) and found[-1].status == "ok"
    found += guarded("keys.signing", lambda: check_signing_key(app, catalog_ok))
    found += guarded("keys.kek", lambda: check_kek(app, catalog_ok))
    found += guarded("keys.web", lambda: check_web_secret(app))
    found += guarded("crypto", lambda: check_algorithms(app))
    if quick:
        return found
    found += guarded("storage", lambda: check_store(app))
    found += guarded("space", lambda: check_space(app.settings))
    found += guarded("ffmpeg", lambda: check_tools(app.settings.storage.role))
    if catalog_ok:
        found += guarded("clock", lambda: check_clock(app))
        found += guarded("schedules", lambda: check_schedules(app, now))
    else:
        found.append(skipped("schedules", "the catalog is not usable, so the schedules cannot be read"))
    return found
