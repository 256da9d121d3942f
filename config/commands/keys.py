"""`evidence keys ...`: the key-encryption keys, their rotation, and superseded key wraps."""

from __future__ import annotations

import click

from .base import emit, err, get_app, json_option, out


@click.group("keys")
def keys_group() -> None:
    """Key-encryption keys (KEKs): which are loaded, rotating to a new one, and deleting the
    key wraps a rotation superseded."""


@keys_group.command("list")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """The KEKs found (key_file and key_folder), the current one, and the wraps under each."""
    from sqlalchemy import func, select

    from archive.kek_rotation import in_progress
    from catalog.models import KeyWrap

    app = get_app(ctx).require_catalog()
    keks, current = app.keks
    with app.sessions() as session:
        counts: dict[str, int] = {
            kid: n
            for kid, n in session.execute(select(KeyWrap.kek_id, func.count()).group_by(KeyWrap.kek_id))
        }
        superseded = session.execute(
            select(func.count()).select_from(KeyWrap).where(KeyWrap.superseded_at.is_not(None))
        ).scalar_one()
        unfinished = in_progress(session)
    data = {
        "current": current,
        "loaded": sorted(keks),
        "rotation_in_progress": unfinished,
        "wraps": counts,
        "superseded_wraps": superseded,
    }

    def human() -> None:
        for kid in sorted({*keks, *counts}):
            mark = "current" if kid == current else ("loaded" if kid in keks else "NOT LOADED")
            out.print(f"{kid}  {mark:10}  wraps {counts.get(kid, 0)}", highlight=False)
        out.print(f"superseded wraps {superseded}", highlight=False)
        if data["rotation_in_progress"]:
            out.print(
                f"a rotation to {data['rotation_in_progress']} is unfinished: "
                "run `evidence keys rotate-kek` to finish it",
                highlight=False,
            )

    emit(as_json, data, human)


@keys_group.command("new-kek")
@json_option
@click.pass_context
def new_kek_cmd(ctx: click.Context, as_json: bool) -> None:
    """Make a new KEK file in key_folder without using it yet: copy it (and back it up) to
    every machine that stores protected records, then `evidence keys rotate-kek --kek-id ID`."""
    app = get_app(ctx).require_catalog()
    from archive import encryption

    kid = encryption.kek_id(app.new_kek())
    path = app.settings.encryption_key_folder / f"{kid}.key"
    emit(
        as_json,
        {"kek_id": kid, "file": str(path)},
        lambda: out.print(f"new KEK {kid}: {path}", highlight=False),
    )


@keys_group.command("rotate-kek")
@click.option(
    "--kek-id",
    "use",
    default=None,
    help="Rotate to this KEK, made before by `evidence keys new-kek` (default: make one now).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 100000),
    default=200,
    show_default=True,
    help="Objects per batch (one custody event each).",
)
@json_option
@click.pass_context
def rotate_kek_cmd(ctx: click.Context, use: str | None, batch: int, as_json: bool) -> None:
    """Make a new KEK (in key_folder) and wrap every data key under it, version 1 objects
    included. New objects are wrapped under the new KEK from the start. Killed or failed
    part way, run it again: it resumes the same rotation. Once it reports done (and the new
    key file is backed up), the old KEK files can be destroyed; see the README for what a
    leaked old KEK still opens. Exit 1 when some objects could not be wrapped again."""
    from archive.kek_rotation import rewrap_all, start

    from ..progress import counting

    app = get_app(ctx).require_catalog()
    kek_id, resumed = start(app.services, app.new_kek, app.now(), use=use)
    app.reload_keys()
    with counting(err, f"rotate to {kek_id}", quiet=as_json) as update:
        result = rewrap_all(app.services, kek_id, batch=batch, on_object=update)
    result.resumed = resumed
    data = result.to_json()
    data["done"] = not result.failed
    old_files = [str(p) for p in app.kek_paths() if p.stem != kek_id]

    def human() -> None:
        out.print(
            f"{'resumed' if resumed else 'new'} KEK {kek_id}: {result.rewrapped} of {result.total} "
            f"data keys wrapped again in {result.batches} batches",
            highlight=False,
        )
        for key, why in result.failed:
            out.print(f"  failed {key}: {why}", highlight=False, markup=False)
        if not result.failed:
            out.print(
                f"done; back up the new key file, then the old ones may be destroyed: {', '.join(old_files)}",
                highlight=False,
                markup=False,
            )

    emit(as_json, data, human)
    if result.failed:
        ctx.exit(1)


@keys_group.command("delete-superseded")
@click.option("--confirm", is_flag=True, help="Delete them; without it, only list what would go.")
@json_option
@click.pass_context
def delete_superseded_cmd(ctx: click.Context, confirm: bool, as_json: bool) -> None:
    """Delete the key wraps a rotation superseded whose lock has ended (storage object and
    catalog copy), so a leaked old KEK no longer opens version 2 objects through them. A
    wrap still locked is left and reported with the date it may go."""
    from archive.kek_rotation import delete_superseded

    app = get_app(ctx).require_catalog()
    result = delete_superseded(app.services, confirm=confirm)
    data = result.to_json()

    def human() -> None:
        out.print(
            f"{'deleted' if confirm else 'would delete'} {len(result.deleted)}, "
            f"still locked {len(result.waiting)}, kept {len(result.kept)}",
            highlight=False,
        )
        for key, until in result.waiting:
            out.print(f"  locked until {until}: {key}", highlight=False, markup=False)
        for key, why in result.kept:
            out.print(f"  kept {key}: {why}", highlight=False, markup=False)

    emit(as_json, data, human)


@keys_group.command("renew-locks")
@json_option
@click.pass_context
def renew_locks_cmd(ctx: click.Context, as_json: bool) -> None:
    """Extend the locks of the current key wraps (those not superseded) that end within half
    of [encryption] wrap_lock_days; run it nightly beside the retention cron."""
    from archive.kek_rotation import renew_locks

    app = get_app(ctx).require_catalog()
    renewed = renew_locks(app.services)
    emit(
        as_json,
        {"renewed": renewed},
        lambda: out.print(f"wrap locks renewed {len(renewed)}", highlight=False),
    )


@keys_group.command("check")
@json_option
@click.pass_context
def check_cmd(ctx: click.Context, as_json: bool) -> None:
    """Every key wrap the catalog records against storage: the pinned version holds the
    catalog's copy and is bound to its object. Exit 1 when something is wrong."""
    from archive.key_wraps import check_all

    app = get_app(ctx).require_catalog()
    checked, problems = check_all(app.sessions, app.store)
    data = {"checked": checked, "problems": problems, "ok": not problems}

    def human() -> None:
        out.print(f"key wraps checked {checked}, problems {len(problems)}", highlight=False)
        for p in problems:
            out.print(f"  {p}", highlight=False, markup=False)

    emit(as_json, data, human)
    if problems:
        ctx.exit(1)


def register(main: click.Group) -> None:
    main.add_command(keys_group)
