"""trackly user: who may log in to the dashboard, and which accounts each sees."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import users
from trackly_cli.core.errors import InvalidInput
from trackly_cli.options import ForceOpt, FormatOpt, OutputOpt
from trackly_cli.output import Format

app = typer.Typer(help="Dashboard users: add, list, remove, passwd.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="User name or id.")]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from standard input (one line), no prompt."
    ),
]


def _password(from_stdin: bool) -> str:
    """One line of stdin, or asked twice with hidden input."""
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = typer.prompt("Password", hide_input=True, default="", show_default=False)
    users.check_password(first)
    again = typer.prompt("Password (again)", hide_input=True, default="", show_default=False)
    if again != first:
        raise InvalidInput("the two passwords differ")
    return first


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The name to log in with.")],
    account: Annotated[
        list[str] | None,
        typer.Option("--account", "-a", help="An account this user sees (repeatable)."),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Sees every account.")] = False,
    password_stdin: PasswordStdinOpt = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Add a dashboard user; the password is asked for (or read with --password-stdin)."""
    db = state.db(ctx)
    password = _password(password_stdin)
    user = users.add(db, name, password, accounts=account or [], admin=admin)
    if fmt is Format.table:
        seen = "every account" if user["admin"] else ", ".join(user["accounts"])
        output.info(
            f"Added user [bold]{output.escape(user['name'])}[/] (sees {output.escape(seen)})."
            " Next: trackly dashboard"
        )
    else:
        output.emit_record(user, fmt)


@app.command("list")
def list_command(
    ctx: typer.Context,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """List dashboard users and the accounts each sees."""
    output.emit(
        users.list_all(state.db(ctx)),
        fmt,
        out,
        empty="No users yet: trackly user add NAME --admin",
    )


@app.command("remove")
def remove(ctx: typer.Context, name: NameArg, fmt: FormatOpt = Format.table) -> None:
    """Remove a dashboard user (and end their sessions)."""
    user = users.remove(state.db(ctx), name)
    if fmt is Format.table:
        output.info(f"Removed user [bold]{output.escape(user['name'])}[/].")
    else:
        output.emit_record(user, fmt)


@app.command("passwd")
def passwd(
    ctx: typer.Context,
    name: NameArg,
    password_stdin: PasswordStdinOpt = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Set a user's password (their open sessions end)."""
    db = state.db(ctx)
    users.find(db, name)  # (an unknown name is said before the password is asked for)
    user = users.set_password(db, name, _password(password_stdin))
    if fmt is Format.table:
        output.info(f"New password for [bold]{output.escape(user['name'])}[/].")
    else:
        output.emit_record(user, fmt)
