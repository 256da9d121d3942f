"""The `evidence` command: one entry point for stations, cron jobs and staff.

Exit codes (a contract, see the README): 0 success; 1 a check found a
problem or an action was refused; 2 bad usage, bad settings, an unknown
case or item, or unusable input. With ``--json`` a command prints one JSON
document on stdout and nothing else there; messages go to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError

from archive import cases as archive_cases
from archive import checkpoints
from archive.documents import NewDocument, store_document
from archive.holds import release_hold, set_hold
from archive.links import link_recordings
from catalog import cases, custody
from catalog.errors import CheckFailed, EvidenceError
from catalog.times import local_iso, parse_user_date, parse_user_time

from .app import App
from .logs import setup_logging
from .settings import load_settings, masked

log = logging.getLogger("evidence")
# Piped output (scripts, logs) gets wide lines rather than columns cut at 80 characters.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, soft_wrap=True)


class EvidenceGroup(click.Group):
    """Turns the project's typed errors into one line on stderr and the contract's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EvidenceError as exc:
            click.echo(f"evidence: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OperationalError as exc:
            click.echo(f"evidence: the catalog database failed: {exc.orig} "
                       "(check that it runs and the URL in the settings)", err=True)
            ctx.exit(2)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - one clear line for staff, details in the log
            log.debug("internal error", exc_info=True)
            click.echo(f"evidence: internal error: {type(exc).__name__}: {exc} "
                       "(run again with --log-level debug for the details, and report it)", err=True)
            ctx.exit(2)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON document on stdout and nothing else.")(f)


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        human()


def get_app(ctx: click.Context) -> App:
    """Settings are loaded on first use, so `--help` works with broken settings."""
    obj = ctx.find_root().obj
    if "app" not in obj:
        settings, warnings = load_settings(obj["config"])
        for warning in warnings:
            click.echo(f"evidence: warning: {warning}", err=True)
        obj["app"] = App(settings, actor=obj["actor"])
        ctx.find_root().call_on_close(obj["app"].close)
    return obj["app"]


@click.group(cls=EvidenceGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH",
              help="Settings file (TOML). Default: $EVIDENCE_CONFIG, else ./evidence.toml if present.")
@click.option("--actor", metavar="NAME",
              help="Who is acting, as recorded in custody events. Default: the operating-system user.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True, help="Detail of log messages on stderr.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: one JSON object per line, for log collectors.")
@click.version_option(package_name="evidence-archive")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, actor: str | None, log_level: str,
         log_format: str) -> None:
    """Archive body-worn-camera recordings and written case records under one numbering
    scheme, with a tamper-evident custody chain.

    Settings come from a TOML file (--config, $EVIDENCE_CONFIG or ./evidence.toml) and
    EVIDENCE_* environment variables; with none, everything lives in ./evidence-data.
    Start with `evidence init`.
    """
    setup_logging(log_level, log_format)
    ctx.obj = {"config": config_path, "actor": actor}


# --- init and settings ----------------------------------------------------

@main.command()
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create or upgrade the catalog and create the signing key. Safe to run again."""
    app = get_app(ctx)
    result = app.init()
    log.info("initialized", extra=result)

    def human() -> None:
        before = result["schema_before"]
        out.print(f"catalog    {result['catalog']}")
        out.print(f"schema     {result['schema']}"
                  + (" (created)" if before is None else
                     f" (upgraded from {before})" if before != result["schema"] else " (up to date)"))
        out.print(f"storage    {result['storage']}")
        out.print(f"signing key {result['signing_key']} "
                  f"({'created' if result['signing_key_created'] else 'present'}, id {result['key_id']})")
        out.print(f"kek        {result['kek']} "
                  f"({'created' if result['kek_created'] else 'present'}, id {result['kek_id']})")
    emit(as_json, result, human)


@main.group("config")
def config_group() -> None:
    """Inspect the effective settings."""


@config_group.command("show")
@json_option
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective settings (file, environment and defaults merged), secrets masked."""
    app = get_app(ctx)
    data = masked(app.settings)

    def human() -> None:
        out.print(f"# from {app.settings.source}", highlight=False)
        _print_toml(data)
    emit(as_json, data, human)


def _print_toml(data: dict[str, Any], prefix: str = "") -> None:
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in data.items()
              if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)}
    for key, value in data.items():
        if key in tables or key in arrays or key == "source":
            continue
        out.print(f"{key} = {json.dumps(value, ensure_ascii=False)}", highlight=False, markup=False)
    for key, value in tables.items():
        out.print(f"\n[{prefix}{key}]", highlight=False, markup=False)
        _print_toml(value, f"{prefix}{key}.")
    for key, items in arrays.items():
        for item in items:
            out.print(f"\n[[{prefix}{key}]]", highlight=False, markup=False)
            _print_toml(item, f"{prefix}{key}.")


# --- cases ----------------------------------------------------------------

def case_json(case: Any) -> dict[str, Any]:
    return {"number": case.number, "case_key": case.case_key, "title": case.title,
            "type": case.case_type, "unit": case.unit, "status": case.status, "major": case.major,
            "opened": case.opened_on.isoformat(),
            "closed": case.closed_on.isoformat() if case.closed_on else None}


@main.group("case")
def case_group() -> None:
    """Open and inspect enforcement cases (案件). CASE is the bureau's number or the case key."""


