"""Item pages: an item with its custody log, verifying it now, plays, downloads, unlinking, holds.

Viewing, playing and downloading are custody events naming the account; a download carries
the reason asked for. Protected records show only their numbers without the grant.
"""

from __future__ import annotations

import json
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

from archive.holds import release_hold, set_hold
from archive.links import unlink_item
from archive.reading import plain_size, read_plain
from catalog import custody
from catalog.actions import Action
from catalog.errors import NotFound
from catalog.models import Case, CaseItem, Derivative, Document, Recording, User
from catalog.playback import play_type, plays_as_is
from catalog.timeline import ItemView
from catalog.verification import mark_verified
from catalog.views import case_items

from .. import custody_text
from ..replay import check_item
from .common import Refusal, event, local, posted, posted_json, render, site, visible
from .media import INLINE, served
from .security import LINK_SECONDS


def find_item(session: Session, item_no: str) -> tuple[Case, CaseItem, ItemView]:
    link = session.execute(select(CaseItem).where(CaseItem.item_no == item_no)).scalar()
    if link is None:
        raise NotFound(f"no item {item_no}")
    case_row = session.get(Case, link.case_id)
    if case_row is None:  # a foreign key: cannot happen, but say so rather than crash
        raise NotFound(f"the case of item {item_no} is missing")
    item = next(i for i in case_items(session, case_row, include_unlinked=True) if i.item_no == item_no)
    return case_row, link, item


def _shown(item: ItemView, session: Session) -> tuple[str | None, str | None, bool, str | None]:
    """(key, version, encrypted, media type) of what the page plays or shows: the original
    when browsers play it as it is (:mod:`catalog.playback`), else its proxy if any."""
    if item.archive_no is None:
        return item.storage_key, item.storage_version, item.encrypted, None
    rec = session.execute(select(Recording).where(Recording.archive_no == item.archive_no)).scalar_one()
    media = json.loads(rec.media_info or "{}")
    if plays_as_is(rec.kind, media, damaged=rec.damaged):
        return rec.storage_key, rec.storage_version, rec.encrypted, play_type(rec.kind, media)
    proxy = (
        session.execute(
            select(Derivative)
            .where(Derivative.recording_id == rec.id, Derivative.kind == "proxy", Derivative.status == "ok")
            .order_by(Derivative.id.desc())
        )
        .scalars()
        .first()
    )
    if proxy is None:
        return None, None, False, None
    return proxy.storage_key, proxy.storage_version, proxy.encrypted, None


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def _media_url(request: Request, user: User, item: ItemView, session: Session) -> str | None:
    """A signed, personal, short-lived link to what the page plays (``media.media``)."""
    key, version, encrypted, media_type = _shown(item, session)
    if not key:
        return None
    return "/media/" + site(request).signer.sign(
        "media",
        {
            "k": key,
            "v": version,
            "e": encrypted,
            "u": user.id,
            "t": media_type or _content_type(key),
            "i": item.item_no,
        },
        LINK_SECONDS,
    )


def item_page(request: Request) -> Response:
    web, user = site(request).web, request.state.user
    with web.reading() as session:
        case_row, _link, item = find_item(session, request.path_params["item_no"])
        shown = visible(user, item)
        # A written record's content is opened through ``item_document``, which records it.
        media_url = _media_url(request, user, item, session) if shown and item.archive_no else None
        row: Recording | Document | None = (
            session.execute(select(Recording).where(Recording.archive_no == item.archive_no)).scalar()
            if item.archive_no
            else session.execute(select(Document).where(Document.storage_key == item.storage_key)).scalar()
        )
        last = row.last_verified_at if row else None
        facts = {"original_name": getattr(row, "original_name", None)} if shown else {}
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
    event(web, user, Action.VIEWED, item.item_no, page="item", protected_shown=shown)
    return render(
        request,
        "item.html",
        case=case_row,
        item=item,
        visible=shown,
        media_url=media_url,
        document_inline=bool(item.storage_key) and _content_type(item.storage_key or "") in INLINE,
        facts=facts,
        last_verified=custody_text.local_time(last, web.zone) if shown else "",
        log=custody_text.describe_all(sorted(log_rows, key=lambda e: e.seq), web.language, web.zone),
        verdict=request.query_params.get("v"),
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
        url = _media_url(request, user, item, session)
    event(web, user, Action.DOCUMENT_VIEWED, item.item_no, sha256=item.sha256, content_type=content_type)
    return RedirectResponse(url or "/", 303)


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
