"""The storage layer: one way to open the database, one way to write to it.

The core takes one handle, a `Store`: a database connection that knows its dialect. Every SQLite
connection gets the same settings (WAL, foreign keys, a busy timeout, synchronous=NORMAL);
migrations apply themselves when a database is opened; writes that belong together run in one
`write()` block, which is a transaction (or a savepoint inside one).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from trackly_cli.core import dialect, migrate
from trackly_cli.core.errors import InvalidInput
from trackly_cli.core.postgres import PostgresStore, hide_password, is_url

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000

# A WAL that a checkpoint resets is cut back to this size (by whichever connection resets it).
JOURNAL_SIZE_LIMIT = 16 << 20
# A long job that finds the WAL larger than this between two chunks checkpoints it fully.
LARGE_WAL_BYTES = 128 << 20

PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
    f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}",
)


class SqliteStore(sqlite3.Connection):
    """A SQLite connection with Trackly's settings: the embedded store. Being the sqlite3
    connection itself, it costs nothing on the hot paths."""

    dialect = "sqlite"

    @property
    def target(self) -> str:
        """The database file."""
        return self.execute("PRAGMA database_list").fetchone()[2]


Store = SqliteStore | PostgresStore


def connect(target: str | Path, *, check_same_thread: bool = True) -> Store:
    """A connection with Trackly's settings: to PostgreSQL for a postgresql:// (or
    postgres://) URL, else to the SQLite file at that path. Transactions are explicit (see
    `write`)."""
    if is_url(target):
        return PostgresStore(str(target))
    path = Path(target)
    if path.exists() and path.is_dir():
        raise InvalidInput(f"database path {path} is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=check_same_thread,
            factory=SqliteStore,
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


def location(target: str | Path) -> str | Path:
    """A database as given: a PostgreSQL URL stays text, anything else is a SQLite path."""
    return str(target) if is_url(target) else Path(target)


def broken(conn: Store) -> bool:
    """Whether a connection is lost for good (a PostgreSQL server that restarted); a SQLite
    connection never is."""
    return getattr(conn, "broken", False)


def display(target: str | Path) -> str:
    """The database as printed: a path, or a URL with its password hidden."""
    return hide_password(target) if is_url(target) else str(target)


def open_db(target: str | Path) -> Store:
    """Open (creating if needed) the database at `target`, migrated to the code's schema."""
    conn = connect(target)
    try:
        migrate.apply(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def write(conn: Store) -> Iterator[Store]:
    """One transaction for writes that belong together; nested blocks become savepoints.

    The outermost block takes the write lock at once (BEGIN IMMEDIATE), so a read followed by a
    write inside it never fails half-way because another process wrote in between.
    """
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
    conn.execute(dialect.begin_write(conn))
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


@contextlib.contextmanager
def turn(conn: Store, timeout: float | None = None) -> Iterator[None]:
    """Take turns for the write lock with Trackly's other writers (the server's drain, other
    chunked jobs), for one chunk of a long job or one batch of the drain.

    SQLite's busy handler is not fair: a waiter sleeps between attempts (up to 100 ms), and a
    job that commits a chunk and begins the next one at once finds the lock free first, every
    time, so a waiter can starve although no single transaction is long. An flock on a file
    beside the database wakes a waiter the moment the lock is released; the job, having
    released it, pauses a moment before taking it again (see `pause`). PostgreSQL's row locks
    queue their waiters: there, this does nothing."""
    if conn.dialect != dialect.SQLITE:
        yield
        return
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    try:
        fd = os.open(f"{path}.turn", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if path else -1
    except OSError:
        fd = -1  # a folder we cannot create files in: go on without taking turns
    if fd < 0:  # (an in-memory database has nobody to take turns with)
        yield
        return
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:  # (the server's drain: a job stopped while it holds its turn must not hang it)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise sqlite3.OperationalError(
                            "another Trackly job has held its turn for the database too long"
                        ) from None
                    time.sleep(0.001)  # well inside a job's pause between two turns
        yield
    finally:
        os.close(fd)  # releases the flock


def wal_bytes(db_path: str | Path) -> int:
    try:
        return os.stat(f"{db_path}-wal").st_size
    except OSError:
        return 0


def checkpoint_wal(conn: Store, mode: str, wait_ms: int) -> bool:
    """`PRAGMA wal_checkpoint(mode)`, waiting at most `wait_ms` for readers; True if it
    completed (the connection's own busy timeout is put back afterwards)."""
    restore = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
    try:
        return conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0] == 0
    except sqlite3.Error:
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(restore)}")


