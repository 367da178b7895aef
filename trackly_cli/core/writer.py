"""The one writer of a running server: a thread that owns the write connection and commits
whatever is queued as one transaction (group commit).

A request hands its write over and waits until the transaction that holds it has committed, so
nothing is acknowledged before it is durable, yet many requests share one commit. The writer
commits as soon as it has work (no fixed wait window), so a lone request is not delayed.

Clicks, the bulk of the traffic, take a fast path: a batch of clicks alone is one multi-row
INSERT outside an explicit transaction (see clicks.record_many), so it costs the thread one
trip through the GIL, which the request threads keep busy, instead of one per statement. Other
jobs (conversions…) are functions run one by one in a BEGIN IMMEDIATE transaction, each in its
own savepoint: a job that fails is undone alone, and its error is raised in the thread that
submitted it.
"""

from __future__ import annotations

import _thread
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from trackly_cli.core import clicks, store

T = TypeVar("T")

MAX_BATCH = 512
# A write lock held by another process (a large `trackly shorten`) makes writes wait rather
# than fail: clicks are delayed, never lost.
WRITER_BUSY_TIMEOUT_MS = 120_000
# The writer does not checkpoint the WAL itself: a helper thread does, every second, so that
# copying pages into the database file is not on any request's path.
CHECKPOINT_SECONDS = 1.0


class WriterClosed(RuntimeError):
    pass


class _Job:
    """A write and the lock its submitter waits on: held until the write is committed (a bare
    lock, not a threading.Event, which costs several times more GIL time per request)."""

    __slots__ = ("click", "done", "error", "fn", "result")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any] | None = None,
        click: clicks.Click | None = None,
    ) -> None:
        self.fn = fn
        self.click = click
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None


_STOP = object()


class Writer:
    def __init__(self, db_path: str | Path, *, max_batch: int = MAX_BATCH) -> None:
        self.db_path = Path(db_path)
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="trackly-writer", daemon=True)
        self._checkpointer = threading.Thread(
            target=self._checkpoint, name="trackly-checkpoint", daemon=True
        )
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._startup_error: BaseException | None = None
        self._closing = False
        self.commits = 0
        self.jobs = 0
        self._next_click_id: int | None = None

    def start(self) -> Writer:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error
        self._checkpointer.start()
        return self

    def _wait(self, job: _Job) -> Any:
        if self._closing:
            raise WriterClosed("the server is shutting down")
        self._queue.put(job)
        job.done.acquire()  # released by the writer once the job is committed
        if job.error is not None:
            raise job.error
        return job.result

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the writer's next transaction; return its result once that
        transaction has committed (or raise its error)."""
        return self._wait(_Job(fn=fn))

    def record_click(self, click: clicks.Click) -> None:
        """Store a click (and its MessageClick); return once it is committed."""
        self._wait(_Job(click=click))

    def close(self, timeout: float = 30.0) -> None:
        """Commit everything already queued, then stop."""
        if self._closing:
            return
        self._closing = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._stopped.set()
        if self._checkpointer.is_alive():
            self._checkpointer.join(timeout)

    def _run(self) -> None:
        try:
            conn = store.connect(self.db_path)
            conn.execute(f"PRAGMA busy_timeout = {WRITER_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            # The click fast path runs without foreign key checks: every key a click row holds
            # comes from a link row, and nothing deletes links, messages or accounts. Jobs run
            # with them (see _commit).
            conn.execute("PRAGMA foreign_keys = OFF")
            clicks.prepare_click_input(conn)
        except BaseException as e:  # reported by start()
            self._startup_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            stopping = False
            while not stopping:
                item = self._queue.get()
                if item is _STOP:
                    break
                batch = [item]
                while len(batch) < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                self._commit(conn, batch)
        finally:
            conn.close()
            # A job queued while the writer was stopping is refused, never left waiting.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    item.error = WriterClosed("the server is shutting down")
                    item.done.release()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        click_jobs = [job for job in batch if job.click is not None]
        try:
            if len(click_jobs) == len(batch) <= clicks.MAX_CLICKS_PER_STATEMENT:
                # One statement, its own transaction: committed when it returns.
                try:
                    self._next_click_id = clicks.record_many(
                        conn, [job.click for job in click_jobs], self._next_click_id
                    )
                except Exception:
                    self._commit_each(conn, click_jobs)
            else:
                # Jobs run with foreign keys (switching recompiles the cached statements, so
                # a batch of clicks alone, too large for one statement, does not switch).
                with_jobs = len(click_jobs) < len(batch)
                if with_jobs:
                    conn.execute("PRAGMA foreign_keys = ON")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    if click_jobs:
                        self._record_clicks(conn, click_jobs)
                    for job in batch:
                        if job.fn is not None:
                            self._run_job(conn, job, job.fn)
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if with_jobs:
                        conn.execute("PRAGMA foreign_keys = OFF")
            self.commits += 1
            self.jobs += len(batch)
        except BaseException as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._next_click_id = None
            for job in batch:
                job.error = e
                job.result = None
        finally:
            for job in batch:
                job.done.release()

    def _commit_each(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        """A batch of clicks failed as one statement: store them one by one, in one
        transaction."""
        conn.execute("BEGIN IMMEDIATE")
        self._store_each(conn, jobs)
        conn.execute("COMMIT")

    def _store_each(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        """Clicks one by one, each in its own savepoint, so that only the click at fault fails
        (numbered from the table again: the failure may be another process's clicks)."""
        self._next_click_id = None
        for job in jobs:
            self._run_job(conn, job, lambda c, click=job.click: clicks.record_many(c, [click]))

    def _record_clicks(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        # The clicks are the batch's first statements: if they fail, roll back to the start of
        # the transaction and store them one by one, to find the one that fails.
        try:
            self._next_click_id = clicks.record_many(
                conn, [job.click for job in jobs], self._next_click_id
            )
        except Exception:
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            self._store_each(conn, jobs)

    @staticmethod
    def _run_job(conn: sqlite3.Connection, job: _Job, fn: Callable) -> None:
        conn.execute("SAVEPOINT job")
        try:
            job.result = fn(conn)
        except Exception as e:
            job.error = e
            conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")

    def _checkpoint(self) -> None:
        conn = store.connect(self.db_path)
        try:
            while not self._stopped.wait(CHECKPOINT_SECONDS):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    time.sleep(CHECKPOINT_SECONDS)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()
