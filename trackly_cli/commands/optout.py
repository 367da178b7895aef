"""trackly optout: the account's suppression list, honoured by every shorten."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trackly_cli import output, state
from trackly_cli.core import optouts
from trackly_cli.options import (
    AccountOpt,
    AllOpt,
    CountryOpt,
    ForceOpt,
    FormatOpt,
    LimitOpt,
    OutputOpt,
    page_limit,
)
from trackly_cli.output import Format

app = typer.Typer(
    help="Opt-outs: numbers that get no message from any shorten (add, import, list, remove).",
    no_args_is_help=True,
)
PhonesArg = Annotated[
    list[str], typer.Argument(metavar="PHONE…", help="Phone numbers (any format).")
]


@app.command("add")
def add(
    ctx: typer.Context,
    phones: PhonesArg,
    keyword: Annotated[
        str, typer.Option("--keyword", help="What the person sent (STOP, UNSUBSCRIBE…).")
    ] = "STOP",
    country: CountryOpt = "US",
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Opt numbers out: no shorten makes a message for them (numbers opted out already stay as
    they were; an invalid number adds nothing)."""
    result = optouts.add(state.db(ctx), account, phones, country=country, keyword=keyword)
    if fmt is not Format.table:
        output.emit_record(result.as_dict(), fmt)
        return
    output.info(
        f"Added {len(result.added):,} number(s) to the opt-out list of account"
        f" {escape(result.account)}; {len(result.already):,} already opted out."
    )


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="A gateway's inbound or STOP export (CSV): a phone column (phone, from, msisdn,"
            " sender, number, mobile), optionally the text (body, text, message) and the time"
            " (date, DateSent, timestamp, received_at, message-timestamp).",
            dir_okay=False,
            metavar="FILE",
        ),
    ],
    country: CountryOpt = "US",
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Opt out the numbers of a gateway's STOP export: with a text column, only the rows whose
    text is an opt-out keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE;
    any case); bad rows are reported by line and skipped."""
    with output.open_input(file) as stream:
        result = optouts.import_csv(
            state.db(ctx), account, stream, source=f"import:{file.name}", country=country
        )
    output.warn_invalid(result.invalid, result.invalid_count)
    if fmt is not Format.table:
        output.emit_record(result.as_dict(), fmt)
        return
    output.info(
        f"Read {result.rows:,} rows: imported {result.imported:,}, already {result.already:,},"
        f" skipped {result.not_optouts:,} (not opt-outs), bad {result.invalid_count:,}."
    )


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
    """List the account's opted-out numbers (a table: the first 50; --limit N, --all)."""
    page = optouts.list_optouts(state.db(ctx), account, page_limit(limit, every, fmt))
    output.emit(
        page.rows,
        fmt,
        out,
        columns=["phone", "keyword", "opted_out_at", "source", "created_at"],
        empty="No opt-outs.",
        total=page.total,
    )


@app.command("remove")
def remove(
    ctx: typer.Context,
    phones: PhonesArg,
    country: CountryOpt = "US",
    account: AccountOpt = None,
) -> None:
    """Take numbers off the opt-out list (they may get messages again); a number not on it
    removes nothing."""
    removed = optouts.remove(state.db(ctx), account, phones, country=country)
    output.info(f"Removed {len(removed):,} number(s) from the opt-out list: {', '.join(removed)}.")
