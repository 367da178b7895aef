"""Reports: sent, raw / bot / unique clicks, conversions, revenue and payout by campaign,
message, offer, creative, list, variant, day or domain.

Everything but `--by message` reads the 15-minute counters in report_rollups, which triggers keep
as clicks, MessageClicks and conversions are written: a report never scans raw clicks, so it is
fast at any scale and unchanged when `trackly prune` deletes old raw clicks. Each figure counts
what happened in the time range: messages by when they were made, clicks by when they came,
conversions by when they converted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from trackly_cli.core import clock, money, store
from trackly_cli.core.errors import InvalidInput
from trackly_cli.core.filters import Filters

DIMENSIONS = ("campaign", "message", "offer", "creative", "list", "variant", "day", "domain")
COLUMNS = [
    "sent",
    "delivered",
    "undelivered",
    "clicks",
    "bot_clicks",
    "bot_pct",
    "unique_clicks",
    "click_rate",
    "conversions",
    "converting_clicks",
    "conversion_rate",
    "revenue",
    "payout",
    "epc",
    "unattributed_conversions",
    "unattributed_revenue",
]
COUNTS = (
    "sent",
    "delivered",
    "undelivered",
    "clicks",
    "bot_clicks",
    "unique_clicks",
    "conversions",
    "converting_clicks",
    "unattributed_conversions",
)
BUCKET = timedelta(minutes=15)

# Dimension -> (rollup column(s) grouped on, SQL naming a group)
_GROUPS = {
    "campaign": ("campaign_id", "SELECT name FROM campaigns WHERE id = ?", "(one-off)"),
    "offer": ("offer_id", "SELECT name FROM offers WHERE id = ?", "(plain URL)"),
    "creative": ("creative_id", "SELECT name FROM creatives WHERE id = ?", "(none)"),
    "list": ("list_id", "SELECT name FROM lists WHERE id = ?", "(no list)"),
    "domain": ("domain_id", "SELECT hostname FROM domains WHERE id = ?", "(none)"),
}


@dataclass
class Report:
    by: str
    key: str  # the name of the grouping column in the rows
    rows: list[dict]
    totals: dict


def percent(part: int, whole: int) -> Decimal | None:
    """part / whole as a percentage with two exact decimals, or None when whole is 0."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _money(micros: int) -> str:
    return money.format_amount(micros)


def epc(revenue_micros: int, unique_clicks: int) -> str | None:
    """Earnings per (unique) click: revenue ÷ unique clicks, exact to the micro."""
    if not unique_clicks:
        return None
    return _money(int(Decimal(revenue_micros) / unique_clicks))


def finish(row: dict) -> dict:
    """Add the derived columns to a row of counts (and micros): rates, money, EPC."""
    revenue, payout = row.pop("revenue_micros"), row.pop("payout_micros")
    unattributed = row.pop("unattributed_revenue_micros")
    result = {k: v for k, v in row.items() if k not in COLUMNS}
    result |= {
        "sent": row["sent"],
        "delivered": row["delivered"],
        "undelivered": row["undelivered"],
        "clicks": row["clicks"],
        "bot_clicks": row["bot_clicks"],
        "bot_pct": percent(row["bot_clicks"], row["clicks"]),
        "unique_clicks": row["unique_clicks"],
        "click_rate": percent(row["unique_clicks"], row["sent"]),
        "conversions": row["conversions"],
        "converting_clicks": row["converting_clicks"],
        "conversion_rate": percent(row["converting_clicks"], row["unique_clicks"]),
        "revenue": _money(revenue),
        "payout": _money(payout),
        "epc": epc(revenue, row["unique_clicks"]),
        "unattributed_conversions": row["unattributed_conversions"],
        "unattributed_revenue": _money(unattributed),
    }
    return result


def _bucket_range(chosen: Filters) -> tuple[list[str], list[str]]:
    clauses, params = [], []
    for moment, op, name in ((chosen.since, ">=", "--since"), (chosen.until, "<", "--until")):
        if moment is None:
            continue
        utc = moment.astimezone(clock.UTC)
        if utc.minute % 15 or utc.second or utc.microsecond:
            raise InvalidInput(
                f"{name} {moment.isoformat()} is not on a quarter hour: reports count in"
                " 15-minute steps (use a date, or a time such as 14:00 or 14:15)"
            )
        clauses.append(f"bucket_at {op} ?")
        params.append(clock.bucket_of(clock.to_text(utc)))
    return clauses, params


