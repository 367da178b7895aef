"""Opt-outs: the account's suppression list. A number on it gets no message from any shorten
(core.shorten skips it in a list send and refuses a one-off message to it), so it gets no link
and counts in no report's `sent`.

Numbers come in by hand (`add`) or from a gateway's inbound or STOP export (`import_csv`): the
phone, message text and time columns are found by their headers, and only rows whose text is an
opt-out keyword count when the file has a text column.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from typing import BinaryIO

from trackly_cli.core import accounts, clock, paging, store
from trackly_cli.core.contacts import CsvLines, check_country, csv_rows, normalise_phone
from trackly_cli.core.errors import InvalidInput, NotFound
from trackly_cli.core.receipts import column_key, parse_time

# The opt-out keywords of the CTIA and the carriers (Twilio's list, with the FCC's 2025 additions),
# compared in upper case without spaces, hyphens or a final full stop or exclamation mark, so
# that "Stop.", "stop all" and "Opt-out" count.
KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE")
# The columns of a gateway's export, each role's first present one used (names compared as
# receipts.column_key makes them: no case, spaces, `_` or `-`). `to` is never the phone: it is
# the sender's own number in an inbound export.
PHONE_COLUMNS = (
    "phone", "from", "msisdn", "sender", "number", "mobile", "phonenumber", "mobilenumber",
    "fromnumber", "source", "cli",
)  # fmt: skip
BODY_COLUMNS = ("body", "text", "message", "messagebody", "content", "keyword")
TIME_COLUMNS = (
    "optedoutat", "date", "datesent", "sentdate", "datereceived", "receivedat",
    "messagetimestamp", "timestamp", "datecreated", "createdat", "time", "receivedtime",
)  # fmt: skip
MAX_INVALID_KEPT = 1000
MAX_KEYWORD_LENGTH = 40
_NOT_COUNTED = re.compile(r"[\s_\-]+")


def keyword_of(text: str) -> str | None:
    """The opt-out keyword a message's text is ('stop' -> 'STOP', 'Stop all!' -> 'STOPALL'), or
    None when the text is anything else (a reply, 'STOP texting me at 9pm')."""
    word = _NOT_COUNTED.sub("", text.strip().upper()).rstrip(".!")
    return word if word in KEYWORDS else None


def phone_of(raw: str, country: str) -> str:
    """A number as E.164, as contacts are; a gateway's MSISDN ('447911123456': international
    without the '+') too."""
    try:
        return normalise_phone(raw, country)
    except InvalidInput:
        digits = raw.strip()
        if digits.isascii() and digits.isdigit() and len(digits) >= 10:
            try:
                return normalise_phone("+" + digits, country)
            except InvalidInput:
                pass
        raise


def _keyword(value: str) -> str:
    word = value.strip().upper()
    if not word:
        raise InvalidInput("--keyword is empty")
    if len(word) > MAX_KEYWORD_LENGTH or any(ord(c) < 32 for c in word):
        raise InvalidInput(
            f"--keyword {value!r} is not a word of up to {MAX_KEYWORD_LENGTH} letters"
        )
    return word


def _phones(raws: list[str], country: str, nothing: str) -> list[str]:
    """Each number as E.164 (duplicates once, in order); the first invalid one is an error
    naming it (and saying `nothing` was done)."""
    if not raws:
        raise InvalidInput("give at least one phone number")
    found: dict[str, None] = {}
    for raw in raws:
        try:
            found[phone_of(raw, country)] = None
        except InvalidInput as e:
            raise InvalidInput(f"{raw!r}: {e.message} ({nothing})") from None
    return list(found)


@dataclass
class AddResult:
    account: str
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"account": self.account, "added": self.added, "already": self.already}


def add(
    db: store.Store,
    account_ref: str | None,
    phones: list[str],
    *,
    country: str = "US",
    keyword: str = "STOP",
    source: str = "cli",
) -> AddResult:
    """Put numbers on the account's opt-out list (those on it already stay as they were). Every
    number is checked first: one that is not valid is an error naming it, and nothing is
    written."""
    country = check_country(country)
    word = _keyword(keyword)
    numbers = _phones(phones, country, "nothing was added")
    now = clock.now_text()
    with store.write(db) as conn:
        owner = accounts.resolve(conn, account_ref)
        result = AddResult(owner["name"])
        for phone in numbers:
            inserted = store.returned_id(
                conn.execute(
                    "INSERT INTO optouts (account_id, phone, keyword, opted_out_at, source,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (account_id, phone) DO NOTHING RETURNING id",
                    (owner["id"], phone, word, now, source, now),
                )
            )
            (result.added if inserted is not None else result.already).append(phone)
    return result


@dataclass
class ImportResult:
    account: str
    columns: dict[str, str] = field(default_factory=dict)  # role -> the header used
    rows: int = 0
    imported: int = 0
    already: int = 0  # on the list before, or earlier in the file
    not_optouts: int = 0  # rows whose text is no opt-out keyword (or outbound rows)
    invalid: list[tuple[int, str, str]] = field(default_factory=list)  # (line, value, reason)
    invalid_count: int = 0

    def as_dict(self) -> dict:
        return {
            "account": self.account,
            "columns": self.columns,
            "rows": self.rows,
            "imported": self.imported,
            "already": self.already,
            "not_optouts": self.not_optouts,
            "invalid": self.invalid_count,
        }


def _roles(headers: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for header in headers:
        if header and column_key(header) not in keys:
            keys[column_key(header)] = header
    roles = {}
    for role, names in (("phone", PHONE_COLUMNS), ("body", BODY_COLUMNS), ("time", TIME_COLUMNS)):
        present = [keys[n] for n in names if n in keys]
        if present:
            roles[role] = present[0]
    if "direction" in keys:
        roles["direction"] = keys["direction"]
    if "phone" not in roles:
        raise InvalidInput(
            f"the CSV header has no phone column (it has: {', '.join(headers)}); expected one"
            " of phone, from, msisdn, sender, number, mobile"
        )
    return roles


def import_csv(
    db: store.Store,
    account_ref: str | None,
    stream: BinaryIO,
    *,
    source: str,
    country: str = "US",
) -> ImportResult:
    """Read a gateway's inbound or STOP export (CSV, UTF-8) onto the account's opt-out list.

    With a text column (body, text, message…) only rows whose text is an opt-out keyword count,
    and the keyword is kept; with a direction column, only inbound rows. The time column (date,
    DateSent, timestamp, received_at, message-timestamp…) gives when the person opted out; the
    earliest row of a number is kept. Bad rows (a number or time that cannot be read) are
    reported by line and skipped. Every row is read before anything is written, and everything
    is written in one transaction: a file that fails changes nothing."""
    country = check_country(country)
    owner = accounts.resolve(db, account_ref)
    result = ImportResult(owner["name"])
    lines = CsvLines(stream)
    reader = csv.DictReader(lines, strict=True)
    found: dict[str, tuple[str | None, str | None]] = {}  # phone -> (keyword, time)
    try:
        if not reader.fieldnames:
            raise InvalidInput("the CSV file is empty: it needs a header row with a phone column")
        roles = _roles(list(reader.fieldnames))
        result.columns = dict(roles)
        for line, row, too_long in csv_rows(reader, lines):
            if row is not None and not any(v.strip() for v in row.values() if isinstance(v, str)):
                continue  # a blank line
            result.rows += 1

            def cell(role: str, row: dict | None = row) -> str:
                name = roles.get(role)
                value = row.get(name) if row is not None and name else None
                return value.strip() if isinstance(value, str) else ""

            if too_long:
                _bad(result, line, "", too_long)
                continue
            if "direction" in roles and not cell("direction").lower().startswith("inbound"):
                result.not_optouts += 1
                continue
            keyword = None
            if "body" in roles:
                keyword = keyword_of(cell("body"))
                if keyword is None:
                    result.not_optouts += 1
                    continue
            raw = cell("phone")
            try:
                phone = phone_of(raw, country)
            except InvalidInput as e:
                _bad(result, line, raw, e.message)
                continue
            at = None
            if cell("time"):
                try:
                    at = parse_time(cell("time"))
                except InvalidInput as e:
                    _bad(result, line, cell("time"), e.message)
                    continue
            if phone in found:
                result.already += 1
                known = found[phone]
                if at is not None and (known[1] is None or at < known[1]):
                    found[phone] = (keyword, at)
                continue
            found[phone] = (keyword, at)
    except csv.Error as e:
        raise InvalidInput(f"line {reader.line_num}: {e}") from e
    if result.rows == 0:
        raise InvalidInput("the CSV file has a header but no rows")
    now = clock.now_text()
    with store.write(db) as conn:
        for phone, (keyword, at) in found.items():
            inserted = store.returned_id(
                conn.execute(
                    "INSERT INTO optouts (account_id, phone, keyword, opted_out_at, source,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (account_id, phone) DO NOTHING RETURNING id",
                    (owner["id"], phone, keyword, at or now, source, now),
                )
            )
            if inserted is None:
                result.already += 1
            else:
                result.imported += 1
    return result


def _bad(result: ImportResult, line: int, value: str, reason: str) -> None:
    result.invalid_count += 1
    if len(result.invalid) < MAX_INVALID_KEPT:
        result.invalid.append((line, value, reason))


def list_optouts(db: store.Store, account_ref: str | None, limit: int | None = None) -> paging.Page:
    """The account's opted-out numbers, oldest first: the first `limit` of them."""
    owner = accounts.resolve(db, account_ref)
    return paging.fetch(
        db,
        "SELECT phone, keyword, opted_out_at, source, created_at, id FROM optouts"
        " WHERE account_id = ?",
        "ORDER BY opted_out_at, id",
        (owner["id"],),
        limit,
    )


def remove(
    db: store.Store, account_ref: str | None, phones: list[str], *, country: str = "US"
) -> list[str]:
    """Take numbers off the account's opt-out list (they may get messages again). A number not
    on it is an error naming it, and nothing is removed."""
    country = check_country(country)
    numbers = _phones(phones, country, "nothing was removed")
    with store.write(db) as conn:
        owner = accounts.resolve(conn, account_ref)
        for phone in numbers:
            if (
                store.scalar(
                    conn,
                    "SELECT 1 FROM optouts WHERE account_id = ? AND phone = ?",
                    (owner["id"], phone),
                )
                is None
            ):
                raise NotFound(
                    f"{phone} is not on the opt-out list of account {owner['name']}"
                    " (nothing was removed)"
                )
        conn.executemany(
            "DELETE FROM optouts WHERE account_id = ? AND phone = ?",
            [(owner["id"], phone) for phone in numbers],
        )
    return numbers


def find(conn: store.Store, account_id: int, phone: str) -> dict | None:
    """The opt-out of one number (E.164), or None."""
    return store.row(
        conn,
        "SELECT phone, keyword, opted_out_at, source FROM optouts"
        " WHERE account_id = ? AND phone = ?",
        (account_id, phone),
    )
