"""Wiring only: the root Typer app, its global options and the sub-apps."""

from __future__ import annotations

import sqlite3
from typing import Annotated

import typer
from typer.core import TyperGroup

from trackly_cli import __version__, output
from trackly_cli.commands import (
    account,
    bots,
    contacts,
    conversions,
    creative,
    dashboard,
    db,
    demo,
    domain,
    offer,
    prune,
    receipts,
    report,
    serve,
    shorten,
    user,
)
from trackly_cli.commands import lists as list_commands
from trackly_cli.config import resolve_db_path
from trackly_cli.core import postgres
from trackly_cli.core.errors import TracklyError
from trackly_cli.state import State


class TracklyGroup(TyperGroup):
    """Turns the core's errors into one line on stderr and exit code 1, anywhere below."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
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
    context_settings={"help_option_names": ["-h", "--help"]},
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
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
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
app.add_typer(creative.app, name="creative")
app.add_typer(bots.app, name="bots")
app.add_typer(conversions.app, name="conversions")
app.add_typer(receipts.app, name="receipts")
app.add_typer(user.app, name="user")
app.command("shorten")(shorten.shorten_command)
app.command("serve")(serve.serve_command)
app.command("demo")(demo.demo_command)
app.command("report")(report.report_command)
app.command("ab")(report.ab_command)
app.command("segment")(report.segment_command)
app.command("clicks")(report.clicks_command)
app.command("prune")(prune.prune_command)
app.command("dashboard")(dashboard.dashboard_command)


def main() -> None:
    app()
