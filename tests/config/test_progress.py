"""Progress of the long commands: on a terminal, files and bytes with totals and the rate,
moving within a large file; nothing at all when stderr is not a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests import synthetic
from tests.conftest import ROOT, run_evidence

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the command with stderr on a pseudo-terminal; (exit code, stdout, what the
    terminal showed)."""
    main, secondary = pty.openpty()
    full = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")} | env | {"COLUMNS": "160"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.cli", *args],
        env=full,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out = proc.stdout.read().decode() if proc.stdout else ""
    os.close(main)
    return proc.wait(timeout=120), out, ANSI.sub("", shown.decode(errors="replace"))


def _settled(folder: Path) -> None:
    """Written a minute ago: the scan need not wait for the files to settle."""
    for path in folder.iterdir():
        past = path.stat().st_mtime - 60
        os.utime(path, (past, past))


def test_scan_and_verify_show_files_and_bytes_on_a_terminal_only(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    # Larger than one read (4 MiB), so the bar moves within it.
    big = synthetic.make_video(
        inbox / "A123456@202011050850560000.mp4", seconds=2, size="1280x720", bitrate="30M"
    )
    _settled(inbox)
    total = sum(p.stat().st_size for p in inbox.iterdir())
    assert big.stat().st_size > 5 << 20
    env = {
        "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
        "EVIDENCE_UNIT": "KZCG",
    }
    assert run_evidence("init", env=env).returncode == 0
    code, out, shown = _on_a_terminal("ingest", "scan", "--station", "ST01", str(inbox), env=env)
    assert code == 0 and "archived 1" in out
    final = shown.rstrip().splitlines()[-1]
    assert "station ST01" in final and "1/1 files" in final
    assert f"{total / 1e6:.1f}/{total / 1e6:.1f} MB" in final  # bytes done of total
    assert re.search(r"[0-9.]+ [kMG]?B/s", final)  # the rate
    code, out, shown = _on_a_terminal("verify", env=env)
    assert code == 0 and "checked" in out
    assert re.search(r"fixity .* \d+/\d+ files .*MB", shown.rstrip().splitlines()[-1])
    # Not a terminal: nothing but the result.
    quiet = run_evidence("verify", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_the_pipeline_reports_every_chunk_it_reads(tmp_path: Path) -> None:
    from config.app import App
    from config.settings import load_settings

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    big = synthetic.make_video(
        inbox / "A123456@202011050850560000.mp4", seconds=2, size="1280x720", bitrate="30M"
    )
    _settled(inbox)
    settings, _ = load_settings(
        None,
        {
            "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
            "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
            "EVIDENCE_UNIT": "KZCG",
        },
    )
    app = App(settings, actor="station:ST01")
    app.init()
    pipeline = app.pipeline("ST01")
    chunks: list[int] = []
    pipeline.on_bytes = chunks.append
    size = big.stat().st_size
    assert len(pipeline.scan([inbox]).archived) == 1
    assert len(chunks) >= 2 and sum(chunks) == size  # moved within the file, to its end
    app.close()
