"""Offers: a destination URL with its economics, interstitial page and postback secret."""

from __future__ import annotations

import json
import secrets

from trackly_cli.core import accounts, clock, lookup, money, paging, store, validate
from trackly_cli.core.errors import Conflict, InvalidInput

INTERSTITIAL_MODES = ("none", "custom", "list_default")
BOT_FILTERS = ("inherit", "off", "flag", "confirm")
DEFAULT_ATTRIBUTION_DAYS = 7
MAX_ATTRIBUTION_DAYS = 3650
DEFAULT_LINK_CONVERSIONS_PER_HOUR = 20


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 43 url-safe characters


def create(
    db: store.Store,
    account_ref: str | None,
    name: str,
    url: str,
    *,
    payout: str = "0",
    attribution_days: int = DEFAULT_ATTRIBUTION_DAYS,
    interstitial: str = "none",
    title: str | None = None,
    description: str | None = None,
    cta: str | None = None,
    meta: list[str] | None = None,
    bot_filter: str = "inherit",
    postback_ips: list[str] | None = None,
    require_secret: bool = False,
    max_revenue: str | None = None,
    link_conversions_per_hour: int = DEFAULT_LINK_CONVERSIONS_PER_HOUR,
) -> dict:
    name = validate.name(name, "offer")
    values = {
        "url": validate.destination_url(url),
        "payout_micros": money.parse_amount(payout, name="--payout"),
        "attribution_days": attribution_days,
        "interstitial": interstitial,
        "title": validate.text(title, "--title", 300),
        "description": validate.text(description, "--description"),
        "cta": validate.text(cta, "--cta", 100),
        "meta": json.dumps(validate.meta_pairs(meta)),
        "bot_filter": bot_filter,
        "postback_ips": json.dumps(_cidrs(postback_ips or [])),
        "require_secret": int(require_secret),
        "max_revenue_micros": _max_revenue(max_revenue),
        "link_conversions_per_hour": link_conversions_per_hour,
    }
    _check(values)
    now = clock.now_text()
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        if store.row(
            conn,
            "SELECT id FROM offers WHERE account_id = ? AND name_key = ?",
            (account["id"], validate.key(name)),
        ):
            raise Conflict(f"offer {name!r} already exists in account {account['name']!r}")
        values |= {
            "account_id": account["id"],
            "name": name,
            "name_key": validate.key(name),
            "postback_secret": new_secret(),
            "created_at": now,
            "updated_at": now,
        }
        offer_id = store.insert(db, "offers", values)
    return get(db, offer_id)


def update(
    db: store.Store,
    account_ref: str | None,
    ref: str,
    *,
    name: str | None = None,
    url: str | None = None,
    payout: str | None = None,
    attribution_days: int | None = None,
    interstitial: str | None = None,
    title: str | None = None,
    description: str | None = None,
    cta: str | None = None,
    meta: list[str] | None = None,
    bot_filter: str | None = None,
    postback_ips: list[str] | None = None,
    clear_postback_ips: bool = False,
    require_secret: bool | None = None,
    max_revenue: str | None = None,
    link_conversions_per_hour: int | None = None,
) -> dict:
    changes: dict = {}
    if require_secret is not None:
        changes["require_secret"] = int(require_secret)
    if max_revenue is not None:
        changes["max_revenue_micros"] = _max_revenue(max_revenue)
    if link_conversions_per_hour is not None:
        changes["link_conversions_per_hour"] = link_conversions_per_hour
    if url is not None:
        changes["url"] = validate.destination_url(url)
    if payout is not None:
        changes["payout_micros"] = money.parse_amount(payout, name="--payout")
    if attribution_days is not None:
        changes["attribution_days"] = attribution_days
    if interstitial is not None:
        changes["interstitial"] = interstitial
    for column, value, limit in (
        ("title", title, 300),
        ("description", description, 2000),
        ("cta", cta, 100),
    ):
        if value is not None:
            changes[column] = validate.text(value, f"--{column}", limit) or None
    if meta:
        changes["meta"] = json.dumps(validate.meta_pairs(meta))
    if bot_filter is not None:
        changes["bot_filter"] = bot_filter
    if postback_ips:
        changes["postback_ips"] = json.dumps(_cidrs(postback_ips))
    if clear_postback_ips:
        changes["postback_ips"] = "[]"
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        offer = lookup.find(conn, "offers", ref, account["id"])
        if name is not None:
            changes["name"] = validate.name(name, "offer")
            if store.row(
                conn,
                "SELECT id FROM offers WHERE account_id = ? AND name_key = ? AND id <> ?",
                (account["id"], validate.key(changes["name"]), offer["id"]),
            ):
                raise Conflict(f"offer {changes['name']!r} already exists")
            changes["name_key"] = validate.key(changes["name"])
        _check(offer | changes)
        if changes:
            changes["updated_at"] = clock.now_text()
            store.update(db, "offers", offer["id"], changes)
    return get(db, offer["id"])


