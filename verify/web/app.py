"""The auditors' web pages (Starlette, server-rendered with Jinja, a little plain JavaScript).

This module builds the app: the site's parts on ``app.state.site``, the route table, and the
access gate (``gate.py``) that applies each route's rule in ``access.RULES`` to every request.
The handlers live by area: ``session`` (sign in and out), ``cases``, ``items``, ``media`` and
``admin``. Every view of an item, every play (start position and watched duration, reported
by the page), every download and every export is a custody event naming the account;
downloads and exports ask for a reason, which the event keeps.

Handlers are plain functions run in Starlette's thread pool (see ``common.py``), so a long
export or verification holds one worker thread, not the event loop.
"""

from __future__ import annotations

import contextlib
import functools
from datetime import timedelta
from pathlib import Path

import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from catalog import audit as catalog_audit
from catalog.times import local_iso

from .. import custody_text
from . import admin, audit, casefile, cases, health, items, media, session
from .common import Site, flush_refusals
from .context import WebContext
from .gate import AccessGate
from .headers import SecurityHeaders
from .i18n import translator
from .security import LoginThrottle, RefusalCounter, Signer

__all__ = ["WebContext", "create_app"]

HERE = Path(__file__).parent
# Worker threads for handlers and streamed bodies. Exports and verifications hold one each
# for as long as they run, so the pool is larger than anyio's default of 40 to keep threads
# free for pages while several run.
THREADS = 100


def routes() -> list[BaseRoute]:
    """The route table; every route needs a rule in ``access.RULES`` (else it answers 403)."""
    return [
        Route("/healthz", health.healthz, methods=["GET"], name="healthz"),
        Route("/login", session.login, methods=["GET"], name="login"),
        Route("/login", session.login_post, methods=["POST"], name="login_post"),
        Route("/logout", session.logout, methods=["POST"], name="logout"),
        Route("/", cases.search, methods=["GET"], name="search"),
        Route("/cases/{key:path}/file.pdf", casefile.case_file_pdf, methods=["GET"], name="case_file_pdf"),
        Route("/cases/{key:path}/gaps", cases.case_gaps, methods=["GET"], name="case_gaps"),
        Route("/cases/{key:path}/export", cases.case_export, methods=["POST"], name="case_export"),
        Route("/exports/{event:int}", cases.export_fetch, methods=["GET"], name="export_fetch"),
        Route("/cases/{key:path}/link", cases.case_link, methods=["POST"], name="case_link"),
        Route("/cases/{key:path}", cases.case, methods=["GET"], name="case"),
        Route("/items/{item_no}", items.item_page, methods=["GET"], name="item"),
        Route("/items/{item_no}/verify", items.item_verify, methods=["POST"], name="item_verify"),
        Route("/items/{item_no}/play", items.item_play, methods=["POST"], name="item_play"),
        Route("/items/{item_no}/download", items.item_download, methods=["GET"], name="item_download"),
        Route("/items/{item_no}/link", items.item_link, methods=["GET"], name="item_link"),
        Route("/items/{item_no}/pictures/{kind}", items.item_picture, methods=["GET"], name="item_picture"),
        Route("/items/{item_no}/pages/{page}", items.document_page, methods=["GET"], name="document_page"),
        Route("/items/{item_no}/document", items.item_document, methods=["GET"], name="item_document"),
        Route("/items/{item_no}/unlink", items.item_unlink, methods=["POST"], name="item_unlink"),
        Route("/holds/{subject:path}/set", items.hold_set, methods=["POST"], name="hold_set"),
        Route("/holds/{subject:path}/release", items.hold_release, methods=["POST"], name="hold_release"),
        Route("/media/{token}", media.media, methods=["GET"], name="media"),
        Route("/admin/users", admin.users, methods=["GET"], name="users"),
        Route("/admin/users", admin.users_add, methods=["POST"], name="users_add"),
        Route("/admin/users/{name}/logout", admin.users_logout, methods=["POST"], name="users_logout"),
        Route("/audit", audit.audit_page, methods=["GET"], name="audit"),
        Route("/audit/events.csv", audit.audit_csv, methods=["GET"], name="audit_csv"),
        Route("/audit/verify", audit.audit_verify, methods=["POST"], name="audit_verify"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(limiter.total_tokens, THREADS)
    yield
    # The counts of the last minutes are not lost.
    await run_in_threadpool(flush_refusals, app.state.site, everything=True)


def _failed_logins(ctx: WebContext, seconds: float) -> list[tuple[str, str]]:
    with ctx.reading() as session:
        return catalog_audit.failed_logins(session, ctx.now() - timedelta(seconds=seconds))


def create_app(ctx: WebContext) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    t = translator(ctx.language)
    templates.env.globals.update(
        t=t,
        lang=ctx.language,
        iso=lambda moment: local_iso(moment, ctx.zone) or "",
        zone_name=ctx.zone.key,
        local=lambda moment: custody_text.local_time(moment, ctx.zone),
        zone_offset=lambda: custody_text.zone_offset(ctx.now(), ctx.zone),
        action_name=lambda code: custody_text.action_name(code, ctx.language),
        word=lambda text: custody_text.value_text("kind", text, ctx.language, ctx.zone),
    )
    here = Site(
        web=ctx,
        templates=templates,
        signer=Signer(ctx.secret),
        throttle=LoginThrottle(functools.partial(_failed_logins, ctx)),
        refusals=RefusalCounter(),
        t=t,
    )
    app = Starlette(
        routes=routes(),
        middleware=[Middleware(SecurityHeaders, store=ctx.store), Middleware(AccessGate)],
        lifespan=lifespan,
    )
    app.state.site = here
    app.state.chain = audit.ChainState()
    app.state.refusals = here.refusals
    app.state.flush_refusals = functools.partial(flush_refusals, here)
    return app
