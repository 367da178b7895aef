"""Webhooks (#17): an account's hooks, and what became of their events.

A hook is a URL, the event types it wants and a secret that signs every delivery. Its events
are written by the schema's triggers (migration 0016) in the transaction of the row each
describes, into the outbox `webhook_events`; `core/delivery.py` sends them. Here: adding,
listing, enabling and removing hooks, the deliveries listing, and the upkeep of the outbox
(an erased person's fields, old events).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from trackly_cli.core import accounts, clock, ids, store, validate
from trackly_cli.core.errors import InvalidInput, NotFound

# The types a hook can subscribe to, as the triggers name them.
EVENT_TYPES = ("click.first", "click.bot", "conversion.created", "conversion.reversed")
# What `webhook test` sends (no trigger writes it).
TEST_EVENT = "webhook.test"
MAX_URL = 2000
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MIN_SECRET = 16
MAX_SECRET = 200
# Delivered and given-up events are kept this long for `webhook deliveries`, then pruned.
KEEP_EVENTS_DAYS = 30
PRUNE_CHUNK = 2000
# The fields of an event's data that name a person: `contacts erase` clears them.
PERSONAL_FIELDS = ("phone", "ip", "user_agent", "contact_id")

_COLUMNS = (
    "w.id, a.name AS account, w.url, w.events, w.enabled, w.created_at, w.failing_since,"
    " w.disabled_at, w.disabled_reason"
)


def check_url(url: str) -> str:
    text = url.strip()
    if not text or len(text) > MAX_URL:
        raise InvalidInput(f"webhook URL must be 1 to {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise InvalidInput(f"webhook URL {text[:60]!r} has spaces or control characters")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (reading it checks it)
    except ValueError as e:
        raise InvalidInput(f"webhook URL {text[:60]!r} is not a URL: {e}") from e
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"webhook URL {text[:60]!r} must be http:// or https:// with a host,"
            " e.g. https://crm.example/hooks/trackly"
        )
    return text


def check_events(events: str | list[str]) -> list[str]:
    """'click.first, conversion.created' -> the known types, in EVENT_TYPES order."""
    given = events.split(",") if isinstance(events, str) else events
    wanted = {e.strip() for e in given if e.strip()}
    if not wanted:
        raise InvalidInput(f"no event types given: choose from {', '.join(EVENT_TYPES)}")
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(
            f"unknown event type {unknown[0]!r}: choose from {', '.join(EVENT_TYPES)}"
        )
    return [e for e in EVENT_TYPES if e in wanted]


def check_secret(secret: str) -> str:
    if not MIN_SECRET <= len(secret) <= MAX_SECRET or not secret.isascii():
        raise InvalidInput(
            f"a webhook secret must be {MIN_SECRET} to {MAX_SECRET} ASCII characters"
        )
    if any(c.isspace() or not c.isprintable() for c in secret):
        raise InvalidInput("a webhook secret must not hold spaces or control characters")
    return secret


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(24)


def add(
    db: store.Store,
    account_ref: str | None,
    url: str,
    events: str | list[str],
    secret: str | None = None,
) -> dict:
    """A new hook of the account; its secret is in the answer (and shown only then)."""
    url = check_url(url)
    types = check_events(events)
    secret = check_secret(secret) if secret is not None else new_secret()
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        hook_id = ids.insert(
            conn,
            "webhooks",
            {
                "account_id": account["id"],
                "url": url,
                "events": ",".join(types),
                "secret": secret,
                "enabled": 1,
                "created_at": clock.now_text(),
            },
        )
    return show(db, hook_id) | {"secret": secret}


def _shown(row: dict) -> dict:
    return row | {"events": row["events"].split(","), "enabled": bool(row["enabled"])}


def find(conn: store.Store, ref: str | int) -> dict:
    """The hook with this id (secret included: for the sender and `webhook test`)."""
    text = str(ref).strip()
    found = None
    if validate.is_id(text):
        found = store.row(conn, "SELECT * FROM webhooks WHERE id = ?", (int(text),))
    if found is None:
        raise NotFound(f"no webhook {text[:20]!r} (see `trackly webhook list`)")
    return found


def show(conn: store.Store, ref: str | int) -> dict:
    hook = find(conn, ref)
    return _shown(
        store.row(
            conn,
            f"SELECT {_COLUMNS} FROM webhooks w JOIN accounts a ON a.id = w.account_id"
            " WHERE w.id = ?",
            (hook["id"],),
        )
    )


def list_all(conn: store.Store, account_ref: str | None = None) -> list[dict]:
    """Every hook (of one account), without secrets."""
    where, params = "", ()
    if account_ref:
        account = accounts.resolve(conn, account_ref)
        where, params = " WHERE w.account_id = ?", (account["id"],)
    return [
        _shown(r)
        for r in store.rows(
            conn,
            f"SELECT {_COLUMNS} FROM webhooks w JOIN accounts a ON a.id = w.account_id{where}"
            " ORDER BY w.id",
            params,
        )
    ]


def remove(db: store.Store, ref: str) -> dict:
    """Delete a hook and its events (sent or not)."""
    with store.write(db) as conn:
        hook = show(conn, ref)
        events = store.scalar(
            conn, "SELECT count(*) FROM webhook_events WHERE webhook_id = ?", (hook["id"],)
        )
        conn.execute("DELETE FROM webhooks WHERE id = ?", (hook["id"],))
        ids.raise_floor(conn, "webhooks", hook["id"])  # (`deliveries ID` never means another)
    return hook | {"events_deleted": events}


def enable(db: store.Store, ref: str) -> dict:
    """Turn a disabled hook on again: new events go to it (those given up stay given up)."""
    with store.write(db) as conn:
        hook = find(conn, ref)
        conn.execute(
            "UPDATE webhooks SET enabled = 1, failing_since = NULL, disabled_at = NULL,"
            " disabled_reason = NULL WHERE id = ?",
            (hook["id"],),
        )
    return show(db, hook["id"])


# -- deliveries -------------------------------------------------------------------------------

DEFAULT_DELIVERIES = 50

_STATUS = (
    "CASE WHEN e.delivered_at IS NOT NULL THEN 'delivered'"
    " WHEN e.given_up_at IS NOT NULL THEN 'given up'"
    " WHEN e.attempts > 0 THEN 'retrying' ELSE 'pending' END"
)


def deliveries(
    conn: store.Store,
    ref: str | None = None,
    *,
    account_ref: str | None = None,
    failed: bool = False,
    limit: int = DEFAULT_DELIVERIES,
) -> list[dict]:
    """The newest events (of one hook, or one account's hooks) and what became of each;
    `failed`: only those that failed at least once and were not delivered."""
    if limit < 1:
        raise InvalidInput("--limit must be at least 1")
    where, params = [], []
    if ref is not None:
        where.append("e.webhook_id = ?")
        params.append(find(conn, ref)["id"])
    if account_ref:
        where.append("e.account_id = ?")
        params.append(accounts.resolve(conn, account_ref)["id"])
    if failed:
        where.append("e.delivered_at IS NULL AND e.attempts > 0")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return store.rows(
        conn,
        f"SELECT e.event_id AS id, e.webhook_id, e.type, e.created_at, {_STATUS} AS status,"
        " e.attempts, e.last_status, e.last_error, e.next_attempt_at, e.delivered_at"
        f" FROM webhook_events e{clause} ORDER BY e.id DESC LIMIT ?",
        (*params, limit),
    )


# -- upkeep -----------------------------------------------------------------------------------


def erase_contact(conn: store.Store, contact_id: int) -> int:
    """Inside `contacts erase`'s transaction: the person's events keep their ids and figures
    (a receiver still learns of the click or the sale) but no longer name them."""
    found = conn.execute(
        "SELECT id, data FROM webhook_events WHERE contact_id = ?", (contact_id,)
    ).fetchall()
    for event_id, data in found:
        cleared = json.loads(data) | dict.fromkeys(PERSONAL_FIELDS)
        conn.execute(
            "UPDATE webhook_events SET data = ?, contact_id = NULL WHERE id = ?",
            (json.dumps(cleared), event_id),
        )
    return len(found)


def prune(conn: store.Store, now: datetime | None = None, days: int = KEEP_EVENTS_DAYS) -> int:
    """Delete events delivered or given up more than `days` ago, oldest first, in chunks
    (call outside a transaction). Events are numbered in the order they happen, so the walk
    by id stops at the first chunk that reaches a newer one, without reading the rest."""
    cutoff = clock.to_text((now or clock.utcnow()) - timedelta(days=days))
    deleted, after = 0, 0
    while True:
        with store.chunk(conn):
            batch = conn.execute(
                "SELECT id, created_at, next_attempt_at FROM webhook_events WHERE id > ?"
                " ORDER BY id LIMIT ?",
                (after, PRUNE_CHUNK),
            ).fetchall()
            old = [(i,) for i, created, due in batch if created < cutoff and due is None]
            if old:
                conn.executemany("DELETE FROM webhook_events WHERE id = ?", old)
        deleted += len(old)
        if len(batch) < PRUNE_CHUNK or any(created >= cutoff for _, created, _ in batch):
            return deleted
        after = batch[-1][0]
