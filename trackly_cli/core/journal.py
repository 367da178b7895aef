"""The click journal: where a running server keeps what it acknowledged before the database has
it.

A request thread copies one record (one line) into the journal, then answers; the server's
drain (core.writer) reads the journal in order and stores what it reads in the database in
batches. So a redirect never waits on a database lock or on another thread's commit, and what it
acknowledged survives a SIGKILL of the server: the journal is a file mapped into memory, so the
copy lands in the kernel's page cache, which outlives the process. Nothing is fsynced, so a
power cut can lose the last seconds, as SQLite's WAL with synchronous=NORMAL can.

Why a mapping rather than write(): a write() releases the GIL, and getting it back behind the
other request threads costs more than everything else the journal does (measured: an append
under a lock with write() halved the server's throughput). A copy into a mapping is a memcpy
under the GIL. Each segment is allocated in full when it is started (posix_fallocate), so a
full disk shows as a segment that cannot be started, which the request that needed it answers
with a 503, never as a SIGBUS on a page that has no block behind it.

Exactly once: the database holds, in the same transaction as the rows a batch stored, how far
the journal has been drained (`journal_state`: segment and byte offset). A restart goes on from
there, so nothing is stored twice and nothing acknowledged is lost.

On disk, a journal is a folder: `id` (which row of journal_state is its own), `lock` (held by
the one server using it) and numbered segments of SEGMENT_BYTES, `00000001.jnl`, …, zero past
their last record. Appends always go to the newest segment, which is new at every start, and to
the next one when it is full: a record torn by a kill (a partial last line) is therefore always
the last bytes of an older segment, skipped with a log line, never glued to a later record. A
segment is removed once drained.

A record is `CRC32-in-hex SPACE JSON-array NEWLINE`; JSON escapes every control character (and
the result is ASCII), so a record is exactly one line and holds no zero byte, and the checksum
tells a torn or damaged line from a good one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import mmap
import os
import re
import secrets
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from trackly_cli.core.errors import InvalidInput

log = logging.getLogger("trackly.journal")

SUFFIX = ".jnl"
_SEGMENT = re.compile(r"^(\d{8})\.jnl$")
# The drain reads at most this much per batch.
READ_BYTES = 1 << 20
SEGMENT_BYTES = 8 << 20
# After a segment could not be started (a full disk), requests fail at once for this long
# rather than each trying again.
RETRY_SECONDS = 0.5

Position = tuple[int, int]  # (segment, byte offset): the end of what is appended or drained


class JournalError(OSError):
    """The journal cannot take a record: the request must not be acknowledged."""


def default_folder(db_path: str | Path) -> Path:
    """Beside the database: `trackly.db` keeps its journal in `trackly.db.journal/`. A
    PostgreSQL database has no folder: its servers name theirs (`trackly serve` does)."""
    if isinstance(db_path, str) and db_path.startswith(("postgresql://", "postgres://")):
        raise InvalidInput("a server on PostgreSQL needs the folder of its click journal")
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".journal")


# One encoder, made once (json.dumps with options makes one per call: a tenth of the append).
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def encode(record: list | tuple) -> bytes:
    payload = _ENCODER.encode(record).encode()
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

    def __init__(self, folder: str | Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = Path(folder)
        self.segment_bytes = segment_bytes
        self.id = ""
        self._lock = threading.Lock()
        self._lock_file: int | None = None
        self._map: mmap.mmap | None = None
        self._position: Position = (0, 0)
        self._retry_at = 0.0
        self._sealed = False

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
            if self._map is not None:
                self._map.close()
                self._map = None
        if self._lock_file is not None:
            os.close(self._lock_file)  # releases the flock
            self._lock_file = None

    # -- appending (request threads) -------------------------------------------------------

    @property
    def position(self) -> Position:
        """The end of what has been appended (every record acknowledged so far is before it)."""
        return self._position

    def append(self, data: bytes) -> None:
        """Copy one encoded record into the journal, or raise JournalError having kept nothing
        of it. Nothing in here releases the GIL, but for starting a segment."""
        with self._lock:
            if self._map is None or self._sealed:
                raise JournalError(errno.EBADF, "the click journal is closed")
            segment, start = self._position
            end = start + len(data)
            if end > self.segment_bytes:
                if len(data) > self.segment_bytes:
                    raise JournalError(errno.EFBIG, "a record larger than a journal segment")
                self._next_segment(segment + 1)
                segment, start, end = segment + 1, 0, len(data)
            self._map[start:end] = data
            self._position = (segment, end)

    def seal(self) -> None:
        """Take no more records (the server is stopping): once this returns, `position` is the
        end of everything the journal will ever hold."""
        with self._lock:
            self._sealed = True

    def _next_segment(self, number: int) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            raise JournalError(errno.ENOSPC, "cannot write the click journal (still failing)")
        try:
            self._start_segment(number)
        except OSError as e:
            self._retry_at = now + RETRY_SECONDS
            raise JournalError(e.errno, f"cannot write the click journal: {e.strerror or e}") from e

    def _start_segment(self, number: int) -> None:
        path = self.folder / segment_name(number)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, self.segment_bytes)
            mapped = mmap.mmap(fd, self.segment_bytes)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        os.close(fd)  # the mapping keeps the file
        old, self._map = self._map, mapped
        self._position = (number, 0)
        if old is not None:
            old.close()

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


def read(
    path: Path, offset: int, limit: int = READ_BYTES, until: int | None = None
) -> tuple[list[bytes], int, bytes, bool]:
    """The whole lines from `offset` (at most about `limit` bytes, always at least one line if
    there is one, and nothing at or past `until`), the offset after them, what follows the last
    newline (a record being written, or a torn one), and whether that reaches the end of what
    the segment holds (its first zero byte, or the end of the file)."""
    if until is not None:
        limit = max(0, min(limit, until - offset))
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
            if data and b"\n" not in data and b"\0" not in data and until is None:
                data += f.read()  # one record longer than the limit
            ended = b"\0" in data or not f.read(1)
    except FileNotFoundError:
        return [], offset, b"", True
    data = data.split(b"\0", 1)[0]
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1] if end else []
    return lines, offset + end, data[end:], ended


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
                data = f.read().split(b"\0", 1)[0]
        except FileNotFoundError:
            continue
        yield number, len(data), data.count(b"\n")
