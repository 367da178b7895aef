"""trackly report / ab / segment / clicks: the numbers operators decide with."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from trackly_cli import html_report, output, state
from trackly_cli.core import abtest, filters, reports, segments, store
from trackly_cli.core.errors import InvalidInput
from trackly_cli.options import (
    AccountOpt,
    CampaignArg,
    CampaignOpt,
    ForceOpt,
    FormatOpt,
    ListOpt,
    OfferOpt,
    OutputOpt,
    SinceOpt,
    TzOpt,
    UntilOpt,
)
from trackly_cli.output import Format


class By(StrEnum):
    campaign = "campaign"
    message = "message"
    offer = "offer"
    creative = "creative"
    list = "list"
    variant = "variant"
    day = "day"
    domain = "domain"


# The table leaves out converting clicks and unattributed revenue (JSON and CSV have them) to
# stay readable.
TABLE_COLUMNS = [
    c for c in reports.COLUMNS if c not in ("converting_clicks", "unattributed_revenue")
]

# What the table shows by default: what fits 80 columns. --wide shows TABLE_COLUMNS, --columns
# picks; JSON and CSV always have every column.
COMPACT = ["sent", "clicks", "bot_clicks", "unique_clicks", "click_rate", "conversions", "revenue"]

# The names --columns takes besides the JSON keys: the table's short headers.
ALIASES = {short.replace(" ", ""): column for column, short in output.SHORT_HEADERS.items()}

# Shown in the wide table once a delivery report was imported (JSON and CSV always have them).
DELIVERY = ("delivered", "undelivered")


def _has_receipts(result: reports.Report) -> bool:
    return any(result.totals.get(c) for c in DELIVERY)


def pick_columns(text: str) -> list[str]:
    """--columns a,b,c: report columns by JSON key or short header, in the order given."""
    picked = []
    for name in [n.strip().lower() for n in text.split(",") if n.strip()] or [""]:
        column = name if name in reports.COLUMNS else ALIASES.get(name.replace(" ", ""))
        if column is None:
            valid = ", ".join(
                output.SHORT_HEADERS.get(c, c).replace(" ", "") for c in reports.COLUMNS
            )
            raise typer.BadParameter(
                f"no column {name!r}: choose from {valid} (or their JSON names)",
                param_hint="'--columns'",
            )
        if column not in picked:
            picked.append(column)
    return picked


def report_command(
    ctx: typer.Context,
    by: Annotated[By, typer.Option("--by", help="What each row is.")] = By.campaign,
    campaign: CampaignOpt = None,
    offer: OfferOpt = None,
    list_name: ListOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    tz: TzOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, max=10**9, metavar="N", help="At most N rows.")
    ] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="Every column in the table (JSON and CSV have them all).")
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            metavar="A,B,…",
            help="The table's columns, e.g. sent,unique,rate,revenue,epc (names as in JSON or"
            " the table's short headers).",
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", dir_okay=False, help="Also write a self-contained HTML report with charts."
        ),
    ] = None,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Sent, raw / bot / unique clicks, click rate, conversions, revenue and payout, by
    campaign, message, offer, creative, list, variant, day or domain."""
    if wide and columns is not None:
        raise typer.BadParameter("--wide and --columns exclude each other", param_hint="'--wide'")
    picked = pick_columns(columns) if columns is not None else None
    db = state.db(ctx)
    chosen = filters.resolve(
        db,
        account=account,
        campaign=campaign,
        offer=offer,
        sending_list=list_name,
        since=since,
        until=until,
        tz=tz,
    )
    result = reports.report(db, chosen, by.value, limit=limit)
    title = f"Trackly report by {by.value} — {chosen.account['name']}"
    subtitle = ", ".join(
        part
        for part in (
            f"campaign {chosen.campaign['name']}" if chosen.campaign else "",
            f"offer {chosen.offer['name']}" if chosen.offer else "",
            f"list {chosen.sending_list['name']}" if chosen.sending_list else "",
            reports.day_range_label(chosen) if chosen.since or chosen.until else "all time",
            f"days in {chosen.tz.key}" if chosen.tz else "times in UTC",
        )
        if part
    )
    if html is not None:
        output.writable(html)
        days = result if by is By.day else reports.report(db, chosen, "day")
        columns = (
            [result.key] if by is not By.variant else ["campaign", "variant"]
        ) + TABLE_COLUMNS
        try:
            html.write_text(
                html_report.page(title, subtitle, result, columns, days), encoding="utf-8"
            )
        except OSError as e:
            raise InvalidInput(f"cannot write {html}: {e.strerror or e}") from e
        output.info(f"Wrote {html}")
    if fmt is Format.table:
        if not result.rows:
            output.info("Nothing in this range.")
            return
        if picked:
            shown = picked
        elif wide:
            shown = [c for c in TABLE_COLUMNS if c not in DELIVERY or _has_receipts(result)]
        else:
            shown = COMPACT
        table = output.report_table(
            result,
            f"{title} ({subtitle})",
            shown,
            short=not wide,
            width=200 if out else output.width(),
        )
        output.render(table, out)
    else:
        output.emit(result.rows, fmt, out, columns=reports.columns(by.value))


