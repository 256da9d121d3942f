"""`evidence init` and `evidence config show`: set up the catalog and keys, inspect the settings."""

from __future__ import annotations

import click

from ..settings import masked
from .base import emit, get_app, json_option, log, out, print_toml


@click.command()
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create or upgrade the catalog and create the signing key. Safe to run again."""
    app = get_app(ctx)
    result = app.init()
    log.info("initialized", extra=result)

    def human() -> None:
        before = result["schema_before"]
        out.print(f"catalog    {result['catalog']}")
        out.print(
            f"schema     {result['schema']}"
            + (
                " (created)"
                if before is None
                else f" (upgraded from {before})"
                if before != result["schema"]
                else " (up to date)"
            )
        )
        out.print(f"storage    {result['storage']}")
        out.print(
            f"signing key {result['signing_key']} "
            f"({'created' if result['signing_key_created'] else 'present'}, id {result['key_id']})"
        )
        out.print(f"fingerprint {result['fingerprint']}", highlight=False)
        out.print(
            f"trusted    {'pinned now' if result['pinned_now'] else 'pinned'} in {result['pinned_in']} "
            "(give this fingerprint to whoever checks packages, by a channel other than the package)",
            highlight=False,
        )
        if result["attested"]:
            out.print(f"custody v2 {result['attested']} recording(s) and document(s) attested")
        out.print(
            f"kek        {result['kek']} "
            f"({'created' if result['kek_created'] else 'present'}, id {result['kek_id']})"
        )

    emit(as_json, result, human)


@click.group("config")
def config_group() -> None:
    """Inspect the effective settings."""


@config_group.command("show")
@json_option
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective settings (file, environment and defaults merged), secrets masked."""
    app = get_app(ctx)
    data = masked(app.settings)

    def human() -> None:
        out.print(f"# from {app.settings.source}", highlight=False)
        print_toml(data)

    emit(as_json, data, human)


def register(main: click.Group) -> None:
    main.add_command(init)
    main.add_command(config_group)
