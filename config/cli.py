"""The `evidence` command: one entry point for stations, cron jobs and staff.

Exit codes (a contract, see the README): 0 success; 1 a check found a
problem or an action was refused; 2 bad usage, bad settings, an unknown
case or item, or unusable input. With ``--json`` a command prints one JSON
document on stdout and nothing else there; messages go to stderr.

This module builds the main group; the commands live in `config.commands`,
one module per group, each adding its commands here through `register`.
"""

from __future__ import annotations

import sys

import click

from .commands import (
    audit,
    cases,
    derivatives,
    derive,
    doctor,
    holds,
    ingest,
    init,
    keys,
    recordings,
    report,
    retention,
    storage,
    verify,
    web,
)
from .commands.base import EvidenceGroup
from .logs import setup_logging

COMMAND_MODULES = (
    init,
    keys,
    cases,
    recordings,
    verify,
    ingest,
    holds,
    retention,
    web,
    storage,
    audit,
    report,
    doctor,
    derivatives,
    derive,
)


@click.group(cls=EvidenceGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Settings file (TOML). Default: $EVIDENCE_CONFIG, else ./evidence.toml if present.",
)
@click.option(
    "--actor",
    metavar="NAME",
    help="Who is acting, as recorded in custody events. Default: the operating-system user.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Detail of log messages on stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line, for log collectors.",
)
@click.version_option(package_name="evidence-archive")
@click.pass_context
def main(
    ctx: click.Context, config_path: str | None, actor: str | None, log_level: str, log_format: str
) -> None:
    """Archive body-worn-camera recordings and written case records under one numbering
    scheme, with a tamper-evident custody chain.

    The four numbers (README, "Glossary"): the case number (案号), the bureau's own, e.g.
    开城管罚立〔2020〕42号; the case key (案件代码), ASCII, e.g. KZCG-2020-0042; the item
    number (共同编号) a record gets in its case, e.g. KZCG-2020-0042-002V; the archive
    number (档案号) a recording gets at ingest, e.g. KZCG-20201105-ST01-0007.

    Settings come from a TOML file (--config, $EVIDENCE_CONFIG or ./evidence.toml) and
    EVIDENCE_* environment variables; with none, everything lives in ./evidence-data.
    Start with `evidence init`.
    """
    setup_logging(log_level, log_format)
    ctx.obj = {"config": config_path, "actor": actor, "log": [log_level, log_format]}


for _module in COMMAND_MODULES:
    _module.register(main)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
