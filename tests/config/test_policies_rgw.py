import json

import pytest

from catalog.errors import InvalidInput
from config.policies_rgw import bucket_policy, load_role_policy
from tests.conftest import run_evidence


def test_role_files_are_identity_policies_for_the_placeholder_bucket() -> None:
    for role in ("station", "curator", "reader", "worker"):
        policy = load_role_policy(role)
        assert all("Principal" not in st for st in policy["Statement"])
        assert "arn:aws:s3:::BUCKET" in json.dumps(policy)


def test_bucket_policy_names_each_user_and_bucket() -> None:
    policy = bucket_policy("evidence", [("station", "st01"), ("station", "st02"), ("reader", "rd")])
    sids = [st["Sid"] for st in policy["Statement"]]
    assert len(sids) == len(set(sids))
    principals = {st["Principal"]["AWS"][0] for st in policy["Statement"]}
    assert principals == {"arn:aws:iam:::user/st01", "arn:aws:iam:::user/st02", "arn:aws:iam:::user/rd"}
    text = json.dumps(policy)
    assert "BUCKET" not in text and "arn:aws:s3:::evidence/*" in text
    station_denies = [
        st
        for st in policy["Statement"]
        if st["Effect"] == "Deny" and st["Principal"]["AWS"] == ["arn:aws:iam:::user/st01"]
    ]
    assert (
        "s3:GetObject" in station_denies[0]["Action"]
        and "s3:DeleteObjectVersion" in station_denies[0]["Action"]
    )


def test_bad_user_names_are_refused() -> None:
    with pytest.raises(InvalidInput):
        bucket_policy("b", {"station": 'x"y'})


def test_the_command_prints_the_policy(tmp_path) -> None:
    result = run_evidence(
        "storage",
        "policy",
        "--bucket",
        "evidence",
        "--station",
        "st01",
        "--curator",
        "cur",
        "--worker",
        "wk",
        env={"EVIDENCE_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    statements = json.loads(result.stdout)["Statement"]
    assert {st["Principal"]["AWS"][0] for st in statements} == {
        "arn:aws:iam:::user/st01",
        "arn:aws:iam:::user/cur",
        "arn:aws:iam:::user/wk",
    }
    worker_puts = [
        st
        for st in statements
        if st["Principal"]["AWS"] == ["arn:aws:iam:::user/wk"] and st["Effect"] == "Allow"
    ]
    assert any(
        st["Resource"]
        == ["arn:aws:s3:::evidence/derivatives/*", "arn:aws:s3:::evidence/keys/wraps/derivatives/*"]
        for st in worker_puts
    )


def test_apply_needs_a_store_that_takes_bucket_policies(tmp_path) -> None:
    result = run_evidence(
        "storage",
        "policy",
        "--bucket",
        "evidence",
        "--station",
        "st01",
        "--apply",
        env={"EVIDENCE_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 2 and "--apply needs an s3:// storage URL" in result.stderr
    assert result.stdout == ""


@pytest.mark.s3
def test_the_command_applies_the_policy_on_rgw(rgw, tmp_path) -> None:
    from tests.conftest import s3_store_for

    store = s3_store_for(rgw)
    store.ensure_ready()
    access, secret = rgw.users["admin"]
    env = {
        "EVIDENCE_DATA_DIR": str(tmp_path),
        "EVIDENCE_STORAGE_URL": f"s3://{rgw.endpoint}/{store.bucket}?secure=false",
        "EVIDENCE_S3_ACCESS_KEY": access,
        "EVIDENCE_S3_SECRET_KEY": secret,
    }
    result = run_evidence(
        "storage", "policy", "--bucket", store.bucket, "--station", "st01", "--apply", env=env
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(store.client.get_bucket_policy(store.bucket)) == json.loads(result.stdout)
