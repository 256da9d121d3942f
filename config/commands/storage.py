"""`evidence storage policy`: the Ceph RGW bucket policy that gives gateway users their roles."""

from __future__ import annotations

import json

import click

from .base import get_app


@click.group("storage")
def storage_group() -> None:
    """Object-store administration."""


@storage_group.command("policy")
@click.option("--bucket", required=True, help="The archive's bucket.")
@click.option(
    "--station", "stations", multiple=True, metavar="USER", help="Gateway user of a station (repeatable)."
)
@click.option("--curator", "curators", multiple=True, metavar="USER", help="Gateway user of the curator.")
@click.option(
    "--reader",
    "readers",
    multiple=True,
    metavar="USER",
    help="Gateway user of readers (fixity sweeps, exports, web pages).",
)
@click.option(
    "--worker",
    "workers",
    multiple=True,
    metavar="USER",
    help="Gateway user of derive workers (read originals, put derivatives).",
)
@click.option(
    "--apply",
    "apply_it",
    is_flag=True,
    help="Set it on the bucket with the settings' S3 credentials (the bucket owner's).",
)
@click.pass_context
def storage_policy(
    ctx: click.Context,
    bucket: str,
    stations: tuple[str, ...],
    curators: tuple[str, ...],
    readers: tuple[str, ...],
    workers: tuple[str, ...],
    apply_it: bool,
) -> None:
    """Print the bucket policy that gives Ceph RGW users the station, curator, reader
    and worker roles of config/policies/ (RGW has no IAM user policies; MinIO and AWS take the role
    files directly, see config/policies/README.md)."""
    from ..policies_rgw import apply_bucket_policy, bucket_policy

    users = [
        (role, user)
        for role, names in (
            ("station", stations),
            ("curator", curators),
            ("reader", readers),
            ("worker", workers),
        )
        for user in names
    ]
    if not users:
        raise click.UsageError("name at least one user with --station, --curator, --reader or --worker")
    policy = bucket_policy(bucket, users)
    if apply_it:
        store = get_app(ctx).store
        if not store.capabilities.bucket_policy:
            raise click.UsageError("--apply needs an s3:// storage URL in the settings")
        # Only a store that takes bucket policies has the S3 client that sets one.
        apply_bucket_policy(store.client, bucket, policy)  # type: ignore[attr-defined]  # S3 only
    click.echo(json.dumps(policy, indent=2))


def register(main: click.Group) -> None:
    main.add_command(storage_group)
