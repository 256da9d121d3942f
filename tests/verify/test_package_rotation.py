"""A package whose checkpoints span a signing-key rotation, checked by both verifiers
(`evidence verify-package` and the Node.js `verify-package.mjs`): trust follows the key-change
statement from the oldest or the newest key alone; a statement signed by one key only, a fork,
and a retired key's checkpoints without a trusted time-stamp from before the compromise fail."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archive import keyrotation
from archive.checkpoints import make_and_publish, stamp
from archive.timestamping import TimestampAuthority
from catalog import keyhistory, timestamp
from catalog.checkpoint import Anchors, fingerprint, from_statement, public_key_pem, raw_public_key
from tests.conftest import Env, invoke_evidence
from tests.servers.tsa import TSA
from tests.verify.test_export import T0, build_case, export, store_recording
from tests.verify.test_package import reseal
from verify.package import verify_package

CHANGES = "data/custody/keys/changes"


def fp(key: Ed25519PrivateKey) -> str:
    return fingerprint(raw_public_key(key.public_key()))


@dataclass
class Rotated:
    bag: Path
    old: Ed25519PrivateKey
    new: Ed25519PrivateKey
    tsa: TSA
    other: TSA  # another TSA, whose CA is not the one that signed the tokens
    stamped_by: datetime  # every checkpoint of the package was time-stamped before this


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("rotation")
    tsa, other = TSA(tmp / "tsa"), TSA(tmp / "other-tsa", "another")
    authority = TimestampAuthority(tsa.url)
    env = Env.embedded(tmp)
    built = build_case(env)
    old, new = built.key, Ed25519PrivateKey.generate()
    make_and_publish(env.as_("cron"), old, tsa=authority)
    keyrotation.rotate(env.as_("custodian"), old, new, purpose="custody-signing")
    store_recording(env, 7, start=T0, kek=built.kek)
    result = export(env, dataclasses.replace(built, key=new), tmp / "out", tsa=authority)
    stamp(env.as_("cron"), authority)
    stamped_by = datetime.now(UTC) + timedelta(seconds=2)
    env.engine.dispose()
    yield Rotated(result.path, old, new, tsa, other, stamped_by)
    tsa.stop()
    other.stop()


@pytest.fixture
def bag(rotated: Rotated, tmp_path: Path) -> Path:
    copy = tmp_path / rotated.bag.name
    shutil.copytree(rotated.bag, copy)
    return copy


def python(bag: Path, *pinned: Ed25519PrivateKey, tsa: TSA | None = None) -> list[str]:
    trust = timestamp.TimeTrust(timestamp.load_roots(tsa.ca_file.read_bytes(), "ca")) if tsa else None
    report = verify_package(bag, anchors=Anchors({fp(k) for k in pinned}), time_trust=trust)
    return [f"{p['path']}: {p['problem']}" for p in report.problems]


def node(bag: Path, *pinned: Ed25519PrivateKey, tsa: TSA | None = None) -> subprocess.CompletedProcess[str]:
    args = [a for k in pinned for a in ("--trusted-key", fp(k))] + (
        ["--tsa-ca", str(tsa.ca_file)] if tsa else []
    )
    result = subprocess.run(
        ["node", str(bag / "verify-package.mjs"), str(bag), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    return result


def command(bag: Path, *pinned: Ed25519PrivateKey):
    """`evidence verify-package` on the bag, trusting ``pinned``."""
    keys = [a for k in pinned for a in ("--trusted-key", fp(k))]
    return invoke_evidence(
        "verify-package", str(bag), *keys, env={"EVIDENCE_DATA_DIR": str(bag.parent / "x")}
    )


def add_statement(bag: Path, statement: keyhistory.KeyChange | keyhistory.Retirement, *keys) -> None:
    (bag / CHANGES).mkdir(exist_ok=True)
    for name, data in statement.files().items():
        (bag / CHANGES / name).write_bytes(data)
    for k in keys:
        (bag / "data/custody/keys" / f"{fp(k)}.pem").write_bytes(
            public_key_pem(raw_public_key(k.public_key()))
        )
    reseal(bag)


def old_last_checkpoint(bag: Path, rotated: Rotated):
    for path in sorted((bag / "data/custody/checkpoints").glob("*.json")):
        cp = from_statement(path.read_bytes(), path.with_suffix(".sig").read_bytes())
        if cp.key == fp(rotated.new):
            break
        last = cp
    return last


# --- hostile cases first -------------------------------------------------------------------------


@pytest.mark.parametrize("forged", ["old", "new"])
def test_a_statement_signed_by_one_key_only_makes_no_key_trusted(
    bag: Path, rotated: Rotated, forged: str
) -> None:
    """The signature of one of the two keys replaced by another key's: with only the other end
    pinned, the checkpoints past the statement are not trusted by either verifier."""
    (sig,) = (bag / CHANGES).glob(f"*.{forged}.sig")
    sig.write_bytes(Ed25519PrivateKey.generate().sign(b"something else"))
    reseal(bag)
    pinned = rotated.new if forged == "new" else rotated.old
    problems = python(bag, pinned)
    assert any("not signed by both keys" in p for p in problems), problems
    assert any("signer not trusted" in p for p in problems), problems
    # The report's trusted keys are the pinned one alone: the forged statement reaches nothing.
    assert verify_package(bag, anchors=Anchors({fp(pinned)})).trusted == [fp(pinned)]
    result = node(bag, pinned)
    assert result.returncode == 1 and "not signed by both keys" in result.stdout, result.stdout


def test_without_the_statement_the_other_key_is_not_trusted(bag: Path, rotated: Rotated) -> None:
    shutil.rmtree(bag / CHANGES)
    reseal(bag)
    for pinned in (rotated.old, rotated.new):
        assert any("signer not trusted" in p for p in python(bag, pinned))
        assert node(bag, pinned).returncode == 1
        assert verify_package(bag, anchors=Anchors({fp(pinned)})).trusted == [fp(pinned)]


def test_a_fork_fails_both_verifiers_and_the_command(bag: Path, rotated: Rotated) -> None:
    """Whoever steals the old key later signs a second hand-over from it, to a key of theirs."""
    thief = Ed25519PrivateKey.generate()
    fork = keyhistory.sign_change(
        rotated.old, thief, last=old_last_checkpoint(bag, rotated), time=datetime.now(UTC)
    )
    add_statement(bag, fork, thief)
    for pinned in (rotated.old, rotated.new):
        assert any("fork" in p for p in python(bag, pinned)), python(bag, pinned)
        result = node(bag, pinned)
        assert result.returncode == 1 and "fork" in result.stdout, result.stdout
    cli = command(bag, rotated.new)
    assert cli.exit_code == 1 and "fork" in cli.output, cli.output


def test_a_retired_keys_checkpoints_after_the_compromise_are_not_trusted(bag: Path, rotated: Rotated) -> None:
    """Compromised since a time before the old key's checkpoints were stamped: none of them is
    trusted, time-stamps or not."""
    early = datetime(2020, 1, 1, tzinfo=UTC)
    add_statement(
        bag, keyhistory.sign_retirement(rotated.new, key=fp(rotated.old), since=early, time=datetime.now(UTC))
    )
    problems = python(bag, rotated.new, tsa=rotated.tsa)
    assert problems and all("compromised since 2020-01-01" in p for p in problems), problems
    result = node(bag, rotated.new, tsa=rotated.tsa)
    assert result.returncode == 1 and "not before the compromise" in result.stdout, result.stdout


def test_a_retired_keys_earlier_checkpoints_need_a_trusted_time_stamp(bag: Path, rotated: Rotated) -> None:
    """Compromised since after every stamp: trusted with the TSA's CA (both verifiers; the
    Node.js one through openssl), not without it, nor with another TSA's CA."""
    retirement = keyhistory.sign_retirement(
        rotated.new, key=fp(rotated.old), since=rotated.stamped_by, time=rotated.stamped_by
    )
    add_statement(bag, retirement)
    assert python(bag, rotated.new, tsa=rotated.tsa) == []
    assert python(bag, rotated.old, tsa=rotated.tsa) == []
    assert any("compromised since" in p for p in python(bag, rotated.new))
    result = node(bag, rotated.new)
    assert result.returncode == 1 and "cannot be checked without --tsa-ca" in result.stdout
    result = node(bag, rotated.new, tsa=rotated.tsa)
    assert result.returncode == 0, result.stdout
    assert node(bag, rotated.old, tsa=rotated.tsa).returncode == 0
    foreign = node(bag, rotated.new, tsa=rotated.other)
    assert foreign.returncode == 1 and "does not verify against the CA" in foreign.stdout, foreign.stdout
    assert python(bag, rotated.new, tsa=rotated.other)


