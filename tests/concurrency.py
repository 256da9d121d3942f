"""Running the same work in many threads at the same moment, to reproduce races for real."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def at_once(count: int, work: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """``work(i)`` in ``count`` threads released together; each result, or the exception raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait(timeout)
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - returned to the test, which asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a worker hung"
    return results


def raised(results: list[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]
