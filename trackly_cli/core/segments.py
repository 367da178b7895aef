"""Audiences by click behaviour: the contacts of a campaign who clicked, did not click,
converted, or were only ever visited by bots — as a new list or rows for a CSV."""

from __future__ import annotations

import json
from datetime import timedelta

from trackly_cli.core import clock, ids, lookup, store, validate
from trackly_cli.core.bots import IP_WINDOW_SECONDS
from trackly_cli.core.errors import Conflict, InvalidInput

KINDS = ("clicked", "not_clicked", "converted", "bots_only")


# A click younger than this may still be re-judged (a burst that a later hit reveals: see
# rescan.burst), so `--clicked` leaves it out until it has settled.
SETTLE_SECONDS = IP_WINDOW_SECONDS


def _query(kind: str, with_offer: bool) -> str:
    offer_mc = " AND mc.offer_id = :offer" if with_offer else ""
    offer_raw = " AND l.offer_id = :offer" if with_offer else ""
    offer_link = (
        " AND EXISTS (SELECT 1 FROM short_links l WHERE l.message_id = m.id"
        " AND l.offer_id = :offer)"
        if with_offer
        else ""
    )

    def clicked(settled: bool) -> str:
        mc_time = " AND mc.clicked_at <= :settled" if settled else ""
        raw_time = " AND r.clicked_at <= :settled" if settled else ""
        return (
            f"(EXISTS (SELECT 1 FROM message_clicks mc WHERE mc.message_id = m.id{offer_mc}"
            f"{mc_time})"
            f" OR EXISTS (SELECT 1 FROM short_links l JOIN message_short_link_clicks r"
            f" ON r.link_id = l.id WHERE l.message_id = m.id AND r.is_bot = 0{offer_raw}"
            f"{raw_time}))"
        )

    conditions = {
        # A click counts once it has settled; one that may still turn out a scanner's keeps
        # its contact out of both audiences meanwhile (it is never announced as a person).
        "clicked": clicked(settled=True),
        "not_clicked": f"NOT {clicked(settled=False)}{offer_link}",
        "converted": (
            "EXISTS (SELECT 1 FROM conversions cv WHERE cv.message_id = m.id"
            " AND cv.is_reversal = 0" + (" AND cv.offer_id = :offer" if with_offer else "") + ")"
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
        f" WHERE m.campaign_id = :campaign AND {conditions[kind]} ORDER BY c.id"
    )


def segment(
    conn: store.Store,
    account_id: int,
    campaign_ref: str,
    kind: str,
    offer_ref: str | None = None,
) -> list[dict]:
    if kind not in KINDS:
        raise InvalidInput(f"choose one of --{', --'.join(k.replace('_', '-') for k in KINDS)}")
    campaign = lookup.find(conn, "campaigns", campaign_ref, account_id, retired=True)
    offer = lookup.find(conn, "offers", offer_ref, account_id) if offer_ref else None
    params = {
        "campaign": campaign["id"],
        "offer": offer["id"] if offer is not None else None,
        "settled": clock.to_text(clock.utcnow() - timedelta(seconds=SETTLE_SECONDS)),
    }
    found = store.rows(conn, _query(kind, offer is not None), params)
    for item in found:
        item["fields"] = json.loads(item["fields"])
    return found


def into_list(conn: store.Store, account_id: int, name: str, contacts: list[dict]) -> dict:
    """A new list holding `contacts` (call inside a write transaction)."""
    name = validate.name(name, "list")
    if store.row(
        conn,
        "SELECT id FROM lists WHERE account_id = ? AND name_key = ?",
        (account_id, validate.key(name)),
    ):
        raise Conflict(f"list {name!r} already exists: choose a new name for the segment")
    now = clock.now_text()
    values = {
        "account_id": account_id,
        "name": name,
        "name_key": validate.key(name),
        "created_at": now,
        "updated_at": now,
    }
    list_id = ids.insert(conn, "lists", values)  # (never the id of a deleted list)
    conn.executemany(
        "INSERT INTO list_members (list_id, contact_id, added_at) VALUES (?, ?, ?)",
        [(list_id, c["id"], now) for c in contacts],
    )
    return {"list": name, "list_id": list_id, "members": len(contacts)}
