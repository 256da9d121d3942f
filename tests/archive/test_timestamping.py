"""Asking a real TSA on loopback for tokens; a TSA that is down, slow or answers for other bytes."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from archive.timestamping import TimestampUnavailable, request_token
from catalog import timestamp
from tests.servers.tsa import TSA

STATEMENT = b'{"n":1,"type":"checkpoint"}'


def test_a_token_comes_back_over_the_statement(tmp_path) -> None:
    tsa = TSA(tmp_path / "tsa")
    try:
        token = request_token(tsa.url, STATEMENT)
    finally:
        tsa.stop()
    assert timestamp.imprint_matches(token, STATEMENT)
    assert tsa.requests == 1


def test_a_tsa_that_is_down_is_unavailable_not_fatal(tmp_path) -> None:
    tsa = TSA(tmp_path / "tsa")
    tsa.stop()
    with pytest.raises(TimestampUnavailable, match="cannot be reached") as caught:
        request_token(tsa.url, STATEMENT, timeout=2)
    assert "asked for again" in caught.value.hint


def test_a_tsa_that_never_answers_times_out(tmp_path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    try:
        with pytest.raises(TimestampUnavailable):
            request_token(f"http://127.0.0.1:{silent.getsockname()[1]}/", STATEMENT, timeout=0.5)
    finally:
        silent.close()


def test_an_answer_for_other_bytes_is_not_taken(tmp_path) -> None:
    tsa = TSA(tmp_path / "tsa")
    forged = tsa.token_for(b"something else")

    class Forger(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(forged)))
            self.end_headers()
            self.wfile.write(forged)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forger)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(TimestampUnavailable, match="no token for the checkpoint"):
            request_token(f"http://127.0.0.1:{server.server_address[1]}/", STATEMENT)
    finally:
        server.shutdown()
        server.server_close()
        tsa.stop()
