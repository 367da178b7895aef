"""Contacts: phone numbers in E.164 with their merge fields, imported from CSV into lists."""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import phonenumbers

from trackly_cli.core import accounts, clock, dialect, lookup, paging, store, validate
from trackly_cli.core.errors import Interrupted, InvalidInput, NotFound

BATCH = 5000
# A chunk of an import is sized to hold the write lock about this long.
CHUNK_SECONDS = 0.2
MAX_INVALID_KEPT = 1000
_FIELD = re.compile(r"[^a-z0-9_]+")


@dataclass
class ImportResult:
    list_name: str
    rows: int = 0
    imported: int = 0
    new_contacts: int = 0
    added_to_list: int = 0
    invalid: list[tuple[int, str, str]] = field(default_factory=list)  # (line, value, reason)
    invalid_count: int = 0
    fields: list[str] = field(default_factory=list)


def normalise_phone(raw: str, country: str) -> str:
    """'(202) 555-0143' with country US -> '+12025550143'; raises InvalidInput when not a
    valid number."""
    text = raw.strip()
    if not text:
        raise InvalidInput("empty phone number")
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException as e:
        raise InvalidInput("not a phone number") from e
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_country(country: str) -> str:
    country = country.strip().upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(f"--country {country!r} is not a two-letter country code such as US")
    return country


def field_name(header: str) -> str:
    """'First Name' -> 'first_name': the merge-field name a CSV column becomes."""
    return _FIELD.sub("_", header.strip().lower()).strip("_")


# A line of a CSV file longer than this is a bad row, read no further (a one-line 200 MB file
# must not take 400 MB of memory). The csv module's own limit per field is 128 kB.
MAX_LINE_BYTES = 1 << 20
_BREAK = re.compile(rb"\r\n|\r|\n")


class CsvLines:
    """The lines of a UTF-8 CSV file (a BOM is fine), each ending in \n, whichever line breaks
    the file uses (\r\n, \n, or \r alone as old Mac exports have); a line that is not UTF-8
    is an error naming it. A line longer than MAX_LINE_BYTES is given empty, and its number
    kept in `too_long`, for the importer to report (see csv_rows)."""

    def __init__(self, stream: BinaryIO, chunk_bytes: int = 1 << 16) -> None:
        self.stream = stream
        self.chunk_bytes = chunk_bytes
        self.too_long: set[int] = set()

    def __iter__(self) -> Iterator[str]:
        number = 0
        pending = b""
        skipping = False  # the rest of a line that is too long
        while True:
            chunk = self.stream.read(self.chunk_bytes)
            data = pending + chunk
            start = 0
            for found in _BREAK.finditer(data):
                if found.group() == b"\r" and found.end() == len(data) and chunk:
                    break  # a \r at the end of what was read: a \n may follow in the next read
                raw, start = data[start : found.start()], found.end()
                number += 1
                yield self._line(raw, number, skipping)
                skipping = False
            pending = data[start:]
            if not chunk:
                if pending or skipping:
                    yield self._line(pending, number + 1, skipping)
                return
            if len(pending) > MAX_LINE_BYTES:
                pending, skipping = b"", True

    def _line(self, raw: bytes, number: int, too_long: bool) -> str:
        if too_long:
            self.too_long.add(number)
            return "\n"
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInput(
                f"line {number} is not UTF-8 (byte {raw[e.start]:#04x} at column"
                f" {e.start + 1}): save the file as UTF-8"
            ) from e
        return text + "\n"


def csv_rows(reader, lines: CsvLines) -> Iterator[tuple[int, list | dict | None, str | None]]:
    """(line, row, None) for each row of a csv reader over `lines`, and (line, None, reason)
    for each row too long to read, in order, so that an import reports it and goes on; any
    other csv error (a quote left open) stops the import, naming its line."""
    reason = "the row is too long"
    reported: set[int] = set()

    def skipped(upto: float) -> Iterator[tuple[int, None, str]]:
        # (a DictReader passes over the empty line given for one without a word)
        for number in sorted(n for n in lines.too_long - reported if n <= upto):
            reported.add(number)
            yield number, None, reason

    while True:
        try:
            row = next(reader)
        except StopIteration:
            yield from skipped(float("inf"))
            return
        except csv.Error as e:
            if "field larger than field limit" not in str(e):
                raise InvalidInput(f"line {reader.line_num}: {e}") from e
            yield from skipped(reader.line_num - 1)
            yield reader.line_num, None, reason
            continue
        yield from skipped(reader.line_num)
        if reader.line_num not in reported:
            yield reader.line_num, row, None


