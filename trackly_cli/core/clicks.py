"""Clicks: what a short link resolves to, where it sends people, and how a hit is recorded.

Every hit becomes a MessageShortLinkClick. The first non-bot click per message and visitor
becomes the MessageClick, through the unique constraint on (message_id, visitor), so that any
number of concurrent clicks make exactly one.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote

from trackly_cli.core import clock, dialect, links, store

# A stored user agent, referer or Accept-Language keeps this many characters (headers_cut says
# one was longer). The click journal keeps one more, so that the drain knows.
MAX_STORED_HEADER = 512


class LinkInfo(NamedTuple):
    """A short link with what a click needs of its message. Immutable once created (a named
    tuple: the redirect server makes one per request, and a tuple is the cheapest to make)."""

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


# The message's creation as epoch seconds, to the microsecond (as clock.from_text reads it),
# computed in SQL so that the server's link index need not parse a timestamp per link; per
# dialect.
SENT_AT_SQL = {name: dialect.epoch(name, "m.created_at") for name in dialect.NAMES}

_LINK_SQL = {
    name: f"""
SELECT l.id, l.account_id, l.message_id, l.contact_id, l.offer_id, l.url, l.domain_id,
       m.campaign_id, coalesce(c.name, ''), m.creative_id, m.list_id, m.variant, {sent_at}
FROM short_links l
JOIN messages m ON m.id = l.message_id
LEFT JOIN campaigns c ON c.id = m.campaign_id
WHERE l.id = ?
"""
    for name, sent_at in SENT_AT_SQL.items()
}


def load_link(conn: store.Store, link_id: str) -> LinkInfo | None:
    if not links.VALID_ID.match(link_id):
        return None
    found = conn.execute(_LINK_SQL[conn.dialect], (link_id,)).fetchone()
    return None if found is None else LinkInfo(*found)


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
    require_secret: bool = False
    max_revenue_micros: int | None = None
    link_conversions_per_hour: int = 20


@dataclass(frozen=True, slots=True)
class ListInfo:
    id: int
    bot_filter: str
    min_human_seconds: float
    title: str | None
    description: str | None
    cta: str | None
    meta: dict


def _offer_info(r: dict) -> OfferInfo:
    return OfferInfo(
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
        bool(r.get("require_secret", 0)),
        r.get("max_revenue_micros"),
        r.get("link_conversions_per_hour", 20),
    )


def load_offers(conn: store.Store) -> dict[int, OfferInfo]:
    return {r["id"]: _offer_info(r) for r in store.rows(conn, "SELECT * FROM offers")}


def load_offer(conn: store.Store, offer_id: int) -> OfferInfo | None:
    found = store.row(conn, "SELECT * FROM offers WHERE id = ?", (offer_id,))
    return None if found is None else _offer_info(found)


def load_lists(conn: store.Store) -> dict[int, ListInfo]:
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


MACROS = ("{link_id}", "{message_id}", "{contact_id}", "{offer_id}", "{campaign}")


@functools.lru_cache(maxsize=4096)
def _macros_in(url: str) -> tuple[str, ...]:
    """The macros an offer's URL holds (once per URL: every click of the offer asks)."""
    return tuple(m for m in MACROS if m in url)


def destination(link: LinkInfo, offer: OfferInfo | None) -> str:
    """Where the link sends people: the stored URL, with the offer's macros filled in and
    URL-encoded."""
    if offer is None:
        return link.url or ""
    url = offer.url
    if "{" not in url:
        return url
    for macro in _macros_in(url):
        # (ids are letters and digits, which need no encoding; a campaign's name may)
        if macro == "{link_id}":
            value = link.id
        elif macro == "{message_id}":
            value = str(link.message_id)
        elif macro == "{contact_id}":
            value = "" if link.contact_id is None else str(link.contact_id)
        elif macro == "{offer_id}":
            value = str(offer.id)
        else:
            value = quote(link.campaign, safe="")
        url = url.replace(macro, value)
    return url


