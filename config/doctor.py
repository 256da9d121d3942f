"""`evidence doctor`: what is judged, as plain functions of values.

Each check ends in a `Finding`: ``ok``; ``warning`` (printed, the installation still works);
``problem`` (something is broken or overdue, and the finding says what to do); ``skipped``
(cannot be checked here, and why). The probes that gather the values (files, database, S3,
ffmpeg) live in ``config.doctor_probes``; nothing here does I/O.

Exit codes: 0 healthy (warnings allowed), 1 at least one problem, 2 the settings are
unusable (nothing else could be checked).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

Status = Literal["ok", "warning", "problem", "skipped"]
GIB = 1 << 30


@dataclass(frozen=True)
class Finding:
    check: str  # what was checked, e.g. "catalog", "keys.signing", "station ST01"
    status: Status
    message: str
    hint: str = ""  # what to do; always given for a problem
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "status": self.status, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.data:
            out["data"] = self.data
        return out


def ok(check: str, message: str, **data: Any) -> Finding:
    return Finding(check, "ok", message, data=data)


def warning(check: str, message: str, hint: str = "", **data: Any) -> Finding:
    return Finding(check, "warning", message, hint, data)


def problem(check: str, message: str, hint: str, **data: Any) -> Finding:
    return Finding(check, "problem", message, hint, data)


def skipped(check: str, message: str) -> Finding:
    return Finding(check, "skipped", message)


SETTINGS_CHECK = "settings"


def exit_code(findings: Iterable[Finding]) -> int:
    found = list(findings)
    if any(f.check == SETTINGS_CHECK and f.status == "problem" for f in found):
        return 2
    return 1 if any(f.status == "problem" for f in found) else 0


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    return {s: sum(1 for f in findings if f.status == s) for s in ("ok", "warning", "problem", "skipped")}


# --- durations, as people read them ----------------------------------------------------------


def span(delta: timedelta) -> str:
    """'3 d 4 h', '5 h 12 min', '40 s'."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


# --- the catalog -----------------------------------------------------------------------------


def judge_schema(current: str | None, head: str, known: Iterable[str]) -> Finding:
    if current is None:
        return problem("catalog", "the catalog is not initialized", "run `evidence init`")
    if current == head:
        return ok("catalog", f"reachable, at the newest schema revision {head}", revision=current)
    if current not in set(known):
        return problem(
            "catalog",
            f"the catalog is at revision {current}, which this program does not know",
            "it was written by a newer version of evidence-archive: upgrade this program",
            revision=current,
        )
    return problem(
        "catalog",
        f"the catalog is at revision {current}, this program needs {head}",
        "stop the services, back up the catalog, then run `evidence init` to upgrade it",
        revision=current,
    )


# --- keys ------------------------------------------------------------------------------------


def judge_key_id(check: str, what: str, recorded: str | None, actual: str) -> Finding:
    """A key file against the id the catalog recorded when its records were first made."""
    if recorded is None:
        return warning(
            check,
            f"{what} {actual} is not recorded in the catalog yet",
            "run `evidence init`, which records it",
            key_id=actual,
        )
    if recorded != actual:
        return problem(
            check,
            f"{what} file holds key {actual}, but this catalog's records were made with {recorded}",
            "restore the right key file from its backup",
            key_id=actual,
            recorded=recorded,
        )
    return ok(check, f"{what} {actual} matches the catalog", key_id=actual)


def judge_signing_history(public_key: str, history: Sequence[str]) -> Finding:
    """The signing key against the keys that signed earlier checkpoints (newest last).

    The one place that decides which signing keys are acceptable: a key that signed no
    checkpoint yet, after others did, is a problem (a replaced key breaks the chain of
    checkpoints an auditor checks)."""
    if not history:
        return ok("keys.history", "no checkpoint signed yet")
    if history[-1] == public_key:
        return ok("keys.history", f"signed the newest of {len(history)} checkpoint(s)")
    if public_key in history:
        return warning(
            "keys.history",
            "the signing key signed earlier checkpoints but not the newest",
            "check which key signed the newest checkpoint (`evidence audit verify`)",
        )
    return problem(
        "keys.history",
        "the signing key signed none of the catalog's checkpoints",
        "restore the signing key from its backup; a new key breaks the checkpoints' chain",
    )


# --- storage ---------------------------------------------------------------------------------

# What a GET of a key that does not exist answers, for each kind of credential.
KNOWN_KEY = {"AccessDenied", "NoSuchKey"}
WRONG_KEY = {"InvalidAccessKeyId", "SignatureDoesNotMatch"}


