"""Evidence package export: a valid BagIt bag of decrypted evidence, on both stores and catalogs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import tracemalloc
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bagit
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from archive.derivatives import store_derivative
from archive.digest import hash_file
from archive.documents import NewDocument, store_document
from archive.encryption import generate_kek
from archive.links import link_recordings
from archive.originals import OriginalFacts, store_original
from catalog import custody
from catalog.checkpoint import Anchors, fingerprint
from catalog.errors import CheckFailed, InvalidInput
from catalog.models import CustodyEventRow, Recording
from catalog.recordings import reserve_archive_number
from tests.conftest import FORMATS, ZONE
from tests.verify.test_replay import _flip_a_byte
from verify.export import ExportResult, _Disclosure, export_case
from verify.package import verify_package

TYPES = ["立案审批表", "询问笔录", "现场检查（勘验）笔录"]
T0 = datetime(2020, 11, 5, 0, 50, 56, tzinfo=UTC)
BAGIT_CLI = Path(sys.executable).parent / "bagit.py"


@dataclass
class Built:
    """A case ready to export: what went in, to compare with what comes out."""

    case_key: str
    number: str
    kek: bytes
    key: Ed25519PrivateKey
    plain: dict[str, bytes]  # item number -> the original plaintext
    items: dict[str, str]  # archive number or document type -> item number
    protected_item: str


def store_recording(
    env, n: int, *, protected: bool = False, start: datetime, kek: bytes, size: int | None = None, policy=None
) -> tuple[Recording, Path]:
    """A synthetic original stored like the ingest pipeline does (encrypted when protected)."""
    path = env.tmp / f"A123456@{start:%Y%m%d%H%M%S}{n:04d}.mp4"
    with open(path, "wb") as f:
        f.write(b"\x00\x00\x00\x18ftypmp42")
        block = hashlib.sha256(f"recording {n}".encode()).digest() * 32768  # 1 MiB
        left = size if size is not None else 150_000 + n
        while left > 0:
            f.write(block[:left])
            left -= len(block)
    policy = policy or env.policy
    number = reserve_archive_number(env.engine, FORMATS, ZONE, unit="KZCG", station="ST01", now=env.now())
    facts = OriginalFacts(
        station="ST01",
        unit="KZCG",
        kind="video",
        original_name=f"现场视频{n}.MP4",
        content_type="video/mp4",
        start_time=start,
        device="A123456",
        officer="JX0227",
        protected=protected,
        duration_s=12.5,
    )
    rec = store_original(
        env.as_("station:ST01", kek=kek, policy=policy),
        path,
        hash_file(path, sm3=policy.sm3),
        facts,
        archive_no=number,
    )
    return rec, path


def store_doc(env, case_number: str, name: str, doc_type: str, when: datetime, *, policy=None):
    path = env.tmp / name
    path.write_bytes(f"%PDF-1.4 {name} ".encode() * 50)
    return store_document(
        env.as_("clerk", policy=policy),
        NewDocument(
            case_number, path, doc_type, doc_date=when, officer="JX0227", doc_number="开城管检〔2020〕7号"
        ),
        doc_types=TYPES,
    )


def build_case(env, *, proxies: bool = False, policy=None) -> Built:
    """Two recordings, one protected (stored encrypted) recording and two documents."""
    kek = generate_kek()
    case = env.case()
    stored = [
        store_recording(env, 1, start=T0 + timedelta(minutes=10), kek=kek, policy=policy),
        store_recording(env, 2, start=T0 + timedelta(minutes=30), kek=kek, policy=policy),
        store_recording(env, 3, protected=True, start=T0 + timedelta(minutes=20), kek=kek, policy=policy),
    ]
    recs = [rec for rec, _ in stored]
    assert recs[2].encrypted and not recs[0].encrypted
    pairs = dict(link_recordings(env.as_("reviewer"), case.number, [r.archive_no for r in recs]))
    items = dict(pairs)
    for name, doc_type, when in [
        ("立案.pdf", "立案审批表", T0),
        ("询问.pdf", "询问笔录", T0 + timedelta(hours=1)),
    ]:
        item, _ = store_doc(env, case.number, name, doc_type, when, policy=policy)
        items[doc_type] = item.item_no
    plain = {pairs[rec.archive_no]: path.read_bytes() for rec, path in stored}
    if proxies:
        for n, rec in enumerate(recs, 1):
            proxy = env.tmp / f"proxy{n}.mp4"
            proxy.write_bytes(b"\x00\x00\x00\x18ftypisom proxy " + bytes([n]) * 4000)
            store_derivative(
                env.as_("station:ST01", kek=kek),
                rec,
                kind="proxy",
                path=proxy,
                ext="mp4",
                content_type="video/mp4",
                method="remux",
            )
            poster = env.tmp / f"poster{n}.jpg"
            poster.write_bytes(b"\xff\xd8\xff\xe0 poster " + bytes([n]) * 500)
            store_derivative(
                env.as_("station:ST01", kek=kek),
                rec,
                kind="poster",
                path=poster,
                ext="jpg",
                content_type="image/jpeg",
                method="frame",
            )
    return Built(
        case.case_key,
        case.number,
        kek,
        Ed25519PrivateKey.generate(),
        plain,
        items,
        protected_item=pairs[recs[2].archive_no],
    )


def trust(built: Built) -> Anchors:
    """What the court is given apart from the package: the bureau's pinned fingerprint."""
    return Anchors({fingerprint(built.key.public_key())})


