"""Conversions: postbacks, offer postbacks, pixels and imports, deduplicated by txn_id and
attributed to the first click.

A conversion is attributed to the MessageClick of its link's message and contact when it comes
within the offer's attribution window after that click; otherwise it is recorded as
unattributed (outside_window, no_click, or no_message for an offer postback without a
message). When the only clicks on the link were flagged as bots, a human evidently clicked:
the earliest of them is promoted to the MessageClick, with the reason recorded.
"""

from __future__ import annotations

import csv
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

from trackly_cli.core import accounts, clicks, clock, links, lookup, money, paging, store
from trackly_cli.core.clicks import LinkInfo, OfferInfo
from trackly_cli.core.contacts import CsvLines, csv_rows
from trackly_cli.core.errors import Forbidden, Interrupted, InvalidInput, NotFound, TooMany
from trackly_cli.core.filters import Filters

EVENTS = ("lead", "sale", "rebill", "refund", "chargeback", "install", "signup")
REVERSALS = frozenset({"refund", "chargeback"})
DEFAULT_EVENT = "sale"
SOURCES = ("conv", "conv_offer", "pixel", "import")
_EVENT = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_TXN_ID = 128
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_VALUE = 256
# A chunk of an import is sized to hold the write lock about this long.
CHUNK_SECONDS = 0.2

# The parameter names affiliate networks already use in their postback templates.
ALIASES: dict[str, tuple[str, ...]] = {
    "link_id": ("link_id", "click_id", "clickid", "cid", "subid"),
    "revenue": ("revenue", "amount"),
    "payout": ("payout",),
    "txn_id": ("txn_id", "txid", "tid", "order_id"),
    "event": ("event", "goal", "type"),
    "message_id": ("message_id",),
    "offer_id": ("offer_id",),
    "postback_secret": ("postback_secret",),
}


@dataclass(frozen=True)
class Postback:
    """A validated conversion report, before it is matched to a link or offer."""

    event: str
    revenue_micros: int | None
    payout_micros: int | None
    txn_id: str | None
    link_id: str | None = None
    message_id: int | None = None

    @property
    def is_reversal(self) -> bool:
        return self.event in REVERSALS


def canonical(params: Mapping[str, str]) -> dict[str, str]:
    """The parameters under their canonical names; a name given twice with different values
    (txid=A&txn_id=B) is an error."""
    result: dict[str, str] = {}
    given: dict[str, str] = {}
    for name, aliases in ALIASES.items():
        for alias in aliases:
            values = (
                params.getall(alias)
                if hasattr(params, "getall")
                else ([params[alias]] if alias in params else [])
            )
            for value in values:
                if len(value) > MAX_VALUE:
                    raise InvalidInput(f"{alias} is longer than {MAX_VALUE} characters")
                if name in result and result[name] != value:
                    raise InvalidInput(
                        f"{name} is given twice with different values ({given[name]}, {alias})"
                    )
                result[name] = value
                given[name] = alias
    return result


def parse(values: Mapping[str, str]) -> Postback:
    """Validate canonical postback values (see `canonical`)."""
    event = (values.get("event") or DEFAULT_EVENT).strip().lower()
    if not _EVENT.match(event):
        raise InvalidInput(
            f"event must be 1-32 characters of a-z, 0-9 and _ (such as {', '.join(EVENTS)})"
        )
    reversal = event in REVERSALS
    revenue = _amount(values.get("revenue"), "revenue", reversal)
    payout = _amount(values.get("payout"), "payout", reversal)
    txn_id = (values.get("txn_id") or "").strip() or None
    if txn_id is not None:
        if len(txn_id) > MAX_TXN_ID:
            raise InvalidInput(f"txn_id is longer than {MAX_TXN_ID} characters")
        if not txn_id.isprintable() or _BIDI.search(txn_id):
            # control, format (zero-width, U+202E right-to-left override…) and separator
            # characters: an id that displays as another, or breaks a line of a report
            raise InvalidInput("txn_id has control, invisible or bidirectional characters")
    link_id = (values.get("link_id") or "").strip() or None
    if link_id is not None and not links.VALID_ID.match(link_id):
        raise InvalidInput(f"link_id {link_id[:20]!r} is not a 7-character link id")
    message_id = None
    if values.get("message_id"):
        text = values["message_id"].strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise InvalidInput("message_id is not a number")
        message_id = int(text)
    return Postback(event, revenue, payout, txn_id, link_id, message_id)


