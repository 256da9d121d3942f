"""`evidence serve` as an administrator runs it: it says where it listens and where users reach
it, answers /healthz for probes (and stops answering "ok" when the catalog goes away), and
behind a TLS-terminating proxy (an https public URL) sets Secure session cookies."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import ROOT, invoke_evidence
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


NGINX_EXAMPLE = ROOT / "config" / "nginx.example.conf"


@contextlib.contextmanager
def nginx_in_front(upstream: int, tmp: Path) -> Iterator[tuple[int, int]]:
    """Debian's nginx running config/nginx.example.conf on loopback ports, with a self-signed
    certificate; yields (https port, http port)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx missing: .ci/system-deps.sh --test installs it"
    base = tmp / "nginx"
    base.mkdir()
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=evidence.example.org", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    https_port, http_port = free_port(), free_port()
    site = NGINX_EXAMPLE.read_text()
    for old, new in [
        ("    listen [::]:80;\n", ""),
        ("    listen [::]:443 ssl http2;\n", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("/etc/ssl/certs/evidence.example.org.pem", str(cert)),
        ("/etc/ssl/private/evidence.example.org.key", str(key)),
        ("127.0.0.1:8080", f"127.0.0.1:{upstream}"),
    ]:
        assert old in site, old
        site = site.replace(old, new)
    (base / "evidence.conf").write_text(site)
    temps = "\n".join(
        f"  {kind}_temp_path {base}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (base / "nginx.conf").write_text(
        f"pid {base}/nginx.pid;\nerror_log {base}/error.log;\nworker_processes 1;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{\n  access_log {base}/access.log;\n{temps}\n  include {base}/evidence.conf;\n}}\n"
    )
    checked = subprocess.run([nginx, "-t", "-c", str(base / "nginx.conf")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen([nginx, "-c", str(base / "nginx.conf"), "-g", "daemon off;"])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                request_tls(https_port, "GET", "/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, (base / "error.log").read_text()
                time.sleep(0.1)
        yield https_port, http_port
    finally:
        stop(proc)


def request_tls(
    port: int, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the test's own certificate
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        conn.request(method, path, body=body, headers={"Host": "evidence.example.org", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def install_with_auditor(env: dict[str, str]) -> None:
    """`evidence init` and an auditor account "aud"."""
    assert invoke_evidence("init", env=env).exit_code == 0
    added = invoke_evidence(
        "user", "add", "aud", "--role", "auditor", "--password-stdin", env=env, input=PASSWORD
    )
    assert added.exit_code == 0, added.stderr


def custody_events(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("select count(*) from custody_events")).scalar_one()
    finally:
        engine.dispose()


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
    install_with_auditor(env)
    proc, line = start_serve(env)
    try:
        yield {
            "proc": proc,
            "line": line,
            "port": port,
            "forwarder": forwarder,
            "tmp": tmp_path,
            "events": lambda: custody_events(pg_url),
        }
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
    # Probes are not accesses to evidence: no custody event, whatever they send along.
    events = behind_proxy["events"]()
    for path, extra in [
        ("/healthz?case=<script>", {}),
        ("/healthz", {"Cookie": "evidence_session=forged.token"}),
        ("/healthz", {"X-Forwarded-For": "10.9.9.9"}),
    ]:
        status, _, body = request(port, "GET", path, headers=extra)
        assert (status, body) == (200, b'{"status":"ok"}'), path
    assert behind_proxy["events"]() == events

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

    # The shipped nginx example in front, terminating TLS, as the README installs it.
    with nginx_in_front(port, behind_proxy["tmp"]) as (https_port, http_port):
        status, headers, body = request_tls(https_port, "GET", "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["strict-transport-security"] == "max-age=31536000"
        status, headers, _ = request_tls(
            https_port,
            "POST",
            "/login",
            body=f"name=aud&password={PASSWORD.replace(' ', '+')}&next=/",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 303 and headers["location"] == "/" and "Secure" in headers["set-cookie"]
        status, headers, _ = request(http_port, "GET", "/cases/x", headers={"Host": "evidence.example.org"})
        assert status == 301 and headers["location"] == "https://evidence.example.org/cases/x"

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
    assert invoke_evidence("init", env=env).exit_code == 0
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


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _serves_pages(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"spawn_main" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    return False


def test_several_worker_processes_share_sessions_and_stop_together(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "evidence.toml"
    config.write_text(f"[web]\nport = {port}\nworkers = 3\n")
    env = {"EVIDENCE_CONFIG": str(config), "EVIDENCE_DATA_DIR": str(tmp_path / "data")}
    install_with_auditor(env)
    proc, _ = start_serve(env)
    try:
        assert wait_http(port)[0] == 200
        deadline = time.monotonic() + 30
        while len(workers := [p for p in _children(proc.pid) if _serves_pages(p)]) < 3:
            assert time.monotonic() < deadline, "three worker processes did not start"
            time.sleep(0.2)
        status, headers, _ = request(
            port,
            "POST",
            "/login",
            body=f"name=aud&password={PASSWORD.replace(' ', '+')}&next=/",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 303
        cookie = headers["set-cookie"].split(";", 1)[0]
        # Each request on a new connection, taken by whichever worker accepts it: the session
        # opened at one is good at all of them.
        assert {request(port, "GET", "/", headers={"Cookie": cookie})[0] for _ in range(12)} == {200}
    finally:
        stop(proc)
    assert proc.returncode == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
