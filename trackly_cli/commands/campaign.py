"""trackly campaign: the campaigns `trackly shorten` made, as a noun: list, show, outbox, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trackly_cli import output, state
from trackly_cli.core import campaigns
from trackly_cli.options import (
    AccountOpt,
    AllOpt,
    CampaignArg,
    ForceOpt,
    FormatOpt,
    LimitOpt,
    OutputOpt,
    page_limit,
)
from trackly_cli.output import Format

app = typer.Typer(help="Campaigns: list, show, outbox, delete.", no_args_is_help=True)


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
    """List the account's campaigns, newest first, with their report numbers (a table: the
    first 50; --limit N, --all)."""
    found = campaigns.listing(state.db(ctx), account)
    shown = page_limit(limit, every, fmt)
    rows = found[:shown] if shown else found
    columns = None
    if fmt is Format.table and not any(r["delivered"] or r["undelivered"] for r in rows):
        # (no delivery report imported: the columns would say nothing)
        columns = [k for k in (rows[0] if rows else {}) if k not in ("delivered", "undelivered")]
    output.emit(rows, fmt, out, columns=columns, empty="No campaigns yet.", total=len(found))


@app.command("show")
def show(
    ctx: typer.Context,
    name: CampaignArg,
    limit: Annotated[
        int, typer.Option("--limit", min=0, max=10_000, help="Show this many of its messages.")
    ] = campaigns.SAMPLE,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Show a campaign: its numbers, list, domain, variants with their creatives and offers,
    and its first messages with their links."""
    record = campaigns.detail(state.db(ctx), account, name, limit)
    if fmt is not Format.table:
        output.emit_record(record, fmt, out)
        return
    variants = [
        {k: v for k, v in variant.items() if k != "links"} | variant["links"]
        for variant in record.pop("variants")
    ]
    messages = [
        {k: v for k, v in message.items() if k != "links"} | message["links"]
        for message in record.pop("messages")
    ]
    sections = [("Variants", variants)]
    if messages:
        sections.append((f"First {len(messages)} messages", messages))
    output.emit_sections(record, sections, out, title=f"Campaign {escape(record['name'])}")


@app.command("outbox")
def outbox(
    ctx: typer.Context,
    name: CampaignArg,
    out: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="The outbox CSV to write.", dir_okay=False, writable=True
        ),
    ],
    account: AccountOpt = None,
    force: ForceOpt = False,
) -> None:
    """Write a campaign's outbox CSV again: the same file `trackly shorten --output` wrote
    (same rows, texts and links), less the numbers that opted out and the people erased since."""
    written = campaigns.write_outbox(state.db(ctx), account, name, output.writable(out))
    left_out = [
        f"{written['skipped_optouts']:,} opted out since" if written["skipped_optouts"] else "",
        f"{written['skipped_erased']:,} erased" if written["skipped_erased"] else "",
    ]
    why = " and ".join(part for part in left_out if part)
    output.info(
        f"Wrote {escape(written['outbox'])}: {written['messages']:,} messages of"
        f" {escape(written['campaign'])}" + (f" (left out: {why})." if why else ".")
    )


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: CampaignArg,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Delete a campaign that has clicks or conversions too: its links stop"
            " answering clicks (404) and it leaves `campaign list`, while its messages, clicks,"
            " conversions and report rows stay (its name stays taken).",
        ),
    ] = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Delete a campaign. One without clicks or conversions goes whole: its messages, links
    and report counts (its name is free again), two seconds after its links stop answering.
    One with any is refused unless --force."""
    done = campaigns.delete(state.db(ctx), account, name, force=force)
    if fmt is not Format.table:
        output.emit_record(done, fmt)
    elif done["deleted"] == "removed":
        output.info(
            f"Deleted campaign [bold]{escape(done['campaign'])}[/]:"
            f" {done['messages_removed']:,} messages and their links."
        )
    else:
        output.info(
            f"Retired campaign [bold]{escape(done['campaign'])}[/]: its links no longer answer; its"
            f" {done['clicks']:,} clicks and {done['conversions']:,} conversions stay in reports."
        )
