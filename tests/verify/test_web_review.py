"""An auditor replays a whole case in a real headless Chromium (Debian's, driven by Playwright).

The case: two officers' recordings made by real ffmpeg, overlapping in time, ingested by the
real pipeline (posters, contact sheets, proxies); written records as PDFs with Chinese text
(one on-site record with no recording near it: the planted gap); a protected record. The
server is the real app on uvicorn with media links that live three seconds, so that renewal
happens while the tests watch. Screenshots go to the test run's output folder
(``EVIDENCE_SCREENSHOTS``, else the run's temporary folder), which the README's pictures come from.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from archive.documents import NewDocument, store_document
from archive.holds import set_hold
from archive.links import link_recordings
from catalog import custody, users
from catalog.models import Derivative, DocumentPage, Recording
from catalog.users import add_user
from catalog.verification import mark_verified
from tests import synthetic
from tests.conftest import TEST_PASSWORD_COST
from tests.verify.web_server import Browser, LiveServer

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
ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2020, 11, 5, 9, 30, 0, tzinfo=ZONE)
LINK_SECONDS = 3


def _wait(page, condition: str, timeout: float = 20.0) -> None:
    """Polls with ``evaluate`` (``wait_for_function`` evaluates a string, which the pages'
    Content-Security-Policy without 'unsafe-eval' refuses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("EVIDENCE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    from archive.cases import open_case
    from catalog.cases import NewCase
    from config.app import App
    from config.settings import load_settings
    from verify.web import create_app

    tmp = tmp_path_factory.mktemp("review")
    inbox = tmp / "inbox"
    inbox.mkdir()
    # Officer JX0227's camera from 09:30:00 for 12 s; officer JX0310's from 09:30:04 for 12 s.
    a = synthetic.make_video(
        inbox / "TA00716_JX0227_20201105093000.mp4", seconds=12, bitrate="3M", keyint=15, tone=440
    )
    b = synthetic.make_video(
        inbox / "TB00817_JX0310_20201105093004.mp4", seconds=12, size="320x180", keyint=15, tone=660
    )
    for made in (a, b):  # written a minute ago: stable, so the scan does not wait for them
        os.utime(made, (time.time() - 60, time.time() - 60))
    settings, _ = load_settings(
        None,
        {
            "EVIDENCE_DATA_DIR": str(tmp / "data"),
            "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp / 'catalog.sqlite3'}",
            "EVIDENCE_UNIT": "KZCG",
        },
    )
    app = App(settings, actor="station:ST01")
    app.init()
    archived = app.pipeline("ST01").scan([inbox]).archived
    assert len(archived) == 2, archived
    clerk = app.services.acting_as("clerk")
    case = open_case(
        clerk,
        NewCase(number="开城管罚立〔2020〕42号", unit="KZCG", opened_on=START.date(), title="占道经营"),
    )
    pairs = dict(link_recordings(clerk, case.number, sorted(archived)))
    types = list(settings.documents.types)
    documents = {}
    for name, doc_type, moment, officer, protected in [
        ("inspection", "现场检查（勘验）笔录", START + timedelta(seconds=5), "JX0227", False),
        # Two hours later and no recording near it: the planted gap.
        ("inquiry", "询问笔录", START + timedelta(hours=2), "JX0310", False),
        ("secret", "调查笔录", START + timedelta(minutes=1), "JX0227", True),
    ]:
        pdf = synthetic.make_pdf(
            tmp / f"{name}.pdf",
            doc_type,
            [
                f"案号：{case.number}",
                f"时间：{moment:%Y年%m月%d日 %H时%M分}",
                f"执法人员：{officer}",
                "当事人：张某",
            ],
        )
        item, _doc = store_document(
            clerk,
            NewDocument(
                case=case.number,
                path=pdf,
                doc_type=doc_type,
                doc_date=moment,
                officer=officer,
                protected=protected,
            ),
            doc_types=types,
        )
        documents[name] = item.item_no
    users.set_cost(TEST_PASSWORD_COST)  # App() set the settings' cost; accounts here are cheap
    # A hold and a verification, as the table shows them.
    set_hold(app.services.acting_as("legal"), documents["inquiry"], reason="行政复议")
    with app.sessions.begin() as s:
        mark_verified(s, at=datetime.now(UTC), archive_nos=[a_archive := sorted(archived)[0]])
    now = datetime.now(UTC)
    with app.sessions.begin() as s:
        add_user(s, "auditor1", "auditor", PASSWORD, protected=True, now=now)
        add_user(s, "auditor2", "auditor", PASSWORD, protected=False, now=now)
    web = dataclasses.replace(app.web_context(), link_seconds=LINK_SECONDS, media_chunk_bytes=128 * 1024)
    users.set_cost(TEST_PASSWORD_COST)  # the web context set the settings' cost (2^17) again
    server = LiveServer(create_app(web))
    with app.sessions() as s:
        recordings = {r.archive_no: r for r in s.execute(select(Recording)).scalars()}
        proxies = {
            d.recording_id: d.sha256
            for d in s.execute(
                select(Derivative).where(Derivative.kind == "proxy", Derivative.status == "ok")
            ).scalars()
        }
    officer_a = {r.original_name: n for n, r in recordings.items()}
    yield {
        "base": server.base,
        "app": app,
        "case": case,
        "documents": documents,
        "video_a": pairs[officer_a[a.name]],
        "video_b": pairs[officer_a[b.name]],
        "archive_a": officer_a[a.name],
        # H.264 and AAC in MP4: browsers play the original as it is, and no proxy is made.
        "plays_a": proxies.get(recordings[officer_a[a.name]].id),
        "original_a": recordings[officer_a[a.name]].sha256,
        "verified": pairs[a_archive],
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


def signed_in(chromium, review, name: str = "auditor1"):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(review["base"] + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def no_tofu(page) -> None:
    """Every Chinese character on the page is drawn from a font that has it: its picture in the
    page's own font differs from the missing-glyph box (what a character no font has becomes,
    here a private-use one)."""
    found = page.evaluate(
        """() => {
          const family = getComputedStyle(document.body).fontFamily;
          const canvas = document.createElement('canvas');
          canvas.width = canvas.height = 40;
          const c = canvas.getContext('2d', { willReadFrequently: true });
          const picture = ch => {
            c.clearRect(0, 0, 40, 40);
            c.font = '28px ' + family;
            c.fillText(ch, 4, 32);
            return Array.from(c.getImageData(0, 0, 40, 40).data).join(',');
          };
          const box = picture('\ue000');
          const text = document.body.innerText.replace(/[^\u3000-\u9fff\uff00-\uffef]/g, '');
          const chars = Array.from(new Set(text));
          return [chars.length, chars.filter(ch => picture(ch) === box)];
        }"""
    )
    assert found[0] > 10 and found[1] == [], found


def test_the_start_page_lists_the_case_and_an_archive_number_opens_its_item(review, chromium, shots) -> None:
    page = signed_in(chromium, review)
    assert page.url.rstrip("/") == review["base"]
    assert review["case"].number in page.inner_text("#case-list")
    no_tofu(page)
    page.screenshot(path=str(shots / "start-page.png"), full_page=True)
    page.fill("input[name=q]", review["archive_a"])
    page.click("#search-form button")
    assert page.inner_text("#item-no") == review["video_a"]
    # What plays is named, with the digest of that very object.
    assert review["plays_a"] is None
    assert page.inner_text("#plays-source") == "原始文件"
    assert page.inner_text("#plays-digest") == review["original_a"]
    assert page.inner_text("#duration") == "0:00:12"
    _wait(page, "document.getElementById('wall-clock').textContent !== ''")
    assert page.inner_text("#wall-clock").startswith("2020-11-05 09:30:00")
    page.select_option("#speed", "2")
    assert page.evaluate("document.getElementById('player').playbackRate") == 2
    page.click("#frame-forward")
    page.click("#frame-forward")
    _wait(page, "Math.abs(document.getElementById('player').currentTime - 2/15) < 0.01")
    # A tile of the contact sheet jumps to the time its keyframe was sought at: keyframes
    # every second here, tiles sought at 0.6, 1.8, ... 11.4 s, so the last tile shows the
    # keyframe at 11 s and jumps to 11.4 s, the first shows 0 s and jumps to 0.6 s.
    _wait(
        page, "document.getElementById('sheet').complete && document.getElementById('sheet').naturalWidth > 0"
    )
    box = page.locator("#sheet").bounding_box()
    page.locator("#sheet").click(position={"x": 5, "y": 5})
    assert 0 <= page.evaluate("document.getElementById('player').currentTime") < 1.0
    page.locator("#sheet").click(position={"x": box["width"] - 5, "y": box["height"] - 5})
    assert 11.0 <= page.evaluate("document.getElementById('player').currentTime") < 12.0
    # The wall clock follows the playhead (09:30:00 plus the position).
    _wait(page, "document.getElementById('wall-clock').textContent >= '2020-11-05 09:30:08'")
    assert page.inner_text("#wall-clock") < "2020-11-05 09:30:13"
    no_tofu(page)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "item-page.png"))
    page.close()


def test_the_time_axis_shows_every_item_and_the_planted_gap(review, chromium, shots) -> None:
    page = signed_in(chromium, review)
    page.goto(f"{review['base']}/cases/{review['case'].case_key}")
    drawn = set(page.eval_on_selector_all("#axis a.axis-item", "els => els.map(e => e.dataset.item)"))
    docs = review["documents"]
    assert drawn == {
        review["video_a"],
        review["video_b"],
        docs["inspection"],
        docs["inquiry"],
        docs["secret"],
    }
    shaded = page.eval_on_selector_all("#axis g.gap", "els => els.map(e => e.dataset.item)")
    assert shaded == [docs["inquiry"]]
    # Each row: hold with its reason, verification with its date, duration as h:mm:ss.
    held = page.inner_text(f"#row-{docs['inquiry']}")
    assert "保全中: 行政复议" in held
    verified = page.inner_text(f"#row-{review['verified']}")
    assert "完好" in verified and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", verified)
    assert "0:00:12" in verified
    explained = page.inner_text("#gap-list")
    assert docs["inquiry"] in explained and "询问笔录" in explained and "JX0310" in explained
    # Times are local (Asia/Shanghai): the ticks of the whole case run through the morning.
    ticks = page.eval_on_selector_all("#axis .tick-label", "els => els.map(e => e.textContent)")
    assert (
        ticks and all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", t) for t in ticks) and "09:30" <= ticks[0] <= "11:30"
    )
    no_tofu(page)
    page.screenshot(path=str(shots / "case-page.png"), full_page=True)
    # Zoomed in to minutes around the recordings, the gap is out of view and the bars are wide.
    page.goto(f"{review['base']}/cases/{review['case'].case_key}?at=2020-11-05T09:30:08&span=60")
    assert page.eval_on_selector_all("#axis g.gap", "els => els.length") == 0
    width = page.evaluate(
        f"document.querySelector('#axis a[data-item=\"{review['video_a']}\"] rect').getAttribute('width')"
    )
    assert float(width) > 150
    page.click("#zoom-out")
    assert "span=240" in page.url
    page.screenshot(path=str(shots / "case-axis-zoomed.png"), full_page=False)
    page.close()


def _positions(page) -> tuple[list[float], float]:
    """Each playing stream's wall-clock time at its playhead, and the clock's, in ms (read at
    one moment)."""
    return page.evaluate(
        """() => [Array.from(document.querySelectorAll('#sync figure.stream:not(.idle)')).map(
                     f => Number(f.dataset.startMs)
                          + f.querySelector('.sync-player').currentTime * 1000),
                  window.evidenceSync.now()]"""
    )


def test_two_cameras_play_on_one_clock_within_a_fifth_of_a_second_after_a_seek(
    review, chromium, shots
) -> None:
    page = signed_in(chromium, review)
    page.goto(f"{review['base']}/cases/{review['case'].case_key}")
    assert page.eval_on_selector_all("#sync figure.stream", "els => els.length") == 2
    _wait(page, "Array.from(document.querySelectorAll('.sync-player')).every(v => v.readyState >= 1)")
    start_ms = int(START.timestamp() * 1000)
    for seek_to in (5.0, 9.5, 6.0):
        page.evaluate(f"window.evidenceSync.seek({start_ms + seek_to * 1000})")
        page.evaluate("window.evidenceSync.play()")
        time.sleep(1.2)
        positions, clock = _positions(page)
        assert len(positions) == 2, positions
        assert max(positions) - min(positions) < 200, (seek_to, positions)
        assert all(abs(p - clock) < 200 for p in positions), (seek_to, positions, clock)
        assert clock > start_ms + seek_to * 1000 + 500  # the clock runs
    page.screenshot(path=str(shots / "case-sync.png"), full_page=False)
    page.evaluate("window.evidenceSync.pause()")
    time.sleep(1.0)  # each stream reports its play on pause
    with review["app"].sessions() as s:
        plays = {
            e.subject
            for e in custody.events(s)
            if e.action == "played" and e.actor == "web:auditor1" and e.details.get("watched_ms", 0) > 0
        }
    assert {review["video_a"], review["video_b"]} <= plays
    page.close()


def test_a_document_page_shows_beside_the_video(review, chromium, shots) -> None:
    page = signed_in(chromium, review)
    page.goto(f"{review['base']}/cases/{review['case'].case_key}")
    page.click(f'#axis a[data-item="{review["video_a"]}"]')
    _wait(
        page,
        "!document.getElementById('viewer').hidden"
        " && document.getElementById('viewer-video').readyState >= 1",
    )
    page.click(f'#axis a[data-item="{review["documents"]["inspection"]}"]')
    _wait(page, "document.querySelectorAll('#doc-pages img.doc-page').length == 2")
    _wait(
        page,
        "Array.from(document.querySelectorAll('#doc-pages img'))"
        ".every(i => i.complete && i.naturalWidth > 500)",
    )
    assert page.url.endswith(review["case"].case_key)  # opened on the same page
    video, panel = page.locator("#viewer-video").bounding_box(), page.locator("#doc-panel").bounding_box()
    assert panel["x"] >= video["x"] + video["width"] - 1, (video, panel)  # beside, not below
    page.evaluate("document.getElementById('viewer-video').currentTime = 3")
    page.locator("#review").screenshot(path=str(shots / "case-document-beside-video.png"))
    with review["app"].sessions() as s:
        pages = s.execute(select(DocumentPage)).scalars().all()
        assert {p.page for p in pages} >= {1, 2} and all(p.storage_key.endswith(".png") for p in pages)
        viewed = [
            e for e in custody.events(s, subject=review["documents"]["inspection"]) if e.action == "viewed"
        ]
    assert viewed and viewed[-1].details["page"] == "viewer"
    page.close()


def test_an_expired_link_is_renewed_at_the_same_position(review, chromium) -> None:
    page = signed_in(chromium, review)
    page.goto(f"{review['base']}/items/{review['video_a']}")
    url = page.get_attribute("#player", "src")
    # Only the start is fetched (preload="metadata", answers of 128 KiB); then the link expires.
    _wait(page, "document.getElementById('player').readyState >= 1")
    time.sleep(LINK_SECONDS + 0.5)
    # Playing from a part not fetched yet: the player asks again with the expired link, is
    # refused, and the page renews the link and goes on from there.
    page.evaluate("(p => { p.currentTime = 10.5; p.play(); })(document.getElementById('player'))")
    _wait(page, "Number(document.getElementById('player').dataset.renewals || 0) >= 1", timeout=15)
    _wait(page, "document.getElementById('player').currentTime > 10.6")
    assert page.evaluate("document.getElementById('player').error") is None
    assert page.evaluate("document.getElementById('player').currentTime") < 12.1  # not from the start
    assert page.get_attribute("#player", "src") != url
    # The expired link copied out of the page stays dead; the renewal was recorded.
    browser = Browser(review["base"])
    browser.login("auditor1", PASSWORD)
    assert browser.request("GET", url, headers={"Range": "bytes=0-99"})[0] == 403
    with review["app"].sessions() as s:
        renewals = [
            e for e in custody.events(s, subject=review["video_a"]) if e.details.get("page") == "renew"
        ]
    assert renewals and renewals[-1].actor == "web:auditor1"
    page.close()


def test_a_review_longer_than_many_link_lifetimes_plays_through_without_an_error(review, chromium) -> None:
    # Links live three seconds here (five minutes by default): the twelve-second recording
    # outlives four of them, as an hour of review outlives twelve; the player asks for a new
    # one whenever it needs more bytes, goes on from where it was, and shows nothing.
    page = signed_in(chromium, review)
    # Over a slow network: each media answer (128 KiB here) arrives a tenth of a second late,
    # so fetching the 4.5 MB recording takes longer than a link lives, however fast this
    # machine is (a fast one would otherwise buffer all of it on the first link).
    page.route("**/media/**", lambda route: (time.sleep(0.1), route.continue_()))
    page.goto(f"{review['base']}/items/{review['video_a']}")
    page.evaluate(
        """(p => {
            window.seen = [];
            p.addEventListener("timeupdate", () => window.seen.push(p.currentTime));
            p.muted = true;
            p.play();
        })(document.getElementById('player'))"""
    )
    _wait(page, "document.getElementById('player').ended", timeout=60)
    player = "document.getElementById('player')"
    assert page.evaluate(f"{player}.error") is None
    assert page.evaluate(f"{player}.dataset.renewal") is None  # never gave up
    assert int(page.evaluate(f"{player}.dataset.renewals || 0")) >= 1
    seen = page.evaluate("window.seen")
    assert all(b >= a - 0.3 for a, b in zip(seen, seen[1:], strict=False)), "playback went back"
    assert seen[-1] > 11.5
    page.close()


def test_an_auditor_without_the_grant_sees_no_protected_metadata(review, chromium, shots) -> None:
    page = signed_in(chromium, review, "auditor2")
    secret = review["documents"]["secret"]
    page.goto(f"{review['base']}/cases/{review['case'].case_key}")
    drawn = page.eval_on_selector_all("#axis a.axis-item", "els => els.map(e => e.dataset.item)")
    assert secret not in drawn
    text = page.inner_text("main")
    assert secret in text and "受保护记录" in text and "调查笔录" not in text
    page.screenshot(path=str(shots / "case-page-without-grant.png"), full_page=True)
    for path in (f"/items/{secret}/link", f"/items/{secret}/pages/1"):
        assert page.request.get(review["base"] + path).status == 403, path
    page.goto(f"{review['base']}/items/{secret}")
    assert "调查笔录" not in page.inner_text("main") and "doc-page" not in page.content()
    page.close()
