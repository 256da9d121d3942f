"""Offline package verification: every kind of tampering is caught and named, folder or zip.

One package is exported once (SQLite catalog, local store; the export itself is tested on
every catalog and store in test_export.py); each test tampers with a copy. A "resealed"
tampering also rewrites the manifests and the tag manifest, as a forger who knows BagIt would:
bagit then finds nothing, and only the evidence-level checks (digests in case.json, the custody
excerpt, the checkpoint signature) stand between the forgery and the court.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from dataclasses import dataclass
from pathlib import Path

import bagit
import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.checkpoint import Anchors, fingerprint
from catalog.errors import NotFound
from tests.conftest import Env, run_evidence
from tests.verify.test_export import T0, Built, build_case, export, store_recording, trust
from verify.package import MAX_MEMBERS, NotAPackage, ZipRefused, verify_package

BAGIT_CLI = Path(sys.executable).parent / "bagit.py"


@dataclass
class Pristine:
    bag: Path
    built: Built
    trust: Anchors  # the bureau's fingerprint, as a court receives it apart from the package


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    tmp = tmp_path_factory.mktemp("package")
    env = Env.embedded(tmp)
    built = build_case(env, proxies=True)
    store_recording(env, 7, start=T0, kek=built.kek)  # another case's events fall in between
    result = export(env, built, tmp / "out", with_proxies=True)
    env.engine.dispose()
    return Pristine(result.path, built, trust(built))


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


EVENTS, LINKS = "data/custody/events.jsonl", "data/custody/links.tsv"


def events_of(bag: Path) -> list[bytes]:
    return (bag / EVENTS).read_bytes().splitlines()


def write_events(bag: Path, lines: list[bytes]) -> None:
    (bag / EVENTS).write_bytes(b"".join(line + b"\n" for line in lines))


def links_of(bag: Path) -> list[list[str]]:
    return [line.split("\t") for line in (bag / LINKS).read_text().splitlines()]


def write_links(bag: Path, links: list[list[str]]) -> None:
    (bag / LINKS).write_text("".join("\t".join(link) + "\n" for link in links))


def problems(path: Path, anchors: Anchors) -> list[tuple[str, str]]:
    report = verify_package(path, anchors=anchors)
    assert report.ok == (not report.problems)
    return [(p["path"], p["problem"]) for p in report.problems]


def bagit_valid(bag: Path) -> bool:
    return bagit.Bag(str(bag)).is_valid()


def check_both_forms(
    bag: Path, expected: set[tuple[str, str]], *, bagit_ok: bool, anchors: Anchors
) -> list[tuple[str, str]]:
    """The folder and its zip give the same named problems; bagit agrees where it can see."""
    found = problems(bag, anchors)
    assert expected <= set(found), found
    assert set(problems(zipped(bag), anchors)) == set(found)
    assert bagit_valid(bag) == bagit_ok
    cli = subprocess.run(
        [sys.executable, str(BAGIT_CLI), "--validate", str(bag)], capture_output=True, text=True, timeout=120
    )
    assert (cli.returncode == 0) == bagit_ok, cli.stderr
    return found


def original(built: Built, which: str = "plain") -> str:
    item = (
        built.protected_item
        if which == "protected"
        else next(i for i in built.plain if i != built.protected_item)
    )
    return f"data/originals/{item}.mp4"


# --- the untouched package --------------------------------------------------------------------


def test_the_untouched_package_verifies_as_a_folder_and_as_a_zip(bag: Path, pristine: Pristine) -> None:
    report = verify_package(bag, anchors=pristine.trust)
    assert report.ok and report.problems == []
    assert report.case_key == pristine.built.case_key and report.checkpoint == 1
    assert report.to_json()["ok"] is True
    assert report.signers == [fingerprint(pristine.built.key.public_key())]  # the full fingerprint
    assert verify_package(zipped(bag), anchors=pristine.trust).ok
    assert bagit_valid(bag)


def test_a_genuine_package_checked_without_a_pinned_key_is_not_trusted(bag: Path, pristine: Pristine) -> None:
    signer = fingerprint(pristine.built.key.public_key())
    found = problems(bag, Anchors())
    assert found == [
        (
            "data/custody/checkpoint.json",
            f"checkpoint 1: signature valid, signer not trusted: fingerprint {signer}",
        )
    ]


def pristine_free_anchors() -> Anchors:
    return Anchors()


def test_a_missing_path_is_an_error_and_a_damaged_zip_a_problem(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        verify_package(tmp_path / "nothing.zip")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK not really a zip")
    report = verify_package(junk, anchors=pristine_free_anchors())
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
        anchors=pristine.trust,
    )


def test_a_deleted_payload_file(bag: Path, pristine: Pristine) -> None:
    (bag / original(pristine.built)).unlink()
    item = Path(original(pristine.built)).stem
    check_both_forms(
        bag,
        {(original(pristine.built), "missing"), ("data/case.json", f"item {item} file missing")},
        bagit_ok=False,
        anchors=pristine.trust,
    )
    assert any(p == "bag-info.txt" and m.startswith("Payload-Oxum") for p, m in problems(bag, pristine.trust))


def test_an_extra_payload_file(bag: Path, pristine: Pristine) -> None:
    (bag / "data" / "originals" / "KZCG-2020-0001-099V.mp4").write_bytes(b"planted")
    rel = "data/originals/KZCG-2020-0001-099V.mp4"
    check_both_forms(
        bag, {(rel, "not in manifest"), (rel, "not in case.json")}, bagit_ok=False, anchors=pristine.trust
    )


def test_an_extra_payload_file_with_resealed_manifests_is_still_not_evidence(
    bag: Path, pristine: Pristine
) -> None:
    rel = "data/originals/KZCG-2020-0001-099V.mp4"
    (bag / rel).write_bytes(b"planted")
    reseal(bag)
    check_both_forms(
        bag,
        {(rel, "not in case.json"), (rel, f"not in the files exported event {exported_seq(bag)} commits to")},
        bagit_ok=True,
        anchors=pristine.trust,
    )


def test_an_edited_manifest_line(bag: Path, pristine: Pristine) -> None:
    manifest = bag / "manifest-sha256.txt"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    target = original(pristine.built)
    lines = [("0" * 64 + "  " + target) if line.endswith(target) else line for line in lines]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    check_both_forms(
        bag,
        {(target, "sha256 mismatch"), ("manifest-sha256.txt", "sha256 mismatch")},
        bagit_ok=False,
        anchors=pristine.trust,
    )


def test_an_edited_tag_manifest(bag: Path, pristine: Pristine) -> None:
    tagmanifest = bag / "tagmanifest-sha256.txt"
    text = tagmanifest.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.endswith("bag-info.txt"))
    tagmanifest.write_text(text.replace(line, "f" * 64 + "  bag-info.txt"), encoding="utf-8")
    check_both_forms(bag, {("bag-info.txt", "sha256 mismatch")}, bagit_ok=False, anchors=pristine.trust)


def test_an_edited_payload_oxum(bag: Path, pristine: Pristine) -> None:
    info = bag / "bag-info.txt"
    lines = info.read_text(encoding="utf-8").splitlines()
    info.write_text(
        "".join(("Payload-Oxum: 1.1" if line.startswith("Payload-Oxum") else line) + "\n" for line in lines),
        encoding="utf-8",
    )
    reseal_tags_only(bag)
    found = problems(bag, pristine.trust)
    assert [p for p in found if p[0] == "bag-info.txt"][0][1].startswith("Payload-Oxum 1.1, payload is ")
    assert not bagit_valid(bag)


def reseal_tags_only(bag: Path) -> None:
    tags = sorted(p.name for p in bag.iterdir() if p.is_file() and not p.name.startswith("tagmanifest-"))
    (bag / "tagmanifest-sha256.txt").write_text(
        "".join(f"{hashlib.sha256((bag / t).read_bytes()).hexdigest()}  {t}\n" for t in tags),
        encoding="utf-8",
    )


# --- custody tampering, resealed: only verify_package sees it -----------------------------------


def exported_seq(bag: Path) -> str:
    return str(json.loads(events_of(bag)[-1])["seq"])


def body_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def link_hash(prev: str, digest: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev) + bytes.fromhex(digest)).hexdigest()


def substitute(bag: Path, built: Built) -> str:
    """The issue's forgery: other bytes for a recording, case.json, manifests and Payload-Oxum
    rewritten to match, the signed parts left alone. Returns the item number."""
    rel = original(built)
    forged = b"\x00\x00\x00\x18ftypmp42 a different recording " * 5000
    (bag / rel).write_bytes(forged)
    case = json.loads((bag / "data" / "case.json").read_text(encoding="utf-8"))
    item = next(i for i in case["items"] if i.get("file") == rel.removeprefix("data/"))
    item["sha256"], item["size"], item["sm3"] = hashlib.sha256(forged).hexdigest(), len(forged), None
    (bag / "data" / "case.json").write_text(json.dumps(case, ensure_ascii=False, indent=2), encoding="utf-8")
    reseal(bag)
    return item["item_no"]


def test_a_consistent_substitution_is_caught(bag: Path, pristine: Pristine) -> None:
    item_no = substitute(bag, pristine.built)
    assert bagit_valid(bag)  # BagIt alone is satisfied
    seq = exported_seq(bag)
    check_both_forms(
        bag,
        {
            (original(pristine.built), f"sha256 differs from the one exported event {seq} commits to"),
            ("data/case.json", f"sha256 differs from the one exported event {seq} commits to"),
            (
                "data/case.json",
                f"item {item_no}: its digest is not the one a v2 ingested, document_added or attested "
                f"event of {next(a for a, i in pristine.built.items.items() if i == item_no)} records",
            ),
        },
        bagit_ok=True,
        anchors=pristine.trust,
    )


def forge_commitment(bag: Path, built: Built) -> tuple[str, list[list[str]], bytes]:
    """The substitution carried into the custody files: the exported event's commitment
    rewritten to the forged digests, its link patched to match. Returns the new head."""
    substitute(bag, built)
    lines = events_of(bag)
    exported = json.loads(lines[-1])
    for rel in exported["details"]["files"]:
        exported["details"]["files"][rel] = hashlib.sha256((bag / rel).read_bytes()).hexdigest()
    lines[-1] = rfc8785.dumps(exported)
    write_events(bag, lines)
    links = links_of(bag)
    links[-1][2] = body_hash(lines[-1])
    links[-1][3] = link_hash(links[-1][1], links[-1][2])
    write_links(bag, links)
    reseal(bag)
    return links[-1][3], links, lines[-1]


def test_a_forged_commitment_with_patched_links_fails_at_the_signed_head(
    bag: Path, pristine: Pristine
) -> None:
    head, links, _ = forge_commitment(bag, pristine.built)
    found = check_both_forms(
        bag,
        {(LINKS, f"link {links[-1][0]} is not the head that checkpoint signs")},
        bagit_ok=True,
        anchors=pristine.trust,
    )
    assert not any("commits to" in problem for _path, problem in found)  # the commitment itself agrees


def resign(bag: Path, key: Ed25519PrivateKey, head: str) -> str:
    """A forger's checkpoint over the forged head, signed by ``key``, with that key shipped."""
    folder = bag / "data" / "custody"
    statement = json.loads((folder / "checkpoint.json").read_bytes())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    statement["head"], statement["key"] = head, hashlib.sha256(raw).hexdigest()
    data = rfc8785.dumps(statement)
    (folder / "checkpoint.json").write_bytes(data)
    (folder / "checkpoint.sig").write_bytes(key.sign(data))
    for old in (folder / "keys").iterdir():
        old.unlink()
    (folder / "keys" / f"{statement['key']}.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    reseal(bag)
    return statement["key"]


def forge_everything(bag: Path, built: Built) -> str:
    """The substitution carried through every custody file a forger can rewrite: the item's
    ingested event, the exported event's commitment, every later subject_prev and head, every
    link recomputed. Only the signature over the new head is left. Returns that head."""
    item_no = substitute(bag, built)
    archive_no = next(a for a, i in built.items.items() if i == item_no)
    forged_digest = hashlib.sha256((bag / original(built)).read_bytes()).hexdigest()
    events = {json.loads(x)["seq"]: json.loads(x) for x in events_of(bag)}
    for event in events.values():
        if event["subject"] == archive_no and event["action"] == "ingested":
            event["details"]["sha256"] = forged_digest
    exported = events[max(events)]
    for rel in exported["details"]["files"]:
        exported["details"]["files"][rel] = hashlib.sha256((bag / rel).read_bytes()).hexdigest()
    renamed: dict[str, str] = {}
    links, lines = links_of(bag), {}
    previous: tuple[int, str] | None = None
    for link in links:
        seq = int(link[0])
        if previous is not None and seq == previous[0] + 1:
            link[1] = previous[1]
        if seq in events:
            body = events[seq]
            if body["subject_prev"] in renamed:
                body["subject_prev"] = renamed[body["subject_prev"]]
            if seq == max(events):
                body["details"]["heads"] = {k: renamed.get(v, v) for k, v in body["details"]["heads"].items()}
            lines[seq] = rfc8785.dumps(body)
            link[2] = body_hash(lines[seq])
        new = link_hash(link[1], link[2])
        renamed[link[3]] = new
        link[3] = new
        previous = (seq, new)
    write_links(bag, links)
    write_events(bag, [lines[seq] for seq in sorted(lines)])
    reseal(bag)
    return links[-1][3]


def test_a_package_re_signed_with_a_foreign_key_is_refused(bag: Path, pristine: Pristine) -> None:
    head = forge_everything(bag, pristine.built)
    foreign = resign(bag, Ed25519PrivateKey.generate(), head)
    untrusted = (
        "data/custody/checkpoint.json",
        f"checkpoint 1: signature valid, signer not trusted: fingerprint {foreign}",
    )
    # Everything else is consistent: the signer is all that is left to catch it by...
    assert problems(bag, pristine.trust) == [untrusted]
    # ...with the bureau's real fingerprint, and without any (the carried key is never trusted).
    assert problems(bag, Anchors()) == [untrusted]
    report = verify_package(bag, anchors=pristine.trust)
    assert report.signers == [foreign] and report.trusted == [fingerprint(pristine.built.key.public_key())]
    # Signed again with the real key, the same forgery would pass: the key is the root of trust.
    resign(bag, pristine.built.key, head)
    assert problems(bag, pristine.trust) == []


def test_an_omitted_event_is_caught(bag: Path, pristine: Pristine) -> None:
    lines = events_of(bag)
    index, dropped = next(
        (i, json.loads(x)) for i, x in enumerate(lines) if json.loads(x)["action"] == "stored"
    )
    write_events(bag, lines[:index] + lines[index + 1 :])
    reseal(bag)
    found = check_both_forms(
        bag,
        {(EVENTS, f"event {dropped['seq']} is committed by the exported event but missing (left out)")},
        bagit_ok=True,
        anchors=pristine.trust,
    )
    assert any(p == EVENTS and m.endswith("is not in the package: left out") for p, m in found), found


def test_an_edited_event_fails_its_link(bag: Path, pristine: Pristine) -> None:
    lines = events_of(bag)
    index = next(i for i, x in enumerate(lines) if json.loads(x)["action"] == "ingested")
    event = json.loads(lines[index])
    event["actor"] = "station:ST09"
    lines[index] = rfc8785.dumps(event)
    write_events(bag, lines)
    reseal(bag)
    check_both_forms(
        bag,
        {(EVENTS, f"event {event['seq']} altered: its bytes do not give its link's body_hash")},
        bagit_ok=True,
        anchors=pristine.trust,
    )


def hash_only_link(bag: Path) -> int:
    disclosed = {json.loads(x)["seq"] for x in events_of(bag)}
    links = links_of(bag)
    return next(i for i, link in enumerate(links[:-1]) if int(link[0]) not in disclosed and i > 0)


def test_an_edited_hash_only_link_is_caught(bag: Path, pristine: Pristine) -> None:
    links = links_of(bag)
    at = hash_only_link(bag)
    seq = links[at][0]
    links[at][2] = "ab" * 32  # a body hash changed: its hash no longer follows
    write_links(bag, links)
    reseal(bag)
    check_both_forms(
        bag,
        {(LINKS, f"link {seq}: hash is not SHA-256(prev ‖ body_hash)")},
        bagit_ok=True,
        anchors=pristine.trust,
    )


def test_a_recomputed_hash_only_link_breaks_the_next_one(bag: Path, pristine: Pristine) -> None:
    links = links_of(bag)
    at = hash_only_link(bag)
    links[at][2] = "ab" * 32
    links[at][3] = link_hash(links[at][1], links[at][2])  # consistent with itself...
    write_links(bag, links)
    reseal(bag)
    # ...but not with the link after it, whose prev is the genuine hash.
    check_both_forms(
        bag, {(LINKS, f"chain broken at {links[at + 1][0]}")}, bagit_ok=True, anchors=pristine.trust
    )


@pytest.mark.parametrize(
    "respell",
    [
        pytest.param(lambda t: t.replace(b'"v":2}', b'"v":2,"x":1}'), id="extra key"),
        pytest.param(lambda t: t.replace(b'{"action"', b'{"actor":"forger","action"'), id="duplicate key"),
        pytest.param(lambda t: t.replace(b'"v":2}', b'"v":2.0}'), id="non-canonical number"),
        pytest.param(lambda t: t.replace(b'"v":2}', b'"v": 2}'), id="whitespace"),
        pytest.param(lambda t: t.replace(b'Z","v"', b'+00:00","v"'), id="other time spelling"),
    ],
)
def test_an_event_spelled_otherwise_is_a_mismatch(bag: Path, pristine: Pristine, respell) -> None:
    lines = events_of(bag)
    index = next(i for i, x in enumerate(lines) if json.loads(x)["action"] == "linked")
    changed = respell(lines[index])
    assert changed != lines[index]
    lines[index] = changed
    write_events(bag, lines)
    reseal(bag)
    found = problems(bag, pristine.trust)
    assert any(
        p == EVENTS and m.startswith(f"line {index + 1}: not an exact v2 event body") for p, m in found
    ), found


def test_an_edited_checkpoint_statement_fails_its_signature(bag: Path, pristine: Pristine) -> None:
    path = bag / "data" / "custody" / "checkpoint.json"
    statement = json.loads(path.read_bytes())
    statement["head"] = "ab" * 32
    path.write_bytes(rfc8785.dumps(statement))
    reseal(bag)
    signer = fingerprint(pristine.built.key.public_key())
    found = problems(bag, pristine.trust)
    assert ("data/custody/checkpoint.json", f"checkpoint 1: signature invalid: fingerprint {signer}") in found


def test_a_shipped_key_replaced_by_another_changes_nothing(bag: Path, pristine: Pristine) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    keys = bag / "data" / "custody" / "keys"
    (name,) = [p.name for p in keys.iterdir()]
    (keys / name).write_bytes(
        other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    reseal(bag)
    found = problems(bag, Anchors())
    assert any(m.startswith("holds the key with fingerprint") for _p, m in found)
    assert any("signer's public key not available" in m for _p, m in found)


# --- hostile paths and zips ----------------------------------------------------------------


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, pristine: Pristine) -> None:
    fifo = tmp_path / "package.zip"
    os.mkfifo(fifo)
    with pytest.raises(NotAPackage):
        verify_package(fifo, anchors=pristine.trust)
    run = run_evidence("verify-package", str(fifo), env={"EVIDENCE_DATA_DIR": str(tmp_path / "data")})
    assert run.returncode == 2 and "neither a folder nor a regular file" in run.stderr


def test_a_fifo_inside_a_package_folder_is_named_not_opened(bag: Path, pristine: Pristine) -> None:
    os.mkfifo(bag / "data" / "originals" / "pipe.mp4")
    found = problems(bag, pristine.trust)
    assert ("data/originals/pipe.mp4", "not a regular file (never opened)") in found


def empty_members_zip(count: int) -> bytes:
    """A ZIP64 archive of ``count`` empty members, written directly (zipfile takes far longer)."""
    local, central = bytearray(), bytearray()
    for n in range(count):
        name = b"m/%d" % n
        offset = len(local)
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
        central += (
            struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset
            )
            + name
        )
    start = len(local)
    end64 = start + len(central)
    tail = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), start)
    tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, end64, 1)
    tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(local + central + tail)


