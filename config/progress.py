"""Progress on a terminal for the long commands (scan, verify, export): files and bytes with
their totals, the rate and the time left, moving within a large file (the work reports every
chunk it reads). Nothing is shown when stderr is not a terminal (cron, pipes, logs) or with
--json: :func:`transfer` then returns a sink that ignores everything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["Quiet", "Transfer", "transfer", "counting"]


class Quiet:
    """Takes the same calls as :class:`Transfer` and shows nothing."""

    def plan(self, files: int, size: int) -> None:
        pass

    def read(self, n: int) -> None:
        pass

    def file_done(self) -> None:
        pass


class Transfer(Quiet):
    """One line: label, bar, files done of total, bytes done of total, rate, time left.

    Safe to call from worker threads (rich's progress holds its own lock)."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        self.bar, self.task = bar, task
        self._files = 0
        self._lock = threading.Lock()

    def plan(self, files: int, size: int) -> None:
        self.bar.update(self.task, total=size, files_total=files)

    def read(self, n: int) -> None:
        self.bar.update(self.task, advance=n)

    def file_done(self) -> None:
        with self._lock:
            self._files += 1
            self.bar.update(self.task, files=self._files)


@contextmanager
def transfer(console: Console, label: str, *, quiet: bool) -> Iterator[Quiet]:
    if quiet or not console.is_terminal:
        yield Quiet()
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.fields[files]}/{task.fields[files_total]} files"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        yield Transfer(bar, bar.add_task(label, total=None, files=0, files_total="?"))


@contextmanager
def counting(console: Console, label: str, *, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar of items done of a total: yields ``update(done, total)``."""
    if quiet or not console.is_terminal:
        yield lambda _done, _total: None
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
