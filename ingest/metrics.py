"""Station metrics for Prometheus: a dead or stuck station shows on a dashboard.

Exposed in the text format on ``http://127.0.0.1:PORT/metrics`` when the
settings give ``[ingest] metrics_port``.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Metrics:
    def __init__(self, station: str) -> None:
        self.station = station
        self._lock = threading.Lock()
        self.files: dict[str, int] = {}
        self.bytes = 0
        self.queue_depth = 0
        self.last_success: float | None = None

    def outcome(self, kind: str, size: int = 0) -> None:
        with self._lock:
            self.files[kind] = self.files.get(kind, 0) + 1
            if kind == "archived":
                self.bytes += size
                self.last_success = time.time()

    def render(self) -> str:
        label = f'station="{self.station}"'
        with self._lock:
            lines = [
                "# HELP evidence_ingest_files_total Files handled, by outcome.",
                "# TYPE evidence_ingest_files_total counter",
                *(
                    f'evidence_ingest_files_total{{{label},outcome="{k}"}} {v}'
                    for k, v in sorted(self.files.items())
                ),
                "# HELP evidence_ingest_bytes_total Bytes of originals archived.",
                "# TYPE evidence_ingest_bytes_total counter",
                f"evidence_ingest_bytes_total{{{label}}} {self.bytes}",
                "# HELP evidence_ingest_failures_total Files left in place for a retry.",
                "# TYPE evidence_ingest_failures_total counter",
                f"evidence_ingest_failures_total{{{label}}} {self.files.get('failed', 0)}",
                "# HELP evidence_ingest_queue_depth Files waiting to be handled.",
                "# TYPE evidence_ingest_queue_depth gauge",
                f"evidence_ingest_queue_depth{{{label}}} {self.queue_depth}",
                "# HELP evidence_ingest_last_success_timestamp_seconds Time of the last archived file.",
                "# TYPE evidence_ingest_last_success_timestamp_seconds gauge",
                f"evidence_ingest_last_success_timestamp_seconds{{{label}}} {self.last_success or 0}",
            ]
        return "\n".join(lines) + "\n"

    def serve(self, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # name set by the http.server API
                if self.path.rstrip("/") != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server
