"""`evidence serve` as an administrator runs it: it says where it listens and where users reach
it, answers /healthz for probes (and stops answering "ok" when the catalog goes away), and
behind a TLS-terminating proxy (an https public URL) sets Secure session cookies."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import ROOT, run_evidence
from tests.servers.rgw import free_port
from tests.servers.tcp_proxy import TcpProxy
from tests.test_packaging import healthcheck_command

PASSWORD = "a long enough password"


def start_serve(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the server; returns it and its first log line (the one naming the addresses)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")} | env
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.cli", "--log-format", "json", "serve", *args],
        env=full,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    return proc, line


def wait_http(port: int, path: str = "/healthz", timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return request(port, "GET", path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def request(
    port: int, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def behind_proxy(tmp_path: Path, pg_url: str) -> Iterator[dict]:
    """An installation on PostgreSQL reached through a TCP forwarder the test can cut, served
    on a free port with an https public URL (a TLS proxy in front)."""
    url = make_url(pg_url)
    forwarder = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    port = free_port()
    config = tmp_path / "evidence.toml"
    config.write_text(f'[web]\nport = {port}\npublic_url = "https://evidence.example.org"\n')
    env = {
        "EVIDENCE_CONFIG": str(config),
        "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": url.set(port=forwarder.port).render_as_string(hide_password=False),
    }
    assert run_evidence("init", env=env).returncode == 0
    added = run_evidence(
        "user", "add", "aud", "--role", "auditor", "--password-stdin", env=env, input=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    proc, line = start_serve(env)
    try:
        yield {"proc": proc, "line": line, "port": port, "forwarder": forwarder}
    finally:
        stop(proc)
        forwarder.close()


@pytest.mark.postgres
def test_serve_says_where_it_is_answers_probes_and_sets_secure_cookies(behind_proxy) -> None:
    port = behind_proxy["port"]
    said = json.loads(behind_proxy["line"])
    assert said["logger"] == "evidence.serve" and said["level"] == "info"
    assert said["listening"] == f"http://127.0.0.1:{port}/"
    assert said["public_url"] == "https://evidence.example.org/"
    assert said["secure_cookies"] is True

    status, headers, body = wait_http(port)
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["cache-control"] == "no-store"
    assert request(port, "POST", "/healthz")[0] == 405

    # The proxy speaks plain HTTP to the server; the cookie is Secure all the same.
    status, headers, _ = request(
        port,
        "POST",
        "/login",
        body=f"name=aud&password={PASSWORD.replace(' ', '+')}&next=/",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert cookie.startswith("evidence_session=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie

    # The catalog goes away: probes see it; it comes back: so do they.
    behind_proxy["forwarder"].cut()
    status, _, body = request(port, "GET", "/healthz")
    assert (status, json.loads(body)) == (503, {"status": "unavailable"})
    behind_proxy["forwarder"].restore()
    deadline = time.monotonic() + 20
    while request(port, "GET", "/healthz")[0] != 200:
        assert time.monotonic() < deadline, "/healthz did not recover with the catalog"
        time.sleep(0.2)


def test_without_a_public_url_the_log_names_the_listening_address(tmp_path: Path) -> None:
    env = {"EVIDENCE_DATA_DIR": str(tmp_path / "data")}
    assert run_evidence("init", env=env).returncode == 0
    port = free_port()
    proc, line = start_serve(env, "--port", str(port))
    try:
        said = json.loads(line)
        assert said["listening"] == f"http://127.0.0.1:{port}/"
        assert said["public_url"] == f"http://127.0.0.1:{port}/"
        assert said["secure_cookies"] is False
        assert wait_http(port)[0] == 200
        # The Dockerfile's HEALTHCHECK, as the container runs it (port aside).
        check = [part.replace(":8080/", f":{port}/") for part in healthcheck_command()]
        assert check[0] == "python"
        assert subprocess.run([sys.executable, *check[1:]], timeout=30).returncode == 0
    finally:
        stop(proc)
    check_dead = subprocess.run([sys.executable, *check[1:]], capture_output=True, timeout=30)
    assert check_dead.returncode != 0
