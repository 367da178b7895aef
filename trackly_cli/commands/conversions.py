"""trackly conversions: list them with their attribution; import a network's report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import conversions, filters
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
    StrictOpt,
    UntilOpt,
    given_before,
    page_limit,
)
from trackly_cli.output import Format

app = typer.Typer(help="Conversions: list them (with their attribution) or import a report.")


# The table leaves out what the wide listing has for scripts (variant, ids of the message and
# the MessageClick).
COLUMNS = [
    c for c in conversions.LIST_COLUMNS if c not in ("variant", "message_id", "message_click_id")
]


@app.callback(invoke_without_command=True)
def conversions_command(
    ctx: typer.Context,
    campaign: CampaignOpt = None,
    offer: OfferOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: LimitOpt = None,
    every: AllOpt = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """List conversions with their attribution (attributed, outside_window, no_click,
    no_message), as `trackly conversions list` does. `trackly conversions import FILE` imports a
    network's report."""
    if ctx.invoked_subcommand:
        given_before(ctx)
        return
    _list(ctx, campaign, offer, since, until, limit, every, account, fmt, out)


# `list` is the same command as the bare noun, options and all.
app.command(
    "list",
    help="List conversions with their attribution (attributed, outside_window, no_click,"
    " no_message).",
)(conversions_command)


def _list(ctx, campaign, offer, since, until, limit, every, account, fmt, out) -> None:
    rows_wanted = page_limit(limit, every, fmt)
    db = state.db(ctx)
    chosen = filters.resolve(
        db, account=account, campaign=campaign, offer=offer, since=since, until=until
    )
    found = conversions.list_conversions(db, chosen, limit=rows_wanted)
    columns = {Format.table: COLUMNS, Format.csv: conversions.LIST_COLUMNS}.get(fmt)
    output.emit(found.rows, fmt, out, columns=columns, empty="No conversions.", total=found.total)


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with link_id (or click_id, cid, subid) or message_id, event, revenue, "
            "payout, txn_id, time.",
            dir_okay=False,
        ),
    ],
    offer: Annotated[
        str | None,
        typer.Option(
            "--offer", help="The offer of rows that give a message_id rather than a link."
        ),
    ] = None,
    strict: StrictOpt = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Import conversions from a network's CSV report, with the postbacks' validation and
    deduplication (every row checked before any is recorded; bad rows reported by line)."""
    db = state.db(ctx)
    with output.open_input(file) as stream:
        result = conversions.import_csv(db, account, stream, offer_ref=offer, strict=strict)
    output.warn_invalid(result.invalid)
    summary = {
        "rows": result.rows,
        "recorded": result.recorded,
        "duplicates": result.duplicates,
        "pending": result.pending,
        "invalid": len(result.invalid),
    }
    if fmt is Format.table:
        output.info(
            f"Imported {result.recorded:,} of {result.rows:,} rows:"
            f" {result.duplicates:,} duplicates, {len(result.invalid):,} invalid"
            + (f", {result.pending:,} refunds waiting for their sale." if result.pending else ".")
        )
    else:
        output.emit_record(summary, fmt)
