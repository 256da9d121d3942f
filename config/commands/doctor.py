"""`evidence doctor`: is this installation healthy? One command for administrators and probes."""

from __future__ import annotations

import click
from rich.markup import escape

from ..doctor import exit_code, summary
from .base import emit, err, json_option, out

COLOURS = {"ok": "green", "warning": "yellow", "problem": "bold red", "skipped": "dim"}


@click.command("doctor")
@click.option(
    "--quick", is_flag=True, help="Only the settings, the catalog and the keys (for health checks)."
)
@json_option
@click.pass_context
def doctor(ctx: click.Context, quick: bool, as_json: bool) -> None:
    """Check the installation and never write to the evidence storage: settings, catalog,
    keys, the store as this machine's role sees it, free space, ffmpeg, the clock, and
    whether stations and the nightly jobs keep their cadence.

    Exit 0 healthy (warnings printed), 1 problems (each says what to do), 2 unusable settings.
    """
    from ..app import App
    from ..doctor_probes import examine, load

    obj = ctx.find_root().obj
    settings, found = load(obj["config"])
    role = settings.storage.role if settings else None
    if settings is not None:
        app = App(settings, actor=obj["actor"])
        ctx.call_on_close(app.close)
        found += examine(app, quick=quick)
    code = exit_code(found)
    verdict = {0: "healthy", 1: "problems", 2: "unusable settings"}[code]

    def human() -> None:
        for f in found:
            label = f"{f.status.upper() if f.status == 'problem' else f.status:<8}"
            out.print(
                f"[{COLOURS[f.status]}]{label}[/]  {escape(f.check)}: {escape(f.message)}", highlight=False
            )
            if f.hint and f.status in ("problem", "warning"):
                out.print(f"{'':<10}→ {escape(f.hint)}", highlight=False)
        counts = summary(found)
        err.print(
            f"evidence doctor: {verdict} ({counts['problem']} problem(s), {counts['warning']} warning(s))",
            highlight=False,
        )

    emit(
        as_json,
        {
            "ok": code == 0,
            "status": verdict,
            "role": role,
            "quick": quick,
            "counts": summary(found),
            "checks": [f.to_json() for f in found],
        },
        human,
    )
    ctx.exit(code)


def register(main: click.Group) -> None:
    main.add_command(doctor)
