"""Finding records by what users type: a name or a numeric id, within an account."""

from __future__ import annotations

from trackly_cli.core import store, validate
from trackly_cli.core.errors import NotFound

# table -> (what users call it, the command that lists them)
_KINDS = {
    "accounts": ("account", "trackly account list"),
    "offers": ("offer", "trackly offer list"),
    "lists": ("list", "trackly list list"),
    "creatives": ("creative", "trackly creative list"),
    "campaigns": ("campaign", "trackly campaign list"),
}


def find(
    conn: store.Store,
    table: str,
    ref: str | int,
    account_id: int | None = None,
    retired: bool = False,
):
    """The row of `table` whose id or (case-insensitive) name is `ref`, in `account_id`. A
    campaign retired with `campaign delete --force` only with `retired` (reports and audiences
    of its history), never one removed."""
    what, listing = _KINDS[table]
    text = str(ref).strip()
    scope, params = ("", ()) if account_id is None else (" AND account_id = ?", (account_id,))
    if table == "campaigns":  # one that `trackly shorten` is still writing is not there yet,
        scope += " AND building_pid IS NULL"  # nor one deleted
        scope += (
            " AND (deleted IS NULL OR deleted = 'retired')" if retired else " AND deleted IS NULL"
        )
    if text.isascii() and text.isdigit() and not validate.is_id(text):
        raise NotFound(f"no {what} {text[:20]!r}…" + f" (see `{listing}`)")
    if validate.is_id(text):
        found = store.row(conn, f"SELECT * FROM {table} WHERE id = ?{scope}", (int(text), *params))
    else:
        found = store.row(
            conn, f"SELECT * FROM {table} WHERE name_key = ?{scope}", (validate.key(text), *params)
        )
    if found is None:
        raise NotFound(
            f"no {what} {text!r}"
            + ("" if table == "accounts" else " in this account")
            + f" (see `{listing}`)"
        )
    return found


def names(
    conn: store.Store, table: str, prefix: str = "", account: str | None = None, limit: int = 100
) -> list[str]:
    """Names in `table` (of the account named `account`, when given) that start with `prefix`
    (any case), in order: what shell completion offers."""
    _KINDS[table]  # (only the tables users name)
    scope, params = "WHERE 1 = 1", []
    if account and table != "accounts":
        owner = find(conn, "accounts", account)
        scope, params = "WHERE account_id = ?", [owner["id"]]
    if table == "campaigns":
        scope += " AND building_pid IS NULL"
    found = store.rows(conn, f"SELECT name FROM {table} {scope} ORDER BY name", tuple(params))
    wanted = prefix.casefold()
    return [r["name"] for r in found if r["name"].casefold().startswith(wanted)][:limit]
