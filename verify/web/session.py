"""Signing in and out: the login form, password check with throttling, the session cookie."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from catalog.actions import Action
from catalog.models import User
from catalog.users import authenticate, end_sessions, hash_password, needs_rehash, open_session

from .common import COOKIE, event, local, posted, render, site, source
from .security import new_csrf


def login(request: Request) -> Response:
    return render(request, "login.html", next=request.query_params.get("next", "/"), failed=None)


def login_post(request: Request) -> Response:
    here, form = site(request), posted(request)
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    nxt = local(str(form.get("next") or "/"))
    if here.throttle.blocked(source(request), name):
        return render(request, "login.html", status=429, user=None, next=nxt, failed=here.t("throttled"))
    with here.web.reading() as session:
        user = authenticate(session, name, password)
    if user is None:
        event(here.web, None, Action.LOGIN_FAILED, f"user:{name}", source=source(request))
        return render(request, "login.html", status=401, user=None, next=nxt, failed=here.t("bad_login"))
    with here.web.sessions.begin() as session:
        if needs_rehash(user.password_hash):  # an older, cheaper hash: upgraded now
            row = session.get(User, user.id)
            if row is not None:
                row.password_hash = hash_password(password)
        sid = open_session(session, user, here.web.now())
    event(here.web, user, Action.LOGIN, f"user:{user.name}", source=source(request))
    lifetime = int(here.web.session_lifetime.total_seconds())
    token = here.signer.sign(
        "session",
        {"uid": user.id, "sid": sid, "csrf": new_csrf(), "pw": int(user.password_changed_at.timestamp())},
        lifetime,
    )
    response = RedirectResponse(nxt, 303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=lifetime,
        httponly=True,
        samesite="strict",
        secure=here.web.secure_cookies or request.url.scheme == "https",
        path="/",
    )
    return response


def logout(request: Request) -> Response:
    here, user = site(request), request.state.user
    with here.web.sessions.begin() as session:
        end_sessions(session, user.id, here.web.now(), sid=request.state.session["sid"])
    event(here.web, user, Action.LOGOUT, f"user:{user.name}")
    response = RedirectResponse("/login", 303)
    secure = here.web.secure_cookies or request.url.scheme == "https"
    response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="strict")
    return response
