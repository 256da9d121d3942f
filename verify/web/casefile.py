"""The case file (卷宗目录) as a PDF made by the server; its download is a custody event.

The same index prints from the case page (its print stylesheet); the PDF is for sending and
filing. A download needs a reason, which the event keeps with the file's SHA-256.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from catalog import cases
from catalog.actions import Action

from ..casefile import PdfUnavailable, case_file, render_pdf
from .common import Refusal, event, site


def build(request: Request, session, found, items=None, gaps=None):
    web, user = site(request).web, request.state.user
    return case_file(
        session,
        found,
        show_protected=user.protected_access,
        zone=web.zone,
        lang=web.language,
        printed_by=user.name,
        now=web.now(),
        on_site_types=web.on_site_types,
        window=web.coverage_window,
        items=items,
        found_gaps=gaps,
    )


def case_file_pdf(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    reason = request.query_params.get("reason", "").strip()
    if not reason:
        raise Refusal(400, "a download of the case file needs a reason")
    if len(reason) > 1000:
        raise Refusal(400, "a reason is at most 1000 characters")
    with web.reading() as session:
        found = cases.get_case(session, request.path_params["key"])
        index = build(request, session, found)
    try:
        pdf = render_pdf(index, web.language, font=web.pdf_font)
    except PdfUnavailable as exc:
        raise Refusal(503, str(exc)) from None
    event(
        web,
        user,
        Action.DOWNLOADED,
        found.case_key,
        reason=reason,
        format="pdf",
        printed="case_file",
        items=len(index.lines),
        sha256=hashlib.sha256(pdf).hexdigest(),
        size=len(pdf),
    )
    name = f"{found.case_key}-file.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"},
    )
