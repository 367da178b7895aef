"""Audiences by click behaviour: the contacts of a campaign who clicked, did not click,
converted, or were only ever visited by bots — as a new list or rows for a CSV."""

from __future__ import annotations

import json
import sqlite3

from trackly_cli.core import clock, lookup, store, validate
from trackly_cli.core.errors import Conflict, InvalidInput

KINDS = ("clicked", "not_clicked", "converted", "bots_only")


def _query(kind: str, with_offer: bool) -> str:
    offer_mc = " AND mc.offer_id = ?" if with_offer else ""
    offer_raw = " AND l.offer_id = ?" if with_offer else ""
    offer_link = (
        " AND EXISTS (SELECT 1 FROM short_links l WHERE l.message_id = m.id AND l.offer_id = ?)"
        if with_offer
        else ""
    )
    clicked = (
        f"(EXISTS (SELECT 1 FROM message_clicks mc WHERE mc.message_id = m.id{offer_mc})"
        f" OR EXISTS (SELECT 1 FROM short_links l JOIN message_short_link_clicks r"
        f" ON r.link_id = l.id WHERE l.message_id = m.id AND r.is_bot = 0{offer_raw}))"
    )
    conditions = {
        "clicked": clicked,
        "not_clicked": f"NOT {clicked}{offer_link}",
        "converted": (
            "EXISTS (SELECT 1 FROM conversions cv WHERE cv.message_id = m.id"
            " AND NOT cv.is_reversal" + (" AND cv.offer_id = ?" if with_offer else "") + ")"
        ),
        "bots_only": (
            "NOT EXISTS (SELECT 1 FROM message_clicks mc WHERE mc.message_id = m.id)"
            " AND (SELECT sum(clicks) FROM message_rollups mr WHERE mr.message_id = m.id) > 0"
            " AND (SELECT sum(clicks) - sum(bot_clicks) FROM message_rollups mr"
            " WHERE mr.message_id = m.id) = 0" + offer_link
        ),
    }
    return (
        "SELECT DISTINCT c.id, c.phone, c.fields FROM messages m"
        " JOIN contacts c ON c.id = m.contact_id"
        f" WHERE m.campaign_id = ? AND {conditions[kind]} ORDER BY c.id"
    )


def segment(
    conn: sqlite3.Connection,
    account_id: int,
    campaign_ref: str,
    kind: str,
    offer_ref: str | None = None,
) -> list[dict]:
    if kind not in KINDS:
        raise InvalidInput(f"choose one of --{', --'.join(k.replace('_', '-') for k in KINDS)}")
    campaign = lookup.find(conn, "campaigns", campaign_ref, account_id)
    offer = lookup.find(conn, "offers", offer_ref, account_id) if offer_ref else None
    params: list = [campaign["id"]]
    if offer is not None:
        repeats = 2 if kind in ("clicked", "not_clicked") else 1
        params += [offer["id"]] * repeats + ([offer["id"]] if kind == "not_clicked" else [])
    found = store.rows(conn, _query(kind, offer is not None), tuple(params))
    for item in found:
        item["fields"] = json.loads(item["fields"])
    return found


def into_list(conn: sqlite3.Connection, account_id: int, name: str, contacts: list[dict]) -> dict:
    """A new list holding `contacts` (call inside a write transaction)."""
    name = validate.name(name, "list")
    if store.row(
        conn,
        "SELECT id FROM lists WHERE account_id = ? AND name_key = ?",
        (account_id, validate.key(name)),
    ):
        raise Conflict(f"list {name!r} already exists: choose a new name for the segment")
    now = clock.now_text()
    list_id = conn.execute(
        "INSERT INTO lists (account_id, name, name_key, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (account_id, name, validate.key(name), now, now),
    ).lastrowid
    conn.executemany(
        "INSERT INTO list_members (list_id, contact_id, added_at) VALUES (?, ?, ?)",
        [(list_id, c["id"], now) for c in contacts],
    )
    return {"list": name, "list_id": list_id, "members": len(contacts)}
