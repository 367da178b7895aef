"""What the root command knows (the database: a SQLite path or a PostgreSQL URL) and the database
it opens, once, on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from trackly_cli.core import store
from trackly_cli.core.errors import NotFound


@dataclass
class State:
    db_path: Path | str  # a SQLite file, or a PostgreSQL URL
    chosen: bool = False  # named by --db or TRACKLY_DB (not the default)
    _db: store.Store | None = field(default=None, repr=False)

    def db(self, create: bool = False) -> store.Store:
        """The database, migrated. A SQLite file that does not exist is created only by the
        commands that set up (`create`); the others name it and say how to make one, rather
        than work on an empty database made by a typo."""
        if self._db is None:
            if not create:
                require_database(self.db_path)
            self._db = store.open_db(self.db_path)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def require_database(target: Path | str) -> None:
    """A SQLite database must exist (a PostgreSQL database is made by its server's tools)."""
    if not isinstance(target, str) and not Path(target).exists():
        raise NotFound(
            f"no database at {target}: create one with `trackly account create NAME`"
            " (or `trackly db migrate`), or name another with --db / TRACKLY_DB"
        )


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


def db(ctx: typer.Context, create: bool = False) -> store.Store:
    """The migrated database of this invocation (created only with `create`)."""
    return state(ctx).db(create)
