"""A throw-away Ceph RADOS Gateway: a real S3 server with Object Lock for tests and benchmarks.

``start_rgw(base)`` builds a single-node Ceph cluster (one monitor, one OSD, one gateway, no
manager) whose configuration, data, logs, pid files and admin sockets all live under ``base``,
so several clusters can run side by side on other loopback ports. Nothing is started by systemd
and nothing outside ``base`` is written (except, for a very long ``base``, the admin sockets,
which then go to a short temporary folder removed on ``stop()``).

The gateway enforces S3 Object Lock for real (COMPLIANCE and GOVERNANCE retention, legal holds,
versioning) on the server's own clock, which is what the archive's tests must prove.

Command line (for benchmarks)::

    python -m tests.servers.rgw start BASE [--port P] [--objectstore bluestore]

prints one JSON line (endpoint, users and their keys) and runs until SIGTERM or SIGINT.

The binaries come from Debian's ``radosgw ceph-mon ceph-osd ceph-common`` packages
(``bash .ci/system-deps.sh --test`` installs them).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

__all__ = [
    "RGWServer",
    "start_rgw",
    "rgw_available",
    "missing_binaries",
    "free_port",
    "BINARIES",
    "DEFAULT_USERS",
]

GiB = 1024**3

#: The programs a cluster needs, and the package that brings each.
BINARIES: dict[str, str] = {
    "radosgw": "radosgw",
    "ceph-mon": "ceph-mon",
    "ceph-osd": "ceph-osd",
    "ceph": "ceph-common",
    "radosgw-admin": "ceph-common",
    "monmaptool": "ceph-common",
    "rados": "ceph-common",
}

#: The users made by default: the gateway's administrator (owns the buckets) and one per role.
DEFAULT_USERS: tuple[str, ...] = ("admin", "station", "curator", "reader", "worker")

Objectstore = Literal["memstore", "bluestore"]

_MON_ID = "a"
_OSD_ID = 0
_RGW_NAME = "client.rgw"
_RGW_CONTROL_POOL = "default.rgw.control"
# Unix socket paths are limited to 107 bytes; keep a margin for "ceph-client.rgw.asok".
_MAX_SOCKET_DIR = 80
# How long a daemon gets between SIGTERM and SIGKILL. radosgw takes ~11 s to exit cleanly;
# the cluster is thrown away, so nothing is lost by cutting that short.
_KILL_AFTER = 1.0
_STEP_NAMES = {"mon": "monitor", "osd": "OSD", "rgw": "gateway"}


class _DaemonExited(RuntimeError):
    """A cluster daemon died while the cluster was starting."""

    def __init__(self, daemon: str, status: int) -> None:
        super().__init__(f"{daemon} exited with status {status}")
        self.daemon = daemon


def missing_binaries() -> list[str]:
    """The cluster's programs that are not on PATH."""
    return [name for name in BINARIES if shutil.which(name) is None]


def rgw_available() -> bool:
    """True when every program a cluster needs is on PATH."""
    return not missing_binaries()


