"""Pinning the custody key's fingerprint: the installation's trust anchor.

Trust in a checkpoint starts from a fingerprint the installation pins, never from a key the
catalog, storage or a package carries. ``evidence init`` pins its signing key in the
settings file's ``[custody] trusted_keys``; when the installation runs without a settings
file (all defaults), in ``keys/trusted-keys.txt`` in the data folder, one fingerprint a line.
The file is edited as text, so its comments and order stay; the result is parsed again
before it replaces the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from catalog.errors import InvalidInput

_ARRAY = re.compile(r"^(\s*trusted_keys\s*=\s*\[)(.*?)(\])", re.MULTILINE | re.DOTALL)
_HEADER = re.compile(r"^\s*\[custody\]\s*(#.*)?$", re.MULTILINE)
_NEXT_TABLE = re.compile(r"^\s*\[", re.MULTILINE)


def pinned_in_file(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pin(settings_file: Path | None, fallback: Path, fingerprint: str) -> tuple[Path, bool]:
    """Pin ``fingerprint``; returns (where, whether it was added now)."""
    if settings_file is None:
        known = pinned_in_file(fallback)
        if fingerprint in known:
            return fallback, False
        _replace(fallback, "".join(f"{fp}\n" for fp in [*known, fingerprint]))
        return fallback, True
    text = settings_file.read_text(encoding="utf-8")
    current = tomllib.loads(text).get("custody", {}).get("trusted_keys", [])
    if fingerprint in current:
        return settings_file, False
    _replace(settings_file, _with_pin(text, fingerprint))
    return settings_file, True


def _with_pin(text: str, fingerprint: str) -> str:
    entry = f'"{fingerprint}"'
    header = _HEADER.search(text)
    if header is None:
        # A new table goes before the first one (after the top-level keys), so that the file's
        # last table stays the last: lines appended later still land where they did.
        first = _NEXT_TABLE.search(text)
        section = f"[custody]\ntrusted_keys = [{entry}]\n\n"
        if first is None:
            updated = text.rstrip("\n") + f"\n\n{section}"
        else:
            updated = text[: first.start()] + section + text[first.start() :]
    else:
        nxt = _NEXT_TABLE.search(text, header.end())
        end = nxt.start() if nxt else len(text)
        section = text[header.end() : end]
        array = _ARRAY.search(section)
        if array is None:
            section = f"\ntrusted_keys = [{entry}]" + section
        else:
            inner = array.group(2).rstrip().rstrip(",")
            joined = f"{inner}, {entry}" if inner.strip() else entry
            section = section[: array.start(2)] + joined + section[array.end(2) :]
        updated = text[: header.end()] + section + text[end:]
    if fingerprint not in tomllib.loads(updated).get("custody", {}).get("trusted_keys", []):
        raise InvalidInput(
            "the settings file's [custody] trusted_keys could not be updated automatically",
            hint=f'add trusted_keys = ["{fingerprint}"] under [custody] by hand',
        )
    return updated


def _replace(path: Path, text: str) -> None:
    """Written beside, flushed, then renamed over: a crash leaves the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