def _amount(text: str | None, name: str, reversal: bool) -> int | None:
    if text is None or not text.strip():
        return None
    micros = money.parse_amount(text, name=name, allow_negative=reversal)
    return abs(micros)


def check_source_ip(offer: OfferInfo | None, ip: str | None) -> None:
    """Postbacks for an offer with an IP allowlist must come from it."""
    if offer is None or not offer.postback_ips:
        return
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        raise Forbidden("postbacks for this offer are only accepted from its allowed IPs") from None
    if not any(address in ipaddress.ip_network(cidr) for cidr in offer.postback_ips):
        raise Forbidden(f"postbacks for this offer are not accepted from {ip}")


def check_secret(offer: OfferInfo, given: str | None) -> None:
    """Compared in constant time; a missing secret is a wrong one."""
    if not hmac.compare_digest((given or "").encode(), offer.postback_secret.encode()):
        raise Forbidden("missing or wrong postback_secret")


class AboveMaximum(InvalidInput):
    """Revenue above the offer's maximum: refused (400) and logged."""


def check_rules(
    offer: OfferInfo | None, postback: Postback, source: str, secret: str | None = None
) -> None:
    """The offer's rules for a conversion from `source` (conv, conv_offer, pixel, import),
    checked before anything is recorded. (/conv/offer checks the secret itself, always.)"""
    if offer is None:
        return
    if source == "conv" and (offer.require_secret or postback.is_reversal):
        # A refund takes money back: only whoever holds the offer's secret may send one.
        check_secret(offer, secret)
    if source == "pixel" and offer.postback_ips:
        # A pixel loads in the buyer's browser, never from the network's servers.
        raise Forbidden(
            "this offer takes conversions only from its allowed postback IPs, and a pixel"
            " loads in a browser"
        )
    limit = offer.max_revenue_micros
    if limit is not None and (postback.revenue_micros or 0) > limit:
        raise AboveMaximum(
            f"revenue {money.format_amount(postback.revenue_micros)} is above the offer's"
            f" maximum of {money.format_amount(limit)} (offer update --max-revenue)"
        )


def _check_link_rate(conn: store.Store, link: LinkInfo | None, offer: OfferInfo | None) -> None:
    """At most the offer's link_conversions_per_hour on one link in an hour (a recipient's link
    is one buyer: more is someone replaying postbacks with new txn_ids)."""
    if link is None or offer is None or not offer.link_conversions_per_hour:
        return
    since = clock.to_text(clock.utcnow() - timedelta(hours=1))
    count = store.scalar(
        conn,
        "SELECT count(*) FROM conversions WHERE link_id = ? AND created_at > ?",
        (link.id, since),
    )
    if count >= offer.link_conversions_per_hour:
        raise TooMany(
            f"link {link.id} had {count} conversions within the hour, the offer's limit"
            " (offer update --link-conversions-per-hour)"
        )


@dataclass(frozen=True)
class Result:
    status: str  # recorded, duplicate, or pending (a reversal waiting for its sale)
    conversion_id: int | None
    attribution: str | None

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "conversion_id": self.conversion_id,
            "attribution": self.attribution,
        }


_INSERT = """
INSERT INTO conversions (
    account_id, offer_id, link_id, message_id, contact_id, campaign_id, creative_id, list_id,
    variant, domain_id, message_click_id, event, is_reversal, revenue_micros, payout_micros,
    txn_id, source, attribution, ip, converted_at, created_at, ip_anonymized_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
RETURNING id
"""


