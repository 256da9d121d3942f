"""`evidence audit ...`: read, verify and checkpoint the custody chain."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from archive import checkpoints, keyrotation
from catalog import custody, keyhistory, timestamp
from catalog.checkpoint import fingerprint, public_key_pem, raw_public_key
from catalog.errors import CheckFailed, InvalidInput
from catalog.times import local_iso, parse_user_time

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


def trusted_key_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--trusted-key",
        "trusted_keys",
        multiple=True,
        metavar="FILE|FINGERPRINT",
        help="Also trust this signer: a full SHA-256 fingerprint or a public key PEM file (repeatable).",
    )(f)


def tsa_ca_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--tsa-ca",
        "tsa_ca",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="Check time-stamp tokens against this CA certificate (PEM; default [custody] tsa_ca_file).",
    )(f)


@audit_group.command("verify")
@trusted_key_option
@tsa_ca_option
@click.option("--no-storage", is_flag=True, help="Skip comparing the catalog's checkpoints with storage.")
@json_option
@click.pass_context
def audit_verify(
    ctx: click.Context,
    trusted_keys: tuple[str, ...],
    tsa_ca: tuple[Path, ...],
    no_storage: bool,
    as_json: bool,
) -> None:
    """Walk the whole chain and every checkpoint, and compare the checkpoints with those in
    storage; check each checkpoint's time-stamp token; exit 1 on any break, gap, disagreement,
    signer not trusted or bad token (a missing token is listed, not a failure). Needs no
    private key."""
    app = get_app(ctx).require_catalog()
    anchors = app.anchors(trusted_keys)
    trust = app.time_trust(tsa_ca)
    stored, unreadable = (None, []) if no_storage else checkpoints.stored_checkpoints(app.store)
    statements = None if no_storage else keyrotation.stored_statements(app.store)
    if not no_storage:
        unreadable += keyrotation.add_stored_keys(anchors, app.store)
    with app.reader_sessions() as session:
        times = timestamp.review(checkpoints.stamped(session), trust)
        report = custody.verify(session, anchors, stored, statements=statements, existed_by=times.existed_by)
    report.problems += [{"seq": None, "problem": "checkpoint_unreadable", "detail": u} for u in unreadable]
    report.problems += [
        {"seq": None, "problem": "timestamp_bad", "detail": f"checkpoint {b['n']}: {b['problem']}"}
        for b in times.bad
    ]
    # Without a TSA configured and no token anywhere, there is nothing to say about time-stamps.
    told = app.tsa is not None or times.stamped or times.unchecked or times.bad
    data = (
        report.to_json() | {"ok": report.ok and times.ok} | ({"timestamps": times.to_json()} if told else {})
    )

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
        for fp in report.signers:
            out.print(
                f"signer {fp} ({'trusted' if fp in report.trusted else 'NOT trusted'})", highlight=False
            )
        if not anchors.trusted:
            err.print("note: no key is pinned; pin one with `evidence init` or give --trusted-key")
        _print_times(times, configured=app.tsa is not None, checked=trust is not None)

    emit(as_json, data, human)
    if not data["ok"]:
        ctx.exit(CheckFailed.exit_code)


def _print_times(times: timestamp.TimestampReview, *, configured: bool, checked: bool) -> None:
    if times.stamped:
        out.print(f"time-stamped by the TSA: {len(times.stamped)} checkpoint(s)")
    if times.late:
        out.print(f"time-stamps issued late (still proof the checkpoint existed by then): {times.late}")
    if times.unchecked:
        err.print(f"time-stamps not checked against a CA (give --tsa-ca FILE): checkpoints {times.unchecked}")
    if times.missing and (configured or times.stamped or times.unchecked):
        err.print(f"no time-stamp yet (asked for again at each checkpoint run): checkpoints {times.missing}")
    for bad in times.bad:
        err.print(f"[bold red]bad time-stamp[/] on checkpoint {bad['n']}: {bad['problem']}")


@audit_group.command("checkpoint")
@click.option("--always", is_flag=True, help="Sign even when nothing happened since the last checkpoint.")
@json_option
@click.pass_context
def audit_checkpoint(ctx: click.Context, always: bool, as_json: bool) -> None:
    """Sign the chain's current head with the custody key and copy it to storage; skipped when
    nothing happened since the last checkpoint (its own event aside)."""
    app = get_app(ctx).require_catalog()
    cp = checkpoints.make_and_publish(app.services, app.signing_key, skip_if_idle=not always)
    # Asked for after the checkpoint is made and stored: a TSA that is down never stops it.
    stamps = checkpoints.stamp(app.services, app.tsa) if app.tsa else None
    times = {"stamped": stamps.stamped, "missing": stamps.missing, "error": stamps.error} if stamps else None
    if stamps and stamps.error:
        err.print(f"time-stamp not obtained now (asked for again next run): {stamps.error}", highlight=False)
    if cp is None:
        emit(
            as_json,
            {"skipped": True} | ({"timestamps": times} if times else {}),
            lambda: out.print("nothing new since the last checkpoint; skipped"),
        )
        return
    data = {
        "n": cp.n,
        "seq": cp.seq,
        "head": cp.head,
        "key": cp.key,
        "key_id": cp.key_id,
        "time": local_iso(cp.time, app.settings.zone),
        "skipped": False,
    } | ({"timestamps": times} if times else {})
    emit(
        as_json,
        data,
        lambda: out.print(
            f"checkpoint {cp.n}: event {cp.seq} = {cp.head} (signer {cp.key})", highlight=False
        ),
    )


@audit_group.command("key")
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the public key (PEM) to this new file, for people who check packages.",
)
@json_option
@click.pass_context
def audit_key(ctx: click.Context, export_path: Path | None, as_json: bool) -> None:
    """Print the custody signing key's full fingerprint (and export its public key)."""
    app = get_app(ctx).require_catalog()
    raw = raw_public_key(app.signing_key.public_key())
    fp = fingerprint(raw)
    if export_path is not None:
        with open(export_path, "xb") as f:  # never replaces a file
            f.write(public_key_pem(raw))
    data = {
        "fingerprint": fp,
        "pinned": fp in app.pinned(),
        "exported": str(export_path) if export_path else None,
    }

    def human() -> None:
        out.print(f"fingerprint {fp}", highlight=False)
        out.print("pinned in this installation" if data["pinned"] else "NOT pinned here: run `evidence init`")
        if export_path:
            out.print(f"public key written to {export_path}", highlight=False)

    emit(as_json, data, human)


