"""The click journal: where a running server keeps what it acknowledged before the database has
it.

A request thread appends one record (one line) with one `write()` to a file of its own, then
answers; the server's drain (core.writer) reads the journal in order and stores what it reads in
the database in batches. So a redirect never waits on a database lock or on another thread's
commit, and what it acknowledged survives a SIGKILL of the server (the page cache holds it; no
fsync, so a power cut can lose the last second or so, as SQLite's WAL with synchronous=NORMAL
can).

Exactly once: the database holds, in the same transaction as the rows a batch stored, how far
the journal has been drained (`journal_state`: segment and byte offset). A restart goes on from
there, so nothing is stored twice and nothing acknowledged is lost.

On disk, a journal is a folder: `id` (which row of journal_state is its own), `lock` (held by
the one server using it) and numbered segments, `00000001.jnl`, … Appends always go to the
newest segment, which is new at every start: a record torn by a kill (a partial last line) is
therefore always the last bytes of an older segment, skipped with a log line, never glued to a
later record. A segment is removed once drained; the drain starts a new one when the current
one has grown large and everything in it is stored.

A record is `CRC32-in-hex SPACE JSON-array NEWLINE`; JSON escapes every control character, so a
record is exactly one line, and the checksum tells a torn or damaged line from a good one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from trackly_cli.core.errors import InvalidInput

log = logging.getLogger("trackly.journal")

SUFFIX = ".jnl"
_SEGMENT = re.compile(r"^(\d{8})\.jnl$")
# The drain reads at most this much per batch.
READ_BYTES = 1 << 20

Position = tuple[int, int]  # (segment, byte offset): the end of what is appended or drained


class JournalError(OSError):
    """The journal cannot take a record: the request must not be acknowledged."""


def default_folder(db_path: str | Path) -> Path:
    """Beside the database: `trackly.db` keeps its journal in `trackly.db.journal/`."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".journal")


def encode(record: list | tuple) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def decode(line: bytes) -> list | None:
    """A record, or None for a line that is not a whole, undamaged one."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        record = json.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, list) and record else None


def segment_name(number: int) -> str:
    return f"{number:08d}{SUFFIX}"


def segments(folder: Path) -> list[int]:
    """The segment numbers on disk, oldest first."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_SEGMENT.match, names) if m)


def read_id(folder: Path) -> str | None:
    try:
        return (folder / "id").read_text(encoding="ascii").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


class Journal:
    """The append side, used by request threads, and what the drain needs to read it."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.id = ""
        self._lock = threading.Lock()
        self._lock_file: int | None = None
        self._fd: int | None = None
        self._segment = 0
        self._offset = 0
        self._broken = False  # the current segment's tail is unusable: start a new one first
        self.failures = 0

    # -- life cycle ------------------------------------------------------------------------

    def open(self) -> Journal:
        """Take the folder (created if needed) for this process."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock_file = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise InvalidInput(
                f"cannot use the click journal folder {self.folder}: {e.strerror or e}"
                " (choose another with --journal DIR)"
            ) from e
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lock_file)
            self._lock_file = None
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InvalidInput(
                    f"the click journal {self.folder} is in use by another `trackly serve`"
                    " (give each server its own with --journal DIR)"
                ) from None
            raise InvalidInput(f"cannot lock the click journal {self.folder}: {e}") from e
        try:
            self.id = read_id(self.folder) or self._new_id()
        except OSError as e:
            self.close()
            raise InvalidInput(
                f"cannot write the click journal in {self.folder}: {e.strerror or e}"
            ) from e
        return self

    def start(self, after: int = 0) -> None:
        """Start appending to a new segment, numbered after every one on disk and after
        `after` (the drained position's segment, whose file may be gone)."""
        try:
            self._start_segment(max([after, *segments(self.folder)]) + 1)
        except OSError as e:
            raise InvalidInput(
                f"cannot write the click journal in {self.folder}: {e.strerror or e}"
            ) from e

    def _new_id(self) -> str:
        journal_id = secrets.token_hex(8)
        temporary = self.folder / "id.tmp"
        temporary.write_text(journal_id + "\n", encoding="ascii")
        os.replace(temporary, self.folder / "id")
        return journal_id

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        if self._lock_file is not None:
            os.close(self._lock_file)  # releases the flock
            self._lock_file = None

    # -- appending (request threads) -------------------------------------------------------

    @property
    def position(self) -> Position:
        """The end of what has been appended (every record acknowledged so far is before it)."""
        return (self._segment, self._offset)

    def append(self, data: bytes) -> None:
        """Write one encoded record, or raise JournalError having kept nothing of it."""
        with self._lock:
            if self._fd is None:
                raise JournalError(errno.EBADF, "the click journal is closed")
            if self._broken:
                self._recover()
            start = self._offset
            try:
                written = os.write(self._fd, data)
            except OSError as e:
                written = -1
                error = e
            if written == len(data):
                self._offset = start + written
                return
            self.failures += 1
            if written >= 0:
                error = OSError(errno.ENOSPC, "short write (is the disk full?)")
            # Take back whatever part of the record reached the file, so that the next record
            # does not follow a torn one; failing that, the next append starts a new segment.
            try:
                os.ftruncate(self._fd, start)
                os.lseek(self._fd, start, os.SEEK_SET)
            except OSError:
                self._broken = True
            raise JournalError(error.errno, f"cannot write the click journal: {error.strerror}")

    def _recover(self) -> None:
        try:
            self._start_segment(self._segment + 1)
        except OSError as e:
            raise JournalError(e.errno, f"cannot start a new journal segment: {e.strerror}") from e

    def _start_segment(self, number: int) -> None:
        fd = os.open(
            self.folder / segment_name(number),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
            0o600,
        )
        old = self._fd
        self._fd, self._segment, self._offset, self._broken = fd, number, 0, False
        if old is not None:
            os.close(old)

    def rotate(self) -> int:
        """Start a new segment for appends (the drain does, once the current one is drained
        and large); returns the new segment's number. The old one receives nothing more."""
        with self._lock:
            self._start_segment(self._segment + 1)
            return self._segment

    # -- reading (the drain) ---------------------------------------------------------------

    def path(self, segment: int) -> Path:
        return self.folder / segment_name(segment)

    def remove_before(self, segment: int) -> None:
        """Delete the segments older than `segment` (all drained)."""
        for number in segments(self.folder):
            if number >= segment:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(number))


def read(path: Path, offset: int, limit: int = READ_BYTES) -> tuple[list[bytes], int, bytes, bool]:
    """The whole lines from `offset` (at most about `limit` bytes, always at least one line if
    there is one), the offset after them, what follows the last newline (a record being
    written, or a torn one), and whether that reaches the end of the file."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
            if data and b"\n" not in data:  # one record longer than the limit
                data += f.read()
            eof = not f.read(1)
    except FileNotFoundError:
        return [], offset, b"", True
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1] if end else []
    return lines, offset + end, data[end:], eof


def pending(folder: Path, position: Position) -> Iterator[tuple[int, int, int]]:
    """(segment, bytes, records) not yet drained, per segment, given the drained position."""
    segment, offset = position
    for number in segments(folder):
        if number < segment:
            continue
        start = offset if number == segment else 0
        try:
            with open(folder / segment_name(number), "rb") as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            continue
        yield number, len(data), data.count(b"\n")
