"""Pages of a listing: the first `limit` rows, read with LIMIT, and how many there are in all,
read with a separate count(*), so that a listing of 100,000 contacts reads 50 of them, not all."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from trackly_cli.core import store
from trackly_cli.core.errors import InvalidInput


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


def cursor(moment: str, row_id: int) -> str:
    """An opaque cursor for the row after which (newest first) the next page starts."""
    text = json.dumps([moment, row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def read_cursor(text: str) -> tuple[str, int]:
    """(time, id) of a cursor that `cursor` made, or InvalidInput naming `cursor`."""
    try:
        if len(text) > 200:
            raise ValueError
        moment, row_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(moment, str) or type(row_id) is not int or len(moment) > 40:
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput("cursor is not one this API gave", field="cursor") from None
    return moment, row_id
