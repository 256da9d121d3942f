"""Protected records on a real server, for an account with the grant and one without: pages
and web exports show a protected item's number and "protected" only to the one without."""

from __future__ import annotations

import hashlib
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archive.checkpoints import make_and_publish
from archive.derivatives import store_derivative
from archive.encryption import generate_kek
from archive.links import link_recordings
from catalog.checkpoint import Anchors, fingerprint
from catalog.users import add_user
from tests.verify.web_server import Browser, LiveServer
from verify.export import ExportResult, export_case
from verify.package import verify_package
from verify.web import WebContext, create_app

PASSWORD = "a long enough password"
SECRET_NAME = "秘密询问录像.MP4"
SECRET_OFFICER = "JX9931"
SECRET_DEVICE = "B7766554"


@pytest.fixture
def protected_site(env):
    now = datetime.now(UTC)
    with env.sessions.begin() as s:
        add_user(s, "aud", "auditor", PASSWORD, protected=False, now=now)
        add_user(s, "leg", "legal", PASSWORD, protected=True, now=now)
    case = env.case("开城管罚立〔2020〕42号")
    kek = generate_kek()
    plain = env.recording(1)
    secret = env.recording(
        2,
        protected=True,
        kek=kek,
        original_name=SECRET_NAME,
        officer=SECRET_OFFICER,
        device=SECRET_DEVICE,
    )
    (pair_a, pair_b) = link_recordings(env.as_("r"), case.number, [plain.archive_no, secret.archive_no])
    proxy = env.tmp / "secret-proxy.mp4"
    proxy_bytes = b"\x00\x00\x00\x18ftypmp42 secret proxy " + bytes(range(256)) * 40
    proxy.write_bytes(proxy_bytes)
    store_derivative(
        env.as_("station:ST01", kek=kek),
        secret,
        kind="proxy",
        path=proxy,
        ext="mp4",
        content_type="video/mp4",
        method="remux",
    )
    services = env.as_("web", kek=kek)
    key = Ed25519PrivateKey.generate()

    def exporter(
        case_key: str, folder: Path, *, reason: str, actor: str, include_protected: bool
    ) -> ExportResult:
        # As ``config.app.App.export_for_web`` does: no signing key on the web server.
        return export_case(
            services.acting_as(actor),
            case_key,
            folder,
            signing_key=None,
            reason=reason,
            with_proxies=True,
            zip_it=True,
            include_protected=include_protected,
        )

    ctx = WebContext(
        services=services,
        zone=env.policy.zone,
        secret=b"k" * 32,
        language="zh",
        on_site_types={"询问笔录"},
        export=exporter,
        exports=env.tmp / "exports",
    )
    server = LiveServer(create_app(ctx))
    yield {
        "server": server,
        "case": case,
        "item": pair_a[1],
        "secret_item": pair_b[1],
        "secrets": {
            "original name": SECRET_NAME,
            "digest": secret.sha256,
            "officer": SECRET_OFFICER,
            "device": SECRET_DEVICE,
            "storage key": secret.storage_key,
            "archive number": secret.archive_no,
        },
        "proxy": proxy_bytes,
        "timer": lambda: make_and_publish(env.as_("cron:checkpoint"), key, skip_if_idle=True),
        "trust": Anchors({fingerprint(key.public_key())}),
        # A run of the protected recording's bytes (``tests.conftest.Env.recording``).
        "original": hashlib.sha256(b"2").digest() * 8,
        "tmp": env.tmp,
    }
    server.stop()


def _pages(browser: Browser, site) -> dict[str, str]:
    key = quote(site["case"].case_key)
    paths = {
        "case": f"/cases/{key}",
        "item": f"/items/{site['secret_item']}",
        "other item": f"/items/{site['item']}",
        "gaps": f"/cases/{key}/gaps",
        # A part of the number lists the cases (the whole number opens the case).
        "search": "/?q=" + quote(site["case"].number[-4:]),
    }
    pages = {}
    for name, path in paths.items():
        status, _, body = browser.request("GET", path)
        assert status == 200, (name, status)
        pages[name] = body.decode("utf-8")
    return pages


