from datetime import UTC

import pytest

from catalog.db import session_factory
from catalog.errors import CatalogConflict, InvalidInput
from catalog.users import (
    add_user,
    authenticate,
    check_password,
    hash_password,
    role_allows,
    set_password,
)


def test_hashes_are_salted_scrypt_and_check() -> None:
    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a != b and a.startswith("scrypt$12$8$1$")  # the tests run at 2^12
    assert check_password("correct horse battery", a) and not check_password("wrong horse battery", a)
    assert not check_password("x", "garbage")


def test_roles_nest() -> None:
    assert role_allows("admin", "legal") and role_allows("legal", "auditor")
    assert not role_allows("auditor", "legal") and not role_allows("nobody", "auditor")


def test_accounts(engine) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    with session_factory(engine).begin() as s:
        add_user(s, "wang.li", "legal", "审核员的登录密码是123", protected=True, now=now)
        with pytest.raises(CatalogConflict):
            add_user(s, "wang.li", "auditor", "another password", protected=False, now=now)
        for bad in [
            ("x y", "auditor", "long enough pw"),
            ("ok", "boss", "long enough pw"),
            ("ok", "auditor", "short"),
        ]:
            with pytest.raises(InvalidInput):
                add_user(s, *bad, protected=False, now=now)
    with session_factory(engine).begin() as s:
        assert authenticate(s, "wang.li", "审核员的登录密码是123").protected_access
        assert authenticate(s, "wang.li", "wrong password") is None
        assert authenticate(s, "nobody", "whatever password") is None
        set_password(s, "wang.li", "a new passphrase", now)
    with session_factory(engine)() as s:
        assert authenticate(s, "wang.li", "a new passphrase") is not None


def test_an_account_added_twice_at_once_is_a_conflict_not_a_crash(engine) -> None:
    from datetime import datetime

    from tests.concurrency import at_once

    sessions = session_factory(engine)

    def add(_i: int) -> str:
        with sessions.begin() as s:
            return add_user(
                s, "zhao.min", "auditor", "a long enough password", protected=False, now=datetime.now(UTC)
            ).name

    results = at_once(6, add)
    assert results.count("zhao.min") == 1
    assert all(isinstance(r, CatalogConflict) for r in results if r != "zhao.min"), results