def _require_binaries() -> None:
    missing = missing_binaries()
    if missing:
        packages = sorted({BINARIES[name] for name in missing})
        raise RuntimeError(
            f"Ceph RADOS Gateway programs not found on PATH: {', '.join(missing)} "
            f"(Debian packages: {' '.join(packages)}); run `bash .ci/system-deps.sh --test`"
        )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _random_key(length: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _new_keys() -> tuple[str, str]:
    """An (access key, secret key) pair shaped like AWS's."""
    access = _random_key(20, string.ascii_uppercase + string.digits)
    secret = _random_key(40, string.ascii_letters + string.digits)
    return access, secret


def _tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"({path}: {exc.strerror})"
    body = "\n".join(text.splitlines()[-lines:])
    return f"--- last lines of {path} ---\n{body}"


def _stop_processes(procs: Iterable[subprocess.Popen[bytes]], grace: float = _KILL_AFTER) -> None:
    """SIGTERM every process group, SIGKILL what is still alive after ``grace`` s, then reap."""
    procs = [p for p in procs if p is not None]
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
        proc.wait()


@dataclass
class RGWServer:
    """A running single-node cluster with its gateway on ``endpoint`` ("127.0.0.1:PORT").

    ``users`` maps each user (role) name to its (access key, secret key). The first user,
    "admin" by default, is meant to create and own the buckets.
    """

    base: Path
    port: int
    endpoint: str
    users: dict[str, tuple[str, str]]
    conf: Path = field(repr=False)
    mon_port: int = field(repr=False)
    _mon: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _osd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _rgw: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _socket_dir: Path | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- paths ------------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        """Where the daemons' logs go (``mon.a.log``, ``osd.0.log``, ``client.rgw.log``, *.out)."""
        return self.base / "log"

    @property
    def url(self) -> str:
        """The gateway's base URL (plain HTTP)."""
        return f"http://{self.endpoint}"

    @property
    def gateway_pid(self) -> int | None:
        """The radosgw process id (for SIGSTOP/SIGCONT fault tests), None when it is not running."""
        proc = self._rgw
        return proc.pid if proc is not None and proc.poll() is None else None

    def keys(self, user: str) -> tuple[str, str]:
        """The (access key, secret key) of ``user``."""
        return self.users[user]

    # -- processes --------------------------------------------------------------------------

    def _spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        out = (self.log_dir / f"{name}.out").open("ab")
        try:
            return subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            out.close()

    def _ceph(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run the ``ceph`` command line against this cluster."""
        return subprocess.run(
            ["ceph", "--conf", str(self.conf), "--connect-timeout", "10", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def _radosgw_admin(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["radosgw-admin", "--conf", str(self.conf), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def _start_gateway(self) -> None:
        self._rgw = self._spawn(_RGW_NAME, ["radosgw", "--conf", str(self.conf), "-n", _RGW_NAME, "-f"])

    def _gateway_answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            conn.close()

    def _check_alive(self, *names: str) -> None:
        for name in names:
            proc = {"mon": self._mon, "osd": self._osd, "rgw": self._rgw}[name]
            if proc is not None and proc.poll() is not None:
                raise _DaemonExited(name, proc.returncode)

    def _wait_gateway(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive("mon", "osd", "rgw")
            if self._gateway_answers():
                return
            time.sleep(0.05)
        raise RuntimeError(f"the gateway did not answer on {self.endpoint} in time")

    def _wait_osd_up(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive("mon", "osd")
            try:
                done = self._ceph(
                    "osd", "dump", "--format", "json", timeout=max(1.0, deadline - time.monotonic())
                )
            except subprocess.TimeoutExpired:
                break
            if done.returncode == 0:
                osds = json.loads(done.stdout).get("osds", [])
                if any(o.get("osd") == _OSD_ID and o.get("up") == 1 for o in osds):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"osd.{_OSD_ID} did not come up in time")

    def failure_report(self, daemon: str | None = None) -> str:
        """The tails of the daemons' log files, for error messages.

        ``daemon`` ("mon", "osd" or "rgw") names the one that failed: its logs come first and
        longer; the others follow briefly. None gives every daemon the same space.
        """
        names = {"mon": f"mon.{_MON_ID}", "osd": f"osd.{_OSD_ID}", "rgw": _RGW_NAME}
        order = sorted(names, key=lambda d: d != daemon)
        parts = []
        for d in order:
            main = daemon is None or d == daemon
            parts.append(_tail(self.log_dir / f"{names[d]}.log", 40 if main else 8))
            parts.append(_tail(self.log_dir / f"{names[d]}.out", 20 if main else 5))
        return "\n".join(parts)

    def kill_gateway(self) -> None:
        """Kill radosgw at once (SIGKILL), as a crash would; the cluster keeps running.

        The dead gateway's watches are dropped so that the restarted one does not wait 30 s
        for it on its first metadata change (e.g. creating a bucket).
        """
        with self._lock:
            proc, self._rgw = self._rgw, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self._drop_dead_watches()

    def _drop_dead_watches(self) -> None:
        """Blocklist the killed gateway's RADOS client so the OSD drops its watches at once.

        A gateway watches its control objects to hear about metadata changes, and every
        change (a new bucket, a new policy) is announced to all watchers. A gateway killed
        hard leaves its watches behind until the OSD times them out (30 s), and until then
        each such change in the restarted gateway waits for the dead one's answer.
        """
        done = subprocess.run(
            ["rados", "--conf", str(self.conf), "-p", _RGW_CONTROL_POOL, "listwatchers", "notify.0"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        for line in done.stdout.splitlines():
            for word in line.split():
                if word.startswith("watcher="):
                    self._ceph("osd", "blocklist", "add", word.removeprefix("watcher="), "3600")

    def restart_gateway(self, timeout: float = 60.0) -> None:
        """Start radosgw again on the same port (killing it first if it runs); wait for it."""
        self.kill_gateway()
        with self._lock:
            self._start_gateway()
        try:
            self._wait_gateway(time.monotonic() + timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.failure_report('rgw')}") from None

    def stop(self) -> None:
        """Stop the gateway, the OSD and the monitor (SIGKILL after 1 s) and wait for them.

        Safe to call more than once. The files under ``base`` are left for inspection.
        """
        with self._lock:
            procs = [p for p in (self._rgw, self._osd, self._mon) if p is not None]
            self._rgw = self._osd = self._mon = None
        _stop_processes(procs)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    @property
    def running(self) -> bool:
        """True while all three daemons are alive."""
        return all(p is not None and p.poll() is None for p in (self._mon, self._osd, self._rgw))

    def __enter__(self) -> RGWServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _ceph_conf(
    *,
    fsid: str,
    base: Path,
    socket_dir: Path,
    mon_port: int,
    rgw_port: int,
    objectstore: Objectstore,
    memstore_bytes: int,
    bluestore_bytes: int,
) -> str:
    mon_addr = f"[v2:127.0.0.1:{mon_port}]"
    lines = [
        "[global]",
        f"fsid = {fsid}",
        f"mon host = {mon_addr}",
        f"mon initial members = {_MON_ID}",
        "public addr = 127.0.0.1",
        "public network = 127.0.0.1/32",
        "ms bind ipv6 = false",
        "auth cluster required = none",
        "auth service required = none",
        "auth client required = none",
        f"run dir = {base / 'run'}",
        f"admin socket = {socket_dir}/$cluster-$name.asok",
        f"pid file = {base / 'run'}/$name.pid",
        f"log file = {base / 'log'}/$name.log",
        "log to stderr = false",
        "err to stderr = true",
        "log flush on exit = true",
        "mon cluster log to file = false",
        "crash dir = " + str(base / "crash"),
        f"keyring = {base / 'keyring'}",
        # One OSD on one host: pools of size one, replicas chosen among OSDs, not hosts.
        "osd pool default size = 1",
        "osd pool default min size = 1",
        "osd pool default pg num = 8",
        "osd pool default pgp num = 8",
        "osd pool default pg autoscale mode = off",
        "osd crush chooseleaf type = 0",
        "mon allow pool size one = true",
        "mon warn on pool no redundancy = false",
        "mon allow pool delete = true",
        # Commit each change at once: the gateway's first start creates a dozen pools, one
        # paxos round each (the default 1 s interval makes that first start take ~12 s).
        "paxos propose interval = 0.05",
        "paxos min wait = 0.01",
        "mon osd down out interval = 0",
        "mon osd auto mark in = true",
        # A nearly full disk on the CI machine must not shut the throw-away monitor down.
        "mon data avail crit = 0",
        "mon data avail warn = 0",
        "",
        "[mon]",
        f"mon data = {base / 'mon'}/$cluster-$id",
        "",
        "[osd]",
        f"osd data = {base / 'osd'}/$cluster-$id",
        f"osd objectstore = {objectstore}",
        "osd crush update on start = true",
        "osd class update on start = false",
        f"memstore device bytes = {memstore_bytes}",
        "memstore page set = true",
        f"bluestore block path = {base / 'osd'}/block",
        "bluestore block create = true",
        f"bluestore block size = {bluestore_bytes}",
        "bluestore block db create = false",
        "bluestore block wal create = false",
        "bluestore fsck on mkfs = false",
        "bluestore fsck on mount = false",
        "bluestore cache autotune = false",
        "bluestore cache size = 134217728",
        # The aio thread polls every 250 ms by default, and each of the ~10 device closes
        # while bluestore mounts waits for it: 2.5 s of the start.
        "bdev aio poll ms = 20",
        # Each op shard opens the device once more at start; one OSD needs few.
        "osd op num shards = 1",
        "",
        "[client]",
        # Without it the gateway loops on "get_initial_auth_request returned -13" (auth none).
        "ms mon client mode = crc",
        "",
        f"[{_RGW_NAME}]",
        f"rgw data = {base / 'rgw'}",
        f"rgw frontends = beast endpoint=127.0.0.1:{rgw_port}",
        "rgw enable usage log = false",
        "rgw enable ops log = false",
        "rgw dynamic resharding = false",
        "rgw crypt require ssl = false",
        "",
    ]
    return "\n".join(lines)


def start_rgw(
    base: Path,
    *,
    port: int | None = None,
    objectstore: Objectstore = "memstore",
    memstore_bytes: int = 2 * GiB,
    bluestore_bytes: int = 20 * GiB,
    users: Sequence[str] = DEFAULT_USERS,
    timeout: float = 60.0,
) -> RGWServer:
    """Build and start a single-node cluster with its gateway under ``base``; wait for it.

    ``port`` is the gateway's loopback port (a free one when None). ``objectstore`` is
    "memstore" (data in RAM, at most ``memstore_bytes``) or "bluestore" (a sparse file of
    ``bluestore_bytes`` under ``base``). Each name in ``users`` becomes a gateway user with
    random keys. Raises RuntimeError, with the tail of the daemons' logs, when the cluster is
    not serving within ``timeout`` seconds; whatever was started is stopped first.
    """
    _require_binaries()
    if objectstore not in ("memstore", "bluestore"):
        raise ValueError(f"objectstore must be 'memstore' or 'bluestore', not {objectstore!r}")
    base = Path(base).resolve()
    if (base / "ceph.conf").exists():
        raise RuntimeError(f"{base} already holds a cluster; give start_rgw an empty folder")
    for sub in ("run", "log", "mon", "osd", "rgw", "crash"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    socket_dir = base / "run"
    own_socket_dir: Path | None = None
    if len(str(socket_dir)) > _MAX_SOCKET_DIR:
        own_socket_dir = socket_dir = Path(tempfile.mkdtemp(prefix="rgw-asok-"))

    fsid = str(uuid.uuid4())
    mon_port = free_port()
    rgw_port = port if port is not None else free_port()
    while rgw_port == mon_port:
        rgw_port = free_port()
    conf = base / "ceph.conf"
    conf.write_text(
        _ceph_conf(
            fsid=fsid,
            base=base,
            socket_dir=socket_dir,
            mon_port=mon_port,
            rgw_port=rgw_port,
            objectstore=objectstore,
            memstore_bytes=memstore_bytes,
            bluestore_bytes=bluestore_bytes,
        )
    )
    server = RGWServer(
        base=base,
        port=rgw_port,
        endpoint=f"127.0.0.1:{rgw_port}",
        users={},
        conf=conf,
        mon_port=mon_port,
        _socket_dir=own_socket_dir,
    )
    deadline = time.monotonic() + timeout
    c = ["--conf", str(conf)]
    step = "mon"
    try:
        monmap = base / "monmap"
        _run(
            [
                "monmaptool",
                "--create",
                "--fsid",
                fsid,
                "--addv",
                _MON_ID,
                f"[v2:127.0.0.1:{mon_port}]",
                "--enable-all-features",
                "--clobber",
                str(monmap),
            ],
            deadline,
        )
        (base / "mon" / f"ceph-{_MON_ID}").mkdir(parents=True, exist_ok=True)
        _run(["ceph-mon", *c, "--mkfs", "-i", _MON_ID, "--monmap", str(monmap)], deadline)
        server._mon = server._spawn(f"mon.{_MON_ID}", ["ceph-mon", *c, "-i", _MON_ID, "-f"])

        step = "osd"
        osd_uuid = str(uuid.uuid4())
        created = _wait_ceph(server, ["osd", "new", osd_uuid, str(_OSD_ID)], deadline)
        osd_id = created.strip()
        if osd_id != str(_OSD_ID):
            raise RuntimeError(f"`ceph osd new` gave id {osd_id!r}, expected {_OSD_ID}")
        (base / "osd" / f"ceph-{_OSD_ID}").mkdir(parents=True, exist_ok=True)
        _run(["ceph-osd", *c, "-i", str(_OSD_ID), "--mkfs", "--osd-uuid", osd_uuid], deadline)
        server._osd = server._spawn(f"osd.{_OSD_ID}", ["ceph-osd", *c, "-i", str(_OSD_ID), "-f"])

        server._wait_osd_up(deadline)

        # Only now: a gateway whose first writes find no OSD up waits for the next objecter
        # tick (5 s) before it retries them.
        step = "rgw"
        server._start_gateway()
        server._wait_gateway(deadline)

        step = "rgw"
        server.users = _create_users(server, users, deadline)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        report = server.failure_report(getattr(exc, "daemon", step))
        server.stop()
        if isinstance(exc, subprocess.TimeoutExpired):
            exc = RuntimeError(f"{exc.cmd[0]} timed out")
        raise RuntimeError(
            f"RGW cluster under {base} did not start ({_STEP_NAMES[step]}): {exc}\n{report}"
        ) from None
    except BaseException:
        server.stop()
        raise
    return server


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RuntimeError("timed out")
    return left


def _run(argv: list[str], deadline: float) -> str:
    """Run a setup command; raise RuntimeError with its output when it fails."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=_remaining(deadline), stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"`{' '.join(argv)}` failed with status {done.returncode}:\n{output}")
    return done.stdout


def _wait_ceph(server: RGWServer, args: list[str], deadline: float) -> str:
    """Run a ``ceph`` command, retrying while the monitor is still starting."""
    last = ""
    while True:
        server._check_alive("mon")
        try:
            done = server._ceph(*args, timeout=min(15.0, _remaining(deadline)))
        except subprocess.TimeoutExpired:
            done = None
        if done is not None and done.returncode == 0:
            return done.stdout
        if done is not None:
            last = done.stderr.strip() or done.stdout.strip()
        if deadline - time.monotonic() < 0.1:
            raise RuntimeError(f"`ceph {' '.join(args)}` kept failing: {last}")
        time.sleep(0.05)


def _create_users(server: RGWServer, names: Sequence[str], deadline: float) -> dict[str, tuple[str, str]]:
    """Create the gateway users (in parallel: each radosgw-admin call takes ~0.5 s)."""
    users = {name: _new_keys() for name in names}
    procs = {
        name: server._radosgw_admin(
            "user",
            "create",
            f"--uid={name}",
            f"--display-name={name}",
            f"--access-key={access}",
            f"--secret-key={secret}",
        )
        for name, (access, secret) in users.items()
    }
    errors = []
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            errors.append(f"{name}: radosgw-admin timed out")
            continue
        if proc.returncode != 0:
            errors.append(f"{name}: radosgw-admin exited {proc.returncode}: {err.strip()}")
    if errors:
        raise RuntimeError("user creation failed: " + "; ".join(errors))
    return users


# -- command line ---------------------------------------------------------------------------


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.servers.rgw",
        description="Run a throw-away Ceph RADOS Gateway (S3 with Object Lock) on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a cluster under BASE and run until SIGTERM/SIGINT")
    start.add_argument("base", type=Path, help="an empty folder for the cluster's files")
    start.add_argument("--port", type=int, default=None, help="gateway port (default: a free one)")
    start.add_argument("--objectstore", choices=("memstore", "bluestore"), default="memstore")
    start.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    began = time.monotonic()
    try:
        server = start_rgw(args.base, port=args.port, objectstore=args.objectstore, timeout=args.timeout)
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    with server:
        print(
            json.dumps(
                {
                    "endpoint": server.endpoint,
                    "base": str(server.base),
                    "objectstore": args.objectstore,
                    "start_seconds": round(time.monotonic() - began, 2),
                    "users": {
                        name: {"access_key": a, "secret_key": s} for name, (a, s) in server.users.items()
                    },
                }
            ),
            flush=True,
        )
        while not stop.wait(1.0):
            if not server.running:
                print("a cluster daemon exited; stopping\n" + server.failure_report(), file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
