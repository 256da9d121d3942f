"""`evidence case ...`: open, inspect, add documents to, link recordings to and close cases."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from archive import cases as archive_cases
from archive.documents import NewDocument, store_document
from archive.links import link_recordings
from catalog import cases
from catalog.times import local_iso, parse_user_date, parse_user_time

from .base import case_json, emit, get_app, item_json, json_option, out, print_items


@click.group("case")
def case_group() -> None:
    """Open and inspect enforcement cases (案件). CASE is the case number (案号) or the case key
    (案件代码)."""


@case_group.command("open")
@click.argument("number")
@click.option("--title", help="Short description, e.g. 占道经营.")
@click.option("--type", "case_type", help="Case type; selects the retention class if one is set.")
@click.option("--opened", metavar="DATE", help="Date of opening (default: today in the settings' zone).")
@click.option("--unit", metavar="CODE", help="Unit code for the case key (default: the settings' unit).")
@click.option("--major", is_flag=True, help="A major, complex case (kept permanently).")
@json_option
@click.pass_context
def case_open(
    ctx: click.Context,
    number: str,
    title: str | None,
    case_type: str | None,
    opened: str | None,
    unit: str | None,
    major: bool,
    as_json: bool,
) -> None:
    """Open a case. NUMBER is the case number (案号), the bureau's own, kept verbatim
    (e.g. 开城管罚立〔2020〕42号); the case also gets an ASCII case key (案件代码)."""
    app = get_app(ctx).require_catalog()
    opened_on = parse_user_date(opened) if opened else app.now().astimezone(app.settings.zone).date()
    case = archive_cases.open_case(
        app.services,
        cases.NewCase(
            number=number,
            unit=unit or app.settings.unit,
            opened_on=opened_on,
            title=title,
            case_type=case_type,
            major=major,
        ),
    )
    emit(
        as_json,
        {"number": case.number, "case_key": case.case_key},
        lambda: out.print(f"opened {case.number}  key {case.case_key}", highlight=False),
    )


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
        header = case_json(found)
        items = [item_json(i, zone) for i in case_items(session, found)]
    emit(as_json, {"case": header, "items": items}, lambda: print_items(header, items))


@case_group.command("add-doc")
@click.argument("case")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--type",
    "doc_type",
    required=True,
    help="Document type, one of [documents] types in the settings (e.g. 询问笔录).",
)
@click.option("--date", "doc_date", metavar="DATE", help="Date of the document.")
@click.option("--number", "doc_number", help="The document's own number (文书编号).")
@click.option(
    "--officer", metavar="NUMBER", help="Officer who made the record (enforcement-certificate number)."
)
@click.option(
    "--protected",
    is_flag=True,
    help="Holds secrets or personal privacy: stored encrypted, shown only with the grant.",
)
@json_option
@click.pass_context
def case_add_doc(
    ctx: click.Context,
    case: str,
    file: Path,
    doc_type: str,
    doc_date: str | None,
    doc_number: str | None,
    officer: str | None,
    protected: bool,
    as_json: bool,
) -> None:
    """Store a written record (PDF, scan, DOCX …) under the case's shared numbering."""
    app = get_app(ctx).require_catalog()
    item, doc = store_document(
        app.services,
        NewDocument(
            case,
            file,
            doc_type,
            parse_user_time(doc_date, app.settings.zone) if doc_date else None,
            doc_number,
            protected,
            officer,
        ),
        doc_types=app.settings.documents.types,
    )
    emit(
        as_json,
        {"item_no": item.item_no, "sha256": doc.sha256, "size": doc.size},
        lambda: out.print(
            f"{item.item_no}  {doc_type}  {doc.size} bytes  sha256 {doc.sha256}", highlight=False
        ),
    )