@audit_group.command("rotate-key")
@click.option(
    "--lost",
    is_flag=True,
    help="The key file is lost: start a new key with no hand-over (pin it again everywhere, out of band).",
)
@json_option
@click.pass_context
def audit_rotate_key(ctx: click.Context, lost: bool, as_json: bool) -> None:
    """Make a new signing key and hand the chain over to it: a last checkpoint by the old key,
    a key-change statement signed by both, a first checkpoint by the new one; the new key
    replaces the old key file and is pinned. Run it again after an interruption to finish.
    With --lost (no old key to sign), the new key is trusted only where it is pinned again."""
    app = get_app(ctx).require_catalog()
    data = app.rotate_signing_key(lost=lost)
    if app.tsa:  # the hand-over's checkpoints get their tokens like any other
        checkpoints.stamp(app.services, app.tsa)

    def human() -> None:
        out.print(f"old key {data['old']}", highlight=False)
        out.print(f"new key {data['new']} (pinned in {data['pinned_in']})", highlight=False)
        if lost:
            err.print(
                "the old key signed no hand-over: pin the new fingerprint again in every other "
                "installation and give it to auditors by another channel than the archive",
                highlight=False,
            )
            return
        out.print(
            f"key-change statement {data['statement']} after checkpoint {data['n']}; "
            "give the new fingerprint to whoever checks packages",
            highlight=False,
        )

    emit(as_json, data, human)


@audit_group.command("retire-key")
@click.argument("retired", metavar="FINGERPRINT", required=False)
@click.option(
    "--compromised-since",
    "since",
    required=True,
    metavar="TIME",
    help="From when the key may have been in other hands (its checkpoints after that are not trusted).",
)
@json_option
@click.pass_context
def audit_retire_key(ctx: click.Context, retired: str | None, since: str, as_json: bool) -> None:
    """Record that an earlier signing key (default: the one the current key replaced) is
    compromised since TIME, in a statement signed by the current key. Its checkpoints after
    TIME are not trusted, those before only with a trusted time-stamp older than TIME."""
    app = get_app(ctx).require_catalog()
    when = parse_user_time(since, app.settings.zone)
    statement = keyrotation.retire(app.services, app.signing_key, _retired_key(app, retired), since=when)
    data = {
        "retired": statement.key,
        "by": statement.by,
        "compromised_since": local_iso(statement.since, app.settings.zone),
        "statement": statement.name,
    }
    emit(
        as_json,
        data,
        lambda: out.print(
            f"key {statement.key} retired: compromised since {data['compromised_since']} "
            f"(signed by {statement.by})",
            highlight=False,
        ),
    )


def _retired_key(app: Any, given: str | None) -> str:
    if given:
        text = given.strip().lower().replace(":", "")
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise InvalidInput(f"{given!r} is not a full fingerprint", hint="give the 64 hex digits")
        return text
    current = fingerprint(raw_public_key(app.signing_key.public_key()))
    with app.reader_sessions() as session:
        changes, _, _ = keyhistory.recorded(session)
    before = next((c.old for c in changes if c.new == current), None)
    if before is None:
        raise InvalidInput(
            "the current signing key replaced no other",
            hint="rotate first (`evidence audit rotate-key`), then retire the old key",
        )
    return before


def register(main: click.Group) -> None:
    main.add_command(audit_group)
