"""Where the database is: --db, else TRACKLY_DB, else the per-user app folder."""

from __future__ import annotations

from pathlib import Path

import typer

from trackly_cli.core.postgres import is_url

APP_NAME = "trackly"
DB_FILENAME = "trackly.db"


def default_db_path() -> Path:
    return Path(typer.get_app_dir(APP_NAME)) / DB_FILENAME


def demo_db_path() -> Path:
    """The demo's own database, beside the default one: `trackly demo` never writes its
    account and `localhost` domain into the operator's database unless --db says so."""
    return Path(typer.get_app_dir(APP_NAME)) / "demo.db"


def resolve_db_path(option: str | Path | None) -> str | Path:
    """--db (which Typer also reads from TRACKLY_DB) > typer.get_app_dir("trackly")/trackly.db.
    A postgresql:// (or postgres://) URL names a PostgreSQL database; anything else a SQLite
    file."""
    if isinstance(option, str) and is_url(option):
        return option
    return Path(option).expanduser() if option else default_db_path()