@case_group.command("open")
@click.argument("number")
@click.option("--title", help="Short description, e.g. 占道经营.")
@click.option("--type", "case_type", help="Case type; selects the retention class if one is set.")
@click.option("--opened", metavar="DATE", help="Date of opening (default: today in the settings' zone).")
@click.option("--unit", metavar="CODE", help="Unit code for the case key (default: the settings' unit).")
@click.option("--major", is_flag=True, help="A major, complex case (kept permanently).")
@json_option
@click.pass_context
def case_open(ctx: click.Context, number: str, title: str | None, case_type: str | None,
              opened: str | None, unit: str | None, major: bool, as_json: bool) -> None:
    """Open a case. NUMBER is the bureau's own case number, kept verbatim
    (e.g. 开城管罚立〔2020〕42号); the case also gets an ASCII case key."""
    app = get_app(ctx).require_catalog()
    opened_on = parse_user_date(opened) if opened else app.now().astimezone(app.settings.zone).date()
    case = archive_cases.open_case(
        app.services,
        cases.NewCase(number=number, unit=unit or app.settings.unit, opened_on=opened_on,
                      title=title, case_type=case_type, major=major))
    emit(as_json, {"number": case.number, "case_key": case.case_key},
         lambda: out.print(f"opened {case.number}  key {case.case_key}", highlight=False))


def item_json(item, zone) -> dict[str, Any]:
    """An item as `case show` and `replay` print it (the contract's fields first)."""
    data: dict[str, Any] = {"item_no": item.item_no, "kind": item.kind,
                            "time": local_iso(item.time, zone), "sha256": item.sha256}
    if item.archive_no:
        data.update(archive_no=item.archive_no, officer=item.officer, device=item.device,
                    station=item.station, duration_s=item.duration_s, proxy=item.proxy,
                    damaged=item.damaged, important=item.important)
    else:
        data.update(doc_type=item.doc_type, doc_number=item.doc_number)
    data.update(size=item.size, protected=item.protected,
                custody={"events": item.custody.get("events", 0),
                         "actions": item.custody.get("actions", {}),
                         "last": local_iso(item.custody.get("last"), zone)})
    if item.verified is not None:
        data["verified"] = item.verified
    return data


def _print_items(header: dict[str, Any], items: list[dict[str, Any]]) -> None:
    out.print(f"{header['number']}  ({header['case_key']})  {header['status']}", highlight=False,
              markup=False)
    if header.get("title"):
        out.print(f"  {header['title']}", highlight=False, markup=False)
    table = Table("time", "item", "kind", "archive no / type", "officer", "duration", "proxy",
                  "sha256", *(["verified"] if items and "verified" in items[0] else []))
    for i in items:
        row = [i["time"] or "", i["item_no"], i["kind"], i.get("archive_no") or i.get("doc_type") or "",
               i.get("officer") or "", f"{i['duration_s']:.0f} s" if i.get("duration_s") else "",
               i.get("proxy", ""), i["sha256"][:16] + "…"]
        if "verified" in i:
            row.append(i["verified"])
        table.add_row(*row)
    out.print(table)


@case_group.command("show")
@click.argument("case")
@json_option
@click.pass_context
def case_show(ctx: click.Context, case: str, as_json: bool) -> None:
    """Show a case and its items (documents and recordings) in time order."""
    from catalog.views import case_items

    app = get_app(ctx).require_catalog()
    zone = app.settings.zone
    with app.reader_sessions() as session:
        found = cases.get_case(session, case)
        data = {"case": case_json(found),
                "items": [item_json(i, zone) for i in case_items(session, found)]}
    emit(as_json, data, lambda: _print_items(data["case"], data["items"]))


@case_group.command("add-doc")
@click.argument("case")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--type", "doc_type", required=True,
              help="Document type, one of [documents] types in the settings (e.g. 询问笔录).")
@click.option("--date", "doc_date", metavar="DATE", help="Date of the document.")
@click.option("--number", "doc_number", help="The document's own number (文书编号).")
@click.option("--officer", metavar="NUMBER",
              help="Officer who made the record (enforcement-certificate number).")
@click.option("--protected", is_flag=True,
              help="Holds secrets or personal privacy: stored encrypted, shown only with the grant.")
@json_option
@click.pass_context
def case_add_doc(ctx: click.Context, case: str, file: Path, doc_type: str, doc_date: str | None,
                 doc_number: str | None, officer: str | None, protected: bool, as_json: bool) -> None:
    """Store a written record (PDF, scan, DOCX …) under the case's shared numbering."""
    app = get_app(ctx).require_catalog()
    item, doc = store_document(
        app.services,
        NewDocument(case, file, doc_type,
                    parse_user_time(doc_date, app.settings.zone) if doc_date else None,
                    doc_number, protected, officer),
        doc_types=app.settings.documents.types)
    emit(as_json, {"item_no": item.item_no, "sha256": doc.sha256, "size": doc.size},
         lambda: out.print(f"{item.item_no}  {doc_type}  {doc.size} bytes  sha256 {doc.sha256}",
                           highlight=False))


