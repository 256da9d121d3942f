"""`evidence replay` and `evidence recordings ...`: a case's items in time order, and the
archived recordings themselves."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from catalog import custody
from catalog.times import local_iso, parse_user_time

from .base import emit, get_app, item_json, json_option, out, print_items


@click.command()
@click.argument("case")
@click.option(
    "--verify",
    "verify_items",
    is_flag=True,
    help="Re-read every original and document from storage and check its digest.",
)
@json_option
@click.pass_context
def replay(ctx: click.Context, case: str, verify_items: bool, as_json: bool) -> None:
    """Replay a case: written records and recordings in time order, with numbers, officers,
    digests, proxies and custody. With --verify, exit 1 unless every item is intact.
    The replay is recorded in the custody chain."""
    from verify.replay import replay as run_replay

    app = get_app(ctx).require_catalog()
    header, items = run_replay(app.services, case, verify=verify_items)
    rows = [item_json(i, app.settings.zone) for i in items]
    emit(as_json, {"case": header, "items": rows}, lambda: print_items(header, rows))
    if verify_items and any(i.verified != "ok" for i in items):
        ctx.exit(1)


@click.group("recordings")
def recordings_group() -> None:
    """Archived recordings."""


def _recording_json(row: dict[str, Any], zone) -> dict[str, Any]:
    for key in ("start_time", "ingested_at", "retain_until"):
        row[key] = local_iso(row.get(key), zone)
    return row


@recordings_group.command("list")
@click.option("--officer", metavar="NUMBER")
@click.option("--device", metavar="SERIAL")
@click.option("--station", metavar="ID")
@click.option("--since", metavar="TIME", help="Recordings that started at or after TIME.")
@click.option("--until", metavar="TIME", help="Recordings that started at or before TIME.")
@click.option("--unlinked", is_flag=True, help="Only recordings linked to no case.")
@click.option("--limit", type=int, default=1000, show_default=True)
@json_option
@click.pass_context
def recordings_list(
    ctx: click.Context, officer, device, station, since, until, unlinked: bool, limit: int, as_json: bool
) -> None:
    """List recordings in time order."""
    from catalog.views import find_recordings, recording_rows

    app = get_app(ctx).require_catalog()
    zone = app.settings.zone
    start = parse_user_time(since, zone) if since else None
    end = parse_user_time(until, zone, end_of_day=True) if until else None
    with app.reader_sessions() as session:
        found = find_recordings(
            session,
            officer=officer,
            device=device,
            station=station,
            since=start,
            until=end,
            unlinked=unlinked,
            limit=limit,
        )
        rows = [_recording_json(r, zone) for r in recording_rows(session, found)]

    def human() -> None:
        table = Table("archive no", "kind", "start", "officer", "device", "duration", "proxy", "flags")
        for r in rows:
            flags = " ".join(
                f
                for f, on in (
                    ("damaged", r["damaged"]),
                    ("important", r["important"]),
                    ("protected", r["protected"]),
                )
                if on
            )
            table.add_row(
                r["archive_no"],
                r["kind"],
                r["start_time"] or "",
                r["officer"] or "",
                r["device"] or "",
                f"{r['duration_s']:.0f} s" if r["duration_s"] else "",
                r["proxy_status"],
                flags,
            )
        out.print(table)

    emit(as_json, rows, human)


@recordings_group.command("show")
@click.argument("archive_no")
@json_option
@click.pass_context
def recordings_show(ctx: click.Context, archive_no: str, as_json: bool) -> None:
    """One recording with its derivatives, cases, metadata sources and custody events."""
    from catalog.recordings import get_recording
    from catalog.views import recording_detail

    app = get_app(ctx).require_catalog()
    zone = app.settings.zone
    with app.reader_sessions() as session:
        row = _recording_json(recording_detail(session, get_recording(session, archive_no)), zone)
        row["custody"] = [
            {
                "seq": e.seq,
                "time": local_iso(e.time, zone),
                "actor": e.actor,
                "action": e.action,
                "details": e.details,
            }
            for e in custody.events(session, subject=archive_no)
        ]

    def human() -> None:
        for key in (
            "archive_no",
            "kind",
            "original_name",
            "station",
            "device",
            "officer",
            "start_time",
            "duration_s",
            "sha256",
            "size",
            "status",
            "proxy_status",
            "damaged",
            "damage_reason",
            "important",
            "protected",
            "retain_until",
        ):
            out.print(f"{key:14} {row[key]}", highlight=False, markup=False)
        out.print(
            f"{'sources':14} {json.dumps(row['sources'], ensure_ascii=False)}", highlight=False, markup=False
        )
        for c in row["cases"]:
            out.print(
                f"case           {c['case']} ({c['case_key']}) as {c['item_no']}",
                highlight=False,
                markup=False,
            )
        for d in row["derivatives"]:
            out.print(
                f"derivative     {d['kind']} {d['status']} {d['key'] or d['error']}",
                highlight=False,
                markup=False,
            )
        for e in row["custody"]:
            out.print(
                f"custody {e['seq']:>6} {e['time']} {e['actor']} {e['action']}", highlight=False, markup=False
            )

    emit(as_json, row, human)


def register(main: click.Group) -> None:
    main.add_command(replay)
    main.add_command(recordings_group)
