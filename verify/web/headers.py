"""Security headers on every answer, set in one place (a middleware outside the access gate,
so refusals, redirects and error pages carry them too).

The pages load scripts, styles, images and media from the site only; where the store gives
presigned URLs (S3), media and images may also come from the store's endpoint, where the
media link redirects. Nothing may frame the pages. Evidence pages and media are never kept
in a cache (``no-store``); the static files may be.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from archive.store import ObjectStore


def policy(store: ObjectStore) -> str:
    origin = getattr(store, "origin", None) if store.capabilities.presigned_urls else None
    extra = f" {origin}" if origin else ""
    return (
        "default-src 'self'; "
        f"img-src 'self'{extra}; media-src 'self'{extra}; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp, store: ObjectStore) -> None:
        self.app = app
        self.csp = policy(store)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A served file may bring a stricter policy of its own (sandbox): keep it.
                headers.setdefault("Content-Security-Policy", self.csp)
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, sending)