@case_group.command("link")
@click.argument("case")
@click.argument("archive_nos", nargs=-1, metavar="[ARCHIVE_NO...]")
@click.option("--officer", metavar="NUMBER", help="Link this officer's recordings (with --from/--to).")
@click.option("--device", metavar="SERIAL", help="Link this recorder's recordings (with --from/--to).")
@click.option("--from", "since", metavar="TIME", help="Start of the period (recording start time).")
@click.option("--to", "until", metavar="TIME", help="End of the period, included.")
@json_option
@click.pass_context
def case_link(ctx: click.Context, case: str, archive_nos: tuple[str, ...], officer: str | None,
              device: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    """Link recordings to the case, by archive number or by officer/device and period; each
    gets the case's next item number, and its storage lock is extended to the case's."""
    from catalog.views import recordings_query

    app = get_app(ctx).require_catalog()
    numbers = list(archive_nos)
    if officer or device:
        if not (since and until):
            raise click.UsageError("--officer/--device need --from and --to")
        zone = app.settings.zone
        with app.reader_sessions() as session:
            query = recordings_query(officer=officer, device=device,
                                     since=parse_user_time(since, zone),
                                     until=parse_user_time(until, zone, end_of_day=True))
            numbers += [r.archive_no for r in session.execute(query).scalars()
                        if r.status == "archived"]
    elif since or until:
        raise click.UsageError("--from/--to select recordings of an --officer or --device")
    pairs = link_recordings(app.services, case, numbers)
    emit(as_json, {"linked": [{"archive_no": a, "item_no": i} for a, i in pairs]},
         lambda: [out.print(f"{a}  ->  {i}", highlight=False) for a, i in pairs])


@case_group.command("unlink")
@click.argument("case")
@click.argument("item_no")
@click.option("--reason", required=True, help="Why (kept in the custody chain).")
@json_option
@click.pass_context
def case_unlink(ctx: click.Context, case: str, item_no: str, reason: str, as_json: bool) -> None:
    """Take a linked recording out of the case; its item number is never reused."""
    from archive.links import unlink_item

    app = get_app(ctx).require_catalog()
    unlink_item(app.services, case, item_no, reason=reason)
    emit(as_json, {"unlinked": [item_no]}, lambda: out.print(f"unlinked {item_no}", highlight=False))


@case_group.command("close")
@click.argument("case")
@click.option("--date", "closed", metavar="DATE", help="Closing date (default: today).")
@json_option
@click.pass_context
def case_close(ctx: click.Context, case: str, closed: str | None, as_json: bool) -> None:
    """Close a case (结案). Its evidence is then kept for the case class's period."""
    app = get_app(ctx).require_catalog()
    closed_on = parse_user_date(closed) if closed else app.now().astimezone(app.settings.zone).date()
    found = archive_cases.close_case(app.services, case, closed_on=closed_on)
    emit(as_json, {"number": found.number, "case_key": found.case_key, "closed": closed_on.isoformat()},
         lambda: out.print(f"closed {found.number} ({found.case_key}) on {closed_on}", highlight=False))


@case_group.command("gaps")
@click.argument("case")
@json_option
@click.pass_context
def case_gaps(ctx: click.Context, case: str, as_json: bool) -> None:
    """Whole-process coverage: on-site written records without a recording of the same officer
    nearby, and recordings without any written record nearby ([coverage] in the settings).
    Exit 1 when there are gaps."""
    from datetime import timedelta

    from catalog.coverage import find_gaps
    from catalog.views import case_items

    app = get_app(ctx).require_catalog()
    cov, zone = app.settings.coverage, app.settings.zone
    with app.reader_sessions() as session:
        found = cases.get_case(session, case)
        gaps = find_gaps(case_items(session, found), on_site_types=set(cov.on_site_types),
                         window=timedelta(minutes=cov.window_minutes))
        data = {"case": found.number, "case_key": found.case_key,
                "gaps": [{"item_no": g.item_no, "doc_type": g.doc_type, "time": local_iso(g.time, zone),
                          "missing": g.missing, "officer": g.officer} for g in gaps]}

    def human() -> None:
        if not gaps:
            out.print(f"{data['case']}: every step is covered", highlight=False)
        for g in data["gaps"]:
            what = g["doc_type"] or "recording"
            out.print(f"{g['item_no']}  {what}  {g['time']}  no {g['missing']}"
                      + (f" (officer {g['officer']})" if g["officer"] else ""), highlight=False,
                      markup=False)
    emit(as_json, data, human)
    if gaps:
        ctx.exit(1)


@case_group.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only cases that are still open.")
@json_option
@click.pass_context
def case_list(ctx: click.Context, open_only: bool, as_json: bool) -> None:
    """List cases."""
    app = get_app(ctx).require_catalog()
    with app.reader_sessions() as session:
        data = [case_json(c) for c in cases.list_cases(session, open_only=open_only)]

    def human() -> None:
        table = Table("case key", "number", "title", "status", "opened")
        for c in data:
            table.add_row(c["case_key"], c["number"], c["title"] or "", c["status"], c["opened"])
        out.print(table)
    emit(as_json, data, human)


# --- replay and recordings -------------------------------------------------------

@main.command()
@click.argument("case")
@click.option("--verify", "verify_items", is_flag=True,
              help="Re-read every original and document from storage and check its digest.")
@json_option
@click.pass_context
def replay(ctx: click.Context, case: str, verify_items: bool, as_json: bool) -> None:
    """Replay a case: written records and recordings in time order, with numbers, officers,
    digests, proxies and custody. With --verify, exit 1 unless every item is intact.
    The replay is recorded in the custody chain."""
    from verify.replay import replay as run_replay

    app = get_app(ctx).require_catalog()
    header, items = run_replay(app.services, case, verify=verify_items)
    data = {"case": header, "items": [item_json(i, app.settings.zone) for i in items]}
    emit(as_json, data, lambda: _print_items(header, data["items"]))
    if verify_items and any(i.verified != "ok" for i in items):
        ctx.exit(1)


@main.command("verify")
@click.option("--all", "everything", is_flag=True, help="Every stored item (the default).")
@click.option("--sample", type=int, metavar="N", help="N items drawn at random.")
@click.option("--older-than", "older_than", type=float, metavar="DAYS",
              help="Items not verified for DAYS days (or never).")
@click.option("--budget-gb", type=float, metavar="G", help="Stop after reading G gigabytes.")
@click.option("--budget-minutes", type=float, metavar="M", help="Stop after M minutes.")
@click.option("--no-reconcile", is_flag=True, help="Skip listing storage for orphans.")
@json_option
@click.pass_context
def verify_command(ctx: click.Context, everything: bool, sample: int | None, older_than: float | None,
                   budget_gb: float | None, budget_minutes: float | None, no_reconcile: bool,
                   as_json: bool) -> None:
    """Fixity sweep and reconciliation: re-read stored objects, least recently verified first,
    compare digests and sizes with the catalog, and list objects the catalog does not know.
    Exit 1 on any mismatch, missing object or orphan. Nothing is deleted."""
    from verify.fixity import sweep

    if sum(bool(x) for x in (everything, sample is not None, older_than is not None)) > 1:
        raise click.UsageError("choose one of --all, --sample, --older-than")
    app = get_app(ctx).require_catalog()
    kwargs = dict(sample=sample,
                  older_than_days=older_than, reconcile_storage=not no_reconcile,
                  budget_bytes=int(budget_gb * 1e9) if budget_gb else None,
                  budget_seconds=budget_minutes * 60 if budget_minutes else None)
    if as_json or not err.is_terminal:
        report = sweep(app.services, **kwargs)
    else:
        from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn

        with Progress(TextColumn("fixity"), BarColumn(), TextColumn("{task.completed} items"),
                      TransferSpeedColumn(), console=err) as bar:
            task = bar.add_task("fixity", total=None)
            report = sweep(app.services,
                           progress=lambda _t, n: bar.update(task, advance=1), **kwargs)
    data = {"checked": report.checked, "ok": report.ok, "problems": report.problems,
            "bytes": report.bytes_read, "stopped_by": report.stopped_by}

    def human() -> None:
        out.print(f"checked {report.checked}, ok {report.ok}, problems {len(report.problems)}"
                  + (f" (stopped by the {report.stopped_by} budget)" if report.stopped_by else ""),
                  highlight=False)
        for p in report.problems:
            out.print(f"  {p['problem']:8} {p['subject']}: expected {p['expected']}, found {p['found']}",
                      highlight=False, markup=False)
    emit(as_json, data, human)
    if report.problems:
        ctx.exit(1)


@main.command("export")
@click.argument("case")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--zip", "zip_it", is_flag=True, help="One .zip file instead of a folder.")
@click.option("--with-proxies", is_flag=True, help="Also the playable proxies (and posters).")
@click.option("--reason", required=True, help="Why, and for whom (kept in the custody chain).")
@json_option
@click.pass_context
def export_command(ctx: click.Context, case: str, outdir: Path, zip_it: bool, with_proxies: bool,
                   reason: str, as_json: bool) -> None:
    """Export a case as a BagIt package anyone can check without this system: originals and
    documents (decrypted), case.json, the custody excerpt with a signed checkpoint and its
    public key, and an index.html that plays the proxies offline."""
    from verify.export import export_case

    app = get_app(ctx).require_catalog()
    outdir.mkdir(parents=True, exist_ok=True)
    result = export_case(app.services, case, outdir, signing_key=app.signing_key, reason=reason,
                         with_proxies=with_proxies, zip_it=zip_it)
    data = {"path": str(result.path), "items": result.items, "bytes": result.bytes}
    emit(as_json, data, lambda: out.print(f"exported {result.items} item(s), {result.bytes} bytes: "
                                          f"{result.path}", highlight=False))


@main.command("verify-package")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
@click.pass_context
def verify_package_command(ctx: click.Context, path: Path, as_json: bool) -> None:
    """Check an exported package offline (no catalog, no storage): completeness, every digest,
    the custody excerpt's links and the checkpoint's signature. Exit 1 on any problem."""
    from verify.package import verify_package

    report = verify_package(path)
    data = report.to_json()

    def human() -> None:
        if report.ok:
            out.print(f"{path}: the package is complete and intact", highlight=False)
        for p in report.problems:
            out.print(f"  {p['path']}: {p['problem']}", highlight=False, markup=False)
    emit(as_json, data, human)
    if not report.ok:
        ctx.exit(1)


@main.group("catalog")
def catalog_group() -> None:
    """Catalog administration."""


@catalog_group.command("rebuild")
@click.option("--from-storage", "from_storage", is_flag=True, required=True,
              help="Read manifests, case events, custody segments, checkpoints and tombstones.")
@click.option("--database", "database", required=True, metavar="URL",
              help="An empty catalog to rebuild into (SQLAlchemy URL).")
@json_option
@click.pass_context
def catalog_rebuild(ctx: click.Context, from_storage: bool, database: str, as_json: bool) -> None:
    """Disaster-recovery drill: rebuild a catalog from storage alone into DATABASE, with every
    number sequence past every number ever issued, then compare it with the live catalog.
    Exit 1 when they differ."""
    from catalog.db import make_engine, session_factory
    from verify.rebuild import compare, rebuild

    app = get_app(ctx).require_catalog()
    target = make_engine(database)
    try:
        report = rebuild(app.store, target, formats=app.settings.formats)
        with app.reader_sessions() as live, session_factory(target)() as rebuilt:
            differences, notes = compare(live, rebuilt, last_checkpoint_seq=report.last_checkpoint_seq)
    finally:
        target.dispose()
    data = {"database": make_engine(database).url.render_as_string(hide_password=True),
            "counts": report.counts, "problems": report.problems, "differences": differences,
            "notes": notes}

    def human() -> None:
        out.print("rebuilt: " + ", ".join(f"{k} {v}" for k, v in report.counts.items()), highlight=False)
        for line in report.problems + differences:
            out.print(f"  {line}", highlight=False, markup=False)
        for line in notes:
            out.print(f"  note: {line}", highlight=False, markup=False)
        out.print("the rebuilt catalog matches the live one" if not differences and not report.problems
                  else f"{len(differences)} difference(s), {len(report.problems)} problem(s)",
                  highlight=False)
    emit(as_json, data, human)
    if differences or report.problems:
        ctx.exit(1)


@main.group("recordings")
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
def recordings_list(ctx: click.Context, officer, device, station, since, until, unlinked: bool,
                    limit: int, as_json: bool) -> None:
    """List recordings in time order."""
    from catalog.views import recording_rows, recordings_query

    app = get_app(ctx).require_catalog()
    zone = app.settings.zone
    query = recordings_query(officer=officer, device=device, station=station,
                             since=parse_user_time(since, zone) if since else None,
                             until=parse_user_time(until, zone, end_of_day=True) if until else None,
                             unlinked=unlinked).limit(limit)
    with app.reader_sessions() as session:
        rows = [_recording_json(r, zone) for r in
                recording_rows(session, list(session.execute(query).scalars()))]

    def human() -> None:
        table = Table("archive no", "kind", "start", "officer", "device", "duration", "proxy", "flags")
        for r in rows:
            flags = " ".join(f for f, on in (("damaged", r["damaged"]), ("important", r["important"]),
                                             ("protected", r["protected"])) if on)
            table.add_row(r["archive_no"], r["kind"], r["start_time"] or "", r["officer"] or "",
                          r["device"] or "", f"{r['duration_s']:.0f} s" if r["duration_s"] else "",
                          r["proxy_status"], flags)
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
        row["custody"] = [{"seq": e.seq, "time": local_iso(e.time, zone), "actor": e.actor,
                           "action": e.action, "details": e.details}
                          for e in custody.events(session, subject=archive_no)]

    def human() -> None:
        for key in ("archive_no", "kind", "original_name", "station", "device", "officer",
                    "start_time", "duration_s", "sha256", "size", "status", "proxy_status",
                    "damaged", "damage_reason", "important", "protected", "retain_until"):
            out.print(f"{key:14} {row[key]}", highlight=False, markup=False)
        out.print(f"{'sources':14} {json.dumps(row['sources'], ensure_ascii=False)}", highlight=False,
                  markup=False)
        for c in row["cases"]:
            out.print(f"case           {c['case']} ({c['case_key']}) as {c['item_no']}", highlight=False,
                      markup=False)
        for d in row["derivatives"]:
            out.print(f"derivative     {d['kind']} {d['status']} {d['key'] or d['error']}",
                      highlight=False, markup=False)
        for e in row["custody"]:
            out.print(f"custody {e['seq']:>6} {e['time']} {e['actor']} {e['action']}", highlight=False,
                      markup=False)
    emit(as_json, row, human)


# --- reports -----------------------------------------------------------------

@main.group("report", invoke_without_command=True)
@click.option("--year", type=int, help="The annual figures of YEAR (recordings by start time).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV rows (section, name, value) on stdout.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw recordings per month as a PNG.")
@json_option
@click.pass_context
def report(ctx: click.Context, year: int | None, as_csv: bool, chart: Path | None,
           as_json: bool) -> None:
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
        data = {"year": year, **annual(session, start=start, end=end,
                                       on_site_types=set(cov.on_site_types),
                                       window=timedelta(minutes=cov.window_minutes))}
        months = per_month(session, start=start, end=end, zone=zone)
    data["recordings"]["per_month"] = months
    if chart:
        from .charts import bar_chart

        bar_chart(chart, f"Recordings per month, {year}", [f"{m:02d}" for m in range(1, 13)], months)
    if as_csv:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(["section", "name", "value"])
        rec = data["recordings"]
        writer.writerows([("recordings", "count", rec["count"]), ("recordings", "hours", rec["hours"]),
                          ("recordings", "damaged", rec["damaged"])])
        for group in ("by_unit", "by_station", "by_officer"):
            writer.writerows((f"recordings {group}", g["name"], g["recordings"]) for g in rec[group])
        writer.writerows(("recordings per month", f"{year}-{m:02d}", n)
                         for m, n in enumerate(months, 1))
        writer.writerows(("cases", k, v) for k, v in data["cases"].items())
        writer.writerows(("checks", k, v) for k, v in data["checks"].items())
        writer.writerows(("deletions", d["reason"], d["items"]) for d in data["deletions"])
        return

    def human() -> None:
        rec = data["recordings"]
        out.print(f"{year}: {rec['count']} recordings, {rec['hours']} hours, {rec['damaged']} damaged",
                  highlight=False)
        for group in ("by_unit", "by_station", "by_officer"):
            table = Table(group.replace("by_", ""), "recordings", "hours")
            for g in rec[group]:
                table.add_row(g["name"], str(g["recordings"]), str(g["hours"]))
            out.print(table)
        c = data["cases"]
        out.print(f"cases opened {c['opened']}: fully covered {c['fully_covered']}, "
                  f"with gaps {c['with_gaps']}", highlight=False)
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
        rows = coverage_report(session, opened_from=parse_user_date(since),
                               opened_to=parse_user_date(until), on_site_types=set(cov.on_site_types),
                               window=timedelta(minutes=cov.window_minutes))
    data = {"from": since, "to": until, "cases": rows,
            "with_gaps": sum(1 for r in rows if r["missing_recordings"] or r["missing_documents"])}

    def human() -> None:
        table = Table("case key", "number", "records without recording", "recordings without record")
        for r in rows:
            table.add_row(r["case_key"], r["case"], str(r["missing_recordings"]), str(r["missing_documents"]))
        out.print(table)
        out.print(f"{data['with_gaps']} of {len(rows)} case(s) with gaps", highlight=False)
    emit(as_json, data, human)
    if data["with_gaps"]:
        ctx.exit(1)


# --- ingest ----------------------------------------------------------------

def _folders(app: App, station: str, dirs: tuple[Path, ...]) -> list[Path]:
    configured = app.settings.station(station)
    folders = list(dirs) or [Path(f) for f in (configured.folders if configured else [])]
    if not folders:
        raise click.UsageError(f"no folders to watch for station {station}: give DIR... or "
                               "[[stations]] folders in the settings")
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


@main.group("ingest")
def ingest_group() -> None:
    """Archive recorder files from docking-station folders."""


@ingest_group.command("scan")
@click.option("--station", required=True, metavar="ID", help="Station id (ASCII, used in archive numbers).")
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--no-wait", is_flag=True,
              help="Skip files written in the last few seconds instead of waiting for them.")
