"""Page latency of the web pages while a case export and a verification run.

Set-up (not timed): a data folder under ``--dir`` (default /var/tmp, on the disk) with the
settings' defaults: a local store and a SQLite catalog, or with ``--postgres`` a new database
on the local PostgreSQL (127.0.0.1:5432, trust auth), dropped at the end. One big recording
of ``--big-mb`` MB and ``--small`` small ones of ``--small-mb`` MB (incompressible bytes) are
archived as originals (``store_original``) and linked to one case, with ``--documents``
written records (two-page PDFs with Chinese text, at times among the recordings); one
auditor account is added. ``--small 199 --small-mb 0.2`` gives the case of 200 recordings the
auditors' review pages are measured on. The server is ``evidence serve`` as an administrator
starts it, with ``--workers`` processes (``[web] workers``, default 2), so that the clients do
not share its interpreter.

Measured: ``--clients`` client threads (``tests.verify.web_server.Browser``), each signed in
with its own session, open pages at random moments (a pause drawn from 0 to ``--pause`` s
before each), chosen at random: the start page (the newest cases, no search), a search by
text that lists the case, a search by an item number (answered by a redirect to the item),
the case page (its time axis, coverage gaps, synchronized players and item facts), the page of
a random item, a fresh media link of a random item (what a player asks for when its link
expired), or a page image of a random written record; each figure is the time until the
answer's last byte.

- idle: the clients alone for ``--idle-seconds``;
- export: then the same clients while one more client exports the case (``POST
  /cases/{key}/export``, which prepares the package; a checkpoint signed at once, as the
  curator's timer would; then ``GET /exports/{event}``, the zip read to its end) and another
  verifies the big item (``POST
  /items/{item}/verify``), both started at once, the big object dropped from the page cache
  first; pages started while the export ran (until the zip's last byte) are counted.

``--rounds`` rounds of both. Each item page adds a custody event to its item's log, which the
page lists, so idle and export alternate to see logs of about the same length.

Reported: pages counted, median and 95th percentile of each phase, and the ratio export /
idle; target: 95th percentile under 300 ms during the export. Before measuring, the run waits
(up to 10 minutes, unless ``--no-wait``) for the 1-minute load average to fall below 2.0.

    python -m bench.web_bench [--big-mb 500] [--small 4] [--small-mb 5] [--clients 20]
                              [--pause 1.0] [--idle-seconds 10] [--rounds 3] [--dir /var/tmp]
                              [--documents 10] [--workers 2] [--postgres] [--no-wait]
                              [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import ROOT, log, wait_for_quiet

MB = 1_000_000
UNIT, STATION = "KZCG", "ST01"
CASE_NUMBER = "开城管罚立〔2026〕1127号"
ACCOUNT, PASSWORD = "bench", "a long enough password"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_P95_MS = 300.0


# --- set-up ---------------------------------------------------------------------------------


def environment(folder: Path, database_url: str | None) -> dict[str, str]:
    env = {"EVIDENCE_DATA_DIR": str(folder / "data"), "EVIDENCE_UNIT": UNIT}
    if database_url:
        env["EVIDENCE_DATABASE_URL"] = database_url
    return env


def open_app(env: dict[str, str]):
    from config.app import App
    from config.settings import load_settings

    settings, _ = load_settings(None, env)
    return App(settings, actor=f"station:{STATION}")


def build_case(
    env: dict[str, str], folder: Path, big_mb: float, small: int, small_mb: float, documents: int = 0
) -> dict:
    """Archive the recordings, open the case, link them, add the account (not timed)."""
    from archive.cases import open_case
    from archive.digest import hash_file
    from archive.documents import NewDocument, store_document
    from archive.links import link_recordings
    from archive.originals import OriginalFacts, store_original
    from bench.fixity_bench import make_source
    from catalog.cases import NewCase
    from catalog.models import Recording
    from catalog.recordings import reserve_archive_number
    from catalog.users import add_user
    from tests.synthetic import make_pdf

    app = open_app(env)
    app.init()
    services = app.services
    numbers = []
    sizes = [big_mb] + [small_mb] * small
    for i, size_mb in enumerate(sizes):
        source = folder / f"A123456@2026112708{i:02d}000000.mp4"
        make_source(source, int(size_mb * MB))
        now = datetime.now(UTC)
        number = reserve_archive_number(
            app.engine, services.formats, services.policy.zone, unit=UNIT, station=STATION, now=now
        )
        facts = OriginalFacts(
            station=STATION,
            unit=UNIT,
            kind="video",
            original_name=source.name,
            content_type="video/mp4",
            start_time=now - timedelta(hours=2, minutes=i),
            duration_s=600.0,
            device="A123456",
            officer="JX0227",
        )
        store_original(services.at(now), source, hash_file(source), facts, archive_no=number)
        source.unlink()
        numbers.append(number)
    clerk = services.acting_as("clerk")
    case = open_case(
        clerk, NewCase(number=CASE_NUMBER, unit=UNIT, opened_on=datetime.now(UTC).date(), title="bench")
    )
    items = [item_no for _, item_no in link_recordings(clerk, case.number, numbers)]
    written = []
    for d in range(documents):
        pdf = make_pdf(
            folder / f"record-{d}.pdf",
            "现场检查（勘验）笔录",
            [f"案号：{CASE_NUMBER}", f"第 {d + 1} 份", "执法人员：JX0227"],
        )
        item, _doc = store_document(
            clerk,
            NewDocument(
                case=case.number,
                path=pdf,
                doc_type="现场检查（勘验）笔录",
                doc_date=datetime.now(UTC) - timedelta(hours=2, minutes=d * 7),
                officer="JX0227",
            ),
            doc_types=list(app.settings.documents.types),
        )
        written.append(item.item_no)
        pdf.unlink()
    with app.sessions.begin() as session:
        add_user(session, ACCOUNT, "auditor", PASSWORD, protected=False, now=datetime.now(UTC))
    with app.sessions() as session:
        keys = {r.archive_no: r.storage_key for r in session.query(Recording)}
    big_file = Path(app.store.root) / "objects" / keys[numbers[0]]
    app.close()
    return {
        "case_key": case.case_key,
        "items": items,
        "documents": written,
        "big_item": items[0],
        "big_file": str(big_file),
        "folder": str(folder),
    }


# --- the server, in a child process -----------------------------------------------------------


def start_server(env: dict[str, str], folder: Path, workers: int) -> tuple[subprocess.Popen, str]:
    """`evidence serve` as an administrator runs it, with ``workers`` processes."""
    from tests.servers.rgw import free_port

    port = free_port()
    config = folder / "evidence.toml"
    config.write_text(f"[web]\nport = {port}\nworkers = {workers}\n")
    full = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.cli", "serve"],
        cwd=ROOT,
        env=full | env | {"EVIDENCE_CONFIG": str(config)},
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return proc, base
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the web server did not start (status {proc.poll()})")
        time.sleep(0.2)


# --- clients ------------------------------------------------------------------------------------


def signed_in(base: str):
    from tests.verify.web_server import Browser

    browser = Browser(base)
    if browser.login(ACCOUNT, PASSWORD) != 303:
        raise RuntimeError("could not sign in")
    return browser


def read_streamed(browser, path: str, data: dict[str, str] | None = None) -> tuple[int, int, bytes]:
    """GET (or POST a form) and read the answer to its end, keeping only its first 64 KiB:
    (status, bytes, head)."""
    req = urllib.request.Request(
        browser.base + path,
        data=urllib.parse.urlencode(data).encode() if data is not None else None,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {},
    )
    try:
        with browser.opener.open(req, timeout=1800) as response:
            total, head = 0, b""
            while chunk := response.read(1 << 20):
                head = head or chunk[: 1 << 16]
                total += len(chunk)
            return response.status, total, head
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, len(body), body[: 1 << 16]


def checkpoint(env: dict[str, str]) -> None:
    """What the curator's timer does every 15 minutes: sign a checkpoint, so a pending export
    can be fetched."""
    from archive.checkpoints import make_and_publish

    app = open_app(env)
    try:
        make_and_publish(app.services.acting_as("cron:checkpoint"), app.signing_key, skip_if_idle=True)
    finally:
        app.close()


class Clients:
    """Client threads opening pages at random moments; each page: (start, seconds, status)."""

    def __init__(self, base: str, pages: list[str], count: int, pause: float) -> None:
        self.pages, self.pause = pages, pause
        self.samples: list[tuple[float, float, int, str]] = []
        self._stop = threading.Event()
        self._browsers = [signed_in(base) for _ in range(count)]
        self._threads = [
            threading.Thread(target=self._run, args=(b, random.Random(i)), daemon=True)
            for i, b in enumerate(self._browsers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def _run(self, browser, rng: random.Random) -> None:
        while not self._stop.wait(rng.uniform(0, self.pause)):
            path = rng.choice(self.pages)
            began = time.monotonic()
            status, _, _ = browser.request("GET", path)
            self.samples.append((began, time.monotonic() - began, status, path))

    def between(self, start: float, end: float) -> list[tuple[float, float, int, str]]:
        return [s for s in list(self.samples) if start <= s[0] < end]


KINDS = ("start", "search", "number", "case", "item", "link", "page")


def kind(path: str) -> str:
    if path == "/":
        return "start"
    if path.startswith("/?q=KZCG"):
        return "number"
    if path.startswith("/?"):
        return "search"
    if "/link?" in path:
        return "link"
    if "/pages/" in path:
        return "page"
    return path.split("/")[1].rstrip("s")


def figures(samples: list[tuple[float, float, int, str]]) -> dict[str, Any]:
    times = sorted(s[1] * 1000 for s in samples)
    return {
        "pages": len(times),
        "median_ms": statistics.median(times),
        "p95_ms": statistics.quantiles(times, n=100, method="inclusive")[94],
        "max_ms": times[-1],
        "failed": sum(s[2] >= 400 for s in samples),
    }


def summary(samples: list[tuple[float, float, int, str]]) -> dict[str, Any]:
    """Figures of all pages, and of each kind of page (``KINDS``)."""
    result = figures(samples)
    result["by_page"] = {k: figures(part) for k in KINDS if (part := [s for s in samples if kind(s[3]) == k])}
    return result


def export_round(base: str, env: dict[str, str], case: dict[str, Any]) -> dict[str, Any]:
    """One export and one verification of the big item, started together."""
    exporter, verifier = signed_in(base), signed_in(base)
    key = urllib.parse.quote(case["case_key"])
    result: dict[str, Any] = {}

    def export() -> None:
        # Prepared at once, fetched once a checkpoint signs its export event: the window is
        # from the request to the zip's last byte, with the checkpoint made straight away.
        began = time.monotonic()
        status, _, page = read_streamed(
            exporter, f"/cases/{key}/export", {"csrf": exporter.csrf, "reason": "benchmark"}
        )
        found = re.search(rb'href="/exports/(\d+)"', page)
        if status != 202 or found is None:
            result["export_status"] = status
            return
        checkpoint(env)
        result["export_status"], result["export_bytes"], _ = read_streamed(
            exporter, f"/exports/{found.group(1).decode()}"
        )
        result["export_window"] = (began, time.monotonic())

    def verify() -> None:
        began = time.monotonic()
        status, headers, _ = verifier.request(
            "POST", f"/items/{case['big_item']}/verify", {"csrf": verifier.csrf}
        )
        result["verify_status"], result["verdict"] = status, headers.get("location", "")
        result["verify_seconds"] = time.monotonic() - began

    threads = [threading.Thread(target=export), threading.Thread(target=verify)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if (
        result.get("export_status") != 200
        or result.get("verify_status") != 303
        or not result["verdict"].endswith("v=ok")
    ):
        raise RuntimeError(f"the export or the verification failed: {result}")
    return result


def drop_pages(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# --- the run ------------------------------------------------------------------------------------


def create_database() -> tuple[str, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"evidence_bench_web_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def measure(args: argparse.Namespace, env: dict[str, str], case: dict[str, Any]) -> dict[str, Any]:
    server, base = start_server(env, Path(case["folder"]), args.workers)
    try:
        key = urllib.parse.quote(case["case_key"])
        items, documents = case["items"], case["documents"]
        # Each kind of page about as often as the others; items and documents at random.
        pages = (
            ["/"] * 20
            + [f"/?q={urllib.parse.quote('1127号')}"] * 20
            + [f"/?q={item}" for item in random.Random(1).sample(items, min(20, len(items)))]
            + [f"/cases/{key}"] * 20
            + [f"/items/{item}" for item in random.Random(2).sample(items, min(20, len(items)))]
            + [
                f"/items/{item}/link?for=renew"
                for item in random.Random(3).sample(items, min(20, len(items)))
            ]
            + [f"/items/{d}/pages/{1 + n % 2}" for n, d in enumerate(documents * 20)][:20]
        )
        clients = Clients(base, pages, args.clients, args.pause)
        load = wait_for_quiet("the web pages", not args.no_wait)
        clients.start()
        time.sleep(2)  # every client has begun
        idle, during, rounds = [], [], []
        for r in range(args.rounds):
            # Idle and export alternate, so both see custody logs of about the same length
            # (every item page adds to its item's log).
            began = time.monotonic()
            time.sleep(args.idle_seconds)
            idle += clients.between(began, time.monotonic())
            drop_pages(Path(case["big_file"]))
            time.sleep(1)
            done = export_round(base, env, case)
            start, end = done.pop("export_window")
            done["export_seconds"] = end - start
            during += clients.between(start, end)
            rounds.append(done)
            log(
                f"  round {r + 1}: export {done['export_seconds']:.1f} s "
                f"({done['export_bytes'] / MB:.0f} MB), verify {done['verify_seconds']:.1f} s"
            )
        clients.stop()
    finally:
        server.terminate()
        server.wait(60)
    return {"load": load, "idle": summary(idle), "export": summary(during), "rounds": rounds}


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    idle, loaded = result["idle"], result["export"]
    print(
        f"\nweb pages, {args.clients} clients (pause 0–{args.pause} s), {args.workers} server processes, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}, big item {args.big_mb} MB + "
        f"{args.small} × {args.small_mb} MB, load {result['load']:.2f}"
    )
    print("| phase | pages | median (ms) | p95 (ms) | slowest (ms) | failed |")
    print("|---|---|---|---|---|---|")
    for label, row in [("idle", idle), ("during export + verify", loaded)]:
        for page, part in [("all pages", row), *row["by_page"].items()]:
            print(
                f"| {label}, {page} | {part['pages']} | {part['median_ms']:.1f} | "
                f"{part['p95_ms']:.1f} | {part['max_ms']:.0f} | {part['failed']} |"
            )
    met = "met" if loaded["p95_ms"] < TARGET_P95_MS else "missed"
    print(
        f"ratio export / idle: median {loaded['median_ms'] / idle['median_ms']:.2f}×, "
        f"p95 {loaded['p95_ms'] / idle['p95_ms']:.2f}×; "
        f"target p95 < {TARGET_P95_MS:.0f} ms during the export: {met}"
    )
    for i, r in enumerate(result["rounds"], 1):
        print(
            f"round {i}: export {r['export_seconds']:.1f} s ({r['export_bytes'] / MB:.0f} MB zip), "
            f"verify of the big item {r['verify_seconds']:.1f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.web_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--big-mb", type=float, default=500)
    parser.add_argument("--small", type=int, default=4)
    parser.add_argument("--small-mb", type=float, default=5)
    parser.add_argument("--documents", type=int, default=10, help="written records (PDF) in the case")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="processes serving the pages ([web] workers)")
    parser.add_argument("--pause", type=float, default=1.0, help="longest pause before a page (s)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle time per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--postgres", action="store_true", help="catalog on the local PostgreSQL")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    folder = Path(args.dir) / f"evidence-web-bench-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    database = None
    try:
        url = None
        if args.postgres:
            database, url = create_database()
        env = environment(folder, url)
        log(f"set-up in {folder}: {args.big_mb} MB + {args.small} × {args.small_mb} MB")
        case = build_case(env, folder, args.big_mb, args.small, args.small_mb, args.documents)
        result = measure(args, env, case)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if database:
            drop_database(database)
    report(args, result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
