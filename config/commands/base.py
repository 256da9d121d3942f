"""What every command module shares: the consoles, error handling, the --json option, the
lazily built `App`, and the printers more than one command uses (cases, items, TOML)."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError

from catalog.errors import EvidenceError
from catalog.times import local_iso

from ..app import App
from ..settings import load_settings

log = logging.getLogger("evidence")
# Piped output (scripts, logs) gets wide lines rather than columns cut at 80 characters.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, soft_wrap=True)


class EvidenceGroup(click.Group):
    """Turns the project's typed errors into one line on stderr and the contract's exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Python hands bytes that are not UTF-8 over as lone surrogates, which fail later deep in
        # a database driver or a custody event; refuse them here, naming the argument.
        for arg in args:
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(arg).decode("utf-8", "backslashreplace")
                click.echo(
                    f"evidence: the argument '{shown}' is not valid UTF-8 "
                    "(rename the file or folder to UTF-8, or give the name in UTF-8)",
                    err=True,
                )
                ctx.exit(2)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EvidenceError as exc:
            click.echo(f"evidence: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OperationalError as exc:
            click.echo(
                f"evidence: the catalog database failed: {exc.orig} "
                "(check that it runs and the URL in the settings)",
                err=True,
            )
            ctx.exit(2)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - one clear line for staff, details in the log
            log.debug("internal error", exc_info=True)
            click.echo(
                f"evidence: internal error: {type(exc).__name__}: {exc} "
                "(run again with --log-level debug for the details, and report it)",
                err=True,
            )
            ctx.exit(2)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout and nothing else."
    )(f)


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        human()


def get_app(ctx: click.Context) -> App:
    """Settings are loaded on first use, so `--help` works with broken settings."""
    obj = ctx.find_root().obj
    if "app" not in obj:
        settings, warnings = load_settings(obj["config"])
        for warning in warnings:
            click.echo(f"evidence: warning: {warning}", err=True)
        obj["app"] = App(settings, actor=obj["actor"])
        ctx.find_root().call_on_close(obj["app"].close)
    return obj["app"]


# --- cases and items, as `case show`, `case list` and `replay` print them -----------------


def case_json(case: Any) -> dict[str, Any]:
    return {
        "number": case.number,
        "case_key": case.case_key,
        "title": case.title,
        "type": case.case_type,
        "unit": case.unit,
        "status": case.status,
        "major": case.major,
        "opened": case.opened_on.isoformat(),
        "closed": case.closed_on.isoformat() if case.closed_on else None,
    }


def item_json(item, zone) -> dict[str, Any]:
    """An item as `case show` and `replay` print it (the contract's fields first)."""
    data: dict[str, Any] = {
        "item_no": item.item_no,
        "kind": item.kind,
        "time": local_iso(item.time, zone),
        "sha256": item.sha256,
    }
    if item.archive_no:
        data.update(
            archive_no=item.archive_no,
            officer=item.officer,
            device=item.device,
            station=item.station,
            duration_s=item.duration_s,
            proxy=item.proxy,
            damaged=item.damaged,
            important=item.important,
        )
    else:
        data.update(doc_type=item.doc_type, doc_number=item.doc_number)
    data.update(
        size=item.size,
        protected=item.protected,
        custody={
            "events": item.custody.get("events", 0),
            "actions": item.custody.get("actions", {}),
            "last": local_iso(item.custody.get("last"), zone),
        },
    )
    if item.verified is not None:
        data["verified"] = item.verified
    return data


def print_items(header: dict[str, Any], items: list[dict[str, Any]]) -> None:
    out.print(
        f"{header['number']}  ({header['case_key']})  {header['status']}", highlight=False, markup=False
    )
    if header.get("title"):
        out.print(f"  {header['title']}", highlight=False, markup=False)
    table = Table(
        "time",
        "item",
        "kind",
        "archive no / type",
        "officer",
        "duration",
        "proxy",
        "sha256",
        *(["verified"] if items and "verified" in items[0] else []),
    )
    for i in items:
        row = [
            i["time"] or "",
            i["item_no"],
            i["kind"],
            i.get("archive_no") or i.get("doc_type") or "",
            i.get("officer") or "",
            f"{i['duration_s']:.0f} s" if i.get("duration_s") else "",
            i.get("proxy", ""),
            i["sha256"][:16] + "…",
        ]
        if "verified" in i:
            row.append(i["verified"])
        table.add_row(*row)
    out.print(table)


# --- settings ----------------------------------------------------------------------------


def print_toml(data: dict[str, Any], prefix: str = "") -> None:
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    arrays = {
        k: v for k, v in data.items() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)
    }
    for key, value in data.items():
        if key in tables or key in arrays or key == "source":
            continue
        out.print(f"{key} = {json.dumps(value, ensure_ascii=False)}", highlight=False, markup=False)
    for key, value in tables.items():
        out.print(f"\n[{prefix}{key}]", highlight=False, markup=False)
        print_toml(value, f"{prefix}{key}.")
    for key, items in arrays.items():
        for item in items:
            out.print(f"\n[[{prefix}{key}]]", highlight=False, markup=False)
            print_toml(item, f"{prefix}{key}.")