def import_csv(
    db: store.Store,
    account_ref: str | None,
    list_ref: str,
    stream: BinaryIO,
    *,
    country: str = "US",
    strict: bool = False,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> ImportResult:
    """Import a CSV with a `phone` column (other columns become merge fields) into a list.

    Every row is read and checked before anything is written, so a file that fails (a broken
    quote, --strict and a bad row, no valid row) changes nothing. The checked rows are then
    written in chunks of about CHUNK_SECONDS each, in turn with Trackly's other writers, so
    that a running server never waits long for the lock. An import stopped while it writes
    (Ctrl-C, a kill) keeps the chunks it committed, and running it again completes it:
    importing a row twice changes nothing more than importing it once.

    `progress("checking", rows read, None)` and then `progress("writing", rows written, rows
    to write)` are called as it goes."""
    country = check_country(country)
    # strict: a quote left open is an error, not a field that silently swallows the next rows
    lines = CsvLines(stream)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(
            "the CSV file is empty: it needs a header row with a phone column"
        ) from None
    except csv.Error as e:
        raise InvalidInput(f"line 1: {e}") from e
    names = [field_name(h) for h in header]
    if "phone" not in names:
        raise InvalidInput(f"the CSV header has no phone column (it has: {', '.join(header)})")
    duplicates = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicates:
        raise InvalidInput(f"the CSV header repeats the column(s) {', '.join(duplicates)}")
    phone_at = names.index("phone")
    fields = [(i, n) for i, n in enumerate(names) if i != phone_at and n]
    conn = db
    account = accounts.resolve(conn, account_ref)
    target = lookup.find(conn, "lists", list_ref, account["id"])
    result = ImportResult(list_name=target["name"], fields=[n for _, n in fields])
    # The checked rows wait in a temporary file (one "phone TAB fields-JSON" line each: neither
    # holds a tab or a line break), so that memory stays flat whatever the file's size.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as checked:
        try:
            for line, cells, too_long in csv_rows(reader, lines):
                result.rows += 1
                problem = None
                if too_long:
                    problem, cells = (too_long, ""), []
                elif not any(c.strip() for c in cells):
                    result.rows -= 1  # blank line
                    continue
                elif len(cells) > len(names):
                    problem = (f"{len(cells)} cells for {len(names)} columns", "")
                else:
                    raw = cells[phone_at] if phone_at < len(cells) else ""
                    try:
                        phone = normalise_phone(raw, country)
                    except InvalidInput as e:
                        problem = (e.message, raw)
                if problem:
                    result.invalid_count += 1
                    if strict:
                        raise InvalidInput(
                            f"line {line}: {problem[1]!r}: {problem[0]} (nothing was imported)"
                        )
                    if len(result.invalid) < MAX_INVALID_KEPT:
                        result.invalid.append((line, problem[1], problem[0]))
                    continue
                values = {
                    n: cells[i].strip() for i, n in fields if i < len(cells) and cells[i].strip()
                }
                checked.write(f"{phone}\t{json.dumps(values, ensure_ascii=False)}\n")
                result.imported += 1
                if progress and result.rows % BATCH == 0:
                    progress("checking", result.rows, None)
        except csv.Error as e:
            raise InvalidInput(f"line {reader.line_num}: {e}") from e
        if result.rows == 0:
            raise InvalidInput("the CSV file has a header but no rows")
        if result.imported == 0:
            raise InvalidInput(
                f"none of the {result.rows:,} rows has a valid phone number"
                f" (first problem: line {result.invalid[0][0]}:"
                f" {result.invalid[0][2]})"
            )
        checked.seek(0)
        before = store.scalar(conn, "SELECT coalesce(max(id), 0) FROM contacts")
        now = clock.now_text()
        written = 0
        rows = (line.rstrip("\n").split("\t", 1) for line in checked)
        try:
            for chunk in store.chunks(rows, CHUNK_SECONDS):
                with store.chunk(conn):
                    result.added_to_list += _flush(conn, account["id"], target["id"], chunk, now)
                written += len(chunk)
                if progress:
                    progress("writing", written, result.imported)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted after writing {written:,} of {result.imported:,} contacts: run the"
                " same import again to finish it (rows imported already change nothing)"
            ) from None
    result.new_contacts = store.scalar(
        conn,
        "SELECT count(*) FROM contacts WHERE id > ? AND account_id = ? AND created_at = ?",
        (before, account["id"], now),
    )
    return result


