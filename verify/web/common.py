"""What the handler modules share: the site's parts, rendering, custody events, posted input.

Handlers are plain functions (``def``), which Starlette runs in its thread pool: their
database calls, store reads, exports, verifications and password hashes never run on the
event loop, so one long export does not hold up the other pages. They find the site's parts
with ``site(request)`` (``app.state.site``, set up once by ``app.create_app``) and the account
signed in on ``request.state.user`` / ``request.state.session``, put there by the access gate
(``gate.py``), which also turns a raised ``Refusal``, ``NotFound`` or other ``EvidenceError``
into the error page.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.from_thread
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from catalog import custody
from catalog.actions import Action
from catalog.models import User

from .context import WebContext
from .security import LoginThrottle, RefusalCounter, Signer

COOKIE = "evidence_session"


class Refusal(Exception):
    """A request refused with this HTTP status; the gate records it and shows the error page."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status, self.why = status, why


@dataclass
class Site:
    """The parts of one web app that handlers use (``app.state.site``)."""

    web: WebContext
    templates: Jinja2Templates
    signer: Signer
    throttle: LoginThrottle
    refusals: RefusalCounter
    t: Callable[[str], str]


def site(request: Request) -> Site:
    return request.app.state.site


def source(request: Request) -> str:
    """The client's address: the socket peer, or, when the peer is a trusted proxy, the last
    address in X-Forwarded-For that is not one (a client can prepend anything it likes)."""
    peer = request.client.host if request.client else "unknown"
    proxies = site(request).web.trusted_proxies
    if not proxies or not _within(peer, proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _within(hop, proxies):
            return hop if _is_address(hop) else peer  # garbage from the client: not a source
    return peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def event(web: WebContext, user: User | None, action: Action, subject: str | None, **details: Any) -> None:
    """Append one custody event naming the account (database work: call it off the event loop)."""
    with web.sessions.begin() as session:
        custody.append(
            session,
            actor=f"web:{user.name}" if user else "web:anonymous",
            action=action,
            subject=subject,
            details=details,
        )


def record_refusal_counts(web: WebContext, finished: list[tuple[str, int, int]]) -> None:
    for src, minute, count in finished:
        event(
            web,
            None,
            Action.REFUSED_ANONYMOUS,
            None,
            source=src,
            minute=datetime.fromtimestamp(minute * 60, UTC).isoformat(),
            count=count,
        )


def flush_refusals(here: Site, *, everything: bool = False) -> None:
    """Record the anonymous refusals of the minutes that are over (or of all of them)."""
    record_refusal_counts(here.web, here.refusals.take_finished(everything=everything))


def render(request: Request, name: str, *, status: int = 200, **context: Any) -> Response:
    data = request.state.session or {}
    return site(request).templates.TemplateResponse(
        request,
        name,
        {"user": request.state.user, "csrf": data.get("csrf", ""), **context},
        status_code=status,
    )


def error_page(request: Request, status: int, why: str) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": why}, status_code=status)
    return site(request).templates.TemplateResponse(
        request, "error.html", {"status": status, "why": why, "user": request.state.user}, status_code=status
    )


def posted(request: Request) -> FormData:
    """The posted form, read on the event loop for a handler running in a worker thread."""

    async def read() -> FormData:
        return await request.form()

    return anyio.from_thread.run(read)


def posted_json(request: Request) -> Any:
    """The posted JSON body (``ValueError`` when it is not JSON), read as ``posted`` reads."""

    async def read() -> Any:
        return await request.json()

    return anyio.from_thread.run(read)


def local(path: str) -> str:
    """Only paths of this site are redirect targets (no open redirect to another host)."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


def visible(user: User, item) -> bool:
    """Whether this account may see the item's content (protected records need the grant)."""
    return not item.protected or user.protected_access