@json_option
@click.pass_context
def ingest_scan(ctx: click.Context, station: str, dirs: tuple[Path, ...], no_wait: bool,
                as_json: bool) -> None:
    """One pass over DIR...: archive every complete file, then exit (cron, catching up).
    Exit 1 when anything was quarantined or failed."""
    app = get_app(ctx).require_catalog()
    folders = _folders(app, station, dirs)
    pipeline = app.pipeline(station, fault_hook=_fault_hook())
    if as_json or not err.is_terminal:
        report = pipeline.scan(folders, wait=not no_wait)
    else:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        work = [p for f in folders for p in pipeline.candidates(f)]
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=err) as bar:
            task = bar.add_task(f"station {station}", total=len(work))
            report = pipeline.scan(folders, wait=not no_wait,
                                   progress=lambda o: bar.update(task, advance=1))

    def human() -> None:
        out.print(f"archived {len(report.archived)} ({len(report.damaged)} damaged), "
                  f"duplicates {len(report.duplicates)}, quarantined {len(report.quarantined)}, "
                  f"failed {len(report.failed)}, waiting {len(report.waiting)}", highlight=False)
        for number in report.archived:
            out.print(f"  archived    {number}" + ("  (damaged)" if number in report.damaged else ""),
                      highlight=False)
        for d in report.duplicates:
            out.print(f"  duplicate   {d['path']} = {d['archive_no']}", highlight=False, markup=False)
        for q in report.quarantined:
            out.print(f"  quarantined {q['path']}: {q['reason']}", highlight=False, markup=False)
        for f in report.failed:
            out.print(f"  failed      {f['path']}: {f['reason']}", highlight=False, markup=False)
    emit(as_json, report.to_json(), human)
    if not report.ok:
        ctx.exit(1)


