"""Trusted time (RFC 3161): what a time-stamp token over a checkpoint statement proves.

A token (the DER ``TimeStampResp`` a TSA answers, kept as ``.tsr``) binds the SHA-256 of the
statement's exact bytes to the TSA's clock, signed by the TSA. It is good proof when its
imprint is that digest, its signature and certificate chain verify against the CA the
installation trusts for time, and its time is not before the statement's own time (a token
cannot predate what it stamps); a token issued long after the checkpoint still proves the
checkpoint existed by then, and is reported as late.

Plain functions over bytes and certificates: requesting a token is ``archive.timestamping``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from .errors import InvalidInput

SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")


@dataclass(frozen=True)
class TokenCheck:
    """What one token proves about one statement. ``problem`` is None when it is good proof."""

    time: datetime | None  # the TSA's time, when the token could be read at all
    problem: str | None = None
    late: bool = False
    tsa: str | None = None  # the TSA's name as the token gives it
    upper: datetime | None = None  # good proof: the statement existed by this time (time + accuracy)

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class TimeTrust:
    """What tokens are checked against: the CA certificates trusted for time, the policy the
    tokens must carry (None: any), and when a token counts as late."""

    roots: tuple[x509.Certificate, ...]
    policy: str | None = None
    late_after: timedelta = timedelta(hours=24)


def request_for(statement: bytes) -> bytes:
    """A DER time-stamp query over SHA-256 of ``statement``, with a nonce, asking for the
    TSA's certificate in the answer (so a verifier needs only the CA)."""
    return (
        TimestampRequestBuilder()
        .data(statement)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
        .as_bytes()
    )


def load_roots(pem: bytes, source: str) -> tuple[x509.Certificate, ...]:
    """The CA certificates in a PEM file (the TSA's CA, and any other root trusted for time)."""
    try:
        roots = x509.load_pem_x509_certificates(pem)
    except ValueError:
        roots = []
    if not roots:
        raise InvalidInput(
            f"{source} holds no PEM certificate",
            hint="give the TSA's CA certificate, as the TSA publishes it ([custody] tsa_ca_file)",
        )
    return tuple(roots)


def imprint_matches(token: bytes, statement: bytes) -> bool:
    """Whether a token's imprint is SHA-256 of ``statement`` (no signature check)."""
    try:
        info = decode_timestamp_response(token).tst_info
    except (ValueError, VerificationError):
        return False
    imprint = info.message_imprint
    return imprint.hash_algorithm == SHA256_OID and imprint.message == hashlib.sha256(statement).digest()


def check_token(token: bytes, statement: bytes, *, statement_time: datetime, trust: TimeTrust) -> TokenCheck:
    """Check ``token`` as proof that ``statement`` existed at the token's time."""
    roots, policy, late_after = trust.roots, trust.policy, trust.late_after
    try:
        response = decode_timestamp_response(token)
        status = PKIStatus(response.status)
        info = response.tst_info
        when = info.gen_time
    except (ValueError, VerificationError) as exc:
        return TokenCheck(None, f"not a time-stamp token: {exc}")
    name = info.name.value if info.name is not None else None
    tsa = name.rfc4514_string() if isinstance(name, x509.Name) else (str(name) if name else None)
    if status != PKIStatus.GRANTED:
        return TokenCheck(when, f"the TSA did not grant it (status {status.name})", tsa=tsa)
    if not imprint_matches(token, statement):
        return TokenCheck(when, "the token is for other bytes than the checkpoint statement", tsa=tsa)
    if policy and info.policy != x509.ObjectIdentifier(policy):
        return TokenCheck(when, f"the token's policy {info.policy.dotted_string} is not {policy}", tsa=tsa)
    builder = VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify_message(response, statement)
    except VerificationError as exc:
        return TokenCheck(
            when, f"the token's signature does not verify against the trusted CA ({exc})", tsa=tsa
        )
    # The token's time carries its accuracy; the statement's time is to the microsecond.
    accuracy = info.accuracy
    slack = timedelta(seconds=accuracy.seconds if accuracy else 0, microseconds=999_999)
    if when + slack < statement_time:
        return TokenCheck(when, f"the token's time {when.isoformat()} is before the checkpoint's", tsa=tsa)
    upper = when
    if accuracy is not None:
        upper += timedelta(
            seconds=accuracy.seconds or 0,
            milliseconds=accuracy.millis or 0,
            microseconds=accuracy.micros or 0,
        )
    return TokenCheck(when, late=when - statement_time > late_after, tsa=tsa, upper=upper)


@dataclass
class TimestampReview:
    """The tokens of a run of checkpoints, as ``audit verify`` and ``verify-package`` report them."""

    stamped: list[int] = field(default_factory=list)  # good proof
    late: list[int] = field(default_factory=list)  # good proof, issued long after the checkpoint
    missing: list[int] = field(default_factory=list)  # no token (yet)
    unchecked: list[int] = field(default_factory=list)  # imprint right, no CA to check the signature
    bad: list[dict[str, object]] = field(default_factory=list)  # {"n", "problem"}
    existed_by: dict[int, datetime] = field(default_factory=dict)  # good proof: n -> latest time

    @property
    def ok(self) -> bool:
        return not self.bad

    def to_json(self) -> dict[str, object]:
        return {
            "stamped": self.stamped,
            "late": self.late,
            "missing": self.missing,
            "unchecked": self.unchecked,
            "bad": self.bad,
        }


def review(
    checkpoints: list[tuple[int, bytes, datetime, bytes | None]], trust: TimeTrust | None
) -> TimestampReview:
    """Check each ``(n, statement bytes, statement time, token or None)``. Without ``trust`` a
    token's imprint is still checked (a token for other bytes is bad), its signature is not."""
    out = TimestampReview()
    for n, statement, when, token in checkpoints:
        if token is None:
            out.missing.append(n)
        elif trust is None:
            if imprint_matches(token, statement):
                out.unchecked.append(n)
            else:
                out.bad.append(
                    {"n": n, "problem": "the token is for other bytes than the checkpoint statement"}
                )
        else:
            result = check_token(token, statement, statement_time=when, trust=trust)
            if not result.ok:
                out.bad.append({"n": n, "problem": result.problem})
            else:
                out.stamped.append(n)
                if result.upper is not None:
                    out.existed_by[n] = result.upper
                if result.late:
                    out.late.append(n)
    return out
