"""`evidence verify`, `export`, `verify-package` and `catalog rebuild`: checking that what is
stored is intact, taking it out verifiably, and rebuilding the catalog from storage."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from ..progress import transfer
from ..settings import _sqlite_file
from .audit import trusted_key_option, tsa_ca_option
from .base import emit, err, get_app, json_option, out


@click.command("verify")
@click.option("--all", "everything", is_flag=True, help="Every stored item (the default).")
@click.option("--sample", type=int, metavar="N", help="N items drawn at random.")
@click.option(
    "--older-than",
    "older_than",
    type=float,
    metavar="DAYS",
    help="Items not verified for DAYS days (or never).",
)
@click.option("--budget-gb", type=float, metavar="G", help="Stop after reading G gigabytes.")
@click.option("--budget-minutes", type=float, metavar="M", help="Stop after M minutes.")
@click.option("--no-reconcile", is_flag=True, help="Skip listing storage for orphans.")
@json_option
@click.pass_context
def verify_command(
    ctx: click.Context,
    everything: bool,
    sample: int | None,
    older_than: float | None,
    budget_gb: float | None,
    budget_minutes: float | None,
    no_reconcile: bool,
    as_json: bool,
) -> None:
    """Fixity sweep and reconciliation: re-read stored objects, least recently verified first,
    compare digests and sizes with the catalog, and list objects the catalog does not know.
    Exit 1 on any mismatch, missing object or orphan. Nothing is deleted."""
    from verify.fixity import sweep

    if sum(bool(x) for x in (everything, sample is not None, older_than is not None)) > 1:
        raise click.UsageError("choose one of --all, --sample, --older-than")
    app = get_app(ctx).require_catalog()
    run = partial(
        sweep,
        app.services,
        sample=sample,
        older_than_days=older_than,
        reconcile_storage=not no_reconcile,
        budget_bytes=int(budget_gb * 1e9) if budget_gb else None,
        budget_seconds=budget_minutes * 60 if budget_minutes else None,
    )
    with transfer(err, "fixity", quiet=as_json) as shown:
        report = run(progress=lambda _t, _n: shown.file_done(), planned=shown.plan, on_bytes=shown.read)
    data = report.to_json()

    def human() -> None:
        out.print(
            f"checked {report.checked}, ok {report.ok}, problems {len(report.problems)}"
            + (f", key wraps {report.key_wraps}" if report.key_wraps else "")
            + (f" (stopped by the {report.stopped_by} budget)" if report.stopped_by else ""),
            highlight=False,
        )
        for p in report.problems:
            out.print(
                f"  {p['problem']:8} {p['subject']}: expected {p['expected']}, found {p['found']}",
                highlight=False,
                markup=False,
            )

    emit(as_json, data, human)
    if report.problems:
        ctx.exit(1)


@click.command("export")
@click.argument("case")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--zip", "zip_it", is_flag=True, help="One .zip file instead of a folder.")
@click.option("--with-proxies", is_flag=True, help="Also the playable proxies (and posters).")
@click.option("--reason", required=True, help="Why, and for whom (kept in the custody chain).")
@json_option
@click.pass_context
def export_command(
    ctx: click.Context, case: str, outdir: Path, zip_it: bool, with_proxies: bool, reason: str, as_json: bool
) -> None:
    """Export a case as a BagIt package anyone can check without this system: originals and
    documents (decrypted), case.json, the custody excerpt with a signed checkpoint and its
    public key, and an index.html that plays the proxies offline."""
    from verify.export import export_case

    app = get_app(ctx).require_catalog()
    outdir.mkdir(parents=True, exist_ok=True)
    with transfer(err, "export", quiet=as_json) as shown:
        seen: dict[str, int] = {}
        finished: set[str] = set()

        def progress(rel: str, written: int, total: int) -> None:
            shown.read(written - seen.get(rel, 0))
            seen[rel] = written
            if written >= total and rel not in finished:
                finished.add(rel)
                shown.file_done()

        result = export_case(
            app.services,
            case,
            outdir,
            signing_key=app.signing_key,
            reason=reason,
            with_proxies=with_proxies,
            zip_it=zip_it,
            progress=progress,
            planned=shown.plan,
            tsa=app.tsa,
        )
    data = result.to_json()
    emit(
        as_json,
        data,
        lambda: out.print(
            f"exported {result.items} item(s), {result.bytes} bytes: {result.path} "
            f"(event {result.event}, checkpoint {result.checkpoint})",
            highlight=False,
        ),
    )


@click.command("verify-package")
@click.argument("path", type=click.Path(path_type=Path))
@trusted_key_option
@tsa_ca_option
@json_option
@click.pass_context
def verify_package_command(
    ctx: click.Context, path: Path, trusted_keys: tuple[str, ...], tsa_ca: tuple[Path, ...], as_json: bool
) -> None:
    """Check an exported package offline (no catalog, no storage, no private key): every
    digest against the manifests and the signed commitment, every custody link, that no
    event was left out, and that the checkpoints are signed by a trusted key (pinned here,
    or --trusted-key), and each time-stamp token against the TSA's CA (configured, or --tsa-ca).
    Exit 1 on any problem, 2 when PATH is not a folder or regular file."""
    from verify.package import verify_package

    app = get_app(ctx)
    anchors = app.anchors(trusted_keys)
    report = verify_package(path, anchors=anchors, time_trust=app.time_trust(tsa_ca))
    data = report.to_json()

    def human() -> None:
        if report.ok:
            out.print(f"{path}: the package is complete and intact", highlight=False)
        for p in report.problems:
            out.print(f"  {p['path']}: {p['problem']}", highlight=False, markup=False)
        for fp in report.signers:
            out.print(
                f"  signer {fp} ({'trusted' if fp in report.trusted else 'NOT trusted'})", highlight=False
            )
        for note in report.notes:
            out.print(f"  note: {note}", highlight=False, markup=False)

    emit(as_json, data, human)
    if not report.ok:
        ctx.exit(1)


@click.group("catalog")
def catalog_group() -> None:
    """Catalog administration."""


@catalog_group.command("rebuild")
@click.option(
    "--from-storage",
    "from_storage",
    is_flag=True,
    required=True,
    help="Read manifests, case events, custody segments, checkpoints and tombstones.",
)
@click.option(
    "--database",
    "database",
    required=True,
    metavar="URL",
    help="An empty catalog to rebuild into (SQLAlchemy URL).",
)
@trusted_key_option
@tsa_ca_option
@json_option
@click.pass_context
def catalog_rebuild(
    ctx: click.Context,
    from_storage: bool,
    database: str,
    trusted_keys: tuple[str, ...],
    tsa_ca: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Disaster-recovery drill: rebuild a catalog from storage alone into DATABASE, with every
    number sequence past every number ever issued, then compare it with the live catalog.
    Exit 1 when they differ.

    Restore: when DATABASE is this installation's own catalog (the settings' URL) and that
    catalog is lost, the rebuilt catalog becomes the catalog and there is nothing to compare
    with; run `evidence init` and `evidence audit verify` next (see the README)."""
    from catalog.db import make_engine, session_factory
    from verify.rebuild import compare, rebuild

    app = get_app(ctx)
    restoring = same_database(database, app.settings.database_url)
    if not restoring:
        app.require_catalog()
    target = make_engine(database)
    differences: list[str] = []
    notes: list[str] = []
    try:
        report = rebuild(
            app.store,
            target,
            formats=app.settings.formats,
            anchors=app.anchors(trusted_keys),
            time_trust=app.time_trust(tsa_ca),
        )
        if restoring:
            notes = ["restored into this installation's catalog: nothing to compare with"]
        else:
            with app.reader_sessions() as live, session_factory(target)() as rebuilt:
                differences, notes = compare(live, rebuilt, last_checkpoint_seq=report.last_checkpoint_seq)
    finally:
        target.dispose()
    data = {
        "database": make_engine(database).url.render_as_string(hide_password=True),
        "restored": restoring,
        "counts": report.counts,
        "problems": report.problems,
        "differences": differences,
        "notes": notes,
        "signers": sorted(report.signers),
        "kek_id": report.kek_id,
    }

    def human() -> None:
        out.print("rebuilt: " + ", ".join(f"{k} {v}" for k, v in report.counts.items()), highlight=False)
        for line in report.problems + differences:
            out.print(f"  {line}", highlight=False, markup=False)
        for line in notes:
            out.print(f"  note: {line}", highlight=False, markup=False)
        for fp in sorted(report.signers):
            out.print(f"  checkpoint signer {fp}", highlight=False)
        if report.kek_id:
            out.print(f"  current key-encryption key {report.kek_id}", highlight=False)
        out.print(
            ("the catalog is restored" if restoring else "the rebuilt catalog matches the live one")
            if not differences and not report.problems
            else f"{len(differences)} difference(s), {len(report.problems)} problem(s)",
            highlight=False,
        )

    emit(as_json, data, human)
    if differences or report.problems:
        ctx.exit(1)


def same_database(url: str, configured: str) -> bool:
    """Whether ``url`` names the settings' own catalog (one SQLite file, or one server database)."""
    from sqlalchemy.engine import make_url

    try:
        a, b = make_url(url), make_url(configured)
    except Exception:  # noqa: BLE001 - a malformed URL is refused when the engine is made
        return False
    if a.get_backend_name() == "sqlite" or b.get_backend_name() == "sqlite":
        files = [_sqlite_file(u) for u in (url, configured)]
        return None not in files and Path(str(files[0])).resolve() == Path(str(files[1])).resolve()
    same = ("host", "port", "database", "username")
    return a.get_backend_name() == b.get_backend_name() and all(getattr(a, k) == getattr(b, k) for k in same)


def register(main: click.Group) -> None:
    for command in (verify_command, export_command, verify_package_command, catalog_group):
        main.add_command(command)
