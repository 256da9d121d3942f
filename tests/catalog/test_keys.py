import stat
from datetime import UTC

import pytest

from catalog.errors import InvalidInput, SchemaOutdated
from catalog.keys import ensure_signing_key, load_signing_key


def test_key_is_created_once_with_private_mode(tmp_path) -> None:
    path = tmp_path / "keys" / "custody.pem"
    key, created = ensure_signing_key(path)
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = ensure_signing_key(path)
    assert not created_again
    assert again.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_missing_key_says_to_run_init(tmp_path) -> None:
    with pytest.raises(SchemaOutdated, match="evidence init"):
        load_signing_key(tmp_path / "none.pem")


def test_a_file_that_is_not_a_key_is_refused(tmp_path) -> None:
    path = tmp_path / "bad.pem"
    path.write_text("not a key")
    with pytest.raises(InvalidInput):
        load_signing_key(path)


def test_keys_recorded_by_two_inits_at_once_keep_the_first(engine) -> None:
    from datetime import datetime

    from catalog.db import session_factory
    from catalog.keys import record_key_id, recorded_key_id
    from tests.concurrency import at_once, raised

    sessions = session_factory(engine)

    def record(i: int) -> tuple[str, str]:
        with sessions.begin() as s:
            return f"key{i}", record_key_id(s, "signing", f"key{i}", datetime.now(UTC))

    results = at_once(6, record)
    assert raised(results) == []
    (kept,) = {recorded for _mine, recorded in results}
    assert sum(mine == kept for mine, _ in results) == 1
    with sessions() as s:
        assert recorded_key_id(s, "signing") == kept
