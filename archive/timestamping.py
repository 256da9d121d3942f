"""Asking a Time Stamping Authority (RFC 3161, over HTTP) for a token over a statement.

The TSA is outside the installation and may be down or slow: callers treat
``TimestampUnavailable`` as "ask again later", never as a reason to stop a checkpoint.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from catalog import timestamp
from catalog.errors import EvidenceError

MAX_REPLY = 1 << 20  # a token is a few kilobytes; anything far larger is not one


class TimestampUnavailable(EvidenceError):
    """The TSA could not be reached or gave no usable token; the request is made again later."""

    exit_code = 1


def request_token(url: str, statement: bytes, *, timeout: float = 10.0) -> bytes:
    """The TSA's token (DER ``TimeStampResp``) over SHA-256 of ``statement``.

    The answer is checked only for what the request controls (granted, over these bytes);
    its signature is checked against the trusted CA where it is used (``catalog.timestamp``).
    """
    request = urllib.request.Request(
        url,
        data=timestamp.request_for(statement),
        headers={"Content-Type": "application/timestamp-query"},
        method="POST",
    )
    hint = "the checkpoint stands without it; the token is asked for again at the next checkpoint run"
    where = f"the time-stamp authority at {url}"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 (a configured URL)
            token: bytes = answer.read(MAX_REPLY + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TimestampUnavailable(f"{where} cannot be reached: {exc}", hint=hint) from exc
    if len(token) > MAX_REPLY:
        raise TimestampUnavailable(f"{where} answered more than {MAX_REPLY} bytes", hint=hint)
    if not timestamp.imprint_matches(token, statement):
        raise TimestampUnavailable(f"{where} answered no token for the checkpoint's bytes", hint=hint)
    return token


@dataclass(frozen=True)
class TimestampAuthority:
    """Where the installation asks for tokens (``[custody] tsa_url``)."""

    url: str
    timeout: float = 10.0

    def request(self, statement: bytes) -> bytes:
        return request_token(self.url, statement, timeout=self.timeout)
