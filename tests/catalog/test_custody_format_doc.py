"""The worked example in docs/CUSTODY-FORMAT.md is what the code makes, and what openssl checks."""

import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.chain import seal_v2
from catalog.checkpoint import fingerprint, public_key_pem, raw_public_key, sign_checkpoint_v2

DOC = Path(__file__).resolve().parents[2] / "docs" / "CUSTODY-FORMAT.md"


def example():
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    prev = hashlib.sha256(b"example: the hash of event 41").hexdigest()
    event = seal_v2(
        42,
        datetime(2020, 11, 5, 0, 50, 56, tzinfo=UTC),
        "station:ST01",
        "attested",
        "KZCG-20201105-ST01-0007",
        {
            "archive_no": "KZCG-20201105-ST01-0007",
            "sha256": hashlib.sha256(b"recording").hexdigest(),
            "size": 73400320,
            "note": "现场",
        },
        prev,
        None,
        salt="00112233445566778899aabbccddeeff",
    )
    cp = sign_checkpoint_v2(
        key,
        n=7,
        seq=42,
        head=event.hash,
        time=datetime(2020, 11, 5, 1, tzinfo=UTC),
        prev=hashlib.sha256(b"example: statement 6").hexdigest(),
    )
    return key, event, cp


def test_the_worked_example_is_what_the_code_makes() -> None:
    key, event, cp = example()
    doc = DOC.read_text(encoding="utf-8")
    assert event.body is not None and event.body.decode() in doc and f"the {len(event.body)} bytes" in doc
    assert f"{event.seq}\t{event.prev_hash}\t{event.body_hash}\t{event.hash}" in doc
    assert cp.signed_bytes().decode() in doc and cp.signature_bytes().hex() in doc
    assert raw_public_key(key.public_key()).hex() in doc and fingerprint(key.public_key()) in doc


def test_the_documented_openssl_recipe_checks_the_signature(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is part of the test environment"
    key, _event, cp = example()
    (tmp_path / "checkpoint.json").write_bytes(cp.signed_bytes())
    (tmp_path / "checkpoint.sig").write_bytes(cp.signature_bytes())
    (tmp_path / "key.pem").write_bytes(public_key_pem(raw_public_key(key.public_key())))
    verify = [
        openssl,
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "key.pem",
        "-rawin",
        "-in",
        "checkpoint.json",
    ]
    ok = subprocess.run([*verify, "-sigfile", "checkpoint.sig"], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    (tmp_path / "checkpoint.json").write_bytes(cp.signed_bytes().replace(b'"seq":42', b'"seq":43'))
    bad = subprocess.run(
        [*verify, "-sigfile", "checkpoint.sig"], cwd=tmp_path, capture_output=True, text=True
    )
    assert bad.returncode != 0


def key_history_example():
    from catalog import keyhistory

    key, _event, cp = example()
    new = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
    change = keyhistory.sign_change(key, new, last=cp, time=datetime(2021, 1, 1, tzinfo=UTC))
    retirement = keyhistory.sign_retirement(
        new, key=change.old, since=datetime(2020, 12, 1, tzinfo=UTC), time=datetime(2021, 2, 1, tzinfo=UTC)
    )
    return new, cp, change, retirement


def test_the_key_history_example_is_what_the_code_makes() -> None:
    new, cp, change, retirement = key_history_example()
    doc = DOC.read_text(encoding="utf-8")
    assert fingerprint(new.public_key()) in doc and cp.digest() in doc
    assert f"keys/changes/{change.name}.json" in doc and f"keys/changes/{retirement.name}.json" in doc
    for statement in (change.statement, retirement.statement):
        assert f"\n{statement.decode()}\n" in doc
    for sig in (change.old_sig, change.new_sig, retirement.sig):
        assert sig.hex() in doc


def test_the_documented_openssl_recipe_checks_both_signatures_of_a_key_change(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is part of the test environment"
    key, _event, _cp = example()
    new, _cp, change, _retirement = key_history_example()
    for role, signer in (("old", key), ("new", new)):
        (tmp_path / f"{role}.pem").write_bytes(public_key_pem(raw_public_key(signer.public_key())))
    (tmp_path / "change.json").write_bytes(change.statement)
    (tmp_path / "old.sig").write_bytes(change.old_sig)
    (tmp_path / "new.sig").write_bytes(change.new_sig)

    def check(pem: str, sig: str) -> bool:
        run = subprocess.run(
            [
                openssl,
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                pem,
                "-rawin",
                "-in",
                "change.json",
                "-sigfile",
                sig,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        return run.returncode == 0 and "Signature Verified Successfully" in run.stdout

    assert check("old.pem", "old.sig") and check("new.pem", "new.sig")
    assert not check("new.pem", "old.sig") and not check("old.pem", "new.sig")  # one key cannot sign for both
