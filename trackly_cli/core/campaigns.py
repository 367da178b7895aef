"""Campaigns while `trackly shorten` writes them, and the removal of what a killed run left.

A large campaign is written in chunks, each its own short transaction (so that clicks,
postbacks and other commands never wait long for the write lock). Until its last chunk
commits, the campaign row names the process writing it (`building_pid`, `building_host`) and
the campaign is invisible: lookups, reports, exports and segments skip it. A campaign whose
process is gone is a leftover of a killed or failed run; a rerun of the same command, and
`trackly prune`, remove it, again in short transactions.
"""

from __future__ import annotations

import os
import socket

from trackly_cli.core import dialect, store

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
