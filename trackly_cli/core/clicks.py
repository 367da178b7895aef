"""Clicks: what a short link resolves to, where it sends people, and how a hit is recorded.

Every hit becomes a MessageShortLinkClick. The first non-bot click per message and visitor
becomes the MessageClick, through the unique constraint on (message_id, visitor), so that any
number of concurrent clicks make exactly one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from dataclasses import dataclass
from urllib.parse import quote

from trackly_cli.core import clock, links, store

MAX_STORED_HEADER = 1024


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """A short link with what a click needs of its message. Immutable once created."""

    id: str
    account_id: int
    message_id: int
    contact_id: int | None
    offer_id: int | None
    url: str | None
    domain_id: int
    campaign_id: int | None
    campaign: str
    creative_id: int | None
    list_id: int | None
    variant: str | None
    sent_at: float  # the message's creation, epoch seconds


_LINK_SQL = """
SELECT l.id, l.account_id, l.message_id, l.contact_id, l.offer_id, l.url, l.domain_id,
       m.campaign_id, coalesce(c.name, ''), m.creative_id, m.list_id, m.variant, m.created_at
FROM short_links l
JOIN messages m ON m.id = l.message_id
LEFT JOIN campaigns c ON c.id = m.campaign_id
WHERE l.id = ?
"""


def load_link(conn: sqlite3.Connection, link_id: str) -> LinkInfo | None:
    if not links.VALID_ID.match(link_id):
        return None
    found = conn.execute(_LINK_SQL, (link_id,)).fetchone()
    if found is None:
        return None
    *fields, created_at = found
    return LinkInfo(*fields, clock.from_text(created_at).timestamp())


@dataclass(frozen=True, slots=True)
class OfferInfo:
    id: int
    account_id: int
    name: str
    url: str
    payout_micros: int
    attribution_days: int
    interstitial: str
    title: str | None
    description: str | None
    cta: str | None
    meta: dict
    bot_filter: str
    postback_secret: str
    postback_ips: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListInfo:
    id: int
    bot_filter: str
    min_human_seconds: float
    title: str | None
    description: str | None
    cta: str | None
    meta: dict


def load_offers(conn: sqlite3.Connection) -> dict[int, OfferInfo]:
    return {
        r["id"]: OfferInfo(
            r["id"],
            r["account_id"],
            r["name"],
            r["url"],
            r["payout_micros"],
            r["attribution_days"],
            r["interstitial"],
            r["title"],
            r["description"],
            r["cta"],
            json.loads(r["meta"]),
            r["bot_filter"],
            r["postback_secret"],
            tuple(json.loads(r["postback_ips"])),
        )
        for r in store.rows(conn, "SELECT * FROM offers")
    }


def load_lists(conn: sqlite3.Connection) -> dict[int, ListInfo]:
    return {
        r["id"]: ListInfo(
            r["id"],
            r["bot_filter"],
            r["min_human_seconds"],
            r["interstitial_title"],
            r["interstitial_description"],
            r["interstitial_cta"],
            json.loads(r["interstitial_meta"]),
        )
        for r in store.rows(conn, "SELECT * FROM lists")
    }


def bot_filter(offer: OfferInfo | None, sending_list: ListInfo | None) -> str:
    """off, flag or confirm: the offer's setting unless it inherits the list's (default flag)."""
    if offer is not None and offer.bot_filter != "inherit":
        return offer.bot_filter
    return sending_list.bot_filter if sending_list is not None else "flag"


@dataclass(frozen=True, slots=True)
class Page:
    """The interstitial or Continue page of a click."""

    title: str
    description: str | None
    cta: str
    meta: dict


DEFAULT_CTA = "Continue"


def page_for(
    offer: OfferInfo | None, sending_list: ListInfo | None, mode: str, destination: str
) -> Page | None:
    """The page a click shows instead of a redirect, or None to redirect at once."""
    interstitial = offer.interstitial if offer is not None else "none"
    if interstitial == "custom":
        return Page(
            offer.title or offer.name, offer.description, offer.cta or DEFAULT_CTA, offer.meta
        )
    if interstitial == "list_default" and sending_list is not None and sending_list.title:
        return Page(
            sending_list.title,
            sending_list.description,
            sending_list.cta or DEFAULT_CTA,
            sending_list.meta,
        )
    if interstitial == "list_default" or mode == "confirm":
        host = destination.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
        title = sending_list.title if sending_list is not None and sending_list.title else None
        return Page(
            title or f"Continue to {host}",
            sending_list.description if sending_list is not None else None,
            (sending_list.cta if sending_list is not None else None) or DEFAULT_CTA,
            sending_list.meta if sending_list is not None else {},
        )
    return None


def destination(link: LinkInfo, offer: OfferInfo | None) -> str:
    """Where the link sends people: the stored URL, with the offer's macros filled in and
    URL-encoded."""
    if offer is None:
        return link.url or ""
    url = offer.url
    if "{" not in url:
        return url
    values = {
        "{link_id}": link.id,
        "{message_id}": str(link.message_id),
        "{contact_id}": "" if link.contact_id is None else str(link.contact_id),
        "{offer_id}": str(offer.id),
        "{campaign}": link.campaign,
    }
    for macro, value in values.items():
        if macro in url:
            url = url.replace(macro, quote(value, safe=""))
    return url


def contact_visitor(contact_id: int) -> str:
    """The visitor key of a contact (every click on a per-recipient link is the contact's)."""
    return f"c:{contact_id}"


def visitor(link: LinkInfo, ip: str | None, user_agent: str, secret: bytes) -> str:
    """Who clicked, for the one-MessageClick-per-visitor rule: the contact of a per-recipient
    link, else a keyed hash of IP and user agent (an anonymous one-off message)."""
    if link.contact_id is not None:
        return contact_visitor(link.contact_id)
    digest = hmac.new(secret, f"{ip or ''}\n{user_agent}".encode(), hashlib.sha256)
    return "v:" + digest.hexdigest()[:32]


@dataclass(slots=True)
class Click:
    link: LinkInfo
    clicked_at: str
    method: str
    ip: str | None
    user_agent: str
    referer: str | None
    accept_language: str | None
    visitor: str
    is_bot: bool
    reasons: str
    counts: bool  # may become the MessageClick (False in confirm mode: the button decides)
    ip_anonymized: bool = False  # `ip` is already truncated (the account keeps no full IPs)


_INSERT_CLICK = """
INSERT INTO message_short_link_clicks (
    id, clicked_at, link_id, message_id, contact_id, offer_id, account_id, campaign_id,
    creative_id, list_id, variant, domain_id, method, ip, user_agent, referer, accept_language,
    visitor, is_bot, bot_reasons, ip_anonymized_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_INSERT_MESSAGE_CLICK = """
INSERT INTO message_clicks (
    message_id, visitor, contact_id, link_id, offer_id, account_id, campaign_id, creative_id,
    list_id, variant, domain_id, click_id, clicked_at, ip, user_agent, source, reason,
    created_at, ip_anonymized_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (message_id, visitor) DO NOTHING
"""


def _clip(value: str | None) -> str | None:
    return value if value is None or len(value) <= MAX_STORED_HEADER else value[:MAX_STORED_HEADER]


def record_many(conn: sqlite3.Connection, batch: list[Click], first_id: int | None = None) -> int:
    """Store hits in two statements, whatever their number; each that is the first to count for
    its message and visitor becomes the MessageClick. Returns the id the next click will get.

    Call inside a write transaction (BEGIN IMMEDIATE). The ids are numbered on from `first_id`
    when the caller knows it (the server's writer does), else from the largest id; should
    another process have written clicks meanwhile, the primary key refuses the batch and the
    caller retries without `first_id`.
    """
    first = first_id or store.scalar(
        conn, "SELECT coalesce(max(id), 0) + 1 FROM message_short_link_clicks"
    )
    ids = range(first, first + len(batch))
    conn.executemany(
        _INSERT_CLICK,
        [
            (
                click_id,
                c.clicked_at,
                c.link.id,
                c.link.message_id,
                c.link.contact_id,
                c.link.offer_id,
                c.link.account_id,
                c.link.campaign_id,
                c.link.creative_id,
                c.link.list_id,
                c.link.variant,
                c.link.domain_id,
                c.method,
                c.ip,
                _clip(c.user_agent),
                _clip(c.referer),
                _clip(c.accept_language),
                c.visitor,
                int(c.is_bot),
                c.reasons,
                c.clicked_at if c.ip_anonymized else None,
            )
            for click_id, c in zip(ids, batch, strict=True)
        ],
    )
    now = clock.now_text()
    conn.executemany(
        _INSERT_MESSAGE_CLICK,
        [
            _message_click_row(
                c.link,
                c.visitor,
                c.clicked_at,
                c.ip,
                c.user_agent,
                click_id,
                "click",
                None,
                now,
                c.ip_anonymized,
            )
            for click_id, c in zip(ids, batch, strict=True)
            if c.counts and not c.is_bot
        ],
    )
    return first + len(batch)


def _message_click_row(
    link: LinkInfo,
    visitor_key: str,
    clicked_at: str,
    ip: str | None,
    user_agent: str | None,
    click_id: int | None,
    source: str,
    reason: str | None,
    now: str,
    ip_anonymized: bool,
) -> tuple:
    """The values of _INSERT_MESSAGE_CLICK."""
    return (
        link.message_id,
        visitor_key,
        link.contact_id,
        link.id,
        link.offer_id,
        link.account_id,
        link.campaign_id,
        link.creative_id,
        link.list_id,
        link.variant,
        link.domain_id,
        click_id,
        clicked_at,
        ip,
        _clip(user_agent),
        source,
        reason,
        now,
        clicked_at if ip_anonymized else None,
    )


def insert_message_click(
    conn: sqlite3.Connection,
    link: LinkInfo,
    visitor_key: str,
    clicked_at: str,
    ip: str | None,
    user_agent: str | None,
    click_id: int | None,
    source: str,
    reason: str | None = None,
    ip_anonymized: bool = False,
) -> int | None:
    """The MessageClick of (message, visitor), unless one exists: returns its id if new."""
    cursor = conn.execute(
        _INSERT_MESSAGE_CLICK,
        _message_click_row(
            link,
            visitor_key,
            clicked_at,
            ip,
            user_agent,
            click_id,
            source,
            reason,
            clock.now_text(),
            ip_anonymized,
        ),
    )
    return cursor.lastrowid if cursor.rowcount else None


def confirm(
    conn: sqlite3.Connection,
    link: LinkInfo,
    visitor_key: str,
    ip: str | None,
    user_agent: str,
    ip_anonymized: bool = False,
) -> int | None:
    """The Continue button of an interstitial was followed: that is the MessageClick (unless the
    visitor already has one), tied to the page view it came from."""
    # The page view this button press came from: on a per-recipient link every fetcher shares
    # the contact's visitor key, so prefer a human view from the same IP and browser.
    page_view = conn.execute(
        "SELECT id FROM message_short_link_clicks WHERE link_id = ? AND visitor = ?"
        " ORDER BY is_bot, (ip IS ? AND user_agent IS ?) DESC, clicked_at DESC LIMIT 1",
        (link.id, visitor_key, ip, _clip(user_agent)),
    ).fetchone()
    click_id = page_view[0] if page_view else None
    return insert_message_click(
        conn,
        link,
        visitor_key,
        clock.now_text(),
        ip,
        user_agent,
        click_id,
        "confirm",
        "followed the Continue button",
        ip_anonymized,
    )
