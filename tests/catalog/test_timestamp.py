"""What a time-stamp token proves, with tokens from a real TSA (OpenSSL's) and a forger's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog import timestamp
from catalog.errors import InvalidInput
from tests.servers.tsa import POLICY, TSA

STATEMENT = '{"head":"ab","n":7,"type":"checkpoint","unit":"开城管"}'.encode()
DAY = timedelta(hours=24)


@pytest.fixture(scope="module")
def authorities(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tsa")
    ours, theirs = TSA(folder / "ours"), TSA(folder / "theirs", "another")
    yield ours, theirs
    ours.stop()
    theirs.stop()


def _check(token: bytes, tsa: TSA, *, statement: bytes = STATEMENT, at: datetime | None = None, **kw):
    roots = timestamp.load_roots(tsa.ca_file.read_bytes(), "ca.pem")
    when = at or datetime.now(UTC) - timedelta(seconds=2)
    trust = timestamp.TimeTrust(roots, late_after=DAY, **kw)
    return timestamp.check_token(token, statement, statement_time=when, trust=trust)


def test_a_token_over_the_statement_from_the_trusted_ca_is_proof(authorities) -> None:
    ours, _ = authorities
    result = _check(ours.reply(timestamp.request_for(STATEMENT)), ours, policy=POLICY)
    assert result.ok and not result.late, result.problem
    assert abs(result.time - datetime.now(UTC)) < timedelta(minutes=1)
    assert "evidence test TSA" in result.tsa


def test_a_token_for_other_bytes_is_refused(authorities) -> None:
    ours, _ = authorities
    result = _check(ours.token_for(b"another statement"), ours)
    assert not result.ok and "other bytes" in result.problem
    assert not timestamp.imprint_matches(ours.token_for(b"x"), STATEMENT)


def test_a_token_from_another_ca_is_refused(authorities) -> None:
    ours, theirs = authorities
    result = _check(theirs.token_for(STATEMENT), ours)
    assert not result.ok and "trusted CA" in result.problem
    # Its imprint is right: only the signature check tells it apart.
    assert timestamp.imprint_matches(theirs.token_for(STATEMENT), STATEMENT)


def test_a_token_before_the_statement_is_refused_and_a_late_one_is_reported(authorities) -> None:
    ours, _ = authorities
    token = ours.reply(timestamp.request_for(STATEMENT))
    early = _check(token, ours, at=datetime.now(UTC) + timedelta(hours=1))
    assert not early.ok and "before the checkpoint" in early.problem
    late = _check(token, ours, at=datetime.now(UTC) - timedelta(days=3))
    assert late.ok and late.late


def test_a_policy_other_than_the_configured_one_is_refused(authorities) -> None:
    ours, _ = authorities
    result = _check(ours.reply(timestamp.request_for(STATEMENT)), ours, policy="1.2.3.4")
    assert not result.ok and "policy" in result.problem


@pytest.mark.parametrize("junk", [b"", b"\x30\x03\x02\x01\x00", b"not a token" * 50])
def test_junk_is_no_token(authorities, junk) -> None:
    ours, _ = authorities
    result = _check(junk, ours)
    assert not result.ok and result.time is None


def test_a_ca_file_without_a_certificate_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no PEM certificate"):
        timestamp.load_roots(b"-----BEGIN NOTHING-----\n", "tsa-ca.pem")
