"""`evidence doctor` on real installations: the embedded default (SQLite, local store) and
PostgreSQL with Ceph RGW under the role policies shipped in config/policies."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from config.app import App
from config.doctor_probes import examine
from config.settings import load_settings
from tests.conftest import PG_ADMIN_URL, ROOT, invoke_evidence, run_evidence
from tests.synthetic import make_video


def doctor(*args: str, env: dict[str, str], config: Path | None = None) -> tuple[int, dict]:
    """`evidence doctor --json` in this process (one test below runs the real command)."""
    done = invoke_evidence(*(["--config", str(config)] if config else []), "doctor", "--json", *args, env=env)
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    return done.exit_code, json.loads(done.stdout)


def by_check(report: dict) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"]}


def findings(env: dict[str, str], **kwargs) -> dict[str, dict]:
    """The probes in this process, for settings given as environment variables."""
    settings, _ = load_settings(None, env)
    app = App(settings)
    try:
        return {f.check: f.to_json() for f in examine(app, **kwargs)}
    finally:
        app.close()


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- the embedded default ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("doctor-embedded")
    env = {"EVIDENCE_DATA_DIR": str(base / "data")}
    assert invoke_evidence("init", env=env).exit_code == 0
    return env


def test_doctor_on_a_directory_never_initialized_says_init_and_creates_nothing(tmp_path: Path) -> None:
    env = {"EVIDENCE_DATA_DIR": str(tmp_path / "data")}
    code, report = doctor(env=env)
    checks = by_check(report)
    assert code == 1 and report["status"] == "problems"
    assert checks["catalog"]["status"] == "problem" and checks["catalog"]["hint"] == "run `evidence init`"
    assert checks["storage"]["hint"] == "run `evidence init`"
    assert not (tmp_path / "data").exists()  # not even an empty SQLite file


def test_a_fresh_embedded_installation_is_healthy_with_warnings(embedded: dict[str, str]) -> None:
    store = Path(embedded["EVIDENCE_DATA_DIR"]) / "store"
    before = tree(store)
    code, report = doctor(env=embedded)
    checks = by_check(report)
    assert code == 0 and report["ok"] is True and report["role"] == "curator"
    healthy = ("settings", "catalog", "keys.signing", "keys.kek", "storage", "space (data folder)", "ffmpeg")
    for name in healthy:
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["ffmpeg"]["message"].startswith("ffmpeg version")
    assert checks["clock"]["status"] == "skipped" and "sqlite" in checks["clock"]["message"]
    for job in ("fixity", "checkpoint", "retention"):
        assert checks[job]["status"] == "warning", checks[job]
    assert tree(store) == before  # nothing written to the evidence storage


def test_the_nightly_jobs_once_run_are_on_time(embedded: dict[str, str]) -> None:
    for job in (("audit", "checkpoint"), ("retention", "run"), ("verify", "--all")):
        assert invoke_evidence(*job, "--json", env=embedded).exit_code == 0
    code, report = doctor(env=embedded)
    checks = by_check(report)
    assert code == 0
    for job in ("fixity", "checkpoint", "retention"):
        assert checks[job]["status"] == "ok", checks[job]
    assert checks["keys.history"]["status"] == "ok"
    # The same catalog with a cadence already passed: each job is a problem with what to do.
    overdue = dict(embedded)
    config = Path(embedded["EVIDENCE_DATA_DIR"]).parent / "late.toml"
    config.write_text("[doctor]\ncheckpoint_days = 0.00001\nretention_days = 0.00001\n")
    code, report = doctor(env=overdue, config=config)
    checks = by_check(report)
    assert code == 1
    assert checks["checkpoint"]["status"] == "problem" and "timer" in checks["checkpoint"]["hint"]
    assert checks["retention"]["status"] == "problem"
    assert checks["fixity"]["status"] == "ok"


def test_a_key_file_open_to_others_is_a_problem_with_the_fix(embedded: dict[str, str]) -> None:
    key = Path(embedded["EVIDENCE_DATA_DIR"]) / "keys" / "custody-ed25519.pem"
    key.chmod(0o640)
    try:
        code, report = doctor("--quick", env=embedded)
    finally:
        key.chmod(0o600)
    checks = by_check(report)
    assert code == 1 and report["quick"] is True
    assert checks["keys.signing"]["status"] == "problem"
    assert f"chmod 600 {key}" in checks["keys.signing"]["hint"]
    assert "storage" not in checks and "clock" not in checks  # --quick: settings, catalog, keys


def test_a_replaced_signing_key_is_caught(embedded: dict[str, str], tmp_path: Path) -> None:
    from catalog.keys import ensure_signing_key

    other = tmp_path / "other.pem"
    ensure_signing_key(other)
    config = tmp_path / "other.toml"
    config.write_text(f'[custody]\nsigning_key = "{other}"\n')
    code, report = doctor("--quick", env=embedded, config=config)
    checks = by_check(report)
    assert code == 1
    assert checks["keys.signing"]["status"] == "problem" and "backup" in checks["keys.signing"]["hint"]


def test_unusable_settings_exit_2_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[doctor]\nfixity_dayz = 8\n")
    code, report = doctor(env={"EVIDENCE_DATA_DIR": str(tmp_path / "d")}, config=config)
    assert code == 2 and report["status"] == "unusable settings"
    (first,) = report["checks"]
    assert first["check"] == "settings" and "fixity_dayz" in first["message"]


def test_human_output_names_each_problem_and_its_fix(tmp_path: Path) -> None:
    done = run_evidence("doctor", env={"EVIDENCE_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 1
    assert "PROBLEM   catalog: no catalog at" in done.stdout
    assert "→ run `evidence init`" in done.stdout
    assert "evidence doctor: problems" in done.stderr


# --- PostgreSQL and Ceph RGW, by role ----------------------------------------------------------


@pytest.fixture(scope="module")
def pg_database(pg_admin: Engine) -> Iterator[str]:
    name = f"evidence_doctor_{uuid.uuid4().hex[:10]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def central(rgw, pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A bucket made by its owner with the role policy and a COMPLIANCE default retention, and
    a catalog on PostgreSQL initialized by the curator."""
    from minio.commonconfig import COMPLIANCE
    from minio.objectlockconfig import DAYS, ObjectLockConfig

    from config.policies_rgw import apply_bucket_policy, bucket_policy
    from tests.conftest import s3_store_for

    bucket = f"d-{uuid.uuid4().hex[:12]}"
    owner = s3_store_for(rgw, "admin", bucket)
    owner.ensure_ready()
    owner.client.set_object_lock_config(bucket, ObjectLockConfig(COMPLIANCE, 1, DAYS))
    apply_bucket_policy(
        owner.client,
        bucket,
        bucket_policy(bucket, {"station": "station", "curator": "curator", "reader": "reader"}),
    )
    base = tmp_path_factory.mktemp("doctor-central")

    def env(role: str, user: str | None = None, **extra: str) -> dict[str, str]:
        access, secret = rgw.users[user or role]
        return {
            "EVIDENCE_DATA_DIR": str(base / "data"),
            "EVIDENCE_DATABASE_URL": pg_database,
            "EVIDENCE_STORAGE_URL": f"s3://{rgw.endpoint}/{bucket}?secure=false",
            "EVIDENCE_S3_ACCESS_KEY": access,
            "EVIDENCE_S3_SECRET_KEY": secret,
            "EVIDENCE_STORAGE_ROLE": role,
            **extra,
        }

    done = invoke_evidence("init", env=env("curator"))
    assert done.exit_code == 0, done.stderr
    return {"env": env, "bucket": bucket, "base": base, "rgw": rgw, "db": pg_database}