def judge_credential(role: str, code: str, *, may_read: bool) -> Finding:
    """An authenticated GET of a missing key: the answer tells a known credential from a
    wrong one without writing anything. ``may_read``: the role is allowed to read objects."""
    check = f"storage.credential ({role})"
    if code in WRONG_KEY:
        return problem(
            check,
            f"the store refused the {role} credential ({code})",
            "check storage.access_key and storage.secret_key (or their files) against the "
            "user created for this role",
            answer=code,
        )
    if code == "NoSuchKey":
        if may_read:
            return ok(check, f"the {role} credential is accepted", answer=code)
        return warning(
            check,
            f"the {role} credential can read objects, which its role should not",
            f"apply config/policies/{role}.json to this user",
            answer=code,
        )
    if code == "AccessDenied":
        if may_read:
            return problem(
                check,
                f"the {role} credential is known but may not read objects",
                f"apply config/policies/{role}.json to this user",
                answer=code,
            )
        return ok(check, f"the {role} credential is known and may not read (as its role wants)", answer=code)
    return problem(
        check, f"the store answered {code} to a read", "check the storage URL and the store", answer=code
    )


def judge_bucket(
    versioning: str | None, lock_enabled: bool, default_mode: str | None, configured_mode: str
) -> list[Finding]:
    """The bucket as a curator or reader sees it: versioned, Object Lock on, any default
    retention in the mode the settings name."""
    found = []
    if versioning == "Enabled":
        found.append(ok("storage.versioning", "the bucket is versioned"))
    else:
        found.append(
            problem(
                "storage.versioning",
                f"the bucket is not versioned ({versioning or 'never enabled'})",
                "evidence needs a bucket created with Object Lock (which versions it): "
                "create a new bucket with `evidence init` and move to it",
            )
        )
    if not lock_enabled:
        found.append(
            problem(
                "storage.object_lock",
                "the bucket has no Object Lock",
                "Object Lock can only be enabled when a bucket is created: "
                "create a new bucket with `evidence init` and move to it",
            )
        )
    elif default_mode is None:
        found.append(
            warning(
                "storage.object_lock",
                "Object Lock is on, with no default retention",
                "set a default retention in the configured mode, so a version is locked "
                "from the moment it is written (see config/policies/README.md)",
            )
        )
    elif default_mode != configured_mode:
        found.append(
            problem(
                "storage.object_lock",
                f"the bucket's default retention is {default_mode}, the settings say {configured_mode}",
                "make storage.lock_mode and the bucket's default retention agree",
            )
        )
    else:
        found.append(ok("storage.object_lock", f"Object Lock on, default retention {default_mode}"))
    return found


# --- the machine -----------------------------------------------------------------------------


def judge_free_space(what: str, path: str, free_bytes: int, min_gib: float) -> Finding:
    check = f"space ({what})"
    gib = free_bytes / GIB
    if gib < min_gib:
        return warning(
            check,
            f"{path}: {gib:.1f} GiB free, under the {min_gib:g} GiB wanted",
            "free space or grow the file system before it fills",
            path=path,
            free_gib=round(gib, 2),
        )
    return ok(check, f"{path}: {gib:.1f} GiB free", path=path, free_gib=round(gib, 2))


def judge_tool(name: str, version: str | None, required: bool) -> Finding:
    if version:
        return ok(name, version, version=version)
    if required:
        return problem(
            name, f"{name} is not installed", "install Debian's ffmpeg package (apt-get install ffmpeg)"
        )
    return warning(name, f"{name} is not installed", "install Debian's ffmpeg package for derivatives")


def judge_clock(skew_seconds: float | None, limit_seconds: float, backend: str) -> Finding:
    """This machine's clock against the database server's: object locks and retention run
    on the real clock, so a machine whose clock is off locks for the wrong time."""
    if skew_seconds is None:
        return skipped("clock", f"cannot be checked on {backend} (the database has no clock of its own)")
    shown = f"{skew_seconds:+.1f} s"
    if abs(skew_seconds) > limit_seconds:
        return problem(
            "clock",
            f"this machine's clock is {shown} off the database server's",
            "synchronise both clocks (NTP, e.g. systemd-timesyncd or chrony)",
            skew_seconds=round(skew_seconds, 3),
        )
    return ok("clock", f"{shown} from the database server's", skew_seconds=round(skew_seconds, 3))


# --- schedules -------------------------------------------------------------------------------


def judge_age(
    check: str, what: str, last: datetime | None, now: datetime, cadence: timedelta, hint: str
) -> Finding:
    """A job (or a station) against the cadence it should keep."""
    if last is None:
        return warning(check, f"no {what} yet", hint)
    age = now - last
    data = {"last": last.isoformat(), "age_hours": round(age.total_seconds() / 3600, 2)}
    if age > cadence:
        return problem(check, f"the last {what} was {span(age)} ago, more than {span(cadence)}", hint, **data)
    return ok(check, f"the last {what} was {span(age)} ago", **data)
