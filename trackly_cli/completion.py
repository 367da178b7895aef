"""Shell completion of account, list, offer and campaign names (`trackly --install-completion`).

Each callback reads the database that --db (or TRACKLY_DB, or the app folder) names, and says
nothing at all when anything goes wrong: a shell's Tab must never print an error."""

from __future__ import annotations

from pathlib import Path

import typer

from trackly_cli.config import resolve_db_path
from trackly_cli.core import lookup, store


def _names(ctx: typer.Context, table: str, incomplete: str) -> list[str]:
    try:
        root = ctx.find_root()
        target = resolve_db_path(root.params.get("db_path"))
        if isinstance(target, Path) and not target.is_file():
            return []  # (completion never creates a database)
        conn = store.connect(target)
        try:
            account = ctx.params.get("account") if table != "accounts" else None
            return lookup.names(conn, table, incomplete, account)
        finally:
            conn.close()
    except Exception:
        return []


def accounts(ctx: typer.Context, incomplete: str) -> list[str]:
    return _names(ctx, "accounts", incomplete)


def lists(ctx: typer.Context, incomplete: str) -> list[str]:
    return _names(ctx, "lists", incomplete)


def offers(ctx: typer.Context, incomplete: str) -> list[str]:
    return _names(ctx, "offers", incomplete)


def campaigns(ctx: typer.Context, incomplete: str) -> list[str]:
    return _names(ctx, "campaigns", incomplete)
