"""`evidence audit rotate-key` and `retire-key` on an installation with a real TSA: the new key
replaces the old file and is pinned, `audit verify` follows the hand-over from either key alone,
fails (exit 1) on a fork planted in storage, and applies a retirement's compromise time."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archive.local_store import LocalStore
from catalog import keyhistory
from catalog.canonical import format_instant
from catalog.checkpoint import fingerprint, from_statement, public_key_pem, raw_public_key
from tests.conftest import invoke_evidence
from tests.servers.tsa import TSA


@pytest.fixture(scope="module")
def tsa(tmp_path_factory):
    server = TSA(tmp_path_factory.mktemp("tsa") / "ours")
    yield server
    server.stop()


def installation(tmp: Path, tsa: TSA) -> dict[str, str]:
    config = tmp / "evidence.toml"
    config.write_text(
        f'data_dir = "{tmp / "data"}"\n[custody]\ntsa_url = "{tsa.url}"\ntsa_ca_file = "{tsa.ca_file}"\n',
        encoding="utf-8",
    )
    env = {"EVIDENCE_CONFIG": str(config)}
    assert invoke_evidence("init", env=env).exit_code == 0
    assert run(env, "audit", "checkpoint", "--always")["timestamps"]["stamped"]
    return env


def run(env: dict[str, str], *args: str, code: int = 0) -> dict:
    result = invoke_evidence(*args, "--json", env=env)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def pin_only(env: dict[str, str], fp: str) -> None:
    config = Path(env["EVIDENCE_CONFIG"])
    text = config.read_text(encoding="utf-8")
    config.write_text(
        re.sub(r"trusted_keys = \[[^\]]*\]", f'trusted_keys = ["{fp}"]', text), encoding="utf-8"
    )


def test_a_fork_planted_in_storage_fails_audit_verify(tmp_path: Path, tsa: TSA) -> None:
    env = installation(tmp_path, tsa)
    key_file = tmp_path / "data" / "keys" / "custody-ed25519.pem"
    old = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(old, Ed25519PrivateKey)
    rotation = run(env, "audit", "rotate-key")
    # Whoever kept a copy of the old key signs a second hand-over, to a key of their own.
    thief = Ed25519PrivateKey.generate()
    store = LocalStore(tmp_path / "data" / "store", lock_mode="COMPLIANCE")
    folder = f"custody/checkpoints/{rotation['n']:08d}"
    last = from_statement(b"".join(store.read(f"{folder}/checkpoint.json")), b"")
    fork = keyhistory.sign_change(old, thief, last=last, time=datetime.now(UTC))
    for name, data in fork.files().items():
        store.put(f"custody/keys/changes/{name}", io.BytesIO(data))
    thief_fp = fingerprint(thief.public_key())
    store.put(f"custody/keys/{thief_fp}.pem", io.BytesIO(public_key_pem(raw_public_key(thief.public_key()))))
    for pinned in (rotation["old"], rotation["new"]):
        pin_only(env, pinned)
        verdict = run(env, "audit", "verify", code=1)
        assert any(p["problem"] == "key_history" and "fork" in p["detail"] for p in verdict["problems"])


def test_rotate_then_retire_the_old_key(tmp_path: Path, tsa: TSA) -> None:
    env = installation(tmp_path, tsa)
    before = run(env, "audit", "key")["fingerprint"]
    rotation = run(env, "audit", "rotate-key")
    assert rotation["old"] == before and rotation["new"] != before
    keys = tmp_path / "data" / "keys"
    assert not (keys / "custody-ed25519.next.pem").exists()
    assert (keys / "custody-ed25519.pem").stat().st_mode & 0o777 == 0o600
    assert run(env, "audit", "key") == {"fingerprint": rotation["new"], "pinned": True, "exported": None}
    made = run(env, "audit", "checkpoint", "--always")
    assert made["key"] == rotation["new"] and made["timestamps"]["missing"] == []
    # Either key alone is enough: trust follows the hand-over both ways.
    for pinned in (rotation["old"], rotation["new"]):
        pin_only(env, pinned)
        assert run(env, "audit", "verify")["ok"]

    # Compromised after every stamp: the old key's stamped checkpoints stay trusted.
    time.sleep(1.1)
    since = format_instant(datetime.now(UTC))
    retired = run(env, "audit", "retire-key", "--compromised-since", since)
    assert retired["retired"] == rotation["old"] and retired["by"] == rotation["new"]
    assert run(env, "audit", "verify")["ok"]
    # Compromised from before them: none is trusted any more (the earliest time counts).
    run(env, "audit", "retire-key", rotation["old"], "--compromised-since", "2020-01-01")
    verdict = run(env, "audit", "verify", code=1)
    untrusted = [p for p in verdict["problems"] if p["problem"] == "untrusted"]
    assert {p["checkpoint"] for p in untrusted} == {1, rotation["n"]}
    assert all("compromised since 2019-12-31T16:00:00" in p["detail"] for p in untrusted)
    # A key that is no earlier key of this installation is refused.
    refused = invoke_evidence("audit", "retire-key", "ab" * 32, "--compromised-since", "2020-01-01", env=env)
    assert refused.exit_code != 0 and "no earlier key" in refused.output


def test_a_lost_key_signs_no_hand_over_so_the_new_key_must_be_pinned_again(tmp_path: Path, tsa: TSA) -> None:
    env = installation(tmp_path, tsa)
    old = run(env, "audit", "key")["fingerprint"]
    refused = invoke_evidence("audit", "rotate-key", "--lost", env=env)
    assert refused.exit_code != 0 and "not lost" in refused.output  # the key is there
    (tmp_path / "data" / "keys" / "custody-ed25519.pem").unlink()
    replaced = run(env, "audit", "rotate-key", "--lost")
    assert replaced["old"] == old and replaced["new"] != old and replaced["lost"] is True
    assert run(env, "audit", "key")["fingerprint"] == replaced["new"]
    assert run(env, "audit", "verify")["ok"]  # pinned here, beside the old one
    # Elsewhere, with only the old key pinned, nothing makes the new key trusted.
    pin_only(env, old)
    verdict = run(env, "audit", "verify", code=1)
    assert {p["problem"] for p in verdict["problems"]} == {"untrusted"}
    assert all(replaced["new"] in p["detail"] for p in verdict["problems"])
    pin_only(env, replaced["new"])
    assert {p["checkpoint"] for p in run(env, "audit", "verify", code=1)["problems"]} == {1}


def test_a_rotation_that_died_after_the_catalog_switched_is_finished_by_running_it_again(
    tmp_path: Path, tsa: TSA, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog import keys

    env = installation(tmp_path, tsa)
    folder = tmp_path / "data" / "keys"

    def die(source: Path, target: Path) -> None:
        raise KeyboardInterrupt  # the process is killed before the new key file takes the old one's place

    with monkeypatch.context() as patch:
        patch.setattr(keys, "replace_private_file", die)
        died = invoke_evidence("audit", "rotate-key", env=env)
    assert died.exit_code != 0 and (folder / "custody-ed25519.next.pem").exists()
    # The catalog has switched but the old key file is still in place: only finishing helps.
    assert invoke_evidence("audit", "checkpoint", "--always", env=env).exit_code != 0
    finished = run(env, "audit", "rotate-key")
    assert not (folder / "custody-ed25519.next.pem").exists()
    assert run(env, "audit", "key")["fingerprint"] == finished["new"]
    assert run(env, "audit", "checkpoint", "--always")["key"] == finished["new"]
    verdict = run(env, "audit", "verify")
    assert verdict["ok"] and len(verdict["signers"]) == 2  # one hand-over, not two
