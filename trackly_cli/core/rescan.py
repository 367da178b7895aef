"""Re-classify stored clicks (after importing IP ranges, say) and rebuild the MessageClicks and
conversion attributions that depend on the verdicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from trackly_cli.core import bots, clicks, clock, conversions, dialect, ipranges, store

# The end of the header budget's reason (clicks.HeaderBudget).
_HEADERS_NOT_STORED = "(headers not stored)"
# The changes of this many messages are written per transaction.
MESSAGES_PER_TRANSACTION = 500


@dataclass
class RescanResult:
    clicks: int = 0
    to_bot: int = 0
    to_human: int = 0
    message_clicks_added: int = 0
    message_clicks_removed: int = 0
    conversions_reattributed: int = 0

    def as_dict(self) -> dict:
        return dict(vars(self))


def _own(text: str, stored: str) -> str:
    """A new verdict's reasons, keeping what the stored ones said that a verdict on the hit
    alone cannot see again: the header budget's note (the headers were not kept)."""
    kept = [r for r in stored.split("; ") if r.endswith(_HEADERS_NOT_STORED)] if stored else []
    extra = [r for r in kept if r not in text.split("; ")]
    return "; ".join(([text] if text else []) + extra)


def _prefetch(reasons: str) -> str:
    """The prefetch header a click was sent with, as its stored reasons recorded it."""
    for reason in reasons.split("; "):
        if reason.startswith("prefetch header ("):
            return reason[len("prefetch header (") : -1]
    return ""


def rescan(
    conn: store.Store,
    account_id: int,
    *,
    since: str | None = None,
    messages: set[int] | None = None,
) -> RescanResult:
    """Run the classifier again over the account's stored clicks (from `since`; of `messages`
    only, if given). The clicks are read and judged without the write lock; only the changes
    are written, a few hundred messages per transaction (each message's clicks, MessageClicks
    and conversions together), so that a running server's postbacks and other writers never
    wait long. The timing signal measures from each message's delivery where a receipt gave
    it. A hit that reveals a burst makes the earlier hits of its window bots too, as the
    server does. Call outside a transaction."""
    detector = bots.Detector(ipranges.load(conn))
    offers = clicks.load_offers(conn)
    lists = clicks.load_lists(conn)
    result = RescanResult()
    affected: set[tuple[int, str]] = set()
    only = ""
    if messages is not None:
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS rescan_messages"
            f" (id {dialect.integer_key(conn)} PRIMARY KEY)"
        )
        conn.execute("DELETE FROM rescan_messages")
        conn.executemany("INSERT INTO rescan_messages (id) VALUES (?)", [(m,) for m in messages])
        only = " AND c.message_id IN (SELECT id FROM rescan_messages)"
    cursor = conn.execute(
        "SELECT c.id, c.link_id, c.message_id, c.contact_id, c.offer_id, c.list_id, c.method,"
        " c.ip, c.user_agent, c.accept_language, c.bot_reasons, c.is_bot, c.clicked_at,"
        " c.visitor, m.created_at, m.delivery_status = 'delivered', m.delivery_at"
        " FROM message_short_link_clicks c"
        " JOIN messages m ON m.id = c.message_id"
        # (an erased contact's clicks have no headers left to judge: their verdicts stay)
        f" WHERE c.account_id = ? AND c.clicked_at >= ? AND c.visitor <> ?{only}"
        " ORDER BY c.link_id, c.clicked_at, c.id",
        (account_id, since or "", clicks.ERASED_VISITOR),
    )
    # Per click: [is_bot, reasons] as judged now, and what is stored.
    judged: dict[int, list] = {}
    # Per click: (is_bot, reasons, message, visitor) as stored.
    stored: dict[int, tuple[int, str, int, str]] = {}
    window: list[tuple[int, float]] = []  # the current link's hits: (click id, moment)
    current_link = None
    for (
        click_id,
        link_id,
        message_id,
        contact_id,
        offer_id,
        list_id,
        method,
        ip,
        user_agent,
        accept_language,
        reasons,
        is_bot,
        clicked_at,
        visitor,
        sent_at,
        delivered,
        delivered_at,
    ) in cursor:
        result.clicks += 1
        offer = offers.get(offer_id) if offer_id else None
        sending_list = lists.get(list_id) if list_id else None
        mode = clicks.bot_filter(offer, sending_list)
        moment = clock.from_text(clicked_at).timestamp()
        if link_id != current_link:
            current_link, window = link_id, []
        if mode == "off":
            verdict = bots.HUMAN
        else:
            start = delivered_at if delivered and delivered_at else sent_at
            verdict = detector.classify(
                bots.RequestFacts(
                    method, user_agent or "", ip, accept_language or "", _prefetch(reasons)
                ),
                seconds_since_sent=moment - clock.from_text(start).timestamp(),
                min_human_seconds=sending_list.min_human_seconds if sending_list else 2.0,
                link_id=link_id if contact_id is not None else None,
                now=moment,
                timed_from="delivery" if delivered and delivered_at else "sending",
            )
        judged[click_id] = [int(verdict.is_bot), _own(verdict.text, reasons)]
        stored[click_id] = (is_bot, reasons, message_id, visitor)
        if verdict.burst:
            reason = next(r for r in verdict.reasons if "IPs on one link" in r)
            for earlier, at in window:
                if moment - at <= bots.IP_WINDOW_SECONDS and not judged[earlier][0]:
                    note = f"later: {reason}"
                    text = judged[earlier][1]
                    judged[earlier] = [1, f"{text}; {note}" if text else note]
        window.append((click_id, moment))
    updates: dict[int, list[tuple]] = {}  # message id -> (is_bot, reasons, click id)
    for click_id, (now_bot, text) in judged.items():
        was_bot, reasons, message_id, visitor = stored[click_id]
        if now_bot != was_bot or text != reasons:
            updates.setdefault(message_id, []).append((now_bot, text, click_id))
            if now_bot != was_bot:
                result.to_bot += now_bot
                result.to_human += not now_bot
                affected.add((message_id, visitor))
    ordered = sorted(updates)
    for start in range(0, len(ordered), MESSAGES_PER_TRANSACTION):
        chunk = set(ordered[start : start + MESSAGES_PER_TRANSACTION])
        with store.chunk(conn):
            conn.executemany(
                "UPDATE message_short_link_clicks SET is_bot = ?, bot_reasons = ? WHERE id = ?",
                [update for message_id in sorted(chunk) for update in updates[message_id]],
            )
            mine = {key for key in affected if key[0] in chunk}
            messages = _rebuild_message_clicks(conn, mine, offers, lists, result)
            result.conversions_reattributed += reattribute(conn, messages, offers)
    return result


