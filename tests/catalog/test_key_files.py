"""One check for every key file (KEK, signing key, web session secret): owner, mode, exact
format and length; each refusal names the file and exits 2 at the command line."""

import os
from pathlib import Path

import pytest

from archive.encryption import EncryptionKeyError, generate_kek, load_kek
from catalog.keys import KeyFileError, ensure_signing_key, load_signing_key, read_key_file
from tests.conftest import run_evidence


def _file(tmp_path: Path, data: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "key"
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_open_to_group_or_others_is_refused(tmp_path, mode) -> None:
    path = _file(tmp_path, b"x" * 32, mode)
    with pytest.raises(KeyFileError, match="group or others") as exc:
        read_key_file(path, "web session secret")
    assert str(path) in str(exc.value) and "chmod 600" in str(exc.value)


def test_a_key_of_another_owner_is_refused(tmp_path) -> None:
    path = _file(tmp_path, b"x" * 32)
    os.chown(path, 65534, 65534)
    with pytest.raises(KeyFileError, match="belongs to uid 65534"):
        read_key_file(path, "web session secret")
    with pytest.raises(EncryptionKeyError, match="belongs to uid 65534"):
        load_kek(_kek_file(tmp_path, owner=65534))


def test_a_symbolic_link_is_refused(tmp_path) -> None:
    target = _file(tmp_path, b"x" * 32)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(KeyFileError, match="cannot be opened"):
        read_key_file(link, "web session secret")


def _kek_file(tmp_path: Path, data: bytes | None = None, owner: int | None = None) -> Path:
    path = tmp_path / "kek.key"
    path.write_bytes(generate_kek().hex().encode() + b"\n" if data is None else data)
    path.chmod(0o600)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def test_a_kek_of_32_hex_digits_is_not_taken_as_raw_bytes(tmp_path) -> None:
    path = _kek_file(tmp_path, generate_kek().hex()[:32].encode())
    with pytest.raises(EncryptionKeyError, match="does not hold a 32-byte key"):
        load_kek(path)
    assert len(load_kek(_kek_file(tmp_path))) == 32


def test_the_signing_key_at_0644_is_refused(tmp_path) -> None:
    path = tmp_path / "custody-ed25519.pem"
    ensure_signing_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="group or others"):
        load_signing_key(path)
    path.chmod(0o600)
    load_signing_key(path)


def _initialised(tmp_path: Path) -> Path:
    settings = tmp_path / "evidence.toml"
    settings.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    assert run_evidence("--config", str(settings), "init").returncode == 0
    return settings


def test_the_command_line_refuses_each_bad_key_naming_it(tmp_path) -> None:
    settings = _initialised(tmp_path)
    keys = tmp_path / "data" / "keys"
    signing, kek = keys / "custody-ed25519.pem", keys / "kek.key"
    signing.chmod(0o644)
    result = run_evidence("--config", str(settings), "init")
    assert result.returncode == 2 and str(signing) in result.stderr, result.stderr
    signing.chmod(0o600)
    good = kek.read_bytes()
    kek.write_bytes(good.strip()[:32])
    result = run_evidence("--config", str(settings), "init")
    assert result.returncode == 2 and str(kek) in result.stderr, result.stderr
    kek.write_bytes(good)
    assert run_evidence("--config", str(settings), "init").returncode == 0


@pytest.mark.parametrize("data", [b"", b"short", b"x" * 64])
def test_serve_refuses_a_web_secret_of_the_wrong_length(tmp_path, data) -> None:
    settings = _initialised(tmp_path)
    secret = tmp_path / "data" / "keys" / "web-session.key"
    secret.write_bytes(data)
    secret.chmod(0o600)
    result = run_evidence("--config", str(settings), "serve", "--port", "1")
    assert result.returncode == 2, result.stderr
    assert str(secret) in result.stderr and "not 32" in result.stderr
