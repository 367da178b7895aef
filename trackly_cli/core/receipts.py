"""Delivery receipts: a gateway's delivery report, read into each message's delivery state.

Operators upload the outbox to their gateway minutes or hours after `trackly shorten`, and
carriers' scanners strike within a second of *delivery*: the timing signal of the bot detector
only means something measured from delivery. A delivery report gives that time (and shows the
messages that never arrived).

The format is told from the header row (names compared without case, spaces, `_` or `-`):

- plain, told by `delivered_at`: `message_id` (Trackly's, as in the outbox) or `phone`;
  `delivered_at`; `status`.
- Twilio, told by `Sid`, `MessageSid` or `AccountSid`: `Body`, else `To`; `DateUpdated`, else
  `DateSent` or `SentDate`; `Status` (and `ErrorCode`).
- Vonage, told by `msisdn`, `message-timestamp` or `date_finalized`: `msisdn`, else `to`;
  `message-timestamp`, else `date_finalized` or `date_received`; `status` (and `err-code`).
- Telnyx, told by `completed_at`, `sent_at` or `cld`: `text`, else `to` or `cld`;
  `completed_at`, else `sent_at`; `status` (and `errors`).

A row whose text holds one of the account's short links names its message exactly; otherwise the
phone's newest message made before the receipt's time is meant (`--campaign` narrows it to one
campaign). Rows of inbound messages (a `direction` column saying so) are passed over.
"""

from __future__ import annotations

import csv
import email.utils
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from trackly_cli.core import accounts, clock, dialect, lookup, store
from trackly_cli.core.contacts import CsvLines, check_country, csv_rows, normalise_phone
from trackly_cli.core.errors import Interrupted, InvalidInput

CHUNK_SECONDS = 0.2
# A gateway's clock and ours differ a little: a receipt may name a time a moment before the
# message was made here.
CLOCK_SLACK = timedelta(minutes=5)

DELIVERED, FAILED, PENDING = "delivered", "failed", "pending"
# Every gateway's words for the three states (SMPP's short forms included).
STATUSES = {
    DELIVERED: {"delivered", "delivrd", "read"},
    FAILED: {
        "undelivered", "undeliv", "undeliverable", "failed", "expired", "rejected", "rejectd",
        "sending_failed", "delivery_failed", "deleted", "canceled", "cancelled", "blocked",
    },
    PENDING: {
        "queued", "accepted", "acceptd", "accepted_by_carrier", "sending", "sent", "buffered",
        "scheduled", "submitted", "enroute", "pending", "unknown", "delivery_unconfirmed",
    },
}  # fmt: skip
_STATUS = {word: state for state, words in STATUSES.items() for word in words}


@dataclass(frozen=True)
class Format:
    name: str
    marks: tuple[str, ...]  # any of these columns tells the format
    phone: tuple[str, ...]  # the first of these present is used
    time: tuple[str, ...]
    body: tuple[str, ...] = ()
    message_id: tuple[str, ...] = ()
    error: tuple[str, ...] = ()


FORMATS = (
    Format("plain", ("deliveredat",), ("phone",), ("deliveredat",), ("text",), ("messageid",)),
    Format(
        "Twilio",
        ("sid", "messagesid", "accountsid"),
        ("to",),
        ("dateupdated", "datesent", "sentdate"),
        ("body",),
        error=("errorcode",),
    ),
    Format(
        "Vonage",
        ("msisdn", "messagetimestamp", "datefinalized"),
        ("msisdn", "to"),
        ("messagetimestamp", "datefinalized", "datereceived"),
        ("text", "body"),
        error=("errcode", "errorcode"),
    ),
    Format(
        "Telnyx",
        ("completedat", "sentat", "cld"),
        ("to", "cld"),
        ("completedat", "sentat"),
        ("text", "body"),
        error=("errors", "errorcode"),
    ),
)
FORMAT_HELP = (
    "plain (phone or message_id, delivered_at, status), Twilio (To, Status, DateSent or"
    " DateUpdated, Sid), Vonage (msisdn, status, message-timestamp) or Telnyx (to, status,"
    " completed_at or sent_at)"
)


def column_key(header: str) -> str:
    """'Date Sent', 'date_sent', 'DateSent' -> 'datesent'."""
    return re.sub(r"[\s_\-]+", "", header.strip().lower())


