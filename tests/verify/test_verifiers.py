"""Three verifiers, one table: `evidence verify-package`, the `verify-package.mjs` every package
carries (Node.js alone), and the standard-tool recipes of its VERIFY.txt (coreutils, OpenSSL),
run on a fresh package with a real RFC 3161 token and on each tampered variant.

✓ = the verifier must catch it; — = it cannot, by design (said in VERIFY.txt):

| tamper                                          | verify-package | .mjs        | recipes            |
|-------------------------------------------------|----------------|-------------|--------------------|
| flipped payload byte                            | ✓              | ✓           | ✓ sha256sum -c     |
| consistent substitution (manifests rewritten)   | ✓              | ✓           | —                  |
| edited disclosed event / hash-only link         | ✓              | ✓           | —                  |
| omitted event                                   | ✓              | ✓           | —                  |
| statement edited                                | ✓              | ✓           | ✓ openssl pkeyutl  |
| re-signed with a foreign key, trusted key given | ✓              | ✓           | ✓ fingerprint      |
| token for other bytes                           | ✓              | ✓ (imprint) | ✓ openssl ts       |
| token from another CA                           | ✓              | —           | ✓ openssl ts       |
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archive.timestamping import TimestampAuthority
from catalog import timestamp
from catalog.checkpoint import Anchors, fingerprint
from tests.conftest import Env
from tests.servers.tsa import TSA
from tests.verify.test_export import T0, Built, build_case, export, store_recording
from tests.verify.test_package import (
    events_of,
    forge_everything,
    links_of,
    reseal,
    resign,
    substitute,
    write_events,
    write_links,
)
from verify.package import verify_package

CUSTODY = "data/custody"


@dataclass
class Made:
    bag: Path
    built: Built
    fingerprint: str
    ours: TSA
    theirs: TSA


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("verifiers")
    ours, theirs = TSA(tmp / "tsa"), TSA(tmp / "other-tsa", "another")
    env = Env.embedded(tmp)
    built = build_case(env)
    store_recording(env, 7, start=T0, kek=built.kek)  # another case's events: hash-only links
    result = export(env, built, tmp / "out", tsa=TimestampAuthority(ours.url))
    env.engine.dispose()
    yield Made(result.path, built, fingerprint(built.key.public_key()), ours, theirs)
    ours.stop()
    theirs.stop()


@pytest.fixture
def bag(made: Made, tmp_path: Path) -> Path:
    copy = tmp_path / made.bag.name
    shutil.copytree(made.bag, copy)
    return copy


# --- the three verifiers ---------------------------------------------------------------------


def ours(bag: Path, made: Made) -> bool:
    trust = timestamp.TimeTrust(timestamp.load_roots(made.ours.ca_file.read_bytes(), "ca"))
    return verify_package(bag, anchors=Anchors({made.fingerprint}), time_trust=trust).ok


def node(bag: Path, made: Made) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(bag / "verify-package.mjs"), str(bag), "--trusted-key", made.fingerprint],
        capture_output=True,
        text=True,
        timeout=120,
    )


def mjs(bag: Path, made: Made) -> bool:
    result = node(bag, made)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def recipes(bag: Path, made: Made) -> dict[str, bool]:
    """Each command block of the package's own VERIFY.txt, run as written (with the trusted
    fingerprint and the TSA's CA file filled in): True where it says all is well."""
    text = (bag / "VERIFY.txt").read_text(encoding="utf-8")
    blocks = [
        re.sub(r"\\\n\s*", "", block).strip()
        for block in re.findall(r"\n\n((?: {5}\S.*\n?(?: {7}.*\n?)*)+)", text)
    ]
    outcome: dict[str, bool] = {}
    for block in blocks:
        for line in block.splitlines():
            command = line.strip().replace("TSA-CA.pem", str(made.ours.ca_file))
            if command.startswith("node ") or command.startswith("evidence "):
                continue  # the chain walk: the other two verifiers
            run = subprocess.run(
                ["bash", "-c", command], cwd=bag, capture_output=True, text=True, timeout=120
            )
            if command.startswith("sha256sum"):
                outcome["sha256sum"] = outcome.get("sha256sum", True) and run.returncode == 0
            elif "pkeyutl" in command:
                outcome["signature"] = run.returncode == 0 and "Signature Verified Successfully" in run.stdout
            elif command.startswith("openssl pkey "):
                outcome["fingerprint"] = run.stdout.split()[0] == made.fingerprint
            elif command.startswith("openssl ts -verify"):
                outcome["timestamp"] = run.returncode == 0 and "Verification: OK" in run.stdout
    assert {"sha256sum", "signature", "fingerprint", "timestamp"} <= set(outcome), (outcome, blocks)
    return outcome