@pytest.mark.s3
@pytest.mark.postgres
def test_the_curator_sees_a_versioned_locked_bucket_and_the_database_clock(central) -> None:
    code, report = doctor(env=central["env"]("curator"))
    checks = by_check(report)
    assert code == 0, report
    assert checks["storage.credential (curator)"]["status"] == "ok"
    assert checks["storage.versioning"]["status"] == "ok"
    assert checks["storage.object_lock"]["message"] == "Object Lock on, default retention COMPLIANCE"
    assert checks["clock"]["status"] == "ok" and abs(checks["clock"]["data"]["skew_seconds"]) < 5
    assert checks["catalog"]["status"] == "ok"


@pytest.mark.s3
@pytest.mark.postgres
def test_the_reader_policy_lets_the_reader_see_the_bucket_settings(central) -> None:
    found = findings(central["env"]("reader"))
    assert found["storage.credential (reader)"]["status"] == "ok"
    assert found["storage.versioning"]["status"] == "ok"
    assert found["storage.object_lock"]["status"] == "ok"
    assert "fixity" not in found  # the central jobs are the curator's


@pytest.mark.s3
@pytest.mark.postgres
def test_a_station_credential_is_checked_without_writing(central) -> None:
    from tests.conftest import s3_store_for

    owner = s3_store_for(central["rgw"], "admin", central["bucket"])
    before = sorted((o.key, o.version) for o in owner.list())
    found = findings(central["env"]("station"))
    credential = found["storage.credential (station)"]
    assert credential["status"] == "ok" and credential["data"]["answer"] == "AccessDenied"
    assert "storage.versioning" not in found  # a station may not read the bucket's settings
    assert found["keys.signing"]["status"] in ("ok", "skipped")
    assert sorted((o.key, o.version) for o in owner.list()) == before


@pytest.mark.s3
@pytest.mark.postgres
@pytest.mark.parametrize(
    ("change", "answer"),
    [
        ({"EVIDENCE_S3_SECRET_KEY": "not-the-secret-0000000000000000"}, "SignatureDoesNotMatch"),
        ({"EVIDENCE_S3_ACCESS_KEY": "NOSUCHUSER0000000000"}, "InvalidAccessKeyId"),
    ],
)
def test_a_wrong_credential_is_a_problem(central, change: dict[str, str], answer: str) -> None:
    found = findings(central["env"]("station") | change)
    credential = found["storage.credential (station)"]
    assert credential["status"] == "problem" and credential["data"]["answer"] == answer
    assert "storage.secret_key" in credential["hint"]


