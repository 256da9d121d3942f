"""Item pages: an item with its custody log, verifying it now, plays, downloads, unlinking, holds.

Viewing, playing and downloading are custody events naming the account; a download carries
the reason asked for. Protected records show only their numbers without the grant.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from archive.document_pages import PagesFailed, document_pages
from archive.holds import release_hold, set_hold
from archive.links import unlink_item
from archive.reading import plain_size, read_plain
from catalog import custody
from catalog.actions import Action
from catalog.errors import NotFound
from catalog.models import Case, CaseItem, Document, Recording, User
from catalog.review import PICTURES, ItemFacts, Stored, review_facts
from catalog.timeline import ItemView
from catalog.verification import mark_verified
from catalog.views import case_items

from .. import custody_text
from ..replay import check_item
from .common import Refusal, event, local, posted, posted_json, render, site, visible
from .media import INLINE, served


def find_item(session: Session, item_no: str) -> tuple[Case, CaseItem, ItemView]:
    link = session.execute(select(CaseItem).where(CaseItem.item_no == item_no)).scalar()
    if link is None:
        raise NotFound(f"no item {item_no}")
    case_row = session.get(Case, link.case_id)
    if case_row is None:  # a foreign key: cannot happen, but say so rather than crash
        raise NotFound(f"the case of item {item_no} is missing")
    (item,) = case_items(session, case_row, include_unlinked=True, item_no=item_no, custody=False)
    return case_row, link, item


def _facts(session: Session, case_row: Case, item: ItemView) -> ItemFacts:
    return review_facts(session, [item], case_row.case_key)[item.item_no]


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def media_link(request: Request, user: User, item_no: str, stored: Stored) -> str:
    """A signed, personal, short-lived link to one stored object of an item (``media.media``)."""
    here = site(request)
    return "/media/" + here.signer.sign(
        "media",
        {
            "k": stored.key,
            "v": stored.version,
            "e": stored.encrypted,
            "u": user.id,
            "t": stored.content_type or mimetypes.guess_type(stored.key)[0] or "application/octet-stream",
            "i": item_no,
        },
        here.web.link_seconds,
    )


def hms(seconds: float | None) -> str:
    """A duration as h:mm:ss (an empty text when unknown)."""
    if seconds is None:
        return ""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def item_page(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    with web.reading() as session:
        case_row, _link, item = find_item(session, request.path_params["item_no"])
        shown = visible(user, item)
        facts = _facts(session, case_row, item) if shown else None
        # A written record's content is opened through ``item_document``, which records it.
        media_url = (
            media_link(request, user, item.item_no, facts.playable)
            if facts and facts.playable and item.archive_no
            else None
        )
        row: Recording | Document | None = (
            session.execute(select(Recording).where(Recording.archive_no == item.archive_no)).scalar()
            if item.archive_no
            else session.execute(select(Document).where(Document.storage_key == item.storage_key)).scalar()
        )
        last = row.last_verified_at if row else None
        names = {"original_name": getattr(row, "original_name", None)} if shown else {}
        # Its custody rows would tell its archive number, times, digests and who handled it.
        log_rows = (
            [
                e
                for subject in filter(None, [item.item_no, item.archive_no])
                for e in custody.events(session, subject=subject)
            ]
            if shown
            else []
        )
    pages = _page_count(web, facts) if facts and facts.content_type == "application/pdf" else 0
    event(web, user, Action.VIEWED, item.item_no, page="item", protected_shown=shown)
    return render(
        request,
        "item.html",
        pages=pages,
        case=case_row,
        item=item,
        visible=shown,
        media_url=media_url,
        facts=names,
        review=facts,
        pictures=sorted(facts.pictures) if facts else [],
        duration=hms(item.duration_s),
        start_ms=int(item.time.timestamp() * 1000) if item.time else None,
        document_inline=bool(item.storage_key) and _content_type(item.storage_key or "") in INLINE,
        last_verified=custody_text.local_time(last, web.zone) if shown else "",
        log=custody_text.describe_all(sorted(log_rows, key=lambda e: e.seq), web.language, web.zone),
        verdict=request.query_params.get("v"),
    )


def item_link(request: Request) -> Response:
    """A fresh media link for a player on a page (opening an item in the case page's viewer,
    or renewing an expired link where playback stopped). Each link given is a custody event."""
    web, user = site(request).web, request.state.user
    purpose = request.query_params.get("for", "viewer")
    if purpose not in ("viewer", "renew"):
        raise Refusal(400, "for= is viewer or renew")
    with web.reading() as session:
        case_row, _link, item = find_item(session, request.path_params["item_no"])
        if not visible(user, item):
            raise Refusal(403, "protected record")
        facts = _facts(session, case_row, item)
    event(web, user, Action.VIEWED, item.item_no, page=purpose, protected_shown=True)
    stored = facts.playable
    pages: list[str] = []
    url = media_link(request, user, item.item_no, stored) if stored else None
    if item.kind == "document":
        # A written record's content goes through the routes that record its opening.
        inline = stored is not None and stored.content_type in INLINE
        url = f"/items/{item.item_no}/document" if inline else None
        if facts.content_type == "application/pdf":
            pages = [f"/items/{item.item_no}/pages/{n}" for n in range(1, _page_count(web, facts) + 1)]
    return JSONResponse(
        {
            "item": item.item_no,
            "kind": item.kind,
            "url": url,
            "source": stored.source if stored else None,
            "sha256": stored.sha256 if stored else None,
            "content_type": stored.content_type if stored else None,
            "start_ms": int(item.time.timestamp() * 1000) if item.time else None,
            "duration_s": item.duration_s,
            "clock_suspect": facts.clock_suspect,
            "doc_type": item.doc_type,
            "pages": pages,
            "expires_s": web.link_seconds,
        },
        headers={"Cache-Control": "no-store"},
    )


def _page_count(web, facts: ItemFacts) -> int:
    assert facts.document_id is not None
    try:
        return len(document_pages(web.services, facts.document_id))
    except PagesFailed:
        return 0


def _stream(web, key: str, version: str | None, encrypted: bool, *, media_type: str, name: str) -> Response:
    size = plain_size(web.store, key, version, encrypted)
    kind, headers = served(media_type, name)
    return StreamingResponse(
        read_plain(web.store, key, version, encrypted=encrypted, kek=web.services.kek_for(encrypted)),
        media_type=kind,
        headers={**headers, "Content-Length": str(size)},
    )


def item_picture(request: Request) -> Response:
    """The poster, contact sheet or waveform made at ingest."""
    web, user = site(request).web, request.state.user
    kind = request.path_params["kind"]
    if kind not in PICTURES:
        raise Refusal(404, f"pictures are {', '.join(PICTURES)}")
    with web.reading() as session:
        case_row, _link, item = find_item(session, request.path_params["item_no"])
        if not visible(user, item):
            raise Refusal(403, "protected record")
        stored = _facts(session, case_row, item).pictures.get(kind)
    if stored is None:
        raise Refusal(404, f"no {kind} was made for {item.item_no}")
    return _stream(
        web,
        stored.key,
        stored.version,
        stored.encrypted,
        media_type=stored.content_type,
        name=f"{item.item_no}-{kind}",
    )


def document_page(request: Request) -> Response:
    """One page of a PDF document as an image, drawn on first need (``archive.document_pages``)."""
    web, user = site(request).web, request.state.user
    try:
        number = int(request.path_params["page"])
    except ValueError:
        raise Refusal(404, "pages are numbered from 1") from None
    with web.reading() as session:
        case_row, _link, item = find_item(session, request.path_params["item_no"])
        if not visible(user, item):
            raise Refusal(403, "protected record")
        facts = _facts(session, case_row, item)
    if facts.document_id is None or facts.content_type != "application/pdf":
        raise Refusal(404, f"{item.item_no} has no pages (only PDF documents do)")
    found = {p.page: p for p in document_pages(web.services, facts.document_id)}
    if number not in found:
        raise Refusal(404, f"{item.item_no} has {len(found)} page(s)")
    page = found[number]
    event(
        web,
        user,
        Action.DOCUMENT_VIEWED,
        item.item_no,
        sha256=item.sha256,
        content_type="image/png",
        page=number,
        page_sha256=page.sha256,
    )
    return _stream(
        web,
        page.storage_key,
        page.storage_version,
        page.encrypted,
        media_type="image/png",
        name=f"{item.item_no}-p{number}.png",
    )


def item_verify(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    with web.reading() as session:
        _case, _link, item = find_item(session, request.path_params["item_no"])
    # Re-reads the whole object: long for a large recording, so never on the event loop.
    verdict = check_item(web.store, item, web.services.kek_for(item.encrypted))
    with web.sessions.begin() as session:
        if verdict == "ok" and item.archive_no:
            mark_verified(session, at=web.now(), archive_nos=[item.archive_no])
        elif verdict == "ok" and item.storage_key:
            mark_verified(session, at=web.now(), document_keys=[item.storage_key])
        custody.append(
            session,
            actor=f"web:{user.name}",
            action=Action.VERIFIED,
            subject=item.item_no,
            details={"result": verdict},
        )
    return RedirectResponse(f"/items/{item.item_no}?v={verdict}", 303)


def item_play(request: Request) -> Response:
    """The page reports a play (start position, watched seconds) when the player pauses or ends."""
    web, user = site(request).web, request.state.user
    if "application/json" not in request.headers.get("content-type", ""):
        raise Refusal(400, 'send the play as JSON: {"start": seconds, "watched": seconds}')
    try:
        body = posted_json(request)
        start, watched = float(body.get("start", 0)), float(body.get("watched", 0))
    except (TypeError, ValueError, AttributeError):
        raise Refusal(400, "start and watched must be numbers") from None
    if not (0 <= start < 10**6 and 0 <= watched < 10**6):
        raise Refusal(400, "start and watched out of range")
    with web.reading() as session:
        _case, _link, item = find_item(session, request.path_params["item_no"])
    if not visible(user, item):
        raise Refusal(403, "protected record")
    event(
        web,
        user,
        Action.PLAYED,
        item.item_no,
        # Integer milliseconds: custody records hold no floats (``catalog.jcs``).
        start_ms=round(start * 1000),
        watched_ms=round(watched * 1000),
        archive_no=item.archive_no,
    )
    return JSONResponse({"ok": True})


def item_document(request: Request) -> Response:
    """Open a written record in the browser: a custody event of its own (``document_viewed``),
    distinct from the page view and from a download; then a short-lived link to its content.
    Types a browser could run script from are never shown, only downloaded with a reason."""
    web, user = site(request).web, request.state.user
    with web.reading() as session:
        _case, _link, item = find_item(session, request.path_params["item_no"])
        if item.archive_no is not None or item.storage_key is None:
            raise Refusal(404, "only a written record is opened here; a recording plays on its page")
        if not visible(user, item):
            raise Refusal(403, "protected record")
        content_type = _content_type(item.storage_key)
        if content_type not in INLINE:
            raise Refusal(415, f"{content_type} is not shown in the browser: download it with a reason")
        stored = Stored(
            "original", item.storage_key, item.storage_version, item.encrypted, content_type, item.sha256
        )
        url = media_link(request, user, item.item_no, stored)
    event(web, user, Action.DOCUMENT_VIEWED, item.item_no, sha256=item.sha256, content_type=content_type)
    return RedirectResponse(url, 303)


def item_download(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    reason = request.query_params.get("reason", "").strip()
    if not reason:
        raise Refusal(400, "a download needs a reason")
    with web.reading() as session:
        _case, _link, item = find_item(session, request.path_params["item_no"])
    if not visible(user, item):
        raise Refusal(403, "protected record")
    if item.storage_key is None:
        raise Refusal(404, "nothing is stored for this item")
    size = plain_size(web.store, item.storage_key, item.storage_version, item.encrypted)
    event(web, user, Action.DOWNLOADED, item.item_no, reason=reason, sha256=item.sha256, size=size)
    media_type, headers = served("", f"{item.item_no}{Path(item.storage_key).suffix}", download=True)
    # A plain (sync) iterator: StreamingResponse reads each chunk in the thread pool.
    return StreamingResponse(
        read_plain(
            web.store,
            item.storage_key,
            item.storage_version,
            encrypted=item.encrypted,
            kek=web.services.kek_for(item.encrypted),
        ),
        media_type=media_type,
        headers={**headers, "Content-Length": str(size)},
    )


def item_unlink(request: Request) -> Response:
    web = site(request).web
    reason = str(posted(request).get("reason", ""))
    with web.reading() as session:
        case_row, _link, item = find_item(session, request.path_params["item_no"])
    unlink_item(web.acting(request.state.user), case_row.case_key, item.item_no, reason=reason)
    return RedirectResponse(f"/cases/{case_row.case_key}", 303)


def _hold(request: Request, change: Callable[..., object]) -> Response:
    form = posted(request)
    change(
        site(request).web.acting(request.state.user),
        request.path_params["subject"],
        reason=str(form.get("reason", "")),
    )
    return RedirectResponse(local(str(form.get("back") or "/")), 303)


def hold_set(request: Request) -> Response:
    return _hold(request, set_hold)


def hold_release(request: Request) -> Response:
    return _hold(request, release_hold)