def burst(
    conn: store.Store, link_id: str, since: str, reason: str, until: str | None = None
) -> int:
    """A hit revealed a burst on a per-recipient link: its earlier hits since `since`, judged
    human when each came (the first of a scanner's burst has nothing against it yet), are bots
    too, with `reason`; the MessageClicks they made move to the message's first human click or
    go, and conversions follow (hits after `until`, if given, are left as they are). Inside the
    caller's transaction (the drain's). Returns how many hits changed."""
    found = conn.execute(
        "SELECT id, message_id, visitor, bot_reasons FROM message_short_link_clicks"
        " WHERE link_id = ? AND clicked_at >= ? AND clicked_at <= ? AND is_bot = 0"
        " AND visitor <> ?",
        (link_id, since, until or "9999", clicks.ERASED_VISITOR),
    ).fetchall()
    if not found:
        return 0
    note = f"later: {reason}"
    conn.executemany(
        "UPDATE message_short_link_clicks SET is_bot = 1, bot_reasons = ? WHERE id = ?",
        [(f"{old}; {note}" if old else note, click_id) for click_id, _, _, old in found],
    )
    offers = clicks.load_offers(conn)
    lists = clicks.load_lists(conn)
    affected = {(message_id, visitor) for _, message_id, visitor, _ in found}
    messages = _rebuild_message_clicks(
        conn, affected, offers, lists, RescanResult(), why="a later hit revealed a burst"
    )
    reattribute(conn, messages, offers)
    return len(found)


def shared_bursts(
    conn: store.Store, batch: list[clicks.Click], allowed: Callable[[str | None], bool]
) -> int:
    """Where several servers take one link's hits (nodes over PostgreSQL, `--workers`), each
    sees only its part of a scanner's burst. After a batch is stored, the per-recipient links
    it touched are looked at with every server's hits: 3+ addresses (off the allow list) within
    the window make the window's hits bots, as one server seeing them all would have (with the
    reason saying it took several servers). Inside the drain's transaction; returns the hits
    that changed."""
    window = bots.IP_WINDOW_SECONDS
    links = {c.link.id: c.link for c in batch if c.link.contact_id is not None}
    if not links:
        return 0
    earliest = clock.from_text(min(c.clicked_at for c in batch)) - timedelta(seconds=window)
    marks = ",".join("?" * len(links))
    hits: dict[str, list[tuple[float, str, str]]] = {}
    for link_id, ip, clicked_at in conn.execute(
        "SELECT link_id, ip, clicked_at FROM message_short_link_clicks"
        f" WHERE link_id IN ({marks}) AND clicked_at >= ? ORDER BY link_id, clicked_at, id",
        (*links, clock.to_text(earliest)),
    ):
        if ip is not None and not allowed(ip):
            hits.setdefault(link_id, []).append(
                (clock.from_text(clicked_at).timestamp(), ip, clicked_at)
            )
    changed = 0
    offers = lists = None
    for link_id, found in hits.items():
        if len({ip for _, ip, _ in found}) < 3:
            continue  # (most links: a person, or one server's burst, already judged)
        start = 0
        for end, (moment, _, until) in enumerate(found):
            while moment - found[start][0] > window:
                start += 1
            addresses = len({ip for _, ip, _ in found[start : end + 1]})
            if addresses < 3:
                continue
            if offers is None:
                offers, lists = clicks.load_offers(conn), clicks.load_lists(conn)
            link = links[link_id]
            offer = offers.get(link.offer_id) if link.offer_id else None
            sending_list = lists.get(link.list_id) if link.list_id else None
            if clicks.bot_filter(offer, sending_list) == "off":
                break
            reason = f"{addresses} IPs on one link within {window:.0f} s (across servers)"
            changed += burst(conn, link_id, found[start][2], reason, until=until)
    return changed


