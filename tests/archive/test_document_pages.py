"""A written record's PDF pages drawn by the real pdftoppm and kept as derivatives, on both
catalogs and both stores (local, Ceph RGW): encrypted like the document, made once, and a
hostile or broken file refused with a typed error and nothing stored."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from archive import document_pages
from archive.document_pages import PagesFailed
from archive.document_pages import document_pages as pages_of
from archive.documents import NewDocument, store_document
from archive.encryption import generate_kek
from archive.policy import ArchivePolicy
from archive.reading import read_plain
from catalog import custody, schema
from catalog.db import make_engine, session_factory
from catalog.models import DocumentPage
from tests import synthetic
from tests.conftest import ZONE, Env

TYPES = ["现场检查（勘验）笔录", "询问笔录"]


@pytest.fixture
def local_env(sqlite_url, local_store, tmp_path):
    """One catalog and store for the refusals, which touch neither beyond the document."""
    engine = make_engine(sqlite_url)
    schema.upgrade(engine)
    yield Env(
        engine,
        session_factory(engine),
        local_store,
        tmp_path,
        ArchivePolicy(zone=ZONE, routine=(0, "days"), min_lock=timedelta(seconds=3)),
    )
    engine.dispose()


PNG = b"\x89PNG\r\n\x1a\n"


def _document(
    env, name: str, *, protected: bool = False, kek: bytes | None = None, body: bytes | None = None
):
    case = env.case()
    path = env.tmp / name
    if body is None:
        synthetic.make_pdf(
            path, "现场检查（勘验）笔录", ["案号：开城管罚立〔2020〕42号", "当事人：张某"], pages=3
        )
    else:
        path.write_bytes(body)
    item, doc = store_document(
        env.as_("clerk", kek=kek),
        NewDocument(
            case=case.number,
            path=path,
            doc_type=TYPES[0],
            doc_date=datetime(2020, 11, 5, 1, 30, tzinfo=UTC),
            protected=protected,
        ),
        doc_types=TYPES,
    )
    return item, doc


def test_pages_are_drawn_once_stored_and_encrypted_like_the_document(env) -> None:
    kek = generate_kek()
    item, doc = _document(env, "record.pdf", protected=True, kek=kek)
    ctx = env.as_("web:aud", kek=kek)
    pages = pages_of(ctx, doc.id)
    assert [p.page for p in pages] == [1, 2, 3] and {p.pages for p in pages} == {3}
    for page in pages:
        assert page.storage_key.startswith(f"derivatives/{item.item_no}/page{page.page:04d}-")
        assert page.encrypted
        stored = b"".join(env.store.read(page.storage_key, page.storage_version))
        assert not stored.startswith(PNG)  # ciphertext in the store
        plain = b"".join(
            read_plain(env.store, page.storage_key, page.storage_version, encrypted=True, kek=ctx.kek())
        )
        assert plain.startswith(PNG) and len(plain) == page.size
    with env.sessions() as s:
        made = [e for e in custody.events(s, subject=item.item_no) if e.action == "derivative_stored"]
    assert sorted(e.details["page"] for e in made) == [1, 2, 3] and {e.actor for e in made} == {"web:aud"}
    # The second time, the stored pages are used: nothing drawn, nothing recorded again.
    assert pages_of(ctx, doc.id) == pages
    with env.sessions() as s:
        again = [e for e in custody.events(s, subject=item.item_no) if e.action == "derivative_stored"]
    assert len(again) == 3


def test_an_unprotected_document_pages_are_plain_pngs(local_env) -> None:
    _item, doc = _document(local_env, "plain.pdf")
    (first, *_rest) = pages_of(local_env.as_("web:aud"), doc.id)
    assert not first.encrypted
    assert b"".join(local_env.store.read(first.storage_key, first.storage_version)).startswith(PNG)


@pytest.mark.parametrize(
    "body",
    [
        b"%PDF-1.4 a record that is not one",
        b"<html><script>alert(1)</script></html>",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
    ],
    ids=["truncated", "html-named-pdf", "self-referencing"],
)
def test_a_broken_or_hostile_pdf_is_refused_and_nothing_is_stored(local_env, body) -> None:
    _item, doc = _document(local_env, "broken.pdf", body=body)
    with pytest.raises(PagesFailed) as refused:
        pages_of(local_env.as_("web:aud"), doc.id)
    assert refused.value.hint == "download the document"
    with local_env.sessions() as s:
        assert s.execute(select(DocumentPage)).scalars().all() == []
    assert [k for k in local_env.store.list("derivatives/")] == []


def test_a_drawing_over_its_time_limit_is_stopped(local_env, monkeypatch) -> None:
    _item, doc = _document(local_env, "slow.pdf")
    monkeypatch.setattr(document_pages, "TIMEOUT_S", 0.01)
    monkeypatch.setattr(document_pages, "DPI", 2400)  # pages of 20,000 pixels: far over 10 ms
    with pytest.raises(PagesFailed):
        pages_of(local_env.as_("web:aud"), doc.id)
    with local_env.sessions() as s:
        assert s.execute(select(DocumentPage)).scalars().all() == []


def test_only_pdfs_have_pages(local_env) -> None:
    _item, doc = _document(local_env, "photo.jpg", body=b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(PagesFailed, match="not a PDF"):
        pages_of(local_env.as_("web:aud"), doc.id)
