"""A duplicate's recorder-style name fills what the archived recording lacks, as a custody
event that a catalog rebuilt from storage replays."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from archive.checkpoints import make_and_publish
from catalog import custody
from catalog.db import make_engine, session_factory
from catalog.metadata_fill import plan
from catalog.models import Device, Recording
from tests import synthetic
from verify.rebuild import compare, rebuild

RECORDER = "A123456@202011050850560000.mp4"  # device A123456, 2020-11-05 08:50:56 local
START = datetime(2020, 11, 5, 0, 50, 56, tzinfo=UTC)  # in Asia/Shanghai


def test_only_what_is_missing_and_only_from_a_file_name() -> None:
    values = {"device": "A123456", "officer": "JX0227", "start": START}
    every = {"device": "filename", "officer": "filename", "start": "filename"}
    assert plan(
        has_device=False,
        has_officer=False,
        sources={"start_time": "file_time"},
        name_values=values,
        name_sources=every,
    ) == {"device": "A123456", "officer": "JX0227", "start_time": "2020-11-05T00:50:56.000000Z"}
    # A start time from a name already, or a device it has: kept.
    assert (
        plan(
            has_device=True,
            has_officer=True,
            sources={"start_time": "filename"},
            name_values=values,
            name_sources=every,
        )
        == {}
    )
    # A device known from a folder or an sn.txt is not "from the name".
    assert plan(
        has_device=False,
        has_officer=False,
        sources={"start_time": "container"},
        name_values=values,
        name_sources={"device": "folder", "officer": "sn.txt", "start": "filename"},
    ) == {"start_time": "2020-11-05T00:50:56.000000Z"}


def test_a_duplicate_under_a_recorder_name_fills_in_and_a_rebuild_replays_it(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from config.app import App
    from config.settings import load_settings

    settings, _ = load_settings(
        None,
        {
            "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
            "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
            "EVIDENCE_UNIT": "KZCG",
        },
    )
    app = App(settings, actor="station:ST01")
    app.init()
    first, second, third = (tmp_path / n for n in ("in1", "in2", "in3"))
    for folder in (first, second, third):
        folder.mkdir()
    clip = synthetic.make_video(first / "VID_0001.mp4", seconds=1, text="once", creation_time=None)
    shutil.copy(clip, second / RECORDER)
    shutil.copy(clip, third / "A999999@202101010000000000.mp4")
    (archive_no,) = app.pipeline("ST01").scan([first]).archived
    with app.sessions() as s:
        rec = s.execute(select(Recording).where(Recording.archive_no == archive_no)).scalar_one()
        assert rec.device_id is None and json.loads(rec.sources)["start_time"] in ("container", "file_time")

    assert app.pipeline("ST02").scan([second]).duplicates[0]["archive_no"] == archive_no
    assert (
        app.pipeline("ST03").scan([third]).duplicates[0]["archive_no"] == archive_no
    )  # nothing left to fill

    with app.sessions() as s:
        rec = s.execute(select(Recording).where(Recording.archive_no == archive_no)).scalar_one()
        assert s.get(Device, rec.device_id).serial == "A123456"
        assert rec.start_time == START
        sources = json.loads(rec.sources)
        assert sources["device"] == sources["start_time"] == "duplicate_name"
        (fill,) = [e for e in custody.events(s, subject=archive_no) if e.action == "metadata_filled"]
        assert fill.actor == "station:ST01"  # the process acting; the station is in the details
        assert fill.details == {
            "device": "A123456",
            "start_time": "2020-11-05T00:50:56.000000Z",
            "from_name": RECORDER,
            "station": "ST02",
            "source": "duplicate_name",
        }

    make_and_publish(app.services.acting_as("cron"), Ed25519PrivateKey.generate())
    target = make_engine(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    report = rebuild(app.store, target, formats=settings.formats)
    assert report.problems == [] and report.counts["metadata_filled"] == 1
    with app.sessions() as live, session_factory(target)() as rebuilt:
        differences, _ = compare(live, rebuilt, last_checkpoint_seq=report.last_checkpoint_seq)
        assert differences == []
        again = rebuilt.execute(select(Recording).where(Recording.archive_no == archive_no)).scalar_one()
        assert rebuilt.get(Device, again.device_id).serial == "A123456"
        assert again.start_time == START and json.loads(again.sources) == sources
    target.dispose()
    app.close()
