"""Sending webhook events (#17): claim, sign, post, record the outcome, back off.

Events wait in `webhook_events` (written by triggers, see core/webhooks.py). A sender claims a
few due ones at a time for a lease (`claimed_by` 'host:pid', `claimed_until`) in a short
transaction, so that several senders (`trackly serve` and `trackly dashboard`, several nodes
on PostgreSQL) never post one event at once; posts them; and records each outcome in another
short transaction. An event is delivered only after a 2xx answer (at least once: a sender
killed between the post and the record posts it again). A failed post is tried again after
1 s, 5 s, 20 s, then with growing delays, until 24 hours after the event; then it is given up.
A hook whose posts have all failed for 24 hours is disabled.

The body is the event's stored data in a fixed serialisation, so every retry sends the same
bytes; the `Trackly-Signature` header signs `f"{t}.{body}"` with the hook's secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import os
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from trackly_cli import __version__
from trackly_cli.core import clock, store, webhooks

# Seconds from one failed post to the next: the first within a minute, then growing; the last
# delay repeats until the event is GIVE_UP_AFTER old (a last attempt comes at that moment).
SCHEDULE = (1, 5, 20, 60, 300, 900, 1800, 3600, 7200, 14400, 28800)
GIVE_UP_AFTER = timedelta(hours=24)
DISABLE_AFTER = timedelta(hours=24)  # of failures without one success
# A claim outlives a post (CONNECT_TIMEOUT, TOTAL_TIMEOUT) with room to record its outcome.
LEASE = timedelta(seconds=60)
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 10.0
MAX_RESPONSE = 4096  # bytes of a receiver's answer read (its start shows in last_error)
MAX_ERROR = 300
USER_AGENT = f"Trackly-Webhooks/{__version__}"


# -- the request ----------------------------------------------------------------------------


def body(event_id: str, type_: str, created_at: str, data: dict | str) -> bytes:
    """The JSON body: the same bytes for the same event, every time (keys sorted, no spaces,
    ASCII)."""
    payload = {
        "id": event_id,
        "type": type_,
        "created_at": created_at,
        "data": json.loads(data) if isinstance(data, str) else data,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("ascii")


def signature(secret: str, payload: bytes, timestamp: int) -> str:
    """The Trackly-Signature header: t=UNIX,v1=HMAC-SHA256(secret, f"{t}.{body}") in hex."""
    signed = f"{timestamp}.".encode("ascii") + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def headers(secret: str, payload: bytes, event_id: str, timestamp: int | None = None) -> dict:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Trackly-Event-Id": event_id,
        "Trackly-Signature": signature(
            secret, payload, int(time.time()) if timestamp is None else timestamp
        ),
    }


@dataclass
class Outcome:
    """What one post came to: the receiver's status (None when there was no answer) and, when it
    failed, why, in one line."""

    status: int | None
    error: str | None
    ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(url: str, payload: bytes, request_headers: dict) -> Outcome:
    """POST to a receiver: CONNECT_TIMEOUT to connect, TOTAL_TIMEOUT for everything (a receiver
    that answers a byte at a time is cut off then), no redirect followed (a 3xx is a failure),
    at most MAX_RESPONSE bytes of the answer read."""
    started = time.monotonic()
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    extra = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
    conn = kind(parts.hostname, parts.port, timeout=CONNECT_TIMEOUT, **extra)
    cutoff = None

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        conn.connect()
        remaining = max(0.1, TOTAL_TIMEOUT - (time.monotonic() - started))
        conn.sock.settimeout(remaining)
        # (a timeout bounds each read; this bounds them all)
        cutoff = threading.Timer(remaining, _shut, (conn.sock,))
        cutoff.daemon = True
        cutoff.start()
        conn.request("POST", path, body=payload, headers=request_headers)
        response = conn.getresponse()
        answer = response.read(MAX_RESPONSE)
    except (OSError, http.client.HTTPException) as e:
        late = time.monotonic() - started >= TOTAL_TIMEOUT
        reason = "timed out" if late or isinstance(e, TimeoutError) else _reason(e)
        return Outcome(None, reason[:MAX_ERROR], elapsed())
    finally:
        if cutoff is not None:
            cutoff.cancel()
        conn.close()
    if 200 <= response.status < 300:
        return Outcome(response.status, None, elapsed())
    text = " ".join(answer.decode("utf-8", "replace").split())
    error = f"HTTP {response.status}" + (f": {text}" if text else "")
    return Outcome(response.status, error[:MAX_ERROR], elapsed())


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _reason(e: Exception) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the host: {e.strerror or e}"
    if isinstance(e, ssl.SSLError):
        return f"TLS: {e.reason or e}"
    return str(e) or type(e).__name__


def send_test(conn: store.Store, ref: str) -> tuple[dict, Outcome]:
    """Post a `webhook.test` event to a hook now (enabled or not); nothing is stored."""
    hook = webhooks.find(conn, ref)
    event_id = "evt_" + secrets.token_hex(16)
    payload = body(
        event_id,
        webhooks.TEST_EVENT,
        clock.now_text(),
        {"webhook_id": hook["id"], "message": "a test event from `trackly webhook test`"},
    )
    return hook, post(hook["url"], payload, headers(hook["secret"], payload, event_id))


# -- the outbox -----------------------------------------------------------------------------


def owner(pid: int | None = None) -> str:
    """What a sender writes in claimed_by: this host and process."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def claim(conn: store.Store, me: str, limit: int, now: datetime | None = None) -> list[dict]:
    """Up to `limit` due events, claimed for LEASE by `me`, oldest due first. (The outer
    conditions repeat the inner ones: a PostgreSQL sender that waited for another's claim
    sees the row as that one left it, and takes it no more.)"""
    moment = now or clock.utcnow()
    at = clock.to_text(moment)
    until = clock.to_text(moment + LEASE)
    free = "next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)"
    with store.write(conn):
        return store.rows(
            conn,
            f"UPDATE webhook_events SET claimed_by = ?, claimed_until = ? WHERE {free}"
            " AND id IN (SELECT id FROM webhook_events"
            f" WHERE {free} ORDER BY next_attempt_at LIMIT ?)"
            " RETURNING id, event_id, webhook_id, type, data, created_at, attempts",
            (me, until, at, at, at, at, limit),
        )


