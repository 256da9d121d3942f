"""RFC 8785 (JSON Canonicalization Scheme) bytes for custody v2, and their strict reading.

Custody v2 hashes and signs JCS bytes made by the ``rfc8785`` library. On top of JCS, a value
written into the chain holds no floating-point number and no integer beyond ±(2**53 − 1):
every JSON implementation reads such values identically (a JavaScript check of a ``0.0`` once
disagreed with Python's). Durations and positions are integer milliseconds; anything larger
is a decimal string.

Reading is strict: the bytes must parse without duplicate keys, and serializing what was read
must give the same bytes back. Extra whitespace, escaped characters JCS writes as themselves,
other number spellings (``1.0``, ``1e3``) are all mismatches, never normalized away.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from .errors import InvalidInput

MAX_SAFE_INTEGER = 2**53 - 1


class NotCanonical(ValueError):
    """Bytes that are not exactly the JCS serialization of a value custody allows."""


def check_value(value: Any, where: str = "value") -> None:
    """Refuse what the chain never holds: floats, integers past ±(2**53 − 1), non-JSON types.

    Raises ``InvalidInput`` naming the offending place, e.g. ``details.start_s``.
    """
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise InvalidInput(
                f"{where} is {value}, beyond ±(2**53 - 1)",
                hint="write integers this large as decimal strings",
            )
        return
    if isinstance(value, float):
        raise InvalidInput(
            f"{where} is the floating-point number {value!r}; custody records hold no floats",
            hint="write durations and positions as integer milliseconds (e.g. start_ms)",
        )
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{where} has the key {key!r}, not a string")
            check_value(item, f"{where}.{key}")
        return
    raise InvalidInput(f"{where} is a {type(value).__name__}, not a JSON value")


def dumps(value: Any) -> bytes:
    """The JCS bytes of ``value`` after ``check_value``."""
    check_value(value)
    return rfc8785.dumps(value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise NotCanonical(f"duplicate key {key!r}")
        found[key] = value
    return found


def _no_float(text: str) -> Any:
    raise NotCanonical(f"number {text} is not an integer")


def _no_constant(text: str) -> Any:
    raise NotCanonical(f"{text} is not JSON")


def loads_exact(data: bytes) -> Any:
    """The value whose JCS bytes are exactly ``data``; ``NotCanonical`` otherwise."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except UnicodeDecodeError as exc:
        raise NotCanonical("not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise NotCanonical(f"not JSON ({exc.msg})") from exc
    try:
        again = dumps(value)
    except InvalidInput as exc:
        raise NotCanonical(exc.message) from exc
    if again != data:
        raise NotCanonical("not in canonical form (RFC 8785)")
    return value
