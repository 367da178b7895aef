"""What differs between the two stores, SQLite and PostgreSQL, in one place.

The core's SQL is written once, in the subset both understand: `?` placeholders (the
PostgreSQL connection turns them into its own), `INSERT … ON CONFLICT … DO NOTHING/UPDATE`,
`RETURNING id`, integer 0/1 flags compared with `= 0`/`= 1`, timestamps as fixed-width UTC text.
What cannot be written once is here: each function takes the connection (whose `dialect` is
"sqlite" or "postgres") and gives the SQL text or does the thing.
"""

from __future__ import annotations

import re
from functools import lru_cache

SQLITE = "sqlite"
POSTGRES = "postgres"


def begin_write(conn) -> str:
    """The statement that opens a write transaction. SQLite's takes the write lock at once, so
    that a read followed by a write never fails half-way; PostgreSQL locks rows as it goes."""
    return "BEGIN IMMEDIATE" if conn.dialect == SQLITE else "BEGIN"


def errors(conn) -> tuple[type[Exception], ...]:
    """The driver's database errors."""
    if conn.dialect == SQLITE:
        import sqlite3

        return (sqlite3.DatabaseError,)
    import psycopg

    return (psycopg.Error,)


def table_exists(conn, name: str) -> bool:
    if conn.dialect == SQLITE:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = "SELECT 1 WHERE to_regclass(?) IS NOT NULL"
    return conn.execute(sql, (name,)).fetchone() is not None


def json_text(conn, column: str) -> str:
    """SQL for the text of the key (a bound parameter, '$.name' style) of a JSON text column."""
    if conn.dialect == SQLITE:
        return f"json_extract({column}, ?)"
    return f"(({column})::jsonb #>> string_to_array(substr(?, 3), '.'))"


_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|::|\?|:[A-Za-z_]\w*|%")


@lru_cache(maxsize=2048)
def to_postgres(sql: str) -> str:
    """SQLite's placeholders (`?`, `:name`) as psycopg's (`%s`, `%(name)s`) outside string
    literals, quoted names and comments; every literal `%` doubled (psycopg reads the whole
    text for placeholders: statements are always run with parameters, if only `()`)."""

    def swap(match: re.Match) -> str:
        piece = match.group(0)
        if piece == "?":
            return "%s"
        if piece.startswith(":") and piece != "::":
            return f"%({piece[1:]})s"
        return piece.replace("%", "%%")

    return _TOKENS.sub(swap, sql)
