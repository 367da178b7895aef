"""Tracking domains: each hostname belongs to exactly one account; there is no shared default."""

from __future__ import annotations

from trackly_cli.core import accounts, clock, paging, store, validate
from trackly_cli.core.errors import Conflict, InvalidInput, NotFound

NO_DOMAIN = (
    "account {account!r} has no tracking domain; there is no shared default domain: "
    "add one with `trackly domain add HOST --account {account}`"
)


def add(
    db: store.Store,
    host: str,
    account_ref: str | None,
    *,
    default: bool = False,
    http: bool = False,
) -> dict:
    hostname = validate.hostname(host)
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        owner = store.row(
            conn,
            "SELECT a.name FROM domains d JOIN accounts a ON a.id = d.account_id"
            " WHERE d.hostname = ?",
            (hostname,),
        )
        if owner:
            raise Conflict(f"domain {hostname} already belongs to account {owner['name']!r}")
        first = not store.scalar(
            conn, "SELECT count(*) FROM domains WHERE account_id = ?", (account["id"],)
        )
        if default and not first:
            conn.execute("UPDATE domains SET is_default = 0 WHERE account_id = ?", (account["id"],))
        conn.execute(
            "INSERT INTO domains (account_id, hostname, scheme, is_default, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                account["id"],
                hostname,
                "http" if http else "https",
                int(default or first),
                clock.now_text(),
            ),
        )
    return get(db, hostname)


def _select(where: str = "", order: str = " ORDER BY a.name, d.hostname") -> str:
    return (
        "SELECT d.id, d.hostname, a.name AS account, d.account_id, d.scheme,"
        " d.is_default, d.created_at,"
        " (SELECT count(*) FROM campaigns c WHERE c.domain_id = d.id"
        "  AND coalesce(c.deleted, '') <> 'removed') AS campaigns"
        f" FROM domains d JOIN accounts a ON a.id = d.account_id {where}{order}"
    )


def get(conn: store.Store, host: str) -> dict:
    hostname = validate.hostname(host)
    found = store.row(conn, _select("WHERE d.hostname = ?"), (hostname,))
    if not found:
        raise NotFound(f"no domain {hostname} (see `trackly domain list`)")
    return _present(found)


def list_all(
    db: store.Store, account_id: int | None = None, limit: int | None = None
) -> paging.Page:
    where, params = ("", ()) if account_id is None else ("WHERE d.account_id = ?", (account_id,))
    found = paging.fetch(db, _select(where, order=""), "ORDER BY a.name, d.hostname", params, limit)
    return paging.Page([_present(r) for r in found.rows], found.total)


def _present(found: dict) -> dict:
    found["is_default"] = bool(found["is_default"])
    return found


def set_default(db: store.Store, host: str) -> dict:
    with store.write(db) as conn:
        domain = get(conn, host)
        conn.execute(
            "UPDATE domains SET is_default = 0 WHERE account_id = ?", (domain["account_id"],)
        )
        conn.execute("UPDATE domains SET is_default = 1 WHERE id = ?", (domain["id"],))
    return get(db, host)


def remove(db: store.Store, host: str) -> dict:
    with store.write(db) as conn:
        domain = get(conn, host)
        used = store.scalar(
            conn, "SELECT count(*) FROM messages WHERE domain_id = ?", (domain["id"],)
        )
        if used or domain["campaigns"]:
            raise Conflict(
                f"domain {domain['hostname']} carries the links of {used:,} messages: removing it "
                "would break them (it stays; stop pointing DNS at this server to retire it)"
            )
        # What is left of campaigns deleted whole (`trackly campaign delete`) goes with it.
        conn.execute(
            "DELETE FROM campaigns WHERE domain_id = ? AND deleted = 'removed'", (domain["id"],)
        )
        conn.execute("DELETE FROM domains WHERE id = ?", (domain["id"],))
        if domain["is_default"]:
            conn.execute(
                "UPDATE domains SET is_default = 1 WHERE id ="
                " (SELECT min(id) FROM domains WHERE account_id = ?)",
                (domain["account_id"],),
            )
    return domain


def for_sending(conn: store.Store, account: dict, host: str | None = None) -> dict:
    """The domain a new message's links go on: `host` (which must be the account's), else the
    account's default."""
    if host:
        domain = get(conn, host)
        if domain["account_id"] != account["id"]:
            raise InvalidInput(
                f"domain {domain['hostname']} belongs to account {domain['account']!r},"
                f" not {account['name']!r}"
            )
        return domain
    found = store.row(
        conn, _select("WHERE d.account_id = ? AND d.is_default = 1"), (account["id"],)
    )
    if not found:
        raise InvalidInput(NO_DOMAIN.format(account=account["name"]))
    return _present(found)


def is_tracking(conn: store.Store, hostname: str) -> bool:
    """Whether a hostname is one of the tracking domains (of any account)."""
    found = store.scalar(conn, "SELECT count(*) FROM domains WHERE hostname = ?", (hostname,))
    return bool(found)