def _rebuild_message_clicks(
    conn: store.Store,
    affected: set[tuple[int, str]],
    offers: dict,
    lists: dict,
    result: RescanResult,
    why: str = "bots rescan",
) -> set[int]:
    """Make each affected (message, visitor) MessageClick the first click that now counts.
    MessageClicks made by the Continue button or by a conversion's promotion stay."""
    changed: set[int] = set()
    for message_id, visitor in sorted(affected):
        existing = store.row(
            conn,
            "SELECT id, click_id, source FROM message_clicks WHERE message_id = ? AND visitor = ?",
            (message_id, visitor),
        )
        if existing is not None and (
            existing["source"] not in ("click", "rescan") or existing["click_id"] is None
        ):
            # Made by the Continue button or a conversion, or its raw click was pruned: the
            # clicks that could replace it are not all there any more, so it stays.
            continue
        first = store.row(
            conn,
            "SELECT c.id, c.link_id, c.clicked_at, c.ip, c.user_agent, c.ip_anonymized_at FROM"
            " message_short_link_clicks c WHERE c.visitor = ?"
            " AND c.link_id IN (SELECT id FROM short_links WHERE message_id = ?)"
            " AND c.is_bot = 0 ORDER BY c.clicked_at, c.id LIMIT 1",
            (visitor, message_id),
        )
        if first is not None:
            link = clicks.load_link(conn, first["link_id"])
            offer = offers.get(link.offer_id) if link.offer_id else None
            sending_list = lists.get(link.list_id) if link.list_id else None
            if clicks.bot_filter(offer, sending_list) == "confirm":
                first = None  # in confirm mode only the Continue button makes one
        if existing is not None and first is not None and existing["click_id"] == first["id"]:
            continue
        if existing is not None:
            conn.execute("DELETE FROM message_clicks WHERE id = ?", (existing["id"],))
            result.message_clicks_removed += 1
            changed.add(message_id)
        if first is not None:
            clicks.insert_message_click(
                conn,
                link,
                visitor,
                first["clicked_at"],
                first["ip"],
                first["user_agent"],
                first["id"],
                "rescan",
                f"{why}: the first click that is not a bot",
                first["ip_anonymized_at"] is not None,
            )
            result.message_clicks_added += 1
            changed.add(message_id)
    return changed


def reattribute(conn: store.Store, message_ids: set[int], offers: dict) -> int:
    """Attribute the conversions of these messages again (their MessageClicks changed)."""
    count = 0
    for message_id in sorted(message_ids):
        for row in store.rows(
            conn,
            "SELECT id, link_id, offer_id, txn_id, is_reversal,"
            " converted_at, attribution, message_click_id FROM conversions"
            " WHERE message_id = ? ORDER BY is_reversal, id",
            (message_id,),
        ):
            if row["is_reversal"] and row["txn_id"]:
                original = store.row(
                    conn,
                    "SELECT attribution, message_click_id FROM"
                    " conversions WHERE account_id = (SELECT account_id FROM"
                    " conversions WHERE id = ?) AND txn_id = ?"
                    " AND is_reversal = 0",
                    (row["id"], row["txn_id"]),
                )
                if original is not None:
                    click_id, attribution = original["message_click_id"], original["attribution"]
                else:
                    click_id, attribution = _attribution(conn, row, offers)
            else:
                click_id, attribution = _attribution(conn, row, offers)
            if (click_id, attribution) != (row["message_click_id"], row["attribution"]):
                conn.execute(
                    "UPDATE conversions SET message_click_id = ?, attribution = ? WHERE id = ?",
                    (click_id, attribution, row["id"]),
                )
                count += 1
    return count


def _attribution(conn: store.Store, row: dict, offers: dict) -> tuple[int | None, str]:
    link = clicks.load_link(conn, row["link_id"]) if row["link_id"] else None
    offer = offers.get(row["offer_id"]) if row["offer_id"] else None
    return conversions.attribute(conn, link, offer, row["converted_at"], promote=False)
