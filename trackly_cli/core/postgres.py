"""PostgreSQL as Trackly's store: a psycopg 3 connection that speaks like the SQLite one.

The core calls `execute`, `executemany`, reads `in_transaction` and opens its transactions
with explicit BEGIN/COMMIT, as it does on SQLite (autocommit otherwise); the SQL is shared, its
placeholders translated once per statement text (see dialect.to_postgres). psycopg is an
optional dependency: `pip install 'trackly[postgres]'`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from trackly_cli.core import dialect
from trackly_cli.core.errors import DatabaseUnavailable, InvalidInput

SCHEMES = ("postgresql://", "postgres://")
# A statement waiting this long for a lock held by another writer fails, as SQLite's busy
# timeout does.
LOCK_TIMEOUT_MS = 5000
EXTRA = "pip install 'trackly[postgres]'"


def is_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(SCHEMES)


def hide_password(url: str) -> str:
    """The URL with its password (if any) shown as ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def driver():
    try:
        import psycopg
    except ImportError:
        raise InvalidInput(f"a PostgreSQL database needs the PostgreSQL driver: {EXTRA}") from None
    return psycopg


class PostgresStore:
    """One PostgreSQL connection, with Trackly's settings (UTC, a lock timeout)."""

    dialect = dialect.POSTGRES

    def __init__(self, url: str, raw=None) -> None:
        """A new connection to `url`; or `raw`, a psycopg connection made already (a pool's),
        with the settings applied (see configure)."""
        self.url = url
        if raw is not None:
            self.raw = raw
            return
        psycopg = driver()
        try:
            self.raw = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise DatabaseUnavailable(f"cannot connect to {hide_password(url)}: {reason}") from None
        configure(self.raw)

    @property
    def target(self) -> str:
        return hide_password(self.url)

    @property
    def broken(self) -> bool:
        """Whether the connection is lost (the server restarted): open a new one."""
        return self.raw.closed or self.raw.broken

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence | dict = ()):
        return self.raw.execute(dialect.to_postgres(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence]):
        cursor = self.raw.cursor()
        cursor.executemany(dialect.to_postgres(sql), list(rows))
        return cursor

    def executescript(self, sql: str) -> None:
        """Several statements, no parameters (a migration)."""
        self.raw.execute(sql)

    def close(self) -> None:
        self.raw.close()


def configure(raw) -> None:
    """Trackly's settings on a new psycopg connection (autocommit): UTC, the lock timeout,
    whole numerics as int."""
    _load_whole_numbers_as_int(raw)
    raw.execute("SET TIME ZONE 'UTC'")
    raw.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}")


class Pool:
    """The server's read connections (psycopg_pool): link lookups for links not in memory,
    the settings check, /healthz. A connection is taken for one read and given back; one
    found broken (PostgreSQL restarted) is replaced. Waiting for one (the database away)
    gives up after WAIT_SECONDS with a PoolTimeout, an OperationalError."""

    WAIT_SECONDS = 2.0

    def __init__(self, url: str, size: int) -> None:
        from psycopg_pool import ConnectionPool

        driver()
        self.url = url
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(size, 1),
            kwargs={"autocommit": True, "connect_timeout": 10},
            configure=configure,
            check=ConnectionPool.check_connection,
            timeout=self.WAIT_SECONDS,
            open=False,
            name="trackly-read",
        )
        self._pool.open(wait=False)

    @contextlib.contextmanager
    def connection(self):
        with self._pool.connection() as raw:
            yield PostgresStore(self.url, raw)

    def close(self) -> None:
        self._pool.close()


def _load_whole_numbers_as_int(conn) -> None:
    """sum() of a bigint column is a numeric in PostgreSQL (a Decimal in Python), an integer in
    SQLite. The schema has no numeric column (amounts are integer micros), so every numeric a
    query gives is such an aggregate: load whole ones as int, as SQLite gives them."""
    from psycopg.types.numeric import NumericLoader

    class WholeNumericLoader(NumericLoader):
        def load(self, data):
            value = super().load(data)
            return int(value) if value == value.to_integral_value() else value

    conn.adapters.register_loader("numeric", WholeNumericLoader)


def is_driver_error(error: BaseException) -> bool:
    """Whether `error` is psycopg's (or its pool's), without importing psycopg, which is
    optional."""
    return type(error).__module__.startswith("psycopg")


def is_connection_error(error: BaseException) -> bool:
    """Whether `error` says the server cannot be reached (down, restarting, no connection
    free in the pool) rather than that a statement failed."""
    if not is_driver_error(error):
        return False
    import psycopg

    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


_FIRST_LINE = re.compile(r"^[^\n]*")


def error_line(error: Exception) -> str:
    """A driver error in one line."""
    text = str(error).strip()
    return _FIRST_LINE.match(text).group(0) if text else type(error).__name__
