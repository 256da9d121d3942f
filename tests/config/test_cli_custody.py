"""The trust anchor on the command line: `init` pins the key, `audit key` prints and exports it,
`verify-package`, `audit verify` and `catalog rebuild` trust only pinned or given keys and
never need the private key."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import run_evidence

CASE_NO = "开城管罚立〔2020〕42号"


def ok_json(*args: str, env: dict[str, str]):
    result = run_evidence(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def installation(tmp_path: Path) -> dict[str, str]:
    """An installation with a settings file, as deployed."""
    config = tmp_path / "evidence.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nunit = "KZCG"\n\n[custody]\n# the curator\'s key\n'
        'signing_key = "keys/custody-ed25519.pem"\n\n[retention]\ngrace_days = 7\n',
        encoding="utf-8",
    )
    return {"EVIDENCE_CONFIG": str(config)}


def test_init_pins_the_fingerprint_in_the_settings_file_once(installation: dict[str, str]) -> None:
    config = Path(installation["EVIDENCE_CONFIG"])
    first = run_evidence("init", env=installation)
    assert first.returncode == 0, first.stderr
    fp = re.search(r"fingerprint ([0-9a-f]{64})", first.stdout).group(1)
    assert f"pinned now in {config}" in first.stdout
    settings = tomllib.loads(config.read_text(encoding="utf-8"))
    assert settings["custody"]["trusted_keys"] == [fp]
    assert "# the curator's key" in config.read_text(encoding="utf-8")  # comments stay
    assert settings["retention"]["grace_days"] == 7
    again = ok_json("init", env=installation)
    assert again["fingerprint"] == fp and again["pinned_now"] is False
    assert tomllib.loads(config.read_text(encoding="utf-8"))["custody"]["trusted_keys"] == [fp]
    key = ok_json("audit", "key", env=installation)
    assert key == {"fingerprint": fp, "pinned": True, "exported": None}


def test_without_a_settings_file_the_pin_is_kept_in_the_data_folder(tmp_path: Path) -> None:
    env = {"EVIDENCE_DATA_DIR": str(tmp_path / "data")}
    result = ok_json("init", env=env)
    pin = tmp_path / "data" / "keys" / "trusted-keys.txt"
    assert result["pinned_in"] == str(pin) and pin.read_text() == result["fingerprint"] + "\n"
    assert ok_json("audit", "key", env=env)["pinned"] is True


def test_packages_are_trusted_only_by_a_pinned_or_given_key(
    installation: dict[str, str], tmp_path: Path
) -> None:
    ok_json("init", env=installation)
    ok_json("case", "open", CASE_NO, env=installation)
    exported = ok_json("export", CASE_NO, str(tmp_path / "out"), "--reason", "court", env=installation)
    assert exported["pending"] is False and exported["checkpoint"] == 1  # checkpointed at once
    package = exported["path"]
    fp = ok_json("audit", "key", "--export", str(tmp_path / "custody.pub.pem"), env=installation)[
        "fingerprint"
    ]

    here = run_evidence("verify-package", package, env=installation)
    assert here.returncode == 0, here.stdout
    assert f"signer {fp} (trusted)" in here.stdout  # always the full fingerprint

    elsewhere = {"EVIDENCE_DATA_DIR": str(tmp_path / "expert")}  # a court's expert: nothing pinned
    refused = run_evidence("verify-package", package, env=elsewhere)
    assert refused.returncode == 1
    assert f"signature valid, signer not trusted: fingerprint {fp}" in refused.stdout
    for given in (fp, str(tmp_path / "custody.pub.pem")):
        accepted = run_evidence("verify-package", package, "--trusted-key", given, env=elsewhere)
        assert accepted.returncode == 0, accepted.stdout
    other = run_evidence("verify-package", package, "--trusted-key", "ab" * 32, env=elsewhere)
    assert other.returncode == 1 and f"signer {fp} (NOT trusted)" in other.stdout
    bad = run_evidence("verify-package", package, "--trusted-key", "abcd", env=elsewhere)
    assert bad.returncode == 2 and "neither a 64-hex-digit fingerprint nor a key file" in bad.stderr


def test_audit_verify_and_rebuild_need_no_private_key(installation: dict[str, str], tmp_path: Path) -> None:
    ok_json("init", env=installation)
    ok_json("case", "open", CASE_NO, env=installation)
    cp = ok_json("audit", "checkpoint", env=installation)
    assert ok_json("audit", "checkpoint", env=installation) == {"skipped": True}  # nothing new
    key = tmp_path / "data" / "keys" / "custody-ed25519.pem"
    key.rename(tmp_path / "offline.pem")  # the key stays with the curator, not on this machine
    report = ok_json("audit", "verify", env=installation)
    assert report["ok"] and report["signers"] == [cp["key"]]
    rebuilt = ok_json(
        "catalog",
        "rebuild",
        "--from-storage",
        "--database",
        f"sqlite:///{tmp_path / 'r.sqlite3'}",
        env=installation,
    )
    assert rebuilt["problems"] == [] and rebuilt["signers"] == [cp["key"]]

    # Without the pin, the same chain is refused: trust never comes from the catalog or storage.
    config = Path(installation["EVIDENCE_CONFIG"])
    config.write_text(
        re.sub(r"trusted_keys = \[.*\]", "trusted_keys = []", config.read_text()), encoding="utf-8"
    )
    refused = run_evidence("audit", "verify", env=installation)
    assert refused.returncode == 1
    assert f"signature valid, signer not trusted: fingerprint {cp['key']}" in refused.stderr
    given = run_evidence("audit", "verify", "--trusted-key", cp["key"], env=installation)
    assert given.returncode == 0, given.stderr
