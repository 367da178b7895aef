"""trackly bots: bot verdicts, IP ranges, re-classification."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import bots, filters, ipranges, rescan
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
    help="Bot detection: check a visitor, manage IP ranges, re-classify clicks.",
    no_args_is_help=True,
)
ranges_app = typer.Typer(
    help="IP ranges: deny and allow lists, datacenter ranges.", no_args_is_help=True
)
app.add_typer(ranges_app, name="ranges")


class Kind(StrEnum):
    datacenter = "datacenter"
    deny = "deny"
    allow = "allow"


@app.command("check")
def check(
    ctx: typer.Context,
    ua: Annotated[
        str | None, typer.Option("--ua", metavar="TEXT", help="The user agent to judge.")
    ] = None,
    ip: Annotated[
        str | None, typer.Option("--ip", metavar="IP", help="The client IP address.")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", metavar="METHOD", help="The HTTP method.")
    ] = "GET",
    fmt: FormatOpt = Format.table,
) -> None:
    """Judge a user agent (and IP) as the server would: the verdict and its reasons. With --ip
    alone, what the IP says (deny list, datacenter ranges)."""
    db = state.db(ctx)
    verdict = bots.check(bots.Detector(ipranges.load(db)), ua, ip, method)
    if fmt is Format.table:
        label = "[bold red]bot[/]" if verdict.is_bot else "[bold green]human[/]"
        output.stdout.print(label)
        for reason in verdict.reasons:
            output.stdout.print(f"  - {reason}", markup=False)
    else:
        output.emit_record(
            {
                "is_bot": verdict.is_bot,
                "reasons": list(verdict.reasons),
                "user_agent": ua,
                "ip": ip,
            },
            fmt,
        )


@ranges_app.command("import")
def ranges_import(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="AWS ip-ranges.json, Google cloud.json / goog.json, or one CIDR per line.",
            dir_okay=False,
        ),
    ],
    kind: Annotated[Kind, typer.Option("--kind", help="What the ranges are.")] = Kind.datacenter,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Name of this set (default: aws, google or the file name); "
            "importing it again replaces it.",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Import IP ranges; clicks from them are flagged (deny, datacenter) or trusted (allow)."""
    result = ipranges.import_file(state.db(ctx), file, kind=kind.value, source=source)
    if fmt is Format.table:
        output.info(
            f"Imported {result['ranges']:,} {result['kind']} ranges as"
            f" [bold]{result['source']}[/] ({result['format']} format; replaced"
            f" {result['replaced']:,})."
        )
    else:
        output.emit_record(result, fmt)


@ranges_app.command("add")
def ranges_add(
    ctx: typer.Context,
    cidrs: Annotated[list[str], typer.Argument(help="Addresses or CIDR ranges.")],
    kind: Annotated[Kind, typer.Option("--kind", help="deny, allow or datacenter.")] = Kind.deny,
) -> None:
    """Add addresses or ranges to the deny list (or --kind allow)."""
    added = ipranges.add(state.db(ctx), kind.value, cidrs)
    output.info(f"Added {len(added)} range(s) to the {kind.value} list: {', '.join(added)}")


@ranges_app.command("remove")
def ranges_remove(
    ctx: typer.Context,
    cidr: Annotated[str | None, typer.Argument(help="The range to remove.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Remove a whole set.")] = None,
    kind: Annotated[Kind | None, typer.Option("--kind", help="Only of this kind.")] = None,
) -> None:
    """Remove a range, or a whole imported set with --source."""
    count = ipranges.remove(
        state.db(ctx), kind=kind.value if kind else None, cidr=cidr, source=source
    )
    output.info(f"Removed {count:,} range(s).")


@ranges_app.command("list")
def ranges_list(
    ctx: typer.Context,
    cidrs: Annotated[
        bool, typer.Option("--cidrs", help="List the ranges themselves, not a summary.")
    ] = False,
    limit: LimitOpt = None,
    every: AllOpt = False,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Summarise the IP ranges by kind and source (or list them with --cidrs)."""
    found = (ipranges.ranges if cidrs else ipranges.summary)(
        state.db(ctx), page_limit(limit, every, fmt)
    )
    output.emit(
        found.rows,
        fmt,
        out,
        empty="No IP ranges yet: trackly bots ranges import FILE",
        total=found.total,
    )


@app.command("rescan")
def rescan_command(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only clicks from this date or time (2026-11-01, 7d)."),
    ] = None,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Re-run the classifier over stored clicks (after importing ranges, say) and rebuild the
    MessageClicks and attributions that follow from the new verdicts."""
    db = state.db(ctx)
    chosen = filters.resolve(db, account=account, since=since)
    result = rescan.rescan(db, chosen.account["id"], since=chosen.since_text)
    if fmt is Format.table:
        output.info(
            f"Re-classified {result.clicks:,} clicks: {result.to_bot:,} now bots,"
            f" {result.to_human:,} now human; MessageClicks +{result.message_clicks_added:,}"
            f" −{result.message_clicks_removed:,}; {result.conversions_reattributed:,}"
            " conversions re-attributed."
        )
    else:
        output.emit_record(result.as_dict(), fmt)
