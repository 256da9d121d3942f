"""Turn the per-role S3 policies in ``config/policies/`` into one bucket policy for Ceph RGW.

The role files (``station.json``, ``curator.json``, ``reader.json``) are identity policies as
MinIO and AWS IAM take them: no Principal, the bucket written as ``BUCKET``. RGW 16 has no IAM
user policies that could carry them, so on RGW every role's statements go into the bucket's
policy, each with the Principal of the gateway user that plays the role.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from catalog.errors import InvalidInput

__all__ = ["POLICY_DIR", "BUCKET_PLACEHOLDER", "load_role_policy", "bucket_policy", "apply_bucket_policy"]

#: The role files shipped with the project.
POLICY_DIR = Path(__file__).resolve().parent / "policies"

#: What the role files write where the bucket's name goes.
BUCKET_PLACEHOLDER = "BUCKET"


def _substitute(value: Any, bucket: str) -> Any:
    """``value`` with the bucket placeholder replaced in every ARN it holds."""
    if isinstance(value, str):
        prefix = "arn:aws:s3:::"
        if value.startswith(prefix):
            rest = value[len(prefix) :]
            name, sep, key = rest.partition("/")
            if name == BUCKET_PLACEHOLDER:
                return f"{prefix}{bucket}{sep}{key}"
        return value
    if isinstance(value, list):
        return [_substitute(v, bucket) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, bucket) for k, v in value.items()}
    return value


def load_role_policy(role: str, policy_dir: Path = POLICY_DIR, bucket: str | None = None) -> dict[str, Any]:
    """The identity policy of ``role`` (``policy_dir/ROLE.json``), for ``bucket`` if given."""
    path = Path(policy_dir) / f"{role}.json"
    policy = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), list):
        raise InvalidInput(f"{path}: not an S3 policy (no Statement list)")
    return _substitute(policy, bucket) if bucket is not None else policy


def bucket_policy(
    bucket: str, users: Mapping[str, str] | Iterable[tuple[str, str]], policy_dir: Path = POLICY_DIR
) -> dict[str, Any]:
    """One RGW bucket policy granting each role its statements.

    ``users`` maps a role name (the file ``policy_dir/ROLE.json``) to the gateway user that
    plays it, e.g. ``{"station": "station", "curator": "curator", "reader": "reader"}``. Each
    statement gets ``"Principal": {"AWS": ["arn:aws:iam:::user/USER"]}``, its Sid prefixed
    with the role's name when the Sid would clash, and ``BUCKET`` replaced by ``bucket``.
    """
    statements: list[dict[str, Any]] = []
    sids: set[str] = set()
    pairs = users.items() if isinstance(users, Mapping) else users
    for role, user in pairs:
        if any(c in user for c in ':/"') or not user:
            raise InvalidInput(f"not a gateway user name: {user!r}")
        policy = load_role_policy(role, policy_dir, bucket)
        for number, statement in enumerate(policy["Statement"]):
            if "Principal" in statement or "NotPrincipal" in statement:
                raise InvalidInput(
                    f"{role}.json: statement {number} already names a Principal; "
                    "role files are identity policies"
                )
            stmt = copy.deepcopy(statement)
            stmt["Principal"] = {"AWS": [f"arn:aws:iam:::user/{user}"]}
            sid = str(stmt.get("Sid") or f"{role}{number}")
            if sid in sids:
                sid = f"{role}{user}{sid}"
            sids.add(sid)
            stmt["Sid"] = sid
            statements.append(stmt)
    return {"Version": "2012-10-17", "Statement": statements}


def apply_bucket_policy(minio_client: Any, bucket: str, policy: dict[str, Any]) -> None:
    """Set ``policy`` as the policy of ``bucket``, as the bucket's owner (a ``minio.Minio``)."""
    minio_client.set_bucket_policy(bucket, json.dumps(policy))
