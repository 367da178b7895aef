"""What the server keeps in its click journal, and how the drain stores it.

A record is a JSON array whose first item says what it is:
- `c`, a hit on a short link (a MessageShortLinkClick, and the MessageClick when it is the
  first to count);
- `g`, the Continue button of an interstitial followed (the MessageClick in confirm mode);
- `p`, a conversion reported by a pixel.
Each carries its link (immutable, so the drain needs no lookup) and the time it arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from trackly_cli.core import clicks, clock, conversions, dialect, rescan, store
from trackly_cli.core.clicks import Click, LinkInfo
from trackly_cli.core.errors import TracklyError
from trackly_cli.core.journal import Journal, Position, pending, segments

CLICK, CONFIRM, PIXEL, BURST = "c", "g", "p", "b"
# What a record itself can be wrong with (a constraint, a damaged or unknown record); any other
# database error (locked, full, corrupt) fails the batch, which is retried, never skipped.
_RECORD_ERRORS = (ValueError, TypeError, IndexError, KeyError)


def _record_errors(conn: store.Store) -> tuple[type[Exception], ...]:
    return (*dialect.integrity(conn), *_RECORD_ERRORS)


_LINK = len(LinkInfo._fields)


def _clip(value: str | None) -> str | None:
    """A header as the journal keeps it: one character more than is stored, so that the drain
    can tell that it was cut."""
    limit = clicks.MAX_STORED_HEADER + 1
    return value if value is None or len(value) <= limit else value[:limit]


def click(hit: Click) -> list:
    return [
        CLICK,
        *hit.link,
        hit.clicked_at,
        hit.method,
        hit.ip,
        _clip(hit.user_agent),
        _clip(hit.referer),
        _clip(hit.accept_language),
        hit.visitor,
        hit.is_bot,
        hit.reasons,
        hit.counts,
        hit.ip_anonymized,
    ]


def confirm(
    link: LinkInfo,
    at: str,
    visitor: str,
    ip: str | None,
    user_agent: str,
    ip_anonymized: bool,
) -> list:
    return [CONFIRM, *link, at, visitor, ip, _clip(user_agent), ip_anonymized]


def pixel(
    link: LinkInfo,
    at: str,
    account_id: int,
    offer_id: int | None,
    postback: conversions.Postback,
    ip: str | None,
    ip_anonymized: bool,
) -> list:
    return [
        PIXEL,
        *link,
        at,
        account_id,
        offer_id,
        postback.event,
        postback.revenue_micros,
        postback.payout_micros,
        postback.txn_id,
        postback.message_id,
        ip,
        ip_anonymized,
    ]


def burst(link_id: str, since: str, reason: str) -> list:
    """A hit revealed a burst on this link: its hits since `since` are judged again (after the
    records before this one are stored)."""
    return [BURST, link_id, since, reason]


def _link(record: list) -> LinkInfo:
    return LinkInfo(*record[1 : 1 + _LINK])


def _click(record: list) -> Click:
    return Click(_link(record), *record[1 + _LINK :])


def prepare(conn: store.Store) -> None:
    clicks.prepare_click_input(conn)


def apply(
    conn: store.Store,
    batch: list[list],
    next_click_id: int | None,
    log: logging.Logger,
    allowed: Callable[[str | None], bool] | None = None,
) -> int | None:
    """Store a batch of records inside the caller's transaction; returns the id the next click
    will get. A record the database refuses (a bug, a damaged journal) is skipped with a log
    line; an error of the database itself (locked, disk full) is raised, and the caller retries
    the whole batch. `allowed` (an IP on the allow list?) is given where other servers store
    hits of the same links: the batch's clicks are then judged for bursts with theirs
    (rescan.shared_bursts)."""
    conn.execute("SAVEPOINT records")
    try:
        next_click_id = _apply_all(conn, batch, next_click_id)
        if allowed is not None:
            rescan.shared_bursts(conn, [_click(r) for r in batch if r[0] == CLICK], allowed)
    except _record_errors(conn):
        conn.execute("ROLLBACK TO records")
        next_click_id = _apply_each(conn, batch, log)
    conn.execute("RELEASE records")
    return next_click_id


def _apply_all(conn: store.Store, batch: list[list], next_id: int | None) -> int | None:
    run: list[Click] = []
    for record in batch:
        if record[0] == CLICK:
            run.append(_click(record))
            continue
        if run:
            next_id = clicks.record_many(conn, run, next_id)
            run = []
        _apply_other(conn, record)
    if run:
        next_id = clicks.record_many(conn, run, next_id)
    return next_id


def _apply_each(conn: store.Store, batch: list[list], log: logging.Logger) -> None:
    """One by one, each in its own savepoint, numbered from the table again (the failure may
    be another process's clicks); returns None, the next click's id being unknown."""
    for record in batch:
        conn.execute("SAVEPOINT record")
        try:
            if record[0] == CLICK:
                clicks.record_many(conn, [_click(record)])
            else:
                _apply_other(conn, record)
        except _record_errors(conn) as e:
            conn.execute("ROLLBACK TO record")
            log.error("click journal: a %r record could not be stored, skipped: %s", record[0], e)
        conn.execute("RELEASE record")
    return None


def _apply_other(conn: store.Store, record: list) -> None:
    kind = record[0]
    if kind == BURST:
        _, link_id, since, reason = record
        rescan.burst(conn, link_id, since, reason)
        return
    link = _link(record)
    rest = record[1 + _LINK :]
    if kind == CONFIRM:
        at, visitor, ip, user_agent, anonymized = rest
        clicks.confirm(conn, link, visitor, ip, user_agent, anonymized, at=at)
    elif kind == PIXEL:
        at, account_id, offer_id, event, revenue, payout, txn_id, message_id, ip, anonymized = rest
        postback = conversions.Postback(event, revenue, payout, txn_id, link.id, message_id)
        offer = clicks.load_offer(conn, offer_id) if offer_id else None
        conn.execute("SAVEPOINT pixel")
        try:
            conversions.record(
                conn,
                account_id=account_id,
                postback=postback,
                link=link,
                offer=offer,
                source="pixel",
                ip=ip,
                converted_at=at,
                ip_anonymized=anonymized,
            )
        except TracklyError:  # refused by the rules (a sale of another offer…): nothing kept
            conn.execute("ROLLBACK TO pixel")
        conn.execute("RELEASE pixel")
    else:
        raise ValueError(f"unknown journal record kind {kind!r}")


# -- where the drain is ----------------------------------------------------------------------


def journal_position(conn: store.Store, journal: Journal) -> Position:
    """How far `journal` is stored in this database (a new journal is registered)."""
    found = conn.execute(
        "SELECT segment, byte_offset FROM journal_state WHERE id = ?", (journal.id,)
    ).fetchone()
    now = clock.now_text()
    if found is not None:  # (a write: a database that cannot take one fails here, at start)
        conn.execute(
            "UPDATE journal_state SET folder = ?, updated_at = ? WHERE id = ?",
            (str(journal.folder.resolve()), now, journal.id),
        )
        return (found[0], found[1])
    on_disk = segments(journal.folder)
    position = (on_disk[0] if on_disk else 0, 0)
    conn.execute(
        "INSERT INTO journal_state (id, folder, segment, byte_offset, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (journal.id, str(journal.folder.resolve()), *position, now, now),
    )
    return position


def save_position(conn: store.Store, journal: Journal, position: Position) -> None:
    conn.execute(
        "UPDATE journal_state SET segment = ?, byte_offset = ?, updated_at = ? WHERE id = ?",
        (*position, clock.now_text(), journal.id),
    )


def journals(conn: store.Store) -> list[dict]:
    """Every journal this database has stored from, with what is still waiting in it (for
    `trackly db check`)."""
    result = []
    for row in store.rows(conn, "SELECT * FROM journal_state ORDER BY created_at"):
        folder = Path(row["folder"])
        waiting = list(pending(folder, (row["segment"], row["byte_offset"])))
        result.append(
            {
                "journal": row["folder"],
                "exists": folder.is_dir(),
                "undrained_records": sum(n for _, _, n in waiting),
                "undrained_bytes": sum(size for _, size, _ in waiting),
                "stored_until": row["updated_at"],
            }
        )
    return result