def record(
    conn: store.Store,
    *,
    account_id: int,
    postback: Postback,
    link: LinkInfo | None,
    offer: OfferInfo | None,
    source: str,
    ip: str | None,
    converted_at: str | None = None,
    promote: bool = True,
    ip_anonymized: bool = False,
) -> Result:
    """Record one conversion inside the caller's write transaction: recorded, or duplicate
    (the unique indexes decide, so concurrent identical postbacks make one row)."""
    converted_at = converted_at or clock.now_text()
    existing = _existing(conn, account_id, postback, link.id if link else None)
    if existing is not None:  # answered before anything is promoted or attributed
        return Result("duplicate", existing["id"], existing["attribution"])
    if not postback.is_reversal and source != "import":
        _check_link_rate(conn, link, offer)
    original = None
    if postback.is_reversal and postback.txn_id:
        original = store.row(
            conn,
            "SELECT * FROM conversions WHERE account_id = ? AND txn_id = ? AND is_reversal = 0",
            (account_id, postback.txn_id),
        )
        # Only a postback for the same offer (or link) may reverse a sale.
        if original is not None and (
            (offer is not None and original["offer_id"] != offer.id)
            or (offer is None and link is not None and original["link_id"] != link.id)
        ):
            raise Forbidden(f"txn_id {postback.txn_id} is a sale of another offer")
        if original is None:  # its sale has not arrived (yet): kept until it does
            return _hold(conn, account_id, postback, link, offer, source, ip, converted_at)
    if original is not None:
        # A refund of a known sale: it reverses that sale, wherever it came from.
        keys = {
            k: original[k]
            for k in (
                "offer_id",
                "link_id",
                "message_id",
                "contact_id",
                "campaign_id",
                "creative_id",
                "list_id",
                "variant",
                "domain_id",
                "message_click_id",
                "attribution",
            )
        }
        revenue = postback.revenue_micros
        payout = postback.payout_micros
        revenue = -(original["revenue_micros"] if revenue is None else revenue)
        payout = -(original["payout_micros"] if payout is None else payout)
    else:
        message_click_id, attribution = attribute(conn, link, offer, converted_at, promote=promote)
        keys = {
            "offer_id": offer.id if offer else None,
            "link_id": link.id if link else None,
            "message_id": link.message_id if link else postback.message_id,
            "contact_id": link.contact_id if link else None,
            "campaign_id": link.campaign_id if link else None,
            "creative_id": link.creative_id if link else None,
            "list_id": link.list_id if link else None,
            "variant": link.variant if link else None,
            "domain_id": link.domain_id if link else None,
            "message_click_id": message_click_id,
            "attribution": attribution,
        }
        revenue = postback.revenue_micros or 0
        payout = postback.payout_micros
        if payout is None:
            payout = offer.payout_micros if offer is not None and not postback.is_reversal else 0
        if postback.is_reversal:
            revenue, payout = -revenue, -payout
    cursor = conn.execute(
        _INSERT,
        (
            account_id,
            keys["offer_id"],
            keys["link_id"],
            keys["message_id"],
            keys["contact_id"],
            keys["campaign_id"],
            keys["creative_id"],
            keys["list_id"],
            keys["variant"],
            keys["domain_id"],
            keys["message_click_id"],
            postback.event,
            int(postback.is_reversal),
            revenue,
            payout,
            postback.txn_id,
            source,
            keys["attribution"],
            ip,
            converted_at,
            clock.now_text(),
            clock.now_text() if ip_anonymized else None,
        ),
    )
    conversion_id = store.returned_id(cursor)
    if conversion_id is not None:
        if postback.txn_id is not None and not postback.is_reversal:
            _apply_held(conn, account_id, postback.txn_id)
        return Result("recorded", conversion_id, keys["attribution"])
    existing = _existing(conn, account_id, postback, keys["link_id"])
    if existing is None:  # pragma: no cover - the unique indexes are the only conflicts
        raise NotFound("the conversion conflicts with one that cannot be found")
    return Result("duplicate", existing["id"], existing["attribution"])


def _hold(
    conn: store.Store,
    account_id: int,
    postback: Postback,
    link: LinkInfo | None,
    offer: OfferInfo | None,
    source: str,
    ip: str | None,
    received_at: str,
) -> Result:
    """Keep a reversal whose sale is not recorded yet (pending; a repeat of it: duplicate)."""
    cursor = conn.execute(
        "INSERT INTO pending_reversals (account_id, txn_id, event, offer_id, link_id,"
        " revenue_micros, payout_micros, source, ip, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, txn_id) DO NOTHING",
        (
            account_id,
            postback.txn_id,
            postback.event,
            offer.id if offer else None,
            link.id if link else None,
            postback.revenue_micros,
            postback.payout_micros,
            source,
            ip,
            received_at,
        ),
    )
    return Result("pending" if cursor.rowcount else "duplicate", None, None)