# The visitor key of a raw click whose contact was erased (`trackly contacts erase`); each of
# their MessageClicks becomes "erased:<its id>".
ERASED_VISITOR = "erased"


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


# Beyond this many hits on one link in a minute, a server stores a hit without its user agent,
# referer and Accept-Language, flagged as a bot (see HeaderBudget).
FULL_HITS_PER_LINK_MINUTE = 30


class HeaderBudget:
    """How many hits on each link, per minute, are stored with their headers.

    A link is one recipient's: a person taps it a few times. One client repeating it with
    long headers would otherwise add about 2 kB a hit to the database (#15 measured 5.6 GB an
    hour before headers were capped). Beyond the budget the hit is still stored, so counts stay
    exact, but flagged as a bot, with its reason, and without the three headers. In memory, per
    server; windows of a minute from the first hit after the last one ended, each forgotten as
    a whole (a few bytes per link hit within the minute)."""

    def __init__(self, per_minute: int = FULL_HITS_PER_LINK_MINUTE) -> None:
        self.per_minute = per_minute
        self.reason = f"over {per_minute} hits a minute on one link (headers not stored)"
        self._started = float("-inf")
        self._counts: dict[str, int] = {}

    def spend(self, link_id: str, now: float) -> bool:
        """Count a hit; True while the link is within its budget."""
        if now - self._started >= 60.0:
            self._counts, self._started = {}, now
        count = self._counts.get(link_id, 0) + 1
        self._counts[link_id] = count
        return count <= self.per_minute


class Click(NamedTuple):
    """A hit, as the server hands it to the writer."""

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


_INSERT_MESSAGE_CLICK = """
INSERT INTO message_clicks (
    message_id, visitor, contact_id, link_id, offer_id, account_id, campaign_id, creative_id,
    list_id, variant, domain_id, click_id, clicked_at, ip, user_agent, source, reason,
    created_at, ip_anonymized_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (message_id, visitor) DO NOTHING
RETURNING id
"""

