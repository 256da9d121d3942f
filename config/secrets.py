"""Secret settings given as files: `…_file` keys, `*_FILE` environment variables and systemd's
credentials folder.

A secret in the settings file or an environment variable ends up in backups, `ps e` and
crash reports; a file readable by the service account alone does not. Each secret setting
(``catalog.database_url``, ``storage.access_key``, ``storage.secret_key``) may be given:

1. in the environment, as the value (``EVIDENCE_S3_SECRET_KEY``) or a path
   (``EVIDENCE_S3_SECRET_KEY_FILE``), which wins over the settings file;
2. in the settings file, as the value (``secret_key``) or a path (``secret_key_file``);
3. else by systemd (``LoadCredential=s3_secret_key:/etc/evidence/s3-secret-key``), as the file
   of that name in ``$CREDENTIALS_DIRECTORY``.

Giving both the value and the path at one level is an error: which one was meant is not
guessed. A file is checked like the keys (``catalog.keys.read_key_file``): a regular file, not
a symbolic link, owned by the service account, no access for group or others. Files in
systemd's credentials folder are made by systemd, owned by root and opened to the service's
user through an ACL (which shows as group bits), so there only "others" must have no access.
One trailing line break is dropped (``echo secret > file`` writes one).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.keys import read_key_file

from .settings import CREDENTIALS_DIRECTORY, SettingsError, _merge


@dataclass(frozen=True)
class Secret:
    table: str
    key: str
    env: str  # the variable with the value; the path is in env + "_FILE"
    credential: str  # its name in $CREDENTIALS_DIRECTORY

    @property
    def file_key(self) -> str:
        return f"{self.key}_file"


SECRETS = (
    Secret("catalog", "database_url", "EVIDENCE_DATABASE_URL", "database_url"),
    Secret("storage", "access_key", "EVIDENCE_S3_ACCESS_KEY", "s3_access_key"),
    Secret("storage", "secret_key", "EVIDENCE_S3_SECRET_KEY", "s3_secret_key"),
)


def read_secret_file(path: Path, what: str, *, credential: bool = False) -> str:
    """The secret in ``path``, checked like a key file; ``SettingsError`` naming it otherwise."""
    try:
        data = read_key_file(
            path,
            what,
            SettingsError,
            owners=(os.geteuid(), 0) if credential else None,
            forbidden_mode=0o007 if credential else 0o077,
        )
    except FileNotFoundError:
        raise SettingsError(
            f"{what} {path} does not exist", hint="give the path of an existing file, mode 0600"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"{what} {path} is not UTF-8 text") from None
    text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not text or "\n" in text:
        raise SettingsError(
            f"{what} {path} {'is empty' if not text else 'holds more than one line'}",
            hint="write the secret alone on one line",
        )
    return text


def resolve_secrets(
    data: dict[str, Any], overrides: dict[str, Any], environ: Mapping[str, str], source: str
) -> dict[str, Any]:
    """The settings file's data merged with the environment's overrides, every secret given as
    a file read into its setting. Returns ``data`` itself when nothing changes."""
    for s in SECRETS:
        table = data.get(s.table)
        if isinstance(table, dict) and table.get(s.key) and table.get(s.file_key):
            raise SettingsError(
                f"settings {s.table}.{s.key} and {s.table}.{s.file_key} are both given in {source}",
                hint=f"keep one of them (the file is safer: {s.table}.{s.file_key})",
            )
        if environ.get(s.env) and environ.get(f"{s.env}_FILE"):
            raise SettingsError(
                f"environment variables {s.env} and {s.env}_FILE are both set",
                hint=f"keep one of them (the file is safer: {s.env}_FILE)",
            )
    credentials = environ.get(CREDENTIALS_DIRECTORY)
    wanted = any(isinstance(t := data.get(s.table), dict) and t.get(s.file_key) for s in SECRETS) or any(
        environ.get(f"{s.env}_FILE") for s in SECRETS
    )
    if not overrides and not wanted and not credentials:
        return data
    merged = copy.deepcopy(_merge(data, overrides))
    for s in SECRETS:
        table = merged.get(s.table, {})
        if not isinstance(table, dict):
            continue  # reported by the settings' type check
        # The environment wins over the file, whichever form each uses.
        if environ.get(s.env):
            table.pop(s.file_key, None)
        if environ.get(f"{s.env}_FILE"):
            table.pop(s.key, None)
        path = table.get(s.file_key)
        if path:
            if not isinstance(path, str):
                raise SettingsError(f"setting {s.table}.{s.file_key} in {source} must be a string")
            table[s.key] = read_secret_file(Path(path).expanduser(), f"{s.table}.{s.file_key}")
        elif not table.get(s.key) and credentials:
            candidate = Path(credentials) / s.credential
            if candidate.exists() or candidate.is_symlink():
                table[s.key] = read_secret_file(
                    candidate, f"systemd credential {s.credential}", credential=True
                )
            else:
                continue
        else:
            continue
        merged[s.table] = table
    return merged
