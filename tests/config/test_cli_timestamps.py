"""Trusted time on the command line, with a real TSA on loopback: checkpoints get tokens, a TSA
that is down never stops a checkpoint and its token is asked for again, `audit verify` checks
every token and fails on a bad one."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import update

from catalog.db import make_engine, session_factory
from catalog.models import CheckpointRow
from tests.conftest import invoke_evidence
from tests.servers.tsa import TSA


@pytest.fixture(scope="module")
def authorities(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tsa")
    ours, theirs = TSA(folder / "ours"), TSA(folder / "theirs", "another")
    yield ours, theirs
    ours.stop()
    theirs.stop()


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def _settings(tmp: Path, tsa_url: str, ca: Path) -> dict[str, str]:
    config = tmp / "evidence.toml"
    config.write_text(
        f'data_dir = "{tmp / "data"}"\n[custody]\ntsa_url = "{tsa_url}"\ntsa_ca_file = "{ca}"\n'
        "tsa_timeout_seconds = 2\n",
        encoding="utf-8",
    )
    return {"EVIDENCE_CONFIG": str(config)}


def _point(env: dict[str, str], url: str) -> None:
    """Point the installation at another TSA, keeping the rest (init pinned its key there)."""
    config = Path(env["EVIDENCE_CONFIG"])
    text = config.read_text(encoding="utf-8")
    config.write_text(re.sub(r'tsa_url = "[^"]*"', f'tsa_url = "{url}"', text), encoding="utf-8")


def _json(result) -> dict:
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_checkpoints_are_time_stamped_and_a_tsa_that_is_down_is_caught_up(tmp_path, authorities) -> None:
    ours, theirs = authorities
    up = _settings(tmp_path, ours.url, ours.ca_file)
    assert invoke_evidence("init", env=up).exit_code == 0
    first = _json(invoke_evidence("audit", "checkpoint", "--always", "--json", env=up))
    assert first["timestamps"]["stamped"] == [first["n"]] and first["timestamps"]["missing"] == []
    token = tmp_path / "data" / "store" / "objects" / f"custody/checkpoints/{first['n']:08d}/checkpoint.tsr"
    assert token.is_file()

    down = up
    _point(up, _dead_url())
    second = invoke_evidence("audit", "checkpoint", "--always", "--json", env=down)
    assert second.exit_code == 0, second.output  # the checkpoint is made all the same
    made = json.loads(second.stdout)
    assert made["timestamps"]["missing"] == [made["n"]] and "cannot be reached" in made["timestamps"]["error"]
    verdict = _json(invoke_evidence("audit", "verify", "--json", env=down))
    assert verdict["ok"] and verdict["timestamps"]["missing"] == [made["n"]]
    status = _json(invoke_evidence("stations", "status", "--json", env=down))
    assert status["unstamped_checkpoints"] == [made["n"]]

    # Back up: the next run (even one with nothing new to sign) fetches the missing token.
    _point(up, ours.url)
    again = _json(invoke_evidence("audit", "checkpoint", "--json", env=up))
    assert again["timestamps"]["stamped"] == [made["n"]] and again["timestamps"]["missing"] == []
    verdict = _json(invoke_evidence("audit", "verify", "--json", env=up))
    assert verdict["ok"] and verdict["timestamps"]["stamped"] == [first["n"], made["n"]]

    # Checked against another CA, the same genuine tokens are not proof.
    foreign = _json(invoke_evidence("audit", "verify", "--json", "--tsa-ca", str(theirs.ca_file), env=up))
    assert not foreign["ok"] and {b["n"] for b in foreign["timestamps"]["bad"]} == {first["n"], made["n"]}


def test_a_token_swapped_in_the_catalog_fails_audit_verify(tmp_path, authorities) -> None:
    ours, theirs = authorities
    up = _settings(tmp_path, ours.url, ours.ca_file)
    assert invoke_evidence("init", env=up).exit_code == 0
    n = _json(invoke_evidence("audit", "checkpoint", "--always", "--json", env=up))["n"]
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite3'}")
    for forged, why in [
        (ours.token_for(b"another statement"), "other bytes"),
        (theirs.token_for(b"x"), "other bytes"),
    ]:
        with session_factory(engine).begin() as s:
            s.execute(update(CheckpointRow).where(CheckpointRow.n == n).values(tsa_token=forged))
        result = invoke_evidence("audit", "verify", "--json", env=up)
        assert result.exit_code == 1
        verdict = json.loads(result.stdout)
        assert any(why in b["problem"] for b in verdict["timestamps"]["bad"]), verdict
    engine.dispose()
