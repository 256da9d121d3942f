"""The ingest pipeline end to end: real media, real ffmpeg, the real command."""

import hashlib
import json
import os
import shutil
from pathlib import Path

from tests import synthetic
from tests.conftest import run_evidence
from tests.ingest.conftest import files_in, recordings, scan, stored_originals


def test_an_inbox_is_archived_with_metadata_sources_and_proxies(station) -> None:
    made = synthetic.make_inbox(station["inbox"], count=2)
    result, report = scan(station, expect=0)
    assert len(report["archived"]) == len(made) and not report["failed"] and not report["quarantined"]
    assert sorted(n[-4:] for n in report["archived"]) == [f"{i:04d}" for i in range(1, len(made) + 1)]
    assert all(n.startswith("KZCG-") and "-ST01-" in n for n in report["archived"])
    recs = {r["original_name"]: r for r in recordings(station)}
    at = next(r for name, r in recs.items() if "@" in name)
    assert at["kind"] == "video" and at["device_id"] is not None
    assert json.loads(at["sources"])["start_time"] == "filename"
    imp = next(r for name, r in recs.items() if "_IMP" in name)
    assert imp["important"]
    assert {r["kind"] for r in recs.values()} == {"video", "audio", "photo"}
    # The station copies are moved aside only now, and nothing is left in the inbox.
    assert files_in(station["inbox"] / ".archived") == sorted(p.name for p in made)
    assert [p for p in files_in(station["inbox"]) if not p.startswith(".archived")] == []
    verify = run_evidence("audit", "verify", "--json", env=station["env"])
    assert json.loads(verify.stdout)["ok"] is True


def test_the_same_content_is_stored_once(station) -> None:
    original = synthetic.make_video(station["inbox"] / "A123456@202011050850560000.mp4")
    shutil.copy(original, station["inbox"] / "A123456@202011050850560000 (copy).mp4")
    _, report = scan(station, expect=0)
    assert len(report["archived"]) == 1 and len(report["duplicates"]) == 1
    assert report["duplicates"][0]["archive_no"] == report["archived"][0]
    # Docked again another day: seen again, not stored again.
    again = station["inbox"] / "DCIM" / "A123456@202011050850560000.mp4"
    again.parent.mkdir()
    shutil.copy(station["inbox"] / ".archived" / original.name, again)
    _, second = scan(station, expect=0)
    assert second["archived"] == [] and second["duplicates"][0]["archive_no"] == report["archived"][0]
    assert len(recordings(station)) == 1 and len(stored_originals(station)) == 1
    log = json.loads(
        run_evidence("audit", "log", "--subject", report["archived"][0], "--json", env=station["env"]).stdout
    )
    assert [e["action"] for e in log].count("seen_again") == 2


def test_the_station_copy_is_read_once_and_a_duplicate_leaves_nothing_staged(station, monkeypatch) -> None:
    """On the local store an original is written to the store while it is hashed: the station
    copy is read once, and content already archived is thrown away again, never stored."""
    from config.app import App
    from config.settings import load_settings
    from ingest import station_files

    read = []
    plain = station_files.FdReader.readinto
    monkeypatch.setattr(
        station_files.FdReader, "readinto", lambda self, buffer: read.append(plain(self, buffer)) or read[-1]
    )
    video = synthetic.make_video(station["inbox"] / "A123456@202011050850560000.mp4", seconds=6.0)
    size = video.stat().st_size
    twin = station["inbox"] / "A123456@202011050850560000 (copy).mp4"
    shutil.copy(video, twin)
    staging = station["tmp"] / "data" / "store" / "tmp"
    settings, _ = load_settings(None, station["env"])
    app = App(settings, actor="station:ST01")
    try:
        first = app.pipeline("ST01").process(station["inbox"], video)
        assert first.kind == "archived"
        # Hashing and storing share one pass (the container check reads a few header bytes;
        # the proxy and pictures are ffmpeg's own reads, not counted here).
        assert size <= sum(read) < 1.2 * size, (sum(read), size)
        assert list(staging.glob("*")) == []
        read.clear()
        again = app.pipeline("ST01").process(station["inbox"], twin)
        assert again.kind == "duplicate" and again.archive_no == first.archive_no
        assert size <= sum(read) < 1.2 * size
        assert list(staging.glob("*")) == []  # staged, found archived, thrown away
    finally:
        app.close()
    assert len(stored_originals(station)) == 1 and len(recordings(station)) == 1


def test_bad_input_is_sorted_never_lost(station) -> None:
    inbox = station["inbox"]
    (inbox / "TA00716_JX0227_20201105093621.MOV").write_bytes(b"")
    (inbox / "notes.mp4").write_text("this is not a video")
    target = station["tmp"] / "outside.mp4"
    synthetic.make_video(target)
    (inbox / "link.mp4").symlink_to(target)
    full = synthetic.make_video(inbox / "A123456@202011050900000000.mp4", seconds=2, faststart=False)
    synthetic.truncate(full, keep_fraction=0.5)
    os.mkfifo(inbox / "A123456@202011050910000000.mp4")
    weird = inbox / os.fsdecode(b"A123456@202011050920000000\xff.mp4")
    synthetic.make_video(weird, seconds=1)
    result, report = scan(station, "--no-wait", expect=1)
    quarantined = {q["path"]: q["reason"] for q in report["quarantined"]}
    assert set(quarantined) == {"TA00716_JX0227_20201105093621.MOV", "notes.mp4", "link.mp4"}
    assert "empty" in quarantined["TA00716_JX0227_20201105093621.MOV"]
    assert "symbolic link" in quarantined["link.mp4"]
    assert [f["path"] for f in report["failed"]] == ["A123456@202011050910000000.mp4"]
    assert len(report["archived"]) == 2 and len(report["damaged"]) == 1
    # Kept, never deleted: the quarantined files and their reasons, the link not followed.
    kept = files_in(inbox / ".quarantine")
    assert "notes.mp4" in kept and "notes.mp4.reason.txt" in kept and "link.mp4" in kept
    assert (inbox / ".quarantine" / "link.mp4").is_symlink() and target.exists()
    assert (inbox / "A123456@202011050910000000.mp4").exists()  # the pipe stays for a retry
    damaged = next(r for r in recordings(station) if r["damaged"])
    assert damaged["damage_reason"]
    names = {r["original_name"] for r in recordings(station)}
    assert any("\\xff" in n for n in names)


