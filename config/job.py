"""`evidence-job`: runs one scheduled command so that cron reports only failures.

    evidence-job --log /var/log/evidence/retention.log -- evidence retention run --json

The command's output (stdout and stderr together) is appended to the log file after a
one-line JSON header (time, job, exit code, seconds), whatever the outcome. On success
nothing is printed, so cron mails nothing; on failure the header and the output are printed
and the command's exit code returned, so cron mails exactly the failures (set ``MAILTO``).
The output goes through a temporary file, not memory, so a long report costs no RAM. A
SIGTERM or SIGINT is passed on to the command, which stops as it would on its own.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import click


def run_job(command: list[str], log: Path | None, name: str) -> int:
    started, clock = datetime.now(UTC), time.monotonic()
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            output.write(f"cannot start {shlex.join(command)}: {exc.strerror}\n".encode())
            code = 127
        else:
            forward = lambda signum, _frame: proc.send_signal(signum)  # noqa: E731
            previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
            try:
                code = proc.wait()
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)
        header = json.dumps(
            {
                "time": started.isoformat(),
                "job": name,
                "command": shlex.join(command),
                "exit": code,
                "seconds": round(time.monotonic() - clock, 3),
            },
            ensure_ascii=False,
        )
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:
                out.write(header.encode() + b"\n")
                _copy(output, out)
        if code != 0:
            sys.stdout.write(f"evidence job {name} failed with exit code {code}\n{header}\n")
            sys.stdout.flush()
            _copy(output, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    return code


def _copy(source, sink) -> None:
    source.seek(0)
    while chunk := source.read(1 << 16):
        sink.write(chunk)
    source.seek(0, 2)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log", "log", type=click.Path(path_type=Path), help="Append every run's output to this file.")
@click.option("--name", help="The job's name in the log and the failure report. Default: the command.")
@click.argument("command", nargs=-1, required=True)
def main(log: Path | None, name: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND (after `--`): silent on success, its output on failure (for cron)."""
    sys.exit(run_job(list(command), log, name or shlex.join(command)))


if __name__ == "__main__":  # pragma: no cover
    main()
