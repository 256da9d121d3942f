"""Storing a written record (执法文书) under its case's shared numbering.

The file is hashed, given the case's next item number (committed at once),
streamed to ``documents/{case_key}/{item_no}.{ext}`` with a manifest beside
it, then one catalog transaction records the document, its case item, the
custody event and the case event (queued for storage with it).
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from catalog import cases, custody, items
from catalog.actions import Action
from catalog.canonical import format_instant
from catalog.errors import InvalidInput
from catalog.models import CaseItem, Document

from . import outbox
from .cases import queue_case_event
from .context import ServiceContext
from .digest import hash_file
from .files import encryption_note, put_file
from .layout import document_key, document_manifest_key, extension
from .records import put_json
from .retention import lock_until


@dataclass(frozen=True)
class NewDocument:
    case: str  # the bureau's number or the case key
    path: Path
    doc_type: str
    doc_date: datetime | None = None
    doc_number: str | None = None
    protected: bool = False
    officer: str | None = None  # who made the record (enforcement-certificate number)


def store_document(
    ctx: ServiceContext, doc: NewDocument, *, doc_types: list[str]
) -> tuple[CaseItem, Document]:
    if doc.doc_type not in doc_types:
        raise InvalidInput(
            f"{doc.doc_type!r} is not a known document type",
            hint=f"one of: {', '.join(doc_types)} ([documents] types in the settings)",
        )
    if not doc.path.is_file():
        raise InvalidInput(f"{doc.path} is not a readable file")
    sessions, store, policy, actor, now = ctx.sessions, ctx.store, ctx.policy, ctx.actor, ctx.now()
    with sessions() as session:
        case = cases.get_case(session, doc.case)
        case_key = case.case_key
    digests = hash_file(doc.path, sm3=policy.sm3)
    seq, item_no = items.draw_item_number(ctx.engine, ctx.formats, case_key, "document")
    key = document_key(case_key, item_no, extension(doc.path.name))
    # Documents follow their case, which is kept permanently while open.
    until = lock_until(now, None, now=now)
    content_type = mimetypes.guess_type(doc.path.name)[0] or "application/octet-stream"
    encrypt = (ctx.kek(), policy.algorithm) if policy.encrypts(doc.protected) else None
    stored = put_file(
        store,
        key,
        doc.path,
        digests,
        content_type=content_type,
        metadata={"sha256": digests.sha256, "item-no": item_no},
        retain_until=until,
        label=item_no,
        sm3=policy.sm3,
        encrypt=encrypt,
    )
    encrypted = encryption_note(encrypt)
    manifest = {
        "v": 1,
        "type": "document",
        "case_key": case_key,
        "item_no": item_no,
        "doc_type": doc.doc_type,
        "doc_number": doc.doc_number,
        "officer": doc.officer,
        "doc_date": format_instant(doc.doc_date) if doc.doc_date else None,
        "sha256": digests.sha256,
        "sm3": digests.sm3,
        "size": digests.size,
        "original_name": doc.path.name,
        "content_type": content_type,
        "protected": doc.protected,
        "encryption": encrypted,
        "added_at": format_instant(now),
        "added_by": actor,
        "stored": {"key": key, "sha256": stored.digests.sha256, "size": stored.digests.size},
    }
    put_json(store, document_manifest_key(case_key, item_no), manifest, lock_until=until)
    with sessions.begin() as session:
        case = cases.get_case(session, case_key)
        document = Document(
            case_id=case.id,
            doc_type=doc.doc_type,
            doc_number=doc.doc_number,
            doc_date=doc.doc_date,
            officer=doc.officer,
            sha256=digests.sha256,
            sm3=digests.sm3,
            size=digests.size,
            original_name=doc.path.name,
            content_type=content_type,
            storage_key=key,
            storage_version=stored.version,
            manifest_key=document_manifest_key(case_key, item_no),
            protected=doc.protected,
            encrypted=encrypted is not None,
            stored_sha256=stored.digests.sha256,
            stored_size=stored.digests.size,
            created_at=now,
            created_by=actor,
        )
        session.add(document)
        session.flush()
        item = items.add_item(
            session,
            case,
            seq=seq,
            item_no=item_no,
            kind="document",
            document_id=document.id,
            actor=actor,
            now=now,
        )
        event = custody.append(
            session,
            actor=actor,
            action=Action.DOCUMENT_ADDED,
            subject=item_no,
            details={
                k: manifest[k]
                for k in (
                    "case_key",
                    "doc_type",
                    "doc_number",
                    "doc_date",
                    "officer",
                    "sha256",
                    "sm3",
                    "size",
                    "original_name",
                    "protected",
                )
            }
            | {"key": key},
        )
        queue_case_event(session, case, event, now)
    outbox.flush(sessions, store)
    return item, document