def test_a_vendor_checksum_mismatch_flags_damage_in_transfer(station) -> None:
    video = synthetic.make_video(station["inbox"] / "A123456@202011051000000000.mp4")
    Path(f"{video}.md5").write_text("0" * 32 + f"  {video.name}\n")
    good = synthetic.make_video(station["inbox"] / "A123456@202011051010000000.mp4", tone=660)
    Path(f"{good}.md5").write_text(hashlib.md5(good.read_bytes()).hexdigest() + "\n")
    _, report = scan(station, expect=0)
    assert len(report["archived"]) == 2 and len(report["damaged"]) == 1
    bad = next(r for r in recordings(station) if r["damaged"])
    assert "damaged in transfer" in bad["damage_reason"] and bad["original_name"] == video.name
    # The sidecars travel with their recordings.
    assert sorted(files_in(station["inbox"] / ".archived")) == sorted(
        [video.name, f"{video.name}.md5", good.name, f"{good.name}.md5"]
    )


def test_an_evidence_sidecar_links_flags_and_protects(station) -> None:
    opened = run_evidence("case", "open", "开城管罚立〔2020〕42号", "--json", env=station["env"])
    case_key = json.loads(opened.stdout)["case_key"]
    video = synthetic.make_video(station["inbox"] / "TA00716_JX0227_20201105093621.MOV")
    Path(f"{video}.evidence.json").write_text(
        json.dumps(
            {"case": "开城管罚立〔2020〕42号", "important": True, "protected": True, "note": "阻碍执法"},
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    _, report = scan(station, expect=0)
    (rec,) = recordings(station)
    assert rec["important"] and rec["protected"] and rec["encrypted"]
    shown = json.loads(run_evidence("case", "show", case_key, "--json", env=station["env"]).stdout)
    assert shown["case"]["case_key"] == case_key
    log = json.loads(
        run_evidence("audit", "log", "--subject", rec["archive_no"], "--json", env=station["env"]).stdout
    )
    assert "linked" in [e["action"] for e in log]


def test_after_archive_delete_and_keep(station, tmp_path) -> None:
    synthetic.make_video(station["inbox"] / "A123456@202011051100000000.mp4")
    config = station["config"]
    config.write_text(config.read_text() + 'after_archive = "delete"\n')
    _, report = scan(station, expect=0)
    assert len(report["archived"]) == 1 and files_in(station["inbox"]) == []
    config.write_text(config.read_text().replace('"delete"', '"keep"'))
    kept = synthetic.make_video(station["inbox"] / "A123456@202011051200000000.mp4", tone=880)
    scan(station, expect=0)
    _, again = scan(station, expect=0)
    assert kept.exists() and again["archived"] == [] and len(recordings(station)) == 2


def test_officer_from_the_device_assignment_when_the_name_has_none(station) -> None:
    assigned = run_evidence(
        "devices", "assign", "A123456", "JX0999", "--from", "2020-01-01", "--json", env=station["env"]
    )
    assert assigned.returncode == 0, assigned.stderr
    synthetic.make_video(station["inbox"] / "A123456@202011050850560000.mp4")
    scan(station, expect=0)
    (rec,) = recordings(station)
    assert json.loads(rec["sources"])["officer"] == "assignment"
    from sqlalchemy import create_engine, text

    engine = create_engine(station["env"]["EVIDENCE_DATABASE_URL"])
    with engine.connect() as conn:
        assert (
            conn.execute(text("select number from officers where id = :i"), {"i": rec["officer_id"]}).scalar()
            == "JX0999"
        )
    engine.dispose()


def test_station_copies_are_pruned_after_the_keep_period(station) -> None:
    synthetic.make_video(station["inbox"] / "A123456@202011050850560000.mp4")
    scan(station, expect=0)
    stray = station["inbox"] / ".archived" / "unknown.mp4"
    stray.write_bytes(b"not ours")
    from sqlalchemy import create_engine, text

    engine = create_engine(station["env"]["EVIDENCE_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("update ingest_jobs set updated_at = '2020-01-01 00:00:00.000000'"))
    engine.dispose()
    scan(station, expect=0)
    assert files_in(station["inbox"] / ".archived") == ["unknown.mp4"]  # only what the catalog finished


def test_names_with_path_tricks_never_reach_keys_or_escape_the_inbox(station) -> None:
    tricky = ["a\nb.mp4", "-rf.mp4", "x\\..\\y.mp4", " leading space.mp4"]
    for i, name in enumerate(tricky):
        synthetic.make_video(station["inbox"] / name, tone=300 + 40 * i)
    # Hidden names are what copy tools use while writing (".name.XXXX"): left alone.
    synthetic.make_video(station["inbox"] / "..mp4", tone=900)
    _, report = scan(station, expect=0)
    assert len(report["archived"]) == len(tricky)
    for rec in recordings(station):
        assert rec["storage_key"].isascii() and "\n" not in rec["original_name"]
        assert ".." not in rec["storage_key"].split("/")
    assert sorted(files_in(station["inbox"] / ".archived")) == sorted(tricky)
    assert (station["inbox"] / "..mp4").exists()