def test_a_protected_item_shows_its_number_and_protected_only_without_the_grant(protected_site) -> None:
    site = protected_site
    aud, leg = Browser(site["server"].base), Browser(site["server"].base)
    assert aud.login("aud", PASSWORD) == 303 and leg.login("leg", PASSWORD) == 303

    refused = _pages(aud, site)
    for name, page in refused.items():
        for what, value in site["secrets"].items():
            assert value not in page, f"the {what} of the protected item is on the {name} page"
        assert "受保护记录" in page or name in ("search", "other item")
    assert site["secret_item"] in refused["case"] and site["secret_item"] in refused["item"]

    granted = _pages(leg, site)
    for what, value in site["secrets"].items():
        assert any(value in page for page in granted.values()), f"the {what} is missing for the grant"
    assert site["secrets"]["officer"] in granted["case"] and site["secrets"]["officer"] in granted["gaps"]
    assert "缺少文书记录" in granted["gaps"] and "<td>document</td>" not in granted["gaps"]
    assert site["secrets"]["original name"] in granted["item"]
    # The item page lists none of its custody rows.
    assert 'class="action"' not in refused["item"] and 'class="action"' in granted["item"]


def test_search_by_officer_does_not_lead_to_cases_through_protected_recordings(protected_site) -> None:
    site = protected_site
    aud, leg = Browser(site["server"].base), Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    leg.login("leg", PASSWORD)
    link = f'href="/cases/{site["case"].case_key}"'
    # The officer is in one case: the grant goes straight to it; without it, nothing leads there.
    status, headers, _ = leg.request("GET", f"/?q={SECRET_OFFICER}")
    assert status == 303 and headers["location"] == f"/cases/{site['case'].case_key}"
    for number in (SECRET_OFFICER, SECRET_DEVICE, site["secrets"]["archive number"]):
        status, _, body = aud.request("GET", f"/?q={number}")
        assert status == 200 and link not in body.decode(), number
        assert site["secret_item"] not in body.decode(), number


def _export(browser: Browser, site, into: Path, *, others: tuple[Browser, ...] = ()) -> Path:
    """Export from the page: pending until the curator's timer signs a checkpoint, then fetched."""
    status, _, body = browser.request(
        "POST", f"/cases/{quote(site['case'].case_key)}/export", {"csrf": browser.csrf, "reason": "court"}
    )
    assert status == 202 and 'id="export-pending"' in body.decode()
    event = int(re.search(r'href="/exports/(\d+)"', body.decode()).group(1))
    assert browser.request("GET", f"/exports/{event}")[0] == 202  # no checkpoint yet
    site["timer"]()
    for other in others:  # another account never gets it, grant or not
        assert other.request("GET", f"/exports/{event}")[0] == 404
    status, _, body = browser.request("GET", f"/exports/{event}")
    assert status == 200
    into.write_bytes(body)
    assert browser.request("GET", f"/exports/{event}")[0] == 404  # served once, then gone
    return into


def test_a_web_export_without_the_grant_withholds_the_protected_item(protected_site) -> None:
    site = protected_site
    aud, leg = Browser(site["server"].base), Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    leg.login("leg", PASSWORD)
    secret = site["secret_item"]

    withheld = _export(aud, site, site["tmp"] / "aud.zip", others=(leg,))
    assert verify_package(withheld, anchors=site["trust"]).ok
    with zipfile.ZipFile(withheld) as zf:
        names = zf.namelist()
        contents = {n: zf.read(n) for n in names}
    assert not [n for n in names if Path(n).name.startswith(secret)], names
    for name, data in contents.items():
        assert site["proxy"][:64] not in data, f"the protected proxy is in {name}"
        assert site["original"] not in data, f"the protected recording is in {name}"
        text = data.decode("utf-8", errors="replace")
        for what, value in site["secrets"].items():
            assert value not in text, f"the {what} is in {name}"
    case_json = next(v for n, v in contents.items() if n.endswith("data/case.json")).decode()
    assert f'"item_no": "{secret}"' in case_json and '"withheld": "protected"' in case_json

    full = _export(leg, site, site["tmp"] / "leg.zip", others=(aud,))
    assert verify_package(full, anchors=site["trust"]).ok
    with zipfile.ZipFile(full) as zf:
        names = zf.namelist()
        proxy = next(n for n in names if n.endswith(f"proxies/{secret}-proxy.mp4"))
        assert zf.read(proxy) == site["proxy"]
        original = zf.read(next(n for n in names if n.endswith(f"originals/{secret}.mp4")))
        assert site["original"] in original
        assert SECRET_NAME in zf.read(next(n for n in names if n.endswith("data/case.json"))).decode()
