"""Account administration: the list of accounts and adding one (admin role only)."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from archive.accounts import add_account
from catalog.models import User

from .common import posted, render, site


def users(request: Request) -> Response:
    with site(request).web.reading() as session:
        rows = list(session.execute(select(User).order_by(User.name)).scalars())
    return render(request, "users.html", users=rows, failed=None)


def users_add(request: Request) -> Response:
    form = posted(request)
    add_account(
        site(request).web.acting(request.state.user),
        str(form.get("name", "")),
        str(form.get("role", "")),
        str(form.get("password", "")),
        protected=form.get("protected") == "on",
        by=request.state.user,
    )
    return RedirectResponse("/admin/users", 303)