def _apply_held(conn: store.Store, account_id: int, txn_id: str) -> None:
    """Reverse a sale just recorded if its refund or chargeback came first: the held reversal
    goes through `record` now that its sale exists. One for another offer (or link) than the
    sale's stays held, as `record` refuses it: only a sale's own offer may reverse it."""
    held = store.row(
        conn,
        "SELECT * FROM pending_reversals WHERE account_id = ? AND txn_id = ?",
        (account_id, txn_id),
    )
    if held is None:
        return
    postback = Postback(held["event"], held["revenue_micros"], held["payout_micros"], txn_id)
    try:
        record(
            conn,
            account_id=account_id,
            postback=postback,
            link=clicks.load_link(conn, held["link_id"]) if held["link_id"] else None,
            offer=clicks.load_offer(conn, held["offer_id"]) if held["offer_id"] else None,
            source=held["source"],
            ip=held["ip"],
            converted_at=held["received_at"],
        )
    except Forbidden:
        return
    conn.execute("DELETE FROM pending_reversals WHERE id = ?", (held["id"],))


def _existing(
    conn: store.Store, account_id: int, postback: Postback, link_id: str | None
) -> dict | None:
    """The conversion this one would duplicate, if any."""
    if postback.txn_id is not None:
        found = store.row(
            conn,
            "SELECT id, attribution FROM conversions WHERE account_id = ?"
            " AND txn_id = ? AND is_reversal = ?",
            (account_id, postback.txn_id, int(postback.is_reversal)),
        )
    elif link_id is not None:
        found = store.row(
            conn,
            "SELECT id, attribution FROM conversions WHERE link_id = ?"
            " AND event = ? AND txn_id IS NULL",
            (link_id, postback.event),
        )
    else:
        found = None
    return found


def attribute(
    conn: store.Store,
    link: LinkInfo | None,
    offer: OfferInfo | None,
    converted_at: str,
    *,
    promote: bool = True,
) -> tuple[int | None, str]:
    """(the MessageClick a conversion belongs to, its attribution) for a conversion on `link`
    at `converted_at`."""
    if link is None:
        return None, "no_message"
    click = first_click(conn, link)
    if click is None and promote:
        click = promote_bot_click(conn, link)
    if click is None:
        return None, "no_click"
    days = offer.attribution_days if offer is not None else 7
    clicked = clock.from_text(click["clicked_at"])
    converted = clock.from_text(converted_at)
    if clicked <= converted <= clicked + timedelta(days=days):
        return click["id"], "attributed"
    return click["id"], "outside_window"


def first_click(conn: store.Store, link: LinkInfo) -> dict | None:
    """The MessageClick of the link's message and contact (for an anonymous one-off message,
    the message's first)."""
    if link.contact_id is not None:
        return store.row(
            conn,
            "SELECT id, clicked_at FROM message_clicks WHERE message_id = ? AND visitor = ?",
            (link.message_id, clicks.contact_visitor(link.contact_id)),
        )
    return store.row(
        conn,
        "SELECT id, clicked_at FROM message_clicks WHERE message_id = ?"
        " ORDER BY clicked_at, id LIMIT 1",
        (link.message_id,),
    )


def promote_bot_click(conn: store.Store, link: LinkInfo) -> dict | None:
    """When a link's only clicks were flagged as bots and a conversion arrives, a human
    evidently clicked: the earliest click becomes the MessageClick."""
    earliest = store.row(
        conn,
        "SELECT id, clicked_at, visitor, ip, user_agent, ip_anonymized_at"
        " FROM message_short_link_clicks"
        " WHERE link_id = ? AND is_bot = 1 ORDER BY clicked_at, id LIMIT 1",
        (link.id,),
    )
    if earliest is None:
        return None
    visitor = (
        clicks.contact_visitor(link.contact_id)
        if link.contact_id is not None
        else earliest["visitor"]
    )
    new_id = clicks.insert_message_click(
        conn,
        link,
        visitor,
        earliest["clicked_at"],
        earliest["ip"],
        earliest["user_agent"],
        earliest["id"],
        "promoted",
        "a conversion arrived, so a human clicked; only bot-flagged clicks were recorded",
        earliest["ip_anonymized_at"] is not None,
    )
    if new_id is None:
        return first_click(conn, link)
    return {"id": new_id, "clicked_at": earliest["clicked_at"]}


