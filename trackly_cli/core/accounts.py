"""Accounts: the brands that own domains, offers, lists and everything sent."""

from __future__ import annotations

from trackly_cli.core import clock, lookup, paging, store, validate
from trackly_cli.core.errors import Conflict, InvalidInput, NotFound

DEFAULT_RETENTION_DAYS = 90


def create(
    db: store.Store,
    name: str,
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    anonymize_ips_after_days: int | None = None,
) -> dict:
    name = validate.name(name, "account")
    _check_settings(retention_days, anonymize_ips_after_days)
    now = clock.now_text()
    with store.write(db) as conn:
        if store.row(conn, "SELECT id FROM accounts WHERE name_key = ?", (validate.key(name),)):
            raise Conflict(f"account {name!r} already exists")
        cursor = conn.execute(
            "INSERT INTO accounts (name, name_key, retention_days, anonymize_ips_after_days,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (name, validate.key(name), retention_days, anonymize_ips_after_days, now, now),
        )
        account_id = store.returned_id(cursor)
    return show(db, account_id)


def update(
    db: store.Store,
    ref: str | int,
    *,
    name: str | None = None,
    retention_days: int | None = None,
    anonymize_ips_after_days: int | None = None,
    keep_ips: bool = False,
) -> dict:
    with store.write(db) as conn:
        account = lookup.find(conn, "accounts", ref)
        changes: dict = {}
        if name is not None:
            name = validate.name(name, "account")
            other = store.row(
                conn,
                "SELECT id FROM accounts WHERE name_key = ? AND id <> ?",
                (validate.key(name), account["id"]),
            )
            if other:
                raise Conflict(f"account {name!r} already exists")
            changes["name"] = name
            changes["name_key"] = validate.key(name)
        if retention_days is not None:
            changes["retention_days"] = retention_days
        if anonymize_ips_after_days is not None:
            changes["anonymize_ips_after_days"] = anonymize_ips_after_days
        if keep_ips:
            changes["anonymize_ips_after_days"] = None
        _check_settings(changes.get("retention_days", 1), changes.get("anonymize_ips_after_days"))
        if changes:
            changes["updated_at"] = clock.now_text()
            store.update(db, "accounts", account["id"], changes)
    return show(db, account["id"])


MAX_DAYS = 36_500


def _check_settings(retention_days: int, anonymize_ips_after_days: int | None) -> None:
    if not 1 <= retention_days <= MAX_DAYS:
        raise InvalidInput(f"--retention-days must be between 1 and {MAX_DAYS:,}")
    if anonymize_ips_after_days is not None and not 0 <= anonymize_ips_after_days <= MAX_DAYS:
        raise InvalidInput(f"--anonymize-ips-after must be between 0 (at once) and {MAX_DAYS:,}")


def list_all(db: store.Store, limit: int | None = None) -> paging.Page:
    return paging.fetch(
        db,
        """
        SELECT a.id, a.name, a.retention_days, a.anonymize_ips_after_days,
               (SELECT hostname FROM domains d WHERE d.account_id = a.id AND d.is_default = 1)
                   AS default_domain,
               (SELECT count(*) FROM domains d WHERE d.account_id = a.id) AS domains,
               (SELECT count(*) FROM offers o WHERE o.account_id = a.id) AS offers,
               (SELECT count(*) FROM lists l WHERE l.account_id = a.id) AS lists,
               a.created_at
        FROM accounts a
        """,
        "ORDER BY a.id",
        limit=limit,
    )


def show(db: store.Store, ref: str | int) -> dict:
    account = lookup.find(db, "accounts", ref)
    return next(a for a in list_all(db).rows if a["id"] == account["id"])


def resolve(conn: store.Store, ref: str | None) -> dict:
    """The account a command works on: the one named, else the only one there is."""
    if ref:
        return lookup.find(conn, "accounts", ref)
    accounts = store.rows(conn, "SELECT * FROM accounts ORDER BY name")
    if len(accounts) == 1:
        return accounts[0]
    if not accounts:
        raise NotFound("there is no account yet: create one with `trackly account create NAME`")
    names = ", ".join(a["name"] for a in accounts)
    raise InvalidInput(f"several accounts exist ({names}): choose one with --account NAME")
