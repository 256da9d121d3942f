"""`evidence serve` and `evidence user ...`: the auditors' web pages and their accounts."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .base import emit, get_app, json_option, out

# uvicorn believes X-Forwarded-For from loopback by default; the pages decide whom to believe
# (``[web] trusted_proxies``), from the socket peer, so uvicorn must leave the client alone.
SERVER_OPTIONS: dict[str, Any] = {"proxy_headers": False, "forwarded_allow_ips": ""}


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """The auditors' web pages: find and replay cases, play recordings, verify and export,
    every view and play on the record. Put it behind HTTPS (a reverse proxy) in production."""
    import uvicorn

    from verify.web import create_app

    app = get_app(ctx).require_catalog()
    uvicorn.run(
        create_app(app.web_context()),
        host=host,
        port=port,
        log_level=logging.getLevelName(logging.getLogger().level).lower(),
        access_log=False,
        **SERVER_OPTIONS,
    )


@click.group("user")
def user_group() -> None:
    """Accounts of the web pages (auditor, legal, admin)."""


def _read_password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


@user_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["auditor", "legal", "admin"]),
    required=True,
    help="auditor: search, replay, verify, export; legal: also link, unlink, hold; admin: also accounts.",
)
@click.option("--protected", is_flag=True, help="May see protected records (国家秘密、商业秘密、个人隐私).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@click.pass_context
def user_add(
    ctx: click.Context, name: str, role: str, protected: bool, password_stdin: bool, as_json: bool
) -> None:
    """Add an account."""
    from archive.accounts import add_account

    app = get_app(ctx).require_catalog()
    # The operating-system user is an administrator of the machine (it can read the key files
    # anyway), so it may give the grant.
    add_account(app.services, name, role, _read_password(password_stdin), protected=protected, by=None)
    emit(
        as_json,
        {"name": name, "role": role, "protected": protected},
        lambda: out.print(
            f"added {name} ({role}{', protected records' if protected else ''})", highlight=False
        ),
    )


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_passwd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set an account's password (its open sessions end)."""
    from archive.accounts import change_password

    app = get_app(ctx).require_catalog()
    change_password(app.services, name, _read_password(password_stdin))
    out.print(f"password of {name} changed", highlight=False)


@user_group.command("logout")
@click.argument("name")
@click.pass_context
def user_logout(ctx: click.Context, name: str) -> None:
    """End every open web session of an account."""
    from catalog import custody
    from catalog.actions import Action
    from catalog.users import end_sessions, get_user

    app = get_app(ctx).require_catalog()
    services = app.services
    with services.sessions.begin() as session:
        ended = end_sessions(session, get_user(session, name).id, services.now())
        custody.append(
            session,
            actor=services.actor,
            action=Action.LOGOUT,
            subject=f"user:{name}",
            details={"sessions_ended": ended},
        )
    out.print(f"{ended} session(s) of {name} ended", highlight=False)


def register(main: click.Group) -> None:
    main.add_command(serve)
    main.add_command(user_group)
