"""Known-answer self-tests: the published vectors pass on this machine's library, and a missing
or wrong algorithm is refused by name before anything is sealed, hashed or signed with it.

No OpenSSL build without SM4 (or with a broken AES) can be run here, so those two cases are
simulated by replacing the cryptography factory the code calls (``algorithms.SM4``, ``AESGCM``,
``hashes.SM3``) with one that raises ``UnsupportedAlgorithm`` or answers wrongly, which is what
such a build does at that call.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from archive import encryption
from archive.digest import SM3Hash, hash_file
from catalog import selftest
from tests.conftest import invoke_evidence


@pytest.fixture(autouse=True)
def fresh_selftests():
    """Every test starts with nothing proven, and leaves nothing proven under a patched library."""
    selftest.forget()
    yield
    selftest.forget()


def no_sm4(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(key: bytes):
        raise UnsupportedAlgorithm("sm4 is not supported by this backend")

    monkeypatch.setattr(algorithms, "SM4", missing)


def wrong_aes(monkeypatch: pytest.MonkeyPatch) -> None:
    class FlippedGCM:
        """AES-GCM whose first output bit is wrong."""

        def __init__(self, key: bytes) -> None:
            self._real = AESGCM(key)

        def encrypt(self, nonce, data, associated_data):
            out = bytearray(self._real.encrypt(nonce, data, associated_data))
            out[0] ^= 1
            return bytes(out)

        def decrypt(self, nonce, data, associated_data):
            return self._real.decrypt(nonce, data, associated_data)

    monkeypatch.setattr(selftest, "AESGCM", FlippedGCM)


@pytest.mark.parametrize("name", list(selftest.VECTORS))
def test_each_published_vector_passes_on_this_library(name: str) -> None:
    selftest.check(name)
    assert selftest.results([name]) == [(name, None)]


def test_a_missing_algorithm_is_refused_by_name_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    no_sm4(monkeypatch)
    with pytest.raises(selftest.AlgorithmUnavailable) as caught:
        selftest.require(selftest.SM4_GCM)
    assert caught.value.algorithm == "SM4-GCM" and caught.value.exit_code == 2
    assert "SM4-GCM is not available" in caught.value.message
    assert "cryptography" in (caught.value.hint or "")
    selftest.require(selftest.AES_256_GCM, selftest.SM3, selftest.ED25519)  # the others still pass


def test_a_wrong_answer_is_refused_as_a_broken_build(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong_aes(monkeypatch)
    with pytest.raises(selftest.SelfTestFailed) as caught:
        selftest.require(selftest.AES_256_GCM)
    assert caught.value.algorithm == "AES-256-GCM" and caught.value.exit_code == 2
    assert "known-answer self-test" in caught.value.message

    def wrong_sm3():
        return hashes.SHA256()  # a build answering with another hash

    monkeypatch.setattr(hashes, "SM3", wrong_sm3)
    with pytest.raises(selftest.SelfTestFailed, match="SM3 failed"):
        selftest.check(selftest.SM3)


def test_a_failure_is_not_remembered_as_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:
        no_sm4(patched)
        with pytest.raises(selftest.AlgorithmUnavailable):
            selftest.require(selftest.SM4_GCM)
    selftest.require(selftest.SM4_GCM)  # the library is back: now it passes, and is remembered
    no_sm4(monkeypatch)
    selftest.require(selftest.SM4_GCM)


def test_encryption_refuses_before_sealing_or_opening_with_a_missing_algorithm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kek = encryption.generate_kek()
    reader = encryption.EncryptingReader(io.BytesIO(b"x" * 100), kek, "obj", algorithm="SM4-GCM")
    sealed = reader.read()
    wraps: dict[str, list[bytes]] = {"obj": [reader.wrap] if reader.wrap else []}
    selftest.forget()
    no_sm4(monkeypatch)
    with pytest.raises(selftest.AlgorithmUnavailable, match="SM4-GCM"):
        encryption.EncryptingReader(io.BytesIO(b"x"), kek, "obj2", algorithm="SM4-GCM")
    with pytest.raises(selftest.AlgorithmUnavailable, match="SM4-GCM"):
        encryption.decrypt_stream(io.BytesIO(sealed), encryption.Keyring.of(kek, wraps=wraps), "obj")
    # AES-256-GCM objects are untouched by a missing SM4.
    aes_reader = encryption.EncryptingReader(io.BytesIO(b"y" * 10), kek, "obj3")
    aes = aes_reader.read()
    wraps["obj3"] = [aes_reader.wrap] if aes_reader.wrap else []
    ring = encryption.Keyring.of(kek, wraps=wraps)
    assert b"".join(encryption.decrypt_stream(io.BytesIO(aes), ring, "obj3")) == b"y" * 10


def test_sm3_digests_refuse_a_missing_sm3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def missing():
        raise UnsupportedAlgorithm("sm3 is not supported by this backend")

    monkeypatch.setattr(hashes, "SM3", missing)
    file = tmp_path / "f"
    file.write_bytes(b"abc")
    with pytest.raises(selftest.AlgorithmUnavailable, match="SM3"):
        SM3Hash()
    with pytest.raises(selftest.AlgorithmUnavailable, match="SM3"):
        hash_file(file, sm3=True)
    assert hash_file(file).sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_needed_follows_the_settings() -> None:
    assert selftest.needed(encryption_mode="none", algorithm="SM4-GCM", sm3=False) == ("Ed25519",)
    assert selftest.needed(encryption_mode="protected", algorithm="SM4-GCM", sm3=True) == (
        "Ed25519",
        "SM4-GCM",
        "AES key wrap",
        "SM3",
    )


# --- the command: init, doctor, and the first command that needs the algorithm -----------------


def test_the_command_refuses_a_missing_configured_algorithm_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "evidence.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[encryption]\nalgorithm = "SM4-GCM"\n[digests]\nsm3 = true\n'
    )
    args = ("--config", str(config))
    assert invoke_evidence(*args, "init").exit_code == 0  # the real library has SM4 and SM3

    selftest.forget()
    no_sm4(monkeypatch)
    done = invoke_evidence(*args, "verify", "--all")  # needs the services, hence the algorithms
    assert done.exit_code == 2
    assert "SM4-GCM is not available" in done.stderr and "protected records" in done.stderr
    done = invoke_evidence(*args, "init")
    assert done.exit_code == 2 and "SM4-GCM" in done.stderr

    done = invoke_evidence(*args, "doctor", "--quick", "--json")
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    assert done.exit_code == 1
    assert (
        checks["crypto SM4-GCM"]["status"] == "problem" and "cryptography" in checks["crypto SM4-GCM"]["hint"]
    )
    for name in ("Ed25519", "AES key wrap", "SM3"):
        assert checks[f"crypto {name}"]["status"] == "ok", checks[f"crypto {name}"]
    assert "crypto AES-256-GCM" not in checks  # not configured, so not asked for


def test_checkpoints_are_neither_signed_nor_judged_without_a_working_ed25519(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from catalog.checkpoint import raw_public_key, sign_checkpoint_v2

    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint_v2(key, n=1, seq=1, head="0" * 64, time=datetime.now(UTC), prev=None)
    selftest.forget()

    class NoEd25519:
        @staticmethod
        def from_private_bytes(data: bytes):
            raise UnsupportedAlgorithm("ed25519 is not supported by this backend")

    monkeypatch.setattr(selftest, "Ed25519PrivateKey", NoEd25519)
    with pytest.raises(selftest.AlgorithmUnavailable, match="Ed25519"):
        sign_checkpoint_v2(key, n=2, seq=2, head="0" * 64, time=datetime.now(UTC), prev=None)
    # Refused, not reported as a bad signature: a broken library is not a tampered chain.
    with pytest.raises(selftest.AlgorithmUnavailable, match="Ed25519"):
        signed.signed_by(raw_public_key(key.public_key()))
