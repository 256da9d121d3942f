"""Sessions, signed links, CSRF, login throttling and refusal counting for the web pages.

Everything signed here uses HMAC-SHA256 with the server's secret (a file in the
data folder, made by ``evidence init``). A session cookie carries the account id,
the id of its server-side session (``WebSession``, so it can be ended), its expiry
and its CSRF token; a media link carries the object key and version, the account
and an expiry of a few minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LINK_SECONDS = 300


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, purpose: str, payload: dict[str, Any], lifetime: float) -> str:
        body = dict(payload, p=purpose, exp=int(time.time() + lifetime))
        data = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        mac = _b64(hmac.new(self._secret, data.encode(), hashlib.sha256).digest())
        return f"{data}.{mac}"

    def unsign(self, purpose: str, token: str | None) -> dict[str, Any] | None:
        """The payload, or None when forged, for another purpose, or expired."""
        if not token or "." not in token or not token.isascii():
            return None  # compare_digest raises on non-ASCII str; a real token is ASCII
        data, mac = token.rsplit(".", 1)
        good = _b64(hmac.new(self._secret, data.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(good.encode(), mac.encode()):
            return None
        try:
            body = json.loads(_unb64(data))
        except ValueError:
            return None
        if not isinstance(body, dict) or body.get("p") != purpose or body.get("exp", 0) < time.time():
            return None
        return body


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


class LoginThrottle:
    """At most ``limit`` failed logins per source and account name, and ``4 * limit`` per
    source over all names, in any ``window`` seconds. The failures are counted from the custody
    chain's ``login_failed`` events (``recent(seconds)`` gives their subjects and sources), so
    every process serving the pages shares one count and a restart forgets nothing."""

    def __init__(
        self, recent: Callable[[float], list[tuple[str, str]]], limit: int = 5, window: float = 300.0
    ) -> None:
        self.recent, self.limit, self.window = recent, limit, window

    def blocked(self, source: str, name: str) -> bool:
        from_source = [subject for subject, where in self.recent(self.window) if where == source]
        return (
            sum(subject == f"user:{name}" for subject in from_source) >= self.limit
            or len(from_source) >= self.limit * 4
        )


@dataclass
class RefusalCounter:
    """Refusals without a session, counted per source and minute (not one custody event each)."""

    def __post_init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = defaultdict(int)
        self._lock = threading.Lock()

    def add(self, source: str) -> None:
        with self._lock:
            self._counts[(source, int(time.time() // 60))] += 1

    def take_finished(self, *, everything: bool = False) -> list[tuple[str, int, int]]:
        """(source, minute, count) of minutes that are over (or all), removed from the counter."""
        now_minute = int(time.time() // 60)
        with self._lock:
            done = [(s, m, n) for (s, m), n in self._counts.items() if everything or m < now_minute]
            for s, m, _ in done:
                del self._counts[(s, m)]
        return done
