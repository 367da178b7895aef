"""trackly list: sending lists and their bot-filter and interstitial settings."""

from __future__ import annotations

import csv
import io
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trackly_cli import completion, output, state
from trackly_cli.core import contacts, deletions, lists
from trackly_cli.core.errors import InvalidInput
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
    help="Sending lists: create, update, show, list, remove-contacts, delete.", no_args_is_help=True
)


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
            f"Created list [bold]{escape(created['name'])}[/] (id {created['id']}). Next: "
            f"trackly contacts import {escape(created['name'])} contacts.csv"
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


@app.command("remove-contacts")
def remove_contacts(
    ctx: typer.Context,
    name: NameArg,
    numbers: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE|PHONE...",
            help="Phone numbers, or files of them (a CSV with a phone column, or one a line).",
        ),
    ],
    country: CountryOpt = "US",
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Take contacts off a list (they stay contacts, in their other lists)."""
    phones = [phone for item in numbers for phone in _numbers(item)]
    result = deletions.remove_contacts(state.db(ctx), account, name, phones, country)
    if fmt is not Format.table:
        output.emit_record(result.as_dict(), fmt)
        return
    note = ""
    if result.not_members:
        verb = "was" if result.not_members == 1 else "were"
        note = f" ({result.not_members:,} {verb} not on it)"
    removed = f"{result.removed:,} contact{'' if result.removed == 1 else 's'}"
    output.info(f"Removed {removed} from list {escape(result.list_name)}{note}.")


def _numbers(item: str) -> list[str]:
    """The numbers an argument names: a file's (a CSV with a phone column, or one a line), or
    the argument itself."""
    path = Path(item)
    if not path.is_file():
        return [item]
    with output.open_input(path) as stream:
        try:
            text = stream.read().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InvalidInput(f"{path} is not UTF-8: save the file as UTF-8") from e
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise InvalidInput(f"{path} holds no phone numbers")
    header = [contacts.field_name(c) for c in rows[0]]
    if "phone" in header:
        at = header.index("phone")
        return [r[at] for r in rows[1:] if at < len(r) and r[at].strip()]
    return [r[0] for r in rows if r[0].strip()]


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameArg,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Delete it even though campaigns were sent to it: their report rows stay, as"
            ' "(deleted list N)"; their later clicks count under "(no list)".',
        ),
    ] = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Delete a list and its memberships, not its contacts (once sent to: only with --force)."""
    deleted = deletions.delete_list(state.db(ctx), account, name, force=force)
    if fmt is not Format.table:
        output.emit_record(deleted, fmt)
        return
    output.info(
        f"Deleted list {escape(deleted['list'])} (id {deleted['id']}) and its"
        f" {deleted['members']:,} memberships; the contacts stay."
    )
