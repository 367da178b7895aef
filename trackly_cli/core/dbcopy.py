"""Moving a whole install between stores: `trackly db copy SRC DST` (SQLite -> PostgreSQL, and
back, or between two of a kind).

Every table is copied row for row, in an order that satisfies the foreign keys, with the
target's triggers off: the report counters (report_rollups, message_rollups) are copied as they
are, not counted again, since the raw clicks they were counted from may be pruned already. The
settings (the visitor secret, which keys every visitor) and the settings version replace the
target's fresh ones. The target must be empty (migrated, no account); it is written in one
transaction, so a copy that fails leaves it as it was. The source is read in one snapshot, so a
server may keep running on it (what it stores after the copy started is not copied).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from trackly_cli.core import dialect, migrate, store
from trackly_cli.core.errors import Conflict, InvalidInput

# Every table, parents before children (the order the schema creates them in).
TABLES = (
    "settings",
    "config_version",
    "accounts",
    "domains",
    "offers",
    "lists",
    "contacts",
    "list_members",
    "creatives",
    "campaigns",
    "campaign_variants",
    "messages",
    "short_links",
    "message_short_link_clicks",
    "message_clicks",
    "conversions",
    "ip_ranges",
    "report_rollups",
    "message_rollups",
    "journal_state",
    "pending_reversals",
    "optouts",
    "users",
    "user_accounts",
    "id_floors",
    "webhooks",
    "webhook_events",
)
# Tables the migrations fill (one row each): the source's rows replace them.
REPLACED = ("settings", "config_version")
ROWS_PER_INSERT = 2000


@dataclass
class CopyResult:
    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def tables(conn: store.Store) -> set[str]:
    """The tables of Trackly's schema in this database (the ledger aside)."""
    if conn.dialect == dialect.SQLITE:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    return {r[0] for r in conn.execute(sql)} - {migrate.LEDGER}


def columns(conn: store.Store, table: str) -> list[str]:
    """The table's columns, in order."""
    return [d[0] for d in conn.execute(f"SELECT * FROM {table} WHERE 1 = 0").description]


def copy(
    source: store.Store,
    target: store.Store,
    progress: Callable[[str, int], None] | None = None,
) -> CopyResult:
    """Copy every row of `source` into the empty `target` (both migrated by this Trackly)."""
    _check(source, target)
    result = CopyResult(source.target, target.target)
    _begin_snapshot(source)
    try:
        with store.write(target):
            triggers = _triggers_off(target)
            for table in REPLACED:
                target.execute(f"DELETE FROM {table}")
            for table in TABLES:
                result.rows[table] = _copy_table(source, target, table, progress)
            _triggers_on(target, triggers)
            _sequences_after(target)
    finally:
        source.execute("COMMIT")
    return result


def _check(source: store.Store, target: store.Store) -> None:
    if source.dialect == target.dialect and source.target == target.target:
        raise InvalidInput("the source and the target are the same database")
    versions = migrate.schema_version(source), migrate.schema_version(target)
    if versions[0] != versions[1]:
        raise InvalidInput(
            f"the source is at schema {versions[0]} and the target at {versions[1]}:"
            " migrate both with this Trackly first (trackly db migrate)"
        )
    for name, conn in (("source", source), ("target", target)):
        missing = sorted(set(TABLES) - tables(conn))
        if missing:
            raise InvalidInput(f"the {name} has no table {', '.join(missing)}")
    filled = [
        t
        for t in TABLES
        if t not in REPLACED and target.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
    ]
    if filled:
        raise Conflict(
            f"the target is not empty (it has rows in {', '.join(filled)}): copy into a new"
            " database"
        )


def _begin_snapshot(conn: store.Store) -> None:
    if conn.dialect == dialect.SQLITE:
        conn.execute("BEGIN")  # (a read transaction: one snapshot of a WAL database)
    else:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")


def _copy_table(
    source: store.Store,
    target: store.Store,
    table: str,
    progress: Callable[[str, int], None] | None,
) -> int:
    names = columns(target, table)
    wanted = set(columns(source, table))
    if set(names) != wanted:
        raise InvalidInput(f"table {table} has other columns in the source and the target")
    listed = ", ".join(names)
    insert = f"INSERT INTO {table} ({listed}) VALUES ({', '.join('?' * len(names))})"
    cursor = source.execute(_select(table, names))
    copied = 0
    while rows := cursor.fetchmany(ROWS_PER_INSERT):
        target.executemany(insert, rows)
        copied += len(rows)
        if progress:
            progress(table, copied)
    return copied


def _select(table: str, names: list[str]) -> str:
    """The source's rows of a table. PostgreSQL splits a report counter row into shards, one
    per writing connection (migration 0008), which SQLite's key does not allow: the shards are
    summed into one row (shard 0), which is the same count."""
    if table != "report_rollups":
        return f"SELECT {', '.join(names)} FROM {table}"
    key = [name.strip() for name in dialect.ROLLUP_KEY.split(",")]
    chosen = [name if name in key else "0" if name == "shard" else f"sum({name})" for name in names]
    return f"SELECT {', '.join(chosen)} FROM {table} GROUP BY {dialect.ROLLUP_KEY}"


def _triggers_off(conn: store.Store) -> list[str]:
    """Switch the target's triggers off for this transaction; what turns them on again."""
    if conn.dialect == dialect.SQLITE:
        found = [
            (name, sql)
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY rowid"
            )
        ]
        for name, _ in found:
            conn.execute(f'DROP TRIGGER "{name}"')
        return [sql for _, sql in found]
    for table in TABLES:
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    return [f"ALTER TABLE {table} ENABLE TRIGGER USER" for table in TABLES]


def _triggers_on(conn: store.Store, statements: list[str]) -> None:
    for statement in statements:
        conn.execute(statement)


def _sequences_after(conn: store.Store) -> None:
    """PostgreSQL's id sequences go on after the copied ids (SQLite's rowids do by
    themselves)."""
    if conn.dialect == dialect.SQLITE:
        return
    identities = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND column_name = 'id' AND is_identity = 'YES'"
        )
    }
    for table in TABLES:
        if table not in identities:
            continue
        sequence = conn.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()
        if sequence and sequence[0]:
            conn.execute(
                f"SELECT setval(?, coalesce((SELECT max(id) FROM {table}), 0) + 1, false)",
                (sequence[0],),
            )