# --- the tampering ---------------------------------------------------------------------------


def flip_payload_byte(bag: Path, made: Made) -> None:
    target = next(p for p in sorted((bag / "data" / "originals").iterdir()))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))


def consistent_substitution(bag: Path, made: Made) -> None:
    substitute(bag, made.built)


def edit_disclosed_event(bag: Path, made: Made) -> None:
    lines = events_of(bag)
    body = json.loads(lines[0])
    body["actor"] = "station:FORGED"
    lines[0] = rfc8785.dumps(body)
    write_events(bag, lines)
    reseal(bag)


def edit_hash_only_link(bag: Path, made: Made) -> None:
    disclosed = {json.loads(x)["seq"] for x in events_of(bag)}
    links = links_of(bag)
    link = next(x for x in links if int(x[0]) not in disclosed)
    link[2] = "0" * 64
    write_links(bag, links)
    reseal(bag)


def omit_event(bag: Path, made: Made) -> None:
    lines = events_of(bag)
    index = next(i for i, x in enumerate(lines) if json.loads(x)["action"] == "stored")
    write_events(bag, lines[:index] + lines[index + 1 :])
    reseal(bag)


def edit_statement(bag: Path, made: Made) -> None:
    path = bag / CUSTODY / "checkpoint.json"
    statement = json.loads(path.read_bytes())
    statement["time"] = "2020-01-01T00:00:00.000000Z"
    path.write_bytes(rfc8785.dumps(statement))
    reseal(bag)


def resign_foreign(bag: Path, made: Made) -> None:
    resign(bag, Ed25519PrivateKey.generate(), forge_everything(bag, made.built))


def token_for_other_bytes(bag: Path, made: Made) -> None:
    (bag / CUSTODY / "checkpoint.tsr").write_bytes(made.ours.token_for(b"some other statement"))
    reseal(bag)


def token_from_another_ca(bag: Path, made: Made) -> None:
    statement = (bag / CUSTODY / "checkpoint.json").read_bytes()
    (bag / CUSTODY / "checkpoint.tsr").write_bytes(made.theirs.token_for(statement))
    reseal(bag)


CAUGHT, MISSED = True, False
# tamper: (verify-package, .mjs, the recipe that must catch it or None)
TABLE = {
    flip_payload_byte: (CAUGHT, CAUGHT, "sha256sum"),
    consistent_substitution: (CAUGHT, CAUGHT, None),
    edit_disclosed_event: (CAUGHT, CAUGHT, None),
    edit_hash_only_link: (CAUGHT, CAUGHT, None),
    omit_event: (CAUGHT, CAUGHT, None),
    edit_statement: (CAUGHT, CAUGHT, "signature"),
    resign_foreign: (CAUGHT, CAUGHT, "fingerprint"),
    token_for_other_bytes: (CAUGHT, CAUGHT, "timestamp"),
    token_from_another_ca: (CAUGHT, MISSED, "timestamp"),
}


def test_the_untouched_package_passes_all_three(bag: Path, made: Made) -> None:
    assert (bag / "data" / CUSTODY.removeprefix("data/") / "checkpoint.tsr").is_file()
    assert ours(bag, made)
    result = node(bag, made)
    assert result.returncode == 0, result.stdout
    assert "signature is not checked here" in result.stdout  # it says what it does not do
    assert all(recipes(bag, made).values()), recipes(bag, made)


def test_without_a_trusted_key_the_javascript_verifier_trusts_nobody(bag: Path, made: Made) -> None:
    result = subprocess.run(
        ["node", str(bag / "verify-package.mjs"), str(bag)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert f"signature valid, signer not trusted: fingerprint {made.fingerprint}" in result.stdout


@pytest.mark.parametrize("tamper", list(TABLE), ids=[t.__name__ for t in TABLE])
def test_the_table_holds(bag: Path, made: Made, tamper) -> None:
    tamper(bag, made)
    by_ours, by_mjs, recipe = TABLE[tamper]
    assert (not ours(bag, made)) == by_ours
    assert (not mjs(bag, made)) == by_mjs, node(bag, made).stdout
    results = recipes(bag, made)
    if recipe is not None:
        assert results[recipe] is False, results
    else:  # standard tools alone cannot see it: everything they check still holds
        assert all(results.values()), results