@ingest_group.command("watch")
@click.option("--station", required=True, metavar="ID", help="Station id.")
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--polling", is_flag=True, default=None,
              help="Poll instead of inotify (network mounts, where inotify sees nothing).")
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on 127.0.0.1:PORT.")
@click.pass_context
def ingest_watch(ctx: click.Context, station: str, dirs: tuple[Path, ...], polling: bool | None,
                 metrics_port: int | None) -> None:
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
        metrics.serve(port)
    watcher = StationWatcher(app.pipeline(station, fault_hook=_fault_hook()), folders,
                             polling=polling if polling is not None else bool(configured and configured.polling),
                             rescan_seconds=ing.rescan_seconds,
                             stale_after=timedelta(hours=ing.stale_after_hours), metrics=metrics)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: watcher.stop.set())
    watcher.run()


@main.group("devices")
def devices_group() -> None:
    """Recorders (执法记录仪) and who carries them."""


@devices_group.command("assign")
@click.argument("serial")
@click.argument("officer")
@click.option("--from", "valid_from", required=True, metavar="TIME", help="Start of the assignment.")
@click.option("--to", "valid_to", metavar="TIME", help="End of the assignment (open if not given).")
@json_option
@click.pass_context
def devices_assign(ctx: click.Context, serial: str, officer: str, valid_from: str,
                   valid_to: str | None, as_json: bool) -> None:
    """Record that OFFICER (certificate number) carries recorder SERIAL; recordings whose file
    names carry no officer get theirs from this."""
    from archive.accounts import assign_device

    app = get_app(ctx).require_catalog()
    zone = app.settings.zone
    start = parse_user_time(valid_from, zone)
    end = parse_user_time(valid_to, zone, end_of_day=True) if valid_to else None
    assign_device(app.services, serial, officer, valid_from=start, valid_to=end, zone=zone)
    data = {"device": serial, "officer": officer, "from": local_iso(start, zone),
            "to": local_iso(end, zone)}
    emit(as_json, data, lambda: out.print(f"{serial} -> {officer} from {data['from']}"
                                          + (f" to {data['to']}" if end else ""), highlight=False))


