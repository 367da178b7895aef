"""trackly receipts: a gateway's delivery report, read into each message's delivery state."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import receipts
from trackly_cli.options import AccountOpt, CountryOpt, FormatOpt, StrictOpt
from trackly_cli.output import Format

app = typer.Typer(help="Delivery receipts: import a gateway's delivery report.")


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="The gateway's CSV delivery report: " + receipts.FORMAT_HELP + ".",
            dir_okay=False,
            metavar="FILE",
        ),
    ],
    campaign: Annotated[
        str | None,
        typer.Option(
            "--campaign",
            help="The campaign the report is about (rows found by phone match its messages).",
        ),
    ] = None,
    country: CountryOpt = "US",
    strict: StrictOpt = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Record each message's delivery (delivered, failed or pending, with the gateway's time):
    reports count delivered and undelivered messages, and the bot detector's timing signal
    measures from delivery, so the clicks of the messages it names are judged again. Every
    row is checked before any is recorded; bad rows are reported by line."""
    db = state.db(ctx)
    with output.open_input(file) as stream:
        result = receipts.import_csv(
            db, account, stream, campaign_ref=campaign, country=country, strict=strict
        )
    output.warn_invalid(result.invalid)
    summary = result.as_dict()
    if fmt is not Format.table:
        output.emit_record(summary, fmt)
        return
    output.info(
        f"Read {result.rows:,} rows ({result.format} format): {result.recorded:,} messages"
        f" updated ({summary['delivered']:,} delivered, {summary['failed']:,} failed,"
        f" {summary['pending']:,} pending), {result.unchanged:,} unchanged,"
        f" {result.unknown:,} about no message of the account"
        + (f", {result.inbound:,} inbound" if result.inbound else "")
        + f", {len(result.invalid):,} invalid."
    )
    if result.clicks_judged:
        output.info(
            f"Judged {result.clicks_judged:,} clicks again from delivery:"
            f" {result.clicks_to_bot:,} now bots, {result.clicks_to_human:,} now human."
        )
