"""Attacks an outsider or a careless administrator could try on a real server (issue 14)."""

from datetime import UTC, datetime

from catalog.models import User
from catalog.users import add_user
from tests.verify.test_web import PASSWORD, site  # noqa: F401  # the live server fixture
from tests.verify.web_server import Browser


def test_an_admin_without_the_grant_cannot_make_an_account_with_it(site) -> None:  # noqa: F811
    env = site["env"]
    with env.sessions.begin() as s:
        add_user(s, "plainadm", "admin", PASSWORD, protected=False, now=datetime.now(UTC))
    plain, holder = Browser(site["server"].base), Browser(site["server"].base)
    assert plain.login("plainadm", PASSWORD) == 303
    assert holder.login("adm", PASSWORD) == 303
    form = {"name": "sneak", "role": "auditor", "password": PASSWORD, "protected": "on"}
    status, _, _ = plain.request("POST", "/admin/users", {**form, "csrf": plain.csrf})
    assert status in (400, 403)
    with env.sessions() as s:
        assert s.query(User).filter_by(name="sneak").one_or_none() is None
    status, _, _ = holder.request("POST", "/admin/users", {**form, "csrf": holder.csrf})
    assert status == 303
    with env.sessions() as s:
        assert s.query(User).filter_by(name="sneak").one().protected_access
