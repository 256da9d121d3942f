"""The `evidence` command as scripts call it: real processes, JSON and exit codes."""

import hashlib
import json
import re
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests import synthetic
from tests.conftest import run_evidence

CASE_NO = "开城管罚立〔2020〕42号"


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {
        "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": db_url,
        "EVIDENCE_UNIT": "KZCG",
    }


@pytest.fixture
def ready(env: dict[str, str]) -> dict[str, str]:
    result = run_evidence("init", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return env


def ok_json(*args: str, env: dict[str, str]):
    result = run_evidence(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_init_is_idempotent_and_creates_a_private_key(env: dict[str, str], tmp_path: Path) -> None:
    first = ok_json("init", env=env)
    assert first["schema_before"] is None and first["signing_key_created"] is True
    key = Path(first["signing_key"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    second = ok_json("init", env=env)
    assert second["schema_before"] == second["schema"] and second["signing_key_created"] is False
    assert second["key_id"] == first["key_id"]


def test_commands_before_init_say_what_to_run(env: dict[str, str]) -> None:
    result = run_evidence("case", "list", "--json", env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert "run `evidence init`" in result.stderr


def test_case_open_show_by_either_name(ready: dict[str, str]) -> None:
    opened = ok_json("case", "open", CASE_NO, "--title", "占道经营", "--opened", "2020-11-05", env=ready)
    assert opened == {"number": CASE_NO, "case_key": "KZCG-2020-0001"}
    for name in (CASE_NO, "KZCG-2020-0001"):
        shown = ok_json("case", "show", name, env=ready)
        assert {k: shown["case"][k] for k in ("number", "case_key", "title", "status")} == {
            "number": CASE_NO,
            "case_key": "KZCG-2020-0001",
            "title": "占道经营",
            "status": "open",
        }
        assert shown["items"] == []
    listed = ok_json("case", "list", env=ready)
    assert [c["case_key"] for c in listed] == ["KZCG-2020-0001"]


def test_duplicate_and_unknown_cases_exit_2(ready: dict[str, str]) -> None:
    ok_json("case", "open", CASE_NO, env=ready)
    again = run_evidence("case", "open", CASE_NO, "--json", env=ready)
    assert again.returncode == 2 and "exists already" in again.stderr and again.stdout == ""
    unknown = run_evidence("case", "show", "案〔2020〕1号", env=ready)
    assert unknown.returncode == 2 and "no case is named" in unknown.stderr


def test_bad_option_values_exit_2(ready: dict[str, str]) -> None:
    result = run_evidence("case", "open", "X", "--opened", "yesterday", env=ready)
    assert result.returncode == 2 and "not a date" in result.stderr


def test_audit_log_checkpoint_verify(ready: dict[str, str]) -> None:
    key = ok_json("case", "open", CASE_NO, env=ready)["case_key"]
    ok_json("case", "open", "another", env=ready)
    cp = ok_json("audit", "checkpoint", env=ready)
    assert cp["n"] == 1 and cp["seq"] == 2 and len(cp["head"]) == 64
    log = ok_json("audit", "log", env=ready)
    assert [e["action"] for e in log] == ["case_opened", "case_opened", "checkpoint"]
    assert set(log[0]) >= {"seq", "time", "actor", "action", "subject", "details"}
    assert log[0]["time"].endswith("+08:00")  # printed in the settings' zone, with offset
    (only,) = ok_json("audit", "log", "--subject", key, env=ready)
    assert only["seq"] == 1 and only["details"]["number"] == CASE_NO
    # Without --json, as the pages show it: names, labelled fields, local time to the second.
    text = run_evidence("audit", "log", "--subject", key, env=ready).stdout
    assert "立案登记" in text and f"案号: {CASE_NO}" in text and "{" not in text
    assert re.search(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\b", text)
    assert ok_json("audit", "verify", env=ready) == {
        "events": 3,
        "ok": True,
        "first_bad_event": None,
        "checkpoints": 1,
        "signers": [cp["key"]],
        "problems": [],
    }


def test_actor_is_recorded(ready: dict[str, str]) -> None:
    result = run_evidence("--actor", "station:ST01", "case", "open", "A-1", "--json", env=ready)
    assert result.returncode == 0, result.stderr
    (event,) = ok_json("audit", "log", env=ready)
    assert event["actor"] == "station:ST01"


def test_tampering_makes_audit_verify_exit_1(ready: dict[str, str]) -> None:
    for n in range(3):
        ok_json("case", "open", f"案〔2020〕{n}号", env=ready)
    engine = create_engine(ready["EVIDENCE_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("update custody_events set actor = 'mallory' where seq = 2"))
    engine.dispose()
    result = run_evidence("audit", "verify", "--json", env=ready)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["first_bad_event"] == 2 and report["events"] == 3
    human = run_evidence("audit", "verify", env=ready)
    assert human.returncode == 1 and "chain broken at event 2" in human.stderr


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = {
        "EVIDENCE_DATA_DIR": str(tmp_path),
        "EVIDENCE_S3_SECRET_KEY": "very-secret",
        "EVIDENCE_DATABASE_URL": "postgresql+psycopg://ev:pw123@db:5432/e",
    }
    for args in (["config", "show", "--json"], ["config", "show"]):
        result = run_evidence(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert "very-secret" not in result.stdout and "pw123" not in result.stdout
    data = json.loads(run_evidence("config", "show", "--json", env=env).stdout)
    assert data["storage"]["secret_key"] == "********"
    assert data["catalog"]["database_url"] == "postgresql+psycopg://ev:********@db:5432/e"


def test_bad_settings_file_exits_2_naming_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "evidence.toml"
    config.write_text('[storage]\nlockmode = "GOVERNANCE"\n')
    result = run_evidence(
        "--config", str(config), "config", "show", "--json", env={"EVIDENCE_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "storage.lockmode" in result.stderr and str(config) in result.stderr


def test_unknown_environment_variable_warns_on_stderr_only(tmp_path: Path) -> None:
    result = run_evidence(
        "config", "show", "--json", env={"EVIDENCE_DATA_DIR": str(tmp_path), "EVIDENCE_DATABSE_URL": "x"}
    )
    assert result.returncode == 0
    assert "EVIDENCE_DATABSE_URL" in result.stderr
    json.loads(result.stdout)  # stdout stays one JSON document


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_evidence("case", "frobnicate", env={"EVIDENCE_DATA_DIR": str(tmp_path)}).returncode == 2
    assert run_evidence("--help").returncode == 0


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    env = {
        "EVIDENCE_DATA_DIR": str(tmp_path),
        "EVIDENCE_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/none",
    }
    result = run_evidence("case", "list", env=env)
    assert result.returncode == 2 and "cannot reach the catalog database" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.s3
def test_init_and_records_on_a_real_s3_store(rgw, tmp_path: Path, sqlite_url: str) -> None:
    """The same commands against Ceph RGW: bucket with object lock, case events, checkpoints."""
    from tests.conftest import s3_store_for

    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    access, secret = rgw.users["admin"]
    env = {
        "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": sqlite_url,
        "EVIDENCE_STORAGE_URL": f"s3://{rgw.endpoint}/{bucket}?secure=false",
        "EVIDENCE_S3_ACCESS_KEY": access,
        "EVIDENCE_S3_SECRET_KEY": secret,
    }
    assert ok_json("init", env=env)["storage"] == f"s3://{rgw.endpoint}/{bucket}"
    ok_json("init", env=env)  # idempotent with an existing bucket
    key = ok_json("case", "open", CASE_NO, env=env)["case_key"]
    ok_json("audit", "checkpoint", env=env)
    store = s3_store_for(rgw, bucket=bucket)
    keys = sorted(o.key for o in store.list())
    fp = ok_json("audit", "key", env=env)["fingerprint"]
    assert keys == [
        f"cases/{key}/events/000001.json",
        "custody/checkpoints/00000001/checkpoint.json",
        "custody/checkpoints/00000001/checkpoint.sig",
        "custody/checkpoints/00000001/events.jsonl",
        "custody/checkpoints/00000001/links.tsv",
        f"custody/keys/{fp}.pem",
    ]
    assert ok_json("audit", "verify", env=env)["ok"] is True  # compared with the bucket's checkpoints
    assert store.stat(keys[0]).retention.mode == "COMPLIANCE"
    shown = run_evidence("config", "show", "--json", env=env)
    assert secret not in shown.stdout and access not in shown.stdout


def test_a_lost_key_file_is_an_error_never_replaced(ready: dict[str, str], tmp_path: Path) -> None:
    kek = tmp_path / "data" / "keys" / "kek.key"
    saved = kek.read_bytes()
    kek.unlink()
    result = run_evidence("init", env=ready)
    assert result.returncode == 2 and "restore it from its backup" in result.stderr
    assert not kek.exists()
    kek.write_bytes(b"0" * 64 + b"\n")
    kek.chmod(0o600)
    wrong = run_evidence("init", env=ready)
    assert wrong.returncode == 2 and "restore the right key file" in wrong.stderr
    kek.write_bytes(saved)
    assert run_evidence("init", env=ready).returncode == 0


def _ingest_one(env: dict[str, str], tmp_path: Path) -> str:
    """A recording archived through the service, as the ingest pipeline will do."""
    from datetime import datetime

    from archive.digest import hash_file
    from archive.originals import OriginalFacts, store_original
    from catalog.recordings import reserve_archive_number
    from config.app import App
    from config.settings import load_settings

    settings, _ = load_settings(None, env)
    app = App(settings, actor="station:ST01")
    path = tmp_path / "A123456@202011050850560000.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000)
    now = datetime.now(UTC)
    number = reserve_archive_number(
        app.engine, settings.formats, settings.zone, unit="KZCG", station="ST01", now=now
    )
    store_original(
        app.services.at(now),
        path,
        hash_file(path),
        OriginalFacts(
            station="ST01", unit="KZCG", kind="video", original_name=path.name, start_time=now, duration_s=2.0
        ),
        archive_no=number,
    )
    app.close()
    return number


def test_add_doc_link_and_hold_keep_the_contract(ready: dict[str, str], tmp_path: Path) -> None:
    ok_json("case", "open", CASE_NO, "--opened", "2020-11-05", env=ready)
    scan = tmp_path / "立案审批表.pdf"
    scan.write_bytes(b"%PDF-1.4 scan")
    doc = ok_json(
        "case",
        "add-doc",
        CASE_NO,
        str(scan),
        "--type",
        "立案审批表",
        "--date",
        "2020-11-05",
        "--number",
        "开城管立〔2020〕42号",
        env=ready,
    )
    assert doc == {
        "item_no": "KZCG-2020-0001-001D",
        "sha256": hashlib.sha256(b"%PDF-1.4 scan").hexdigest(),
        "size": 13,
    }
    number = _ingest_one(ready, tmp_path)
    linked = ok_json("case", "link", "KZCG-2020-0001", number, env=ready)
    assert linked == {"linked": [{"archive_no": number, "item_no": "KZCG-2020-0001-002V"}]}
    assert ok_json("hold", "set", CASE_NO, "--reason", "复议", env=ready) == {"subjects": ["KZCG-2020-0001"]}
    assert ok_json("hold", "release", "KZCG-2020-0001", "--reason", "结案", env=ready) == {
        "subjects": ["KZCG-2020-0001"]
    }
    bad = run_evidence("case", "add-doc", CASE_NO, str(scan), "--type", "便条", env=ready)
    assert bad.returncode == 2 and "not a known document type" in bad.stderr
    # Page images of the PDF records: a real one is drawn, the scan that is no PDF inside is named.
    real = synthetic.make_pdf(tmp_path / "检查笔录.pdf", "现场检查（勘验）笔录", ["当事人：张某"], pages=2)
    ok_json("case", "add-doc", CASE_NO, str(real), "--type", "现场检查（勘验）笔录", env=ready)
    drawn = run_evidence("case", "pages", CASE_NO, "--json", env=ready)
    assert drawn.returncode == 1, drawn.stderr
    rows = {r["item_no"]: r for r in json.loads(drawn.stdout)["documents"]}
    assert rows["KZCG-2020-0001-003D"] == {"item_no": "KZCG-2020-0001-003D", "pages": 2}
    assert (
        rows["KZCG-2020-0001-001D"]["pages"] == 0
        and "could not be drawn" in rows["KZCG-2020-0001-001D"]["error"]
    )
    missing = run_evidence("hold", "release", number, "--reason", "x", env=ready)
    assert missing.returncode == 2 and "not on hold" in missing.stderr
    assert ok_json("audit", "verify", env=ready)["ok"] is True


RECORDING_FIELDS = {
    "archive_no",
    "kind",
    "sha256",
    "size",
    "original_name",
    "station",
    "device",
    "officer",
    "start_time",
    "duration_s",
    "status",
    "proxy_status",
    "damaged",
    "important",
    "protected",
    "cases",
}


def test_replay_recordings_and_close_keep_the_contract(ready: dict[str, str], tmp_path: Path) -> None:
    ok_json("case", "open", CASE_NO, "--opened", "2020-11-05", env=ready)
    number = _ingest_one(ready, tmp_path)
    listed = ok_json("recordings", "list", "--station", "ST01", env=ready)
    assert [r["archive_no"] for r in listed] == [number] and RECORDING_FIELDS <= set(listed[0])
    assert listed[0]["status"] == "archived" and listed[0]["proxy_status"] == "none"
    assert ok_json("recordings", "list", "--unlinked", env=ready)[0]["archive_no"] == number
    ok_json("case", "link", CASE_NO, number, env=ready)
    assert ok_json("recordings", "list", "--unlinked", env=ready) == []
    shown = ok_json("recordings", "show", number, env=ready)
    assert RECORDING_FIELDS | {"derivatives", "sources", "custody"} <= set(shown)
    assert shown["cases"] == [
        {"case": CASE_NO, "case_key": "KZCG-2020-0001", "item_no": "KZCG-2020-0001-001V"}
    ]
    assert [e["action"] for e in shown["custody"]] == ["ingested", "stored", "linked"]
    replayed = ok_json("replay", CASE_NO, "--verify", env=ready)
    assert replayed["case"]["case_key"] == "KZCG-2020-0001"
    (item,) = replayed["items"]
    assert {"item_no", "kind", "time", "sha256", "archive_no", "verified"} <= set(item)
    assert item["verified"] == "ok" and item["kind"] == "video"
    unknown = run_evidence("recordings", "show", "KZCG-19990101-ST01-0001", env=ready)
    assert unknown.returncode == 2 and "no recording" in unknown.stderr
    closed = ok_json("case", "close", CASE_NO, "--date", "2021-01-10", env=ready)
    assert closed == {"number": CASE_NO, "case_key": "KZCG-2020-0001", "closed": "2021-01-10"}
    assert ok_json("case", "show", CASE_NO, env=ready)["case"]["status"] == "closed"
    again = run_evidence("case", "link", CASE_NO, number, env=ready)
    assert again.returncode == 2 and "open cases only" in again.stderr


def test_gaps_coverage_and_the_annual_report(ready: dict[str, str], tmp_path: Path) -> None:
    ok_json("case", "open", CASE_NO, "--opened", "2020-11-05", env=ready)
    number = _ingest_one(ready, tmp_path)  # recorded now, by no known officer
    scan = tmp_path / "笔录.pdf"
    scan.write_bytes(b"%PDF-1.4")
    ok_json(
        "case",
        "add-doc",
        CASE_NO,
        str(scan),
        "--type",
        "询问笔录",
        "--date",
        "2020-11-05T09:00:00",
        "--officer",
        "JX0227",
        env=ready,
    )
    ok_json("case", "link", CASE_NO, number, env=ready)
    gaps = run_evidence("case", "gaps", CASE_NO, "--json", env=ready)
    assert gaps.returncode == 1
    found = {g["item_no"]: g["missing"] for g in json.loads(gaps.stdout)["gaps"]}
    assert found == {"KZCG-2020-0001-001D": "recording", "KZCG-2020-0001-002V": "document"}
    coverage = run_evidence(
        "report", "coverage", "--from", "2020-01-01", "--to", "2020-12-31", "--json", env=ready
    )
    assert coverage.returncode == 1 and json.loads(coverage.stdout)["with_gaps"] == 1
    year = datetime.now().year
    chart = tmp_path / "chart.png"
    data = ok_json("report", "--year", str(year), "--chart", str(chart), env=ready)
    assert data["recordings"]["count"] == 1 and data["recordings"]["by_station"][0]["name"] == "ST01"
    assert sum(data["recordings"]["per_month"]) == 1
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    old = ok_json("report", "--year", "2020", env=ready)
    assert old["cases"] == {"opened": 1, "fully_covered": 0, "with_gaps": 1}
    csv_out = run_evidence("report", "--year", str(year), "--csv", env=ready)
    assert csv_out.returncode == 0 and "recordings,count,1" in csv_out.stdout


def test_verify_command_keeps_the_contract(ready: dict[str, str], tmp_path: Path) -> None:
    number = _ingest_one(ready, tmp_path)
    data = ok_json("verify", env=ready)
    assert data["checked"] == 2 and data["ok"] == 2 and data["problems"] == []
    assert ok_json("verify", "--sample", "1", env=ready)["checked"] == 1
    store = tmp_path / "data" / "store" / "objects"
    (store / "originals" / "stray.mp4").write_bytes(b"x")
    bad = run_evidence("verify", "--json", env=ready)
    assert bad.returncode == 1
    (problem,) = json.loads(bad.stdout)["problems"]
    assert problem == {
        "subject": "originals/stray.mp4",
        "problem": "orphan",
        "expected": "no object",
        "found": "1 bytes (not in the catalog)",
    }
    assert run_evidence("verify", "--all", "--sample", "2", env=ready).returncode == 2
    assert number


def test_catalog_rebuild_command(ready: dict[str, str], tmp_path: Path) -> None:
    ok_json("case", "open", CASE_NO, env=ready)
    ok_json("case", "link", CASE_NO, _ingest_one(ready, tmp_path), env=ready)
    ok_json("audit", "checkpoint", env=ready)
    target = f"sqlite:///{tmp_path / 'drill.sqlite3'}"
    data = ok_json("catalog", "rebuild", "--from-storage", "--database", target, env=ready)
    assert data["counts"]["recordings"] == 1 and data["counts"]["links"] == 1
    assert data["differences"] == [] and data["problems"] == []
    again = run_evidence("catalog", "rebuild", "--from-storage", "--database", target, env=ready)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_retention_commands_keep_the_contract(ready: dict[str, str], tmp_path: Path) -> None:
    number = _ingest_one(ready, tmp_path)
    plan = ok_json("retention", "plan", env=ready)
    assert set(plan) >= {"now", "due", "pending", "purged", "refused", "kept"} and plan["kept"] == 1
    later = ok_json("retention", "plan", "--now", "2040-01-01", env=ready)
    assert [(e["subject"], e["reason"]) for e in later["due"]] == [(number, "routine period over")]
    assert ok_json("recordings", "show", number, env=ready)["status"] == "archived"  # plan changed nothing
    run = ok_json("retention", "run", "--now", "2040-01-01", env=ready)
    assert [e["subject"] for e in run["due"]] == [number]
    assert ok_json("recordings", "show", number, env=ready)["status"] == "pending_deletion"
    # After the grace period the storage lock (at least a day from ingest) still refuses: exit 1.
    refused = run_evidence("retention", "run", "--now", "2040-02-01", "--json", env=ready)
    assert refused.returncode == 1
    (entry,) = json.loads(refused.stdout)["refused"]
    assert entry["subject"] == number and "storage refused" in entry["reason"]
    assert ok_json("retention", "restore", number, "--reason", "复核", env=ready) == {"restored": [number]}
    assert ok_json("recordings", "show", number, env=ready)["status"] == "archived"


def test_export_and_verify_package_keep_the_contract(ready: dict[str, str], tmp_path: Path) -> None:
    ok_json("case", "open", CASE_NO, env=ready)
    ok_json("case", "link", CASE_NO, _ingest_one(ready, tmp_path), env=ready)
    out_dir = tmp_path / "exports"
    exported = ok_json("export", CASE_NO, str(out_dir), "--zip", "--reason", "法院调取", env=ready)
    assert set(exported) >= {"path", "items", "bytes"} and exported["items"] == 1
    assert exported["pending"] is False and exported["checkpoint"] >= 1
    assert exported["path"].endswith(".zip")
    checked = ok_json("verify-package", exported["path"], env=ready)
    assert checked["ok"] is True and checked["problems"] == []
    needs_reason = run_evidence("export", CASE_NO, str(out_dir), env=ready)
    assert needs_reason.returncode == 2
    broken = tmp_path / "broken.zip"
    data = bytearray(Path(exported["path"]).read_bytes())
    data[len(data) // 3] ^= 0xFF
    broken.write_bytes(bytes(data))
    bad = run_evidence("verify-package", str(broken), "--json", env={})
    assert bad.returncode == 1 and json.loads(bad.stdout)["ok"] is False
