"""Case replay: a case's written records and recordings in time order, optionally re-checked.

With ``verify`` every original and document is re-read from storage (decrypted
when protected) and its SHA-256 compared with the catalog's: ``ok``,
``mismatch`` or ``missing`` per item. The replay itself is a custody event.
"""

from __future__ import annotations

from typing import Any

from archive.context import ServiceContext
from archive.encryption import Keys
from archive.reading import hash_stored
from archive.store import ObjectStore
from catalog import cases, custody
from catalog.actions import Action
from catalog.timeline import ItemView
from catalog.verification import mark_verified
from catalog.views import case_items


def check_item(store: ObjectStore, item: ItemView, kek: Keys | None) -> str:
    """Re-read one item's stored bytes: ``ok``, ``mismatch`` or ``missing``."""
    if not item.storage_key:
        return "missing"
    return hash_stored(
        store, item.storage_key, item.storage_version, encrypted=item.encrypted, kek=kek
    ).verdict(item.sha256)


def replay(ctx: ServiceContext, case_name: str, *, verify: bool) -> tuple[dict[str, Any], list[ItemView]]:
    sessions, store, actor, now = ctx.sessions, ctx.store, ctx.actor, ctx.now()
    kek = ctx.kek() if verify and ctx.load_kek else None
    with sessions() as session:
        case = cases.get_case(session, case_name)
        items = case_items(session, case)
        header = {
            "number": case.number,
            "case_key": case.case_key,
            "title": case.title,
            "status": case.status,
            "type": case.case_type,
            "opened": case.opened_on.isoformat(),
            "closed": case.closed_on.isoformat() if case.closed_on else None,
        }
    problems = []
    if verify:
        for item in items:
            item.verified = check_item(store, item, kek if item.encrypted else None)
            if item.verified != "ok":
                problems.append({"item_no": item.item_no, "verified": item.verified})
    with sessions.begin() as session:
        if verify:
            ok = [i for i in items if i.verified == "ok"]
            mark_verified(
                session,
                at=now,
                archive_nos=[i.archive_no for i in ok if i.archive_no],
                document_keys=[i.storage_key for i in ok if not i.archive_no and i.storage_key],
            )
        custody.append(
            session,
            actor=actor,
            action=Action.REPLAYED,
            subject=header["case_key"],
            details={"verify": verify, "items": len(items), "problems": problems},
        )
    return header, items
