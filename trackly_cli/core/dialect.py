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
NAMES = (SQLITE, POSTGRES)


# report_rollups' key columns, and the conflict target that adds to a counter row: on
# PostgreSQL the rows are split by the writing connection's shard (migration 0008), so that
# several servers never queue on one row; SQLite has one writer and no shards.
ROLLUP_KEY = (
    "account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id"
)


def rollup_conflict(conn) -> str:
    """The `ON CONFLICT (…)` columns of an upsert into report_rollups."""
    return ROLLUP_KEY if conn.dialect == SQLITE else f"{ROLLUP_KEY}, shard"


ROLLUP_SHARDS = 16  # migration 0008's pg_backend_pid() % 16
_SHARD_LOCKS = 731_825  # the advisory lock space of the shards (a second key: the shard)


def claim_rollup_shard(conn) -> int | None:
    """PostgreSQL: give this connection a report-counter shard that no other live connection
    has claimed (a session advisory lock per shard, released when it disconnects), so that two
    servers' drains never add to one counter row. None on SQLite, and when every shard is
    claimed (the connection's process id picks one then, as for the CLI's writes)."""
    if conn.dialect == SQLITE:
        return None
    for shard in range(ROLLUP_SHARDS):
        claimed = conn.execute("SELECT pg_try_advisory_lock(?, ?)", (_SHARD_LOCKS, shard))
        if claimed.fetchone()[0]:
            conn.execute(f"SET trackly.rollup_shard = {shard}")
            return shard
    return None


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


def epoch(name: str, column: str) -> str:
    """SQL for a stored time ('2026-11-29T13:08:12.123456Z') as epoch seconds, to the
    microsecond, computed by the database so that a caller need not parse it per row (`name`:
    a connection's dialect, for SQL made once per dialect)."""
    if name == SQLITE:
        return (
            f"(CAST(strftime('%s', {column}) AS INTEGER) + CAST(substr({column}, 20, 7) AS REAL))"
        )
    return f"extract(epoch FROM CAST({column} AS timestamptz))::float8"


def lock_wait(conn, milliseconds: int) -> None:
    """How long a statement waits for a lock another writer holds before it fails."""
    if conn.dialect == SQLITE:
        conn.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")
    else:
        conn.execute(f"SET lock_timeout = {int(milliseconds)}")


def same(conn) -> str:
    """The operator for "equal, or both NULL" (`a IS ?` with a value is SQLite's alone)."""
    return "IS" if conn.dialect == SQLITE else "IS NOT DISTINCT FROM"


def transient(conn) -> tuple[type[Exception], ...]:
    """Errors of the database itself (locked, unreachable, full), as opposed to a statement's
    own (a constraint): a writer retries a batch after these."""
    if conn.dialect == SQLITE:
        import sqlite3

        return (sqlite3.OperationalError,)
    import psycopg

    return (psycopg.OperationalError,)


def integrity(conn) -> tuple[type[Exception], ...]:
    """Errors of a row the database refuses (a constraint, a value of the wrong type)."""
    if conn.dialect == SQLITE:
        import sqlite3

        return (sqlite3.IntegrityError,)
    import psycopg

    return (psycopg.IntegrityError, psycopg.DataError)


def table_exists(conn, name: str) -> bool:
    if conn.dialect == SQLITE:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = "SELECT 1 WHERE to_regclass(?) IS NOT NULL"
    return conn.execute(sql, (name,)).fetchone() is not None


def tables_with_column(conn, column: str) -> list[str]:
    """The tables that have a column of this name (the code's own name, never user input)."""
    if conn.dialect == SQLITE:
        sql = (
            "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c"
            " WHERE m.type = 'table' AND c.name = ? ORDER BY m.name"
        )
    else:
        sql = (
            "SELECT c.table_name FROM information_schema.columns c"
            " JOIN information_schema.tables t"
            " ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
            " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
            " AND c.column_name = ? ORDER BY c.table_name"
        )
    return [row[0] for row in conn.execute(sql, (column,)).fetchall()]


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


# --- added while porting each module (append below; one function per difference) -------------


def json_key(conn, column: str) -> str:
    """SQL for the text of a top-level key of the JSON object in a text column, the key bound
    as the path '$."name"' (a name without quotes or dots, as merge fields are)."""
    if conn.dialect == SQLITE:
        return f"json_extract({column}, ?)"
    return f"(({column})::json ->> trim(both '\"' from substr(?, 3)))"


def json_merge(conn, target: str, patch: str) -> str:
    """SQL for the JSON object text `target` with the keys of the JSON object text `patch` set:
    SQLite's json_patch, for objects of plain values (its keys keep their order, new keys come
    last in the patch's order, a key set to null goes). `target` and `patch` are column
    expressions (each is read more than once on PostgreSQL)."""
    if conn.dialect == SQLITE:
        return f"json_patch({target}, {patch})"
    return (
        "(SELECT coalesce(json_object_agg(k, v ORDER BY part, n), '{}')::text FROM ("
        " SELECT 0 AS part, t.n, t.k, coalesce(p.value, t.v) AS v"
        f" FROM json_each(({target})::json) WITH ORDINALITY AS t(k, v, n)"
        f" LEFT JOIN json_each(({patch})::json) AS p ON p.key = t.k"
        " UNION ALL"
        f" SELECT 1, p.n, p.k, p.v FROM json_each(({patch})::json) WITH ORDINALITY AS p(k, v, n)"
        f" WHERE NOT EXISTS (SELECT 1 FROM json_each(({target})::json) AS t WHERE t.key = p.k)"
        ") AS merged WHERE json_typeof(v) <> 'null')"
    )


def lock_explicit_ids(conn, table: str) -> None:
    """Inside a write transaction, before numbering new rows of `table` from its max(id): the
    other writers that number rows of it wait until this transaction ends. SQLite's BEGIN
    IMMEDIATE is that lock already; PostgreSQL takes a transaction-level advisory lock."""
    if conn.dialect == SQLITE:
        return
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"trackly.ids.{table}",)).fetchall()


def sync_identity(conn, table: str) -> None:
    """After inserting rows of `table` with ids of the code's own: PostgreSQL's identity
    sequence moved past them, so that rows inserted later with the default id do not collide
    (SQLite's rowid needs nothing)."""
    if conn.dialect == SQLITE:
        return
    conn.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
        " HAVING max(id) IS NOT NULL"
    ).fetchall()


def integer_key(conn) -> str:
    """The type of an integer key column holding row ids: SQLite's INTEGER (an INTEGER PRIMARY
    KEY is the rowid itself), PostgreSQL's BIGINT (its INTEGER has 4 bytes)."""
    return "INTEGER" if conn.dialect == SQLITE else "BIGINT"


def stream(conn, sql: str, params=()):
    """A cursor over a large result (an export) that holds a batch of its rows at a time.
    SQLite's steps through the rows as they are read; psycopg's ordinary cursor would take the
    whole result at once, so on PostgreSQL it is a server-side cursor (WITH HOLD outside a
    transaction, as autocommit needs), closed once its last row is read."""
    if conn.dialect == SQLITE:
        return conn.execute(sql, params)
    import secrets

    cursor = conn.raw.cursor(
        name=f"trackly_stream_{secrets.token_hex(6)}", withhold=not conn.in_transaction
    )
    cursor.itersize = 2000
    cursor.execute(to_postgres(sql), params)
    return cursor