def due_soon(conn: store.Store, now: datetime | None = None) -> bool:
    """Whether any event is due (one probe of the due index: what a sender polls)."""
    at = clock.to_text(now or clock.utcnow())
    return (
        conn.execute(
            "SELECT 1 FROM webhook_events WHERE next_attempt_at <= ? LIMIT 1", (at,)
        ).fetchone()
        is not None
    )


def hooks(conn: store.Store, hook_ids: set[int]) -> dict[int, dict]:
    """The hooks of claimed events, by id."""
    if not hook_ids:
        return {}
    marks = ", ".join("?" * len(hook_ids))
    found = store.rows(conn, f"SELECT * FROM webhooks WHERE id IN ({marks})", tuple(hook_ids))
    return {h["id"]: h for h in found}


def deliver(event: dict, hook: dict | None) -> Outcome:
    """Post one claimed event to its hook (None: the hook was removed or disabled meanwhile)."""
    if hook is None or not hook["enabled"]:
        return Outcome(None, "the webhook is disabled", 0)
    payload = body(event["event_id"], event["type"], event["created_at"], event["data"])
    return post(hook["url"], payload, headers(hook["secret"], payload, event["event_id"]))


def next_attempt(event: dict, now: datetime) -> datetime | None:
    """When to try a failed event again (it has had `attempts` tries before this one), or None:
    given up, 24 hours after it happened."""
    end = clock.from_text(event["created_at"]) + GIVE_UP_AFTER
    if now >= end:
        return None
    delay = SCHEDULE[min(event["attempts"], len(SCHEDULE) - 1)]
    return min(now + timedelta(seconds=delay), end)


@dataclass
class Recorded:
    delivered: bool
    given_up: bool = False
    disabled: dict | None = None  # the hook, when this failure disabled it


