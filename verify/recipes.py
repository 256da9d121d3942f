"""``VERIFY.txt``: how anyone checks a package with standard tools, without this project.

A plain function of the package's facts; the export writes its result as a tag file beside
``verify-package.mjs`` (the second, independent verifier every package carries).
"""

from __future__ import annotations

from importlib import resources

VERIFIER_NAME = "verify-package.mjs"
RECIPES_NAME = "VERIFY.txt"


def verifier_source() -> bytes:
    """The Node.js verifier shipped inside every package."""
    return resources.files("verify").joinpath(VERIFIER_NAME).read_bytes()


def verify_text(*, case_number: str, case_key: str, signer: str, checkpoint: int, token: bool) -> str:
    """The text of ``VERIFY.txt`` for one package."""
    tsa = (
        """
4. The time-stamp (RFC 3161) of the checkpoint, with the TSA's CA certificate (obtained from
   the TSA, not from this package):

     openssl ts -verify -data data/custody/checkpoint.json \\
       -in data/custody/checkpoint.tsr -CAfile TSA-CA.pem

   "Verification: OK" means a Time Stamping Authority saw these statement bytes at the time
   it names (openssl ts -reply -in data/custody/checkpoint.tsr -text shows it).
"""
        if token
        else """
4. This package carries no time-stamp token: the checkpoint's time rests on the bureau's
   own word.
"""
    )
    return f"""How to check this evidence package / 如何核验本证据包
=====================================================

Case (bureau's case number / 案件编号): {case_number}
Case key / 案件代码: {case_key}
Signed by the key with SHA-256 fingerprint / 签名公钥指纹:
  {signer}
Checkpoint / 检查点: {checkpoint}

What the package proves
-----------------------
- Every file under data/ is the one the archive exported: their SHA-256 digests are listed in
  manifest-sha256.txt, and the archive's signed custody record commits to each of them.
- Each recording and written record is the one recorded when it entered the archive: the
  custody events disclosed in data/custody/events.jsonl record its SHA-256 at ingest (or at
  the archive's upgrade), and every event is hash-linked up to a signed checkpoint.
- No custody event of a disclosed item was left out: each item's events link back to its
  first one through "subject_prev".
- Whoever holds the private key of the fingerprint above signed the checkpoint.

What it does not prove
----------------------
- That the fingerprint above is the bureau's: obtain the trusted fingerprint apart from this
  package (from the bureau in writing, or from the court's earlier records) and compare it.
  A forger can sign a package with a key of his own; only the fingerprint tells.
- Anything about events after the checkpoint, or about items withheld as protected (they
  appear as hash-only links: their existence is proven, their content is not disclosed).
- That the recordings show what happened: only that they are unchanged since ingest.

Checks with standard tools, from this folder
--------------------------------------------
1. Every file's digest (coreutils):

     sha256sum -c manifest-sha256.txt
     sha256sum -c tagmanifest-sha256.txt

2. The checkpoint's signature (OpenSSL 3):

     openssl pkeyutl -verify -pubin -inkey data/custody/keys/{signer}.pem \\
       -rawin -in data/custody/checkpoint.json -sigfile data/custody/checkpoint.sig

   "Signature Verified Successfully" means the key in that file signed these exact bytes.

3. That key's fingerprint, to compare with the trusted one:

     openssl pkey -pubin -in data/custody/keys/{signer}.pem -outform DER | tail -c 32 | sha256sum

   and that the statement names it:  grep -o '"key":"[0-9a-f]*"' data/custody/checkpoint.json
{tsa}
5. The chain of custody: standard tools cannot walk it. With Node.js 18 or later (no
   packages needed), the verifier carried in this package checks the manifests, every link
   and disclosed event, that the signed record commits to every file, that no event was left
   out, the signature, and that the signer is the one you trust:

     node {VERIFIER_NAME} . --trusted-key TRUSTED-FINGERPRINT

   It exits 0 when everything holds and 1 naming each problem. It reads the token's imprint
   but does not check the TSA's signature (step 4 does). The archive's own command does all
   of this too:  evidence verify-package . --trusted-key TRUSTED-FINGERPRINT

6. When the bureau changed its signing key, data/custody/keys/changes/ holds the key-change
   statements ({{OLD}}-{{NEW}}.json), each signed by both keys (.old.sig, .new.sig; step 2's
   command checks each with keys/{{OLD}}.pem and keys/{{NEW}}.pem). Both verifiers follow them
   from the fingerprint you trust, the oldest or the newest; two successors of one key are a
   fork and fail. A key retired as compromised ({{KEY}}-retired-….json) is trusted only for
   checkpoints a trusted time-stamp shows older than the compromise: give the TSA's CA to
   either verifier (--tsa-ca TSA-CA.pem; the Node.js one then runs `openssl ts -verify`);
   without it, no checkpoint of a retired key is trusted.
"""
