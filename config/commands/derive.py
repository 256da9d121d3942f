"""`evidence derive work`: a derive worker, on any machine with the catalog and a worker
credential (config/policies/worker.json)."""

from __future__ import annotations

import click

from .base import get_app, out


@click.group("derive")
def derive_group() -> None:
    """Derivative work queued by stations (`[ingest] derivatives = "queue"`)."""


@derive_group.command("work")
@click.option(
    "--kinds",
    default="proxy,poster,sheet,waveform",
    show_default=True,
    metavar="LIST",
    help="Comma-separated kinds this worker takes.",
)
@click.option("--once", is_flag=True, help="Do what is waiting now, then exit.")
@click.option("--lease-seconds", type=click.FloatRange(2, 3600), default=120.0, show_default=True)
@click.option(
    "--retry-seconds",
    type=click.FloatRange(0, 86400),
    default=300.0,
    show_default=True,
    help="Wait before a failed job is tried again (three failures: failed for good).",
)
@click.option("--poll-seconds", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True)
@click.pass_context
def derive_work(
    ctx: click.Context,
    kinds: str,
    once: bool,
    lease_seconds: float,
    retry_seconds: float,
    poll_seconds: float,
) -> None:
    """Claim derive jobs from the catalog and make them from the stored originals, one at a
    time, under a lease renewed while working (a killed worker's job is taken over when its
    lease lapses). Stops cleanly on SIGTERM or Ctrl-C after the job in hand."""
    import signal
    import threading
    from datetime import timedelta

    from ingest.worker import KINDS, new_owner, work_one

    wanted = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = sorted(set(wanted) - set(KINDS))
    if unknown or not wanted:
        raise click.BadParameter(f"kinds are {', '.join(KINDS)}; not {', '.join(unknown) or 'none'}")
    app = get_app(ctx).require_catalog()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    owner = new_owner()
    done = failed = 0
    while not stop.is_set():
        result = work_one(
            app.services,
            owner,
            kinds=wanted,
            lease=timedelta(seconds=lease_seconds),
            retry_after=timedelta(seconds=retry_seconds),
        )
        if result is None:
            if once:
                break
            stop.wait(poll_seconds)
            continue
        if result.state == "done":
            done += 1
        else:
            failed += 1
        out.print(
            f"{result.state:6} {result.archive_no} {result.kind}"
            + (f": {result.error}" if result.error else ""),
            highlight=False,
            markup=False,
        )
    out.print(f"derive jobs done {done}, failed {failed}", highlight=False)


def register(main: click.Group) -> None:
    main.add_command(derive_group)