def test_a_zip_declaring_too_many_members_is_refused_before_reading(
    tmp_path: Path, pristine: Pristine
) -> None:
    many = tmp_path / "many.zip"
    many.write_bytes(empty_members_zip(MAX_MEMBERS + 1))
    with zipfile.ZipFile(many) as zf:  # a well-formed ZIP64 archive, as a forger would make
        assert len(zf.infolist()) == MAX_MEMBERS + 1
    tracemalloc.start()
    try:
        with pytest.raises(ZipRefused, match=f"declares {MAX_MEMBERS + 1} members"):
            verify_package(many, anchors=pristine.trust)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak / (1 << 20):.1f} MiB"


def test_a_deflate_bomb_member_is_named_and_never_inflated(bag: Path, pristine: Pristine) -> None:
    archive = zipped(bag)
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(f"{bag.name}/data/originals/bomb.mp4", "w", force_zip64=True) as member:
            zero = bytes(1 << 20)
            for _ in range(64):
                member.write(zero)
    tracemalloc.start()
    try:
        found = problems(archive, pristine.trust)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any(p.endswith("bomb.mp4") and m.endswith("(zip bomb)") for p, m in found), found
    assert peak < 16 << 20, f"peak {peak / (1 << 20):.1f} MiB"


def test_zip_slip_and_absolute_names_are_reported_as_such(bag: Path, pristine: Pristine) -> None:
    archive = zipped(bag)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(f"{bag.name}/../../evil.sh", b"#!/bin/sh\n")
        zf.writestr("/etc/cron.d/evil", b"* * * * * root true\n")
    found = problems(archive, pristine.trust)
    assert (f"{bag.name}/../../evil.sh", "name escapes the package folder (zip-slip)") in found
    assert ("/etc/cron.d/evil", "absolute name in the zip (zip-slip)") in found
    assert not (archive.parent / "evil.sh").exists() and not any("bagit.txt" in p for p, _m in found)