def ab_command(
    ctx: typer.Context,
    campaign: CampaignArg,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Compare a campaign's variants: click rate with a 95% interval, conversions, revenue,
    and which variant wins (or how many more sends would tell)."""
    db = state.db(ctx)
    chosen = filters.resolve(db, account=account, campaign=campaign)
    result = abtest.ab(db, chosen.campaign)
    if fmt is not Format.table:
        if fmt is Format.json:
            output.emit_record(result, fmt, out)
        else:
            output.emit(result["variants"], fmt, out)
        return
    table = Table(title=f"A/B test — {result['campaign']}", header_style="bold")
    for column in (
        "variant",
        "creative",
        "sent",
        "unique clicks",
        "click rate (95% CI)",
        "conversions",
        "conv. rate",
        "revenue",
        "epc",
    ):
        table.add_column(column, justify="left" if column in ("variant", "creative") else "right")
    for row in result["variants"]:
        interval = (
            f"{row['click_rate']}% ({row['click_rate_low']}–{row['click_rate_high']})"
            if row["click_rate"] is not None
            else "–"
        )
        table.add_row(
            row["variant"],
            row["creative"] or "",
            f"{row['sent']:,}",
            f"{row['unique_clicks']:,}",
            interval,
            f"{row['conversions']:,}",
            f"{row['conversion_rate']}%" if row["conversion_rate"] is not None else "–",
            row["revenue"],
            row["epc"] or "–",
        )
    verdicts = [
        Text.from_markup(f"[{'bold green' if v['winner'] else 'yellow'}]{v['metric']}:[/] ")
        + Text(v["message"])
        for v in result["verdicts"]
    ]
    output.render(Group(table, *verdicts), out)  # one piece, so that --output holds all of it


class Audience(StrEnum):
    clicked = "clicked"
    not_clicked = "not_clicked"
    converted = "converted"
    bots_only = "bots_only"


def segment_command(
    ctx: typer.Context,
    campaign: CampaignArg,
    clicked: Annotated[bool, typer.Option("--clicked", help="Contacts who clicked.")] = False,
    not_clicked: Annotated[bool, typer.Option("--not-clicked", help="Who did not click.")] = False,
    converted: Annotated[bool, typer.Option("--converted", help="Who converted.")] = False,
    bots_only: Annotated[
        bool, typer.Option("--bots-only", help="Whose links only bots visited.")
    ] = False,
    offer: OfferOpt = None,
    into_list: Annotated[
        str | None, typer.Option("--into-list", help="Save the audience as a new list.")
    ] = None,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.csv,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Build an audience from a campaign by click behaviour: a new list (--into-list) or
    contacts as CSV (or JSON, or a table)."""
    chosen_kinds = [
        k
        for k, on in (
            ("clicked", clicked),
            ("not_clicked", not_clicked),
            ("converted", converted),
            ("bots_only", bots_only),
        )
        if on
    ]
    if len(chosen_kinds) != 1:
        raise InvalidInput(
            "choose exactly one of --clicked, --not-clicked, --converted, --bots-only"
        )
    db = state.db(ctx)
    if into_list:  # the write lock only when something is written
        with store.write(db) as conn:
            owner = filters.resolve(conn, account=account).account
            found = segments.segment(conn, owner["id"], campaign, chosen_kinds[0], offer)
            saved = segments.into_list(conn, owner["id"], into_list, found)
    else:
        owner = filters.resolve(db, account=account).account
        found = segments.segment(db, owner["id"], campaign, chosen_kinds[0], offer)
        saved = None
    if saved:
        output.info(f"Saved {saved['members']:,} contacts as list [bold]{saved['list']}[/].")
        if out is None:
            return
    rows = [{"phone": c["phone"]} | c["fields"] for c in found]
    names: list[str] = ["phone"]
    for row in rows:
        names += [k for k in row if k not in names]
    output.emit(
        [{n: r.get(n) for n in names} for r in rows],
        fmt,
        out,
        columns=names if rows else ["phone"],
        empty="No contacts in this segment.",
    )
    if not saved:
        output.info(f"{len(rows):,} contacts.")
