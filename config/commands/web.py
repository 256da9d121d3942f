"""`evidence serve` and `evidence user ...`: the auditors' web pages and their accounts."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import click

from .base import emit, get_app, json_option, out

# uvicorn believes X-Forwarded-For from loopback by default; the pages decide whom to believe
# (``[web] trusted_proxies``), from the socket peer, so uvicorn must leave the client alone.
SERVER_OPTIONS: dict[str, Any] = {"proxy_headers": False, "forwarded_allow_ips": ""}
log = logging.getLogger("evidence.serve")
# How `evidence serve` tells its worker processes what it was started with.
SPEC = "EVIDENCE_SERVE_SPEC"


@click.command()
@click.option("--host", default=None, help="Address to listen on.  [default: [web] host, 127.0.0.1]")
@click.option("--port", default=None, type=int, help="[default: [web] port, 8080]")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """The auditors' web pages: find and replay cases, play recordings, verify and export,
    every view and play on the record. Put it behind HTTPS (a reverse proxy) in production
    and set [web] public_url to the address users reach it at; /healthz answers probes."""
    import uvicorn

    from verify.web import create_app

    app = get_app(ctx).require_catalog()
    web = app.settings.web
    host, port = host or web.host, port or web.port
    if not 1 <= port <= 65535:
        raise click.BadParameter(f"{port} is not a port", param_hint="--port")
    app.settings = _listening_on(app.settings, host, port)
    context = app.web_context()
    listening = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    # Always said, whatever the log level: an administrator needs to know where it is.
    log.setLevel(logging.INFO)
    log.info(
        "serving the pages on %s; users reach them at %s",
        listening,
        app.settings.public_url,
        extra={
            "listening": listening,
            "public_url": app.settings.public_url,
            "secure_cookies": context.secure_cookies,
        },
    )
    if not context.secure_cookies and host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "the pages are reachable from other machines over plain HTTP: put them behind an HTTPS "
            "proxy and set [web] public_url to its https:// address",
            extra={"listening": listening},
        )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": logging.getLevelName(logging.getLogger().level).lower(),
        "access_log": False,
        **SERVER_OPTIONS,
    }
    if web.workers == 1:
        uvicorn.run(create_app(context), **options)
        return
    # Each worker process builds its own app from the same settings (uvicorn starts workers
    # from an import string); the secret and folders were made above, once, before any starts.
    root = ctx.find_root().obj
    os.environ[SPEC] = json.dumps(
        {"config": root["config"], "actor": root["actor"], "log": root["log"], "host": host, "port": port}
    )
    uvicorn.run(f"{__name__}:worker_app", factory=True, workers=web.workers, **options)


def worker_app() -> Any:
    """The pages' app in one of `evidence serve`'s worker processes."""
    from config.app import App
    from config.logs import setup_logging
    from config.settings import load_settings
    from verify.web import create_app

    spec = json.loads(os.environ[SPEC])
    setup_logging(*spec["log"])
    settings, _ = load_settings(spec["config"])  # the warnings were shown when serve started
    app = App(_listening_on(settings, spec["host"], spec["port"]), actor=spec["actor"]).require_catalog()
    return create_app(app.web_context())


def _listening_on(settings: Any, host: str, port: int) -> Any:
    """The settings with the address `serve` listens on (options win over the file): the
    public URL and cookie security follow from it."""
    import dataclasses

    return dataclasses.replace(settings, web=dataclasses.replace(settings.web, host=host, port=port))


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