def test_an_edited_digest_in_case_json(bag: Path, pristine: Pristine) -> None:
    path = bag / "data" / "case.json"
    case = json.loads(path.read_text(encoding="utf-8"))
    item = next(i for i in case["items"] if i["kind"] == "document")
    item["sha256"] = "0" * 64
    path.write_text(json.dumps(case, ensure_ascii=False, indent=2), encoding="utf-8")
    reseal(bag)
    check_both_forms(
        bag,
        {
            ("data/case.json", f"item {item['item_no']} digest mismatch"),
            ("data/case.json", f"sha256 differs from the one exported event {exported_seq(bag)} commits to"),
        },
        bagit_ok=True,
        anchors=pristine.trust,
    )


def test_a_damaged_zip_member_is_named(bag: Path, pristine: Pristine) -> None:
    archive = zipped(bag)
    data = bytearray(archive.read_bytes())
    needle = pristine.built.plain[pristine.built.protected_item][1000:1032]
    at = bytes(data).find(needle)
    assert at > 0  # stored, not deflated, in this test zip
    data[at] ^= 0x01
    archive.write_bytes(bytes(data))
    found = problems(archive, pristine.trust)
    assert any(
        p == original(pristine.built, "protected") and m.startswith(("unreadable", "sha256 mismatch"))
        for p, m in found
    ), found


def test_junk_in_the_key_history_and_beside_a_checkpoint_is_refused(bag: Path, pristine: Pristine) -> None:
    """The key history (keys/changes/) holds key-change and retirement statements only, and
    a time-stamp token is checked, not just carried: junk in either place is a problem."""
    (bag / "data" / "custody" / "keys" / "changes").mkdir()
    (bag / "data" / "custody" / "keys" / "changes" / "00000001.json").write_bytes(b"{}")
    reseal(bag)
    assert problems(bag, pristine.trust) == [
        ("data/custody/keys/changes/00000001.json", "not a key-change or retirement file name")
    ]
    shutil.rmtree(bag / "data" / "custody" / "keys" / "changes")
    reseal(bag)
    (bag / "data" / "custody" / "checkpoint.tsr").write_bytes(b"0\x82 token")
    reseal(bag)
    assert problems(bag, pristine.trust) == [
        (
            "data/custody/checkpoint.tsr",
            "time-stamp token: the token is for other bytes than the checkpoint statement",
        )
    ]
