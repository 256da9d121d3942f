"""Station metrics for Prometheus (``prometheus_client``): a dead or stuck station shows on a
dashboard, and a slow one shows where its time goes.

Served on ``http://ADDRESS:PORT/metrics`` when the settings give ``[ingest] metrics_port``
(``metrics_address``, 127.0.0.1 by default). Every station has its own registry, so that two
in one process (tests) never mix. Exposed:

- ``evidence_ingest_files_total{station, outcome}``: files handled, by outcome; every outcome
  is present from zero, so a rate or an alert works before the first file of that kind;
- ``evidence_ingest_bytes_total``, ``evidence_ingest_failures_total``;
- ``evidence_ingest_queue_depth`` and ``evidence_ingest_last_success_timestamp_seconds``;
- ``evidence_ingest_seconds`` (one file, from the start of its pass to its outcome) and
  ``evidence_derivative_seconds{kind}`` histograms;
- the process's CPU, memory and open files (``process_*``) and the Python runtime
  (``python_*``).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)

__all__ = ["OUTCOMES", "Metrics"]

OUTCOMES = ("archived", "duplicate", "quarantined", "failed", "waiting", "skipped")
DERIVATIVE_KINDS = ("proxy", "poster", "sheet", "waveform")

# Seconds: a small photo in a fraction of a second, a long recording in minutes.
_INGEST_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_DERIVATIVE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class Metrics:
    def __init__(self, station: str) -> None:
        self.station = station
        self._depth = 0
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._files = Counter(
            "evidence_ingest_files",
            "Files handled, by outcome.",
            ["station", "outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self._files.labels(station, outcome)
        self._bytes = Counter(
            "evidence_ingest_bytes", "Bytes of originals archived.", ["station"], registry=self.registry
        ).labels(station)
        self._failures = Counter(
            "evidence_ingest_failures",
            "Files left in place for a retry.",
            ["station"],
            registry=self.registry,
        ).labels(station)
        self._queue = Gauge(
            "evidence_ingest_queue_depth", "Files waiting to be handled.", ["station"], registry=self.registry
        ).labels(station)
        self._last = Gauge(
            "evidence_ingest_last_success_timestamp_seconds",
            "Time of the last archived file (0: none yet).",
            ["station"],
            registry=self.registry,
        ).labels(station)
        self._ingest = Histogram(
            "evidence_ingest_seconds",
            "Seconds to handle one file, from the start of its pass to its outcome.",
            ["station"],
            buckets=_INGEST_BUCKETS,
            registry=self.registry,
        ).labels(station)
        self._derivative = Histogram(
            "evidence_derivative_seconds",
            "Seconds to make one derivative, by kind.",
            ["station", "kind"],
            buckets=_DERIVATIVE_BUCKETS,
            registry=self.registry,
        )
        for kind in DERIVATIVE_KINDS:
            self._derivative.labels(station, kind)

    # --- what the daemon reports ---------------------------------------------------------
    def outcome(self, kind: str, size: int = 0, seconds: float | None = None) -> None:
        self._files.labels(self.station, kind).inc()
        if kind == "archived":
            self._bytes.inc(size)
            self._last.set(time.time())
        elif kind == "failed":
            self._failures.inc()
        if seconds is not None:
            self._ingest.observe(seconds)

    def derivative(self, kind: str, seconds: float) -> None:
        self._derivative.labels(self.station, kind).observe(seconds)

    @property
    def queue_depth(self) -> int:
        return self._depth

    @queue_depth.setter
    def queue_depth(self, value: int) -> None:
        self._depth = value
        self._queue.set(value)

    # --- exposition ----------------------------------------------------------------------
    def render(self) -> str:
        return generate_latest(self.registry).decode()

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns the server."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
