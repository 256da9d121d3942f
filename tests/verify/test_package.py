"""Offline package verification: every kind of tampering is caught and named, folder or zip.

One package is exported once (SQLite catalog, local store; the export itself is tested on
every catalog and store in test_export.py); each test tampers with a copy. A "resealed"
tampering also rewrites the manifests and the tag manifest, as a forger who knows BagIt would:
bagit then finds nothing, and only the evidence-level checks (digests in case.json, the custody
excerpt, the checkpoint signature) stand between the forgery and the court.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import bagit
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archive.local_store import LocalStore
from archive.policy import ArchivePolicy
from catalog import schema
from catalog.canonical import canonical_bytes, parse_instant
from catalog.checkpoint import sign_checkpoint
from catalog.db import make_engine, session_factory
from catalog.errors import NotFound
from tests.conftest import ZONE, Env
from tests.verify.test_export import T0, Built, build_case, export, store_recording
from verify.package import verify_package

BAGIT_CLI = Path(sys.executable).parent / "bagit.py"


@dataclass
class Pristine:
    bag: Path
    built: Built


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    tmp = tmp_path_factory.mktemp("package")
    engine = make_engine(f"sqlite:///{tmp / 'catalog.sqlite3'}")
    schema.upgrade(engine)
    store = LocalStore(tmp / "store", lock_mode="COMPLIANCE")
    store.ensure_ready()
    env = Env(
        engine,
        session_factory(engine),
        store,
        tmp,
        ArchivePolicy(zone=ZONE, routine=(1, "days"), min_lock=timedelta(seconds=3)),
    )
    built = build_case(env, proxies=True)
    store_recording(env, 7, start=T0, kek=built.kek)  # another case's events fall in between
    result = export(env, built, tmp / "out", with_proxies=True)
    engine.dispose()
    return Pristine(result.path, built)


@pytest.fixture
def bag(pristine: Pristine, tmp_path: Path) -> Path:
    copy = tmp_path / pristine.bag.name
    shutil.copytree(pristine.bag, copy)
    return copy


def zipped(bag: Path) -> Path:
    target = bag.parent / f"{bag.name}.zip"
    with zipfile.ZipFile(target, "w", allowZip64=True) as zf:
        for path in sorted(p for p in bag.rglob("*") if p.is_file()):
            zf.write(path, f"{bag.name}/{path.relative_to(bag).as_posix()}")
    return target


def reseal(bag: Path) -> None:
    """Rewrite every manifest, the Payload-Oxum and the tag manifest over the current files."""
    payload = sorted(p for p in (bag / "data").rglob("*") if p.is_file())
    rel = [p.relative_to(bag).as_posix() for p in payload]
    (bag / "manifest-sha256.txt").write_text(
        "".join(
            f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {r}\n" for p, r in zip(payload, rel, strict=True)
        ),
        encoding="utf-8",
    )
    info = (bag / "bag-info.txt").read_text(encoding="utf-8").splitlines()
    oxum = f"{sum(p.stat().st_size for p in payload)}.{len(payload)}"
    (bag / "bag-info.txt").write_text(
        "".join(
            (f"Payload-Oxum: {oxum}" if line.startswith("Payload-Oxum:") else line) + "\n" for line in info
        ),
        encoding="utf-8",
    )
    tags = sorted(p.name for p in bag.iterdir() if p.is_file() and not p.name.startswith("tagmanifest-"))
    (bag / "tagmanifest-sha256.txt").write_text(
        "".join(f"{hashlib.sha256((bag / t).read_bytes()).hexdigest()}  {t}\n" for t in tags),
        encoding="utf-8",
    )


def excerpt_of(bag: Path) -> dict:
    return json.loads((bag / "data" / "custody" / "excerpt.json").read_text(encoding="utf-8"))


def write_excerpt(bag: Path, excerpt: dict) -> None:
    # Any JSON layout: a forger need not keep the one-link-a-line form.
    (bag / "data" / "custody" / "excerpt.json").write_text(
        json.dumps(excerpt, ensure_ascii=False), encoding="utf-8"
    )


def problems(path: Path) -> list[tuple[str, str]]:
    report = verify_package(path)
    assert report.ok == (not report.problems)
    return [(p["path"], p["problem"]) for p in report.problems]


def bagit_valid(bag: Path) -> bool:
    return bagit.Bag(str(bag)).is_valid()


def check_both_forms(bag: Path, expected: set[tuple[str, str]], *, bagit_ok: bool) -> None:
    """The folder and its zip give the same named problems; bagit agrees where it can see."""
    found = problems(bag)
    assert expected <= set(found), found
    assert set(problems(zipped(bag))) == set(found)
    assert bagit_valid(bag) == bagit_ok
    cli = subprocess.run(
        [sys.executable, str(BAGIT_CLI), "--validate", str(bag)], capture_output=True, text=True, timeout=120
    )
    assert (cli.returncode == 0) == bagit_ok, cli.stderr


def original(built: Built, which: str = "plain") -> str:
    item = (
        built.protected_item
        if which == "protected"
        else next(i for i in built.plain if i != built.protected_item)
    )
    return f"data/originals/{item}.mp4"


# --- the untouched package --------------------------------------------------------------------


def test_the_untouched_package_verifies_as_a_folder_and_as_a_zip(bag: Path, pristine: Pristine) -> None:
    report = verify_package(bag)
    assert report.ok and report.problems == []
    assert report.case_key == pristine.built.case_key and report.checkpoint == 1
    assert report.to_json()["ok"] is True and len(report.key_id or "") == 16
    assert verify_package(zipped(bag)).ok
    assert bagit_valid(bag)


def test_a_trusted_key_from_elsewhere_must_be_the_signer(bag: Path, pristine: Pristine) -> None:
    assert verify_package(bag, trusted_public_key=pristine.built.key.public_key()).ok
    other = Ed25519PrivateKey.generate().public_key()
    found = problems_with_key(bag, other)
    assert ("data/custody/public-key.pem", "not the trusted key") in found
    assert ("data/custody/checkpoint.json", "checkpoint signature invalid") in found


def problems_with_key(bag: Path, key) -> list[tuple[str, str]]:
    return [(p["path"], p["problem"]) for p in verify_package(bag, trusted_public_key=key).problems]


def test_a_missing_path_is_an_error_and_a_damaged_zip_a_problem(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        verify_package(tmp_path / "nothing.zip")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK not really a zip")
    report = verify_package(junk)
    assert not report.ok and report.problems[0]["problem"].startswith("not a readable zip")


# --- bag-level tampering: bagit sees it too -----------------------------------------------------


def test_a_flipped_payload_byte(bag: Path, pristine: Pristine) -> None:
    path = bag / original(pristine.built, "protected")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    check_both_forms(
        bag,
        {
            (original(pristine.built, "protected"), "sha256 mismatch"),
            ("data/case.json", f"item {pristine.built.protected_item} digest mismatch"),
        },
        bagit_ok=False,
    )


def test_a_deleted_payload_file(bag: Path, pristine: Pristine) -> None:
    (bag / original(pristine.built)).unlink()
    item = Path(original(pristine.built)).stem
    check_both_forms(
        bag,
        {(original(pristine.built), "missing"), ("data/case.json", f"item {item} file missing")},
        bagit_ok=False,
    )
    assert any(p == "bag-info.txt" and m.startswith("Payload-Oxum") for p, m in problems(bag))


def test_an_extra_payload_file(bag: Path) -> None:
    (bag / "data" / "originals" / "KZCG-2020-0001-099V.mp4").write_bytes(b"planted")
    rel = "data/originals/KZCG-2020-0001-099V.mp4"
    check_both_forms(bag, {(rel, "not in manifest"), (rel, "not in case.json")}, bagit_ok=False)


def test_an_extra_payload_file_with_resealed_manifests_is_still_not_evidence(bag: Path) -> None:
    (bag / "data" / "originals" / "KZCG-2020-0001-099V.mp4").write_bytes(b"planted")
    reseal(bag)
    check_both_forms(bag, {("data/originals/KZCG-2020-0001-099V.mp4", "not in case.json")}, bagit_ok=True)


def test_an_edited_manifest_line(bag: Path, pristine: Pristine) -> None:
    manifest = bag / "manifest-sha256.txt"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    target = original(pristine.built)
    lines = [("0" * 64 + "  " + target) if line.endswith(target) else line for line in lines]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    check_both_forms(
        bag, {(target, "sha256 mismatch"), ("manifest-sha256.txt", "sha256 mismatch")}, bagit_ok=False
    )


def test_an_edited_tag_manifest(bag: Path) -> None:
    tagmanifest = bag / "tagmanifest-sha256.txt"
    text = tagmanifest.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.endswith("bag-info.txt"))
    tagmanifest.write_text(text.replace(line, "f" * 64 + "  bag-info.txt"), encoding="utf-8")
    check_both_forms(bag, {("bag-info.txt", "sha256 mismatch")}, bagit_ok=False)


def test_an_edited_payload_oxum(bag: Path) -> None:
    info = bag / "bag-info.txt"
    lines = info.read_text(encoding="utf-8").splitlines()
    info.write_text(
        "".join(("Payload-Oxum: 1.1" if line.startswith("Payload-Oxum") else line) + "\n" for line in lines),
        encoding="utf-8",
    )
    reseal_tags_only(bag)
    found = problems(bag)
    assert [p for p in found if p[0] == "bag-info.txt"][0][1].startswith("Payload-Oxum 1.1, payload is ")
    assert not bagit_valid(bag)


def reseal_tags_only(bag: Path) -> None:
    tags = sorted(p.name for p in bag.iterdir() if p.is_file() and not p.name.startswith("tagmanifest-"))
    (bag / "tagmanifest-sha256.txt").write_text(
        "".join(f"{hashlib.sha256((bag / t).read_bytes()).hexdigest()}  {t}\n" for t in tags),
        encoding="utf-8",
    )


# --- evidence-level tampering, resealed: only verify_package sees it -----------------------------


def test_an_edited_custody_event(bag: Path) -> None:
    excerpt = excerpt_of(bag)
    event = next(e for e in excerpt["events"] if e["action"] == "ingested")
    event["actor"] = "station:ST09"
    write_excerpt(bag, excerpt)
    reseal(bag)
    check_both_forms(bag, {("data/custody/excerpt.json", f"event {event['seq']} altered")}, bagit_ok=True)


def test_a_forged_event_with_a_recomputed_hash_does_not_match_its_link(bag: Path) -> None:
    excerpt = excerpt_of(bag)
    event = next(e for e in excerpt["events"] if e["action"] == "linked")
    event["details"]["item_no"] = "KZCG-2020-0001-099V"
    event["hash"] = hashlib.sha256(
        canonical_bytes({k: v for k, v in event.items() if k != "hash"})
    ).hexdigest()
    write_excerpt(bag, excerpt)
    reseal(bag)
    found = problems(bag)
    assert ("data/custody/excerpt.json", f"event {event['seq']} differs from its link") in found
    assert ("data/custody/excerpt.json", f"event {event['seq']} altered") not in found
    assert bagit_valid(bag)


def test_a_removed_link(bag: Path) -> None:
    excerpt = excerpt_of(bag)
    recorded = {e["seq"] for e in excerpt["events"]}
    gap = next(link[0] for link in excerpt["links"][1:-1] if link[0] not in recorded)
    excerpt["links"] = [link for link in excerpt["links"] if link[0] != gap]
    write_excerpt(bag, excerpt)
    reseal(bag)
    check_both_forms(bag, {("data/custody/excerpt.json", f"chain broken at {gap}")}, bagit_ok=True)


def test_a_removed_event_record_leaves_the_link_and_breaks_nothing_else(bag: Path) -> None:
    # A record taken out is not detectable from links alone (they name no subjects): the
    # remaining records and the chain still check. This documents that limit.
    excerpt = excerpt_of(bag)
    kept = [e for e in excerpt["events"] if e["action"] != "ingested"]
    assert len(kept) < len(excerpt["events"])
    excerpt["events"] = kept
    write_excerpt(bag, excerpt)
    reseal(bag)
    assert verify_package(bag).ok


def test_an_event_the_checkpoint_does_not_cover(bag: Path) -> None:
    excerpt = excerpt_of(bag)
    last = excerpt["events"][-1]
    later = {k: v for k, v in last.items() if k != "hash"} | {
        "seq": last["seq"] + 1,
        "prev": last["hash"],
        "action": "released",
    }
    later["hash"] = hashlib.sha256(canonical_bytes(later)).hexdigest()
    excerpt["events"].append(later)
    write_excerpt(bag, excerpt)
    reseal(bag)
    check_both_forms(
        bag, {("data/custody/excerpt.json", f"checkpoint does not cover event {later['seq']}")}, bagit_ok=True
    )


def test_an_altered_checkpoint_signature(bag: Path) -> None:
    path = bag / "data" / "custody" / "checkpoint.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    signature = bytearray(base64.b64decode(record["signature"]))
    signature[0] ^= 0x01
    record["signature"] = base64.b64encode(bytes(signature)).decode()
    path.write_bytes(canonical_bytes(record))
    reseal(bag)
    check_both_forms(bag, {("data/custody/checkpoint.json", "checkpoint signature invalid")}, bagit_ok=True)


def test_a_checkpoint_moved_to_another_head(bag: Path) -> None:
    path = bag / "data" / "custody" / "checkpoint.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    record["head"] = "ab" * 32
    path.write_bytes(canonical_bytes(record))
    reseal(bag)
    found = problems(bag)
    assert ("data/custody/checkpoint.json", "checkpoint signature invalid") in found
    assert any(
        p == "data/custody/excerpt.json" and m.endswith("is not the checkpoint head") for p, m in found
    )


def test_a_public_key_replaced_by_another(bag: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    (bag / "data" / "custody" / "public-key.pem").write_bytes(
        other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    reseal(bag)
    check_both_forms(bag, {("data/custody/checkpoint.json", "checkpoint signature invalid")}, bagit_ok=True)


def test_an_edited_digest_in_case_json(bag: Path, pristine: Pristine) -> None:
    path = bag / "data" / "case.json"
    case = json.loads(path.read_text(encoding="utf-8"))
    item = next(i for i in case["items"] if i["kind"] == "document")
    item["sha256"] = "0" * 64
    path.write_text(json.dumps(case, ensure_ascii=False, indent=2), encoding="utf-8")
    reseal(bag)
    check_both_forms(bag, {("data/case.json", f"item {item['item_no']} digest mismatch")}, bagit_ok=True)


def test_an_unreadable_excerpt(bag: Path) -> None:
    (bag / "data" / "custody" / "excerpt.json").write_text('{"v":1,"events":[{"seq":', encoding="utf-8")
    reseal(bag)
    check_both_forms(bag, {("data/custody/excerpt.json", "not valid JSON")}, bagit_ok=True)


def test_a_damaged_zip_member_is_named(bag: Path, pristine: Pristine) -> None:
    archive = zipped(bag)
    data = bytearray(archive.read_bytes())
    needle = pristine.built.plain[pristine.built.protected_item][1000:1032]
    at = bytes(data).find(needle)
    assert at > 0  # stored, not deflated, in this test zip
    data[at] ^= 0x01
    archive.write_bytes(bytes(data))
    found = problems(archive)
    assert any(
        p == original(pristine.built, "protected") and m.startswith(("unreadable", "sha256 mismatch"))
        for p, m in found
    ), found


# --- layout and size ----------------------------------------------------------------------


def test_any_json_layout_of_the_excerpt_is_read(bag: Path) -> None:
    excerpt = excerpt_of(bag)
    reordered = {
        "links": excerpt["links"],
        "events": excerpt["events"],
        "checkpoint": excerpt["checkpoint"],
        "subjects": excerpt["subjects"],
        "v": 1,
    }  # links before the records they check
    (bag / "data" / "custody" / "excerpt.json").write_text(json.dumps(reordered, indent=3), encoding="utf-8")
    reseal(bag)
    assert verify_package(bag).ok


def test_a_long_chain_of_links_is_checked_in_small_memory(bag: Path, pristine: Pristine) -> None:
    """300,000 links (a busy archive between a case's first event and the export) stream past."""
    excerpt = excerpt_of(bag)
    checkpoint = json.loads((bag / "data" / "custody" / "checkpoint.json").read_text(encoding="utf-8"))
    last_seq, last_hash = excerpt["links"][-1][0], excerpt["links"][-1][2]
    count = 300_000
    path = bag / "data" / "custody" / "excerpt.json"
    text = path.read_text(encoding="utf-8")
    with open(path, "w", encoding="utf-8") as out:
        out.write(text[: text.rindex("\n]}")])
        prev = last_hash
        for seq in range(last_seq + 1, last_seq + count + 1):
            digest = hashlib.sha256(str(seq).encode()).hexdigest()
            out.write(f',\n[{seq},"{prev}","{digest}"]')
            prev = digest
        out.write("\n]}\n")
    # Signed again over the new head with the custody key, as a later checkpoint would be.
    moved = sign_checkpoint(
        pristine.built.key,
        n=checkpoint["n"],
        seq=last_seq + count,
        head=prev,
        time=parse_instant(checkpoint["time"]),
    )
    (bag / "data" / "custody" / "checkpoint.json").write_bytes(canonical_bytes(moved.to_record()))
    reseal(bag)
    assert path.stat().st_size > 40 << 20
    tracemalloc.start()
    try:
        report = verify_package(bag)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.ok, report.problems[:5]
    assert peak < 8 << 20, f"peak {peak / (1 << 20):.1f} MiB"
