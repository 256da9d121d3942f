import stat

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
