"""Faults while ingesting: a dead object store, a full disk, a file that vanishes."""

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import synthetic
from tests.conftest import run_evidence
from tests.ingest.conftest import files_in, recordings, scan


@pytest.mark.s3
def test_a_dead_object_store_leaves_files_in_place_until_it_is_back(station, rgw) -> None:
    access, secret = rgw.users["admin"]
    env = dict(
        station["env"],
        EVIDENCE_STORAGE_URL=f"s3://{rgw.endpoint}/i-{uuid.uuid4().hex[:10]}?secure=false",
        EVIDENCE_S3_ACCESS_KEY=access,
        EVIDENCE_S3_SECRET_KEY=secret,
    )
    assert run_evidence("init", env=env).returncode == 0
    video = synthetic.make_video(station["inbox"] / "A123456@202011050850560000.mp4")
    rgw.kill_gateway()
    try:
        result, report = scan(station, env=env, expect=1)
        assert report["archived"] == [] and len(report["failed"]) == 1
        assert "cannot reach" in report["failed"][0]["reason"]
        assert video.exists() and recordings(station) == []
    finally:
        rgw.restart_gateway()
    _, report = scan(station, env=env, expect=0)
    assert len(report["archived"]) == 1 and not video.exists()


def test_a_full_disk_fails_cleanly_and_keeps_the_file(station, tmp_path: Path) -> None:
    small = tmp_path / "small-disk"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(small)]).returncode:
        pytest.fail("cannot mount a small tmpfs here")
    try:
        env = dict(station["env"], EVIDENCE_STORAGE_URL=f"file://{small}/store")
        assert run_evidence("init", env=env).returncode == 0
        big = synthetic.make_video(
            station["inbox"] / "A123456@202011050850560000.mp4", seconds=6, size="1280x720"
        )
        filler = small / "filler"
        filler.write_bytes(b"\0" * (3 * 1024 * 1024 - big.stat().st_size // 2))
        _, report = scan(station, env=env, expect=1)
        assert "disk is full" in report["failed"][0]["reason"]
        assert big.exists() and recordings(station) == []
        filler.unlink()
        _, report = scan(station, env=env, expect=0)
        assert len(report["archived"]) == 1
    finally:
        subprocess.run(["umount", "-l", str(small)])


def test_a_file_that_vanishes_is_failed_not_a_crash(station) -> None:
    from config.app import App
    from config.settings import load_settings

    settings, _ = load_settings(None, station["env"])
    app = App(settings, actor="station:ST01")
    outcome = app.pipeline("ST01").process(station["inbox"], station["inbox"] / "gone.mp4")
    assert outcome.kind == "failed" and "vanished" in outcome.reason
    app.close()


def test_scan_json_is_the_contract(station) -> None:
    synthetic.make_video(station["inbox"] / "A123456@202011050850560000.mp4")
    result = run_evidence(
        "ingest", "scan", "--station", "ST01", str(station["inbox"]), "--json", env=station["env"]
    )
    report = json.loads(result.stdout)
    assert set(report) >= {"archived", "duplicates", "quarantined", "failed"}
    assert files_in(station["inbox"]) == [".archived/A123456@202011050850560000.mp4"]


@pytest.mark.postgres
def test_the_catalog_database_going_away_mid_file_leaves_it_for_a_retry(station, pg_url) -> None:
    """PostgreSQL becomes unreachable right after the file was hashed, then comes back."""
    from sqlalchemy.engine import make_url

    from config.app import App
    from config.settings import load_settings
    from tests.servers.tcp_proxy import TcpProxy

    url = make_url(pg_url)
    proxy = TcpProxy((url.host, url.port or 5432))
    env = dict(
        station["env"],
        EVIDENCE_DATABASE_URL=url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        ),
    )
    assert run_evidence("init", env=env).returncode == 0
    video = synthetic.make_video(station["inbox"] / "A123456@202011050850560000.mp4")
    settings, _ = load_settings(None, env)
    app = App(settings, actor="station:ST01")
    try:
        cut = lambda step: proxy.cut() if step == "hashed" else None
        outcome = app.pipeline("ST01", fault_hook=cut).process(station["inbox"], video)
        assert outcome.kind == "failed" and "catalog database" in outcome.reason
        assert video.exists()
        proxy.restore()
        again = app.pipeline("ST01").process(station["inbox"], video)
        assert again.kind == "archived" and not video.exists()
    finally:
        app.close()
        proxy.close()
