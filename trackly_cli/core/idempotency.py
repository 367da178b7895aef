"""Idempotency keys of the JSON API: a client that sends a write with `Idempotency-Key: K` and
retries it (a timeout, a lost answer) gets the first answer again rather than a second message.

The key is claimed by inserting its row at the start of the transaction that does the write,
and the answer is stored in that same transaction: the claim and the write commit together or
not at all. A concurrent retry waits for the first transaction (SQLite: its write lock;
PostgreSQL: the primary key's index, on which a second insert of the key waits until the first
commits or rolls back) and then finds the answer. A request that failed stores nothing, so a
retry of it runs again. A key is kept for a day; after that it may be used again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from trackly_cli.core import clock, store
from trackly_cli.core.errors import Conflict, InvalidInput

MAX_KEY_LENGTH = 255
KEPT = timedelta(days=1)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str  # the JSON text answered


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            field="Idempotency-Key",
        )
    return key


def fingerprint(method: str, path: str, body: object) -> str:
    """What makes two requests the same request: method, path and the JSON body (its keys in
    any order, spacing aside)."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def claim(conn: store.Store, account_id: int, key: str, print_: str) -> Answer | None:
    """Inside the write transaction: None when this request holds the key now (go on, then
    `remember` the answer); the stored Answer when an earlier request with the same key and body
    was answered; Conflict when the key was used for a different request."""
    now = clock.utcnow()
    # (a key kept longer than KEPT is free again)
    conn.execute(
        "DELETE FROM api_idempotency WHERE account_id = ? AND key = ? AND created_at < ?",
        (account_id, key, clock.to_text(now - KEPT)),
    )
    claimed = conn.execute(
        "INSERT INTO api_idempotency (account_id, key, fingerprint, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (account_id, key) DO NOTHING RETURNING account_id",
        (account_id, key, print_, clock.to_text(now)),
    ).fetchall()
    if claimed:
        return None
    found = store.row(
        conn,
        "SELECT fingerprint, status, response FROM api_idempotency"
        " WHERE account_id = ? AND key = ?",
        (account_id, key),
    )
    if found is None:  # (removed as too old between the two statements)
        raise Conflict("this Idempotency-Key is being reused: try again", field="Idempotency-Key")
    if found["fingerprint"] != print_:
        raise Conflict(
            "this Idempotency-Key was used for a different request: use a new key for a new"
            " request",
            field="Idempotency-Key",
        )
    return Answer(found["status"], found["response"])


def remember(conn: store.Store, account_id: int, key: str, answer: Answer) -> None:
    """Inside the transaction that claimed the key: the answer a retry gets."""
    conn.execute(
        "UPDATE api_idempotency SET status = ?, response = ? WHERE account_id = ? AND key = ?",
        (answer.status, answer.body, account_id, key),
    )
    # (and the account's keys older than KEPT go, so that the table keeps about a day of them)
    conn.execute(
        "DELETE FROM api_idempotency WHERE account_id = ? AND created_at < ?",
        (account_id, clock.days_ago_text(KEPT.days)),
    )


PRUNE_CHUNK = 5_000


def prune(conn: store.Store) -> int:
    """Delete the keys kept longer than KEPT (call outside a transaction), in short chunks. An
    account's own requests already remove its old keys (`remember`): what is left here is the
    last day of keys of accounts that stopped calling the API."""
    cutoff = clock.to_text(clock.utcnow() - KEPT)
    deleted = 0
    while True:
        with store.chunk(conn):
            found = conn.execute(
                "DELETE FROM api_idempotency WHERE (account_id, key) IN"
                " (SELECT account_id, key FROM api_idempotency WHERE created_at < ? LIMIT ?)",
                (cutoff, PRUNE_CHUNK),
            ).rowcount
        deleted += max(found, 0)
        if found < PRUNE_CHUNK:
            return deleted