def rotate_secret(db: store.Store, account_ref: str | None, ref: str) -> dict:
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        offer = lookup.find(conn, "offers", ref, account["id"])
        conn.execute(
            "UPDATE offers SET postback_secret = ?, updated_at = ? WHERE id = ?",
            (new_secret(), clock.now_text(), offer["id"]),
        )
    return get(db, offer["id"])


def _check(values: dict) -> None:
    if values["interstitial"] not in INTERSTITIAL_MODES:
        raise InvalidInput(f"--interstitial must be one of {', '.join(INTERSTITIAL_MODES)}")
    if values["bot_filter"] not in BOT_FILTERS:
        raise InvalidInput(f"--bot-filter must be one of {', '.join(BOT_FILTERS)}")
    if not 1 <= values["attribution_days"] <= MAX_ATTRIBUTION_DAYS:
        raise InvalidInput(f"--attribution-days must be between 1 and {MAX_ATTRIBUTION_DAYS:,}")
    if not 0 <= values.get("link_conversions_per_hour", 0) <= 1_000_000:
        raise InvalidInput("--link-conversions-per-hour must be between 0 (no limit) and 1,000,000")
    if values["interstitial"] == "custom" and not values.get("title"):
        raise InvalidInput("an offer with --interstitial custom needs a --title for its page")


def _max_revenue(text: str | None) -> int | None:
    """--max-revenue AMOUNT, or `none` for no maximum."""
    if text is None or text.strip().lower() == "none":
        return None
    return money.parse_amount(text, name="--max-revenue")


def _cidrs(values: list[str]) -> list[str]:
    return [str(validate.cidr(v)) for v in values]


_SELECT = """
SELECT o.*, a.name AS account,
       (SELECT d.scheme || '://' || d.hostname FROM domains d
        WHERE d.account_id = o.account_id AND d.is_default = 1) AS base_url
FROM offers o JOIN accounts a ON a.id = o.account_id
"""


def get(conn: store.Store, offer_id: int) -> dict:
    return present(store.row(conn, _SELECT + " WHERE o.id = ?", (offer_id,)))


def show(db: store.Store, account_ref: str | None, ref: str) -> dict:
    account = accounts.resolve(db, account_ref)
    return get(db, lookup.find(db, "offers", ref, account["id"])["id"])


def list_all(
    db: store.Store, account_ref: str | None, limit: int | None = None, archived: bool = False
) -> paging.Page:
    """The account's offers in use (and the archived ones too with `archived`)."""
    account = accounts.resolve(db, account_ref)
    where = " WHERE o.account_id = ?" + ("" if archived else " AND o.archived_at IS NULL")
    found = paging.fetch(db, _SELECT + where, "ORDER BY o.id", (account["id"],), limit)
    return paging.Page([present(o) for o in found.rows], found.total)


def archive(db: store.Store, account_ref: str | None, ref: str, archived: bool = True) -> dict:
    """Archive an offer (out of `offer list` and new messages; its links, postbacks and reports
    go on), or bring it back."""
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        offer = lookup.find(conn, "offers", ref, account["id"])
        if (offer["archived_at"] is not None) == archived:
            state = "archived" if archived else "in use"
            raise Conflict(f"offer {offer['name']!r} is {state} already")
        now = clock.now_text()
        conn.execute(
            "UPDATE offers SET archived_at = ?, updated_at = ? WHERE id = ?",
            (now if archived else None, now, offer["id"]),
        )
    return get(db, offer["id"])


def present(offer: dict) -> dict:
    """The offer as users and scripts see it: amounts as exact decimal text, JSON decoded."""
    base = offer.pop("base_url")
    result = {
        "id": offer["id"],
        "name": offer["name"],
        "account": offer["account"],
        "url": offer["url"],
        "payout": money.format_amount(offer["payout_micros"]),
        "attribution_days": offer["attribution_days"],
        "interstitial": offer["interstitial"],
        "title": offer["title"],
        "description": offer["description"],
        "cta": offer["cta"],
        "meta": json.loads(offer["meta"]),
        "bot_filter": offer["bot_filter"],
        "domain": base.split("://", 1)[1] if base else None,
        "archived_at": offer["archived_at"],
        "postback_secret": offer["postback_secret"],
        "postback_ips": json.loads(offer["postback_ips"]),
        "require_secret": bool(offer["require_secret"]),
        "max_revenue": money.format_amount(offer["max_revenue_micros"]),
        "link_conversions_per_hour": offer["link_conversions_per_hour"],
        "postback_url": (
            f"{base}/conv/offer?offer_id={offer['id']}&postback_secret={offer['postback_secret']}"
            "&txn_id={transaction_id}&revenue={amount}"
            if base
            else None
        ),
        "created_at": offer["created_at"],
        "updated_at": offer["updated_at"],
    }
    return result
