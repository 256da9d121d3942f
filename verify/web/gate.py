"""The access gate: the one place where ``access.RULES`` is applied, to every request.

``AccessGate`` is the app's only middleware of its own (``app.create_app`` installs it). A
pure ASGI middleware runs before routing, so the gate finds the route itself the way the
router will: the first of ``app.routes`` whose ``matches(scope)`` is FULL (the same routes in
the same order, so the same route). Every route is covered that way: pages, forms, media
links, downloads, exports and the static files (a ``Mount``), and any route added later to
the table. A request no route fully matches goes on to the router unchecked; the router then
answers 404, 405 or a slash redirect and serves nothing.

For a matched route, in this order:

- the refusals without a session of the minutes that are over are recorded
  (``Action.REFUSED_ANONYMOUS``, one event per source and minute);
- the session cookie is checked, its server-side session (``WebSession``: not ended, idle or
  too old) and its account loaded (enabled, password unchanged);
- a route without a rule answers 403; a public route goes through;
- without a session: a page's GET is redirected to ``/login?next=…``, anything else
  (content routes in ``access.CONTENT``, every POST) answers 401, and the refusal is
  counted for its source and minute;
- a role below the rule answers 403;
- a POST must carry the session's CSRF token (``X-CSRF-Token`` header or ``csrf`` field),
  compared in constant time; the body read for it is handed on to the handler.

Refusals raised here or by a handler (``common.Refusal``) answer the error page with their
status, and a signed-in one is a custody event (``Action.REFUSED``); ``NotFound`` answers 404
and any other ``EvidenceError`` 400. Database work here runs in the thread pool.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.actions import Action
from catalog.errors import EvidenceError, NotFound
from catalog.models import User
from catalog.users import live_session, role_allows

from .access import CONTENT, PUBLIC, RULES
from .common import (
    COOKIE,
    Refusal,
    Site,
    error_page,
    event,
    record_refusal_counts,
    site,
    source,
)


class AccessGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        here = site(request)
        finished = here.refusals.take_finished()
        if finished:
            await run_in_threadpool(record_refusal_counts, here.web, finished)
        user, data = (
            await run_in_threadpool(signed_in, here, request.cookies[COOKIE])
            if COOKIE in request.cookies
            else (None, None)
        )
        request.state.user, request.state.session = user, data
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        name = route.name  # type: ignore[attr-defined]  # every route has a name
        try:
            response, receive = await _admit(request, name, user, data)
            if response is None:
                await self.app(scope, receive, sending)
                return
        except Refusal as refused:
            if started:
                raise
            if user is not None:
                await run_in_threadpool(
                    event,
                    here.web,
                    user,
                    Action.REFUSED,
                    request.url.path,
                    route=name,
                    role=user.role,
                    why=refused.why,
                )
            response = error_page(request, refused.status, refused.why)
        except NotFound as exc:
            if started:
                raise
            response = error_page(request, 404, exc.message)
        except EvidenceError as exc:
            if started:
                raise
            response = error_page(request, 400, str(exc))
        except HTTPException as exc:  # an unreadable form, read here for its CSRF token
            if started:
                raise
            response = PlainTextResponse(str(exc.detail), exc.status_code, headers=exc.headers)
        await response(scope, receive, send)


def _route(scope: Scope) -> BaseRoute | None:
    """The route the router will take: the first one that matches fully."""
    for route in scope["app"].router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def signed_in(here: Site, token: str) -> tuple[User | None, dict[str, Any] | None]:
    """The session's account and data; (None, None) for a forged, expired, ended or stale
    session. Every admitted request (pages, play reports, media fetches) counts as activity."""
    data = here.signer.unsign("session", token)
    if data is None or not isinstance(data.get("sid"), str):
        return None, None
    web = here.web
    with web.sessions.begin() as session:
        user = session.get(User, data["uid"])
        if user is None or user.disabled or data.get("pw") != int(user.password_changed_at.timestamp()):
            return None, None
        if not live_session(
            session, data["sid"], user.id, web.now(), idle=web.session_idle, lifetime=web.session_lifetime
        ):
            return None, None
        session.expunge(user)
    return user, data


async def _admit(
    request: Request, name: str, user: User | None, data: dict[str, Any] | None
) -> tuple[Response | None, Receive]:
    """(None, the receive to hand on) to let the request through, or (the answer, …) to stop it;
    refusals are raised."""
    rule = RULES.get(name)
    if rule is None:
        raise Refusal(403, "no access rule for this page")
    if rule == PUBLIC:
        return None, request.receive
    if user is None:
        site(request).refusals.add(source(request))
        if request.method == "GET" and name not in CONTENT:
            return RedirectResponse(f"/login?next={request.url.path}", 303), request.receive
        raise Refusal(401, "sign in first")
    if not role_allows(user.role, rule):
        raise Refusal(403, f"the {user.role} role may not use {name}")
    if request.method != "POST":
        return None, request.receive
    body = await request.body()
    if not await _csrf_ok(request, (data or {}).get("csrf")):
        raise Refusal(403, "missing or wrong CSRF token")
    return None, _replay(body, request.receive)


async def _csrf_ok(request: Request, expected: Any) -> bool:
    form = await request.form() if "form" in request.headers.get("content-type", "") else {}
    token = request.headers.get("x-csrf-token") or form.get("csrf")
    if not isinstance(token, str) or not isinstance(expected, str):
        return False  # absent, or a file field named csrf
    try:
        # compare_digest raises TypeError on non-ASCII str: compare bytes; tokens are ASCII.
        return hmac.compare_digest(token.encode("ascii"), expected.encode("ascii"))
    except UnicodeEncodeError:
        return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the handler the body the gate has read, then the client's messages."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
