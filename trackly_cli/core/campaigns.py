"""Campaigns: listed, shown, their outbox written again, deleted; and the campaigns that
`trackly shorten` is still writing, with the removal of what a killed run left.

A large campaign is written in chunks, each its own short transaction (so that clicks,
postbacks and other commands never wait long for the write lock). Until its last chunk
commits, the campaign row names the process writing it (`building_pid`, `building_host`) and
the campaign is invisible: lookups, reports, exports and segments skip it. A campaign whose
process is gone is a leftover of a killed or failed run; a rerun of the same command, and
`trackly prune`, remove it, again in short transactions.

A complete campaign's row is never removed (migration 0010): `delete` leaves it as a tombstone
(`deleted`), so that its id is never reused and running servers learn that its links are gone.
A campaign nobody clicked is removed whole (messages, links, report counters; the name is free
again); one with clicks or conversions is refused, or with `force` retired: its links stop
answering clicks and its history stays in every report.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from trackly_cli.core import accounts, clock, dialect, ids, outbox, reports, store, validate
from trackly_cli.core.errors import Conflict, NotFound
from trackly_cli.core.filters import Filters

HOST = socket.gethostname()
# Rows removed per transaction: each chunk holds the write lock a few tens of milliseconds.
REMOVE_CHUNK = 2000


def builder() -> tuple[int, str]:
    """Who is writing a campaign: this process, on this host."""
    return os.getpid(), HOST


def is_alive(pid: int | None, host: str | None) -> bool:
    """Whether the process writing a campaign still runs (on another host: assumed so)."""
    if pid is None:
        return False
    if host != HOST:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def incomplete(conn: store.Store) -> list[dict]:
    """Campaigns not (yet) complete: being written, or left by a run that died."""
    found = store.rows(
        conn,
        "SELECT c.id, a.name AS account, c.name, c.building_pid, c.building_host, c.created_at,"
        " (SELECT count(*) FROM messages m WHERE m.campaign_id = c.id) AS messages"
        " FROM campaigns c JOIN accounts a ON a.id = c.account_id"
        " WHERE c.building_pid IS NOT NULL ORDER BY c.id",
    )
    for row in found:
        row["state"] = (
            "being written" if is_alive(row["building_pid"], row["building_host"]) else "left over"
        )
    return found


def claim(conn: store.Store, campaign: dict) -> bool:
    """Make a leftover this process's to remove, if it is still the dead run's it was seen as
    (another rerun or a prune may have claimed it since: then False). Campaign ids are reused,
    so nothing is removed by id without this."""
    with store.write(conn):
        return (
            conn.execute(
                "UPDATE campaigns SET building_pid = ?, building_host = ?"
                f" WHERE id = ? AND building_pid = ? AND building_host {dialect.same(conn)} ?",
                (*builder(), campaign["id"], campaign["building_pid"], campaign["building_host"]),
            ).rowcount
            == 1
        )


def remove(conn: store.Store, campaign_id: int) -> int:
    """Delete an incomplete campaign and everything written for it, a chunk of messages per
    transaction (each chunk's rows together, so that no link is left without its message);
    returns the messages removed."""
    removed, done = 0, False
    while not done:
        with store.chunk(conn):
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM messages WHERE campaign_id = ? LIMIT ?",
                    (campaign_id, REMOVE_CHUNK),
                )
            ]
            if ids:
                marks = ",".join("?" * len(ids))
                # Nobody has these links yet; should one have been clicked, its rows go too
                # (the report counters keep its clicks, as after a prune).
                for table in ("conversions", "message_clicks", "message_short_link_clicks"):
                    conn.execute(f"DELETE FROM {table} WHERE message_id IN ({marks})", ids)
                conn.execute(f"DELETE FROM short_links WHERE message_id IN ({marks})", ids)
                conn.execute(f"DELETE FROM messages WHERE id IN ({marks})", ids)
                removed += len(ids)
            else:
                conn.execute("DELETE FROM campaign_variants WHERE campaign_id = ?", (campaign_id,))
                conn.execute(
                    "DELETE FROM campaigns WHERE id = ? AND building_pid IS NOT NULL",
                    (campaign_id,),
                )
                done = True
    return removed


def remove_leftovers(conn: store.Store) -> list[dict]:
    """Remove every campaign left incomplete by a run that is gone; returns them."""
    gone = [c for c in incomplete(conn) if c["state"] == "left over" and claim(conn, c)]
    for campaign in gone:
        remove(conn, campaign["id"])
    return gone


# -- the noun: list, show, outbox, delete ---------------------------------------------------

# The report's numbers a listing shows (`trackly report --by campaign` has them all).
LISTED = ("sent", "delivered", "undelivered", "clicks", "unique_clicks", "conversions", "revenue")
SAMPLE = 5  # messages `show` gives by default


def find(conn: store.Store, account: dict, ref: str) -> dict:
    """The account's campaign named (or numbered) `ref`, complete or not; never a deleted one."""
    text = str(ref).strip()
    if validate.is_id(text):
        where, value = "id = ?", int(text)
    else:
        where, value = "name_key = ?", validate.key(text)
    found = store.row(
        conn,
        f"SELECT * FROM campaigns WHERE {where} AND account_id = ? AND deleted IS NULL",
        (value, account["id"]),
    )
    if found is None:
        raise NotFound(f"no campaign {text[:100]!r} in this account (see `trackly campaign list`)")
    return found


def status(campaign: dict) -> str:
    return "complete" if campaign["building_pid"] is None else "incomplete"


def _incomplete(campaign: dict) -> str:
    """Why an incomplete campaign cannot be used yet, and what to do."""
    name = campaign["name"]
    if is_alive(campaign["building_pid"], campaign["building_host"]):
        return (
            f"campaign {name!r} is incomplete: `trackly shorten` (process"
            f" {campaign['building_pid']}) is still writing it; wait for it to finish"
        )
    return (
        f"campaign {name!r} is incomplete: the `trackly shorten` that wrote it stopped; run it"
        " again, or `trackly prune` removes it"
    )


def numbers(conn: store.Store, account: dict, campaign: dict | None = None) -> dict[int, dict]:
    """Each campaign's row of `trackly report --by campaign` (all time), by campaign id: the
    same numbers, from the same code (only `campaign`'s, when given)."""
    found = reports.report(conn, Filters(account=account, campaign=campaign), "campaign")
    return {row["campaign_id"]: row for row in found.rows if row["campaign_id"]}


def _zeros() -> dict:
    empty = {k: 0 for k in reports.COUNTS}
    empty |= {"revenue_micros": 0, "payout_micros": 0, "unattributed_revenue_micros": 0}
    return reports.finish(empty)


def listing(conn: store.Store, account_ref: str | None) -> list[dict]:
    """The account's campaigns, newest first, with their numbers (deleted ones aside)."""
    account = accounts.resolve(conn, account_ref)
    counted = numbers(conn, account)
    found = store.rows(
        conn,
        "SELECT k.*, l.name AS list FROM campaigns k LEFT JOIN lists l ON l.id = k.list_id"
        " WHERE k.account_id = ? AND k.deleted IS NULL ORDER BY k.created_at DESC, k.id DESC",
        (account["id"],),
    )
    result = []
    for campaign in found:
        figures = counted.get(campaign["id"]) or _zeros()
        result.append(
            {
                "id": campaign["id"],
                "name": campaign["name"],
                "list": campaign["list"],
                "created_at": campaign["created_at"],
                "status": status(campaign),
            }
            | {k: figures[k] for k in LISTED}
        )
    return result


def detail(conn: store.Store, account_ref: str | None, ref: str, limit: int = SAMPLE) -> dict:
    """A campaign: its numbers (its report row), list, domain, variants with their creatives
    and the offer or URL of each slot, and its first `limit` messages with their links."""
    account = accounts.resolve(conn, account_ref)
    campaign = find(conn, account, ref)
    figures = numbers(conn, account, campaign).get(campaign["id"]) or _zeros()
    domain = store.row(
        conn, "SELECT scheme, hostname FROM domains WHERE id = ?", (campaign["domain_id"],)
    )
    sending_list = store.scalar(conn, "SELECT name FROM lists WHERE id = ?", (campaign["list_id"],))
    variants = store.rows(
        conn,
        "SELECT v.label AS variant, c.name AS creative, v.weight,"
        " (SELECT count(*) FROM messages m WHERE m.campaign_id = v.campaign_id"
        "  AND m.variant = v.label) AS messages"
        " FROM campaign_variants v JOIN creatives c ON c.id = v.creative_id"
        " WHERE v.campaign_id = ? ORDER BY v.label",
        (campaign["id"],),
    )
    # What each slot points to: every message of a variant has the same targets, so its first
    # message's links say (one index seek per variant, whatever the campaign's size).
    bound = store.rows(
        conn,
        "SELECT v.label, l.slot, o.name AS offer, l.url FROM campaign_variants v"
        " JOIN short_links l ON l.message_id = (SELECT min(m.id) FROM messages m"
        "  WHERE m.campaign_id = v.campaign_id AND m.variant = v.label)"
        " LEFT JOIN offers o ON o.id = l.offer_id WHERE v.campaign_id = ?"
        " ORDER BY v.label, l.slot",
        (campaign["id"],),
    )
    for variant in variants:
        variant["links"] = {
            b["slot"]: b["offer"] if b["offer"] is not None else b["url"]
            for b in bound
            if b["label"] == variant["variant"]
        }
    record = {
        "id": campaign["id"],
        "name": campaign["name"],
        "status": status(campaign),
        "created_at": campaign["created_at"],
        "list": sending_list,
        "domain": domain["hostname"],
        "seed": campaign["seed"],
    }
    record |= {k: v for k, v in figures.items() if k not in ("campaign", "campaign_id")}
    record["variants"] = variants
    record["messages"] = sample(conn, campaign["id"], limit)
    return record


def sample(conn: store.Store, campaign_id: int, limit: int) -> list[dict]:
    """The campaign's first `limit` messages, each with its short links."""
    found = store.rows(
        conn,
        "SELECT m.id AS message_id, c.phone, m.variant, m.delivery_status AS delivery"
        " FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id"
        " WHERE m.campaign_id = ? ORDER BY m.id LIMIT ?",
        (campaign_id, limit),
    )
    if not found:
        return found
    marks = ",".join("?" * len(found))
    short = store.rows(
        conn,
        "SELECT l.message_id, l.slot, l.id, d.scheme, d.hostname FROM short_links l"
        f" JOIN domains d ON d.id = l.domain_id WHERE l.message_id IN ({marks})"
        " ORDER BY l.message_id, l.slot",
        tuple(m["message_id"] for m in found),
    )
    for message in found:
        message["links"] = {
            s["slot"]: f"{s['scheme']}://{s['hostname']}/{s['id']}"
            for s in short
            if s["message_id"] == message["message_id"]
        }
    return found


def write_outbox(conn: store.Store, account_ref: str | None, ref: str, path: Path) -> dict:
    """Write a complete campaign's outbox again: the same file `trackly shorten --output`
    wrote (same rows, texts and links)."""
    account = accounts.resolve(conn, account_ref)
    campaign = find(conn, account, ref)
    if campaign["building_pid"] is not None:
        raise Conflict(_incomplete(campaign))
    written = outbox.write_campaign(conn, campaign["id"], path)
    return {
        "campaign": campaign["name"],
        "messages": written.messages,
        "skipped_optouts": written.opted_out,
        "skipped_erased": written.erased,
        "outbox": str(path),
    }


_HISTORY = (
    "SELECT coalesce(sum(clicks), 0) AS clicks,"
    " coalesce(sum(conversions + unattributed_conversions), 0) AS conversions,"
    " coalesce(sum(abs(revenue_micros) + abs(payout_micros) + abs(unattributed_revenue_micros)"
    "  + unique_clicks + bot_clicks), 0) AS other,"
    " coalesce(sum(delivered + undelivered), 0) AS receipts"
    " FROM report_rollups WHERE campaign_id = ?"
)


def history(conn: store.Store, campaign_id: int) -> dict:
    """What refers to a campaign beyond its making: clicks and conversions (the report
    counters, which outlive pruned raw clicks), a gateway's delivery receipts (it was sent), and
    refunds waiting for a sale of its links."""
    found = {k: int(v) for k, v in store.row(conn, _HISTORY, (campaign_id,)).items()}
    found["waiting"] = store.scalar(
        conn,
        "SELECT count(*) FROM pending_reversals p JOIN short_links l ON l.id = p.link_id"
        " JOIN messages m ON m.id = l.message_id WHERE m.campaign_id = ?",
        (campaign_id,),
    )
    return found


# How long a removal waits between stopping a campaign's links and removing their rows: more than
# a running server takes to re-read its settings (a second) and to store a click it answered just
# before (a fraction of one). A click stored meanwhile makes the campaign retired, not removed:
# a click whose link row is gone could never be stored (the drain would retry it for ever).
GRACE_SECONDS = 2.0


def delete(
    conn: store.Store,
    account_ref: str | None,
    ref: str,
    *,
    force: bool = False,
    wait: Callable[[float], None] = time.sleep,
) -> dict:
    """Delete a campaign. One with history (clicks, conversions, refunds waiting for a sale of
    its links) is refused, unless `force`: then it is retired (its links no longer answer
    clicks, everything it recorded stays in the reports). One without is removed whole: first
    retired, so that running servers stop answering its links; then, GRACE_SECONDS later and
    still untouched, its messages, links and report counters (what it added to `sent`) go in
    one transaction, and its name is free again. Interrupted in between, it stays retired."""
    account = accounts.resolve(conn, account_ref)
    with store.write(conn):
        campaign = find(conn, account, ref)
        if campaign["building_pid"] is not None:
            raise Conflict(_incomplete(campaign))
        found = history(conn, campaign["id"])
        name = campaign["name"]
        if _used(found) and not force:
            reason = f"{found['clicks']:,} clicks and {found['conversions']:,} conversions"
            if found["waiting"]:
                reason += f" ({found['waiting']:,} refunds waiting for their sale)"
            elif found["receipts"] and not found["clicks"] and not found["conversions"]:
                reason += f" but {found['receipts']:,} delivery receipts: it was sent"
            elif not found["clicks"] and not found["conversions"]:
                reason += " (but refunds or chargebacks)"
            raise Conflict(
                f"campaign {name!r} has {reason}; its links are live: add --force to retire it"
                " (its links stop answering, its report history stays)"
            )
        conn.execute(
            "UPDATE campaigns SET deleted = 'retired', deleted_at = ? WHERE id = ?",
            (clock.now_text(), campaign["id"]),
        )
    if not _used(found):
        wait(GRACE_SECONDS)
        with store.write(conn):
            found = history(conn, campaign["id"])
            if not _used(found):
                return {
                    "campaign": name,
                    "deleted": "removed",
                    "messages_removed": _remove(conn, campaign),
                    "clicks": 0,
                    "conversions": 0,
                    "refunds_waiting": 0,
                }
    return {
        "campaign": name,
        "deleted": "retired",
        "messages_removed": 0,
        "clicks": found["clicks"],
        "conversions": found["conversions"],
        "refunds_waiting": found["waiting"],
    }


def _used(found: dict) -> bool:
    return bool(
        found["clicks"]
        or found["conversions"]
        or found["other"]
        or found["waiting"]
        or found["receipts"]
    )


def _remove(conn: store.Store, campaign: dict) -> int:
    """Remove a retired campaign that nothing refers to: its messages, links, variants and
    report counters (only what it sent is in them: checked by the caller), leaving its row;
    returns the messages removed."""
    messages, largest = conn.execute(
        "SELECT count(*), max(id) FROM messages WHERE campaign_id = ?", (campaign["id"],)
    ).fetchone()
    ids.raise_floor(conn, "messages", largest)  # (their ids are never given again)
    conn.execute(
        "DELETE FROM short_links WHERE message_id IN"
        " (SELECT id FROM messages WHERE campaign_id = ?)",
        (campaign["id"],),
    )
    conn.execute("DELETE FROM messages WHERE campaign_id = ?", (campaign["id"],))
    conn.execute("DELETE FROM campaign_variants WHERE campaign_id = ?", (campaign["id"],))
    conn.execute("DELETE FROM report_rollups WHERE campaign_id = ?", (campaign["id"],))
    # The tombstone keeps the id; its name_key (a control character, which no name may hold)
    # matches no name, so the name can be used again, and it holds on to no list.
    conn.execute(
        "UPDATE campaigns SET deleted = 'removed', deleted_at = ?, name_key = ?,"
        " list_id = NULL WHERE id = ?",
        (clock.now_text(), f"\x01deleted {campaign['id']}", campaign["id"]),
    )
    return messages
