"""`evidence ingest ...`, `devices assign` and `stations status`: archiving recorder files
from docking-station folders, who carries which recorder, and station health."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
from rich.table import Table

from archive import checkpoints
from catalog.times import local_iso, parse_user_time

from ..app import App
from ..progress import Transfer, transfer
from .base import emit, err, get_app, json_option, out


def _folders(app: App, station: str, dirs: tuple[Path, ...]) -> list[Path]:
    configured = app.settings.station(station)
    folders = list(dirs) or [Path(f) for f in (configured.folders if configured else [])]
    if not folders:
        raise click.UsageError(
            f"no folders to watch for station {station}: give DIR... or [[stations]] folders in the settings"
        )
    for folder in folders:
        if not folder.is_dir():
            raise click.UsageError(f"{folder} is not a folder")
    return [f.resolve() for f in folders]


def _fault_hook():
    """Test-suite fault injection: EVIDENCE_TEST_STOP_AT=STEP parks the process at STEP
    (hashed, reserved, stored, committed, derived, moved) so a test can kill -9 it there."""
    step = os.environ.get("EVIDENCE_TEST_STOP_AT")
    if not step:
        return None

    def hook(name: str) -> None:
        if name == step:
            click.echo(f"STOPPED AT {name}", err=True)
            while True:
                time.sleep(60)

    return hook


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


@click.group("ingest")
def ingest_group() -> None:
    """Archive recorder files from docking-station folders."""


@ingest_group.command("scan")
@click.option("--station", required=True, metavar="ID", help="Station id (ASCII, used in archive numbers).")
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--no-wait", is_flag=True, help="Skip files written in the last few seconds instead of waiting for them."
)
@json_option
@click.pass_context
def ingest_scan(
    ctx: click.Context, station: str, dirs: tuple[Path, ...], no_wait: bool, as_json: bool
) -> None:
    """One pass over DIR...: archive every complete file, then exit (cron, catching up).
    Exit 1 when anything was quarantined or failed."""
    app = get_app(ctx).require_catalog()
    folders = _folders(app, station, dirs)
    pipeline = app.pipeline(station, fault_hook=_fault_hook())
    with transfer(err, f"station {station}", quiet=as_json) as shown:
        if isinstance(shown, Transfer):
            work = [p for f in folders for p in pipeline.candidates(f)]
            shown.plan(len(work), sum(_size(p) for p in work))
            pipeline.on_bytes = shown.read
        report = pipeline.scan(folders, wait=not no_wait, progress=lambda _o: shown.file_done())

    def human() -> None:
        out.print(
            f"archived {len(report.archived)} ({len(report.damaged)} damaged), "
            f"duplicates {len(report.duplicates)}, quarantined {len(report.quarantined)}, "
            f"failed {len(report.failed)}, waiting {len(report.waiting)}, "
            f"left in place {len(report.left_in_place)}",
            highlight=False,
        )
        for number in report.archived:
            out.print(
                f"  archived    {number}" + ("  (damaged)" if number in report.damaged else ""),
                highlight=False,
            )
        for d in report.duplicates:
            out.print(f"  duplicate   {d['path']} = {d['archive_no']}", highlight=False, markup=False)
        for q in report.quarantined:
            out.print(f"  quarantined {q['path']}: {q['reason']}", highlight=False, markup=False)
        for f in report.failed:
            out.print(f"  failed      {f['path']}: {f['reason']}", highlight=False, markup=False)
        for left in report.left_in_place:
            out.print(
                f"  left        {left['path']} ({left['archive_no'] or 'no number'}): {left['reason']}",
                highlight=False,
                markup=False,
            )

    emit(as_json, report.to_json(), human)
    if not report.ok:
        ctx.exit(1)


@ingest_group.command("watch")
@click.option("--station", required=True, metavar="ID", help="Station id.")
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--polling",
    is_flag=True,
    default=None,
    help="Poll instead of inotify (network mounts, where inotify sees nothing).",
)
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on PORT ([ingest] metrics_port).")
@click.option(
    "--metrics-address",
    metavar="ADDRESS",
    help="Address the metrics listen on ([ingest] metrics_address, default 127.0.0.1).",
)
@click.pass_context
def ingest_watch(
    ctx: click.Context,
    station: str,
    dirs: tuple[Path, ...],
    polling: bool | None,
    metrics_port: int | None,
    metrics_address: str | None,
) -> None:
    """The station daemon: archives files as they arrive, rescans periodically, logs JSON
    lines with --log-format json. Stops cleanly on SIGTERM or Ctrl-C."""
    import signal
    from datetime import timedelta

    from ingest.metrics import Metrics
    from ingest.watcher import StationWatcher

    app = get_app(ctx).require_catalog()
    folders = _folders(app, station, dirs)
    configured = app.settings.station(station)
    ing = app.settings.ingest
    metrics = Metrics(station)
    port = metrics_port if metrics_port is not None else ing.metrics_port
    if port:
        metrics.serve(port, metrics_address or ing.metrics_address)
    if polling is None:
        polling = bool(configured and configured.polling)
    watcher = StationWatcher(
        app.pipeline(station, fault_hook=_fault_hook()),
        folders,
        polling=polling,
        rescan_seconds=ing.rescan_seconds,
        stale_after=timedelta(hours=ing.stale_after_hours),
        metrics=metrics,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: watcher.stop.set())
    watcher.run()


@click.group("devices")
def devices_group() -> None:
    """Recorders (执法记录仪) and who carries them."""


@devices_group.command("assign")
@click.argument("serial")
@click.argument("officer")
@click.option("--from", "valid_from", required=True, metavar="TIME", help="Start of the assignment.")
@click.option("--to", "valid_to", metavar="TIME", help="End of the assignment (open if not given).")
@json_option
@click.pass_context
def devices_assign(
    ctx: click.Context, serial: str, officer: str, valid_from: str, valid_to: str | None, as_json: bool
) -> None:
    """Record that OFFICER (certificate number) carries recorder SERIAL; recordings whose file
    names carry no officer get theirs from this."""
    from archive.accounts import assign_device

    app = get_app(ctx).require_catalog()
    zone = app.settings.zone
    start = parse_user_time(valid_from, zone)
    end = parse_user_time(valid_to, zone, end_of_day=True) if valid_to else None
    assign_device(app.services, serial, officer, valid_from=start, valid_to=end, zone=zone)
    data = {"device": serial, "officer": officer, "from": local_iso(start, zone), "to": local_iso(end, zone)}
    emit(
        as_json,
        data,
        lambda: out.print(
            f"{serial} -> {officer} from {data['from']}" + (f" to {data['to']}" if end else ""),
            highlight=False,
        ),
    )


@click.group("stations")
def stations_group() -> None:
    """Docking-station health."""


@stations_group.command("status")
@json_option
@click.pass_context
def stations_status(ctx: click.Context, as_json: bool) -> None:
    """Per station: last successful ingest, backlog, failures; devices not docked for a
    while; recordings archived more than 24 hours after they ended (late docking).
    Exit 1 when a station is stale or failing."""
    from datetime import timedelta

    from catalog.health import station_status

    app = get_app(ctx).require_catalog()
    ing, zone = app.settings.ingest, app.settings.zone
    with app.reader_sessions() as session:
        status = station_status(
            session,
            now=app.now(),
            stale_after=timedelta(hours=ing.stale_after_hours),
            device_absent=timedelta(hours=ing.device_absent_hours),
        )
        # Trusted time: checkpoints still waiting for their token (a TSA that was down).
        status["unstamped_checkpoints"] = (
            [n for n, _, _, token in checkpoints.stamped(session) if token is None] if app.tsa else []
        )

    def iso(value):
        return local_iso(value, zone) if value else None

    for s in status["stations"]:
        s["last_success"] = iso(s["last_success"])
    for d in status["absent_devices"]:
        d["last_docked"] = iso(d["last_docked"])
    for r in status["late"]:
        r["ended"], r["archived"] = iso(r["ended"]), iso(r["archived"])

    def human() -> None:
        table = Table("station", "last success", "stale", "backlog", "failing", "quarantined")
        for s in status["stations"]:
            table.add_row(
                s["station"],
                s["last_success"] or "never",
                "YES" if s["stale"] else "",
                str(sum(s["backlog"].values())),
                str(s["failing"]),
                str(s["quarantined"]),
            )
        out.print(table)
        for d in status["absent_devices"]:
            out.print(f"device {d['device']} not docked since {d['last_docked']}", highlight=False)
        for r in status["late"]:
            out.print(f"late: {r['archive_no']} archived {r['hours']} h after it ended", highlight=False)
        if status["derive_jobs"]:
            jobs = ", ".join(f"{state} {n}" for state, n in sorted(status["derive_jobs"].items()))
            out.print(f"derive jobs: {jobs}", highlight=False)
        if status["unstamped_checkpoints"]:
            out.print(
                f"checkpoints without a time-stamp yet (asked for again at each checkpoint run): "
                f"{status['unstamped_checkpoints']}",
                highlight=False,
            )
        for j in status["derive_failed"]:
            out.print(
                f"derive failed: {j['archive_no']} {j['kind']} after {j['failures']} tries: {j['reason']}",
                highlight=False,
                markup=False,
            )

    emit(as_json, status, human)
    if any(s["stale"] or s["failing"] for s in status["stations"]) or status["derive_failed"]:
        ctx.exit(1)


def register(main: click.Group) -> None:
    for group in (ingest_group, devices_group, stations_group):
        main.add_command(group)
