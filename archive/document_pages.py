"""A written record's PDF pages as images, made once and kept as derivatives.

The pages are drawn by poppler's ``pdftoppm`` in a separate process (nothing of poppler is
linked into this program), with a time limit, a memory limit and a page limit, so a hostile
or broken PDF costs one bounded child process. Each page is stored under
``derivatives/{item_no}/page0001-{sha256[:12]}.png`` with the document's lock, encrypted
when the document is, and its ``document_pages`` row is written after it is stored: a process
that dies in between leaves at worst an object no row names (the next request makes the page
again under the same digest, or under another when the drawing differs).

Images (JPEG, PNG) are shown as they are; only PDFs get pages.
"""

from __future__ import annotations

import logging
import resource
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from catalog import custody
from catalog.actions import Action
from catalog.db import insert_missing
from catalog.errors import EvidenceError, NotFound
from catalog.models import CaseItem, Document, DocumentPage

from .context import ServiceContext
from .digest import hash_file
from .errors import ObjectExists
from .files import put_file
from .layout import derivative_key
from .reading import read_plain
from .retention import lock_until

log = logging.getLogger(__name__)

PDFTOPPM = "pdftoppm"
MAX_PAGES = 40
DPI = 100
TIMEOUT_S = 60.0
MEMORY_BYTES = 1024 * 1024 * 1024


class PagesFailed(EvidenceError):
    """The document's pages could not be drawn (not a PDF, damaged, too costly)."""


@dataclass(frozen=True)
class Page:
    page: int
    pages: int
    sha256: str
    size: int
    storage_key: str
    storage_version: str | None
    encrypted: bool


def _limits() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (int(TIMEOUT_S), int(TIMEOUT_S) + 1))


def draw_pages(pdf: Path, out_dir: Path, *, dpi: int = DPI, max_pages: int = MAX_PAGES) -> list[Path]:
    """PNG files of the PDF's first ``max_pages`` pages, in page order (a child process)."""
    prefix = out_dir / "page"
    command = [PDFTOPPM, "-png", "-r", str(dpi), "-f", "1", "-l", str(max_pages), "--", str(pdf), str(prefix)]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=TIMEOUT_S,
            preexec_fn=_limits,  # noqa: PLW1509 - no threads touch the child before exec
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise PagesFailed(
            "pdftoppm is not installed", hint="install poppler-utils (make deps does)"
        ) from None
    except subprocess.TimeoutExpired:
        raise PagesFailed(
            f"drawing the pages took over {TIMEOUT_S:.0f} s", hint="download the document"
        ) from None
    pages = sorted(out_dir.glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    if done.returncode != 0 or not pages:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no page came out"]
        raise PagesFailed(
            f"the document's pages could not be drawn: {why[0][:200]}", hint="download the document"
        )
    return pages


# One drawing per document at a time in this process: two auditors opening the same record
# wait for one drawing instead of making two.
_drawing: dict[int, threading.Lock] = {}
_drawing_guard = threading.Lock()


def _lock_for(document_id: int) -> threading.Lock:
    with _drawing_guard:
        return _drawing.setdefault(document_id, threading.Lock())


def stored_pages(ctx: ServiceContext, document_id: int) -> list[Page]:
    with ctx.sessions() as session:
        rows = session.execute(
            select(DocumentPage).where(DocumentPage.document_id == document_id).order_by(DocumentPage.page)
        ).scalars()
        return [
            Page(r.page, r.pages, r.sha256, r.size, r.storage_key, r.storage_version, r.encrypted)
            for r in rows
        ]


def document_pages(ctx: ServiceContext, document_id: int) -> list[Page]:
    """The document's pages, drawn and stored on first need."""
    found = stored_pages(ctx, document_id)
    if found and len(found) == found[0].pages:
        return found
    with _lock_for(document_id):
        found = stored_pages(ctx, document_id)
        if found and len(found) == found[0].pages:
            return found
        return _make(ctx, document_id)


def _make(ctx: ServiceContext, document_id: int) -> list[Page]:
    with ctx.sessions() as session:
        doc = session.get(Document, document_id)
        if doc is None:
            raise NotFound(f"no document {document_id}")
        item_no = session.execute(
            select(CaseItem.item_no).where(CaseItem.document_id == document_id)
        ).scalar_one()
        session.expunge(doc)
    if doc.content_type != "application/pdf":
        raise PagesFailed(f"{item_no} is not a PDF ({doc.content_type}); it is shown as it is")
    now = ctx.now()
    until = lock_until(now, None, now=now)
    kek = ctx.kek_for(doc.encrypted)
    encrypt = (kek, ctx.policy.algorithm) if doc.encrypted else None
    made: list[Page] = []
    # The plain document and its pages sit in a private temporary folder only while drawing.
    with tempfile.TemporaryDirectory(prefix="evidence-pages-") as work:
        source = Path(work) / "document.pdf"
        with source.open("wb") as out:
            for chunk in read_plain(
                ctx.store, doc.storage_key, doc.storage_version, encrypted=doc.encrypted, kek=kek
            ):
                out.write(chunk)
        files = draw_pages(source, Path(work), dpi=DPI, max_pages=MAX_PAGES)
        source.unlink()
        for number, path in enumerate(files, start=1):
            digests = hash_file(path)
            key = derivative_key(item_no, f"page{number:04d}", digests.sha256, "png")
            try:
                version = put_file(
                    ctx.store,
                    key,
                    path,
                    digests,
                    content_type="image/png",
                    metadata={"sha256": digests.sha256, "item-no": item_no},
                    retain_until=until,
                    label=f"{item_no} page {number}",
                    encrypt=encrypt,
                ).version
            except ObjectExists:
                version = ctx.store.stat(key).version  # the same drawing, stored before
            except EvidenceError as exc:  # e.g. a web server whose credential may only read
                raise PagesFailed(
                    f"the pages of {item_no} could not be stored: {exc}",
                    hint=f"run `evidence case pages CASE` where storage may be written ({item_no})",
                ) from exc
            made.append(Page(number, len(files), digests.sha256, digests.size, key, version, doc.encrypted))
    with ctx.sessions.begin() as session:
        for page in made:
            inserted = insert_missing(
                session,
                DocumentPage.__table__,
                {
                    "document_id": document_id,
                    "page": page.page,
                    "pages": page.pages,
                    "sha256": page.sha256,
                    "size": page.size,
                    "storage_key": page.storage_key,
                    "storage_version": page.storage_version,
                    "encrypted": page.encrypted,
                    "created_at": now,
                },
                ["document_id", "page"],
            )
            if inserted:
                custody.append(
                    session,
                    actor=ctx.actor,
                    action=Action.DERIVATIVE_STORED,
                    subject=item_no,
                    details={
                        "kind": "page",
                        "page": page.page,
                        "key": page.storage_key,
                        "sha256": page.sha256,
                    },
                )
    log.info("drew %d page(s) of %s", len(made), item_no)
    return stored_pages(ctx, document_id)
