"""Wiring only: the root Typer app, its global options and the sub-apps."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace
from typing import Annotated, get_args

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from trackly_cli import __version__, output
from trackly_cli.commands import (
    account,
    apikey,
    bots,
    campaign,
    clicks,
    contacts,
    conversions,
    creative,
    dashboard,
    db,
    demo,
    domain,
    offer,
    optout,
    prune,
    receipts,
    report,
    serve,
    shorten,
    user,
    webhook,
)
from trackly_cli.commands import lists as list_commands
from trackly_cli.config import resolve_db_path
from trackly_cli.core import postgres
from trackly_cli.core.errors import TracklyError
from trackly_cli.state import State

HELP_OPTIONS = ["-h", "--help"]

# Placeholders in help for options that name something, by their parameter's name.
NAMED = {
    "account": "NAME",
    "campaign": "NAME",
    "offer": "NAME",
    "list_name": "NAME",
    "into_list": "NAME",
    "new_name": "NAME",
    "source": "NAME",
    "name": "NAME",
    "since": "DATE",
    "until": "DATE",
    "tz": "ZONE",
    "url": "URL",
    "ip": "IP",
    "domain": "HOST",
    "host": "HOST",
}


def placeholder(param) -> str:
    """What help shows for a value: TEXT, NAME, N, NUMBER, PATH, DATE… rather than Python's
    type names (<str>, <int range>)."""
    kind = param.type_descriptor
    if kind.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in kind.choices)
    if kind.is_path:
        return "PATH" if kind.parameter_info.dir_okay else "FILE"
    annotation = get_args(kind.annotation)[0] if kind.is_list else kind.annotation
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUMBER"
    return NAMED.get(param.name or "", "TEXT")


def plain_placeholders(command) -> None:
    """Give every parameter below `command` a plain placeholder (flags none at all)."""
    # (--help/-h is made on first use; made now, it is a flag like the others)
    helper = command.get_help_option(SimpleNamespace(help_option_names=HELP_OPTIONS))
    if helper is not None:
        helper.metavar = ""
    plain_parameters(command.params)
    for sub in getattr(command, "commands", {}).values():
        plain_placeholders(sub)


def plain_parameters(params) -> None:
    for param in params:
        flag = isinstance(param, TyperOption) and (
            param.is_flag or param.count or param.type_descriptor.annotation is bool
        )
        if flag:
            param.metavar = ""  # (a flag takes no value: no placeholder)
        elif isinstance(param, TyperArgument):
            if param.metavar is None:
                name = (param.name or "value").upper()
                param.metavar = name  # (the usage line adds "..." itself)
            param.display_type_rich = lambda ctx: None  # (the name is the placeholder)
        elif isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = placeholder(param) + ("..." if param.nargs != 1 else "")


def _help_instead(e: Exception) -> bool:
    """A group called without a command: Typer prints its help (not an error)."""
    return type(e).__name__ == "NoArgsIsHelpError"


def usage_error(e: typer.TyperException, ctx: typer.Context | None) -> None:
    """A usage error as one line, like every other error: 'Error: No such option: --foo (try:
    trackly report --help)', exit code 2."""
    where = getattr(e, "ctx", None) or ctx
    hint = f" (try: {where.command_path} --help)" if where is not None and e.exit_code == 2 else ""
    output.fail(e.format_message() + hint, e.exit_code)


class TracklyGroup(TyperGroup):
    """Turns the core's errors into one line on stderr and exit code 1, and usage errors into
    one line and exit code 2, anywhere below."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        plain_placeholders(self)

    def get_params(self, ctx):
        found = super().get_params(ctx)
        plain_parameters(found)  # (Typer adds --install-completion after __init__)
        return found

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except typer.TyperException as e:
            if _help_instead(e):
                raise
            usage_error(e, None)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except typer.TyperException as e:
            if _help_instead(e):
                raise
            usage_error(e, ctx)
        except TracklyError as e:
            output.fail(e.message, e.exit_code)
        except sqlite3.OperationalError as e:
            output.fail(f"database error: {e}")
        except sqlite3.DatabaseError as e:
            output.fail(f"the database cannot be used: {e}")
        except OverflowError:
            output.fail("a number given is too large")
        except Exception as e:
            if not postgres.is_driver_error(e):
                raise
            # PostgreSQL's errors (psycopg is optional: not imported here)
            output.fail(f"database error: {postgres.error_line(e)}")


app = typer.Typer(
    cls=TracklyGroup,
    name="trackly",
    help="Trackly: per-recipient short links for SMS, click and conversion tracking, reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": HELP_OPTIONS},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trackly {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db_path: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="SQLite database file, or a postgresql://USER:PASS@HOST:PORT/DB URL"
            " (default: TRACKLY_DB, else the app folder).",
            envvar="TRACKLY_DB",
            show_envvar=True,
            metavar="PATH|URL",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Trackly: per-recipient short links for SMS, click and conversion tracking, reports."""
    state = State(resolve_db_path(db_path), chosen=db_path is not None)
    ctx.obj = state
    ctx.call_on_close(state.close)


app.add_typer(db.app, name="db")
app.add_typer(account.app, name="account")
app.add_typer(domain.app, name="domain")
app.add_typer(offer.app, name="offer")
app.add_typer(list_commands.app, name="list")
app.add_typer(contacts.app, name="contacts")
app.add_typer(contacts.contact_app, name="contact")
app.add_typer(optout.app, name="optout")
app.add_typer(creative.app, name="creative")
app.add_typer(campaign.app, name="campaign")
app.add_typer(bots.app, name="bots")
app.add_typer(conversions.app, name="conversions")
app.add_typer(clicks.app, name="clicks")
app.add_typer(receipts.app, name="receipts")
app.add_typer(user.app, name="user")
app.add_typer(webhook.app, name="webhook")
app.add_typer(apikey.app, name="apikey")
app.command("shorten")(shorten.shorten_command)
app.command("serve")(serve.serve_command)
app.command("demo")(demo.demo_command)
app.command("report")(report.report_command)
app.command("ab")(report.ab_command)
app.command("segment")(report.segment_command)
app.command("prune")(prune.prune_command)
app.command("dashboard")(dashboard.dashboard_command)


def main() -> None:
    app()
