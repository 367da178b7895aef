"""trackly offer: destinations with payout, interstitial page and postback secret."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from trackly_cli import output, state
from trackly_cli.core import deletions, offers
from trackly_cli.options import (
    AccountOpt,
    AllOpt,
    ForceOpt,
    FormatOpt,
    LimitOpt,
    MetaOpt,
    OfferArg,
    OutputOpt,
    page_limit,
)
from trackly_cli.output import Format

app = typer.Typer(
    help="Offers: create, list, show, update, rotate-secret, archive, unarchive, delete.",
    no_args_is_help=True,
)


class Interstitial(StrEnum):
    none = "none"
    custom = "custom"
    list_default = "list_default"


class BotFilter(StrEnum):
    inherit = "inherit"
    off = "off"
    flag = "flag"
    confirm = "confirm"


NameArg = OfferArg
UrlOpt = Annotated[
    str,
    typer.Option(
        "--url",
        help="Destination: an absolute http(s) URL; may hold {link_id}, {message_id}, "
        "{contact_id}, {offer_id}, {campaign}.",
    ),
]
PayoutOpt = Annotated[
    str | None, typer.Option("--payout", help="Payout per conversion, e.g. 2.50.")
]
DaysOpt = Annotated[
    int | None,
    typer.Option(
        "--attribution-days",
        min=1,
        max=3650,
        help="Conversions count this many days after the click (7).",
    ),
]
InterstitialOpt = Annotated[
    Interstitial | None,
    typer.Option(
        "--interstitial",
        help="custom: this offer's page; list_default: the list's; none: redirect.",
    ),
]
TitleOpt = Annotated[str | None, typer.Option("--title", help="Interstitial page title.")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="Interstitial text.")]
CtaOpt = Annotated[str | None, typer.Option("--cta", help="Interstitial button label.")]
BotFilterOpt = Annotated[
    BotFilter | None,
    typer.Option("--bot-filter", help="Override the list's bot filter (inherit: use the list's)."),
]
PostbackIpOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--postback-ip",
        metavar="CIDR",
        help="Accept postbacks only from these addresses (repeatable; replaces the list).",
    ),
]

RequireSecretOpt = Annotated[
    bool | None,
    typer.Option(
        "--require-secret/--no-require-secret",
        help="/conv needs the postback_secret too, as /conv/offer does (refunds always do).",
    ),
]
MaxRevenueOpt = Annotated[
    str | None,
    typer.Option(
        "--max-revenue",
        metavar="AMOUNT",
        help="Refuse (400, logged) a conversion reporting more revenue; none: no maximum.",
    ),
]
LinkRateOpt = Annotated[
    int | None,
    typer.Option(
        "--link-conversions-per-hour",
        min=0,
        max=1_000_000,
        help="At most this many conversions on one link in an hour (20; 0: no limit).",
    ),
]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help='Offer name, e.g. "Summer Sale".')],
    url: UrlOpt,
    payout: PayoutOpt = None,
    attribution_days: DaysOpt = None,
    interstitial: InterstitialOpt = None,
    title: TitleOpt = None,
    description: DescriptionOpt = None,
    cta: CtaOpt = None,
    meta: MetaOpt = None,
    bot_filter: BotFilterOpt = None,
    postback_ip: PostbackIpOpt = None,
    require_secret: RequireSecretOpt = None,
    max_revenue: MaxRevenueOpt = None,
    link_conversions_per_hour: LinkRateOpt = None,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create an offer; prints its postback secret."""
    offer = offers.create(
        state.db(ctx),
        account,
        name,
        url,
        payout=payout or "0",
        attribution_days=offers.DEFAULT_ATTRIBUTION_DAYS
        if attribution_days is None
        else attribution_days,
        interstitial=(interstitial or Interstitial.none).value,
        title=title,
        description=description,
        cta=cta,
        meta=meta,
        bot_filter=(bot_filter or BotFilter.inherit).value,
        postback_ips=postback_ip,
        require_secret=bool(require_secret),
        max_revenue=max_revenue,
        link_conversions_per_hour=offers.DEFAULT_LINK_CONVERSIONS_PER_HOUR
        if link_conversions_per_hour is None
        else link_conversions_per_hour,
    )
    if fmt is Format.table:
        output.info(
            f"Created offer [bold]{offer['name']}[/] (id {offer['id']}), payout {offer['payout']}."
        )
        keys = ("id", "name", "url", "payout", "postback_secret", "postback_url")
        output.emit_record({k: offer[k] for k in keys}, fmt)
    else:
        output.emit_record(_shown(offer), fmt)


