"""The newest short links, held in memory for the redirect server.

A campaign's clicks come within hours of its sending, spread over every one of its links, so a
cache that fills as clicks come misses on nearly every first click, and a SQLite lookup on a
request thread costs it two trips through the GIL (about as much as the rest of the request).
Links never change once created, so the server loads the newest ones as it starts (in the
background), and again when enough new ones have been sent, into sorted columns of machine
integers (`array`): about 50 bytes a link, nothing for the garbage collector to walk, and a
lookup is one bisection. A link that is not in the index (older, newer than the last load, or
asked for before the first load is done) is read from the database.

Link ids are 7 ASCII characters, so each is stored as the integer of its bytes, which sorts as
the text does.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path

from trackly_cli.core import campaigns, dialect, store
from trackly_cli.core.clicks import SENT_AT_SQL, LinkInfo

log = logging.getLogger("trackly.links")

DEFAULT_SIZE = 1_000_000
FETCH = 20_000

# A whole index reads short_links in primary key order, so that SQLite reads the table once,
# in order, and nothing needs sorting (the unary + keeps it from going by the message_id index);
# a segment of new messages goes by that index and sorts in SQLite. Messages are read apart (a
# join would look up a message per link, at random).
_LINKS_SQL = """
SELECT id, account_id, message_id, coalesce(contact_id, 0), coalesce(offer_id, 0), url, domain_id
FROM short_links
WHERE {column} BETWEEN ? AND ?
ORDER BY id
"""
_MESSAGES_SQL = {
    name: f"""
SELECT m.id, coalesce(m.campaign_id, 0), coalesce(m.creative_id, 0), coalesce(m.list_id, 0),
       m.variant, {sent_at}
FROM messages m
WHERE m.id BETWEEN ? AND ?
ORDER BY m.id
"""
    for name, sent_at in SENT_AT_SQL.items()
}


# The first message of each campaign that `trackly shorten` is still writing (one index seek per
# variant: messages are indexed by campaign and variant, in id order).
_BUILDING_SQL = """
SELECT c.building_pid, c.building_host,
       (SELECT min(m.id) FROM messages m
        WHERE m.campaign_id = v.campaign_id AND m.variant = v.label)
