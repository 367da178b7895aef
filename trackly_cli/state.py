"""What the root command knows (the database path) and the database it opens, once, on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer
from sqlite_utils import Database

from trackly_cli.core import store


@dataclass
class State:
    db_path: Path
    _db: Database | None = field(default=None, repr=False)

    def db(self) -> Database:
        if self._db is None:
            self._db = store.open_db(self.db_path)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


def db(ctx: typer.Context) -> Database:
    """The migrated database of this invocation."""
    return state(ctx).db()
