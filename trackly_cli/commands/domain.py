"""trackly domain: tracking hostnames, one account each, no shared default."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from trackly_cli import output, state
from trackly_cli.core import accounts, domains
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

app = typer.Typer(help="Tracking domains: add, list, remove (or delete).", no_args_is_help=True)
HostArg = Annotated[str, typer.Argument(help="Hostname, such as go.yourbrand.link.")]


@app.command("add")
def add(
    ctx: typer.Context,
    host: HostArg,
    account: AccountOpt = None,
    default: Annotated[
        bool, typer.Option("--default", help="Make it the account's default.")
    ] = False,
    http: Annotated[
        bool, typer.Option("--http", help="Links use http:// (localhost, tests).")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Add a tracking domain to an account (its first domain becomes the default)."""
    domain = domains.add(state.db(ctx), host, account, default=default, http=http)
    if fmt is Format.table:
        note = " (default)" if domain["is_default"] else ""
        output.info(
            f"Added {domain['scheme']}://{domain['hostname']} to account "
            f"{domain['account']}{note}. Point its DNS at this server."
        )
    else:
        output.emit_record(domain, fmt)


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
    """List tracking domains (of one account with --account)."""
    db = state.db(ctx)
    account_id = accounts.resolve(db, account)["id"] if account else None
    found = domains.list_all(db, account_id, page_limit(limit, every, fmt))
    output.emit(
        found.rows,
        fmt,
        out,
        columns=["hostname", "account", "scheme", "is_default", "campaigns", "created_at"],
        empty="No domains yet: add one with `trackly domain add HOST --account NAME`.",
        total=found.total,
    )


@app.command("default")
def default(ctx: typer.Context, host: HostArg) -> None:
    """Make a domain its account's default for new links."""
    domain = domains.set_default(state.db(ctx), host)
    output.info(f"{domain['hostname']} is now the default domain of {escape(domain['account'])}.")


def remove(ctx: typer.Context, host: HostArg) -> None:
    """Remove a domain that no message uses (one that carries links stays: they are on it)."""
    domain = domains.remove(state.db(ctx), host)
    output.info(f"Removed {domain['hostname']} from account {escape(domain['account'])}.")


app.command("remove")(remove)
app.command("delete")(remove)  # (the word the other nouns use)
