"""Station metrics through prometheus_client: served over real HTTP on the address asked."""

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.metrics import OUTCOMES, Metrics
from tests.servers.rgw import free_port


def _samples(text: str) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counters_start_at_zero_and_histograms_count() -> None:
    metrics = Metrics("ST01")
    before = _samples(metrics.render())
    for outcome in OUTCOMES:
        assert before[("evidence_ingest_files_total", (("outcome", outcome), ("station", "ST01")))] == 0
    assert before[("evidence_ingest_last_success_timestamp_seconds", (("station", "ST01"),))] == 0
    metrics.outcome("archived", 1000, seconds=0.3)
    metrics.outcome("failed", seconds=2.0)
    metrics.derivative("sheet", 0.4)
    metrics.queue_depth = 7
    after = _samples(metrics.render())
    st = ("station", "ST01")
    assert after[("evidence_ingest_files_total", (("outcome", "archived"), st))] == 1
    assert after[("evidence_ingest_bytes_total", (st,))] == 1000
    assert after[("evidence_ingest_failures_total", (st,))] == 1
    assert after[("evidence_ingest_queue_depth", (st,))] == 7
    assert after[("evidence_ingest_seconds_count", (st,))] == 2
    assert after[("evidence_ingest_seconds_bucket", (("le", "0.5"), st))] == 1
    assert after[("evidence_derivative_seconds_count", (("kind", "sheet"), st))] == 1
    assert after[("evidence_derivative_seconds_count", (("kind", "proxy"), st))] == 0
    # Two stations in one process keep their own numbers.
    assert _samples(Metrics("ST02").render())[("evidence_ingest_bytes_total", (("station", "ST02"),))] == 0


def test_served_on_the_configured_address_only() -> None:
    metrics = Metrics("ST01")
    port = free_port()
    server = metrics.serve(port, "127.0.0.2")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=5).read().decode()
        assert "evidence_ingest_files_total" in body and "process_cpu_seconds_total" in body
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        server.shutdown()
