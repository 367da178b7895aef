"""trackly prune: retention of raw clicks and IP anonymisation."""

from __future__ import annotations

from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import accounts, campaigns, idempotency, retention, webhooks
from trackly_cli.options import AccountOpt, ForceOpt, FormatOpt, OutputOpt
from trackly_cli.output import Format


def prune_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; change nothing.")
    ] = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Delete raw clicks older than each account's --retention-days and anonymise IPs older
    than its --anonymize-ips-after. Reports do not change: they read counters kept as the
    clicks came. (`trackly serve` does this once a day by itself.) Also removes campaigns
    that a killed `trackly shorten` left incomplete, webhook events sent or given up over 30
    days ago and the API's Idempotency-Keys older than a day."""
    db = state.db(ctx)
    owner = accounts.resolve(db, account) if account else None
    account_id = owner["id"] if owner else None
    results = retention.prune(db, account_id=account_id, dry_run=dry_run)
    left = [
        c
        for c in campaigns.incomplete(db)
        if c["state"] == "left over" and (owner is None or c["account"] == owner["name"])
    ]
    for campaign in left:
        if not dry_run:
            if not campaigns.claim(db, campaign):
                continue  # another run has claimed it meanwhile
            campaigns.remove(db, campaign["id"])
        output.info(
            f"{campaign['account']}: {'would remove' if dry_run else 'removed'} campaign"
            f" {campaign['name']!r}, left incomplete by a `trackly shorten` that did not finish"
            f" ({campaign['messages']:,} messages written)."
        )
    if not dry_run and account_id is None:
        sent = webhooks.prune(db)
        if sent:
            output.info(
                f"Removed {sent:,} webhook events delivered or given up over"
                f" {webhooks.KEEP_EVENTS_DAYS} days ago."
            )
        idempotency.prune(db)  # (the API's Idempotency-Keys older than a day: nothing to say)
    rows = [r.as_dict() for r in results]
    if fmt is Format.table:
        verb = "would remove" if dry_run else "removed"
        for r in rows:
            anonymised = (
                f", {r['ips_anonymized']:,} IPs {'to anonymise' if dry_run else 'anonymised'}"
                if r["anonymize_ips_after_days"] is not None
                else ""
            )
            output.info(
                f"{r['account']}: {verb} {r['clicks']:,} raw clicks older than"
                f" {r['retention_days']} days{anonymised}."
            )
        if out:
            output.emit(rows, fmt, out)
    else:
        output.emit(rows, fmt, out)
