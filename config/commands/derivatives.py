"""`evidence derivatives ...`: proxies, posters, sheets and waveforms as stored."""

from __future__ import annotations

import click

from .base import emit, get_app, json_option, out


@click.group("derivatives")
def derivatives_group() -> None:
    """Viewing copies made from the originals (never the evidence itself)."""


@derivatives_group.command("prune-redundant")
@click.option("--confirm", is_flag=True, help="Delete them; without it, only list what would go.")
@json_option
@click.pass_context
def prune_redundant_cmd(ctx: click.Context, confirm: bool, as_json: bool) -> None:
    """Remove the proxies of recordings that browsers play as they are (remux copies made
    before originals were played directly). One custody event per proxy removed; a proxy
    still under its original's lock or legal hold is left and reported: run again later.
    Exit 1 when some were refused."""
    from archive.redundant import prune_redundant

    app = get_app(ctx).require_catalog()
    result = prune_redundant(app.services, confirm=confirm)
    data = result.to_json()

    def human() -> None:
        total = sum(r.size or 0 for r in result.found)
        out.print(
            f"redundant proxies {len(result.found)} ({total} B); pruned {len(result.pruned)} "
            f"({data['bytes_pruned']} B), refused {len(result.refused)}"
            + ("" if confirm else "; nothing deleted without --confirm"),
            highlight=False,
        )
        for r, why in result.refused:
            out.print(f"  refused {r.archive_no} {r.key}: {why}", highlight=False, markup=False)

    emit(as_json, data, human)
    if result.refused:
        ctx.exit(1)


def register(main: click.Group) -> None:
    main.add_command(derivatives_group)
