"""An export for someone without the protected grant withholds protected items entirely."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import bagit
from sqlalchemy import select

from archive.documents import NewDocument, store_document
from catalog import custody
from catalog.models import Recording
from tests.verify.test_export import T0, TYPES, Built, build_case, export, trust
from verify.package import verify_package


def _secrets(env, built: Built) -> dict[str, str]:
    """What would identify the protected recording: name, digests, numbers, keys."""
    item = built.protected_item
    with env.sessions() as s:
        rec = s.execute(
            select(Recording).where(
                Recording.archive_no.in_([a for a, i in built.items.items() if i == item])
            )
        ).scalar_one()
    return {
        "original name": rec.original_name,
        "sha256": hashlib.sha256(built.plain[item]).hexdigest(),
        "archive number": rec.archive_no,
        "storage key": rec.storage_key,
    }


def _package_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_without_the_grant_protected_items_are_withheld_and_the_package_verifies(env) -> None:
    built = build_case(env, proxies=True)
    secrets = _secrets(env, built)
    result = export(env, built, env.tmp / "out", with_proxies=True, include_protected=False)
    files = _package_bytes(result.path)

    protected = built.plain[built.protected_item]
    for rel, data in files.items():
        assert protected[:4096] not in data and protected[-4096:] not in data, f"plaintext in {rel}"
        text = data.decode("utf-8", errors="replace")
        for what, value in secrets.items():
            assert value not in text, f"the {what} of the protected item is in {rel}"
    assert not [rel for rel in files if built.protected_item in rel.rsplit("/", 1)[-1]]  # no file of it

    report = verify_package(result.path, anchors=trust(built))
    assert report.ok, report.problems
    bagit.Bag(str(result.path)).validate()
    assert result.items == 4

    case = json.loads(files["data/case.json"])
    by_no = {i["item_no"]: i for i in case["items"]}
    assert by_no[built.protected_item] == {"item_no": built.protected_item, "withheld": "protected"}
    assert not any(i.get("protected") for i in case["items"])
    page = files["data/index.html"].decode("utf-8")
    assert built.protected_item in page and "withheld: protected" in page
    info = bagit.Bag(str(result.path)).info
    assert info["Withheld-Items"] == f"{built.protected_item} (withheld: protected)"

    kept = {json.loads(line)["seq"] for line in files["data/custody/events.jsonl"].splitlines()}
    with env.sessions() as s:
        about = [
            e for e in custody.events(s) if e.subject in (built.protected_item, secrets["archive number"])
        ]
        (exported,) = [e for e in custody.events(s, subject=built.case_key) if e.action == "exported"]
    assert about and not kept & {e.seq for e in about}
    # The protected item's events are still in the chain, as hash-only links that check.
    links = {
        int(line.split("\t")[0]): line.split("\t")[3]
        for line in files["data/custody/links.tsv"].decode().splitlines()
    }
    assert all(links[e.seq] == e.hash for e in about if e.seq in links)
    assert exported.details["withheld"] == [built.protected_item]
    assert exported.details["withheld_why"] == "protected"
    assert built.protected_item not in exported.details["item_nos"] and exported.details["items"] == 4


def test_with_the_grant_everything_is_included(env) -> None:
    built = build_case(env, proxies=True)
    secrets = _secrets(env, built)
    result = export(env, built, env.tmp / "out", with_proxies=True, include_protected=True)
    bag = result.path
    assert (bag / "data" / "originals" / f"{built.protected_item}.mp4").read_bytes() == built.plain[
        built.protected_item
    ]
    assert (bag / "data" / "proxies" / f"{built.protected_item}-proxy.mp4").exists()
    case = json.loads((bag / "data" / "case.json").read_text(encoding="utf-8"))
    protected = {i["item_no"]: i for i in case["items"]}[built.protected_item]
    assert protected["original_name"] == secrets["original name"] and protected["sha256"] == secrets["sha256"]
    assert "Withheld-Items" not in bagit.Bag(str(bag)).info
    assert verify_package(bag, anchors=trust(built)).ok
    with env.sessions() as s:
        (exported,) = [e for e in custody.events(s, subject=built.case_key) if e.action == "exported"]
    assert "withheld" not in exported.details and exported.details["items"] == 5


def test_a_protected_document_is_withheld_too(env) -> None:
    built = build_case(env)
    path = env.tmp / "秘密笔录.pdf"
    plain = b"%PDF-1.4 protected statement " * 64
    path.write_bytes(plain)
    item, doc = store_document(
        env.as_("clerk", kek=built.kek),
        NewDocument(built.number, path, "询问笔录", doc_date=T0, officer="JX0227", protected=True),
        doc_types=TYPES,
    )
    result = export(env, built, env.tmp / "out", include_protected=False)
    files = _package_bytes(result.path)
    for rel, data in files.items():
        assert plain[:256] not in data, f"the protected document is in {rel}"
        text = data.decode("utf-8", errors="replace")
        for value in (doc.sha256, doc.original_name, doc.storage_key):
            assert value not in text, f"{value} is in {rel}"
    case = json.loads(files["data/case.json"])
    withheld = [i["item_no"] for i in case["items"] if i.get("withheld") == "protected"]
    assert withheld == sorted([built.protected_item, item.item_no])
    assert verify_package(result.path, anchors=trust(built)).ok


def test_an_earlier_full_export_is_withheld_and_the_case_walk_goes_past_it(env) -> None:
    """The first export (with the grant) commits to the protected original's digest; a later
    export without the grant must not disclose that event, and still proves the case's events
    complete: the walk steps over it with the subject_prev the later export commits to."""
    built = build_case(env)
    export(env, built, env.tmp / "full", include_protected=True)
    result = export(env, built, env.tmp / "restricted", include_protected=False)
    with env.sessions() as s:
        first, second = [e for e in custody.events(s, subject=built.case_key) if e.action == "exported"]
    assert second.details["withheld_events"] == {str(first.seq): first.subject_prev}
    lines = (result.path / "data" / "custody" / "events.jsonl").read_bytes().splitlines()
    assert first.seq not in {json.loads(x)["seq"] for x in lines}
    assert first.hash in (result.path / "data" / "custody" / "links.tsv").read_text()  # a hash-only link
    report = verify_package(result.path, anchors=trust(built))
    assert report.ok, report.problems
    # Dropping the withheld link makes the walk stop short: the case's earlier events are unproven.
    links = (result.path / "data" / "custody" / "links.tsv").read_text().splitlines()
    kept = [line for line in links if not line.startswith(f"{first.seq}\t")]
    (result.path / "data" / "custody" / "links.tsv").write_text("".join(x + "\n" for x in kept))
    found = {p["problem"] for p in verify_package(result.path, anchors=trust(built)).problems}
    assert any("left out" in p for p in found) and any(
        p.startswith("chain broken at") or "stop before" in p for p in found
    ), found