def find_offer_link(conn: store.Store, offer: OfferInfo, message_id: int) -> str | None:
    """The link of a message that carries `offer` (its first such slot)."""
    found = store.row(
        conn,
        "SELECT id FROM short_links WHERE message_id = ? AND offer_id = ? ORDER BY slot LIMIT 1",
        (message_id, offer.id),
    )
    if found is None:
        exists = store.row(conn, "SELECT account_id FROM messages WHERE id = ?", (message_id,))
        if exists is None or exists["account_id"] != offer.account_id:
            raise NotFound(f"unknown message_id {message_id}")
        return None
    return found["id"]


@dataclass
class ImportResult:
    rows: int = 0
    recorded: int = 0
    duplicates: int = 0
    pending: int = 0  # reversals kept until their sale arrives
    invalid: list[tuple[int, str]] | None = None

    def __post_init__(self) -> None:
        self.invalid = self.invalid or []


def import_csv(
    db: store.Store,
    account_ref: str | None,
    stream: BinaryIO,
    *,
    offer_ref: str | None = None,
    strict: bool = False,
) -> ImportResult:
    """Import a network's CSV report (header row; columns as in `import_rows`, any case).

    Every row is read and checked first (its values, its link or message), so a file that
    fails (a broken quote, --strict and a bad row) changes nothing. The rows are then recorded
    in chunks of about CHUNK_SECONDS each, in turn with Trackly's other writers, so that a
    running server's postbacks never wait long for the lock. An import stopped half-way keeps
    what it recorded; running it again completes it, since a row recorded already is a
    duplicate (by txn_id, or by link and event)."""
    conn = db
    owner = accounts.resolve(conn, account_ref)
    offers = clicks.load_offers(conn)
    chosen = (
        offers[lookup.find(conn, "offers", offer_ref, owner["id"])["id"]] if offer_ref else None
    )
    lines = CsvLines(stream)
    reader = csv.DictReader(lines, strict=True)
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        if not reader.fieldnames:
            raise InvalidInput("the CSV file is empty: it needs a header row")
        for line, row, too_long in csv_rows(reader, lines):
            if too_long:
                rows.append((line, None))
                continue
            values = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            rows.append((line, values))
    except csv.Error as e:
        raise InvalidInput(f"line {reader.line_num}: {e}") from e
    result = ImportResult(rows=len(rows))
    valid = []
    for line, raw in rows:
        try:
            if raw is None:
                raise InvalidInput("the row is too long")
            _resolve(conn, owner["id"], raw, offers, chosen)
        except (InvalidInput, NotFound) as e:
            if strict:
                raise InvalidInput(f"line {line}: {e.message} (nothing was imported)") from e
            result.invalid.append((line, e.message))
        else:
            valid.append((line, raw))
    done = 0
    try:
        for chunk in store.chunks(valid, CHUNK_SECONDS, first=200):
            with store.chunk(conn):
                part = import_rows(
                    conn, owner["id"], chunk, offers_by_id=offers, default_offer=chosen
                )
            done += len(chunk)
            result.recorded += part.recorded
            result.duplicates += part.duplicates
            result.pending += part.pending
            result.invalid += part.invalid
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted after {done:,} of {len(valid):,} rows: run the same import again"
            " to finish it (rows recorded already count as duplicates)"
        ) from None
    if strict and result.invalid:  # (a row that became invalid while the import ran)
        line, reason = result.invalid[0]
        raise InvalidInput(
            f"line {line}: {reason} (the other rows were recorded: fix it and import the file"
            " again; rows recorded already count as duplicates)"
        )
    result.invalid.sort()
    return result