FROM campaign_variants v JOIN campaigns c ON c.id = v.campaign_id
WHERE c.building_pid IS NOT NULL
"""


def ready_until(conn: store.Store) -> int:
    """The newest message the index may hold: the one before the first message of a campaign
    still being written. Its links are nobody's yet, and reading them while they are written
    (a million links in a few minutes) would keep long read transactions open, which keep
    SQLite from reusing the WAL; they are indexed once the campaign is complete."""
    newest = conn.execute("SELECT max(id) FROM messages").fetchone()[0] or 0
    firsts = [
        first
        for pid, host, first in conn.execute(_BUILDING_SQL)
        if first is not None and campaigns.is_alive(pid, host)  # (a dead run's: never complete)
    ]
    return min([newest, *(first - 1 for first in firsts)])


def key(link_id: str) -> int:
    return int.from_bytes(link_id.encode("ascii"), "big")


class LinkIndex:
    """An immutable snapshot of the links of the newest messages."""

    def __init__(self) -> None:
        # Per link, sorted by key.
        self._keys = array("q")
        self._message = array("q")
        self._contact = array("q")
        self._account = array("i")
        self._offer = array("i")
        self._domain = array("i")
        self._url = array("i")  # an index into _url_list, for links without an offer; or -1
        self._url_list: list[str] = []
        # Per message, at (message id - first_message_id).
        self._sent_at = array("d")
        self._campaign = array("i")
        self._creative = array("i")
        self._list = array("i")
        self._variant = array("h")  # an index into _variants; -1 for none
        self._variants: list[str | None] = []
        self._campaign_names: dict[int, str] = {}
        self.first_message_id = 1  # this message and newer ones have all their links here
        self.last_message_id = 0  # the newest message when the index was built

    @classmethod
    def load(cls, conn: store.Store, size: int = DEFAULT_SIZE, after: int = 0) -> LinkIndex:
        """The links of the newest messages after message `after`: whole messages, up to
        `size` links (and at least the newest message's)."""
        index = cls()
        # one consistent snapshot
        conn.execute(
            "BEGIN"
            if conn.dialect == dialect.SQLITE
            else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        )
        try:
            newest = ready_until(conn)
            # The size-th newest link's message: the messages after it are loaded whole.
            row = conn.execute(
                "SELECT message_id FROM short_links WHERE message_id > ?"
                " ORDER BY message_id DESC LIMIT 1 OFFSET ?",
                (after, max(size, 1)),
            ).fetchone()
            first = row[0] + 1 if row else 1
            if first > newest > after:  # the newest message alone holds more than `size` links
                first = newest
            index.first_message_id = max(first, after + 1)
            index.last_message_id = max(newest, after)
            bounds = (index.first_message_id, index.last_message_id)
            index._campaign_names = dict(conn.execute("SELECT id, name FROM campaigns"))
            index._fill_messages(conn.execute(_MESSAGES_SQL[conn.dialect], bounds))
            whole = after == 0 and index.first_message_id == 1
            links_sql = _LINKS_SQL.format(column="+message_id" if whole else "message_id")
            index._fill_links(conn.execute(links_sql, bounds))
        finally:
            conn.execute("COMMIT")
        return index

    def _fill_messages(self, cursor: sqlite3.Cursor) -> None:
        variant_number = _numbering(self._variants)
        expected = self.first_message_id
        for chunk in iter(lambda: cursor.fetchmany(FETCH), []):
            for row in chunk:  # message ids may have gaps: fill them in (rare, so one by one)
                if row[0] != expected:
                    break
                expected += 1
            else:
                _, campaign, creative, lists, variant, sent_at = zip(*chunk, strict=True)
                self._campaign.extend(campaign)
                self._creative.extend(creative)
                self._list.extend(lists)
                self._variant.extend(map(variant_number, variant))
                self._sent_at.extend(sent_at)
                continue
            for message_id, campaign, creative, sending_list, variant, sent_at in chunk:
                gap = message_id - (self.first_message_id + len(self._sent_at))
                for column, value in (
                    (self._campaign, campaign),
                    (self._creative, creative),
                    (self._list, sending_list),
                    (self._variant, variant_number(variant)),
                    (self._sent_at, sent_at),
                ):
                    column.extend([0] * gap if gap > 0 else [])
                    column.append(value)
            expected = self.first_message_id + len(self._sent_at)

    def _fill_links(self, cursor: sqlite3.Cursor) -> None:
        url_number = _numbering(self._url_list)  # each destination is held once
        for chunk in iter(lambda: cursor.fetchmany(FETCH), []):
            ids, account, message, contact, offer, urls, domain = zip(*chunk, strict=True)
            self._keys.extend(map(key, ids))
            self._account.extend(account)
            self._message.extend(message)
            self._contact.extend(contact)
            self._offer.extend(offer)
            self._domain.extend(domain)
            self._url.extend(map(url_number, urls))

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def bytes(self) -> int:
        """Memory held by the columns and the destinations (the campaign names aside)."""
        columns = (
            self._keys,
            self._message,
            self._contact,
            self._account,
            self._offer,
            self._domain,
            self._url,
            self._sent_at,
            self._campaign,
            self._creative,
            self._list,
            self._variant,
        )
        urls = sum(sys.getsizeof(url) for url in self._url_list)
        return sum(c.itemsize * len(c) for c in columns) + urls

    def get(self, link_id: str) -> LinkInfo | None:
        """The link, if indexed. `link_id` must be a valid id (7 ASCII letters and digits)."""
        wanted = key(link_id)
        keys = self._keys
        i = bisect_left(keys, wanted)
        if i == len(keys) or keys[i] != wanted:
            return None
        message_id = self._message[i]
        m = message_id - self.first_message_id
        offer = self._offer[i]
        contact = self._contact[i]
        campaign = self._campaign[m]
        creative = self._creative[m]
        sending_list = self._list[m]
        variant = self._variant[m]
        return LinkInfo(
            link_id,
            self._account[i],
            message_id,
            contact or None,
            offer or None,
            None if offer else self._url_list[self._url[i]],
            self._domain[i],
            campaign or None,
            self._campaign_names.get(campaign, ""),
            creative or None,
            sending_list or None,
            None if variant < 0 else self._variants[variant],
            self._sent_at[m],
        )


def _numbering(values: list) -> Callable[[str | None], int]:
    """A function giving each distinct text its position in `values` (appending new ones), and
    None -1: a column of small integers then stands for a column of repeated texts."""
    numbers: dict[str | None, int] = {None: -1}

    def number(value: str | None) -> int:
        found = numbers.get(value)
        if found is None:
            found = numbers[value] = len(values)
            values.append(value)
        return found

    return number


class HotLinks:
    """The link index of a running server, in segments (the first load, then the links of each
    batch of messages sent since), and the thread that keeps it up to date.

    New messages are indexed once they hold MIN_SEGMENT links, so that a campaign sent while
    the server runs is served from memory within seconds; until then (and for links older than
    the index) the caller reads the database. Segments may hold up to a quarter more than
    `size` links; past that, or past MAX_SEGMENTS, the index is loaded again whole.
    """

    MIN_SEGMENT = 5_000
    MAX_SEGMENTS = 8
    CHECK_SECONDS = 5.0
    # The server waits this long for the first load before it answers, so that a small index is
    # complete from the first request (and counted in the banner).
    FIRST_LOAD_WAIT = 0.2

    def __init__(self, db_path: str | Path, size: int = DEFAULT_SIZE) -> None:
        self.db_path = store.location(db_path)
        self.size = size
        self.segments: tuple[LinkIndex, ...] = ()
        self._stopped = threading.Event()
        self._loaded = threading.Event()
        self._lock = threading.Lock()
        self._tell_when_loaded = False
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return sum(len(segment) for segment in self.segments)

    @property
    def bytes(self) -> int:
        return sum(segment.bytes for segment in self.segments)

    def get(self, link_id: str) -> LinkInfo | None:
        for segment in self.segments:
            found = segment.get(link_id)
            if found is not None:
                return found
        return None

    def start(self) -> HotLinks:
        """Load the index and keep it up to date, in a thread. Until the first load is done,
        get() finds nothing and callers read the database: a restarted server answers at
        once rather than seconds later."""
        if self.size <= 0:
            self._loaded.set()
            return self
        self._thread = threading.Thread(target=self._run, name="trackly-links", daemon=True)
        self._thread.start()
        return self

    @property
    def loading(self) -> bool:
        """The first load is not done yet."""
        return not self._loaded.is_set()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Wait for the first load; True once it is done (or given up)."""
        return self._loaded.wait(timeout)

    def tell_when_loaded(self) -> bool:
        """If the first load is still under way, have its end logged, and return True."""
        with self._lock:
            if self._loaded.is_set():
                return False
            self._tell_when_loaded = True
            return True

    def stop(self) -> None:
        """Stop keeping the index up to date. A first load still under way is not waited for:
        it ends on its own, and a stopping server has no use for it."""
        self._stopped.set()
        if self._thread is not None and not self.loading:
            self._thread.join(30)

    def _run(self) -> None:
        conn = None
        try:
            started = time.perf_counter()
            conn = store.connect(self.db_path, check_same_thread=False)
            self.segments = (LinkIndex.load(conn, self.size),)
        except Exception as e:  # ids past 32 bits, too little memory, an unreadable database…
            log.warning("serving without the link index (links are read from the database): %s", e)
            if conn is not None:
                conn.close()
            self._loaded.set()
            return
        with self._lock:  # logged before it is loaded: whoever waits for it finds the line
            if self._tell_when_loaded and not self._stopped.is_set():
                log.info(
                    "link index: %s links (%.0f MB) loaded in %.1f s",
                    f"{len(self):,}",
                    self.bytes / 1e6,
                    time.perf_counter() - started,
                )
            self._loaded.set()
        try:
            self._follow(conn)
        finally:
            conn.close()

    def _follow(self, conn: store.Store) -> None:
        while not self._stopped.wait(self.CHECK_SECONDS):
            try:
                self.update(conn)
            except Exception as e:  # the index stays as it was; the next check tries again
                log.warning("could not update the link index: %s", e)

    def update(self, conn: store.Store) -> None:
        """Index the links of messages sent since the last load, if there are enough."""
        last = max((segment.last_message_id for segment in self.segments), default=0)
        pending = conn.execute(
            "SELECT count(*) FROM short_links WHERE message_id > ? AND message_id <= ?",
            (last, ready_until(conn)),
        ).fetchone()[0]
        if pending < self.MIN_SEGMENT:
            return
        if len(self) + pending > self.size * 1.25 or len(self.segments) >= self.MAX_SEGMENTS:
            self.segments = (LinkIndex.load(conn, self.size),)
        else:
            # Newest first: the segment that a new campaign's clicks will look in first.
            self.segments = (LinkIndex.load(conn, self.size, after=last), *self.segments)
        log.info("link index: %s links", f"{len(self):,}")
