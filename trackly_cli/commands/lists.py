"""trackly list: sending lists and their bot-filter and interstitial settings."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from trackly_cli import completion, output, state
from trackly_cli.core import lists
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

app = typer.Typer(help="Sending lists: create, update, show, list.", no_args_is_help=True)


class BotFilter(StrEnum):
    off = "off"
    flag = "flag"
    confirm = "confirm"


NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="List name or id.", autocompletion=completion.lists)
]
BotFilterOpt = Annotated[
    BotFilter | None,
    typer.Option(
        "--bot-filter",
        help="off: every first click counts; flag: bots recorded, never unique clicks (default); "
        "confirm: a Continue page, only its button counts.",
    ),
]
MinHumanOpt = Annotated[
    float | None,
    typer.Option(
        "--min-human-seconds",
        min=0,
        help="A click sooner than this after sending is suspect (default 2).",
    ),
]
TitleOpt = Annotated[str | None, typer.Option("--interstitial-title", help="Default page title.")]
DescriptionOpt = Annotated[
    str | None, typer.Option("--interstitial-description", help="Default page text.")
]
CtaOpt = Annotated[str | None, typer.Option("--interstitial-cta", help="Default button label.")]
MetaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--interstitial-meta", metavar="KEY=VALUE", help="Default page meta tag (repeatable)."
    ),
]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="List name.")],
    bot_filter: BotFilterOpt = None,
    min_human_seconds: MinHumanOpt = None,
    title: TitleOpt = None,
    description: DescriptionOpt = None,
    cta: CtaOpt = None,
    meta: MetaOpt = None,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create a sending list."""
    created = lists.create(
        state.db(ctx),
        account,
        name,
        bot_filter=(bot_filter or BotFilter.flag).value,
        min_human_seconds=lists.DEFAULT_MIN_HUMAN_SECONDS
        if min_human_seconds is None
        else min_human_seconds,
        title=title,
        description=description,
        cta=cta,
        meta=meta,
    )
    if fmt is Format.table:
        output.info(
            f"Created list [bold]{created['name']}[/] (id {created['id']}). Next: "
            f"trackly contacts import {created['name']} contacts.csv"
        )
    else:
        output.emit_record(created, fmt)


@app.command("update")
def update(
    ctx: typer.Context,
    name: NameArg,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename the list.")] = None,
    bot_filter: BotFilterOpt = None,
    min_human_seconds: MinHumanOpt = None,
    title: TitleOpt = None,
    description: DescriptionOpt = None,
    cta: CtaOpt = None,
    meta: MetaOpt = None,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Change a list's settings."""
    updated = lists.update(
        state.db(ctx),
        account,
        name,
        name=new_name,
        bot_filter=bot_filter.value if bot_filter else None,
        min_human_seconds=min_human_seconds,
        title=title,
        description=description,
        cta=cta,
        meta=meta,
    )
    output.emit_record(updated, fmt)


@app.command("show")
def show(
    ctx: typer.Context,
    name: NameArg,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Show a list's settings and member count."""
    output.emit_record(lists.show(state.db(ctx), account, name), fmt, out)


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
    """List the account's sending lists."""
    found = lists.list_all(state.db(ctx), account, page_limit(limit, every, fmt))
    output.emit(
        found.rows,
        fmt,
        out,
        columns=None
        if fmt is not Format.table
        else ["id", "name", "members", "bot_filter", "min_human_seconds", "interstitial_title"],
        empty="No lists yet: create one with `trackly list create NAME`.",
        total=found.total,
    )
