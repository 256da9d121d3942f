"""`evidence retention ...`: the retention cron, its plan, and bringing a recording back."""

from __future__ import annotations

import click

from catalog.times import parse_user_time

from .base import emit, get_app, json_option, out


@click.group("retention")
def retention_group() -> None:
    """The retention cron: what may be deleted, when and why; nothing kept by a rule is touched."""


def _retention(ctx: click.Context, now: str | None, dry_run: bool, confirm: bool, as_json: bool) -> None:
    from archive.retention_run import run

    app = get_app(ctx).require_catalog()
    policy_now = parse_user_time(now, app.settings.zone) if now else app.now()
    result = run(
        app.services,
        app.rules,
        now=policy_now,
        dry_run=dry_run,
        confirm=confirm,
        max_purges=app.settings.retention.max_purges_per_run,
    )
    data = result.to_json()

    def human() -> None:
        out.print(
            f"policy clock {data['now']}: kept {data['kept']}, due {len(result.due)}, "
            f"pending {len(result.pending)}, purged {len(result.purged)}, "
            f"refused {len(result.refused)}, kept again {len(result.restored)}",
            highlight=False,
        )
        for name in ("due", "pending", "purged", "refused", "restored"):
            for e in data[name]:
                out.print(
                    f"  {name:8} {e['subject']}  {e['reason']}"
                    + (f"  (due {e['due_at']})" if e["due_at"] else ""),
                    highlight=False,
                    markup=False,
                )

    emit(as_json, data, human)
    if result.refused:
        ctx.exit(1)


@retention_group.command("plan")
@click.option("--now", metavar="TIME", help="Policy clock (drills, tests); storage locks use the real one.")
@json_option
@click.pass_context
def retention_plan(ctx: click.Context, now: str | None, as_json: bool) -> None:
    """What a run would do, and why; changes nothing."""
    _retention(ctx, now, True, False, as_json)


@retention_group.command("run")
@click.option("--now", metavar="TIME", help="Policy clock (drills, tests); storage locks use the real one.")
@click.option("--dry-run", is_flag=True, help="Compute everything, change nothing (same as plan).")
@click.option(
    "--confirm",
    is_flag=True,
    help="Purge even items whose due date moved earlier, and more than the per-run limit.",
)
@json_option
@click.pass_context
def retention_run(ctx: click.Context, now: str | None, dry_run: bool, confirm: bool, as_json: bool) -> None:
    """The cron job: due items become pending deletion for the grace period, then are purged with
    a tombstone. Exit 1 when a purge was refused (by a safeguard or by the storage lock)."""
    _retention(ctx, now, dry_run, confirm, as_json)


@retention_group.command("restore")
@click.argument("archive_no")
@click.option("--reason", required=True, help="Why (kept in the custody chain).")
@json_option
@click.pass_context
def retention_restore(ctx: click.Context, archive_no: str, reason: str, as_json: bool) -> None:
    """Bring back a recording pending deletion; it is kept at least another routine period."""
    from archive.retention_run import restore

    app = get_app(ctx).require_catalog()
    restore(app.services, archive_no, reason=reason)
    emit(as_json, {"restored": [archive_no]}, lambda: out.print(f"restored {archive_no}", highlight=False))


def register(main: click.Group) -> None:
    main.add_command(retention_group)