def _where(chosen: Filters) -> tuple[str, list]:
    clauses, params = chosen.where()
    more, more_params = _bucket_range(chosen)
    return " AND ".join(clauses + more), params + more_params


def _sums(sent: str) -> str:
    """The sums of a report's counters; `sent` is `sent` or `offer_sent` (messages that
    carried the offer), and the delivery counts follow it."""
    of = "offer_" if sent == "offer_sent" else ""
    return (
        f"sum({sent}) AS sent, sum({of}delivered) AS delivered,"
        f" sum({of}undelivered) AS undelivered, sum(clicks) AS clicks,"
        " sum(bot_clicks) AS bot_clicks,"
        " sum(unique_clicks) AS unique_clicks, sum(conversions) AS conversions,"
        " sum(converting_clicks) AS converting_clicks,"
        " sum(revenue_micros) AS revenue_micros, sum(payout_micros) AS payout_micros,"
        " sum(unattributed_conversions) AS unattributed_conversions,"
        " sum(unattributed_revenue_micros) AS unattributed_revenue_micros"
    )


def _nonzero(row: dict) -> bool:
    return any(
        row[k] for k in (*COUNTS, "revenue_micros", "payout_micros", "unattributed_revenue_micros")
    )


def columns(by: str) -> list[str]:
    """The keys of a report's rows, in order."""
    labels = {
        "day": ["day"],
        "variant": ["campaign", "variant"],
        "message": ["message_id", "phone", "campaign", "variant"],
    }.get(by, [by, f"{by}_id"])
    return labels + COLUMNS


def report(
    conn: store.Store, chosen: Filters, by: str = "campaign", limit: int | None = None
) -> Report:
    if by not in DIMENSIONS:
        raise InvalidInput(f"--by must be one of {', '.join(DIMENSIONS)}")
    if by == "message":
        return _by_message(conn, chosen, limit)
    where, params = _where(chosen)
    # A message carrying several offers counts once in `sent`, and once per offer in
    # `offer_sent`: reports by or for an offer use the latter.
    sent = "offer_sent" if by == "offer" or chosen.offer is not None else "sent"
    totals = store.row(
        conn,
        f"SELECT {_sums('offer_sent' if chosen.offer else 'sent')} FROM report_rollups"
        f" WHERE {where}",
        tuple(params),
    )
    totals = {k: v or 0 for k, v in totals.items()}
    if by == "day":
        rows = _by_day(conn, chosen, where, params, sent)
        key = "day"
    elif by == "variant":
        found = store.rows(
            conn,
            f"SELECT campaign_id, variant, {_sums(sent)} FROM report_rollups"
            f" WHERE {where} GROUP BY campaign_id, variant"
            " ORDER BY campaign_id, variant",
            tuple(params),
        )
        names = _names(conn, "campaign", {r["campaign_id"] for r in found})
        rows = [
            {"campaign": names[r.pop("campaign_id")], "variant": r.pop("variant") or "-"} | r
            for r in found
            if _nonzero(r)
        ]
        key = "variant"
    else:
        column = _GROUPS[by][0]
        found = store.rows(
            conn,
            f"SELECT {column} AS id, {_sums(sent)} FROM report_rollups"
            f" WHERE {where} GROUP BY {column} ORDER BY {column}",
            tuple(params),
        )
        names = _names(conn, by, {r["id"] for r in found})
        rows = [
            {by: names[r["id"]], f"{by}_id": r["id"] or None}
            | {k: v for k, v in r.items() if k != "id"}
            for r in found
            if _nonzero(r)
        ]
        key = by
    if limit:
        rows = rows[:limit]
    return Report(by, key, [finish(r) for r in rows], finish(dict(totals)))


