"""Pages of a listing: the first `limit` rows, read with LIMIT, and how many there are in all,
read with a separate count(*), so that a listing of 100,000 contacts reads 50 of them, not all."""

from __future__ import annotations

from dataclasses import dataclass

from trackly_cli.core import store


@dataclass
class Page:
    rows: list[dict]
    total: int  # every row the listing selects, of which `rows` are the first


def fetch(
    conn: store.Store, select: str, order: str, params: tuple = (), limit: int | None = None
) -> Page:
    """`select` (a SELECT without ORDER BY) counted in all, and its first `limit` rows in the
    order `order` (an ORDER BY clause); every row without a limit."""
    sql, values = f"{select} {order}", tuple(params)
    if limit:
        sql, values = sql + " LIMIT ?", (*values, limit)
    rows = store.rows(conn, sql, values)
    if not limit or len(rows) < limit:  # every row is here: nothing more to count
        return Page(rows, len(rows))
    total = store.scalar(conn, f"SELECT count(*) FROM ({select}) AS counted", params)
    return Page(rows, total)
