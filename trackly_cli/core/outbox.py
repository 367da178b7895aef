"""The outbox: the CSV of a campaign's messages that the operator hands to the SMS gateway.

`trackly shorten --output` writes it as it makes the messages; `trackly campaign outbox` writes
it again from the database, byte for byte the same (the texts and links are stored as sent), so
both go through `line`. The file is written under no name until it is complete (`PendingFile`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from trackly_cli.core import dialect, store
from trackly_cli.core.errors import InvalidInput

COLUMNS = ["phone", "message_id", "text", "segments", "encoding"]
HEADER = ",".join(COLUMNS) + "\r\n"
_QUOTED = re.compile(r'[",\r\n]')


def cell(text: str) -> str:
    """A cell of the outbox CSV as the csv module writes it (RFC 4180, quoted only when it must
    be), at a fifth of the cost per row; a phone, a number or an encoding never needs quotes."""
    if _QUOTED.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def line(phone: str | None, message_id: int, text: str, segments: int, encoding: str) -> str:
    """One message's row of the outbox (its text as the gateway must send it: never altered)."""
    return f"{phone or ''},{message_id},{cell(text)},{segments},{encoding}\r\n"


# A campaign's messages in the order shorten wrote them (message ids follow the list's contacts),
# each with why it must not be sent again: its number opted out since, or its person was erased
# (`trackly contacts erase` leaves the text "(erased)" and no contact).
_CAMPAIGN_ROWS = (
    "SELECT c.phone, m.id, m.body, m.segments, m.encoding,"
    " CASE WHEN EXISTS (SELECT 1 FROM optouts o WHERE o.account_id = m.account_id"
    "  AND o.phone = c.phone) THEN 'optout'"
    "  WHEN m.contact_id IS NULL AND m.body = '(erased)' THEN 'erased' ELSE '' END"
    " FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id"
    " WHERE m.campaign_id = ? ORDER BY m.id"
)


@dataclass
class Written:
    messages: int = 0
    opted_out: int = 0  # messages left out: their number opted out since
    erased: int = 0  # messages left out: their person was erased


def write_campaign(conn: store.Store, campaign_id: int, path: Path) -> Written:
    """Write the outbox of a complete campaign to `path` again, streaming its messages (a
    million of them take no more memory than one), the same rows as shorten wrote but for the
    numbers that opted out since and the people erased since, which are left out (and
    counted): the file is for sending. It appears only once it is complete."""
    pending = PendingFile(path)
    written = Written()
    try:
        handle = pending.handle
        for text in campaign_text(conn, campaign_id, written):
            handle.write(text)
        try:
            pending.publish()
        except OSError as e:
            raise InvalidInput(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        pending.discard()
        raise
    return written


def campaign_text(conn: store.Store, campaign_id: int, written: Written | None = None):
    """The outbox of a complete campaign as `write_campaign` writes it, in pieces of up to 2,000
    rows (the header first): a generator that holds one piece at a time, for a file or an HTTP
    answer (the API's outbox.csv). What it leaves out is counted in `written`."""
    written = written if written is not None else Written()
    cursor = dialect.stream(conn, _CAMPAIGN_ROWS, (campaign_id,))
    try:
        yield HEADER
        while rows := cursor.fetchmany(2000):
            kept = [row[:5] for row in rows if not row[5]]
            yield "".join(line(*row) for row in kept)
            written.messages += len(kept)
            written.opted_out += sum(1 for row in rows if row[5] == "optout")
            written.erased += sum(1 for row in rows if row[5] == "erased")
    finally:
        cursor.close()


class PendingFile:
    """The outbox CSV, written in its folder under no name until it is complete: a run that is
    killed leaves no file of phone numbers behind (#15). On Linux the file is opened with
    O_TMPFILE and linked into place at the end; where that is not possible, it is a hidden
    `.NAME.partial` file, removed when the run fails or is interrupted (a kill -9 there leaves
    it). Readable by its owner only, as what it holds is personal data."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial: Path | None = None
        try:
            if not os.path.isdir("/proc/self/fd"):  # (where the unnamed file is linked from)
                raise OSError("no /proc")
            fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except (AttributeError, OSError):
            self.partial = path.with_name(f".{path.name}.partial")
            try:
                fd = os.open(
                    self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
                )
            except OSError as e:
                raise InvalidInput(f"cannot write {path}: {e.strerror or e}") from e
        self.handle = os.fdopen(fd, "w", newline="", encoding="utf-8")

    def publish(self) -> None:
        """Give the complete file its name (replacing a file of that name)."""
        self.handle.flush()
        if self.partial is None:
            named = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            named.unlink(missing_ok=True)
            folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:  # linkat(…, AT_SYMLINK_FOLLOW): the file behind the descriptor gets the name
                os.link(
                    f"/proc/self/fd/{self.handle.fileno()}",
                    named.name,
                    dst_dir_fd=folder,
                    follow_symlinks=True,
                )
            finally:
                os.close(folder)
            self.handle.close()
            os.replace(named, self.path)
        else:
            self.handle.close()
            os.replace(self.partial, self.path)

    def discard(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        if self.partial is not None:
            self.partial.unlink(missing_ok=True)
