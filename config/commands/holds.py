"""`evidence hold ...`: legal holds, which keep anything they cover from deletion."""

from __future__ import annotations

import click

from archive.holds import release_hold, set_hold

from .base import emit, get_app, json_option, out


@click.group("hold")
def hold_group() -> None:
    """Legal holds: nothing held can be deleted, whatever its retention."""


@hold_group.command("set")
@click.argument("item")
@click.option("--reason", required=True, help="Why (kept in the custody chain).")
@json_option
@click.pass_context
def hold_set(ctx: click.Context, item: str, reason: str, as_json: bool) -> None:
    """Hold ITEM: an archive number (档案号), an item number (共同编号), or a case by its case
    number (案号) or case key (案件代码): all its items."""
    app = get_app(ctx).require_catalog()
    subject = set_hold(app.services, item, reason=reason)
    emit(as_json, {"subjects": [subject]}, lambda: out.print(f"held {subject}", highlight=False))


@hold_group.command("release")
@click.argument("item")
@click.option("--reason", required=True, help="Why (kept in the custody chain).")
@json_option
@click.pass_context
def hold_release(ctx: click.Context, item: str, reason: str, as_json: bool) -> None:
    """Release the holds on ITEM (objects other holds still cover stay held)."""
    app = get_app(ctx).require_catalog()
    subject = release_hold(app.services, item, reason=reason)
    emit(as_json, {"subjects": [subject]}, lambda: out.print(f"released {subject}", highlight=False))


def register(main: click.Group) -> None:
    main.add_command(hold_group)
