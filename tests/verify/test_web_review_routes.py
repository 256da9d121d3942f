"""The review routes on a real HTTP server, attacked: other accounts, no grant, no session,
links of another account, odd arguments; and the start page's number search."""

import json
import re
from datetime import timedelta
from urllib.parse import quote

import pytest

from archive.policy import ArchivePolicy
from catalog import custody, schema
from catalog.db import make_engine, session_factory
from tests.conftest import ZONE, Env
from tests.verify.test_web import PASSWORD, site  # noqa: F401 - the shared fixture
from tests.verify.web_server import Browser

NEW_ROUTES = ["link", "pictures/poster", "pages/1"]


@pytest.fixture
def env(sqlite_url, local_store, tmp_path):
    """One catalog and store: the routes' rules do not depend on them (the access matrix in
    test_web.py walks every route on both catalogs and both stores)."""
    engine = make_engine(sqlite_url)
    schema.upgrade(engine)
    yield Env(
        engine,
        session_factory(engine),
        local_store,
        tmp_path,
        ArchivePolicy(zone=ZONE, routine=(0, "days"), min_lock=timedelta(seconds=3)),
    )
    engine.dispose()


def signed_in(site, name: str) -> Browser:  # noqa: F811
    browser = Browser(site["server"].base)
    assert browser.login(name, PASSWORD) == 303
    return browser


def test_without_a_session_the_new_routes_answer_401(site) -> None:  # noqa: F811
    anonymous = Browser(site["server"].base)
    for route in NEW_ROUTES:
        status, _, body = anonymous.request("GET", f"/items/{site['item']}/{route}")
        assert status == 401, route
        assert site["item"].encode() not in body


def test_without_the_grant_a_protected_item_gives_no_link_picture_or_page(site) -> None:  # noqa: F811
    aud, leg = signed_in(site, "aud"), signed_in(site, "leg")
    for route in NEW_ROUTES:
        status, _, body = aud.request("GET", f"/items/{site['secret_item']}/{route}")
        assert status == 403, route
        assert b"/media/" not in body
    status, _, body = leg.request("GET", f"/items/{site['secret_item']}/link")
    answer = json.loads(body)
    # With the grant it is answered (this recording has nothing playable yet: no link).
    assert status == 200 and answer["item"] == site["secret_item"] and answer["kind"] == "video"
    assert answer["url"] is None and answer["source"] is None
    with site["env"].sessions() as s:
        refused = [e for e in custody.events(s) if e.action == "refused" and e.actor == "web:aud"]
    assert {e.details["route"] for e in refused} >= {"item_link", "item_picture", "document_page"}


def test_a_link_belongs_to_the_account_it_was_given_to(site) -> None:  # noqa: F811
    aud, adm = signed_in(site, "aud"), signed_in(site, "adm")
    status, _, body = aud.request("GET", f"/items/{site['item']}/link?for=renew")
    assert status == 200
    url = json.loads(body)["url"]
    assert adm.request("GET", url, headers={"Range": "bytes=0-9"})[0] == 403
    assert aud.request("GET", url, headers={"Range": "bytes=0-9"})[0] in (206, 302)
    # Each link handed out is on the record, as a view of the item for that purpose.
    with site["env"].sessions() as s:
        given = [e for e in custody.events(s, subject=site["item"]) if e.details.get("page") == "renew"]
    assert [e.actor for e in given] == ["web:aud"]


def test_odd_arguments_are_refused_cleanly(site) -> None:  # noqa: F811
    aud = signed_in(site, "aud")
    key = quote(site["case"].case_key)
    for path, status in [
        (f"/items/{site['item']}/link?for=everything", 400),
        (f"/items/{site['item']}/pictures/..%2f..%2fetc", 404),
        (f"/items/{site['item']}/pictures/proxy", 404),  # pictures only, not the proxy
        (f"/items/{site['item']}/pages/0", 404),
        (f"/items/{site['item']}/pages/-1", 404),
        (f"/items/{site['item']}/pages/x", 404),
        (f"/cases/{key}?at=yesterday&span=60", 400),
        (f"/cases/{key}?at=2020-11-05T09:30:00&span=-5", 400),
        (f"/cases/{key}?at=2020-11-05T09:30:00&span=nan", 400),
        ("/?status=deleted", 400),
        ("/?from=last+week", 400),
        ("/?page=two", 400),
    ]:
        got, _, body = aud.request("GET", path)
        assert got == status, (path, got)
        assert b"Traceback" not in body
    # A zoom beyond the case is simply the case; a page beyond the last is empty.
    assert aud.request("GET", f"/cases/{key}?at=2020-11-05T09:30:00&span=1e8")[0] == 200
    status, _, body = aud.request("GET", "/?page=999999999")
    assert status == 200 and site["case"].number.encode() not in body


def test_a_number_goes_straight_to_what_it_names(site) -> None:  # noqa: F811
    aud, leg = signed_in(site, "aud"), signed_in(site, "leg")
    case = site["case"]
    for q, where in [
        (case.number, f"/cases/{quote(case.case_key)}"),
        (case.case_key, f"/cases/{quote(case.case_key)}"),
        (site["item"], f"/items/{site['item']}"),
    ]:
        status, headers, _ = aud.request("GET", "/?q=" + quote(q))
        assert status == 303 and headers["location"] == where, q
    # The protected recording's archive number: straight to its item with the grant, nowhere without.
    _, _, page = leg.request("GET", f"/items/{site['secret_item']}")
    archive_no = re.search(rb"KZCG-\d{8}-ST01-\d{4}", page).group(0).decode()
    status, headers, _ = leg.request("GET", "/?q=" + archive_no)
    assert status == 303 and headers["location"] == f"/items/{site['secret_item']}"
    status, _, body = aud.request("GET", "/?q=" + archive_no)
    assert status == 200 and site["secret_item"].encode() not in body and case.case_key.encode() not in body


def test_media_answers_come_in_bounded_pieces(site) -> None:  # noqa: F811
    site["ctx"].media_chunk_bytes = 1000
    aud = signed_in(site, "aud")
    _, _, body = aud.request("GET", f"/items/{site['item']}/link")
    url = json.loads(body)["url"]
    status, headers, body = aud.request("GET", url, headers={"Range": "bytes=0-"})
    if status == 302:
        return  # S3: the store answers the presigned URL itself
    assert status == 206 and len(body) == 1000 and headers["Content-Range"].startswith("bytes 0-999/")
    status, _, body = aud.request("GET", url, headers={"Range": "bytes=1000-"})
    assert status == 206 and len(body) == 1000
    status, _, whole = aud.request("GET", url)
    assert status == 200 and len(whole) > 1000  # without a range: the whole object