SHRINK_RETRY_SECONDS = 2.0
_shrink_again_at = 0.0


def shrink_wal(conn: Store) -> None:
    """Between two chunks of a long job (in its turn): once the WAL has grown large, copy it into
    the database and cut it back, waiting briefly for readers. A job that writes hundreds of
    megabytes while the server reads and writes would otherwise leave a WAL of gigabytes, which
    SQLite cannot reuse while readers and writers never pause, and every read slows down."""
    global _shrink_again_at
    if conn.dialect != dialect.SQLITE:
        return  # (PostgreSQL's autovacuum and checkpoints see to it)
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    if not path or wal_bytes(path) < LARGE_WAL_BYTES or time.monotonic() < _shrink_again_at:
        return
    done = checkpoint_wal(conn, "TRUNCATE", 200)
    # A long reader in the way (a report, a backup): what could be copied was, and the job goes
    # on; it tries again a little later rather than waiting after every chunk.
    _shrink_again_at = time.monotonic() + (0.0 if done else SHRINK_RETRY_SECONDS)


def pause() -> None:
    """Between two chunks of a long job: long enough for a writer waiting in `turn` (woken at
    once, or polling every millisecond) to take it, short enough to cost the job little."""
    time.sleep(0.005)


@contextlib.contextmanager
def chunk(conn: Store) -> Iterator[Store]:
    """One chunk of a long job (shorten, rescan, prune, removing a campaign): its own
    transaction, in turn with Trackly's other writers; then the WAL is cut back if it has grown
    large, and the job pauses so that a writer waiting for its turn gets it."""
    with turn(conn):
        with write(conn):
            yield conn
        shrink_wal(conn)
    pause()


def chunks(
    items: Iterable[T],
    seconds: float,
    first: int = 1000,
    smallest: int = 100,
    most: int = 50_000,
) -> Iterator[list[T]]:
    """`items` in lists sized so that what the caller does with each (timed from one list to
    the next: for a long job, one `chunk` transaction) takes about `seconds`."""
    iterator = iter(items)
    size = first
    while chunk := list(itertools.islice(iterator, size)):
        started = time.perf_counter()
        yield chunk
        elapsed = max(time.perf_counter() - started, 1e-3)
        size = max(smallest, min(most, int(size * seconds / elapsed)))


def rows(conn: Store, sql: str, params: tuple | dict = ()) -> list[dict]:
    """Run a query and return its rows as dicts."""
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def row(conn: Store, sql: str, params: tuple | dict = ()) -> dict | None:
    cursor = conn.execute(sql, params)
    found = cursor.fetchone()
    if found is None:
        return None
    return dict(zip([d[0] for d in cursor.description], found, strict=True))


def scalar(conn: Store, sql: str, params: tuple | dict = ()):
    found = conn.execute(sql, params).fetchone()
    return None if found is None else found[0]


def insert(conn: Store, table: str, values: dict) -> int:
    """Insert one row (column names are the code's own, never user input); its id."""
    columns = ", ".join(values)
    marks = ", ".join("?" * len(values))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id"
    return returned_id(conn.execute(sql, tuple(values.values())))


def returned_id(cursor) -> int | None:
    """The id an `INSERT … RETURNING id` gave, or None when it inserted nothing (ON CONFLICT
    DO NOTHING). Reads every row, so that no statement is left half-stepped."""
    found = cursor.fetchall()
    return found[0][0] if found else None


def update(conn: Store, table: str, row_id: int, changes: dict) -> None:
    """Set these columns (the code's own names) of one row."""
    assignments = ", ".join(f"{column} = ?" for column in changes)
    conn.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*changes.values(), row_id))


def setting(conn: Store, key: str) -> str | None:
    return scalar(conn, "SELECT value FROM settings WHERE key = ?", (key,))