@main.group("stations")
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
        status = station_status(session, now=app.now(),
                                stale_after=timedelta(hours=ing.stale_after_hours),
                                device_absent=timedelta(hours=ing.device_absent_hours))

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
            table.add_row(s["station"], s["last_success"] or "never", "YES" if s["stale"] else "",
                          str(sum(s["backlog"].values())), str(s["failing"]), str(s["quarantined"]))
        out.print(table)
        for d in status["absent_devices"]:
            out.print(f"device {d['device']} not docked since {d['last_docked']}", highlight=False)
        for r in status["late"]:
            out.print(f"late: {r['archive_no']} archived {r['hours']} h after it ended", highlight=False)
    emit(as_json, status, human)
    if any(s["stale"] or s["failing"] for s in status["stations"]):
        ctx.exit(1)


# --- legal holds -----------------------------------------------------------

@main.group("hold")
def hold_group() -> None:
    """Legal holds: nothing held can be deleted, whatever its retention."""


@hold_group.command("set")
@click.argument("item")
@click.option("--reason", required=True, help="Why (kept in the custody chain).")
@json_option
@click.pass_context
def hold_set(ctx: click.Context, item: str, reason: str, as_json: bool) -> None:
    """Hold ITEM: an archive number, an item number, or a case (all its items)."""
    app = get_app(ctx).require_catalog()
    subject = set_hold(app.services, item, reason=reason)
    emit(as_json, {"subjects": [subject]}, lambda: out.print(f"held {subject}", highlight=False))