def detect(headers: list[str]) -> tuple[Format, dict[str, str]]:
    """The format of a report with these headers, and the header for each role."""
    keys = {column_key(h): h for h in headers if h}
    for found in FORMATS:
        if not any(mark in keys for mark in found.marks):
            continue
        roles = {}
        for role in ("phone", "time", "body", "message_id", "error"):
            present = [keys[k] for k in getattr(found, role) if k in keys]
            if present:
                roles[role] = present[0]
        roles["status"] = keys.get("status") or keys.get("deliverystatus") or ""
        roles["direction"] = keys.get("direction", "")
        if not roles["status"]:
            raise InvalidInput(f"the {found.name} report has no status column")
        if "phone" not in roles and "message_id" not in roles and "body" not in roles:
            raise InvalidInput(
                f"the {found.name} report names no message: it needs a"
                f" {' or '.join(found.phone + found.message_id)} column"
            )
        return found, roles
    raise InvalidInput(
        f"cannot tell which gateway wrote this report (its columns: {', '.join(headers)});"
        f" expected {FORMAT_HELP}"
    )


def parse_status(text: str) -> str:
    state = _STATUS.get(text.strip().lower().replace(" ", "_").replace("-", "_"))
    if state is None:
        raise InvalidInput(f"unknown delivery status {text.strip()!r}")
    return state


