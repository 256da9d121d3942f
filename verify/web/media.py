"""Media links: what the item page plays, by a signed, personal, short-lived link.

Local stores and protected records are streamed by the server with byte ranges (players
seek); an unprotected record on S3 is redirected to a presigned URL pinned to its version.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import (
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from archive.reading import plain_size, playback_url, read_plain

from .common import Refusal, site
from .security import LINK_SECONDS


def media(request: Request) -> Response:
    here, user = site(request), request.state.user
    link = here.signer.unsign("media", request.path_params["token"])
    if link is None:
        raise Refusal(403, "the media link is forged or has expired; reload the page")
    if link["u"] != user.id:
        raise Refusal(403, "the media link belongs to another account")
    store, key, version, encrypted = here.web.store, link["k"], link["v"], link["e"]
    if not encrypted and store.capabilities.presigned_urls:
        return RedirectResponse(
            playback_url(store, key, version, encrypted=False, expires=timedelta(seconds=LINK_SECONDS)), 302
        )
    size = plain_size(store, key, version, encrypted)
    span = _range(request.headers.get("range", ""), size)
    if span is None:
        return PlainTextResponse("bad range", 416, headers={"Content-Range": f"bytes */{size}"})
    start, end, status = span
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    # A plain (sync) iterator: StreamingResponse reads each chunk in the thread pool.
    body = read_plain(
        store,
        key,
        version,
        encrypted=encrypted,
        kek=here.web.services.kek_for(encrypted),
        start=start,
        length=end - start + 1,
    )
    return StreamingResponse(body, status_code=status, media_type=link["t"], headers=headers)


def _range(header: str, size: int) -> tuple[int, int, int] | None:
    """(first byte, last byte, status) asked for by a Range header (the first range only);
    None when it cannot be served."""
    if not header.startswith("bytes="):
        return 0, size - 1, 200
    first, _, last = header[6:].split(",")[0].partition("-")
    try:
        if first:
            start, end = int(first), int(last) if last else size - 1
        else:
            start, end = max(0, size - int(last)), size - 1
    except ValueError:
        return None
    end = min(end, size - 1)
    if start > end or start >= size:
        return None
    return start, end, 206