@pytest.mark.s3
@pytest.mark.postgres
def test_a_bucket_without_versioning_or_lock_is_a_problem(central) -> None:
    plain = f"plain-{uuid.uuid4().hex[:10]}"
    rgw = central["rgw"]
    from tests.conftest import s3_store_for

    s3_store_for(rgw, "admin", plain).client.make_bucket(plain)  # no Object Lock, no versioning
    env = central["env"]("curator", user="admin")
    env["EVIDENCE_STORAGE_URL"] = f"s3://{rgw.endpoint}/{plain}?secure=false"
    code, report = doctor(env=env)
    checks = by_check(report)
    assert code == 1
    assert checks["storage.versioning"]["status"] == "problem"
    assert checks["storage.object_lock"]["status"] == "problem"
    assert "only be enabled when a bucket is created" in checks["storage.object_lock"]["hint"]


@pytest.mark.s3
@pytest.mark.postgres
def test_a_stale_station_is_a_problem(central, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_video(inbox / "A123456@202011050850560001.mp4", seconds=1, size="160x120", audio=False)
    env = central["env"]("curator")
    scan = invoke_evidence("ingest", "scan", "--station", "ST07", str(inbox), "--json", env=env)
    assert scan.exit_code == 0, scan.stderr
    assert findings(env)["station ST07"]["status"] == "ok"
    engine = create_engine(central["db"])
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "update recordings set ingested_at = ingested_at - interval '30 hours' "
                    "where station_id = 'ST07'"
                )
            )
    finally:
        engine.dispose()
    stale = findings(env)["station ST07"]
    assert stale["status"] == "problem" and "evidence-station@ST07" in stale["hint"]
    assert stale["data"]["age_hours"] >= 30


@pytest.mark.s3
@pytest.mark.postgres
def test_a_wrong_mode_key_file_on_the_central_machine(central) -> None:
    kek = Path(central["base"]) / "data" / "keys" / "kek.key"
    os.chmod(kek, 0o604)
    try:
        code, report = doctor(env=central["env"]("curator"))
    finally:
        os.chmod(kek, 0o600)
    assert code == 1
    assert by_check(report)["keys.kek"]["status"] == "problem"


# --- the upgrade path, as the README gives it --------------------------------------------------


def readme_line(prefix: str) -> str:
    lines = [
        ln.strip() for ln in (ROOT / "README.md").read_text().splitlines() if ln.strip().startswith(prefix)
    ]
    assert len(lines) == 1, f"the README should give one command starting {prefix!r}"
    return lines[0]


def test_the_readme_upgrade_path_from_the_first_schema(tmp_path: Path) -> None:
    """An installation left at the first schema: doctor says to back up and run init; the
    README's online backup makes a usable copy; init migrates; doctor is then green."""
    from alembic import command

    from catalog import schema
    from catalog.db import make_engine

    data = tmp_path / "data"
    data.mkdir()
    catalog = data / "catalog.sqlite3"
    engine = make_engine(f"sqlite:///{catalog}")
    command.upgrade(schema.alembic_config(engine), "0001")
    engine.dispose()
    env = {"EVIDENCE_DATA_DIR": str(data)}
    code, report = doctor("--quick", env=env)
    found = by_check(report)["catalog"]
    assert code == 1 and "revision 0001" in found["message"]
    assert "back up the catalog" in found["hint"] and "evidence init" in found["hint"]

    backup = tmp_path / "catalog-backup.sqlite3"
    line = readme_line('python3 -c "import sqlite3')
    argv = shlex.split(
        line.replace("/var/lib/evidence/catalog.sqlite3", str(catalog)).replace(
            "/var/backups/evidence/catalog.sqlite3", str(backup)
        )
    )
    assert subprocess.run([sys.executable, *argv[1:]], timeout=60).returncode == 0
    copy = make_engine(f"sqlite:///{backup}")
    assert schema.current_revision(copy) == "0001"
    copy.dispose()

    init = invoke_evidence("init", "--json", env=env)
    assert init.exit_code == 0, init.stderr
    assert json.loads(init.stdout)["schema_before"] == "0001"
    code, report = doctor("--quick", env=env)
    assert code == 0, report


def test_an_idle_chain_is_not_an_overdue_checkpoint(embedded: dict[str, str]) -> None:
    """The timer signs nothing when nothing happened since the last checkpoint: an old
    checkpoint is then up to date, not overdue."""
    assert invoke_evidence("audit", "checkpoint", "--json", env=embedded).exit_code == 0
    config = Path(embedded["EVIDENCE_DATA_DIR"]).parent / "late.toml"
    config.write_text("[doctor]\ncheckpoint_days = 0.00001\n")
    checks = by_check(doctor(env=embedded, config=config)[1])
    assert checks["checkpoint"]["status"] == "ok", checks["checkpoint"]
    assert invoke_evidence("case", "open", "开城管罚立〔2020〕9号", "--json", env=embedded).exit_code == 0
    time.sleep(1.0)  # past the cadence of 0.864 s
    checks = by_check(doctor(env=embedded, config=config)[1])
    assert checks["checkpoint"]["status"] == "problem"  # an event waits unsigned past the cadence
