"""The auditors' web pages (Starlette, server-rendered with Jinja, a little plain JavaScript).

Every request passes one gate (``_gate``): the route's rule in ``access.RULES``,
a valid session of an enabled account with the role the rule names, and a
CSRF token on every form. Signed-in refusals are custody events; refusals
without a session are counted per source and minute. Every view of an item,
every play (start position and watched duration, reported by the page), every
download and every export is a custody event naming the account; downloads
and exports ask for a reason, which the event keeps.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from archive.accounts import add_account
from archive.context import ServiceContext
from archive.holds import release_hold, set_hold
from archive.links import link_recordings, unlink_item
from archive.reading import plain_size, playback_url, read_plain
from archive.store import ObjectStore
from catalog import cases, custody
from catalog.actions import Action
from catalog.coverage import find_gaps
from catalog.errors import EvidenceError, NotFound
from catalog.models import (
    Case,
    CaseItem,
    Derivative,
    Document,
    Officer,
    Recording,
    User,
)
from catalog.times import local_iso
from catalog.users import authenticate, role_allows
from catalog.views import case_items

from ..replay import check_item
from .access import PUBLIC, RULES
from .i18n import translator
from .security import (
    LINK_SECONDS,
    SESSION_SECONDS,
    LoginThrottle,
    RefusalCounter,
    Signer,
    new_csrf,
)

log = logging.getLogger("evidence.web")
HERE = Path(__file__).parent
COOKIE = "evidence_session"


@dataclass
class WebContext:
    """What the pages need, handed over by ``config`` (which alone reads settings)."""

    services: ServiceContext
    zone: ZoneInfo
    secret: bytes
    language: str = "zh"
    on_site_types: set[str] = field(default_factory=set)
    coverage_window: timedelta = timedelta(hours=1)
    export: Callable[..., Path] | None = None  # (case, reason, user) -> zip path

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.services.sessions

    @property
    def store(self) -> ObjectStore:
        return self.services.store

    def now(self) -> datetime:
        return self.services.now()

    def acting(self, user: User) -> ServiceContext:
        """The services as this account, as the custody chain names it."""
        return self.services.acting_as(f"web:{user.name}")


class Refusal(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status, self.why = status, why


def create_app(ctx: WebContext) -> Starlette:
    signer = Signer(ctx.secret)
    throttle = LoginThrottle()
    refusals = RefusalCounter()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    t = translator(ctx.language)
    templates.env.globals.update(t=t, lang=ctx.language)

    def source(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def event(user: User | None, action: str, subject: str | None, **details: Any) -> None:
        with ctx.sessions.begin() as session:
            custody.append(session, actor=f"web:{user.name}" if user else "web:anonymous",
                           action=action, subject=subject, details=details)

    def flush_refusals(everything: bool = False) -> None:
        for src, minute, count in refusals.take_finished(everything=everything):
            event(None, Action.REFUSED_ANONYMOUS, None, source=src,
                  minute=datetime.fromtimestamp(minute * 60, timezone.utc).isoformat(), count=count)

    def current_user(request: Request) -> tuple[User | None, dict[str, Any] | None]:
        data = signer.unsign("session", request.cookies.get(COOKIE))
        if data is None:
            return None, None
        with ctx.sessions() as session:
            user = session.get(User, data["uid"])
        if user is None or user.disabled or data.get("pw") != int(user.password_changed_at.timestamp()):
            return None, None
        return user, data

    def page(name: str):
        """Decorate a handler with the gate of its route's rule."""
        def wrap(handler):
            async def endpoint(request: Request) -> Response:
                flush_refusals()
                rule = RULES.get(name)
                user, data = current_user(request)
                request.state.user, request.state.session = user, data
                try:
                    if rule is None:
                        raise Refusal(403, "no access rule for this page")
                    if rule != PUBLIC:
                        if user is None:
                            refusals.add(source(request))
                            if request.method == "GET" and name not in ("media", "item_download"):
                                return RedirectResponse(f"/login?next={request.url.path}", 303)
                            raise Refusal(401, "sign in first")
                        if not role_allows(user.role, rule):
                            raise Refusal(403, f"the {user.role} role may not use {name}")
                        if request.method == "POST":
                            form = await request.form() if "form" in request.headers.get(
                                "content-type", "") else {}
                            token = request.headers.get("x-csrf-token") or form.get("csrf")
                            if token != data.get("csrf"):
                                raise Refusal(403, "missing or wrong CSRF token")
                    return await handler(request)
                except Refusal as refused:
                    if user is not None:
                        event(user, Action.REFUSED, request.url.path, route=name, role=user.role,
                              why=refused.why)
                    return error(request, refused.status, refused.why)
                except NotFound as exc:
                    return error(request, 404, exc.message)
                except EvidenceError as exc:
                    return error(request, 400, str(exc))
            endpoint.__name__ = name
            return endpoint
        return wrap

    def error(request: Request, status: int, why: str) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"error": why}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"status": status, "why": why,
                                                                  "user": request.state.user},
                                          status_code=status)

    def render(request: Request, name: str, **context: Any) -> Response:
        data = request.state.session or {}
        return templates.TemplateResponse(request, name, {"user": request.state.user,
                                                          "csrf": data.get("csrf", ""), **context})

    def iso(moment: datetime | None) -> str:
        return local_iso(moment, ctx.zone) or ""

    # --- sign in and out ---------------------------------------------------------------
    @page("login")
    async def login(request: Request) -> Response:
        return render(request, "login.html", next=request.query_params.get("next", "/"), failed=None)

    @page("login_post")
    async def login_post(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        nxt = _local(str(form.get("next") or "/"))
        if throttle.blocked(source(request), name):
            return templates.TemplateResponse(request, "login.html", {
                "user": None, "next": nxt, "failed": t("throttled")}, status_code=429)
        with ctx.sessions() as session:
            user = authenticate(session, name, password)
        if user is None:
            throttle.failed(source(request), name)
            event(None, Action.LOGIN_FAILED, f"user:{name}", source=source(request))
            return templates.TemplateResponse(request, "login.html", {
                "user": None, "next": nxt, "failed": t("bad_login")}, status_code=401)
        event(user, Action.LOGIN, f"user:{user.name}", source=source(request))
        token = signer.sign("session", {"uid": user.id, "csrf": new_csrf(),
                                        "pw": int(user.password_changed_at.timestamp())}, SESSION_SECONDS)
        response = RedirectResponse(nxt, 303)
        response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    @page("logout")
    async def logout(request: Request) -> Response:
        event(request.state.user, Action.LOGOUT, f"user:{request.state.user.name}")
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # --- cases ---------------------------------------------------------------------------
    @page("search")
    async def search(request: Request) -> Response:
        q = request.query_params.get("q", "").strip()
        found: list[Case] = []
        if q:
            with ctx.sessions() as session:
                query = select(Case).outerjoin(CaseItem, CaseItem.case_id == Case.id).outerjoin(
                    Recording, Recording.id == CaseItem.recording_id).outerjoin(
                    Officer, Officer.id == Recording.officer_id).where(or_(
                        Case.number.contains(q), Case.case_key.contains(q), Case.title.contains(q),
                        Officer.number == q, Case.opened_on == _maybe_date(q)))
                found = list(session.execute(query.distinct().order_by(Case.opened_on.desc())
                                             .limit(200)).scalars())
        return render(request, "search.html", q=q, cases=found)

    def _visible(user: User, item) -> bool:
        return not item.protected or user.protected_access

    @page("case")
    async def case(request: Request) -> Response:
        user = request.state.user
        with ctx.sessions() as session:
            found = cases.get_case(session, request.path_params["key"])
            items = case_items(session, found)
        event(user, Action.VIEWED, found.case_key, page="case")
        return render(request, "case.html", case=found, items=items, iso=iso,
                      visible=lambda i: _visible(user, i))

    @page("case_gaps")
    async def case_gaps(request: Request) -> Response:
        with ctx.sessions() as session:
            found = cases.get_case(session, request.path_params["key"])
            gaps = find_gaps(case_items(session, found), on_site_types=ctx.on_site_types,
                             window=ctx.coverage_window)
        return render(request, "gaps.html", case=found, gaps=gaps, iso=iso)

    @page("case_export")
    async def case_export(request: Request) -> Response:
        form = await request.form()
        reason = str(form.get("reason", "")).strip()
        if not reason:
            raise Refusal(400, "an export needs a reason")
        if ctx.export is None:
            raise Refusal(503, "export is not available on this server")
        user = request.state.user
        with ctx.sessions() as session:
            found = cases.get_case(session, request.path_params["key"])
        folder = Path(tempfile.mkdtemp(prefix="evidence-export-"))
        path = ctx.export(found.case_key, folder, reason=reason, actor=f"web:{user.name}")
        return FileResponse(path, filename=path.name, media_type="application/zip",
                            background=BackgroundTask(_remove_tree, folder))

    @page("case_link")
    async def case_link(request: Request) -> Response:
        form = await request.form()
        numbers = str(form.get("archive_nos", "")).split()
        key = request.path_params["key"]
        link_recordings(ctx.acting(request.state.user), key, numbers)
        return RedirectResponse(f"/cases/{key}", 303)

    # --- items ---------------------------------------------------------------------------
    def _item(session: Session, item_no: str):
        link = session.execute(select(CaseItem).where(CaseItem.item_no == item_no)).scalar()
        if link is None:
            raise NotFound(f"no item {item_no}")
        case_row = session.get(Case, link.case_id)
        item = next((i for i in case_items(session, case_row, include_unlinked=True)
                     if i.item_no == item_no))
        return case_row, link, item

    def _media(item, user: User, session: Session) -> tuple[str | None, str | None, bool]:
        """(key, version, encrypted) of what the page plays or shows: the proxy if any."""
        if item.archive_no is None:
            return item.storage_key, item.storage_version, item.encrypted
        rec = session.execute(select(Recording).where(Recording.archive_no == item.archive_no)).scalar()
        proxy = session.execute(select(Derivative).where(
            Derivative.recording_id == rec.id, Derivative.kind == "proxy",
            Derivative.status == "ok").order_by(Derivative.id.desc())).scalars().first()
        if proxy is None:
            return None, None, False
        return proxy.storage_key, proxy.storage_version, proxy.encrypted

    @page("item")
    async def item_page(request: Request) -> Response:
        user = request.state.user
        with ctx.sessions() as session:
            case_row, link, item = _item(session, request.path_params["item_no"])
            visible = _visible(user, item)
            media_url = None
            if visible:
                key, version, encrypted = _media(item, user, session)
                if key:
                    media_url = "/media/" + signer.sign("media", {
                        "k": key, "v": version, "e": encrypted, "u": user.id,
                        "t": mimetypes.guess_type(key)[0] or "application/octet-stream",
                        "i": item.item_no}, LINK_SECONDS)
            last = None
            if item.archive_no:
                last = session.execute(select(Recording.last_verified_at).where(
                    Recording.archive_no == item.archive_no)).scalar()
            else:
                last = session.execute(select(Document.last_verified_at).where(
                    Document.storage_key == item.storage_key)).scalar()
            log_rows = [e for subject in filter(None, [item.item_no, item.archive_no])
                        for e in custody.events(session, subject=subject)]
        event(user, Action.VIEWED, item.item_no, page="item", protected_shown=visible)
        return render(request, "item.html", case=case_row, item=item, visible=visible,
                      media_url=media_url, last_verified=iso(last), iso=iso,
                      log=sorted(log_rows, key=lambda e: e.seq), verdict=request.query_params.get("v"))

    @page("item_verify")
    async def item_verify(request: Request) -> Response:
        user = request.state.user
        with ctx.sessions() as session:
            _case, _link, item = _item(session, request.path_params["item_no"])
        verdict = check_item(ctx.store, item, ctx.services.kek_for(item.encrypted))
        with ctx.sessions.begin() as session:
            now = ctx.now()
            if verdict == "ok" and item.archive_no:
                session.execute(Recording.__table__.update().where(
                    Recording.archive_no == item.archive_no).values(last_verified_at=now))
            elif verdict == "ok":
                session.execute(Document.__table__.update().where(
                    Document.storage_key == item.storage_key).values(last_verified_at=now))
            custody.append(session, actor=f"web:{user.name}", action=Action.VERIFIED, subject=item.item_no,
                           details={"result": verdict})
        return RedirectResponse(f"/items/{item.item_no}?v={verdict}", 303)

    @page("item_play")
    async def item_play(request: Request) -> Response:
        if "application/json" not in request.headers.get("content-type", ""):
            raise Refusal(400, "send the play as JSON: {\"start\": seconds, \"watched\": seconds}")
        try:
            body = await request.json()
            start, watched = float(body.get("start", 0)), float(body.get("watched", 0))
        except (TypeError, ValueError, AttributeError):
            raise Refusal(400, "start and watched must be numbers") from None
        if not (0 <= start < 10 ** 6 and 0 <= watched < 10 ** 6):
            raise Refusal(400, "start and watched out of range")
        with ctx.sessions() as session:
            _case, _link, item = _item(session, request.path_params["item_no"])
        if not _visible(request.state.user, item):
            raise Refusal(403, "protected record")
        event(request.state.user, Action.PLAYED, item.item_no, start_s=round(start, 1),
              watched_s=round(watched, 1), archive_no=item.archive_no)
        return JSONResponse({"ok": True})

    @page("item_download")
    async def item_download(request: Request) -> Response:
        user = request.state.user
        reason = request.query_params.get("reason", "").strip()
        if not reason:
            raise Refusal(400, "a download needs a reason")
        with ctx.sessions() as session:
            _case, _link, item = _item(session, request.path_params["item_no"])
        if not _visible(user, item):
            raise Refusal(403, "protected record")
        size = plain_size(ctx.store, item.storage_key, item.storage_version, item.encrypted)
        event(user, Action.DOWNLOADED, item.item_no, reason=reason, sha256=item.sha256, size=size)
        name = f"{item.item_no}{Path(item.storage_key).suffix}"
        return StreamingResponse(
            read_plain(ctx.store, item.storage_key, item.storage_version, encrypted=item.encrypted,
                       kek=ctx.services.kek_for(item.encrypted)),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}"',
                     "Content-Length": str(size)})

    @page("item_unlink")
    async def item_unlink(request: Request) -> Response:
        form = await request.form()
        with ctx.sessions() as session:
            case_row, _link, item = _item(session, request.path_params["item_no"])
        unlink_item(ctx.acting(request.state.user), case_row.case_key, item.item_no,
                    reason=str(form.get("reason", "")))
        return RedirectResponse(f"/cases/{case_row.case_key}", 303)

    async def _hold(request: Request, change) -> Response:
        form = await request.form()
        change(ctx.acting(request.state.user), request.path_params["subject"],
               reason=str(form.get("reason", "")))
        return RedirectResponse(_local(str(form.get("back") or "/")), 303)

    @page("hold_set")
    async def hold_set(request: Request) -> Response:
        return await _hold(request, set_hold)

    @page("hold_release")
    async def hold_release(request: Request) -> Response:
        return await _hold(request, release_hold)

    # --- media ---------------------------------------------------------------------------
    @page("media")
    async def media(request: Request) -> Response:
        user = request.state.user
        link = signer.unsign("media", request.path_params["token"])
        if link is None:
            raise Refusal(403, "the media link is forged or has expired; reload the page")
        if link["u"] != user.id:
            raise Refusal(403, "the media link belongs to another account")
        key, version, encrypted = link["k"], link["v"], link["e"]
        if not encrypted and ctx.store.capabilities.presigned_urls:
            # S3: a short-lived presigned URL pinned to the version.
            return RedirectResponse(playback_url(ctx.store, key, version, encrypted=False,
                                                 expires=timedelta(seconds=LINK_SECONDS)), 302)
        size = plain_size(ctx.store, key, version, encrypted)
        start, end = 0, size - 1
        status, headers = 200, {"Accept-Ranges": "bytes"}
        ranged = request.headers.get("range", "")
        if ranged.startswith("bytes="):
            first, _, last = ranged[6:].split(",")[0].partition("-")
            try:
                if first:
                    start, end = int(first), int(last) if last else size - 1
                else:
                    start, end = max(0, size - int(last)), size - 1
            except ValueError:
                return PlainTextResponse("bad range", 416, headers={"Content-Range": f"bytes */{size}"})
            end = min(end, size - 1)
            if start > end or start >= size:
                return PlainTextResponse("bad range", 416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        body = read_plain(ctx.store, key, version, encrypted=encrypted,
                          kek=ctx.services.kek_for(encrypted), start=start, length=end - start + 1)
        return StreamingResponse(body, status_code=status, media_type=link["t"], headers=headers)

    # --- accounts ---------------------------------------------------------------------------
    @page("users")
    async def users(request: Request) -> Response:
        with ctx.sessions() as session:
            rows = list(session.execute(select(User).order_by(User.name)).scalars())
        return render(request, "users.html", users=rows, failed=None)

    @page("users_add")
    async def users_add(request: Request) -> Response:
        form = await request.form()
        add_account(ctx.acting(request.state.user), str(form.get("name", "")),
                    str(form.get("role", "")), str(form.get("password", "")),
                    protected=form.get("protected") == "on")
        return RedirectResponse("/admin/users", 303)

    routes = [
        Route("/login", login, methods=["GET"], name="login"),
        Route("/login", login_post, methods=["POST"], name="login_post"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/", search, methods=["GET"], name="search"),
        Route("/cases/{key:path}/gaps", case_gaps, methods=["GET"], name="case_gaps"),
        Route("/cases/{key:path}/export", case_export, methods=["POST"], name="case_export"),
        Route("/cases/{key:path}/link", case_link, methods=["POST"], name="case_link"),
        Route("/cases/{key:path}", case, methods=["GET"], name="case"),
        Route("/items/{item_no}", item_page, methods=["GET"], name="item"),
        Route("/items/{item_no}/verify", item_verify, methods=["POST"], name="item_verify"),
        Route("/items/{item_no}/play", item_play, methods=["POST"], name="item_play"),
        Route("/items/{item_no}/download", item_download, methods=["GET"], name="item_download"),
        Route("/items/{item_no}/unlink", item_unlink, methods=["POST"], name="item_unlink"),
        Route("/holds/{subject:path}/set", hold_set, methods=["POST"], name="hold_set"),
        Route("/holds/{subject:path}/release", hold_release, methods=["POST"], name="hold_release"),
        Route("/media/{token}", media, methods=["GET"], name="media"),
        Route("/admin/users", users, methods=["GET"], name="users"),
        Route("/admin/users", users_add, methods=["POST"], name="users_add"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        yield
        flush_refusals(everything=True)  # the counts of the last minutes are not lost

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.refusals = refusals
    app.state.flush_refusals = flush_refusals
    return app


def _local(path: str) -> str:
    """Only paths of this site are redirect targets (no open redirect to another host)."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


def _maybe_date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
