"""The storage layer: one way to open the database, one way to write to it.

Every connection gets the same settings (WAL, foreign keys, a busy timeout, synchronous=NORMAL);
migrations apply themselves when a database is opened; writes that belong together run in one
`write()` block, which is a transaction (or a savepoint inside one).
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from trackly_cli.core import migrate
from trackly_cli.core.errors import InvalidInput

BUSY_TIMEOUT_MS = 5000

PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
)


def connect(path: str | Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection with Trackly's settings. Transactions are explicit (see `write`)."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise InvalidInput(f"database path {path} is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
    except (OSError, sqlite3.OperationalError) as e:
        raise InvalidInput(f"cannot open database {path}: {e}") from e
    try:
        for pragma in PRAGMAS:
            conn.execute(pragma)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise InvalidInput(f"cannot use database {path}: {e}") from e
    return conn


def open_db(path: str | Path) -> sqlite_utils.Database:
    """Open (creating if needed) the database at `path`, migrated to the code's schema."""
    conn = connect(path)
    try:
        migrate.apply(conn)
    except BaseException:
        conn.close()
        raise
    return sqlite_utils.Database(conn, execute_plugins=False)


@contextlib.contextmanager
def write(db: sqlite_utils.Database | sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One transaction for writes that belong together; nested blocks become savepoints.

    The outermost block takes the write lock at once (BEGIN IMMEDIATE), so a read followed by a
    write inside it never fails half-way because another process wrote in between.
    """
    conn = db.conn if isinstance(db, sqlite_utils.Database) else db
    if conn.in_transaction:
        name = f"sp_{secrets.token_hex(8)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        else:
            conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def rows(conn: sqlite3.Connection, sql: str, params: tuple | dict = ()) -> list[dict]:
    """Run a query and return its rows as dicts."""
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def row(conn: sqlite3.Connection, sql: str, params: tuple | dict = ()) -> dict | None:
    cursor = conn.execute(sql, params)
    found = cursor.fetchone()
    if found is None:
        return None
    return dict(zip([d[0] for d in cursor.description], found, strict=True))


def scalar(conn: sqlite3.Connection, sql: str, params: tuple | dict = ()):
    found = conn.execute(sql, params).fetchone()
    return None if found is None else found[0]


def setting(conn: sqlite3.Connection, key: str) -> str | None:
    return scalar(conn, "SELECT value FROM settings WHERE key = ?", (key,))
