"""Media links: what the item page plays, by a signed, personal, short-lived link.

Local stores and protected records are streamed by the server with byte ranges (players
seek); an unprotected record on S3 is redirected to a presigned URL pinned to its version.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import PurePosixPath

from starlette.requests import Request
from starlette.responses import (
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from archive.reading import plain_size, playback_url, read_plain

from .common import Refusal, site, visible

# Types a browser may show inline on the site's own origin: none of them runs script. The
# rest (HTML, SVG, XML, text …) is served as an attachment, so a stored document cannot put
# its script on the site's origin.
INLINE = frozenset(
    {
        "application/pdf",
        "image/jpeg",
        "image/png",
        "video/mp4",
        "video/webm",
        "video/quicktime",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/wav",
        "audio/x-wav",
        "audio/ogg",
        "audio/webm",
    }
)
# On every served file: no sniffing into a riskier type, and a sandbox (no script, an opaque
# origin, nothing loaded, no framing) should a browser render it anyway.
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'; frame-ancestors 'none'",
}


def served(content_type: str, name: str, *, download: bool = False) -> tuple[str, dict[str, str]]:
    """(media type, headers) to serve a stored file with: inline only for ``INLINE`` types."""
    if not download and content_type in INLINE:
        return content_type, {**FILE_HEADERS, "Content-Disposition": "inline"}
    return "application/octet-stream", {
        **FILE_HEADERS,
        "Content-Disposition": f'attachment; filename="{name}"',
    }


def media(request: Request) -> Response:
    here, user = site(request), request.state.user
    link = here.signer.unsign("media", request.path_params["token"])
    if link is None:
        raise Refusal(403, "the media link is forged or has expired; reload the page")
    if link["u"] != user.id:
        raise Refusal(403, "the media link belongs to another account")
    # The gate has re-checked the session and role; the grant is re-checked here, at every
    # fetch, so a link stops working when the grant it was issued under is revoked.
    from .items import find_item  # items imports this module

    with here.web.reading() as session:
        _case, _item_link, item = find_item(session, link["i"])
    if not visible(user, item):
        raise Refusal(403, "protected record")
    store, key, version, encrypted = here.web.store, link["k"], link["v"], link["e"]
    media_type, file_headers = served(link["t"], f"{link.get('i', 'item')}{PurePosixPath(key).suffix}")
    # The store would serve a presigned object with its stored type: only inline-safe ones go
    # there; the rest is streamed from here as an attachment.
    if not encrypted and store.capabilities.presigned_urls and media_type in INLINE:
        return RedirectResponse(
            playback_url(
                store,
                key,
                version,
                encrypted=False,
                expires=timedelta(seconds=max(1, round(here.web.link_seconds))),
            ),
            302,
        )
    size = plain_size(store, key, version, encrypted)
    span = _range(request.headers.get("range", ""), size, here.web.media_chunk_bytes)
    if span is None:
        return PlainTextResponse("bad range", 416, headers={"Content-Range": f"bytes */{size}"})
    start, end, status = span
    headers = {**file_headers, "Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
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
    return StreamingResponse(body, status_code=status, media_type=media_type, headers=headers)


def _range(header: str, size: int, chunk: int) -> tuple[int, int, int] | None:
    """(first byte, last byte, status) asked for by a Range header (the first range only), at
    most ``chunk`` bytes of it (players ask again for the rest); None when it cannot be served."""
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
    end = min(end, size - 1, start + chunk - 1)
    if start > end or start >= size:
        return None
    return start, end, 206
