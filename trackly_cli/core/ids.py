"""Row ids that are never given twice, though rows are deleted.

A new SQLite row gets max(id) + 1, and `trackly shorten` numbers its messages the same way on
either store: deleting the rows with the largest ids would hand those ids to the next rows,
and whatever still names an old id (a gateway's delivery report, a postback's message_id,
report counters keyed by a list's id) would land on a new row. A delete that may free the
largest ids raises the table's floor (migration 0013) in its transaction; new ids start above
it. (PostgreSQL's identity sequences never give an id twice: only explicit numbering needs the
floor there.)
"""

from __future__ import annotations

from trackly_cli.core import dialect, store

# The tables whose ids are kept from coming back (their new rows go through insert or next_id).
FLOORED = ("messages", "lists", "webhooks", "api_keys")


def raise_floor(conn: store.Store, table: str, freed: int | None) -> None:
    """Inside the deleting transaction: ids up to `freed` (the largest id deleted) are used."""
    if not freed:
        return
    conn.execute(
        "INSERT INTO id_floors (name, floor) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET"
        " floor = CASE WHEN excluded.floor > id_floors.floor THEN excluded.floor"
        " ELSE id_floors.floor END",
        (table, freed),
    )


def next_id(conn: store.Store, table: str) -> int:
    """The first id a new row of `table` may take (for code that numbers rows itself)."""
    largest = store.scalar(conn, f"SELECT coalesce(max(id), 0) FROM {table}")
    return max(largest, floor(conn, table)) + 1


def floor(conn: store.Store, table: str) -> int:
    found = store.scalar(conn, "SELECT floor FROM id_floors WHERE name = ?", (table,))
    return found or 0


def insert(conn: store.Store, table: str, values: dict) -> int:
    """store.insert for a table whose deletes raise its floor: the new row's id is never one
    a deleted row had."""
    explicit = _explicit_id(conn, table)
    return store.insert(conn, table, values if explicit is None else {"id": explicit, **values})


def _explicit_id(conn: store.Store, table: str) -> int | None:
    """The id to give a new row of `table` that would otherwise take the default one: on
    SQLite, above the floor when a delete freed the largest ids; None where the default is
    never a used id (PostgreSQL's sequences, or no floor above the rows)."""
    if conn.dialect != dialect.SQLITE:
        return None
    largest = store.scalar(conn, f"SELECT coalesce(max(id), 0) FROM {table}")
    bottom = floor(conn, table)
    return bottom + 1 if bottom >= largest else None