def test_a_retirement_signed_by_the_retired_key_itself_is_refused(bag: Path, rotated: Rotated) -> None:
    """Whoever holds the old key cannot retire the new one."""
    forged = keyhistory.sign_retirement(
        rotated.old, key=fp(rotated.new), since=datetime(2020, 1, 1, tzinfo=UTC), time=datetime.now(UTC)
    )
    add_statement(bag, forged)
    assert any("no successor" in p for p in python(bag, rotated.old, tsa=rotated.tsa))
    assert node(bag, rotated.old).returncode == 1


# --- what holds ---------------------------------------------------------------------------------


def test_the_package_spans_the_rotation_and_verifies_from_either_key(bag: Path, rotated: Rotated) -> None:
    signers = {
        from_statement(p.read_bytes(), b"").key
        for p in (bag / "data/custody").rglob("*.json")
        if "checkpoint" in p.name or p.parent.name == "checkpoints"
    }
    assert signers == {fp(rotated.old), fp(rotated.new)}
    assert len(list((bag / CHANGES).glob("*.json"))) == 1
    for pinned in (rotated.new, rotated.old):
        assert python(bag, pinned, tsa=rotated.tsa) == []
        result = node(bag, pinned)
        assert result.returncode == 0, result.stdout
        # The report names both keys as trusted: the pinned one and the one the statement reaches.
        report = verify_package(bag, anchors=Anchors({fp(pinned)})).to_json()
        assert report["trusted"] == sorted([fp(rotated.old), fp(rotated.new)]), report
    # So does the command's own report, for the key that was not pinned too.
    cli = command(bag, rotated.old)
    for key in (rotated.old, rotated.new):
        assert f"signer {fp(key)} (trusted)" in cli.output, cli.output