def export(env, built: Built, outdir: Path, **kwargs) -> ExportResult:
    return export_case(
        env.as_("auditor:zhang", kek=built.kek, now=kwargs.pop("now", None)),
        built.number,
        outdir,
        signing_key=built.key,
        reason=kwargs.pop("reason", "法院调取 court request 2021-3"),
        **kwargs,
    )


def bagit_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BAGIT_CLI), "--validate", str(path)], capture_output=True, text=True, timeout=120
    )


def test_a_case_exports_as_a_valid_bag_of_decrypted_evidence(env) -> None:
    built = build_case(env, proxies=True)
    seen: dict[str, tuple[int, int]] = {}
    result = export(
        env,
        built,
        env.tmp / "out",
        with_proxies=True,
        progress=lambda rel, done, total: seen.__setitem__(rel, (done, total)),
    )
    bag_dir = env.tmp / "out" / built.case_key
    assert result.path == bag_dir and result.items == 5
    assert result.bytes == sum(p.stat().st_size for p in bag_dir.rglob("*") if p.is_file())

    bagit.Bag(str(bag_dir)).validate()  # the Library of Congress validator, digests included
    cli = bagit_cli(bag_dir)
    assert cli.returncode == 0, cli.stderr
    report = verify_package(bag_dir, anchors=trust(built))
    assert report.ok, report.problems
    assert report.case_key == built.case_key and report.signers == [fingerprint(built.key.public_key())]

    # Each original is byte for byte the recorder's file; the protected one decrypted.
    for item_no, plain in built.plain.items():
        assert (bag_dir / "data" / "originals" / f"{item_no}.mp4").read_bytes() == plain
    assert seen[f"data/originals/{built.protected_item}.mp4"] == (len(built.plain[built.protected_item]),) * 2

    case = json.loads((bag_dir / "data" / "case.json").read_text(encoding="utf-8"))
    assert case["case"]["number"] == "开城管罚立〔2020〕42号"
    times = [i["time"] for i in case["items"]]
    assert times == sorted(times) and all(t.endswith("Z") for t in times)
    by_no = {i["item_no"]: i for i in case["items"]}
    assert [i["kind"] for i in case["items"]] == ["document", "video", "video", "video", "document"]
    protected = by_no[built.protected_item]
    assert protected["protected"] and protected["original_name"] == "现场视频3.MP4"
    assert protected["sha256"] == hashlib.sha256(built.plain[built.protected_item]).hexdigest()
    assert protected["officer"] == "JX0227" and protected["device"] == "A123456"
    assert {d["kind"] for d in protected["derivatives"]} == {"proxy", "poster"}
    assert by_no[built.items["询问笔录"]]["doc_type"] == "询问笔录"
    assert (
        (bag_dir / "data" / "proxies" / f"{built.protected_item}-proxy.mp4")
        .read_bytes()
        .startswith(b"\x00\x00\x00\x18ftypisom proxy")
    )

    page = (bag_dir / "data" / "index.html").read_text(encoding="utf-8")
    assert f'<video controls preload="none" src="proxies/{built.protected_item}-proxy.mp4"' in page
    assert (
        "时间线 Timeline" in page
        and protected["sha256"] in page
        and "http" not in page.replace("http-equiv", "")
    )

    info = bagit.Bag(str(bag_dir)).info
    assert info["External-Identifier"] == built.number and info["Case-Key"] == built.case_key
    assert info["Exported-By"] == "auditor:zhang" and info["Export-Reason"].startswith("法院调取")
    # 5 items, 6 derivatives, case, index; custody: events, links, statement, signature, key
    assert info["Payload-Oxum"].endswith(".18")

    with env.sessions() as s:
        (event,) = [e for e in custody.events(s, subject=built.case_key) if e.action == "exported"]
        (checkpoint,) = custody.checkpoints(s)
    assert event.actor == "auditor:zhang" and event.details["reason"] == "法院调取 court request 2021-3"
    assert event.details["items"] == 5 and event.details["destination"] == built.case_key
    assert checkpoint.seq == event.seq  # signed right after the export event
    assert info["Custody-Checkpoint"] == str(checkpoint.n) and info["Custody-Key"] == checkpoint.key
    custody_dir = bag_dir / "data" / "custody"
    lines = (custody_dir / "events.jsonl").read_bytes().splitlines()
    assert lines[-1] == event.body  # the exported event, byte for byte as hashed
    assert (custody_dir / "checkpoint.json").read_bytes() == checkpoint.signed_bytes()
    assert len((custody_dir / "checkpoint.sig").read_bytes()) == 64
    links = (custody_dir / "links.tsv").read_text().splitlines()
    assert links[-1] == f"{checkpoint.seq}\t{event.prev_hash}\t{event.body_hash}\t{checkpoint.head}"
    # The exported event commits to every payload file outside data/custody/, with its digest.
    committed = event.details["files"]
    on_disk = {
        p.relative_to(bag_dir).as_posix()
        for p in (bag_dir / "data").rglob("*")
        if p.is_file() and "custody" not in p.parts
    }
    assert set(committed) == on_disk
    assert all(hashlib.sha256((bag_dir / rel).read_bytes()).hexdigest() == d for rel, d in committed.items())
    assert "checkpoint" not in case["export"]  # so that case.json can be committed
    subjects = {json.loads(line)["subject"] for line in lines}
    assert subjects >= {built.case_key, built.items["询问笔录"]}