def _names(conn: store.Store, by: str, ids: set[int]) -> dict[int, str]:
    _, sql, none = _GROUPS[by]
    names = {}
    for item in ids:
        found = store.scalar(conn, sql, (item,)) if item else None
        if found is None and item:  # (its rows keep their counts: `list delete --force`)
            found = f"(deleted {by} {item})"
        names[item] = found if found is not None else none
    return names


def _by_day(conn: store.Store, chosen: Filters, where: str, params: list, sent: str) -> list[dict]:
    found = store.rows(
        conn,
        f"SELECT bucket_at, {_sums(sent)} FROM report_rollups"
        f" WHERE {where} GROUP BY bucket_at ORDER BY bucket_at",
        tuple(params),
    )
    zone = chosen.tz or clock.UTC

    def day_of(moment: str) -> str:
        return clock.from_text(moment).astimezone(zone).date().isoformat()

    days: dict[str, dict] = {}
    for row in found:
        label = day_of(row.pop("bucket_at"))
        if label not in days:
            days[label] = {"day": label} | {k: 0 for k in row}
        for k, v in row.items():
            days[label][k] += v or 0
    return [r for r in days.values() if _nonzero(r)]


def _by_message(conn: store.Store, chosen: Filters, limit: int | None) -> Report:
    if chosen.campaign is None and not limit:
        raise InvalidInput("--by message needs --campaign NAME (or --limit N)")
    bucket_clauses, bucket_params = _bucket_range(chosen)
    since, until = chosen.since_text, chosen.until_text
    clauses, params = ["m.account_id = ?"], [chosen.account["id"]]
    if chosen.campaign:
        clauses.append("m.campaign_id = ?")
        params.append(chosen.campaign["id"])
    if chosen.sending_list:
        clauses.append("m.list_id = ?")
        params.append(chosen.sending_list["id"])
    if chosen.offer:
        clauses.append(
            "EXISTS (SELECT 1 FROM short_links l WHERE l.message_id = m.id AND l.offer_id = ?)"
        )
        params.append(chosen.offer["id"])
    r_time = "".join(f" AND r.{c}" for c in bucket_clauses)
    mc_time, conv_time, sent_time = [], [], []
    for value, op in ((since, ">="), (until, "<")):
        if value:
            mc_time.append(f" AND mc.clicked_at {op} ?")
            conv_time.append(f" AND cv.converted_at {op} ?")
            sent_time.append(f"m.created_at {op} ?")
    offer_clause = " AND mc.offer_id = ?" if chosen.offer else ""
    conv_offer = " AND cv.offer_id = ?" if chosen.offer else ""
    time_params = [v for v in (since, until) if v]
    offer_param = [chosen.offer["id"]] if chosen.offer else []
    if chosen.offer:
        r_time += " AND r.offer_id = ?"
    r_params = bucket_params + offer_param
    sql = f"""
    SELECT m.id AS message_id, c.phone, k.name AS campaign, m.variant,
        {_flag(sent_time)} AS sent,
        {_flag(["m.delivery_status = 'delivered'", *sent_time])} AS delivered,
        {_flag(["m.delivery_status = 'failed'", *sent_time])} AS undelivered,
        coalesce((SELECT sum(r.clicks) FROM message_rollups r WHERE r.message_id = m.id{r_time}), 0)
            AS clicks,
        coalesce((SELECT sum(r.bot_clicks) FROM message_rollups r
                  WHERE r.message_id = m.id{r_time}), 0) AS bot_clicks,
        (SELECT count(*) FROM message_clicks mc WHERE mc.message_id = m.id
            {"".join(mc_time)}{offer_clause}) AS unique_clicks,
        (SELECT count(*) FROM conversions cv WHERE cv.message_id = m.id
            AND cv.attribution = 'attributed' AND cv.is_reversal = 0
            {"".join(conv_time)}{conv_offer}) AS conversions,
        (SELECT count(DISTINCT cv.message_click_id) FROM conversions cv
            WHERE cv.message_id = m.id AND cv.attribution = 'attributed' AND cv.is_reversal = 0
            {"".join(conv_time)}{conv_offer}) AS converting_clicks,
        coalesce((SELECT sum(cv.revenue_micros) FROM conversions cv WHERE cv.message_id = m.id
            AND cv.attribution = 'attributed'{"".join(conv_time)}{conv_offer}), 0)
            AS revenue_micros,
        coalesce((SELECT sum(cv.payout_micros) FROM conversions cv WHERE cv.message_id = m.id
            AND cv.attribution = 'attributed'{"".join(conv_time)}{conv_offer}), 0)
            AS payout_micros,
        (SELECT count(*) FROM conversions cv WHERE cv.message_id = m.id
            AND cv.attribution <> 'attributed' AND cv.is_reversal = 0
            {"".join(conv_time)}{conv_offer}) AS unattributed_conversions,
        coalesce((SELECT sum(cv.revenue_micros) FROM conversions cv WHERE cv.message_id = m.id
            AND cv.attribution <> 'attributed'{"".join(conv_time)}{conv_offer}), 0)
            AS unattributed_revenue_micros
    FROM messages m
    LEFT JOIN contacts c ON c.id = m.contact_id
    LEFT JOIN campaigns k ON k.id = m.campaign_id
    WHERE (k.id IS NULL OR k.building_pid IS NULL) AND {" AND ".join(clauses)}
    ORDER BY m.id
    """
    query_params = (
        time_params * 3
        + r_params
        + r_params
        + time_params
        + offer_param
        + (time_params + offer_param) * 6
        + params
    )
    found = [r for r in store.rows(conn, sql, tuple(query_params)) if _nonzero(r)]
    if limit:
        found = found[:limit]
    totals = {
        k: sum(r[k] for r in found)
        for k in (*COUNTS, "revenue_micros", "payout_micros", "unattributed_revenue_micros")
    }
    return Report("message", "message_id", [finish(r) for r in found], finish(totals))