def _shown(offer: dict) -> dict:
    return {
        k: v
        for k, v in offer.items()
        if k not in ("created_at", "updated_at") and (k != "archived_at" or v is not None)
    }


@app.command("list")
def list_command(
    ctx: typer.Context,
    account: AccountOpt = None,
    archived: Annotated[
        bool, typer.Option("--archived", help="Archived offers too (`offer archive`).")
    ] = False,
    limit: LimitOpt = None,
    every: AllOpt = False,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """List the account's offers in use (secrets only with `offer show`)."""
    page = offers.list_all(state.db(ctx), account, page_limit(limit, every, fmt), archived)
    found = page.rows
    columns = [
        "id",
        "name",
        "url",
        "payout",
        "attribution_days",
        "interstitial",
        "bot_filter",
        "domain",
    ] + (["archived_at"] if archived else [])
    if fmt is Format.table:
        output.emit(found, fmt, out, columns=columns, empty="No offers yet.", total=page.total)
    else:
        output.emit(
            [
                {k: v for k, v in o.items() if k not in ("postback_secret", "postback_url")}
                for o in found
            ],
            fmt,
            out,
        )


@app.command("show")
def show(
    ctx: typer.Context,
    name: NameArg,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Show an offer, its postback secret and postback URL."""
    output.emit_record(offers.show(state.db(ctx), account, name), fmt, out)


@app.command("update")
def update(
    ctx: typer.Context,
    name: NameArg,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename the offer.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="New destination URL.")] = None,
    payout: PayoutOpt = None,
    attribution_days: DaysOpt = None,
    interstitial: InterstitialOpt = None,
    title: TitleOpt = None,
    description: DescriptionOpt = None,
    cta: CtaOpt = None,
    meta: MetaOpt = None,
    bot_filter: BotFilterOpt = None,
    postback_ip: PostbackIpOpt = None,
    any_postback_ip: Annotated[
        bool, typer.Option("--any-postback-ip", help="Accept postbacks from any address again.")
    ] = False,
    require_secret: RequireSecretOpt = None,
    max_revenue: MaxRevenueOpt = None,
    link_conversions_per_hour: LinkRateOpt = None,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Change an offer. Links already sent follow the new settings."""
    offer = offers.update(
        state.db(ctx),
        account,
        name,
        name=new_name,
        url=url,
        payout=payout,
        attribution_days=attribution_days,
        interstitial=interstitial.value if interstitial else None,
        title=title,
        description=description,
        cta=cta,
        meta=meta,
        bot_filter=bot_filter.value if bot_filter else None,
        postback_ips=postback_ip,
        clear_postback_ips=any_postback_ip,
        require_secret=require_secret,
        max_revenue=max_revenue,
        link_conversions_per_hour=link_conversions_per_hour,
    )
    output.emit_record(_shown(offer), fmt)


@app.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context, name: NameArg, account: AccountOpt = None, fmt: FormatOpt = Format.table
) -> None:
    """Replace the offer's postback secret (the old one stops working at once)."""
    offer = offers.rotate_secret(state.db(ctx), account, name)
    output.emit_record(
        {
            "id": offer["id"],
            "name": offer["name"],
            "postback_secret": offer["postback_secret"],
            "postback_url": offer["postback_url"],
        },
        fmt,
    )


@app.command("archive")
def archive(ctx: typer.Context, name: NameArg, account: AccountOpt = None) -> None:
    """Retire an offer that links use: out of `offer list` and new messages, while its links
    keep redirecting, its postbacks keep counting and its report rows stay."""
    offer = offers.archive(state.db(ctx), account, name)
    output.info(
        f"Archived offer {escape(offer['name'])} (id {offer['id']}): its links and postbacks"
        " work on; new messages cannot use it (`trackly offer unarchive` brings it back)."
    )


@app.command("unarchive")
def unarchive(ctx: typer.Context, name: NameArg, account: AccountOpt = None) -> None:
    """Bring an archived offer back into `offer list` and new messages."""
    offer = offers.archive(state.db(ctx), account, name, archived=False)
    output.info(f"Offer {escape(offer['name'])} (id {offer['id']}) is in use again.")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Offer name or id.")],
    account: AccountOpt = None,
) -> None:
    """Delete an offer that no link or conversion refers to (its links redirect to it)."""
    deleted = deletions.delete_offer(state.db(ctx), account, name)
    output.info(f"Deleted offer {escape(deleted['offer'])} (id {deleted['id']}).")
