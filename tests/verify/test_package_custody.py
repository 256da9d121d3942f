"""A package of a case from before custody v2: v1 events, the upgrade's ``attested`` events, and
a re-computation of every v2 event by an independent JavaScript implementation.

The catalog is built as an installation of before the upgrade wrote it (v1 events and a v1
checkpoint, through the v1 sealing code), then upgraded the way ``evidence init`` does it
(``attest_pre_v2``), then used and exported with v2.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from catalog import custody
from catalog.actions import Action
from catalog.attestation import attest_pre_v2
from catalog.canonical import canonical_bytes
from catalog.chain import seal
from catalog.checkpoint import sign_checkpoint
from catalog.models import CheckpointRow, CustodyEventRow
from tests.conftest import Env
from tests.verify.test_export import Built, build_case, export, trust
from tests.verify.test_package import original, problems, reseal, substitute
from verify.package import verify_package

HELPER = Path(__file__).with_name("custody_recompute.mjs")
AWKWARD = {
    "名称": "现场视频 第一段",  # CJK keys and values
    "empty": {},
    "empty_list": [],
    "nested": [[1, [2, [3, []]]], {"a": [{}]}],
    "big": str(2**64),  # beyond ±(2**53 − 1): a decimal string
    "edge": -(2**53 - 1),
    "escapes": 'quote " backslash \\ tab \t bell \x07 line\u2028sep',
    "emoji": "😀 \U0001f4f9",
    "zero": 0,
}


def v1_append(session, *, actor, action, subject, details=None, now=None):
    """custody.append as it was before v2: a v1 event, no body."""
    action = Action(action)
    head = custody.lock_head(session)
    event = seal(
        head.seq + 1, now or datetime.now(UTC), actor, action.value, subject, details or {}, head.hash
    )
    session.add(
        CustodyEventRow(
            seq=event.seq,
            time=event.time,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=canonical_bytes(event.details).decode(),
            prev_hash=event.prev_hash,
            hash=event.hash,
            v=1,
        )
    )
    head.seq, head.hash = event.seq, event.hash
    session.flush()
    return event


@dataclass
class Upgraded:
    bag: Path
    built: Built
    attested: int


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Upgraded:
    tmp = tmp_path_factory.mktemp("upgraded")
    env = Env.embedded(tmp)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(custody, "append", v1_append)
        built = build_case(env)
        with env.sessions.begin() as s:  # the old timer's v1 checkpoint
            seq, head = custody.head(s)
            cp = sign_checkpoint(built.key, n=1, seq=seq, head=head, time=datetime.now(UTC))
            s.add(
                CheckpointRow(
                    n=1,
                    seq=cp.seq,
                    head=cp.head,
                    time=cp.time,
                    key_id=cp.key_id,
                    public_key=cp.public_key,
                    signature=cp.signature,
                    v=1,
                )
            )
    with env.sessions.begin() as s:
        assert {e.v for e in custody.events(s)} == {1}
        attested = attest_pre_v2(s, actor="init", now=datetime.now(UTC))
        assert attest_pre_v2(s, actor="init", now=datetime.now(UTC)) == 0  # once only
        custody.append(s, actor="web:zhang", action=Action.VIEWED, subject=built.case_key, details=AWKWARD)
        custody.append(
            s,
            actor="web:zhang",
            action=Action.VIEWED,
            subject=built.items["询问笔录"],
            details={"列表": [["深", ["层"]], {}], "n": str(-(2**70))},
        )
    result = export(env, built, tmp / "out")
    with env.sessions() as s:
        assert custody.verify(s, trust(built)).ok
    env.engine.dispose()
    return Upgraded(result.path, built, attested)


@pytest.fixture
def bag(upgraded: Upgraded, tmp_path: Path) -> Path:
    copy = tmp_path / upgraded.bag.name
    shutil.copytree(upgraded.bag, copy)
    return copy


def test_the_upgrade_attests_every_recording_and_document_once(upgraded: Upgraded) -> None:
    assert upgraded.attested == 5  # three recordings, two documents
    lines = [json.loads(x) for x in (upgraded.bag / "data/custody/events.jsonl").read_bytes().splitlines()]
    attested = [e for e in lines if e.get("action") == "attested"]
    assert {e["subject"] for e in attested} == set(upgraded.built.items) - {"立案审批表", "询问笔录"} | {
        upgraded.built.items["立案审批表"],
        upgraded.built.items["询问笔录"],
    }
    for event in attested:
        assert event["v"] == 2 and len(event["details"]["sha256"]) == 64 and event["details"]["size"] > 0
        assert event["subject_prev"] is not None  # it follows the item's v1 history


def test_a_package_of_a_case_from_before_the_upgrade_verifies(upgraded: Upgraded) -> None:
    report = verify_package(upgraded.bag, anchors=trust(upgraded.built))
    assert report.ok, report.problems
    assert {
        json.loads(x)["v"] for x in (upgraded.bag / "data/custody/events.jsonl").read_bytes().splitlines()
    } == {1, 2}
    assert any("are v1; their completeness is not proven" in note for note in report.notes)
    links = (upgraded.bag / "data/custody/links.tsv").read_text().splitlines()
    assert any(line.split("\t")[2] == "-" for line in links)  # v1 links carry no body hash


def test_a_consistent_substitution_in_an_old_case_is_caught_through_attested(
    bag: Path, upgraded: Upgraded
) -> None:
    item_no = substitute(bag, upgraded.built)
    archive_no = next(a for a, i in upgraded.built.items.items() if i == item_no)
    found = problems(bag, trust(upgraded.built))
    assert (
        "data/case.json",
        f"item {item_no}: its digest is not the one a v2 ingested, document_added or attested "
        f"event of {archive_no} records",
    ) in found
    assert any(p == original(upgraded.built) and "commits to" in m for p, m in found)


def test_javascript_recomputes_every_v2_event_byte_for_byte(upgraded: Upgraded) -> None:
    node = shutil.which("node")
    assert node, "Node.js is part of the test environment (the package must be checkable without Python)"
    run = subprocess.run([node, str(HELPER), str(upgraded.bag)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    lines = (upgraded.bag / "data/custody/events.jsonl").read_bytes().splitlines()
    v2 = [x for x in lines if json.loads(x)["v"] == 2]
    assert result["mismatches"] == [] and result["matched"] == result["v2"] == len(v2)
    assert result["v1"] == len(lines) - len(v2) > 0
    awkward = next(x for x in v2 if b'"emoji"' in x)
    assert json.loads(awkward)["details"] == AWKWARD
    assert "现场视频".encode() in awkward and b"\\u" + b"73b0" not in awkward  # CJK as itself


def test_javascript_sees_an_edited_event(bag: Path) -> None:
    path = bag / "data/custody/events.jsonl"
    lines = path.read_bytes().splitlines()
    index = next(i for i, x in enumerate(lines) if b'"emoji"' in x)
    lines[index] = lines[index].replace("第一段".encode(), "第二段".encode())
    path.write_bytes(b"".join(x + b"\n" for x in lines))
    run = subprocess.run(["node", str(HELPER), str(bag)], capture_output=True, text=True, timeout=60)
    (mismatch,) = json.loads(run.stdout)["mismatches"]
    assert mismatch["problems"] == ["body_hash differs", "hash differs"]
    assert hashlib.sha256(lines[index]).hexdigest() not in (bag / "data/custody/links.tsv").read_text()
    reseal(bag)