def _flush(
    conn: store.Store, account_id: int, list_id: int, batch: list[list[str]], now: str
) -> int:
    if not batch:
        return 0
    merged = dialect.json_merge(conn, "contacts.fields", "excluded.fields")
    upsert = (
        "INSERT INTO contacts (account_id, phone, fields, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?)"
        f" ON CONFLICT (account_id, phone) DO UPDATE SET fields = {merged},"
        " updated_at = excluded.updated_at"
    )
    if conn.dialect == dialect.POSTGRES:
        # PostgreSQL draws an id from the sequence for every row an INSERT … ON CONFLICT
        # proposes, conflicting or not: a contact that exists is updated first, so that the
        # new ones are numbered as in SQLite, without gaps (the ON CONFLICT is for a contact
        # another import adds meanwhile).
        upsert = (
            "WITH new (account_id, phone, fields, now) AS (VALUES (?, ?, ?, ?)),"
            " changed AS (UPDATE contacts SET"
            f" fields = {dialect.json_merge(conn, 'contacts.fields', 'new.fields')},"
            " updated_at = new.now FROM new"
            " WHERE contacts.account_id = new.account_id AND contacts.phone = new.phone"
            " RETURNING 1)"
            " INSERT INTO contacts (account_id, phone, fields, created_at, updated_at)"
            " SELECT account_id, phone, fields, now, now FROM new"
            " WHERE NOT EXISTS (SELECT 1 FROM changed)"
            f" ON CONFLICT (account_id, phone) DO UPDATE SET fields = {merged},"
            " updated_at = excluded.updated_at"
        )
        conn.executemany(upsert, [(account_id, phone, values, now) for phone, values in batch])
    else:
        conn.executemany(upsert, [(account_id, phone, values, now, now) for phone, values in batch])
    cursor = conn.executemany(
        "INSERT INTO list_members (list_id, contact_id, added_at)"
        " SELECT ?, id, ? FROM contacts WHERE account_id = ? AND phone = ?"
        " ON CONFLICT DO NOTHING",
        [(list_id, now, account_id, phone) for phone, _ in batch],
    )
    return cursor.rowcount


def list_contacts(
    db: store.Store, account_ref: str | None, list_ref: str | None = None, limit: int | None = None
) -> paging.Page:
    """The account's contacts (or a list's), oldest first: the first `limit` and how many in all."""
    account = accounts.resolve(db, account_ref)
    params: list = [account["id"]]
    join = ""
    if list_ref:
        target = lookup.find(db, "lists", list_ref, account["id"])
        join = "JOIN list_members m ON m.contact_id = c.id AND m.list_id = ?"
        params.insert(0, target["id"])
    found = paging.fetch(
        db,
        f"SELECT c.id, c.phone, c.fields, c.created_at FROM contacts c {join}"
        " WHERE c.account_id = ?",
        "ORDER BY c.id",
        tuple(params),
        limit,
    )
    for item in found.rows:
        item["fields"] = json.loads(item["fields"])
    return found


def find_contact(conn: store.Store, account_id: int, ref: str, country: str = "US") -> dict:
    text = ref.strip()
    if validate.is_id(text) and len(text) < 9:
        found = store.row(
            conn, "SELECT * FROM contacts WHERE id = ? AND account_id = ?", (int(text), account_id)
        )
    else:
        found = store.row(
            conn,
            "SELECT * FROM contacts WHERE phone = ? AND account_id = ?",
            (normalise_phone(text, check_country(country)), account_id),
        )
    if not found:
        raise NotFound(f"no contact {text!r} in this account")
    found["fields"] = json.loads(found["fields"])
    return found
