"""`evidence report`: the annual figures and the whole-process coverage of a period."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from catalog.times import parse_user_date

from .base import emit, err, get_app, json_option, out


@click.group("report", invoke_without_command=True)
@click.option("--year", type=int, help="The annual figures of YEAR (recordings by start time).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV rows (section, name, value) on stdout.")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw recordings per month as a PNG.",
)
@json_option
@click.pass_context
def report(ctx: click.Context, year: int | None, as_csv: bool, chart: Path | None, as_json: bool) -> None:
    """The figures a bureau publishes each January: recordings (count, hours, by unit, station
    and officer), cases with and without full coverage, checks, deletions by reason."""
    if ctx.invoked_subcommand is not None:
        return
    if year is None:
        raise click.UsageError("give --year, or a subcommand (coverage)")
    from datetime import datetime, timedelta

    from catalog.stats import annual, per_month

    app = get_app(ctx).require_catalog()
    zone, cov = app.settings.zone, app.settings.coverage
    start, end = datetime(year, 1, 1, tzinfo=zone), datetime(year + 1, 1, 1, tzinfo=zone)
    with app.reader_sessions() as session:
        data = {
            "year": year,
            **annual(
                session,
                start=start,
                end=end,
                on_site_types=set(cov.on_site_types),
                window=timedelta(minutes=cov.window_minutes),
            ),
        }
        months = per_month(session, start=start, end=end, zone=zone)
    data["recordings"]["per_month"] = months
    if chart:
        from ..charts import bar_chart

        drawn = bar_chart(
            chart,
            year=year,
            unit=app.settings.unit_name or app.settings.unit,
            values=months,
            lang=app.settings.language,
        )
        if drawn.font is None:
            err.print("no CJK font found for the chart: install fonts-noto-cjk or fonts-wqy-zenhei")
    if as_csv:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(["section", "name", "value"])
        rec = data["recordings"]
        writer.writerows(
            [
                ("recordings", "count", rec["count"]),
                ("recordings", "hours", rec["hours"]),
                ("recordings", "damaged", rec["damaged"]),
            ]
        )
        for group in ("by_unit", "by_station", "by_officer"):
            writer.writerows((f"recordings {group}", g["name"], g["recordings"]) for g in rec[group])
        writer.writerows(("recordings per month", f"{year}-{m:02d}", n) for m, n in enumerate(months, 1))
        writer.writerows(("cases", k, v) for k, v in data["cases"].items())
        writer.writerows(("checks", k, v) for k, v in data["checks"].items())
        writer.writerows(("deletions", d["reason"], d["items"]) for d in data["deletions"])
        return

    def human() -> None:
        rec = data["recordings"]
        out.print(
            f"{year}: {rec['count']} recordings, {rec['hours']} hours, {rec['damaged']} damaged",
            highlight=False,
        )
        for group in ("by_unit", "by_station", "by_officer"):
            table = Table(group.replace("by_", ""), "recordings", "hours")
            for g in rec[group]:
                table.add_row(g["name"], str(g["recordings"]), str(g["hours"]))
            out.print(table)
        c = data["cases"]
        out.print(
            f"cases opened {c['opened']}: fully covered {c['fully_covered']}, with gaps {c['with_gaps']}",
            highlight=False,
        )
        out.print("checks: " + ", ".join(f"{k} {v}" for k, v in data["checks"].items()), highlight=False)
        for d in data["deletions"]:
            out.print(f"deleted: {d['items']} ({d['reason']})", highlight=False, markup=False)

    emit(as_json, data, human)


@report.command("coverage")
@click.option("--from", "since", required=True, metavar="DATE", help="Cases opened on or after.")
@click.option("--to", "until", required=True, metavar="DATE", help="Cases opened on or before.")
@json_option
@click.pass_context
def report_coverage(ctx: click.Context, since: str, until: str, as_json: bool) -> None:
    """Whole-process coverage of every case opened in the period. Exit 1 when any has gaps."""
    from datetime import timedelta

    from catalog.stats import coverage_report

    app = get_app(ctx).require_catalog()
    cov = app.settings.coverage
    with app.reader_sessions() as session:
        rows = coverage_report(
            session,
            opened_from=parse_user_date(since),
            opened_to=parse_user_date(until),
            on_site_types=set(cov.on_site_types),
            window=timedelta(minutes=cov.window_minutes),
        )
    data = {
        "from": since,
        "to": until,
        "cases": rows,
        "with_gaps": sum(1 for r in rows if r["missing_recordings"] or r["missing_documents"]),
    }

    def human() -> None:
        table = Table("case key", "case number", "records without recording", "recordings without record")
        for r in rows:
            table.add_row(r["case_key"], r["case"], str(r["missing_recordings"]), str(r["missing_documents"]))
        out.print(table)
        out.print(f"{data['with_gaps']} of {len(rows)} case(s) with gaps", highlight=False)

    emit(as_json, data, human)
    if data["with_gaps"]:
        ctx.exit(1)


def register(main: click.Group) -> None:
    main.add_command(report)