def _flag(conditions: list[str]) -> str:
    """SQL for 1 where all the conditions hold, else 0 (also where one is NULL): a comparison
    is a boolean in PostgreSQL, where SQLite gives 0 or 1."""
    if not conditions:
        return "1"
    return f"(CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END)"


def sparkline(values: list[int], width: int = 24) -> list[str]:
    """One bar per value, scaled to the largest: '████████▍'."""
    blocks = " ▏▎▍▌▋▊▉█"
    top = max(values, default=0)
    bars = []
    for value in values:
        eighths = round(value * width * 8 / top) if top else 0
        full, part = divmod(eighths, 8)
        bars.append("█" * full + (blocks[part] if part else ""))
    return bars


def day_range_label(chosen: Filters) -> str:
    def show(moment: datetime | None) -> str:
        return moment.isoformat(timespec="minutes") if moment else "…"

    return f"{show(chosen.since)} – {show(chosen.until)}"


def timeline(conn: store.Store, chosen: Filters, step: str = "day") -> list[dict]:
    """Clicks (bots and people apart) and revenue per hour or day (`step`), from the same
    counters as the reports: the dashboard's chart. Steps without any are left out."""
    if step not in ("hour", "day"):
        raise InvalidInput("step must be hour or day")
    where, params = _where(chosen)
    found = store.rows(
        conn,
        "SELECT bucket_at, sum(clicks) AS clicks, sum(bot_clicks) AS bot_clicks,"
        " sum(revenue_micros) AS revenue_micros FROM report_rollups"
        f" WHERE {where} GROUP BY bucket_at ORDER BY bucket_at",
        tuple(params),
    )
    zone = chosen.tz or clock.UTC
    steps: dict[str, dict] = {}
    for row in found:
        moment = clock.from_text(row["bucket_at"]).astimezone(zone)
        label = moment.strftime("%Y-%m-%d %H:00") if step == "hour" else moment.date().isoformat()
        item = steps.setdefault(label, {"at": label, "clicks": 0, "bot_clicks": 0, "micros": 0})
        item["clicks"] += int(row["clicks"] or 0)
        item["bot_clicks"] += int(row["bot_clicks"] or 0)
        item["micros"] += int(row["revenue_micros"] or 0)
    return [
        {
            "at": s["at"],
            "clicks": s["clicks"],
            "human_clicks": s["clicks"] - s["bot_clicks"],
            "bot_clicks": s["bot_clicks"],
            "revenue": _money(s["micros"]),
        }
        for s in steps.values()
        if s["clicks"] or s["micros"]
    ]
