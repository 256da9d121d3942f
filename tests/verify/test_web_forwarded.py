"""X-Forwarded-For is believed only from ``[web] trusted_proxies`` (issue 14, item 7), on a
server started with the options ``evidence serve`` uses."""

import threading
import time
from datetime import UTC, datetime

import pytest
import uvicorn

from catalog import custody
from catalog.users import add_user
from config.commands.web import SERVER_OPTIONS
from tests.servers.rgw import free_port
from tests.verify.web_server import Browser
from verify.web import WebContext, create_app

PASSWORD = "a long enough password"


@pytest.fixture
def serve(env):
    with env.sessions.begin() as s:
        add_user(s, "aud", "auditor", PASSWORD, protected=False, now=datetime.now(UTC))
    servers = []

    def start(trusted: tuple[str, ...]) -> str:
        ctx = WebContext(
            services=env.as_("web"), zone=env.policy.zone, secret=b"k" * 32, trusted_proxies=trusted
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(ctx), host="127.0.0.1", port=port, log_level="warning", **SERVER_OPTIONS
            )
        )
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "web server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.should_exit = True


def _attempts(base: str, count: int) -> list[int]:
    browser = Browser(base)
    return [
        browser.request(
            "POST",
            "/login",
            {"name": "aud", "password": "wrong guess", "next": "/"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )[0]
        for n in range(count)
    ]


def _failure_sources(env) -> set[str]:
    with env.sessions() as s:
        return {e.details["source"] for e in custody.events(s) if e.action == "login_failed"}


def test_rotating_forwarded_for_from_loopback_does_not_escape_throttling(serve, env) -> None:
    statuses = _attempts(serve(()), 8)
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert _failure_sources(env) == {"127.0.0.1"}  # no custody event names a spoofed source


def test_a_trusted_proxy_names_the_client(serve, env) -> None:
    statuses = _attempts(serve(("127.0.0.1",)), 8)
    assert set(statuses) == {401}  # eight clients, one failure each
    assert _failure_sources(env) == {f"203.0.113.{n}" for n in range(8)}
