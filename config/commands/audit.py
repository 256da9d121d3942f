"""`evidence audit ...`: read, verify and checkpoint the custody chain."""

from __future__ import annotations

import click

from archive import checkpoints
from catalog import custody
from catalog.errors import CheckFailed
from catalog.times import local_iso

from .base import emit, err, get_app, json_option, out


@click.group("audit")
def audit_group() -> None:
    """The custody chain: every change and access, hash-linked and signed."""


@audit_group.command("log")
@click.option(
    "--subject",
    metavar="X",
    help="Only events about this archive number (档案号), item number (共同编号) or case key (案件代码).",
)
@click.option("--limit", type=int, help="At most this many events.")
@json_option
@click.pass_context
def audit_log(ctx: click.Context, subject: str | None, limit: int | None, as_json: bool) -> None:
    """Print custody events in chain order."""
    app = get_app(ctx).require_catalog()
    zone = app.settings.zone
    with app.reader_sessions() as session:
        events = list(custody.events(session, subject=subject, limit=limit))
    data = [
        {
            "seq": e.seq,
            "time": local_iso(e.time, zone),
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "details": e.details,
        }
        for e in events
    ]

    def human() -> None:
        # As the pages show them: action names and labelled fields in the settings' language.
        from verify import custody_text as ct

        lang = app.settings.language
        for event in events:
            e = ct.describe(event, lang, zone)
            out.print(
                f"{e.seq:>6}  {e.time}  {e.actor}  {e.action}  {e.subject or '-'}  {e.details_text(lang)}",
                highlight=False,
                markup=False,
            )

    emit(as_json, data, human)


@audit_group.command("verify")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Walk the whole chain and every checkpoint; exit 1 at the first broken event."""
    app = get_app(ctx).require_catalog()
    trusted = app.signing_key.public_key() if app.settings.signing_key_path.exists() else None
    with app.reader_sessions() as session:
        report = custody.verify(session, trusted)
    data = report.to_json()

    def human() -> None:
        if report.ok:
            out.print(f"chain intact: {report.events} events, {report.checkpoints} checkpoint(s)")
        else:
            err.print(
                f"[bold red]chain broken[/] at event {report.first_bad_event}: "
                f"{len(report.problems)} problem(s) in {report.events} events"
            )
            for p in report.problems:
                err.print(f"  {p['problem']}: {p['detail']}", highlight=False, markup=False)
        if trusted is None:
            err.print("note: no signing key here; checkpoints were checked against the keys they carry")

    emit(as_json, data, human)
    if not report.ok:
        ctx.exit(CheckFailed.exit_code)


@audit_group.command("checkpoint")
@json_option
@click.pass_context
def audit_checkpoint(ctx: click.Context, as_json: bool) -> None:
    """Sign the chain's current head with the custody key."""
    app = get_app(ctx).require_catalog()
    cp = checkpoints.make_and_publish(app.services, app.signing_key)
    data = {
        "n": cp.n,
        "seq": cp.seq,
        "head": cp.head,
        "key_id": cp.key_id,
        "time": local_iso(cp.time, app.settings.zone),
    }
    emit(
        as_json,
        data,
        lambda: out.print(
            f"checkpoint {cp.n}: event {cp.seq} = {cp.head} (key {cp.key_id})", highlight=False
        ),
    )


def register(main: click.Group) -> None:
    main.add_command(audit_group)