def test_the_zip_variant_is_valid_and_leaves_no_folder(env) -> None:
    built = build_case(env)
    out = env.tmp / "out"
    result = export(env, built, out, zip_it=True)
    assert result.path == out / f"{built.case_key}.zip" and result.bytes == result.path.stat().st_size
    assert sorted(p.name for p in out.iterdir()) == [f"{built.case_key}.zip"]  # no folder, no temp
    assert verify_package(result.path, anchors=trust(built)).ok
    with zipfile.ZipFile(result.path) as zf:
        names = zf.namelist()
        assert all(n.startswith(f"{built.case_key}/") for n in names)
        assert (
            zf.read(f"{built.case_key}/data/originals/{built.protected_item}.mp4")
            == built.plain[built.protected_item]
        )
        zf.extractall(env.tmp / "unzipped")
    unzipped = env.tmp / "unzipped" / built.case_key
    bagit.Bag(str(unzipped)).validate()
    assert bagit_cli(unzipped).returncode == 0
    with env.sessions() as s:
        (event,) = [e for e in custody.events(s, subject=built.case_key) if e.action == "exported"]
    assert event.details["destination"] == f"{built.case_key}.zip"


def test_an_existing_package_is_never_overwritten(env) -> None:
    built = build_case(env)
    first = export(env, built, env.tmp / "out")
    marker = (first.path / "bag-info.txt").read_bytes()
    with pytest.raises(InvalidInput, match="exists already"):
        export(env, built, env.tmp / "out")
    assert (first.path / "bag-info.txt").read_bytes() == marker
    assert [p.name for p in (env.tmp / "out").iterdir()] == [built.case_key]
    with env.sessions() as s:
        assert len([e for e in custody.events(s, subject=built.case_key) if e.action == "exported"]) == 1