def record(
    conn: store.Store, event: dict, outcome: Outcome, now: datetime | None = None
) -> Recorded:
    """Store what a post of a claimed event came to, in one transaction: delivered after a 2xx
    (and the hook is failing no more); else the next attempt or, past 24 hours, given up; and
    a hook failing for DISABLE_AFTER is disabled, its waiting events given up."""
    moment = now or clock.utcnow()
    at = clock.to_text(moment)
    with store.write(conn):
        if outcome.ok:
            conn.execute(
                "UPDATE webhook_events SET attempts = attempts + 1, delivered_at = ?,"
                " next_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL,"
                " last_status = ?, last_error = NULL"
                " WHERE id = ? AND delivered_at IS NULL AND given_up_at IS NULL",
                (at, outcome.status, event["id"]),
            )
            conn.execute(
                "UPDATE webhooks SET failing_since = NULL"
                " WHERE id = ? AND failing_since IS NOT NULL",
                (event["webhook_id"],),
            )
            return Recorded(True)
        then = next_attempt(event, moment)
        conn.execute(
            "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = ?,"
            " given_up_at = ?, claimed_by = NULL, claimed_until = NULL, last_status = ?,"
            " last_error = ? WHERE id = ? AND delivered_at IS NULL AND given_up_at IS NULL",
            (
                None if then is None else clock.to_text(then),
                at if then is None else None,
                outcome.status,
                outcome.error,
                event["id"],
            ),
        )
        return Recorded(False, then is None, _fail_hook(conn, event["webhook_id"], outcome, moment))


def _fail_hook(conn: store.Store, hook_id: int, outcome: Outcome, now: datetime) -> dict | None:
    at = clock.to_text(now)
    conn.execute(
        "UPDATE webhooks SET failing_since = ? WHERE id = ? AND failing_since IS NULL",
        (at, hook_id),
    )
    hook = store.row(conn, "SELECT * FROM webhooks WHERE id = ?", (hook_id,))
    if hook is None or not hook["enabled"]:
        return None
    if clock.from_text(hook["failing_since"]) > now - DISABLE_AFTER:
        return None
    reason = f"every delivery failed for 24 hours (last: {outcome.error})"[:MAX_ERROR]
    conn.execute(
        "UPDATE webhooks SET enabled = 0, disabled_at = ?, disabled_reason = ? WHERE id = ?",
        (at, reason, hook_id),
    )
    # (its waiting events would only fail too; a hook enabled again starts afresh)
    conn.execute(
        "UPDATE webhook_events SET next_attempt_at = NULL, given_up_at = ?, claimed_by = NULL,"
        " claimed_until = NULL, last_error = coalesce(last_error, 'the webhook was disabled')"
        " WHERE webhook_id = ? AND next_attempt_at IS NOT NULL",
        (at, hook_id),
    )
    return hook | {"enabled": 0, "disabled_at": at, "disabled_reason": reason}


def release(conn: store.Store, me: str) -> int:
    """Give back the events `me` claimed and did not finish (a sender stopping), so that
    another sender takes them at once rather than after the lease."""
    with store.write(conn):
        return conn.execute(
            "UPDATE webhook_events SET claimed_by = NULL, claimed_until = NULL"
            " WHERE claimed_by = ? AND next_attempt_at IS NOT NULL",
            (me,),
        ).rowcount


def release_dead(conn: store.Store, host: str | None = None, now: datetime | None = None) -> int:
    """On a sender's start: give back the live claims of senders of this host whose process is
    gone (killed, say), so their events are sent again now and not after the lease. Only this
    host's: a process id says nothing about another machine's processes."""
    host = host or socket.gethostname()
    at = clock.to_text(now or clock.utcnow())
    holders = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT claimed_by FROM webhook_events"
            " WHERE next_attempt_at IS NOT NULL AND claimed_until >= ?"
            " AND substr(claimed_by, 1, ?) = ?",
            (at, len(host) + 1, f"{host}:"),
        ).fetchall()
    ]
    released = 0
    for holder in holders:
        pid = holder.rpartition(":")[2]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            released += release(conn, holder)
    return released


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # (another user's process)
    return True
