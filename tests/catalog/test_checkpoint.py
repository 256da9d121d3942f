import dataclasses
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.checkpoint import Checkpoint, sign_checkpoint

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
