import json

import pytest

from archive.documents import NewDocument, store_document
from catalog import custody
from catalog.errors import InvalidInput, NotFound

TYPES = ["立案审批表", "询问笔录"]


def test_documents_and_recordings_share_the_case_sequence(env, tmp_path) -> None:
    from archive.links import link_recordings

    case = env.case()
    scan = tmp_path / "立案审批表（扫描）.pdf"
    scan.write_bytes(b"%PDF-1.4 approval form")
    new = NewDocument(case.number, scan, "立案审批表", doc_number="开城管立〔2020〕42号")
    item, doc = store_document(env.as_("clerk"), new, doc_types=TYPES)
    assert item.item_no == f"{case.case_key}-001D"
    rec = env.recording()
    (pair,) = link_recordings(env.as_("clerk"), case.case_key, [rec.archive_no])
    assert pair == (rec.archive_no, f"{case.case_key}-002V")
    item3, _ = store_document(env.as_("clerk"), NewDocument(case.case_key, scan, "询问笔录"), doc_types=TYPES)
    assert item3.item_no == f"{case.case_key}-003D"
    assert b"".join(env.store.read(doc.storage_key)) == b"%PDF-1.4 approval form"
    assert doc.storage_key == f"documents/{case.case_key}/{case.case_key}-001D.pdf"
    manifest = json.loads(b"".join(env.store.read(doc.manifest_key)))
    assert manifest["original_name"] == "立案审批表（扫描）.pdf"
    assert manifest["doc_number"] == "开城管立〔2020〕42号"
    info = env.store.stat(doc.storage_key)
    assert info.retention and info.retention.until.year >= env.now().year + 9
    events = [o.key for o in env.store.list(f"cases/{case.case_key}/events/")]
    assert len(events) == 4  # opened, document, linked, document
    with env.sessions() as s:
        assert custody.verify(s).ok


def test_unknown_type_case_or_file_is_refused(env, tmp_path) -> None:
    case = env.case()
    scan = tmp_path / "a.pdf"
    scan.write_bytes(b"x")
    with pytest.raises(InvalidInput, match="not a known document type"):
        store_document(env.as_("c"), NewDocument(case.number, scan, "情况说明"), doc_types=TYPES)
    with pytest.raises(NotFound):
        store_document(env.as_("c"), NewDocument("no such case", scan, "询问笔录"), doc_types=TYPES)
    with pytest.raises(InvalidInput, match="not a readable file"):
        store_document(
            env.as_("c"), NewDocument(case.number, tmp_path / "absent.pdf", "询问笔录"), doc_types=TYPES
        )
