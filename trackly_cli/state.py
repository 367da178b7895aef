"""What the root command knows (the database: a SQLite path or a PostgreSQL URL) and the database
it opens, once, on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from trackly_cli.core import store


@dataclass
class State:
    db_path: Path | str  # a SQLite file, or a PostgreSQL URL
    _db: store.Store | None = field(default=None, repr=False)

    def db(self) -> store.Store:
        if self._db is None:
            self._db = store.open_db(self.db_path)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


def db(ctx: typer.Context) -> store.Store:
    """The migrated database of this invocation."""
    return state(ctx).db()
