"""Known-answer self-tests of the cryptographic algorithms, run before each is first used.

Every algorithm here comes from the OpenSSL build behind ``cryptography``, and a build may lack
one (SM4 and SM3 are optional in OpenSSL) or be broken. Records written for decades must not be
sealed, hashed or signed by an algorithm nobody checked, so each one is run once per process on
a published test vector before its first use; a missing algorithm is refused with its name and
what to do, and a wrong answer is refused as a broken build.

The vectors, each with the document that publishes it:

* AES-256-GCM: test case 16 of McGrew and Viega, "The Galois/Counter Mode of Operation"
  (the GCM submission NIST's SP 800-38D test vectors start from): 256-bit key, 96-bit IV,
  60-byte plaintext, 20-byte associated data.
* SM4-GCM: RFC 8998, appendix A.1 (SM4-GCM test vector).
* SM3: GB/T 32905-2016, appendix A.1 (the message "abc").
* Ed25519: RFC 8032, section 7.1, TEST 1 (the empty message).
* AES key wrap (every data key is wrapped with it): RFC 3394, section 4.6 (256 bits of key
  data with a 256-bit KEK).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from .errors import EvidenceError

AES_256_GCM, SM4_GCM, SM3, ED25519, AES_KW = "AES-256-GCM", "SM4-GCM", "SM3", "Ed25519", "AES key wrap"

_h = bytes.fromhex

# What each algorithm is for, said in the refusal.
_PURPOSE = {
    AES_256_GCM: "protected records are sealed with it ([encryption] algorithm)",
    SM4_GCM: "protected records are sealed with it ([encryption] algorithm)",
    SM3: "digests are computed with it ([digests] sm3)",
    ED25519: "checkpoints and packages are signed and verified with it",
    AES_KW: "every protected record's data key is wrapped with it",
}


class AlgorithmSelfTestError(EvidenceError):
    """An algorithm the settings need cannot be used on this machine."""

    def __init__(self, message: str, *, algorithm: str, hint: str) -> None:
        super().__init__(message, hint=hint, algorithm=algorithm)
        self.algorithm = algorithm


class AlgorithmUnavailable(AlgorithmSelfTestError):
    """The cryptography library's OpenSSL build does not offer the algorithm."""


class SelfTestFailed(AlgorithmSelfTestError):
    """The algorithm is there but gives a wrong answer on its published test vector."""


# --- the vectors: each function returns True when the answer is the published one ------------


def _aes_256_gcm() -> bool:
    key = _h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
    iv = _h("cafebabefacedbaddecaf888")
    aad = _h("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    plain = _h(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
    )
    sealed = _h(
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        "76fc6ece0f4e1768cddf8853bb2d551b"  # the tag
    )
    box = AESGCM(key)
    return box.encrypt(iv, plain, aad) == sealed and box.decrypt(iv, sealed, aad) == plain


def _sm4_gcm() -> bool:
    key = _h("0123456789abcdeffedcba9876543210")
    iv = _h("00001234567800000000abcd")
    aad = _h("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    plain = _h("aa" * 8 + "bb" * 8 + "cc" * 8 + "dd" * 8 + "ee" * 8 + "ff" * 8 + "ee" * 8 + "aa" * 8)
    cipher = _h(
        "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
        "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
    )
    tag = _h("83de3541e4c2b58177e065a9bf7b62ec")
    enc = Cipher(algorithms.SM4(key), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(aad)
    got = enc.update(plain) + enc.finalize()
    dec = Cipher(algorithms.SM4(key), modes.GCM(iv, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    back = dec.update(cipher) + dec.finalize()
    return got == cipher and enc.tag == tag and back == plain


def _sm3() -> bool:
    digest = hashes.Hash(hashes.SM3())
    digest.update(b"abc")
    return digest.finalize() == _h("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")


def _ed25519() -> bool:
    key = Ed25519PrivateKey.from_private_bytes(
        _h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    public = _h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = _h(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    Ed25519PublicKey.from_public_bytes(public).verify(signature, b"")  # raises when it fails
    return raw == public and key.sign(b"") == signature


def _aes_key_wrap() -> bool:
    kek = _h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    key = _h("00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f")
    wrapped = _h("28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21")
    return aes_key_wrap(kek, key) == wrapped and aes_key_unwrap(kek, wrapped) == key


VECTORS: dict[str, Callable[[], bool]] = {
    AES_256_GCM: _aes_256_gcm,
    SM4_GCM: _sm4_gcm,
    SM3: _sm3,
    ED25519: _ed25519,
    AES_KW: _aes_key_wrap,
}

_passed: set[str] = set()
_lock = threading.Lock()


def check(name: str) -> None:
    """Run ``name``'s known-answer test now; raise a typed error naming it if it fails."""
    test = VECTORS.get(name)
    if test is None:
        raise EvidenceError(f"no self-test for algorithm {name!r}", hint=f"one of {', '.join(VECTORS)}")
    try:
        right = test()
    except UnsupportedAlgorithm as exc:
        raise AlgorithmUnavailable(
            f"{name} is not available in this machine's cryptography library ({exc}); {_PURPOSE[name]}",
            algorithm=name,
            hint=f"install a `cryptography` wheel whose OpenSSL includes {name} (the pinned one "
            "in constraints.txt does), or choose settings that do not need it",
        ) from None
    except Exception as exc:  # noqa: BLE001 - a failed tag, verify or unwrap, or a broken build
        raise _wrong(name, f"{type(exc).__name__}: {exc}") from None
    if not right:
        raise _wrong(name, "the output differs from the published test vector")


def _wrong(name: str, detail: str) -> SelfTestFailed:
    return SelfTestFailed(
        f"{name} failed its known-answer self-test ({detail}); nothing is sealed, hashed or signed with it",
        algorithm=name,
        hint="the cryptography library or its OpenSSL is broken: reinstall the pinned version "
        "(pip install -c constraints.txt .) and run `evidence doctor`",
    )


def require(*names: str) -> None:
    """Check each of ``names`` once per process, before its first use (cheap afterwards)."""
    for name in names:
        if name in _passed:
            continue
        with _lock:
            if name not in _passed:
                check(name)
                _passed.add(name)


def forget() -> None:
    """Run every test again on next use (tests, after changing the library underneath)."""
    with _lock:
        _passed.clear()


def needed(*, encryption_mode: str, algorithm: str, sm3: bool) -> tuple[str, ...]:
    """The algorithms settings like these use: Ed25519 always (checkpoints), the record
    algorithm and the key wrap unless encryption is off, SM3 when digests include it."""
    found = [ED25519]
    if encryption_mode != "none":
        found += [algorithm, AES_KW]
    if sm3:
        found.append(SM3)
    return tuple(found)


def results(names: Iterable[str]) -> list[tuple[str, AlgorithmSelfTestError | None]]:
    """Each algorithm with its refusal, or None when it passed (for `evidence doctor`)."""
    found: list[tuple[str, AlgorithmSelfTestError | None]] = []
    for name in names:
        try:
            check(name)
        except AlgorithmSelfTestError as exc:
            found.append((name, exc))
        else:
            found.append((name, None))
    return found