@hold_group.command("release")
@click.argument("item")
@click.option("--reason", required=True, help="Why (kept in the custody chain).")
@json_option
@click.pass_context
def hold_release(ctx: click.Context, item: str, reason: str, as_json: bool) -> None:
    """Release the holds on ITEM (objects other holds still cover stay held)."""
    app = get_app(ctx).require_catalog()
    subject = release_hold(app.services, item, reason=reason)
    emit(as_json, {"subjects": [subject]}, lambda: out.print(f"released {subject}", highlight=False))


# --- retention -------------------------------------------------------------

@main.group("retention")
def retention_group() -> None:
    """The retention cron: what may be deleted, when and why; nothing kept by a rule is touched."""


def _retention(ctx: click.Context, now: str | None, dry_run: bool, confirm: bool, as_json: bool) -> None:
    from archive.retention_run import run

    app = get_app(ctx).require_catalog()
    policy_now = parse_user_time(now, app.settings.zone) if now else app.now()
    result = run(app.services, app.rules, now=policy_now, dry_run=dry_run, confirm=confirm,
                 max_purges=app.settings.retention.max_purges_per_run)
    data = result.to_json()

    def human() -> None:
        out.print(f"policy clock {data['now']}: kept {data['kept']}, due {len(result.due)}, "
                  f"pending {len(result.pending)}, purged {len(result.purged)}, "
                  f"refused {len(result.refused)}, kept again {len(result.restored)}", highlight=False)
        for name in ("due", "pending", "purged", "refused", "restored"):
            for e in data[name]:
                out.print(f"  {name:8} {e['subject']}  {e['reason']}"
                          + (f"  (due {e['due_at']})" if e["due_at"] else ""), highlight=False, markup=False)
    emit(as_json, data, human)
    if result.refused:
        ctx.exit(1)


@retention_group.command("plan")
@click.option("--now", metavar="TIME", help="Policy clock (drills, tests); storage locks use the real one.")
@json_option
@click.pass_context
def retention_plan(ctx: click.Context, now: str | None, as_json: bool) -> None:
    """What a run would do, and why; changes nothing."""
    _retention(ctx, now, True, False, as_json)


@retention_group.command("run")
@click.option("--now", metavar="TIME", help="Policy clock (drills, tests); storage locks use the real one.")
@click.option("--dry-run", is_flag=True, help="Compute everything, change nothing (same as plan).")
@click.option("--confirm", is_flag=True,
              help="Purge even items whose due date moved earlier, and more than the per-run limit.")
@json_option
@click.pass_context
def retention_run(ctx: click.Context, now: str | None, dry_run: bool, confirm: bool, as_json: bool) -> None:
    """The cron job: due items become pending deletion for the grace period, then are purged with
    a tombstone. Exit 1 when a purge was refused (by a safeguard or by the storage lock)."""
    _retention(ctx, now, dry_run, confirm, as_json)


@retention_group.command("restore")
@click.argument("archive_no")
@click.option("--reason", required=True, help="Why (kept in the custody chain).")
@json_option
@click.pass_context
def retention_restore(ctx: click.Context, archive_no: str, reason: str, as_json: bool) -> None:
    """Bring back a recording pending deletion; it is kept at least another routine period."""
    from archive.retention_run import restore

    app = get_app(ctx).require_catalog()
    restore(app.services, archive_no, reason=reason)
    emit(as_json, {"restored": [archive_no]}, lambda: out.print(f"restored {archive_no}", highlight=False))


# --- web pages and accounts -------------------------------------------------------

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """The auditors' web pages: find and replay cases, play recordings, verify and export,
    every view and play on the record. Put it behind HTTPS (a reverse proxy) in production."""
    import uvicorn

    from verify.web import create_app

    app = get_app(ctx).require_catalog()
    uvicorn.run(create_app(app.web_context()), host=host, port=port,
                log_level=logging.getLevelName(logging.getLogger().level).lower(), access_log=False)


@main.group("user")
def user_group() -> None:
    """Accounts of the web pages (auditor, legal, admin)."""


