"""What a running server does besides answering requests: the daily prune (and the removal of
campaigns that a killed `trackly shorten` left half-written)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from trackly_cli.core import campaigns, retention, store

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
