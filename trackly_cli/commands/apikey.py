"""trackly apikey: the keys scripts use with the JSON API of `trackly dashboard` (/api/v1)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import apikeys
from trackly_cli.options import AccountOpt, ForceOpt, FormatOpt, OutputOpt
from trackly_cli.output import Format

app = typer.Typer(
    help="API keys for /api/v1 of `trackly dashboard`: create, list, revoke.",
    no_args_is_help=True,
)


class Scope(StrEnum):
    read = "read"
    write = "write"


LISTED = ["id", "account", "name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]


@app.command("create")
def create(
    ctx: typer.Context,
    account: AccountOpt = None,
    scope: Annotated[
        Scope,
        typer.Option(
            "--scope",
            help="read: GET requests only; write: shorten and change offers too.",
            case_sensitive=False,
        ),
    ] = Scope.read,  # (apikeys.DEFAULT_SCOPE: the least a key may do)
    name: Annotated[
        str | None,
        typer.Option("--name", help="What the key is for (default: its first characters)."),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create an API key of one account (printed once, alone on stdout; only its hash is kept)."""
    made = apikeys.create(state.db(ctx), account, scope=scope.value, name=name)
    if fmt is Format.table:
        typer.echo(made["key"])
        output.info(
            f"Created {made['scope']} key {made['id']} ({output.escape(made['name'])}) of account"
            f" {output.escape(made['account'])}: it is shown only now."
        )
    else:
        output.emit_record(
            {k: made[k] for k in ("key", "id", "name", "scope", "account", "prefix")}, fmt
        )


@app.command("list")
def list_command(
    ctx: typer.Context,
    account: Annotated[
        str | None,
        typer.Option(
            "--account", "-a", metavar="NAME", help="Only this account's keys (default: all)."
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """List API keys, revoked ones too: first characters, scope, last use (never a key)."""
    output.emit(
        apikeys.list_all(state.db(ctx), account),
        fmt,
        out,
        columns=LISTED,
        empty="No API keys yet: trackly apikey create --account NAME --scope read",
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (`apikey list`).")],
    fmt: FormatOpt = Format.table,
) -> None:
    """Revoke an API key: requests with it answer 401 from now on."""
    done = apikeys.revoke(state.db(ctx), key_id)
    if fmt is Format.table:
        output.info(f"Revoked API key {done['id']} ({output.escape(done['name'])}).")
    else:
        output.emit_record(done, fmt)
