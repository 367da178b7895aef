"""What the dashboard shows beside the reports: the newest clicks and conversions, a campaign's
links and offers, and its bots' most frequent reasons. (Every figure of a report table comes
from core.reports; these are listings of rows, not counts of them.)"""

from __future__ import annotations

from trackly_cli.core import money, store

LIVE_LIMIT = 50


def recent_clicks(
    conn: store.Store, account_id: int, *, after: int = 0, limit: int = LIVE_LIMIT
) -> list[dict]:
    """The account's newest raw clicks (after the click id `after`), newest first."""
    found = store.rows(
        conn,
        "SELECT c.id, c.clicked_at, c.link_id, k.name AS campaign, c.campaign_id,"
        " o.name AS offer, ct.phone, c.contact_id, c.ip, c.user_agent, c.referer, c.is_bot,"
        " c.bot_reasons FROM message_short_link_clicks c"
        " LEFT JOIN campaigns k ON k.id = c.campaign_id"
        " LEFT JOIN offers o ON o.id = c.offer_id"
        " LEFT JOIN contacts ct ON ct.id = c.contact_id"
        " WHERE c.account_id = ? AND c.id > ? ORDER BY c.id DESC LIMIT ?",
        (account_id, after, limit),
    )
    for item in found:
        item["is_bot"] = bool(item["is_bot"])
    return found


def recent_conversions(
    conn: store.Store, account_id: int, *, after: int = 0, limit: int = LIVE_LIMIT
) -> list[dict]:
    """The account's newest conversions (after the conversion id `after`), newest first."""
    found = store.rows(
        conn,
        "SELECT cv.id, cv.converted_at, cv.link_id, k.name AS campaign, cv.campaign_id,"
        " o.name AS offer, ct.phone, cv.contact_id, cv.event, cv.revenue_micros,"
        " cv.attribution, cv.ip FROM conversions cv"
        " LEFT JOIN campaigns k ON k.id = cv.campaign_id"
        " LEFT JOIN offers o ON o.id = cv.offer_id"
        " LEFT JOIN contacts ct ON ct.id = cv.contact_id"
        " WHERE cv.account_id = ? AND cv.id > ? ORDER BY cv.id DESC LIMIT ?",
        (account_id, after, limit),
    )
    for item in found:
        item["revenue"] = money.format_amount(item.pop("revenue_micros"))
    return found


def campaign_links(conn: store.Store, campaign_id: int) -> list[dict]:
    """A campaign's link slots: the offer (or plain URL) each carries, and how many links."""
    return store.rows(
        conn,
        "SELECT l.slot, o.name AS offer, l.offer_id, coalesce(o.url, min(l.url)) AS destination,"
        " count(*) AS links FROM short_links l JOIN messages m ON m.id = l.message_id"
        " LEFT JOIN offers o ON o.id = l.offer_id WHERE m.campaign_id = ?"
        " GROUP BY l.slot, l.offer_id, o.name, o.url ORDER BY l.slot, o.name",
        (campaign_id,),
    )


def bot_reasons(conn: store.Store, campaign_id: int, limit: int = 10) -> list[dict]:
    """The reasons the campaign's bot clicks were flagged for, the most frequent first (raw
    clicks: what `trackly prune` removed is not counted)."""
    return store.rows(
        conn,
        "SELECT bot_reasons AS reasons, count(*) AS clicks FROM message_short_link_clicks"
        " WHERE campaign_id = ? AND is_bot = 1 GROUP BY bot_reasons"
        " ORDER BY count(*) DESC, bot_reasons LIMIT ?",
        (campaign_id, limit),
    )