def _resolve(
    conn: store.Store,
    account_id: int,
    raw: dict[str, str],
    offers_by_id: dict[int, OfferInfo],
    default_offer: OfferInfo | None,
) -> tuple[Postback, LinkInfo | None, OfferInfo | None, str | None]:
    """A report row's postback, link, offer and time; InvalidInput or NotFound if it has none."""
    values = canonical(raw)
    postback = parse(values)
    when = raw.get("time") or raw.get("converted_at") or raw.get("date")
    converted_at = clock.to_text(clock.parse_moment(when)) if when else None
    link = None
    offer = default_offer
    if postback.link_id is not None:
        link = clicks.load_link(conn, postback.link_id)
        if link is None or link.account_id != account_id:
            raise NotFound(f"unknown link_id {postback.link_id}")
        offer = offers_by_id.get(link.offer_id) if link.offer_id else offer
    elif postback.message_id is not None:
        if offer is None:
            raise InvalidInput("a row with message_id needs --offer")
        found = find_offer_link(conn, offer, postback.message_id)
        link = clicks.load_link(conn, found) if found else None
    else:
        raise InvalidInput("no link_id (or click_id, cid, subid) and no message_id")
    check_rules(offer, postback, "import")
    return postback, link, offer, converted_at


def import_rows(
    conn: store.Store,
    account_id: int,
    rows,
    *,
    offers_by_id: dict[int, OfferInfo],
    default_offer: OfferInfo | None = None,
) -> ImportResult:
    """Record a network report's rows: (line, {column: value}) with link_id (or an alias) or
    message_id, event, revenue, payout, txn_id and time; through the same validation and
    deduplication as the postbacks. A row that cannot be recorded (or that would reverse
    another offer's sale) is reported by line. Call inside a write transaction."""
    result = ImportResult()
    for line, raw in rows:
        result.rows += 1
        try:
            postback, link, offer, converted_at = _resolve(
                conn, account_id, raw, offers_by_id, default_offer
            )
            with store.write(conn):  # (a savepoint: a row that fails leaves nothing)
                outcome = record(
                    conn,
                    account_id=account_id,
                    postback=postback,
                    link=link,
                    offer=offer,
                    source="import",
                    ip=None,
                    converted_at=converted_at,
                )
        except (InvalidInput, NotFound, Forbidden) as e:
            result.invalid.append((line, e.message))
            continue
        if outcome.status == "recorded":
            result.recorded += 1
        elif outcome.status == "pending":
            result.pending += 1
        else:
            result.duplicates += 1
    return result


LIST_COLUMNS = [
    "id",
    "converted_at",
    "event",
    "revenue",
    "payout",
    "txn_id",
    "offer",
    "campaign",
    "variant",
    "link_id",
    "message_id",
    "phone",
    "attribution",
    "source",
    "message_click_id",
]


def list_conversions(
    conn: store.Store,
    chosen: Filters,
    limit: int | None = None,
    newest: bool = False,
    before: tuple[str, int] | None = None,
) -> paging.Page:
    """The conversions the filters select, oldest first, with their attribution: the first
    `limit` and how many in all. `newest` first, from the one `before` this (time, id) on: the
    API's pages (`total` is then only the rows read)."""
    clauses, params = chosen.where("c.", "converted_at")
    order = "ORDER BY c.converted_at DESC, c.id DESC" if newest else "ORDER BY c.converted_at, c.id"
    if before is not None:
        clauses.append("(c.converted_at < ? OR (c.converted_at = ? AND c.id < ?))")
        params += [before[0], before[0], before[1]]
    select = (
        "SELECT c.id, c.converted_at, c.event, c.revenue_micros, c.payout_micros, c.txn_id,"
        " o.name AS offer, k.name AS campaign, c.variant, c.link_id, c.message_id,"
        " ct.phone, c.attribution, c.source, c.message_click_id"
        " FROM conversions c LEFT JOIN offers o ON o.id = c.offer_id"
        " LEFT JOIN campaigns k ON k.id = c.campaign_id"
        " LEFT JOIN contacts ct ON ct.id = c.contact_id"
        f" WHERE {' AND '.join(clauses)}"
    )
    if newest:  # (a page of the API: no count of the rest)
        rows = store.rows(conn, f"{select} {order} LIMIT ?", (*params, limit))
        found = paging.Page(rows, len(rows))
    else:
        found = paging.fetch(conn, select, order, tuple(params), limit)
    for item in found.rows:
        item["revenue"] = money.format_amount(item.pop("revenue_micros"))
        item["payout"] = money.format_amount(item.pop("payout_micros"))
    return paging.Page([{k: item[k] for k in LIST_COLUMNS} for item in found.rows], found.total)
