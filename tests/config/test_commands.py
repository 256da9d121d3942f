"""The command modules of `config.commands` all end up on the `evidence` main group, and help
needs no settings."""

import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import config.commands
from config.cli import main
from tests.conftest import run_evidence

EXPECTED = {
    "init",
    "doctor",
    "config",
    "config show",
    "case",
    "case open",
    "case show",
    "case add-doc",
    "case link",
    "case unlink",
    "case close",
    "case gaps",
    "case pages",
    "case list",
    "replay",
    "recordings",
    "recordings list",
    "recordings show",
    "verify",
    "export",
    "verify-package",
    "catalog",
    "catalog rebuild",
    "retention",
    "retention plan",
    "retention run",
    "retention restore",
    "hold",
    "hold set",
    "hold release",
    "audit",
    "audit log",
    "audit verify",
    "audit rotate-key",
    "audit retire-key",
    "audit checkpoint",
    "audit key",
    "ingest",
    "ingest scan",
    "ingest watch",
    "devices",
    "devices assign",
    "stations",
    "stations status",
    "serve",
    "user",
    "user add",
    "user passwd",
    "user logout",
    "storage",
    "storage policy",
    "report",
    "report coverage",
    "derivatives",
    "derivatives prune-redundant",
    "derive",
    "derive work",
    "keys",
    "keys list",
    "keys new-kek",
    "keys rotate-kek",
    "keys delete-superseded",
    "keys renew-locks",
    "keys check",
}
GROUPS = sorted({path.split()[0] for path in EXPECTED if " " in path})


def walk(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from walk(command, f"{path} ")


def command_modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.iter_modules(config.commands.__path__, "config.commands.")
        if m.name != "config.commands.base"
    )


def test_every_expected_command_is_on_the_main_group() -> None:
    assert {path for path, _ in walk(main)} == EXPECTED


@pytest.mark.parametrize("name", command_modules())
def test_each_module_registers_every_command_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    defined = [
        c for c in vars(module).values() if isinstance(c, click.Command) and c.callback.__module__ == name
    ]
    on_main = {id(c) for _, c in walk(main)}
    assert defined, f"{name} defines no commands"
    # A subcommand is on the main group once its group is registered.
    assert [c.name for c in defined if id(c) not in on_main] == []
    assert callable(getattr(module, "register", None))


def help_of(*path: str, tmp_path: Path):
    # A settings file that does not exist stops any command that loads the settings.
    return run_evidence("--config", str(tmp_path / "missing.toml"), *path, "--help")


def test_main_help_needs_no_settings(tmp_path: Path) -> None:
    result = help_of(tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {path for path in EXPECTED if " " not in path}


@pytest.mark.parametrize("group", GROUPS)
def test_group_help_needs_no_settings(group: str, tmp_path: Path) -> None:
    result = help_of(group, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f" {group} [OPTIONS] " in result.stdout.splitlines()[0]
    assert result.stderr == ""
