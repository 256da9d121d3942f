import dataclasses
import hashlib
from datetime import UTC, datetime

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.checkpoint import (
    Anchors,
    Checkpoint,
    fingerprint,
    from_statement,
    raw_public_key,
    sign_checkpoint,
    sign_checkpoint_v2,
)
from catalog.errors import InvalidInput
from catalog.jcs import NotCanonical

T = datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_signed_checkpoint_verifies_with_its_key_and_round_trips() -> None:
    key = Ed25519PrivateKey.generate()
    cp = sign_checkpoint(key, n=3, seq=120, head="ab" * 32, time=T)
    assert cp.signature_valid() and cp.signature_valid(key.public_key())
    assert Checkpoint.from_record(cp.to_record()) == cp


def test_any_changed_field_breaks_the_signature() -> None:
    key = Ed25519PrivateKey.generate()
    cp = sign_checkpoint(key, n=1, seq=10, head="cd" * 32, time=T)
    for change in [{"seq": 11}, {"head": "ce" * 32}, {"n": 2}, {"time": T.replace(second=1)}]:
        assert not dataclasses.replace(cp, **change).signature_valid(key.public_key()), change


def test_a_checkpoint_signed_by_another_key_is_not_trusted() -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    forged = sign_checkpoint(theirs, n=1, seq=10, head="00" * 32, time=T)
    assert forged.signature_valid()  # valid under the key it carries...
    assert not forged.signature_valid(ours.public_key())  # ...but not ours


def test_garbage_key_or_signature_is_invalid_not_an_exception() -> None:
    cp = sign_checkpoint(Ed25519PrivateKey.generate(), n=1, seq=1, head="00" * 32, time=T)
    assert not dataclasses.replace(cp, public_key="AAAA").signature_valid()
    assert not dataclasses.replace(cp, signature="!!notbase64").signature_valid()


# --- version 2 -----------------------------------------------------------------------------


def test_a_v2_statement_is_jcs_names_the_full_fingerprint_and_chains() -> None:
    key = Ed25519PrivateKey.generate()
    first = sign_checkpoint_v2(key, n=1, seq=5, head="ab" * 32, time=T, prev=None)
    second = sign_checkpoint_v2(key, n=2, seq=9, head="cd" * 32, time=T, prev=first.digest())
    fp = hashlib.sha256(raw_public_key(key.public_key())).hexdigest()
    assert first.signed_bytes() == rfc8785.dumps(
        {
            "v": 2,
            "type": "evidence-custody-checkpoint",
            "n": 1,
            "seq": 5,
            "head": "ab" * 32,
            "time": "2026-05-01T12:00:00.000000Z",
            "key": fp,
            "prev": None,
        }
    )
    assert second.prev == hashlib.sha256(first.signed_bytes()).hexdigest()
    assert len(first.signature_bytes()) == 64 and first.fingerprint == fp
    # Read back from its two files, it is the same checkpoint and its signature holds.
    back = from_statement(second.signed_bytes(), second.signature_bytes())
    assert (back.n, back.seq, back.head, back.prev, back.key) == (2, 9, "cd" * 32, first.digest(), fp)
    assert back.signed_by(raw_public_key(key.public_key()))


@pytest.mark.parametrize(
    "respell",
    [
        lambda b: b.replace(b'"v":2', b'"v":2,"x":1'),
        lambda b: b.replace(b'{"head"', b'{"n":7,"head"'),
        lambda b: b.replace(b'"seq":5', b'"seq":5.0'),
        lambda b: b.replace(b'"seq":5', b'"seq": 5'),
        lambda b: b.replace(b".000000Z", b"Z"),
    ],
    ids=["extra key", "duplicate key", "non-canonical number", "whitespace", "other time spelling"],
)
def test_a_statement_spelled_otherwise_is_refused(respell) -> None:
    cp = sign_checkpoint_v2(Ed25519PrivateKey.generate(), n=1, seq=5, head="ab" * 32, time=T, prev=None)
    changed = respell(cp.signed_bytes())
    assert changed != cp.signed_bytes()
    with pytest.raises(NotCanonical):
        from_statement(changed, cp.signature_bytes())


def test_trust_comes_only_from_a_pinned_fingerprint() -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    mine = sign_checkpoint_v2(ours, n=1, seq=1, head="00" * 32, time=T, prev=None)
    forged = sign_checkpoint_v2(theirs, n=1, seq=1, head="00" * 32, time=T, prev=None)
    pinned = Anchors({fingerprint(ours.public_key())})
    ours_raw, theirs_raw = raw_public_key(ours.public_key()), raw_public_key(theirs.public_key())
    assert pinned.judge(mine, ours_raw) is None
    assert pinned.judge(forged, theirs_raw) == (
        f"signature valid, signer not trusted: fingerprint {fingerprint(theirs_raw)}"
    )
    assert pinned.judge(mine, None) == (
        f"signer's public key not available: fingerprint {fingerprint(ours_raw)}"
    )
    # Key material carried beside a checkpoint that is not its signer's is ignored.
    assert pinned.judge(mine, theirs_raw).startswith("signer's public key not available")
    bad = dataclasses.replace(mine, signature=forged.signature)
    assert pinned.judge(bad, ours_raw) == f"signature invalid: fingerprint {fingerprint(ours_raw)}"


def test_trusted_keys_are_read_from_fingerprints_and_pem_files(tmp_path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "custody.pub.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    fp = fingerprint(key.public_key())
    assert Anchors.parse([fp.upper()]).trusted == {fp}
    from_file = Anchors.parse([str(pem)])
    assert from_file.trusted == {fp} and from_file.keys == {fp: raw_public_key(key.public_key())}
    for wrong in (fp[:16], str(tmp_path / "missing.pem")):
        with pytest.raises(InvalidInput, match="neither a 64-hex-digit fingerprint nor a key file"):
            Anchors.parse([wrong])
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(InvalidInput, match="not a PEM public key"):
        Anchors.parse([str(tmp_path / "junk.pem")])
