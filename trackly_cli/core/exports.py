"""Raw exports: every click with its verdict, and one contact's journey."""

from __future__ import annotations

from trackly_cli.core import dialect, money, optouts, store
from trackly_cli.core.filters import Filters


def list_clicks(
    conn: store.Store,
    chosen: Filters,
    *,
    bots: bool | None = None,
    limit: int | None = None,
    newest: bool = False,
    before: tuple[str, int] | None = None,
):
    """Raw clicks (MessageShortLinkClicks) with the bot verdict and reasons, oldest first (or
    `newest` first, from the click `before` this (time, id) on: the API's pages); an iterator,
    so that a large export streams."""
    clauses, params = _click_filters(chosen, bots)
    order = "c.clicked_at DESC, c.id DESC" if newest else "c.clicked_at, c.id"
    if before is not None:
        clauses.append("(c.clicked_at < ? OR (c.clicked_at = ? AND c.id < ?))")
        params += [before[0], before[0], before[1]]
    sql = (
        "SELECT c.id, c.clicked_at, c.link_id, l.slot, c.message_id, ct.phone, o.name AS offer,"
        " k.name AS campaign, c.variant, c.method, c.ip, c.user_agent, c.referer,"
        " c.accept_language, c.is_bot, c.bot_reasons,"
        " EXISTS (SELECT 1 FROM message_clicks mc WHERE mc.click_id = c.id) AS message_click"
        " FROM message_short_link_clicks c"
        " JOIN short_links l ON l.id = c.link_id"
        " LEFT JOIN contacts ct ON ct.id = c.contact_id"
        " LEFT JOIN offers o ON o.id = c.offer_id"
        " LEFT JOIN campaigns k ON k.id = c.campaign_id"
        f" WHERE {' AND '.join(clauses)} ORDER BY {order}"
    )
    if limit:
        sql += " LIMIT ?"
        params.append(limit)
    cursor = dialect.stream(conn, sql, tuple(params))
    try:
        names = [d[0] for d in cursor.description]
        for row in cursor:
            item = dict(zip(names, row, strict=True))
            item["is_bot"] = bool(item["is_bot"])
            item["message_click"] = bool(item["message_click"])
            yield item
    finally:
        cursor.close()


def count_clicks(conn: store.Store, chosen: Filters, *, bots: bool | None = None) -> int:
    """How many raw clicks `list_clicks` selects without a limit."""
    clauses, params = _click_filters(chosen, bots)
    return store.scalar(
        conn,
        "SELECT count(*) FROM message_short_link_clicks c"
        " JOIN short_links l ON l.id = c.link_id"
        f" WHERE {' AND '.join(clauses)}",
        tuple(params),
    )


def _click_filters(chosen: Filters, bots: bool | None) -> tuple[list[str], list]:
    clauses, params = chosen.where("c.", "clicked_at")
    if bots is not None:
        clauses.append("c.is_bot = ?")
        params.append(int(bots))
    return clauses, params


def journey(conn: store.Store, contact: dict) -> dict:
    """A contact's lists, messages, clicks, conversions and revenue."""
    lists = [
        r[0]
        for r in conn.execute(
            "SELECT l.name FROM list_members m JOIN lists l ON l.id = m.list_id"
            " WHERE m.contact_id = ? ORDER BY l.name",
            (contact["id"],),
        )
    ]
    messages = store.rows(
        conn,
        "SELECT m.id AS message_id, m.created_at AS sent_at, k.name AS campaign, m.variant,"
        " m.body AS text, m.delivery_status AS delivery, m.delivery_at,"
        " (SELECT coalesce(sum(r.clicks), 0) FROM message_rollups r"
        "  WHERE r.message_id = m.id) AS clicks,"
        " (SELECT coalesce(sum(r.bot_clicks), 0) FROM message_rollups r"
        "  WHERE r.message_id = m.id) AS bot_clicks,"
        " (SELECT min(mc.clicked_at) FROM message_clicks mc WHERE mc.message_id = m.id)"
        "  AS first_click_at,"
        " (SELECT count(*) FROM conversions cv WHERE cv.message_id = m.id"
        "  AND cv.is_reversal = 0) AS conversions,"
        " (SELECT coalesce(sum(cv.revenue_micros), 0) FROM conversions cv"
        "  WHERE cv.message_id = m.id) AS revenue_micros"
        " FROM messages m LEFT JOIN campaigns k ON k.id = m.campaign_id"
        " WHERE m.contact_id = ? AND (k.id IS NULL OR k.building_pid IS NULL)"  # complete
        " ORDER BY m.id",
        (contact["id"],),
    )
    conversions = store.rows(
        conn,
        "SELECT cv.id, cv.converted_at, cv.event, cv.revenue_micros, cv.txn_id, o.name AS offer,"
        " cv.attribution FROM conversions cv LEFT JOIN offers o ON o.id = cv.offer_id"
        " WHERE cv.contact_id = ? ORDER BY cv.converted_at, cv.id",
        (contact["id"],),
    )
    revenue = sum(c["revenue_micros"] for c in conversions)
    for item in messages + conversions:
        item["revenue"] = money.format_amount(item.pop("revenue_micros"))
    return {
        "id": contact["id"],
        "phone": contact["phone"],
        "fields": contact["fields"],
        "lists": lists,
        # {keyword, opted_out_at, source} when the number is on the account's opt-out list
        "opted_out": optouts.find(conn, contact["account_id"], contact["phone"]),
        "messages": messages,
        "clicks": sum(m["clicks"] for m in messages),
        "bot_clicks": sum(m["bot_clicks"] for m in messages),
        "unique_clicks": sum(1 for m in messages if m["first_click_at"]),
        "conversions": conversions,
        "revenue": money.format_amount(revenue),
    }
