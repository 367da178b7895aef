"""trackly creative: saved message templates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trackly_cli import output, state
from trackly_cli.core import creatives, deletions
from trackly_cli.core.errors import InvalidInput
from trackly_cli.options import (
    AccountOpt,
    AllOpt,
    ForceOpt,
    FormatOpt,
    LimitOpt,
    OutputOpt,
    page_limit,
)
from trackly_cli.output import Format

app = typer.Typer(
    help="Creatives (message templates): add, list, show, delete.", no_args_is_help=True
)


def read_template(path: Path) -> str:
    """A template file's text (UTF-8), or stdin for '-'."""
    try:
        data = typer.get_binary_stream("stdin").read() if str(path) == "-" else path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror or e}") from e
    try:
        # The newline an editor leaves at the end of the file is not part of the message.
        return data.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InvalidInput(f"{path}: line {line} is not UTF-8: save the file as UTF-8") from e


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Creative name.")],
    file: Annotated[
        Path, typer.Argument(help="Template file (UTF-8), or - for stdin.", allow_dash=True)
    ],
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Save a message template as a creative."""
    creative = creatives.add(state.db(ctx), account, name, read_template(file))
    if fmt is Format.table:
        slots = ", ".join(creative["slots"]) or "no link slots"
        name = escape(creative["name"])
        output.info(f"Added creative [bold]{name}[/] (id {creative['id']}): {slots}.")
    else:
        output.emit_record(creative, fmt)


@app.command("list")
def list_command(
    ctx: typer.Context,
    account: AccountOpt = None,
    limit: LimitOpt = None,
    every: AllOpt = False,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """List the account's creatives."""
    found = creatives.list_all(state.db(ctx), account, page_limit(limit, every, fmt))
    output.emit(
        found.rows,
        fmt,
        out,
        columns=["id", "name", "slots", "fields", "messages", "body"]
        if fmt is Format.table
        else None,
        empty="No creatives yet.",
        total=found.total,
    )


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Creative name or id.")],
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Show a creative's text, slots and merge fields."""
    output.emit_record(creatives.show(state.db(ctx), account, name), fmt, out)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Creative name or id.")],
    account: AccountOpt = None,
) -> None:
    """Delete a creative that no campaign used."""
    deleted = deletions.delete_creative(state.db(ctx), account, name)
    output.info(f"Deleted creative {escape(deleted['creative'])} (id {deleted['id']}).")