@pytest.mark.s3
def test_on_rgw_a_package_spanning_a_rotation_verifies_from_either_key(s3_store, tmp_path: Path) -> None:
    """The same hand-over with the evidence on a real Ceph RGW with Object Lock."""
    from archive.policy import ArchivePolicy
    from catalog import schema
    from catalog.db import make_engine, session_factory
    from tests.conftest import ZONE

    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    schema.upgrade(engine)
    policy = ArchivePolicy(zone=ZONE, routine=(1, "days"), min_lock=timedelta(seconds=3))
    env = Env(engine, session_factory(engine), s3_store, tmp_path, policy)
    try:
        built = build_case(env)
        old, new = built.key, Ed25519PrivateKey.generate()
        make_and_publish(env.as_("cron"), old)
        change = keyrotation.rotate(env.as_("custodian"), old, new, purpose="custody-signing")
        assert keyrotation.stored_statements(s3_store) == ([change], [], [])
        result = export(env, dataclasses.replace(built, key=new), tmp_path / "out")
    finally:
        engine.dispose()
    assert (result.path / CHANGES / f"{change.name}.json").read_bytes() == change.statement
    for pinned in (new, old):
        assert python(result.path, pinned) == []
        assert node(result.path, pinned).returncode == 0
    assert any("signer not trusted" in p for p in python(result.path, Ed25519PrivateKey.generate()))