# Hits are stored through a temporary view of this connection: an INSTEAD OF trigger writes
# each row as a MessageShortLinkClick and, when it counts and is no bot, as the MessageClick
# (unless its message and visitor have one). So a whole batch is one multi-row INSERT: one
# statement, one transaction, and one release of the GIL by the thread that runs it, instead
# of two per click. Two columns are not stored as such: `counts` (0 in confirm mode) and
# `created_at`, the MessageClick's.
CLICK_INPUT_COLUMNS = (
    "id",
    "clicked_at",
    "link_id",
    "message_id",
    "contact_id",
    "offer_id",
    "account_id",
    "campaign_id",
    "creative_id",
    "list_id",
    "variant",
    "domain_id",
    "method",
    "ip",
    "user_agent",
    "referer",
    "accept_language",
    "visitor",
    "is_bot",
    "bot_reasons",
    "ip_anonymized_at",
    "headers_cut",
    "counts",
    "created_at",
)
_STORED = ", ".join(CLICK_INPUT_COLUMNS[:-2])
_NEW_STORED = ", ".join(f"NEW.{c}" for c in CLICK_INPUT_COLUMNS[:-2])
CLICK_INPUT_DDL = (
    f"CREATE TEMP VIEW IF NOT EXISTS click_input ({', '.join(CLICK_INPUT_COLUMNS)})"
    f" AS SELECT {', '.join(['NULL'] * len(CLICK_INPUT_COLUMNS))}",
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS click_input_insert INSTEAD OF INSERT ON click_input
BEGIN
    INSERT INTO message_short_link_clicks ({_STORED}) VALUES ({_NEW_STORED});
    INSERT INTO message_clicks (
        message_id, visitor, contact_id, link_id, offer_id, account_id, campaign_id, creative_id,
        list_id, variant, domain_id, click_id, clicked_at, ip, user_agent, source, reason,
        created_at, ip_anonymized_at)
    SELECT NEW.message_id, NEW.visitor, NEW.contact_id, NEW.link_id, NEW.offer_id,
           NEW.account_id, NEW.campaign_id, NEW.creative_id, NEW.list_id, NEW.variant,
           NEW.domain_id, NEW.id, NEW.clicked_at, NEW.ip, NEW.user_agent, 'click', NULL,
           NEW.created_at, NEW.ip_anonymized_at
    WHERE NEW.counts AND NEW.is_bot = 0
    ON CONFLICT (message_id, visitor) DO NOTHING;
END
""",
)
# Statements are compiled once per row count; larger batches go in several. 40 rows of 24
# values stay under 999, the parameter limit of SQLite before 3.32.
MAX_CLICKS_PER_STATEMENT = 40


def prepare_click_input(conn: store.Store) -> None:
    """Create this connection's click_input view (see record_many; SQLite's alone)."""
    if conn.dialect != dialect.SQLITE:
        return
    for statement in CLICK_INPUT_DDL:
        conn.execute(statement)


@functools.lru_cache(maxsize=MAX_CLICKS_PER_STATEMENT)
def _insert_clicks_sql(count: int) -> str:
    row = "(" + ", ".join("?" * len(CLICK_INPUT_COLUMNS)) + ")"
    return "INSERT INTO click_input VALUES " + ", ".join([row] * count)


def _clip(value: str | None) -> str | None:
    return value if value is None or len(value) <= MAX_STORED_HEADER else value[:MAX_STORED_HEADER]


def record_many(conn: store.Store, batch: list[Click], first_id: int | None = None) -> int:
    """Store hits, numbered on from `first_id` (else from the largest id); each that is the first
    to count for its message and visitor becomes the MessageClick. Returns the id the next
    click will get.

    The connection needs prepare_click_input(). Up to MAX_CLICKS_PER_STATEMENT hits are one
    statement, which is a transaction of its own outside one; larger batches need the caller's
    transaction to be all or nothing. Should another process have written clicks since
    `first_id` was known, the primary key refuses the batch and the caller retries without it.
    """
    if conn.dialect != dialect.SQLITE:
        _record_many_elsewhere(conn, batch)
        return None
    first = first_id or store.scalar(
        conn, "SELECT coalesce(max(id), 0) + 1 FROM message_short_link_clicks"
    )
    next_id = first
    now = clock.now_text()
    for start in range(0, len(batch), MAX_CLICKS_PER_STATEMENT):
        chunk = batch[start : start + MAX_CLICKS_PER_STATEMENT]
        values: list = []
        add = values.extend
        for c in chunk:
            add((next_id, *_stored(c), int(c.counts), now))
            next_id += 1
        conn.execute(_insert_clicks_sql(len(chunk)), values)
    return next_id


_STORED_CLICK = CLICK_INPUT_COLUMNS[1:-2]  # (without id, counts, created_at)
_MESSAGE_CLICK_FROM_CLICK = """
INSERT INTO message_clicks (
    message_id, visitor, contact_id, link_id, offer_id, account_id, campaign_id, creative_id,
    list_id, variant, domain_id, click_id, clicked_at, ip, user_agent, source, reason,
    created_at, ip_anonymized_at)
SELECT message_id, visitor, contact_id, link_id, offer_id, account_id, campaign_id, creative_id,
       list_id, variant, domain_id, id, clicked_at, ip, user_agent, 'click', NULL, ?,
       ip_anonymized_at
