"""Sending lists: their members, bot-filter settings and default interstitial page."""

from __future__ import annotations

import json

from trackly_cli.core import accounts, clock, ids, lookup, paging, store, validate
from trackly_cli.core.errors import Conflict, InvalidInput

BOT_FILTERS = ("off", "flag", "confirm")
DEFAULT_MIN_HUMAN_SECONDS = 2.0


def create(
    db: store.Store,
    account_ref: str | None,
    name: str,
    *,
    bot_filter: str = "flag",
    min_human_seconds: float = DEFAULT_MIN_HUMAN_SECONDS,
    title: str | None = None,
    description: str | None = None,
    cta: str | None = None,
    meta: list[str] | None = None,
) -> dict:
    name = validate.name(name, "list")
    values = _values(bot_filter, min_human_seconds, title, description, cta, meta)
    now = clock.now_text()
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        if store.row(
            conn,
            "SELECT id FROM lists WHERE account_id = ? AND name_key = ?",
            (account["id"], validate.key(name)),
        ):
            raise Conflict(f"list {name!r} already exists in account {account['name']!r}")
        values |= {
            "account_id": account["id"],
            "name": name,
            "name_key": validate.key(name),
            "created_at": now,
            "updated_at": now,
        }
        list_id = ids.insert(conn, "lists", values)  # (never the id of a deleted list)
    return get(db, list_id)


def update(
    db: store.Store,
    account_ref: str | None,
    ref: str,
    *,
    name: str | None = None,
    bot_filter: str | None = None,
    min_human_seconds: float | None = None,
    title: str | None = None,
    description: str | None = None,
    cta: str | None = None,
    meta: list[str] | None = None,
) -> dict:
    changes = {
        k: v
        for k, v in _values(bot_filter, min_human_seconds, title, description, cta, meta).items()
        if v is not None
    }
    if not meta:
        changes.pop("interstitial_meta", None)
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        found = lookup.find(conn, "lists", ref, account["id"])
        if name is not None:
            changes["name"] = validate.name(name, "list")
            if store.row(
                conn,
                "SELECT id FROM lists WHERE account_id = ? AND name_key = ? AND id <> ?",
                (account["id"], validate.key(changes["name"]), found["id"]),
            ):
                raise Conflict(f"list {changes['name']!r} already exists")
            changes["name_key"] = validate.key(changes["name"])
        if changes:
            changes["updated_at"] = clock.now_text()
            store.update(db, "lists", found["id"], changes)
    return get(db, found["id"])


def _values(bot_filter, min_human_seconds, title, description, cta, meta) -> dict:
    if bot_filter is not None and bot_filter not in BOT_FILTERS:
        raise InvalidInput(f"--bot-filter must be one of {', '.join(BOT_FILTERS)}")
    if min_human_seconds is not None and not 0 <= min_human_seconds <= 86400:
        raise InvalidInput("--min-human-seconds must be between 0 and 86400")
    return {
        "bot_filter": bot_filter,
        "min_human_seconds": min_human_seconds,
        "interstitial_title": validate.text(title, "--interstitial-title", 300),
        "interstitial_description": validate.text(description, "--interstitial-description"),
        "interstitial_cta": validate.text(cta, "--interstitial-cta", 100),
        "interstitial_meta": json.dumps(validate.meta_pairs(meta)),
    }


_SELECT = """
SELECT l.id, l.name, a.name AS account, l.account_id, l.bot_filter, l.min_human_seconds,
       l.interstitial_title, l.interstitial_description, l.interstitial_cta,
       l.interstitial_meta, l.created_at, l.updated_at,
       (SELECT count(*) FROM list_members m WHERE m.list_id = l.id) AS members
FROM lists l JOIN accounts a ON a.id = l.account_id
"""


def get(conn: store.Store, list_id: int) -> dict:
    found = store.row(conn, _SELECT + " WHERE l.id = ?", (list_id,))
    found["interstitial_meta"] = json.loads(found["interstitial_meta"])
    return found


def show(db: store.Store, account_ref: str | None, ref: str) -> dict:
    account = accounts.resolve(db, account_ref)
    return get(db, lookup.find(db, "lists", ref, account["id"])["id"])


def list_all(db: store.Store, account_ref: str | None, limit: int | None = None) -> paging.Page:
    account = accounts.resolve(db, account_ref)
    found = paging.fetch(
        db, _SELECT + " WHERE l.account_id = ?", "ORDER BY l.name", (account["id"],), limit
    )
    for item in found.rows:
        item["interstitial_meta"] = json.loads(item["interstitial_meta"])
    return found