@case_group.command("pages")
@click.argument("case")
@json_option
@click.pass_context
def case_pages(ctx: click.Context, case: str, as_json: bool) -> None:
    """Draw the page images of the case's PDF records (pdftoppm), as the web pages show them
    beside the video; pages already drawn are kept. Where the web server may only read
    storage, run this after adding records. Exit 1 when a record's pages cannot be drawn."""
    from sqlalchemy import select

    from archive.document_pages import PagesFailed, document_pages
    from catalog.models import CaseItem, Document

    app = get_app(ctx).require_catalog()
    with app.reader_sessions() as session:
        found = cases.get_case(session, case)
        records = session.execute(
            select(CaseItem.item_no, Document.id)
            .join(Document, Document.id == CaseItem.document_id)
            .where(CaseItem.case_id == found.id, Document.content_type == "application/pdf")
            .order_by(CaseItem.seq)
        ).all()
    rows = []
    for item_no, document_id in records:
        try:
            rows.append({"item_no": item_no, "pages": len(document_pages(app.services, document_id))})
        except PagesFailed as exc:
            rows.append({"item_no": item_no, "pages": 0, "error": str(exc)})
    data = {"case": found.number, "case_key": found.case_key, "documents": rows}

    def human() -> None:
        for row in rows:
            what = f"{row['pages']} page(s)" if "error" not in row else f"no pages: {row['error']}"
            out.print(f"{row['item_no']}  {what}", highlight=False, markup=False)

    emit(as_json, data, human)
    if any("error" in row for row in rows):
        ctx.exit(1)


@case_group.command("link")
@click.argument("case")
@click.argument("archive_nos", nargs=-1, metavar="[ARCHIVE_NO...]")
@click.option("--officer", metavar="NUMBER", help="Link this officer's recordings (with --from/--to).")
@click.option("--device", metavar="SERIAL", help="Link this recorder's recordings (with --from/--to).")
@click.option("--from", "since", metavar="TIME", help="Start of the period (recording start time).")
@click.option("--to", "until", metavar="TIME", help="End of the period, included.")
@json_option
@click.pass_context
def case_link(
    ctx: click.Context,
    case: str,
    archive_nos: tuple[str, ...],
    officer: str | None,
    device: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Link recordings to the case, by archive number or by officer/device and period; each
    gets the case's next item number, and its storage lock is extended to the case's."""
    from catalog.views import find_recordings

    app = get_app(ctx).require_catalog()
    numbers = list(archive_nos)
    if officer or device:
        if not (since and until):
            raise click.UsageError("--officer/--device need --from and --to")
        zone = app.settings.zone
        start, end = parse_user_time(since, zone), parse_user_time(until, zone, end_of_day=True)
        with app.reader_sessions() as session:
            numbers += [
                r.archive_no
                for r in find_recordings(session, officer=officer, device=device, since=start, until=end)
                if r.status == "archived"
            ]
    elif since or until:
        raise click.UsageError("--from/--to select recordings of an --officer or --device")
    pairs = link_recordings(app.services, case, numbers)

    def human() -> None:
        for archive_no, item_no in pairs:
            out.print(f"{archive_no}  ->  {item_no}", highlight=False)

    emit(as_json, {"linked": [{"archive_no": a, "item_no": i} for a, i in pairs]}, human)


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
    emit(
        as_json,
        {"number": found.number, "case_key": found.case_key, "closed": closed_on.isoformat()},
        lambda: out.print(f"closed {found.number} ({found.case_key}) on {closed_on}", highlight=False),
    )


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
        gaps = find_gaps(
            case_items(session, found),
            on_site_types=set(cov.on_site_types),
            window=timedelta(minutes=cov.window_minutes),
        )
        rows = [
            {
                "item_no": g.item_no,
                "doc_type": g.doc_type,
                "time": local_iso(g.time, zone),
                "missing": g.missing,
                "officer": g.officer,
            }
            for g in gaps
        ]
        data = {"case": found.number, "case_key": found.case_key, "gaps": rows}

    def human() -> None:
        if not gaps:
            out.print(f"{data['case']}: every step is covered", highlight=False)
        for g in rows:
            what = g["doc_type"] or "recording"
            out.print(
                f"{g['item_no']}  {what}  {g['time']}  no {g['missing']}"
                + (f" (officer {g['officer']})" if g["officer"] else ""),
                highlight=False,
                markup=False,
            )

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
        table = Table("case key", "case number", "title", "status", "opened")
        for c in data:
            table.add_row(c["case_key"], c["number"], c["title"] or "", c["status"], c["opened"])
        out.print(table)

    emit(as_json, data, human)


def register(main: click.Group) -> None:
    main.add_command(case_group)