def _read_password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["auditor", "legal", "admin"]), required=True,
              help="auditor: search, replay, verify, export; legal: also link, unlink, hold; admin: also accounts.")
@click.option("--protected", is_flag=True, help="May see protected records (国家秘密、商业秘密、个人隐私).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@click.pass_context
def user_add(ctx: click.Context, name: str, role: str, protected: bool, password_stdin: bool,
             as_json: bool) -> None:
    """Add an account."""
    from archive.accounts import add_account

    app = get_app(ctx).require_catalog()
    add_account(app.services, name, role, _read_password(password_stdin), protected=protected)
    emit(as_json, {"name": name, "role": role, "protected": protected},
         lambda: out.print(f"added {name} ({role}{', protected records' if protected else ''})",
                           highlight=False))


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_passwd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set an account's password (its open sessions end)."""
    from archive.accounts import change_password

    app = get_app(ctx).require_catalog()
    change_password(app.services, name, _read_password(password_stdin))
    out.print(f"password of {name} changed", highlight=False)


# --- storage -------------------------------------------------------------

@main.group("storage")
def storage_group() -> None:
    """Object-store administration."""


@storage_group.command("policy")
@click.option("--bucket", required=True, help="The archive's bucket.")
@click.option("--station", "stations", multiple=True, metavar="USER",
              help="Gateway user of a station (repeatable).")
@click.option("--curator", "curators", multiple=True, metavar="USER", help="Gateway user of the curator.")
@click.option("--reader", "readers", multiple=True, metavar="USER",
              help="Gateway user of readers (fixity sweeps, exports, web pages).")
@click.option("--apply", "apply_it", is_flag=True,
              help="Set it on the bucket with the settings' S3 credentials (the bucket owner's).")
@click.pass_context
def storage_policy(ctx: click.Context, bucket: str, stations: tuple[str, ...],
                   curators: tuple[str, ...], readers: tuple[str, ...], apply_it: bool) -> None:
    """Print the bucket policy that gives Ceph RGW users the station, curator and reader
    roles of config/policies/ (RGW has no IAM user policies; MinIO and AWS take the role
    files directly, see config/policies/README.md)."""
    from .policies_rgw import apply_bucket_policy, bucket_policy

    users = [(role, user) for role, names in (("station", stations), ("curator", curators),
                                               ("reader", readers)) for user in names]
    if not users:
        raise click.UsageError("name at least one user with --station, --curator or --reader")
    policy = bucket_policy(bucket, users)
    if apply_it:
        store = get_app(ctx).store
        if not hasattr(store, "client"):
            raise click.UsageError("--apply needs an s3:// storage URL in the settings")
        apply_bucket_policy(store.client, bucket, policy)
    click.echo(json.dumps(policy, indent=2))


# --- custody chain --------------------------------------------------------

@main.group("audit")
def audit_group() -> None:
    """The custody chain: every change and access, hash-linked and signed."""


@audit_group.command("log")
@click.option("--subject", metavar="X", help="Only events about this archive number, item number or case key.")
@click.option("--limit", type=int, help="At most this many events.")
@json_option
@click.pass_context
def audit_log(ctx: click.Context, subject: str | None, limit: int | None, as_json: bool) -> None:
    """Print custody events in chain order."""
    app = get_app(ctx).require_catalog()
    zone = app.settings.zone
    with app.reader_sessions() as session:
        data = [{"seq": e.seq, "time": local_iso(e.time, zone), "actor": e.actor,
                 "action": e.action, "subject": e.subject, "details": e.details}
                for e in custody.events(session, subject=subject, limit=limit)]

    def human() -> None:
        for e in data:
            out.print(f"{e['seq']:>6}  {e['time']}  {e['actor']}  {e['action']}  {e['subject'] or '-'}  "
                      f"{json.dumps(e['details'], ensure_ascii=False)}", highlight=False, markup=False)
    emit(as_json, data, human)


@audit_group.command("verify")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Walk the whole chain and every checkpoint; exit 1 at the first broken event."""
    app = get_app(ctx).require_catalog()
    trusted = app.signing_key.public_key() if app.settings.signing_key_path.exists() else None
    with app.reader_sessions() as session:
        report = custody.verify(session, trusted)
    data = report.to_json()

    def human() -> None:
        if report.ok:
            out.print(f"chain intact: {report.events} events, {report.checkpoints} checkpoint(s)")
        else:
            err.print(f"[bold red]chain broken[/] at event {report.first_bad_event}: "
                      f"{len(report.problems)} problem(s) in {report.events} events")
            for p in report.problems:
                err.print(f"  {p['problem']}: {p['detail']}", highlight=False, markup=False)
        if trusted is None:
            err.print("note: no signing key here; checkpoints were checked against the keys they carry")
    emit(as_json, data, human)
    if not report.ok:
        ctx.exit(CheckFailed.exit_code)


@audit_group.command("checkpoint")
@json_option
@click.pass_context
def audit_checkpoint(ctx: click.Context, as_json: bool) -> None:
    """Sign the chain's current head with the custody key."""
    app = get_app(ctx).require_catalog()
    cp = checkpoints.make_and_publish(app.services, app.signing_key)
    data = {"n": cp.n, "seq": cp.seq, "head": cp.head, "key_id": cp.key_id,
            "time": local_iso(cp.time, app.settings.zone)}
    emit(as_json, data, lambda: out.print(
        f"checkpoint {cp.n}: event {cp.seq} = {cp.head} (key {cp.key_id})", highlight=False))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
