"""Case pages: search, a case with its items, its coverage gaps, its export, linking recordings."""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path

from sqlalchemy import or_, select
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from archive.links import link_recordings
from catalog import audit, cases
from catalog.actions import Action
from catalog.coverage import find_gaps
from catalog.models import Case, CaseItem, Officer, Recording
from catalog.views import case_items

from .. import custody_text
from . import casefile
from .common import Refusal, event, posted, render, site, visible

# Case numbers, titles and officer numbers are far shorter; a long pattern only costs the
# database (SQLite refuses LIKE patterns over 50,000 bytes).
SEARCH_MAX = 200


def search(request: Request) -> Response:
    q = request.query_params.get("q", "").strip()
    if len(q) > SEARCH_MAX:
        raise Refusal(400, f"a search is at most {SEARCH_MAX} characters; shorten it")
    found: list[Case] = []
    if q:
        # Without the grant an officer's protected recordings must not lead to their cases.
        shown = Recording.id == CaseItem.recording_id
        if not request.state.user.protected_access:
            shown &= Recording.protected.is_(False)
        with site(request).web.reading() as session:
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
            found = list(
                session.execute(query.distinct().order_by(Case.opened_on.desc()).limit(200)).scalars()
            )
    return render(request, "search.html", q=q, cases=found)


# The case page shows the latest events of the case and its items; the audit page has all.
CASE_LOG = 200


def case(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    with web.reading() as session:
        found = cases.get_case(session, request.path_params["key"])
        items = case_items(session, found)
        index = casefile.build(request, session, found)
        # The case's own events and those of the items this account may see (a protected
        # item's events would tell its times and who handled it); values naming one redacted.
        shown = [i for i in items if visible(user, i)]
        subjects = (
            [found.case_key] + [i.item_no for i in shown] + [i.archive_no for i in shown if i.archive_no]
        )
        hidden = {n for i in items if not visible(user, i) for n in (i.item_no, i.archive_no) if n}
        log = custody_text.describe_all(
            audit.about(session, subjects, limit=CASE_LOG), web.language, web.zone, hidden=hidden
        )
    # Hidden items go last: their place in the timeline would tell their time.
    items.sort(key=lambda i: not visible(user, i))
    event(web, user, Action.VIEWED, found.case_key, page="case")
    return render(
        request,
        "case.html",
        case=found,
        items=items,
        visible=lambda i: visible(user, i),
        index=index,
        log=log,
        log_limit=CASE_LOG,
    )


def case_gaps(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    with web.reading() as session:
        found = cases.get_case(session, request.path_params["key"])
        items = case_items(session, found)
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
    folder = Path(tempfile.mkdtemp(prefix="evidence-export-"))
    # Without the grant the package withholds protected items (``verify.export``).
    # Holds this worker thread for as long as the export takes; other pages use other threads.
    path = web.export(
        found.case_key,
        folder,
        reason=reason,
        actor=f"web:{user.name}",
        include_protected=user.protected_access,
    )
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
