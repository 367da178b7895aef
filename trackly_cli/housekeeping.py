"""What a running server does besides answering requests: the daily prune (and the removal of
campaigns that a killed `trackly shorten` left half-written), and sending webhook events."""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from trackly_cli.core import campaigns, delivery, idempotency, retention, store, webhooks

log = logging.getLogger("trackly.server")

PRUNE_EVERY_SECONDS = 24 * 3600
PRUNE_FIRST_AFTER_SECONDS = 60
# After a failed prune (a database locked by a long job, say): tries again after these waits,
# then every hour until one succeeds; after that, once a day again.
PRUNE_RETRY_SECONDS = (60, 300, 900, 3600)


class Pruner:
    """Runs `trackly prune` once a day inside the server, in its own thread and connection and
    in small transactions, off the request path."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        first_after: float = PRUNE_FIRST_AFTER_SECONDS,
        every: float = PRUNE_EVERY_SECONDS,
        retries: tuple[float, ...] = PRUNE_RETRY_SECONDS,
    ) -> None:
        self.db_path = db_path
        self.first_after = first_after
        self.every = every
        self.retries = retries
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trackly-prune", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        if self._stop.wait(self.first_after):
            return
        while True:
            try:
                conn = store.connect(self.db_path)
                try:
                    for result in retention.prune(conn, on_chunk=self._check_stop):
                        log.info(
                            "prune: %s: removed %d raw clicks older than %d days, "
                            "anonymised %d IPs",
                            result.account,
                            result.clicks,
                            result.retention_days,
                            sum(result.ips.values()),
                        )
                    events = webhooks.prune(conn)
                    if events:
                        log.info("prune: removed %d webhook events sent or given up", events)
                    idempotency.prune(conn)
                    for campaign in campaigns.remove_leftovers(conn):
                        log.info(
                            "prune: %s: removed campaign %r, left half-written by a"
                            " `trackly shorten` that did not finish",
                            campaign["account"],
                            campaign["name"],
                        )
                finally:
                    conn.close()
            except _Stopping:
                return
            except Exception as e:  # the server carries on, and tries again soon
                wait = self.retries[min(self.failures, len(self.retries) - 1)]
                self.failures += 1
                log.error("prune failed: %s (trying again in %.0f s)", e, wait)
                if self._stop.wait(wait):
                    return
                continue
            self.failures = 0
            if self._stop.wait(self.every):
                return

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopping


class _Stopping(Exception):
    pass


class WebhookSender:
    """Sends webhook events (core.delivery) from a thread of its own, with its own database
    connection, so that no request ever waits for a receiver: `trackly serve` and `trackly
    dashboard` each run one.

    Every `poll` seconds (at once when a post finishes) it claims as many due events as it has
    idle workers, and hands them to `workers` threads that post them; the outcomes come back
    to this thread, which records them. What it holds is bounded by the number of workers,
    whatever the receivers do."""

    def __init__(
        self, db_path: str | Path, *, workers: int = 4, poll: float = 1.0, me: str | None = None
    ) -> None:
        self.db_path = db_path
        self.workers = workers
        self.poll = poll
        self.me = me or delivery.owner()
        self._stop = threading.Event()
        self._todo: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="trackly-webhooks", daemon=True)
        self._posters = [
            threading.Thread(target=self._post, name=f"trackly-webhook-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> WebhookSender:
        for poster in self._posters:
            poster.start()
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; record the posts that finish within `timeout`, give the others back."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout + 5)
        for _ in self._posters:
            self._todo.put(None)

    def __enter__(self) -> WebhookSender:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _post(self) -> None:
        while True:
            job = self._todo.get()
            if job is None:
                return
            event, hook = job
            try:
                outcome = delivery.deliver(event, hook)
            except Exception as e:  # (a bug must not lose the worker: the event is retried)
                outcome = delivery.Outcome(None, f"{type(e).__name__}: {e}", 0)
            self._done.put((event, outcome))

    def _run(self) -> None:
        conn = None
        failures = 0
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = store.connect(self.db_path)
                    released = delivery.release_dead(conn)
                    if released:
                        log.info("webhooks: %d events of a stopped sender to send again", released)
                self._record_finished(conn, wait=0)
                idle = self.workers - self._busy
                if idle and delivery.due_soon(conn):
                    events = delivery.claim(conn, self.me, idle)
                    found = delivery.hooks(conn, {e["webhook_id"] for e in events})
                    for event in events:
                        self._busy += 1
                        self._todo.put((event, found.get(event["webhook_id"])))
                failures = 0
                self._record_finished(conn, wait=self.poll)
            except Exception as e:  # the database away (or locked long): try again soon
                failures += 1
                log.error("webhooks: %s (trying again)", e)
                if conn is not None and store.broken(conn):
                    conn.close()
                    conn = None
                self._stop.wait(min(30.0, self.poll * 2**failures))
        if conn is None:
            return
        try:
            self._record_finished(conn, wait=0, until_idle=5.0)
            delivery.release(conn, self.me)
        except Exception as e:
            log.error("webhooks: stopping: %s", e)
        finally:
            conn.close()

    def _record_finished(self, conn, wait: float, until_idle: float | None = None) -> None:
        """Record the outcomes that came back: the first waited for up to `wait` seconds (or,
        with `until_idle`, all of those in flight, for up to that long)."""
        deadline = time.monotonic() + (until_idle if until_idle is not None else wait)
        while self._busy:
            left = deadline - time.monotonic()
            try:
                found = self._done.get(timeout=left) if left > 0 else self._done.get_nowait()
            except queue.Empty:
                return
            event, outcome = found
            self._busy -= 1
            done = delivery.record(conn, event, outcome)
            if done.disabled:
                log.warning(
                    "webhooks: disabled webhook %d (%s): %s",
                    done.disabled["id"],
                    done.disabled["url"],
                    done.disabled["disabled_reason"],
                )
            if until_idle is None:
                deadline = time.monotonic()  # (after the first, only those already back)
        if not self._busy and wait and until_idle is None:
            self._stop.wait(wait)
