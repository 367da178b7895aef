"""PostgreSQL as Trackly's store: a psycopg 3 connection that speaks like the SQLite one.

The core calls `execute`, `executemany`, reads `in_transaction` and opens its transactions
with explicit BEGIN/COMMIT, as it does on SQLite (autocommit otherwise); the SQL is shared, its
placeholders translated once per statement text (see dialect.to_postgres). psycopg is an
optional dependency: `pip install 'trackly[postgres]'`.
"""

from __future__ import annotations

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

    def __init__(self, url: str) -> None:
        psycopg = driver()
        self.url = url
        try:
            self.raw = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise DatabaseUnavailable(f"cannot connect to {hide_password(url)}: {reason}") from None
        _load_whole_numbers_as_int(self.raw)
        self.raw.execute("SET TIME ZONE 'UTC'")
        self.raw.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}")

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


_FIRST_LINE = re.compile(r"^[^\n]*")


def error_line(error: Exception) -> str:
    """A driver error in one line."""
    text = str(error).strip()
    return _FIRST_LINE.match(text).group(0) if text else type(error).__name__
