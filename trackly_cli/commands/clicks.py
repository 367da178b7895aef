"""trackly clicks list (and the bare `trackly clicks`, as before): raw clicks with their verdict."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import exports, filters
from trackly_cli.core.errors import InvalidInput
from trackly_cli.options import (
    AccountOpt,
    AllOpt,
    CampaignOpt,
    ForceOpt,
    FormatOpt,
    LimitOpt,
    OfferOpt,
    OutputOpt,
    SinceOpt,
    UntilOpt,
    given_before,
    page_limit,
)
from trackly_cli.output import Format

app = typer.Typer(help="Raw clicks: list (export) them with their bot verdict.")

BotsOpt = Annotated[bool, typer.Option("--bots", help="Only clicks flagged as bots.")]
HumansOpt = Annotated[bool, typer.Option("--humans", help="Only clicks not flagged.")]

# The table's columns: the rest (user agent, referer…) are in CSV and JSON.
TABLE_COLUMNS = ["clicked_at", "link_id", "phone", "offer", "ip", "is_bot", "bot_reasons"]


@app.callback(invoke_without_command=True)
def clicks_command(
    ctx: typer.Context,
    campaign: CampaignOpt = None,
    offer: OfferOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    bots: BotsOpt = False,
    humans: HumansOpt = False,
    limit: LimitOpt = None,
    every: AllOpt = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.csv,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Export raw clicks (every hit, repeats and bots included) with the bot verdict and its
    reasons; `trackly clicks list` is the same."""
    if ctx.invoked_subcommand:
        given_before(ctx)
        return
    _export(ctx, campaign, offer, since, until, bots, humans, limit, every, account, fmt, out)


# `list` is the same command as the bare noun, options and all.
app.command(
    "list",
    help="Export raw clicks (every hit, repeats and bots included) with the bot verdict and its"
    " reasons: CSV by default, a table of the first 50 with --format table.",
)(clicks_command)


def _export(ctx, campaign, offer, since, until, bots, humans, limit, every, account, fmt, out):
    if bots and humans:
        raise InvalidInput("--bots and --humans exclude each other")
    rows_wanted = page_limit(limit, every, fmt)
    db = state.db(ctx)
    chosen = filters.resolve(
        db, account=account, campaign=campaign, offer=offer, since=since, until=until
    )
    verdict = True if bots else False if humans else None
    rows = exports.list_clicks(db, chosen, bots=verdict, limit=rows_wanted)
    if fmt is Format.csv:
        _stream_csv(rows, out)
        return
    found = list(rows)
    total = None
    if rows_wanted is not None and len(found) == rows_wanted:  # (maybe more: count them)
        total = exports.count_clicks(db, chosen, bots=verdict)
    output.emit(
        found,
        fmt,
        out,
        empty="No clicks.",
        columns=TABLE_COLUMNS if fmt is Format.table else None,
        total=total,
    )


def _stream_csv(rows, out: Path | None) -> None:
    """CSV row by row, so that a large export needs no memory."""
    if out:
        output.writable(out)
    try:
        handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    except OSError as e:
        raise InvalidInput(f"cannot write {out}: {e.strerror or e}") from e
    try:
        writer = None
        count = 0
        for row in rows:
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow({k: output.csv_cell(v) for k, v in row.items()})
            count += 1
        if writer is None:
            handle.write(",".join(CLICK_COLUMNS) + "\n")
    finally:
        if out:
            handle.close()
            output.info(f"Wrote {count:,} clicks to {out}")


CLICK_COLUMNS = [
    "id",
    "clicked_at",
    "link_id",
    "slot",
    "message_id",
    "phone",
    "offer",
    "campaign",
    "variant",
    "method",
    "ip",
    "user_agent",
    "referer",
    "accept_language",
    "is_bot",
    "bot_reasons",
    "message_click",
]
