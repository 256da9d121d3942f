"""Case pages: search, a case with its items, its coverage gaps, its export, linking recordings."""

from __future__ import annotations

import shutil
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import or_, select
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from archive.links import link_recordings
from catalog import audit, cases
from catalog.actions import Action
from catalog.case_list import PER_PAGE, Filters, find_number, held_keys, list_cases
from catalog.coverage import find_gaps
from catalog.models import Case, CaseItem, Officer, Recording
from catalog.review import ItemFacts, review_facts
from catalog.timeline import ItemView
from catalog.views import case_items
from verify.export import ExportResult, find_pending, finish_pending

from .. import custody_text
from . import casefile, timeaxis
from .common import Refusal, event, posted, render, site, visible
from .items import hms, media_link

# Case numbers, titles and officer numbers are far shorter; a long pattern only costs the
# database (SQLite refuses LIKE patterns over 50,000 bytes).
SEARCH_MAX = 200


def _filters(request: Request) -> Filters:
    args = request.query_params
    status = args.get("status") or None
    if status not in (None, "open", "closed"):
        raise Refusal(400, "status is open or closed")
    texts = {k: args.get(k, "").strip()[:SEARCH_MAX] or None for k in ("case_type", "officer", "unit")}
    return Filters(
        status=status,
        held=args.get("held") == "1",
        opened_from=_date_arg(args.get("from", "")),
        opened_to=_date_arg(args.get("to", "")),
        **texts,
    )


def _date_arg(text: str) -> date | None:
    if not text.strip():
        return None
    found = _maybe_date(text.strip())
    if found is None:
        raise Refusal(400, f"{text[:40]!r} is not a date; write it as 2020-11-05")
    return found


