"""The deployment files as an administrator installs them: systemd units checked by Debian's
`systemd-analyze verify`, every crontab line's schedule and command, the logrotate snippet
through logrotate itself, and every `evidence` command line in them accepted by the command."""

from __future__ import annotations

import configparser
import logging
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.cli import main
from tests.conftest import ROOT

SYSTEMD = ROOT / "config" / "systemd"
CRONTAB = ROOT / "config" / "crontab.example"
LOGROTATE = ROOT / "config" / "logrotate.example"
INSTALLED = "/usr/local/bin/evidence"
JOBS = {"fixity", "checkpoint", "retention", "audit", "doctor"}


def evidence_exe() -> str:
    """The `evidence` the package installs (console script next to this Python)."""
    exe = Path(sys.executable).with_name("evidence")
    assert exe.exists(), f"{exe} missing: install the package (make venv)"
    return str(exe)


def units() -> dict[str, configparser.ConfigParser]:
    found = {}
    for path in sorted(SYSTEMD.iterdir()):
        parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
        parser.read(path)
        found[path.name] = parser
    return found


def assert_evidence_accepts(argv: list[str]) -> None:
    """The command line parses: every option and subcommand exists (`--help` at its end makes
    click check everything before it and exit 0; an unknown option exits 2). In this process,
    through the real parser; the group's callback sets up logging, which is put back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        done = CliRunner().invoke(main, [*argv, "--help"])
    finally:
        root.handlers[:], root.level = handlers, level
    assert done.exit_code == 0, f"evidence {shlex.join(argv)}: {done.output}"


def test_the_command_line_check_has_teeth() -> None:
    assert_evidence_accepts(["--actor", "cron:x", "retention", "run", "--json"])
    with pytest.raises(AssertionError, match="No such option"):
        assert_evidence_accepts(["retention", "run", "--jsn"])
    with pytest.raises(AssertionError, match="No such command"):
        assert_evidence_accepts(["audit", "checkpoints"])


# --- systemd ---------------------------------------------------------------------------------


def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze missing: install Debian's systemd package (.ci/system-deps.sh --test)"
    exe = evidence_exe()
    for path in SYSTEMD.iterdir():
        text = path.read_text()
        assert INSTALLED in text or path.suffix == ".timer", path.name
        (tmp_path / path.name).write_text(text.replace(INSTALLED, exe))
    names = sorted(p.name for p in tmp_path.iterdir()) + ["evidence-station@ST01.service"]
    done = subprocess.run([tool, "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # Warnings (an unknown key, a bad value ignored) go to stderr with a zero exit: none allowed.
    assert done.returncode == 0 and done.stderr == "", done.stderr
    # The check has teeth: a misspelt setting is reported.
    broken = tmp_path / "evidence-fixity.service"
    broken.write_text(broken.read_text().replace("IOSchedulingClass=idle", "IOSchedulingClass=idel"))
    done = subprocess.run(
        [tool, "verify", broken.name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert "IO scheduling class" in done.stderr


def test_each_job_has_its_own_timer_and_none_depends_on_another() -> None:
    found = units()
    for job in JOBS:
        service, timer = found[f"evidence-{job}.service"], found[f"evidence-{job}.timer"]
        assert service["Service"]["Type"] == "oneshot"
        assert "ExecStartPost" not in service["Service"], "a job hidden behind another one"
        assert timer["Timer"]["OnCalendar"] and timer["Timer"]["Persistent"] == "true"
        others = {f"evidence-{o}.service" for o in JOBS - {job}}
        for key in ("After", "Requires", "Wants", "BindsTo", "Requisite"):
            assert not others & set(service["Unit"].get(key, "").split()), f"{job} {key}"
    assert found["evidence-audit.timer"]["Timer"]["OnCalendar"].startswith("Sun ")
    assert "audit verify" in found["evidence-audit.service"]["Service"]["ExecStart"]
    assert "audit checkpoint" in found["evidence-checkpoint.service"]["Service"]["ExecStart"]
    # The checkpoint's cadence is one line to change.
    checkpoint = (SYSTEMD / "evidence-checkpoint.timer").read_text()
    assert len(re.findall(r"^OnCalendar=", checkpoint, re.M)) == 1


def test_every_unit_is_hardened_and_fixity_runs_at_idle_priority() -> None:
    for name, unit in units().items():
        if not name.endswith(".service"):
            continue
        service = unit["Service"]
        assert service["User"] == "evidence", name
        assert service["NoNewPrivileges"] == "yes", name
        assert service["ProtectSystem"] == "strict", name
        assert "/var/lib/evidence" in service["ReadWritePaths"], name
        assert service["PrivateTmp"] == service["ProtectHome"] == "yes", name
        assert service["CapabilityBoundingSet"] == "", name
    fixity = units()["evidence-fixity.service"]["Service"]
    assert fixity["IOSchedulingClass"] == "idle" and int(fixity["Nice"]) > 0
    station = units()["evidence-station@.service"]["Service"]
    assert "/srv/evidence/stations/%i" in station["ReadWritePaths"]


def test_every_evidence_command_in_the_units_parses() -> None:
    for name, unit in units().items():
        if unit.has_section("Service"):
            argv = shlex.split(unit["Service"]["ExecStart"].replace("%i", "ST01"))
            assert argv[0] == INSTALLED, name
            assert_evidence_accepts(argv[1:])


# --- cron and logrotate ----------------------------------------------------------------------

FIELD_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def valid_cron_field(field: str, low: int, high: int) -> bool:
    for part in field.split(","):
        match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
        if not match:
            return False
        numbers = [int(n) for n in match.groups()[1:3] if n is not None]
        if any(not low <= n <= high for n in numbers) or (match.group(4) and int(match.group(4)) == 0):
            return False
    return True


def cron_jobs() -> list[tuple[list[str], list[str]]]:
    jobs = []
    for line in CRONTAB.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.fullmatch(r"[A-Z_]+=\S*", line):
            continue  # an environment line
        fields = line.split(None, 5)
        assert len(fields) == 6, f"not a cron line: {line!r}"
        jobs.append((fields[:5], shlex.split(fields[5])))
    return jobs


def test_valid_cron_field_has_teeth() -> None:
    assert valid_cron_field("*/15", 0, 59) and valid_cron_field("1,30", 0, 59)
    assert not valid_cron_field("60", 0, 59) and not valid_cron_field("*/0", 0, 59)
    assert not valid_cron_field("Mon", 0, 7)


def test_every_crontab_line_has_a_valid_schedule_and_a_command_that_parses() -> None:
    text = CRONTAB.read_text()
    assert re.search(r"^MAILTO=", text, re.M) and re.search(r"^EVIDENCE_CONFIG=/", text, re.M)
    assert ">>" not in text and "2>&1" not in text, "output redirected away from cron's mail"
    jobs = cron_jobs()
    names = set()
    for schedule, argv in jobs:
        for field, (low, high) in zip(schedule, FIELD_RANGES, strict=True):
            assert valid_cron_field(field, low, high), f"{field} in {schedule}"
        assert argv[0] == "evidence-job", argv
        split = argv.index("--")
        names.add(argv[argv.index("--name") + 1])
        log = Path(argv[argv.index("--log") + 1])
        assert log.parent == Path("/var/log/evidence") and log.suffix == ".log"
        command = argv[split + 1 :]
        while command[0] in ("nice", "ionice"):  # `nice -n 10`, `ionice -c 3`
            assert shutil.which(command[0]), command[0]
            command = command[3:]
        assert command[0] == "evidence", argv
        assert_evidence_accepts(command[1:])
    assert names == JOBS


def test_logrotate_accepts_the_snippet(tmp_path: Path) -> None:
    tool = shutil.which("logrotate")
    assert tool, "logrotate missing: install Debian's logrotate package"
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "fixity.log").write_text('{"exit": 0}\n')
    # The account is root here (no evidence account on a test machine); the rest is as shipped.
    text = LOGROTATE.read_text().replace("/var/log/evidence", str(logs))
    text = text.replace("evidence adm", "root root")
    conf = tmp_path / "evidence"
    conf.write_text(text)
    done = subprocess.run(
        [tool, "--force", "--state", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (logs / "fixity.log.1").read_text() == '{"exit": 0}\n'  # rotated (compressed next time)
    assert (logs / "fixity.log").stat().st_size == 0 and (logs / "fixity.log").stat().st_mode & 0o777 == 0o640


# --- evidence-job ----------------------------------------------------------------------------


def job(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_evidence_job(*args, env=env)


def run_evidence_job(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")} | env
    return subprocess.run(
        [sys.executable, "-m", "config.job", *args],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_job_is_silent_on_success_and_reports_its_failure(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "doctor.log"
    env = {"EVIDENCE_DATA_DIR": str(tmp_path / "data")}
    evidence = [sys.executable, "-m", "config.cli"]
    done = job("--name", "hello", "--log", str(log), "--", sys.executable, "-c", "print('fine')", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert '"job": "hello", ' in log.read_text() and log.read_text().splitlines()[1] == "fine"

    # Not initialized: doctor finds problems and exits 1; the job prints them (cron mails them).
    failed = job("--name", "doctor", "--log", str(log), "--", *evidence, "doctor", env=env)
    assert failed.returncode == 1 and failed.stderr == ""
    assert failed.stdout.startswith("evidence job doctor failed with exit code 1\n")
    assert "PROBLEM   catalog: no catalog at" in failed.stdout
    assert "evidence doctor: problems" in failed.stdout  # stderr too
    assert "PROBLEM   catalog" in log.read_text()  # and it is logged as well
    assert log.read_text().count('"job": ') == 2


def test_a_job_that_cannot_start_is_reported(tmp_path: Path) -> None:
    done = job("--", str(tmp_path / "no-such-program"), env={})
    assert done.returncode == 127 and "cannot start" in done.stdout
