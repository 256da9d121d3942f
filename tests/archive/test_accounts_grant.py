"""Only a holder of the protected grant may give it (issue 14, item 5)."""

from datetime import UTC, datetime

import pytest

from archive.accounts import add_account
from catalog.errors import Refused
from catalog.models import User
from catalog.users import add_user

PASSWORD = "a long enough password"


def _admin(env, name: str, protected: bool) -> User:
    with env.sessions.begin() as s:
        user = add_user(s, name, "admin", PASSWORD, protected=protected, now=datetime.now(UTC))
        s.expunge(user)
    return user


def test_an_admin_without_the_grant_cannot_give_it(env) -> None:
    plain = _admin(env, "plain", False)
    with pytest.raises(Refused, match="protected grant"):
        add_account(env.as_("web:plain"), "zhang", "auditor", PASSWORD, protected=True, by=plain)
    add_account(env.as_("web:plain"), "li", "auditor", PASSWORD, protected=False, by=plain)
    with env.sessions() as s:
        assert s.query(User).filter_by(name="zhang").one_or_none() is None


def test_a_holder_and_the_machine_administrator_can_give_it(env) -> None:
    holder = _admin(env, "holder", True)
    add_account(env.as_("web:holder"), "zhang", "auditor", PASSWORD, protected=True, by=holder)
    add_account(env.as_("root"), "wang", "auditor", PASSWORD, protected=True, by=None)
    with env.sessions() as s:
        assert {u.name for u in s.query(User).filter_by(protected_access=True)} >= {"zhang", "wang"}