def parse_time(text: str) -> str:
    """A gateway's time, in any of the forms they use (ISO 8601 with or without a zone, RFC
    2822, epoch seconds or milliseconds; no zone means UTC), as stored text."""
    value = text.strip()
    moment: datetime | None = None
    if re.fullmatch(r"\d{1,15}(\.\d{1,9})?", value):
        number = float(value)
        moment = datetime.fromtimestamp(number / 1000 if number > 10**11 else number, UTC)
    else:
        trimmed = re.sub(r"\s*(UTC|GMT)$", "", value)
        try:
            moment = datetime.fromisoformat(trimmed)
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                moment = None
    if moment is None:
        raise InvalidInput(f"{value!r} is not a time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return clock.to_text(moment)


@dataclass(frozen=True)
class Receipt:
    line: int
    message_id: int
    status: str
    at: str | None
    detail: str

    def beats(self, other: tuple[str | None, str | None]) -> bool:
        """Whether this receipt says more than what is known (status, time): a final state
        over a pending one; between two of a kind, the later."""
        status, at = other
        if status is None:
            return True
        final, known_final = self.status != PENDING, status != PENDING
        if final != known_final:
            return final
        return (self.at or "") >= (at or "")


@dataclass
class ImportResult:
    format: str = ""
    rows: int = 0
    recorded: int = 0  # messages whose delivery state changed
    unchanged: int = 0  # rows saying nothing new (a repeat, or older than what is known)
    unknown: int = 0  # rows naming no message of the account
    inbound: int = 0
    states: Counter = field(default_factory=Counter)  # of the recorded messages
    invalid: list[tuple[int, str]] = field(default_factory=list)
    clicks_judged: int = 0
    clicks_to_bot: int = 0
    clicks_to_human: int = 0

    def as_dict(self) -> dict:
        return {
            "format": self.format,
            "rows": self.rows,
            "recorded": self.recorded,
            "delivered": self.states[DELIVERED],
            "failed": self.states[FAILED],
            "pending": self.states[PENDING],
            "unchanged": self.unchanged,
            "unknown_messages": self.unknown,
            "inbound": self.inbound,
            "invalid": len(self.invalid),
            "clicks_judged_again": self.clicks_judged,
            "clicks_now_bots": self.clicks_to_bot,
            "clicks_now_human": self.clicks_to_human,
        }


INBOUND = "inbound"
_LINK_IN_TEXT = re.compile(r"/([0-9A-Za-z]{7})(?![0-9A-Za-z])")
# A message that `trackly shorten` is still writing (or a dead run left) is nobody's yet.
_COMPLETE = (
    "(m.campaign_id IS NULL"
    " OR (SELECT building_pid FROM campaigns WHERE id = m.campaign_id) IS NULL)"
)


class _Matcher:
    """Finds the message a receipt row is about."""

    def __init__(self, conn: store.Store, account_id: int, campaign_id: int | None):
        self.conn = conn
        self.account_id = account_id
        self.campaign = "" if campaign_id is None else f" AND m.campaign_id = {int(campaign_id)}"

    def by_id(self, text: str) -> int | None:
        if not text.isdigit():
            raise InvalidInput(f"message_id {text!r} is not a number")
        return store.scalar(
            self.conn,
            f"SELECT m.id FROM messages m WHERE m.id = ? AND m.account_id = ?{self.campaign}"
            f" AND {_COMPLETE}",
            (int(text), self.account_id),
        )

    def by_text(self, text: str) -> int | None:
        for link_id in _LINK_IN_TEXT.findall(text):
            found = store.scalar(
                self.conn,
                f"SELECT m.id FROM short_links l JOIN messages m ON m.id = l.message_id"
                f" WHERE l.id = ? AND l.account_id = ?{self.campaign} AND {_COMPLETE}",
                (link_id, self.account_id),
            )
            if found is not None:
                return found
        return None

    def by_phone(self, phone: str, at: str | None) -> int | None:
        latest = clock.to_text(clock.from_text(at) + CLOCK_SLACK) if at else "9999"
        return store.scalar(
            self.conn,
            "SELECT m.id FROM contacts c JOIN messages m ON m.contact_id = c.id"
            f" WHERE c.account_id = ? AND c.phone = ? AND m.created_at <= ?{self.campaign}"
            f" AND {_COMPLETE} ORDER BY m.created_at DESC, m.id DESC LIMIT 1",
            (self.account_id, phone, latest),
        )


def import_csv(
    db: store.Store,
    account_ref: str | None,
    stream: BinaryIO,
    *,
    campaign_ref: str | None = None,
    country: str = "US",
    strict: bool = False,
) -> ImportResult:
    """Read a delivery report and record each message's delivery state.

    Every row is read and matched first, so a file that fails (a broken quote, an unknown
    format, --strict and a bad row) changes nothing. Rows about one message are folded (a
    final state beats a pending one; the later of two beats the earlier), and a message's state
    only moves forward the same way, so importing a report twice, or an older one after a newer
    one, changes nothing. The states are written in chunks, in turn with Trackly's other
    writers, and the clicks of each message whose delivery time changed are judged again
    (the timing signal measures from delivery)."""
    conn = db
    country = check_country(country)
    owner = accounts.resolve(conn, account_ref)
    campaign_id = (
        lookup.find(conn, "campaigns", campaign_ref, owner["id"], retired=True)["id"]
        if campaign_ref
        else None
    )
    lines = CsvLines(stream)
    reader = csv.DictReader(lines, strict=True)
    try:
        if not reader.fieldnames:
            raise InvalidInput("the CSV file is empty: it needs a header row")
        chosen, roles = detect(list(reader.fieldnames))
        result = ImportResult(format=chosen.name)
        matcher = _Matcher(conn, owner["id"], campaign_id)
        best: dict[int, Receipt] = {}
        for line, row, too_long in csv_rows(reader, lines):
            if row is not None and not any((v or "").strip() for v in row.values()):
                continue  # a blank line
            result.rows += 1
            try:
                if too_long:
                    raise InvalidInput(too_long)
                receipt = _receipt(line, row, roles, matcher, country)
            except InvalidInput as e:
                if strict:
                    raise InvalidInput(f"line {line}: {e.message} (nothing was imported)") from e
                result.invalid.append((line, e.message))
                continue
            if receipt is INBOUND:
                result.inbound += 1
            elif receipt is None:
                result.unknown += 1
            else:
                known = best.get(receipt.message_id)
                if known is None or receipt.beats((known.status, known.at)):
                    best[receipt.message_id] = receipt
                    result.unchanged += known is not None
                else:
                    result.unchanged += 1
    except csv.Error as e:
        raise InvalidInput(f"line {reader.line_num}: {e}") from e
    retimed = _record(conn, owner["id"], sorted(best.values(), key=_by_message), result)
    if retimed:
        from trackly_cli.core import rescan  # (rescan imports the click path; keep this light)

        judged = rescan.rescan(conn, owner["id"], messages=retimed)
        result.clicks_judged = judged.clicks
        result.clicks_to_bot = judged.to_bot
        result.clicks_to_human = judged.to_human
    return result


def _by_message(receipt: Receipt) -> int:
    return receipt.message_id


def _receipt(
    line: int, row: dict, roles: dict[str, str], matcher: _Matcher, country: str
) -> Receipt | str | None:
    """The receipt a row gives; INBOUND for a row about a message received; None for one
    about no message of the account."""

    def cell(role: str) -> str:
        name = roles.get(role)
        return (row.get(name) or "").strip() if name else ""

    if cell("direction").lower().startswith("inbound"):
        return INBOUND
    raw_status = cell("status")
    if not raw_status:
        raise InvalidInput("no status")
    status = parse_status(raw_status)
    when = cell("time")
    at = parse_time(when) if when else None
    if status == DELIVERED and at is None:
        raise InvalidInput(f"a delivered message needs its time ({roles.get('time', 'time')})")
    detail = raw_status + (f" ({cell('error')})" if cell("error") not in ("", "0") else "")
    message_id = None
    if cell("message_id"):
        message_id = matcher.by_id(cell("message_id"))
    elif cell("body") and (found := matcher.by_text(cell("body"))) is not None:
        message_id = found
    elif cell("phone"):
        message_id = matcher.by_phone(normalise_phone(cell("phone"), country), at)
    elif not cell("body"):
        raise InvalidInput("no message_id, phone or text to tell the message")
    if message_id is None:
        return None
    return Receipt(line, message_id, status, at, detail[:200])


_ROLLUP = (
    "INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id,"
    " variant, domain_id, offer_id, delivered, undelivered, offer_delivered, offer_undelivered)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT ({key}) DO UPDATE SET delivered = report_rollups.delivered + excluded.delivered,"
    " undelivered = report_rollups.undelivered + excluded.undelivered,"
    " offer_delivered = report_rollups.offer_delivered + excluded.offer_delivered,"
    " offer_undelivered = report_rollups.offer_undelivered + excluded.offer_undelivered"
)


def _record(
    conn: store.Store, account_id: int, receipts: list[Receipt], result: ImportResult
) -> set[int]:
    """Write the receipts that say more than what is known; the report counters follow.
    Returns the messages whose delivery time (as the timing signal reads it) changed."""
    retimed: set[int] = set()
    done = 0
    try:
        for chunk in store.chunks(receipts, CHUNK_SECONDS, first=500):
            with store.chunk(conn):
                retimed |= _record_chunk(conn, account_id, chunk, result)
            done += len(chunk)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted after {done:,} of {len(receipts):,} messages: run the same import"
            " again to finish it (what was recorded counts as unchanged)"
        ) from None
    return retimed