def search(request: Request) -> Response:
    """The start page: the cases by filters, a page at a time; a number typed in the search
    box goes straight to what it names (or lists the cases it leads to)."""
    q = request.query_params.get("q", "").strip()
    if len(q) > SEARCH_MAX:
        raise Refusal(400, f"a search is at most {SEARCH_MAX} characters; shorten it")
    try:
        page = max(1, min(int(request.query_params.get("page", "1")), 10**6))
    except ValueError:
        raise Refusal(400, "page is a number") from None
    user = request.state.user
    filters = _filters(request)
    found: list[Case] = []
    note = ""
    with site(request).web.reading() as session:
        if q:
            target = find_number(session, q, protected_access=user.protected_access)
            if target is not None and target.item_no:
                return RedirectResponse(f"/items/{quote(target.item_no)}", 303)
            if target is not None and target.case_key:
                return RedirectResponse(f"/cases/{quote(target.case_key)}", 303)
            if target is not None and not target.cases:
                note = "not_in_case"
            found = _text_search(session, q, user.protected_access)
            if target is not None and target.cases:
                keys = set(target.cases)
                found = [c for c in found if c.case_key not in keys] + list(
                    session.execute(select(Case).where(Case.case_key.in_(keys))).scalars()
                )
                found.sort(key=lambda c: (c.opened_on, c.id), reverse=True)
            total = len(found)
        else:
            found, total = list_cases(session, filters, protected_access=user.protected_access, page=page)
        held = held_keys(session, found)
    pages = max(1, -(-total // PER_PAGE))
    args = {k: v for k, v in request.query_params.items() if k != "page" and v}
    return render(
        request,
        "search.html",
        q=q,
        cases=found,
        total=total,
        page=page,
        pages=pages,
        held=held,
        filters=filters,
        note=note,
        page_link=lambda n: "/?" + urlencode({**args, "page": n}),
    )


def _text_search(session, q: str, protected_access: bool) -> list[Case]:
    """Cases whose number, key or title contains the text, or opened on that date."""
    shown = Recording.id == CaseItem.recording_id
    if not protected_access:  # an officer's protected recordings must not lead to their cases
        shown &= Recording.protected.is_(False)
    query = (
        select(Case)
        .outerjoin(CaseItem, CaseItem.case_id == Case.id)
        .outerjoin(Recording, shown)
        .outerjoin(Officer, Officer.id == Recording.officer_id)
        .where(
            or_(
                Case.number.contains(q),
                Case.case_key.contains(q),
                Case.title.contains(q),
                Officer.number == q,
                Case.opened_on == _maybe_date(q),
            )
        )
    )
    return list(session.execute(query.distinct().order_by(Case.opened_on.desc()).limit(200)).scalars())


# Streams the synchronized player takes at once (the case's recordings in the view shown).
SYNC_MAX = 8


# The case page shows the latest events of the case and its items; the audit page has all.
CASE_LOG = 50


def case(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    centre, seconds = _zoom_args(request, web.zone)
    with web.reading() as session:
        found = cases.get_case(session, request.path_params["key"])
        items = case_items(session, found, custody=False)
        shown = [i for i in items if visible(user, i)]
        facts = review_facts(session, shown, found.case_key)
        # Gaps are found over every item (a protected recording still covers its documents);
        # the axis draws only what this account may see.
        gaps = find_gaps(items, on_site_types=web.on_site_types, window=web.coverage_window)
        index = casefile.build(request, session, found, items, gaps)
        # The case's own events and those of the items this account may see (a protected
        # item's events would tell its times and who handled it); values naming one redacted.
        subjects = (
            [found.case_key] + [i.item_no for i in shown] + [i.archive_no for i in shown if i.archive_no]
        )
        hidden_numbers = {n for i in items if not visible(user, i) for n in (i.item_no, i.archive_no) if n}
        log = custody_text.describe_all(
            audit.about(session, subjects, limit=CASE_LOG), web.language, web.zone, hidden=hidden_numbers
        )
    hidden = [i for i in items if not visible(user, i)]
    hidden_nos = {i.item_no for i in hidden}
    axis = None
    whole = timeaxis.whole_case(shown)
    if whole is not None:
        axis = timeaxis.layout(
            shown,
            [g for g in gaps if g.item_no not in hidden_nos],
            zone=web.zone,
            window=web.coverage_window,
            whole=whole,
            shown=timeaxis.view(whole, centre, seconds),
            suspect=frozenset(n for n, f in facts.items() if f.clock_suspect),
        )
    streams: list[tuple[ItemView, ItemFacts, str]] = []
    if axis is not None:
        for i in shown:
            fact = facts[i.item_no]
            if i.kind in ("video", "audio") and i.time and fact.playable and len(streams) < SYNC_MAX:
                end = i.time + timedelta(seconds=i.duration_s or 0)
                if end >= axis.start and i.time <= axis.end:
                    streams.append((i, fact, media_link(request, user, i.item_no, fact.playable)))
    sync_from = min((i.time for i, _, _ in streams if i.time), default=None)
    sync_to = max(
        (i.time + timedelta(seconds=i.duration_s or 0) for i, _, _ in streams if i.time), default=None
    )
    event(web, user, Action.VIEWED, found.case_key, page="case")
    return render(
        request,
        "case.html",
        case=found,
        items=shown + hidden,  # hidden items go last: their place in time would tell their time
        visible=lambda i: visible(user, i),
        facts=facts,
        axis=axis,
        gaps=[g for g in gaps if g.item_no not in hidden_nos],
        streams=streams,
        sync_from_ms=int(sync_from.timestamp() * 1000) if sync_from else 0,
        sync_seconds=round((sync_to - sync_from).total_seconds(), 1) if sync_from and sync_to else 0,
        hms=hms,
        zone=web.zone,
        local_hm=lambda moment: moment.astimezone(web.zone).strftime("%H:%M:%S") if moment else "",
        zoom_link=lambda at, span: (
            f"/cases/{quote(found.case_key)}?"
            + urlencode({"at": at.astimezone(web.zone).strftime("%Y-%m-%dT%H:%M:%S"), "span": span})
        ),
        whole_link=f"/cases/{quote(found.case_key)}",
        index=index,
        log=log,
        log_limit=CASE_LOG,
    )


def _zoom_args(request: Request, zone) -> tuple[datetime | None, float | None]:
    at, span = request.query_params.get("at", ""), request.query_params.get("span", "")
    if not at and not span:
        return None, None
    try:
        centre = datetime.fromisoformat(at[:40])
        seconds = float(span[:20])
    except ValueError:
        raise Refusal(400, "at is a local time (2020-11-05T09:30:00) and span seconds") from None
    if not 0 < seconds < 10**9:
        raise Refusal(400, "span is a positive number of seconds")
    return (centre if centre.tzinfo else centre.replace(tzinfo=zone)), seconds


def case_gaps(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    with web.reading() as session:
        found = cases.get_case(session, request.path_params["key"])
        items = case_items(session, found, custody=False)
    gaps = find_gaps(items, on_site_types=web.on_site_types, window=web.coverage_window)
    # Gaps are found over every item (a protected recording still covers its documents); a
    # protected item's own gap shows only its number.
    hidden = {i.item_no for i in items if not visible(user, i)}
    gaps.sort(key=lambda g: g.item_no in hidden)
    return render(request, "gaps.html", case=found, gaps=gaps, hidden=hidden)


def case_export(request: Request) -> Response:
    web = site(request).web
    reason = str(posted(request).get("reason", "")).strip()
    if not reason:
        raise Refusal(400, "an export needs a reason")
    if web.export is None:
        raise Refusal(503, "export is not available on this server")
    user = request.state.user
    with web.reading() as session:
        found = cases.get_case(session, request.path_params["key"])
    if web.exports is not None:
        web.exports.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = Path(tempfile.mkdtemp(prefix="evidence-export-", dir=web.exports))
    # Without the grant the package withholds protected items (``verify.export``).
    # Holds this worker thread for as long as the export takes; other pages use other threads.
    result = web.export(
        found.case_key,
        folder,
        reason=reason,
        actor=f"web:{user.name}",
        include_protected=user.protected_access,
    )
    return _package_or_pending(request, result, folder)


def export_fetch(request: Request) -> Response:
    """A package prepared earlier by the same account: finished (and served) once a checkpoint
    covers its export event, else still pending."""
    web, user = site(request).web, request.state.user
    event = int(request.path_params["event"])
    # Only the server's own exports folder is searched: never a shared temporary folder, where
    # anyone could plant a "pending" package under another account's name.
    work = find_pending(web.exports, event, f"web:{user.name}") if web.exports is not None else None
    if work is None:
        raise Refusal(404, "no export of yours waits under this number")
    return _package_or_pending(request, finish_pending(web.sessions, work), work.parent)


def _package_or_pending(request: Request, result: Any, folder: Path) -> Response:
    if isinstance(result, ExportResult) and result.pending:
        # The package is final only once a checkpoint signs its export event (every 15 minutes).
        return render(request, "export_pending.html", status=202, event=result.event)
    path = result.path if isinstance(result, ExportResult) else Path(result)
    return FileResponse(
        path,
        filename=path.name,
        media_type="application/zip",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def case_link(request: Request) -> Response:
    numbers = str(posted(request).get("archive_nos", "")).split()
    key = request.path_params["key"]
    link_recordings(site(request).web.acting(request.state.user), key, numbers)
    return RedirectResponse(f"/cases/{key}", 303)


def _maybe_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
