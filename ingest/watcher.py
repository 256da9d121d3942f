"""The station daemon: file-system events, a periodic rescan, and supervision.

Events are only hints (inotify: a file renamed in shows only "created", a
writer that reopens fires "closed" early, network mounts show nothing), so a
hint only queues a path; the pipeline confirms stability and container
integrity before archiving, and a full rescan every ``rescan_seconds``
catches whatever the events missed. An observer thread that dies is
restarted and logged. A station whose last success is older than
``stale_after`` says so in its log, loudly and repeatedly.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .metrics import Metrics
from .names import is_companion
from .pipeline import Outcome, Pipeline

log = logging.getLogger("evidence.watch")


class _Hints(FileSystemEventHandler):
    """Cheap: a slow writer emits thousands of events per GB."""

    def __init__(
        self, folder: Path, queue: set[tuple[Path, Path]], lock: threading.Lock, wake: threading.Event
    ) -> None:
        self.folder, self.queue, self.lock, self.wake = folder, queue, lock, wake

    def _hint(self, path: str | bytes) -> None:
        with self.lock:
            self.queue.add((self.folder, Path(os.fsdecode(path))))
        self.wake.set()

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._hint(event.src_path)

    def on_closed(self, event: FileSystemEvent) -> None:
        self._hint(event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._hint(event.dest_path)


class StationWatcher:
    def __init__(
        self,
        pipeline: Pipeline,
        folders: list[Path],
        *,
        polling: bool = False,
        rescan_seconds: float = 300.0,
        stale_after: timedelta = timedelta(hours=24),
        metrics: Metrics | None = None,
        tick: float = 1.0,
    ) -> None:
        self.pipeline, self.folders, self.polling = pipeline, folders, polling
        self.rescan_seconds, self.stale_after, self.tick = rescan_seconds, stale_after, tick
        self.metrics = metrics or Metrics(pipeline.setup.station)
        pipeline.on_derivative = self.metrics.derivative
        self.stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._queue: set[tuple[Path, Path]] = set()
        self._busy: dict[Path, Future[Outcome]] = {}
        self._later: dict[Path, float] = {}
        self._folder_of: dict[Path, Path] = {}
        self._observer: BaseObserver | None = None
        self.last_success = time.time()
        self._last_stale_warning = 0.0

    def _start_observer(self) -> None:
        observer = PollingObserver(timeout=self.tick) if self.polling else Observer()
        for folder in self.folders:
            observer.schedule(
                _Hints(folder, self._queue, self._lock, self._wake), str(folder), recursive=True
            )
        observer.daemon = True
        observer.start()
        self._observer = observer

    def _supervise(self) -> None:
        if self._observer is None or not self._observer.is_alive():
            if self._observer is not None:
                log.error("file watcher died; restarting it", extra={"station": self.pipeline.setup.station})
            self._start_observer()

    def _rescan(self) -> None:
        with self._lock:
            for folder in self.folders:
                self._queue.update((folder, path) for path in self.pipeline.candidates(folder))
        self._wake.set()

    def _done(self, path: Path, started: float, future: Future[Outcome]) -> None:
        with self._lock:
            self._busy.pop(path, None)
        try:
            outcome = future.result()
        except Exception:  # the daemon must keep going; the rescan retries
            log.exception("unexpected error; the file stays for the next pass", extra={"path": str(path)})
            return
        self.metrics.outcome(outcome.kind, outcome.size, seconds=time.monotonic() - started)
        if outcome.kind == "archived":
            self.last_success = time.time()
        if outcome.kind in ("waiting", "failed"):
            # Still being written, or backing off: look again after the window.
            with self._lock:
                self._later[path] = time.monotonic() + max(self.pipeline.setup.stable_seconds, 1.0)

    def _ignored(self, folder: Path, path: Path) -> bool:
        try:
            parts = path.relative_to(folder).parts
        except ValueError:
            return True
        return (
            not parts
            or self.pipeline.own_folder(parts[0])
            or is_companion(path.name)
            or not os.path.lexists(path)
        )

    def _check_stale(self) -> None:
        age = time.time() - self.last_success
        if age > self.stale_after.total_seconds() and time.time() - self._last_stale_warning > 3600:
            self._last_stale_warning = time.time()
            log.warning(
                "no recording archived for %.1f hours",
                age / 3600,
                extra={"station": self.pipeline.setup.station, "hours": round(age / 3600, 1)},
            )

    def run(self) -> None:
        setup = self.pipeline.setup
        self.pipeline.check_folders(self.folders)
        log.info(
            "station watcher started",
            extra={
                "station": setup.station,
                "folders": [str(f) for f in self.folders],
                "polling": self.polling,
            },
        )
        next_rescan = 0.0
        with ThreadPoolExecutor(max_workers=max(1, setup.workers)) as pool:
            while not self.stop.is_set():
                self._supervise()
                if time.monotonic() >= next_rescan:
                    self._rescan()
                    if setup.after_archive == "move":
                        self.pipeline.prune_archived(self.folders)
                    next_rescan = time.monotonic() + self.rescan_seconds
                with self._lock:
                    now = time.monotonic()
                    for path, due in list(self._later.items()):
                        if due <= now:
                            del self._later[path]
                            self._queue.add((self._folder_of.get(path, path.parent), path))
                    ready = [(f, p) for f, p in self._queue if p not in self._busy]
                    self._queue.difference_update(ready)
                    for folder, path in ready:
                        if self._ignored(folder, path):
                            continue
                        self._folder_of[path] = folder
                        future = pool.submit(
                            self.pipeline.process, folder, path, wait=False, respect_backoff=True
                        )
                        self._busy[path] = future
                        future.add_done_callback(functools.partial(self._done, path, time.monotonic()))
                    self.metrics.queue_depth = len(self._queue) + len(self._busy) + len(self._later)
                self._check_stale()
                self._wake.wait(self.tick)
                self._wake.clear()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        log.info("station watcher stopped", extra={"station": setup.station})
