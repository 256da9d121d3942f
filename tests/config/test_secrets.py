"""Secrets given as files: `…_file` keys, `*_FILE` variables and systemd's credentials folder,
each file checked like a key (regular, not a link, the service account's, closed to others)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from config.secrets import read_secret_file
from config.settings import SettingsError, load_settings
from tests.conftest import invoke_evidence


def secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def settings_file(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "evidence.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n{body}')
    return config


def test_a_key_file_setting_is_read_and_its_line_break_dropped(tmp_path: Path) -> None:
    path = secret(tmp_path / "s3-secret", "s3cr3t-value\n")
    access = secret(tmp_path / "s3-access", "ACCESS\r\n")
    config = settings_file(tmp_path, f'[storage]\nsecret_key_file = "{path}"\naccess_key_file = "{access}"\n')
    settings, _ = load_settings(config, {})
    assert (settings.storage.secret_key, settings.storage.access_key) == ("s3cr3t-value", "ACCESS")


@pytest.mark.parametrize(
    ("prepare", "words"),
    [
        (lambda p: p.chmod(0o640), "accessible by group or others"),
        (lambda p: os.chown(p, 65534, -1), "belongs to uid 65534"),
        (lambda p: p.unlink() or p.symlink_to(p.with_name("elsewhere")), "cannot be opened"),
        (lambda p: p.write_text(""), "is empty"),
        (lambda p: p.write_text("one\ntwo\n"), "more than one line"),
        (lambda p: p.unlink(), "does not exist"),
    ],
)
def test_a_secret_file_others_could_read_or_swap_is_refused(tmp_path: Path, prepare, words: str) -> None:
    secret(tmp_path / "elsewhere", "x\n")
    path = secret(tmp_path / "s3-secret", "s3cr3t\n")
    prepare(path)
    config = settings_file(tmp_path, f'[storage]\nsecret_key_file = "{path}"\n')
    with pytest.raises(SettingsError, match=words) as caught:
        load_settings(config, {})
    assert "storage.secret_key_file" in caught.value.message


def test_the_environment_wins_over_the_file_and_both_forms_at_once_are_refused(tmp_path: Path) -> None:
    from_env = secret(tmp_path / "from-env", "from the environment\n")
    config = settings_file(tmp_path, '[storage]\nsecret_key = "from the file"\n')
    settings, _ = load_settings(config, {"EVIDENCE_S3_SECRET_KEY_FILE": str(from_env)})
    assert settings.storage.secret_key == "from the environment"
    in_file = secret(tmp_path / "in-file", "from the file's path\n")
    config = settings_file(tmp_path, f'[storage]\nsecret_key_file = "{in_file}"\n')
    settings, _ = load_settings(config, {"EVIDENCE_S3_SECRET_KEY": "plain"})
    assert settings.storage.secret_key == "plain"
    with pytest.raises(SettingsError, match="are both set"):
        load_settings(None, {"EVIDENCE_S3_SECRET_KEY": "a", "EVIDENCE_S3_SECRET_KEY_FILE": str(from_env)})
    config = settings_file(tmp_path, f'[storage]\nsecret_key = "a"\nsecret_key_file = "{in_file}"\n')
    with pytest.raises(SettingsError, match="are both given"):
        load_settings(config, {})


def test_systemd_credentials_fill_what_nothing_else_gives(tmp_path: Path) -> None:
    folder = tmp_path / "credentials"
    folder.mkdir()
    # As systemd makes them: owned by root, read through an ACL that shows as group bits.
    secret(folder / "s3_secret_key", "from systemd\n", 0o440)
    secret(folder / "s3_access_key", "ACCESS-SYSTEMD\n", 0o400)
    environ = {"CREDENTIALS_DIRECTORY": str(folder), "EVIDENCE_DATA_DIR": str(tmp_path / "d")}
    settings, _ = load_settings(None, environ)
    assert settings.storage.secret_key == "from systemd"
    assert settings.storage.access_key == "ACCESS-SYSTEMD"
    assert settings.catalog.database_url == ""  # no credential of that name: the default
    # A value given explicitly wins over the credential.
    settings, _ = load_settings(None, environ | {"EVIDENCE_S3_SECRET_KEY": "explicit"})
    assert settings.storage.secret_key == "explicit"
    # Open to others, a credential is refused like any secret file.
    (folder / "s3_secret_key").chmod(0o444)
    with pytest.raises(SettingsError, match="systemd credential s3_secret_key"):
        load_settings(None, environ)


def test_credential_files_still_refuse_other_owners(tmp_path: Path) -> None:
    path = secret(tmp_path / "s3_secret_key", "x\n", 0o400)
    os.chown(path, 65534, -1)
    with pytest.raises(SettingsError, match="belongs to uid 65534"):
        read_secret_file(path, "systemd credential s3_secret_key", credential=True)


@pytest.mark.postgres
def test_the_database_url_from_a_file_reaches_the_catalog_and_is_never_shown(
    tmp_path: Path, pg_url: str
) -> None:
    url_file = secret(tmp_path / "database-url", pg_url + "\n")
    env = {"EVIDENCE_DATA_DIR": str(tmp_path / "data"), "EVIDENCE_DATABASE_URL_FILE": str(url_file)}
    done = invoke_evidence("init", "--json", env=env)
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["catalog"].startswith("postgresql+psycopg://")
    shown = json.loads(invoke_evidence("config", "show", "--json", env=env).stdout)
    assert shown["catalog"]["database_url_file"] == str(url_file)
    url_file.chmod(0o644)
    refused = invoke_evidence("init", env=env)
    assert refused.exit_code == 2 and f"chmod 600 {url_file}" in refused.stderr
