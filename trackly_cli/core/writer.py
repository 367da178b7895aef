"""The one writer of a running server: the drain, a thread that owns the write connection and
moves the click journal (core.journal) into the database, and runs the jobs that must answer
with what they wrote (postbacks).

Redirects, Continue hops and pixels append a record to the journal and answer at once: they
never wait on this thread, on a commit or on a database lock. The drain reads what was appended
since its last commit and stores it in one transaction, together with its new position in the
journal (`journal_state`), so a restart after a kill stores every record exactly once. Under
load the batches simply grow: there is no hand-off per request to wait for.

A job (`submit`) runs in the drain's transaction after every record that was in the journal
when it was submitted, so a postback that follows its click is attributed to it. The job's
thread waits for its commit, at most `JOB_WAIT_SECONDS`; a job still queued then is withdrawn
and the caller told to try again (a postback answers 503), so no request hangs on a database
that another process keeps locked.

The drain also keeps the WAL small: the server's request threads read the database only for
links missing from memory, so between batches the drain can checkpoint and, once the WAL has
grown, restart it from the beginning (SQLite cannot while readers and a writer never pause:
checkpoint starvation).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from trackly_cli.core import dialect, journal, migrate, records, store
from trackly_cli.core.errors import TracklyError
from trackly_cli.core.journal import Journal, Position

T = TypeVar("T")
log = logging.getLogger("trackly.writer")

# Records are read in chunks of journal.READ_BYTES (a few thousand clicks): one transaction.
IDLE_SECONDS = 0.5
# Woken by a record, the drain lets more arrive before it stores them (nobody waits for a
# record to be stored): one commit per window rather than one per click, which would write
# every rollup page again for each. A job (a postback waiting) is stored at once.
BATCH_SECONDS = 0.05
# A lock held by another process makes a batch wait this long, then retry later (the journal
# keeps the clicks meanwhile).
DRAIN_BUSY_TIMEOUT_MS = 250
# On PostgreSQL another node's drain may hold a report counter row for the length of its batch
# (they take such rows in one order: clicks.record_many), so a wait is normal and short.
DRAIN_LOCK_WAIT_MS_POSTGRES = 2000
# ...and a batch is smaller there (a few hundred clicks), so that it holds such rows briefly.
POSTGRES_READ_BYTES = 128 << 10
STARTUP_BUSY_TIMEOUT_MS = 30_000
# The longest the drain waits for its turn (a job's chunk, and its checkpoint, are shorter): a job
# stopped while it holds its turn (Ctrl-Z) must not hang the drain and the postbacks behind it.
TURN_SECONDS = 2.0
RETRY_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0)
JOB_WAIT_SECONDS = 10.0
DRAIN_CACHE_KIB = 64 << 10
BEHIND_LOG_SECONDS = 10.0
# The WAL: checkpointed every second; restarted (so that it is reused from its start) once it
# holds more than RESTART_WAL_BYTES; a log line once it passes WARN_WAL_BYTES.
CHECKPOINT_SECONDS = 1.0
RESTART_WAL_BYTES = 4 << 20
RESTART_BUSY_TIMEOUT_MS = 100
JOURNAL_SIZE_LIMIT = store.JOURNAL_SIZE_LIMIT
WARN_WAL_BYTES = 64 << 20


class WriterClosed(RuntimeError):
    pass


class WriterBusy(RuntimeError):
    """The database did not take a job in time (another process holds its lock): try again."""


_QUEUED, _RUNNING, _DONE, _WITHDRAWN = range(4)


class _Job:
    __slots__ = ("done", "error", "fn", "position", "result", "state")

    def __init__(self, fn: Callable[[store.Store], Any], position: Position) -> None:
        self.fn = fn
        self.position = position
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.state = _QUEUED


_STOP = object()


class Writer:
    def __init__(
        self,
        db_path: str | Path,
        journal_folder: str | Path | Journal | None = None,
        shared: Callable[[str | None], bool] | None = None,
    ) -> None:
        """`shared`: where other servers store hits of the same links (several nodes or
        workers), whether an IP is on the allow list, for the bursts only they together show
        (records.apply)."""
        self.shared = shared
        self.db_path = store.location(db_path)
        self.journal = (
            journal_folder
            if isinstance(journal_folder, Journal)
            else Journal(journal_folder or journal.default_folder(self.db_path))
        )
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: list[_Job] = []
        self._states = threading.Lock()  # job state changes: queued -> running | withdrawn
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trackly-drain", daemon=True)
        self._conn: store.Store | None = None
        self._read_bytes = journal.READ_BYTES
        self._closing = False
        self._next_click_id: int | None = None
        self.drained: Position = (0, 0)
        self.commits = 0
        self.skipped = 0
        self.last_error: str | None = None
        self._failures = 0
        self._checkpointed_at = 0.0
        self._wal_warned_at = 0.0
        self._behind_logged_at = 0.0

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> Writer:
        self.journal.open()
        try:
            conn = store.connect(self.db_path, check_same_thread=False)
            try:
                dialect.lock_wait(conn, STARTUP_BUSY_TIMEOUT_MS)
                migrate.apply(conn)
                self.drained = records.journal_position(conn, self.journal)
                dialect.lock_wait(conn, _drain_lock_wait(conn))
                dialect.claim_rollup_shard(conn)
                if conn.dialect == dialect.SQLITE:
                    self._tune_sqlite(conn)
                records.prepare(conn)
                self.journal.start(after=self.drained[0])
            except BaseException:
                conn.close()
                raise
        except BaseException:
            self.journal.close()
            raise
        self._conn = conn
        self._read_bytes = (
            journal.READ_BYTES if conn.dialect == dialect.SQLITE else POSTGRES_READ_BYTES
        )
        backlog = self.behind
        if backlog:
            log.info("click journal: storing %s bytes kept from the last run", f"{backlog:,}")
        self._thread.start()
        return self

    @staticmethod
    def _tune_sqlite(conn: store.Store) -> None:
        """The drain's SQLite settings. (PostgreSQL's WAL and checkpoints are the server's.)"""
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        # Each click updates a few pages of indexes keyed by random ids (link, message):
        # with SQLite's default 2 MB cache, most of them would be read again from the
        # OS for every batch.
        conn.execute(f"PRAGMA cache_size = {-DRAIN_CACHE_KIB}")
        # Journal records run without foreign key checks: every key they hold comes
        # from a link row, and nothing deletes links, messages or accounts (but for a
        # campaign still being written, whose links nobody has). Jobs run with them
        # (see _commit).
        conn.execute("PRAGMA foreign_keys = OFF")

    def close(self, timeout: float = 30.0) -> None:
        """Store everything already acknowledged, then stop."""
        if self._closing:
            return
        self._closing = True
        self._queue.put(_STOP)
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("click journal: the drain did not stop within %.0f s", timeout)
            return  # the records stay in the journal, stored at the next start
        self.journal.close()

    # -- the request side ------------------------------------------------------------------

    def append(self, record: list | tuple) -> None:
        """Keep a record in the journal (raises journal.JournalError if it cannot)."""
        if self._closing:
            raise WriterClosed("the server is shutting down")
        self.journal.append(journal.encode(record))
        if not self._wake.is_set():
            self._wake.set()

    def record_click(self, click) -> None:
        self.append(records.click(click))

    def submit(self, fn: Callable[[store.Store], T], timeout: float = JOB_WAIT_SECONDS) -> T:
        """Run `fn(connection)` in the drain's next transaction, after every record appended
        so far; return its result once that transaction has committed (or raise its error)."""
        if self._closing:
            raise WriterClosed("the server is shutting down")
        job = _Job(fn, self.journal.position)
        self._queue.put(job)
        self._wake.set()
        if not job.done.wait(timeout):
            # Withdrawn if it has not started; if it is running, its transaction either commits
            # or fails soon (every wait in it is bounded), and a failed one is queued again.
            while not job.done.wait(0.05):
                with self._states:
                    if job.state == _QUEUED:
                        job.state = _WITHDRAWN
                        raise WriterBusy(
                            f"the database did not take the write within {timeout:g} s"
                            + (f" ({self.last_error})" if self.last_error else "")
                        )
        if job.error is not None:
            raise job.error
        return job.result

    def sync(self, timeout: float = JOB_WAIT_SECONDS) -> None:
        """Return once everything appended so far is in the database."""
        self.submit(lambda conn: None, timeout)

    @property
    def behind(self) -> int:
        """Bytes acknowledged but not yet in the database."""
        return sum(size for _, size, _ in journal.pending(self.journal.folder, self.drained))

    # -- the drain -------------------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        stopping = False
        more = False  # the last batch stopped short of what was in the journal
        try:
            while True:
                if not stopping and not more:
                    self._wake.wait(IDLE_SECONDS)
                    if self._queue.empty() and not self._pending:
                        time.sleep(BATCH_SECONDS)
                self._wake.clear()
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        # From here on a request is refused rather than kept after the last
                        # read: what the journal holds now is all there is to store.
                        self.journal.seal()
                        stopping = True
                    else:
                        self._pending.append(item)
                try:
                    more = self._drain_once(conn)
                except (*dialect.errors(conn), OSError) as e:  # the database (or the journal's
                    # files) refused the batch: retry it later
                    more = True
                    self._failed(conn, e)
                    if stopping and self._failures > len(RETRY_SECONDS):
                        break
                    time.sleep(RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS)) - 1])
                    if store.broken(conn):  # (PostgreSQL restarted: the journal kept the clicks)
                        conn = self._conn = self._reconnect(conn)
                if more:
                    continue
                self._housekeeping(conn)
                if stopping and not self._queue.empty():
                    continue
                if stopping:
                    break
        except BaseException:
            log.exception("click journal: the drain stopped")
            raise
        finally:
            self._finish(conn)

    def _drain_once(self, conn: store.Store) -> bool:
        """Store the next batch; True if the journal held more than one batch takes."""
        batch, end, more = self._read()
        with self._states:
            jobs = [j for j in self._pending if j.position <= end and j.state == _QUEUED]
            for job in jobs:
                job.state = _RUNNING
        if not batch and not jobs and end == self.drained:
            self._pending = [j for j in self._pending if j.state == _QUEUED]
            return False
        try:
            self._commit(conn, batch, jobs, end)
        except BaseException:
            with self._states:
                for job in jobs:
                    job.state = _QUEUED
            raise
        self.drained = end
        self._failures = 0
        self.last_error = None
        for job in jobs:
            job.state = _DONE
            job.done.set()
        self._pending = [j for j in self._pending if j.state == _QUEUED]
        self.journal.remove_before(end[0])
        return more

    def _read(self) -> tuple[list[list], Position, bool]:
        """The records after the drained position (up to about journal.READ_BYTES), the
        position after them, and whether more were left for the next batch."""
        segment, offset = self.drained
        batch: list[list] = []
        while True:
            # What was appended is read before the file: a segment older than the one appended
            # to then gets nothing more, and the current one holds whole records up to there.
            current, appended = self.journal.position
            until = appended if segment == current else None
            lines, end, rest, eof = journal.read(
                self.journal.path(segment), offset, limit=self._read_bytes, until=until
            )
            for line in lines:
                record = journal.decode(line)
                if record is None:
                    self.skipped += 1
                    log.warning(
                        "click journal: skipped a damaged record in %s at byte %s",
                        journal.segment_name(segment),
                        f"{offset:,}",
                    )
                else:
                    batch.append(record)
                offset += len(line) + 1
            # Once an older segment is read to its end, go on with the next one.
            if segment >= current:
                return batch, (segment, end), end < appended
            if not eof or (lines and len(batch) > 1000):
                return batch, (segment, end), True
            if rest:
                self.skipped += 1
                log.warning(
                    "click journal: skipped a torn record at the end of %s (%s bytes)",
                    journal.segment_name(segment),
                    len(rest),
                )
            later = [n for n in journal.segments(self.journal.folder) if n > segment]
            segment, offset = (later[0] if later else current), 0

    def _commit(
        self, conn: store.Store, batch: list[list], jobs: list[_Job], end: Position
    ) -> None:
        with_keys = bool(jobs) and conn.dialect == dialect.SQLITE
        if with_keys:
            conn.execute("PRAGMA foreign_keys = ON")
        try:
            # In turn with Trackly's chunked jobs (store.turn): their chunks would otherwise
            # keep the lock between them, and the drain fall behind.
            with store.turn(conn, timeout=TURN_SECONDS):
                conn.execute(dialect.begin_write(conn))
                try:
                    self._next_click_id = records.apply(
                        conn, batch, self._next_click_id, log, self.shared
                    )
                    for job in jobs:
                        conn.execute("SAVEPOINT job")
                        try:
                            job.result = job.fn(conn)
                        except dialect.transient(conn):
                            raise  # the database, not the job: the whole batch is retried
                        except Exception as e:
                            job.error = e
                            conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                    records.save_position(conn, self.journal, end)
                    conn.execute("COMMIT")
                except BaseException:
                    self._next_click_id = None
                    for job in jobs:
                        job.result, job.error = None, None
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            self.commits += 1
        finally:
            if with_keys:
                conn.execute("PRAGMA foreign_keys = OFF")

    def _reconnect(self, conn: store.Store) -> store.Store:
        """A new connection for one that is lost; the lost one while none can be opened (the
        next failure tries again)."""
        try:
            fresh = store.connect(self.db_path, check_same_thread=False)
        except TracklyError as e:
            self.last_error = e.message
            return conn
        with contextlib.suppress(Exception):
            conn.close()
        dialect.lock_wait(fresh, _drain_lock_wait(fresh))
        dialect.claim_rollup_shard(fresh)
        records.prepare(fresh)
        log.info("click journal: connected to the database again")
        return fresh

    def _failed(self, conn: store.Store, error: Exception) -> None:
        self._failures += 1
        self.last_error = str(error)
        now = time.monotonic()
        if now - self._behind_logged_at >= BEHIND_LOG_SECONDS or self._failures == 1:
            self._behind_logged_at = now
            log.warning(
                "click journal: %s bytes not yet in the database (%s); the server keeps"
                " answering and stores them as soon as the database takes them",
                f"{self.behind:,}",
                error,
            )

    def _housekeeping(self, conn: store.Store) -> None:
        """Between batches: the WAL is checkpointed (and restarted once it has grown). (On
        PostgreSQL, the server's own checkpoints see to its WAL.)"""
        if conn.dialect != dialect.SQLITE:
            return
        now = time.monotonic()
        if now - self._checkpointed_at >= CHECKPOINT_SECONDS:
            self._checkpointed_at = now
            checkpoint(conn, self.db_path)
            wal = store.wal_bytes(self.db_path)
            if wal >= WARN_WAL_BYTES and now - self._wal_warned_at >= 60:
                self._wal_warned_at = now
                log.warning(
                    "the WAL file is %s MB: a long read (a report, a backup) keeps SQLite from"
                    " reusing it; it shrinks once that ends",
                    f"{wal / 1e6:,.0f}",
                )

    def _finish(self, conn: store.Store) -> None:
        self.journal.seal()  # (already, unless the drain itself failed)
        left = self.journal.position > self.drained
        with self._states:
            for job in self._pending:
                if job.state == _QUEUED:
                    job.state = _WITHDRAWN
                    job.error = WriterClosed("the server is shutting down")
                    job.done.set()
        while True:  # a job queued while the writer was stopping is refused, never left waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item.error = WriterClosed("the server is shutting down")
                item.done.set()
        if left:
            log.warning(
                "click journal: %s bytes were not stored before stopping; they are kept in %s"
                " and stored at the next start",
                f"{self.behind:,}",
                self.journal.folder,
            )
        else:
            # Everything is stored: the segments go (the next start numbers on from the
            # position recorded in the database).
            self.journal.remove_before(self.journal.position[0] + 1)
        if conn.dialect == dialect.SQLITE:
            with contextlib.suppress(sqlite3.Error):
                checkpoint(conn, self.db_path)
        conn.close()


def _drain_lock_wait(conn: store.Store) -> int:
    return DRAIN_BUSY_TIMEOUT_MS if conn.dialect == dialect.SQLITE else DRAIN_LOCK_WAIT_MS_POSTGRES


def checkpoint(conn: store.Store, db_path: Path) -> None:
    """Copy the WAL into the database; once it has grown, also make the next write start it
    from the beginning (waiting briefly for readers), so that it stops growing, and cut a WAL
    that a long reader made larger than JOURNAL_SIZE_LIMIT back to nothing."""
    size = store.wal_bytes(db_path)
    if size < RESTART_WAL_BYTES:
        store.checkpoint_wal(conn, "PASSIVE", DRAIN_BUSY_TIMEOUT_MS)
    else:
        mode = "TRUNCATE" if size > JOURNAL_SIZE_LIMIT else "RESTART"
        store.checkpoint_wal(conn, mode, RESTART_BUSY_TIMEOUT_MS)