FROM message_short_link_clicks WHERE id = ?
ON CONFLICT (message_id, visitor) DO NOTHING
"""


@functools.lru_cache(maxsize=MAX_CLICKS_PER_STATEMENT)
def _insert_stored_clicks_sql(count: int) -> str:
    row = "(" + ", ".join("?" * len(_STORED_CLICK)) + ")"
    return (
        f"INSERT INTO message_short_link_clicks ({', '.join(_STORED_CLICK)}) VALUES "
        + ", ".join([row] * count)
        + " RETURNING id"
    )


def _record_many_elsewhere(conn: store.Store, batch: list[Click]) -> None:
    """record_many on PostgreSQL: several servers write there, so each click's id comes from
    the table's own sequence (RETURNING gives them in the order of the rows), and the hits that
    count become MessageClicks, in order, the first per message and visitor winning.

    The hits go in the order of their messages: every node's drain then locks the rows of a
    message (its message_rollups rows, its MessageClicks) in one order, so two drains storing
    hits of the same messages at once wait for each other in turn instead of deadlocking. The
    report counters need no order: each drain adds to rows of its own shard (migration 0008,
    dialect.claim_rollup_shard). (The sort is stable: a message's hits keep their order.)"""
    now = clock.now_text()
    batch = sorted(batch, key=_lock_order)
    for start in range(0, len(batch), MAX_CLICKS_PER_STATEMENT):
        chunk = batch[start : start + MAX_CLICKS_PER_STATEMENT]
        values = [value for c in chunk for value in _stored(c)]
        ids = [row[0] for row in conn.execute(_insert_stored_clicks_sql(len(chunk)), values)]
        counting = [(now, i) for c, i in zip(chunk, ids, strict=True) if c.counts and not c.is_bot]
        if counting:
            conn.executemany(_MESSAGE_CLICK_FROM_CLICK, counting)


def _lock_order(c: Click) -> tuple:
    """A hit's message_rollups key, in its primary key's order (message, bucket, offer)."""
    link = c.link
    return (link.message_id, clock.bucket_of(c.clicked_at), link.offer_id or 0)


def _stored(c: Click) -> tuple:
    """A hit's values as message_short_link_clicks stores them (_STORED_CLICK's columns, after
    its id): the headers clipped, and whether one of them was cut."""
    link = c.link
    user_agent, referer, language = c.user_agent, c.referer, c.accept_language
    cut = (
        (user_agent is not None and len(user_agent) > MAX_STORED_HEADER)
        or (referer is not None and len(referer) > MAX_STORED_HEADER)
        or (language is not None and len(language) > MAX_STORED_HEADER)
    )
    return (
        c.clicked_at,
        link.id,
        link.message_id,
        link.contact_id,
        *_report_keys(link),
        c.method,
        c.ip,
        _clip(user_agent),
        _clip(referer),
        _clip(language),
        c.visitor,
        int(c.is_bot),
        c.reasons,
        c.clicked_at if c.ip_anonymized else None,
        int(cut),
    )


def _report_keys(link: LinkInfo) -> tuple:
    """What a click row and a MessageClick copy from their link for the reports, in the
    tables' column order (offer_id … domain_id)."""
    return (
        link.offer_id,
        link.account_id,
        link.campaign_id,
        link.creative_id,
        link.list_id,
        link.variant,
        link.domain_id,
    )


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
        *_report_keys(link),
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
    conn: store.Store,
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
    return store.returned_id(cursor)


def confirm(
    conn: store.Store,
    link: LinkInfo,
    visitor_key: str,
    ip: str | None,
    user_agent: str,
    ip_anonymized: bool = False,
    at: str | None = None,
) -> int | None:
    """The Continue button of an interstitial was followed (at `at`, else now): that is the
    MessageClick (unless the visitor already has one), tied to the page view it came from."""
    # The page view this button press came from: on a per-recipient link every fetcher shares
    # the contact's visitor key, so prefer a human view from the same IP and browser.
    same = dialect.same(conn)  # (`IS ?` with a value is SQLite's alone)
    page_view = conn.execute(
        "SELECT id FROM message_short_link_clicks WHERE link_id = ? AND visitor = ?"
        f" ORDER BY is_bot, (ip {same} ? AND user_agent {same} ?) DESC, clicked_at DESC LIMIT 1",
        (link.id, visitor_key, ip, _clip(user_agent)),
    ).fetchone()
    click_id = page_view[0] if page_view else None
    return insert_message_click(
        conn,
        link,
        visitor_key,
        at or clock.now_text(),
        ip,
        user_agent,
        click_id,
        "confirm",
        "followed the Continue button",
        ip_anonymized,
    )
