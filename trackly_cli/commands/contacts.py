"""trackly contacts / contact: importing and looking up recipients."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from trackly_cli import completion, output, state
from trackly_cli.core import accounts, contacts, erasure, exports
from trackly_cli.options import (
    AccountOpt,
    AllOpt,
    CountryOpt,
    ForceOpt,
    FormatOpt,
    LimitOpt,
    ListArg,
    OutputOpt,
    StrictOpt,
    page_limit,
)
from trackly_cli.output import Format

app = typer.Typer(help="Contacts: import from CSV, list, show one, erase.", no_args_is_help=True)
contact_app = typer.Typer(
    help="One contact's journey (as `trackly contacts show`); erasing a person.",
    no_args_is_help=True,
)


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


@app.command("import")
def import_command(
    ctx: typer.Context,
    list_name: ListArg,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a phone column; other columns become merge fields.", dir_okay=False
        ),
    ],
    country: CountryOpt = "US",
    strict: StrictOpt = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Import contacts from CSV into a list (numbers to E.164, duplicates merged; every row is
    checked before any is written)."""
    with output.open_input(file) as stream:
        total = _count_lines(file) - 1
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} rows"),
            TimeElapsedColumn(),
            console=output.stderr,
            transient=True,
            disable=total < 20_000,
        ) as bar:
            task = bar.add_task("Checking", total=max(total, 1))

            def progress(phase: str, done: int, of: int | None) -> None:
                bar.update(task, description=phase.capitalize(), completed=done, total=of or total)

            result = contacts.import_csv(
                state.db(ctx),
                account,
                list_name,
                stream,
                country=country,
                strict=strict,
                progress=progress,
            )
    output.warn_invalid(result.invalid, result.invalid_count)
    summary = {
        "list": result.list_name,
        "rows": result.rows,
        "imported": result.imported,
        "new_contacts": result.new_contacts,
        "added_to_list": result.added_to_list,
        "invalid": result.invalid_count,
        "fields": result.fields,
    }
    if fmt is Format.table:
        output.info(
            f"Imported {result.imported:,} of {result.rows:,} rows into list "
            f"[bold]{escape(result.list_name)}[/]: {result.new_contacts:,} new contacts, "
            f"{result.added_to_list:,} added to the list, {result.invalid_count:,} invalid."
        )
    else:
        output.emit_record(summary, fmt)


@app.command("list")
def list_command(
    ctx: typer.Context,
    list_name: Annotated[
        str | None,
        typer.Option(
            "--list",
            metavar="NAME",
            help="Only this list's members.",
            autocompletion=completion.lists,
        ),
    ] = None,
    limit: LimitOpt = None,
    every: AllOpt = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """List contacts with their merge fields."""
    found = contacts.list_contacts(state.db(ctx), account, list_name, page_limit(limit, every, fmt))
    output.emit(found.rows, fmt, out, empty="No contacts.", total=found.total)


@app.command("show")
@contact_app.command("show")
def show(
    ctx: typer.Context,
    phone: Annotated[str, typer.Argument(help="Phone number (any format) or contact id.")],
    country: Annotated[
        str, typer.Option("--country", help="Country of a number written without +country code.")
    ] = "US",
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """A contact's journey: lists, messages, clicks, conversions and revenue."""
    db = state.db(ctx)
    owner = accounts.resolve(db, account)
    found = exports.journey(db, contacts.find_contact(db, owner["id"], phone, country))
    if fmt is not Format.table:
        output.emit_record(found, fmt, out)
        return
    summary = {k: v for k, v in found.items() if k not in ("messages", "conversions")}
    optout = summary.pop("opted_out")
    if optout:  # "opted out  STOP, 2026-11-30 05:02:11" (in local time, as every time shown)
        summary["opted_out"] = ", ".join(
            p for p in (optout["keyword"], output.local_time(optout["opted_out_at"])) if p
        )
    parts = [output.record_table(summary, title=f"Contact {found['phone']}")]
    columns = [
        "message_id",
        "sent_at",
        "campaign",
        "variant",
        "clicks",
        "bot_clicks",
        "first_click_at",
        "conversions",
        "revenue",
    ]
    if any(m["delivery"] for m in found["messages"]):  # (once a delivery report was imported)
        columns.insert(2, "delivery")
    if found["messages"]:
        parts.append(output.table(found["messages"], columns, title="Messages"))
    if found["conversions"]:
        parts.append(output.table(found["conversions"], title="Conversions"))
    output.render(Group(*parts), out)  # one piece, so that --output holds all of it


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Erase without asking first.")]


def erase(
    ctx: typer.Context,
    phone: Annotated[str, typer.Argument(help="Phone number (any format) or contact id.")],
    country: CountryOpt = "US",
    yes: YesOpt = False,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Erase a person's data: contact, merge fields, texts, IPs and headers; counts stay."""
    db = state.db(ctx)
    found = erasure.find(db, account, phone, country)
    output.confirm(
        f"Erase {found['phone']} and everything that names them? This cannot be undone.",
        yes,
        "nothing was erased",
    )
    result = erasure.erase_contact(db, account, phone, country)
    if fmt is not Format.table:
        output.emit_record(result.as_dict(), fmt)
    else:
        output.info(
            f"Erased {result.phone}: {_n(result.lists, 'list membership')},"
            f" {_n(result.messages, 'message text')}, {_n(result.clicks, 'click')} and"
            f" {_n(result.message_clicks, 'unique click')} (IPs, user agents, referers),"
            f" {_n(result.conversions, 'conversion')} (IPs). Report counts are unchanged."
        )
    if result.wal_cleared is False:
        output.warn(
            "another process is reading the database, so its WAL keeps the old pages until"
            " SQLite resets it (it deletes the WAL when the last connection closes: stop"
            " `trackly serve` a moment)"
        )
    elif result.wal_cleared is None:
        output.info("PostgreSQL frees the old row versions at its next VACUUM of the tables.")


def _n(count: int, what: str) -> str:
    return f"{count:,} {what}{'' if count == 1 else 's'}"


app.command("erase")(erase)
contact_app.command("erase")(erase)
