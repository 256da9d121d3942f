"""The web pages in a real headless Chromium (Debian's), driven by Playwright."""

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archive.links import link_recordings
from catalog import custody
from catalog.users import add_user
from tests import synthetic
from tests.verify.web_server import LiveServer

PASSWORD = "a long enough password"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def _wait(page, condition: str, timeout: float = 20.0) -> None:
    """Polls a condition with ``evaluate``: ``wait_for_function`` evaluates a string, which the
    pages' Content-Security-Policy (no 'unsafe-eval') refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.1)


@pytest.fixture
def web(tmp_path: Path, sqlite_url: str):
    from config.app import App
    from config.settings import load_settings

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    made = synthetic.make_video(inbox / "A123456@202011050850560000.mp4", seconds=6)
    os.utime(made, (time.time() - 60, time.time() - 60))  # stable: the scan need not wait
    env = {
        "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": sqlite_url,
        "EVIDENCE_UNIT": "KZCG",
    }
    settings, _ = load_settings(None, env)
    app = App(settings, actor="station:ST01")
    app.init()
    (archived,) = app.pipeline("ST01").scan([inbox]).archived
    from archive.cases import open_case
    from catalog.cases import NewCase

    case = open_case(
        app.services.acting_as("clerk"),
        NewCase(
            number="开城管罚立〔2020〕42号",
            unit="KZCG",
            opened_on=datetime(2020, 11, 5).date(),
            title="占道经营",
        ),
    )
    ((_, item_no),) = link_recordings(app.services.acting_as("clerk"), case.number, [archived])
    with app.sessions.begin() as s:
        add_user(s, "auditor1", "auditor", PASSWORD, protected=False, now=datetime.now(UTC))
    from verify.web import create_app

    server = LiveServer(create_app(app.web_context()))
    yield {"base": server.base, "app": app, "case": case, "item": item_no, "archive_no": archived}
    server.stop()
    app.close()


@pytest.fixture
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def test_an_auditor_finds_a_case_plays_a_recording_and_the_play_is_on_the_record(web, chromium) -> None:
    page = chromium.new_page()
    page.goto(web["base"] + "/")
    assert page.url.endswith("/login?next=/")
    page.fill("input[name=name]", "auditor1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.fill("input[name=q]", "42号")
    page.click("#search-form button")
    page.click(f"text={web['case'].number}")
    assert page.inner_text("#case-number") == web["case"].number
    page.click(f"#timeline >> text={web['item']}")
    assert page.inner_text("#item-no") == web["item"]
    _wait(page, "document.getElementById('player').readyState >= 2")
    page.evaluate("document.getElementById('player').play()")
    _wait(page, "document.getElementById('player').currentTime > 2.0")
    page.evaluate("document.getElementById('player').pause()")
    time.sleep(1.0)  # the page reports the play on pause
    with web["app"].sessions() as s:
        plays = [e for e in custody.events(s, subject=web["item"]) if e.action == "played"]
    assert len(plays) == 1 and plays[0].actor == "web:auditor1"
    assert plays[0].details["start_ms"] == 0 and 1500 <= plays[0].details["watched_ms"] <= 6500
    page.reload()
    assert "播放" in page.eval_on_selector_all("#custody-log td.action", "c => c.map(x => x.textContent)")
    page.screenshot(path=str(Path(web["app"].settings.data_path) / "item-page.png"))


def test_media_without_a_session_and_a_hold_by_the_wrong_role_are_refused(web, chromium) -> None:
    page = chromium.new_page()
    page.goto(web["base"] + "/login")
    page.fill("input[name=name]", "auditor1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{web['base']}/items/{web['item']}")
    media = page.get_attribute("#player", "src")
    assert re.match(r"^/media/", media)
    stranger = chromium.new_context().new_page()
    response = stranger.request.get(web["base"] + media)
    assert response.status == 401
    csrf = page.get_attribute("input[name=csrf]", "value")
    status = page.evaluate(
        """async ([url, csrf]) => (await fetch(url, {method: 'POST', headers:
               {'Content-Type': 'application/x-www-form-urlencoded'},
               body: 'reason=x&csrf=' + encodeURIComponent(csrf)})).status""",
        [f"/holds/{web['item']}/set", csrf],
    )
    assert status == 403
    with web["app"].sessions() as s:
        refused = [e for e in custody.events(s) if e.action == "refused"]
    assert refused and refused[-1].details["route"] == "hold_set"


def test_a_web_export_waits_for_the_curators_checkpoint_then_verifies(web, chromium, tmp_path: Path) -> None:
    """The web server has no signing key: the page says the package is pending; once the
    curator's timer signs a checkpoint, the same account downloads it and it verifies."""
    from archive.checkpoints import make_and_publish
    from verify.package import verify_package

    app = web["app"]
    page = chromium.new_page()
    page.goto(web["base"] + "/login")
    page.fill("input[name=name]", "auditor1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(web["base"] + f"/cases/{web['case'].case_key}")
    page.fill("form[action$='/export'] input[name=reason]", "法院调取")
    page.click("form[action$='/export'] button")
    assert "等待下一个签名检查点" in page.inner_text("#export-pending")
    page.screenshot(path=str(tmp_path / "export-pending.png"))
    page.click("#export-fetch")
    assert page.locator("#export-pending").count() == 1  # still no checkpoint
    assert make_and_publish(app.services.acting_as("cron:checkpoint"), app.signing_key, skip_if_idle=True)
    with page.expect_download() as download:
        page.evaluate("document.getElementById('export-fetch').click()")
    package = tmp_path / "package.zip"
    download.value.save_as(package)
    report = verify_package(package, anchors=app.anchors())
    assert report.ok, report.problems
    assert report.signers == sorted(app.anchors().trusted)  # the key `init` pinned