def test_an_altered_stored_original_aborts_the_export_and_leaves_nothing(env) -> None:
    built = build_case(env)
    archive_no = next(a for a, i in built.items.items() if i != built.protected_item and "-" in a)
    with env.sessions() as s:
        rec = s.execute(select(Recording).where(Recording.archive_no == archive_no)).scalar_one()
    _flip_a_byte(env, rec)
    out = env.tmp / "out"
    with pytest.raises(CheckFailed) as caught:
        export(env, built, out)
    assert archive_no in str(caught.value) and built.items[archive_no] in str(caught.value)
    assert list(out.iterdir()) == []  # no bag, no half bag, no temporary folder
    with env.sessions() as s:
        assert not [e for e in custody.events(s, subject=built.case_key) if e.action == "exported"]


def test_sm3_digests_go_in_a_tag_file_that_bagit_tolerates(env) -> None:
    policy = dataclasses.replace(env.policy, sm3=True)
    built = build_case(env, policy=policy)
    result = export(env, built, env.tmp / "out")
    lines = (result.path / "sm3-digests.txt").read_text(encoding="utf-8").splitlines()
    manifest = (result.path / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines()
    assert sorted(line.split("  ", 1)[1] for line in lines) == sorted(
        line.split("  ", 1)[1] for line in manifest
    )
    assert "sm3-digests.txt" in (result.path / "tagmanifest-sha256.txt").read_text(encoding="utf-8")
    assert not (result.path / "manifest-sm3.txt").exists()
    bagit.Bag(str(result.path)).validate()
    assert bagit_cli(result.path).returncode == 0
    assert verify_package(result.path, anchors=trust(built)).ok
    case = json.loads((result.path / "data" / "case.json").read_text(encoding="utf-8"))
    assert all(len(i["sm3"]) == 64 for i in case["items"])


def test_links_run_from_each_disclosed_event_to_the_checkpoint_after_it(env) -> None:
    built = build_case(env)
    with env.sessions.begin() as s:  # a busy archive: many events of other recordings
        for n in range(2000):
            custody.append(s, actor="station:ST02", action="viewed", subject=f"KZCG-20201106-ST02-{n:04d}")
    with env.sessions.begin() as s:
        custody.append(s, actor="auditor", action="viewed", subject=built.protected_item)
    result = export(env, built, env.tmp / "out")
    folder = result.path / "data" / "custody"
    events = [json.loads(line) for line in (folder / "events.jsonl").read_bytes().splitlines()]
    links = [line.split("\t") for line in (folder / "links.tsv").read_text().splitlines()]
    first, last = events[0]["seq"], int(links[-1][0])
    # No checkpoint before the export: one run of links from the first disclosed event on.
    assert [int(link[0]) for link in links] == list(range(first, last + 1))
    assert len(links) > 2000
    assert not any(e["subject"].startswith("KZCG-20201106-ST02") for e in events)
    assert [e["action"] for e in events][-2:] == ["viewed", "exported"]
    assert verify_package(result.path, anchors=trust(built)).ok

    # After a checkpoint, a second export carries only the stretches from each disclosed
    # event to the first checkpoint after it, and the checkpoints from there to its own.
    with env.sessions.begin() as s:
        for n in range(500):
            custody.append(s, actor="station:ST02", action="viewed", subject=f"KZCG-20201107-ST02-{n:04d}")
    again = export(env, built, env.tmp / "out2")
    folder = again.path / "data" / "custody"
    seqs = [int(line.split("\t")[0]) for line in (folder / "links.tsv").read_text().splitlines()]
    gaps = [(a, b) for a, b in zip(seqs, seqs[1:], strict=False) if b != a + 1]
    assert len(gaps) == 1 and gaps[0][1] - gaps[0][0] > 500  # the other recordings' events skipped
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["00000001.json", "00000001.sig"]
    assert verify_package(again.path, anchors=trust(built)).ok


@pytest.mark.slow
def test_a_large_original_is_exported_in_flat_memory(env) -> None:
    kek = generate_kek()
    case = env.case()
    # A lock long enough to outlast a 200 MB multipart upload (the store locks it afterwards).
    policy = dataclasses.replace(env.policy, min_lock=timedelta(minutes=5))
    big, path = store_recording(env, 9, start=T0, kek=kek, size=200 << 20, policy=policy)
    link_recordings(env.as_("reviewer"), case.number, [big.archive_no])
    path.unlink()
    key = Ed25519PrivateKey.generate()
    tracemalloc.start()
    try:
        result = export_case(
            env.as_("auditor", kek=kek),
            case.case_key,
            env.tmp / "out",
            signing_key=key,
            reason="size",
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.bytes > 200 << 20
    assert peak < 32 << 20, f"peak {peak / (1 << 20):.1f} MiB"
    assert verify_package(result.path, anchors=Anchors({fingerprint(key.public_key())})).ok


def test_the_disclosure_read_in_two_parts_is_the_disclosure_read_at_once(env) -> None:
    """An export reads the case's events up to the chain's head, then, under the chain's lock,
    those that came since: wherever the cut falls, it discloses, withholds and ends each
    subject's walk exactly as one read would."""
    built = build_case(env)
    hidden = {built.protected_item}
    with env.sessions() as s:
        last, _ = custody.head(s)
        subjects = sorted({x for x in s.execute(select(CustodyEventRow.subject)).scalars() if x})
        whole = _Disclosure()
        whole.read(s, subjects, built.case_key, hidden)
        assert whole.withheld and whole.disclosed and whole.heads
        for cut in sorted({0, 1, last // 3, last // 2, last - 1, last}):
            parts = _Disclosure()
            parts.read(s, subjects, built.case_key, hidden, upto=cut)
            parts.read(s, subjects, built.case_key, hidden, after=cut)
            assert parts == whole, cut


def test_a_pending_export_is_found_while_other_packages_are_cleaned_up(tmp_path: Path) -> None:
    """Served packages' folders are removed while another account asks for its own: folders
    that vanish mid-search are passed over, the one asked for is still found, and a link
    planted among the folders is not followed."""
    import shutil
    import threading
    import time

    from verify.export import PENDING, find_pending

    root = tmp_path / "exports"
    mine = root / "evidence-export-mine" / f".{T0:%Y}.partial"
    mine.mkdir(parents=True)
    (mine / PENDING).write_text(json.dumps({"seq": 7, "export": {"by": "web:aud"}}))
    elsewhere = tmp_path / "elsewhere" / ".planted.partial"
    elsewhere.mkdir(parents=True)
    (elsewhere / PENDING).write_text(json.dumps({"seq": 8, "export": {"by": "web:aud"}}))
    (root / "evidence-export-link").symlink_to(tmp_path / "elsewhere")
    stop = threading.Event()

    def serve_and_clean_up() -> None:
        n = 0
        while not stop.is_set():
            served = root / f"evidence-export-{n:06d}" / ".other.partial"
            served.mkdir(parents=True)
            (served / PENDING).write_text("{}")
            shutil.rmtree(served.parent)
            n += 1

    churn = threading.Thread(target=serve_and_clean_up)
    churn.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert find_pending(root, 7, "web:aud") == mine
            assert find_pending(root, 8, "web:aud") is None
    finally:
        stop.set()
        churn.join()
