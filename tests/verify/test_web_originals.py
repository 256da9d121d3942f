"""What the item page plays, in a real headless Chromium: the original itself when browsers
play it (H.264 in MP4 with ``moov`` at the end, and a protected one decrypted by the server),
the transcoded proxy for H.265. Recordings go through the real ingest (real ffmpeg)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog.models import Derivative, Recording
from catalog.users import add_user
from catalog.views import recording_rows
from tests import synthetic
from tests.verify.test_web_browser import ARGS, CHROMIUM, PASSWORD, _wait
from tests.verify.web_server import LiveServer

NAMES = {
    "tail": "A123456@202011050850560000.mp4",  # moov at the end, as recorders write it
    "secret": "A123456@202011050900000000.mp4",  # protected by its sidecar, so encrypted
    "hevc": "A123456@202011050910000000.mp4",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    from archive.cases import open_case
    from archive.links import link_recordings
    from catalog.cases import NewCase
    from config.app import App
    from config.settings import load_settings
    from verify.web import create_app

    tmp = tmp_path_factory.mktemp("originals")
    inbox = tmp / "inbox"
    inbox.mkdir()
    synthetic.make_video(inbox / NAMES["tail"], seconds=4, faststart=False, text="tail")
    synthetic.make_video(inbox / NAMES["secret"], seconds=4, faststart=False, text="secret")
    (inbox / (NAMES["secret"] + ".evidence.json")).write_text(json.dumps({"protected": True}))
    synthetic.make_video(inbox / NAMES["hevc"], seconds=3, codec="hevc", text="hevc")
    settings, _ = load_settings(
        None,
        {
            "EVIDENCE_DATA_DIR": str(tmp / "data"),
            "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp / 'catalog.db'}",
            "EVIDENCE_UNIT": "KZCG",
        },
    )
    app = App(settings, actor="station:ST01")
    app.init()
    archived = app.pipeline("ST01").scan([inbox]).archived
    assert len(archived) == 3
    with app.sessions() as s:
        by_name = {
            r.original_name: r.archive_no
            for r in s.execute(select(Recording).where(Recording.archive_no.in_(archived))).scalars()
        }
    clerk = app.services.acting_as("clerk")
    case = open_case(
        clerk, NewCase(number="开城管罚立〔2020〕42号", unit="KZCG", opened_on=date(2020, 11, 5))
    )
    order = [by_name[NAMES[k]] for k in ("tail", "secret", "hevc")]
    items = dict(
        zip(
            ("tail", "secret", "hevc"),
            (i for _, i in link_recordings(clerk, case.number, order)),
            strict=True,
        )
    )
    with app.sessions.begin() as s:
        add_user(s, "auditor1", "auditor", PASSWORD, protected=False, now=datetime.now(UTC))
        add_user(s, "legal1", "legal", PASSWORD, protected=True, now=datetime.now(UTC))
    server = LiveServer(create_app(app.web_context()))
    yield {
        "base": server.base,
        "app": app,
        "items": items,
        "archive": {k: by_name[v] for k, v in NAMES.items()},
    }
    server.stop()
    app.close()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def _recording(app, archive_no: str) -> tuple[Recording, list[Derivative]]:
    with app.sessions() as s:
        rec = s.execute(select(Recording).where(Recording.archive_no == archive_no)).scalar_one()
        derived = list(s.execute(select(Derivative).where(Derivative.recording_id == rec.id)).scalars())
        s.expunge_all()
    return rec, derived


def test_playable_originals_get_no_proxy_and_hevc_still_gets_one(site) -> None:
    app = site["app"]
    for which in ("tail", "secret"):
        rec, derived = _recording(app, site["archive"][which])
        assert sorted(d.kind for d in derived) == ["poster", "sheet"], which
        assert all(d.status == "ok" for d in derived)
    rec, derived = _recording(app, site["archive"]["hevc"])
    assert sorted(d.kind for d in derived if d.status == "ok") == ["poster", "proxy", "sheet"]
    with app.sessions() as s:
        rows = recording_rows(s, list(s.execute(select(Recording)).scalars()))
    status = {r["original_name"]: r["proxy_status"] for r in rows}
    assert status == {NAMES["tail"]: "original", NAMES["secret"]: "original", NAMES["hevc"]: "ok"}
    secret, _ = _recording(app, site["archive"]["secret"])
    assert secret.protected and secret.encrypted


def _login(chromium, base: str, name: str):
    page = chromium.new_page()
    page.goto(base + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    return page


def _plays(page, base: str, item_no: str) -> bytes:
    """Open the item page, play two seconds in the page's player, and return the bytes its
    media link serves (fetched by the same browser, with its session)."""
    page.goto(f"{base}/items/{item_no}")
    _wait(page, "document.getElementById('player').readyState >= 2")
    page.evaluate("document.getElementById('player').play()")
    _wait(page, "document.getElementById('player').currentTime > 1.5")
    page.evaluate("document.getElementById('player').pause()")
    response = page.request.get(base + page.get_attribute("#player", "src"))
    assert response.status == 200
    return response.body()


def test_an_original_with_moov_at_the_end_plays_as_it_is(site, chromium) -> None:
    page = _login(chromium, site["base"], "auditor1")
    served = _plays(page, site["base"], site["items"]["tail"])
    rec, _ = _recording(site["app"], site["archive"]["tail"])
    assert hashlib.sha256(served).hexdigest() == rec.sha256  # the original, byte for byte
    assert served.index(b"moov") > served.index(b"mdat")
    page.screenshot(path=str(Path(site["app"].settings.data_path) / "item-original.png"))


def test_a_protected_original_plays_decrypted_through_the_server_for_the_grant_only(site, chromium) -> None:
    base, item = site["base"], site["items"]["secret"]
    page = _login(chromium, base, "legal1")
    served = _plays(page, base, item)
    rec, _ = _recording(site["app"], site["archive"]["secret"])
    assert hashlib.sha256(served).hexdigest() == rec.sha256
    # A byte range of the middle, as a player seeking asks for, decrypted from the stored object.
    media = page.get_attribute("#player", "src")
    part = page.request.get(base + media, headers={"Range": "bytes=1000-1999"})
    assert part.status == 206 and part.body() == served[1000:2000]
    other = _login(chromium, base, "auditor1")
    other.goto(f"{base}/items/{item}")
    assert other.query_selector("#player") is None
    assert other.request.get(base + media).status == 403  # another account's link


def test_hevc_plays_its_transcoded_proxy(site, chromium) -> None:
    page = _login(chromium, site["base"], "auditor1")
    served = _plays(page, site["base"], site["items"]["hevc"])
    _, derived = _recording(site["app"], site["archive"]["hevc"])
    (proxy,) = [d for d in derived if d.kind == "proxy"]
    assert hashlib.sha256(served).hexdigest() == proxy.sha256


def test_the_offline_package_plays_the_original_too(site, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from verify.export import export_case

    app, items = site["app"], site["items"]
    made = export_case(
        app.services.acting_as("clerk"),
        "开城管罚立〔2020〕42号",
        tmp_path,
        signing_key=Ed25519PrivateKey.generate(),
        reason="court",
        with_proxies=True,
    )
    page = (made.path / "data" / "index.html").read_text(encoding="utf-8")
    for which in ("tail", "secret"):
        assert f'src="originals/{items[which]}.mp4"' in page
    assert f'src="proxies/{items["hevc"]}-proxy.mp4"' in page
    assert (made.path / "data" / "originals" / f"{items['tail']}.mp4").is_file()
