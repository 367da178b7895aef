"""trackly account: the brands that own domains, offers and lists."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from trackly_cli import output, state
from trackly_cli.core import accounts, deletions
from trackly_cli.options import (
    AccountArg,
    AllOpt,
    ForceOpt,
    FormatOpt,
    LimitOpt,
    OutputOpt,
    page_limit,
)
from trackly_cli.output import Format

app = typer.Typer(
    help="Accounts (brands): create, list, show, update, delete.", no_args_is_help=True
)

RetentionOpt = Annotated[
    int | None,
    typer.Option(
        "--retention-days", min=1, max=36500, help="Keep raw clicks this many days (default 90)."
    ),
]
AnonymizeOpt = Annotated[
    int | None,
    typer.Option(
        "--anonymize-ips-after",
        min=0,
        max=36500,
        metavar="DAYS",
        help="Truncate stored IPs (IPv4 /24, IPv6 /48) older than DAYS; 0: at once.",
    ),
]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Account name, such as your brand.")],
    retention_days: RetentionOpt = None,
    anonymize_ips_after: AnonymizeOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Create an account."""
    account = accounts.create(
        state.db(ctx, create=True),
        name,
        retention_days=retention_days or accounts.DEFAULT_RETENTION_DAYS,
        anonymize_ips_after_days=anonymize_ips_after,
    )
    if fmt is Format.table:
        output.info(
            f"Created account [bold]{escape(account['name'])}[/] (id {account['id']}). "
            f"Next: trackly domain add HOST --account {escape(account['name'])}"
        )
    else:
        output.emit_record(account, fmt)


@app.command("list")
def list_command(
    ctx: typer.Context,
    limit: LimitOpt = None,
    every: AllOpt = False,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """List accounts."""
    found = accounts.list_all(state.db(ctx), page_limit(limit, every, fmt))
    output.emit(found.rows, fmt, out, empty="No accounts yet.", total=found.total)


@app.command("show")
def show(
    ctx: typer.Context,
    name: AccountArg,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Show an account's settings."""
    output.emit_record(accounts.show(state.db(ctx), name), fmt, out)


@app.command("update")
def update(
    ctx: typer.Context,
    name: AccountArg,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename the account.")] = None,
    retention_days: RetentionOpt = None,
    anonymize_ips_after: AnonymizeOpt = None,
    keep_ips: Annotated[bool, typer.Option("--keep-ips", help="Stop anonymising IPs.")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Change an account's name or data settings."""
    account = accounts.update(
        state.db(ctx),
        name,
        name=new_name,
        retention_days=retention_days,
        anonymize_ips_after_days=anonymize_ips_after,
        keep_ips=keep_ips,
    )
    output.emit_record(account, fmt)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Account name or id.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Delete it with everything of it: messages, links, clicks, conversions,"
            " contacts, reports (asks first, unless --yes).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Delete an account that sent nothing; with --force, one with all of its history."""
    db = state.db(ctx)
    if force:
        found = accounts.show(db, name)
        output.confirm(
            f"Delete account {found['name']} and every row of it (its live links stop)?"
            " This cannot be undone.",
            yes,
            "nothing was deleted",
        )
    deleted = deletions.delete_account(db, name, force=force)
    if fmt is not Format.table:
        output.emit_record(deleted, fmt)
        return
    output.info(
        f"Deleted account {escape(deleted['account'])} (id {deleted['id']}):"
        f" {deleted['rows']:,} rows."
    )