def _record_chunk(
    conn: store.Store, account_id: int, chunk: Iterable[Receipt], result: ImportResult
) -> set[int]:
    retimed = set()
    for receipt in chunk:
        known = store.row(
            conn,
            "SELECT delivery_status, delivery_at, created_at, coalesce(campaign_id, 0) AS c,"
            " coalesce(creative_id, 0) AS k, coalesce(list_id, 0) AS l,"
            " coalesce(variant, '') AS v, domain_id FROM messages WHERE id = ?",
            (receipt.message_id,),
        )
        if known is None:  # (removed since it was matched)
            result.unknown += 1
            continue
        old = (known["delivery_status"], known["delivery_at"])
        if not receipt.beats(old) or old == (receipt.status, receipt.at):
            result.unchanged += 1
            continue
        conn.execute(
            "UPDATE messages SET delivery_status = ?, delivery_at = ?, delivery_detail = ?"
            " WHERE id = ?",
            (receipt.status, receipt.at, receipt.detail, receipt.message_id),
        )
        result.recorded += 1
        result.states[receipt.status] += 1
        delivered = (receipt.status == DELIVERED) - (old[0] == DELIVERED)
        failed = (receipt.status == FAILED) - (old[0] == FAILED)
        if delivered or failed:
            group = (
                account_id,
                clock.bucket_of(known["created_at"]),
                known["c"],
                known["k"],
                known["l"],
                known["v"],
                known["domain_id"],
            )
            offers = [
                r[0]
                for r in conn.execute(
                    # (0: a plain URL, as `trackly shorten` counts it)
                    "SELECT DISTINCT coalesce(offer_id, 0) FROM short_links WHERE message_id = ?",
                    (receipt.message_id,),
                )
            ]
            conn.executemany(
                _ROLLUP.format(key=dialect.rollup_conflict(conn)),
                [(*group, 0, delivered, failed, 0, 0)]
                + [(*group, offer, 0, 0, delivered, failed) for offer in offers],
            )
        if _timed_from(*old) != _timed_from(receipt.status, receipt.at):
            retimed.add(receipt.message_id)
    return retimed


def _timed_from(status: str | None, at: str | None) -> str | None:
    """The time the timing signal measures from, if delivery gave one."""
    return at if status == DELIVERED else None
