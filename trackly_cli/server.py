"""The redirect, conversion and pixel server: a Bottle app made by `create_app`, served by
waitress in `serve`.

The hot path (GET /<id>) reads from memory: links never change, and those of the newest
messages are held in an index (core.linkindex), older ones cached as they are read; routing and
bot settings are cached and refreshed within a second of a change (a trigger-maintained
version number); user-agent and IP verdicts are cached. Its only I/O is one record appended to
the click journal (core.journal) before the response leaves; the drain thread (core.writer)
stores the journal in the database in batches, so no redirect waits on a commit or a lock.
Postbacks wait for their own commit, to answer `recorded` or `duplicate`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from bottle import Bottle, FormsDict, HTTPResponse, request

from trackly_cli import pages
from trackly_cli.access_log import AccessLog
from trackly_cli.core import (
    bots,
    clicks,
    clock,
    conversions,
    dialect,
    linkindex,
    links,
    postgres,
    records,
    retention,
    store,
    validate,
)
from trackly_cli.core import snapshot as snapshots
from trackly_cli.core.clicks import LinkInfo, ListInfo, OfferInfo
from trackly_cli.core.errors import DatabaseUnavailable, InvalidInput, NotFound, TracklyError
from trackly_cli.core.journal import Journal, JournalError
from trackly_cli.core.linkindex import HotLinks
from trackly_cli.core.postgres import is_url
from trackly_cli.core.snapshot import DomainInfo, Snapshot
from trackly_cli.core.writer import Writer, WriterBusy, WriterClosed
from trackly_cli.housekeeping import Pruner, WebhookSender

log = logging.getLogger("trackly.server")

LINK_CACHE_SIZE = 500_000
REFRESH_SECONDS = 1.0
# PostgreSQL: the most read connections a server holds (its threads read at once at most).
READ_CONNECTIONS = 8
NO_STORE = "no-store"
# Every GET route answers HEAD explicitly: Bottle tries HEAD routes before falling back to GET,
# so the HEAD route of /<link_id> would otherwise catch HEAD /healthz (7 characters) or /conv.
GET_HEAD = ["GET", "HEAD"]
# A 1x1 transparent GIF.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


class Visit(NamedTuple):
    """A request for a short link, resolved: the link and its settings, and the sender (a
    named tuple: one is made per request, and a tuple is the cheapest to make)."""

    link: LinkInfo
    offer: OfferInfo | None
    sending_list: ListInfo | None
    mode: str  # the bot filter: off, flag or confirm
    method: str
    ip: str | None
    user_agent: str
    accept_language: str
    anonymized: bool  # the account stores no full IP

    @property
    def stored_ip(self) -> str | None:
        """The IP as it is stored: truncated at once for an account that keeps no full IPs
        (after the bot verdict has used it whole)."""
        return retention.anonymize_ip(self.ip) if self.anonymized else self.ip


class Tracker:
    """What a running server holds: read connections (one per thread), caches, the bot
    detector, the click journal and its drain."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        domains: Iterable[str] | None = None,
        hot_links: int = linkindex.DEFAULT_SIZE,
        journal: str | Path | Journal | None = None,
        shared: bool | None = None,
        read_connections: int = READ_CONNECTIONS,
    ) -> None:
        """`shared`: other servers take hits of the same links (several `--workers`; always
        on PostgreSQL, which several nodes may share). `read_connections`: on PostgreSQL, the
        most a server holds for reading (its threads)."""
        self.db_path = store.location(db_path)
        setup = store.open_db(self.db_path)  # applies migrations before anything else
        try:
            self.secret = bytes.fromhex(store.setting(setup, "visitor_secret"))
            known = {r[0] for r in setup.execute("SELECT hostname FROM domains")}
        finally:
            setup.close()
        self.only_hosts: frozenset[str] | None = None
        if domains:
            wanted = {validate.hostname(d) for d in domains}
            unknown = sorted(wanted - known)
            if unknown:
                raise InvalidInput(
                    f"--domain {', '.join(unknown)}: not a tracking domain"
                    " (add it with `trackly domain add HOST --account NAME`)"
                )
            self.only_hosts = frozenset(wanted)
        self._local = threading.local()
        self._pool: postgres.Pool | None = None
        self._connections: list[store.Store] = []
        self._connections_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._checked_at = 0.0
        self.snapshot = Snapshot()
        self.detector = bots.Detector()
        self.header_budget = clicks.HeaderBudget()
        self.links: dict[str, LinkInfo] = {}
        # Fails now, with a clear message, if the journal or the database cannot be written.
        if shared is None:
            shared = is_url(self.db_path)
        allowed = (lambda ip: self.detector.ip_reasons(ip)[0]) if shared else None
        self.writer = Writer(self.db_path, journal, shared=allowed).start()
        try:
            if is_url(self.db_path):  # reads take a connection from a pool (one a thread)
                self._pool = postgres.Pool(self.db_path, read_connections)
            self.refresh(force=True)
            self.hot_links = HotLinks(self.db_path, hot_links).start()
        except BaseException:
            if self._pool is not None:
                self._pool.close()
            self.writer.close()
            raise
        self.hot_links.wait_loaded(HotLinks.FIRST_LOAD_WAIT)

    # -- reading ---------------------------------------------------------------------------

    def conn(self) -> store.Store:
        """This thread's read connection (opened once: closing the last connection would
        checkpoint and delete the WAL)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and store.broken(conn):  # (PostgreSQL restarted: a new one)
            with self._connections_lock:
                self._connections.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()
            conn = None
        if conn is None:
            conn = store.connect(self.db_path, check_same_thread=False)
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[store.Store]:
        """A connection to read with: this thread's own on SQLite, one of the pool's on
        PostgreSQL (given back when the block ends)."""
        if self._pool is None:
            yield self.conn()
        else:
            with self._pool.connection() as conn:
                yield conn

    def refresh(self, force: bool = False) -> Snapshot:
        """The current settings, re-read when they changed (checked at most once a second, by
        one thread: the others go on with the snapshot they have)."""
        now = time.monotonic()
        if not force and now - self._checked_at < REFRESH_SECONDS:
            return self.snapshot
        if not self._refresh_lock.acquire(blocking=force):
            return self.snapshot
        try:
            if not force and now - self._checked_at < REFRESH_SECONDS:
                return self.snapshot
            with self.reading() as conn:
                if snapshots.version(conn) != self.snapshot.version:
                    fresh = snapshots.load(conn)
                    self.detector.ranges = fresh.ranges
                    self.snapshot = fresh
            self._checked_at = now
            return self.snapshot
        finally:
            self._refresh_lock.release()

    def route(self, host_header: str | None) -> tuple[DomainInfo, Snapshot] | None:
        """The tracking domain a request's Host names (case-insensitive, port ignored), with
        the settings snapshot the rest of the request uses."""
        host = _hostname(host_header)
        if host is None or (self.only_hosts is not None and host not in self.only_hosts):
            return None
        snapshot = self.refresh()
        domain = snapshot.domains.get(host)
        return None if domain is None else (domain, snapshot)

    def link(self, link_id: str) -> LinkInfo | None:
        """The link: from the index of the newest links, the cache, or the database."""
        if not links.VALID_ID.match(link_id):
            return None
        found = self.hot_links.get(link_id) or self.links.get(link_id)
        if found is not None and found.campaign_id in self.snapshot.removed_campaigns:
            return None  # (held in memory since before `trackly campaign delete` removed it)
        if found is None:
            with self.reading() as conn:
                found = clicks.load_link(conn, link_id)
            if found is not None:
                if len(self.links) >= LINK_CACHE_SIZE:
                    self.links.clear()
                self.links[link_id] = found
        return found

    def logged_ip(self, environ: dict) -> str:
        """The client address as the access log shows it: truncated (as stored clicks are) on
        the domains of accounts that anonymise IPs, so that the log keeps no more than the
        database does."""
        ip = environ.get("REMOTE_ADDR") or "-"
        host = _hostname(environ.get("HTTP_HOST"))
        snapshot = self.refresh()
        domain = snapshot.domains.get(host) if host else None  # served or not (--domain)
        if domain is not None and domain.account_id in snapshot.anonymizing:
            return retention.anonymize_ip(ip) or "-"
        return ip

    def sync(self, timeout: float = 30.0) -> None:
        """Return once every record acknowledged so far is in the database."""
        self.writer.sync(timeout)

    def close(self) -> None:
        self.hot_links.stop()
        self.writer.close()
        if self._pool is not None:
            self._pool.close()
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _hostname(host_header: str | None) -> str | None:
    """The host a Host header names: lower case, without port or the one trailing dot of a
    fully qualified name; None for none, an empty label (`go.acme.test..`) or an IPv6
    literal (never a tracking domain)."""
    if not host_header:
        return None
    host = host_header.strip().lower()
    if host.startswith("["):
        return None
    host = host.rsplit(":", 1)[0]
    host = host[:-1] if host.endswith(".") else host
    if not host or host.startswith(".") or host.endswith(".") or ".." in host:
        return None
    return host


def _bad_request(reason: str) -> HTTPResponse:
    if request.environ.get("PATH_INFO", "").startswith("/conv"):  # (postbacks answer JSON)
        return HTTPResponse(
            json.dumps({"status": "error", "error": reason}),
            400,
            {"Content-Type": "application/json", "Cache-Control": NO_STORE},
        )
    return HTTPResponse(
        f"Bad Request: {reason}\n",
        400,
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": NO_STORE},
    )


def _check_host() -> None:
    """Routing goes by the Host header alone. HTTP/1.1 requires one (a health check may omit
    it); a request line in absolute form (`GET http://other.example/ID`) must name the same
    host, or the request is refused rather than answered for a host it did not ask."""
    environ = request.environ
    host = environ.get("HTTP_HOST")
    if not host:
        # (a health check may leave it out; a pixel always answers its GIF, recording nothing)
        path = environ.get("PATH_INFO", "")
        if path != "/healthz" and not path.startswith("/pixel/"):
            raise _bad_request("no Host header")
        return
    target = environ.get("REQUEST_URI", "")
    if target[:1] == "/" or not target:
        return
    try:
        authority = urlsplit(target).netloc
    except ValueError:
        authority = ""
    if not authority or _hostname(authority) != _hostname(host):
        raise _bad_request("the request line names another host than the Host header")


def _not_found() -> HTTPResponse:
    return HTTPResponse(
        pages.NOT_FOUND,
        404,
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": NO_STORE},
    )


def _redirect(url: str) -> HTTPResponse:
    # A 302 to the stored destination, built here rather than with bottle.redirect(), which
    # would urljoin() it against the request URL.
    return HTTPResponse("", 302, {"Location": url, "Cache-Control": NO_STORE})


def _database_away(callback):
    """A route whose database cannot be reached (PostgreSQL restarting, a link not in memory)
    answers 503 with Retry-After, not 500."""

    @functools.wraps(callback)
    def route(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except DatabaseUnavailable as e:
            _refusals.log(f"database unavailable: {e.message}")
            return _unavailable()
        except Exception as e:
            if postgres.is_connection_error(e):
                _refusals.log(f"database unavailable: {e}")
                return _unavailable()
            raise

    return route


def _unavailable() -> HTTPResponse:
    return HTTPResponse(
        pages.message("Temporarily unavailable", "Please try again in a moment."),
        503,
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": NO_STORE, "Retry-After": "5"},
    )


def _page(html: str) -> HTTPResponse:
    return HTTPResponse(
        html,
        200,
        {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": NO_STORE,
            "Content-Security-Policy": pages.CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def create_app(
    db_path: str | Path, *, domains: Iterable[str] | None = None, tracker: Tracker | None = None
) -> Bottle:
    """The Bottle app answering short links, conversions and health checks for the tracking
    domains in the database at `db_path` (only `domains`, when given)."""
    tracker = tracker or Tracker(db_path, domains=domains)
    app = Bottle()
    app.add_hook("before_request", _check_host)
    app.install(_database_away)
    postback_refusals = _RateLimitedLog()
    app.config["trackly.tracker"] = tracker

    def visit(environ: dict, link_id: str) -> Visit | None:
        """The link a request asks for, if it is one of the Host's account, with what the
        request tells about its sender."""
        if len(link_id) != 7:
            return None
        routed = tracker.route(environ.get("HTTP_HOST"))
        if routed is None:
            return None
        domain, snapshot = routed
        link = tracker.link(link_id)
        if link is None or link.account_id != domain.account_id:
            return None
        if link.campaign_id in snapshot.retired_campaigns:
            return None  # deleted with --force: its links answer no more clicks
        if link.offer_id and link.offer_id not in snapshot.offers:
            snapshot = tracker.refresh(force=True)  # an offer made within the last second
            if link.offer_id not in snapshot.offers:
                return None
        offer = snapshot.offers.get(link.offer_id) if link.offer_id else None
        sending_list = snapshot.lists.get(link.list_id) if link.list_id else None
        return Visit(
            link,
            offer,
            sending_list,
            clicks.bot_filter(offer, sending_list),
            environ["REQUEST_METHOD"],
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_USER_AGENT", ""),
            environ.get("HTTP_ACCEPT_LANGUAGE", ""),
            link.account_id in snapshot.anonymize_at_once,
        )

    def judge(seen: Visit, environ: dict, now: float | None = None) -> bots.Verdict:
        """The bot verdict on a visit; with `now`, the timing signals count too."""
        if seen.mode == "off":
            return bots.HUMAN
        facts = bots.RequestFacts(
            seen.method,
            seen.user_agent,
            seen.ip,
            seen.accept_language,
            bots.prefetch_header(environ),
        )
        if now is None:
            return tracker.detector.classify(facts)
        link = seen.link
        return tracker.detector.classify(
            facts,
            seconds_since_sent=now - link.sent_at,
            min_human_seconds=seen.sending_list.min_human_seconds if seen.sending_list else 2.0,
            link_id=link.id if link.contact_id is not None else None,
        )

    @app.route("/healthz", method=GET_HEAD)
    def healthz():
        try:
            with tracker.reading() as conn:
                try:
                    conn.execute("SELECT 1 FROM config_version").fetchone()
                except dialect.errors(conn) as e:
                    return HTTPResponse({"status": "error", "database": str(e)}, 503)
        except TracklyError as e:  # (a PostgreSQL server that cannot be reached)
            return HTTPResponse({"status": "error", "database": e.message}, 503)
        except Exception as e:
            if postgres.is_connection_error(e):
                return HTTPResponse({"status": "error", "database": str(e)}, 503)
            raise
        return {"status": "ok", "database": "ok"}

    @app.route("/domain-check", method=GET_HEAD)
    def domain_check():
        """For a TLS proxy's on-demand certificates (Caddy's `ask`): 200 when ?domain= is a
        tracking domain this server answers for, 404 otherwise."""
        if tracker.route(request.query.get("domain", "")[:300]) is None:
            return HTTPResponse({"domain": "unknown"}, 404, {"Cache-Control": NO_STORE})
        return {"domain": "ok"}

    @app.route("/robots.txt", method=GET_HEAD)
    def robots():
        return HTTPResponse(
            "User-agent: *\nDisallow: /\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
        )

    @app.route("/favicon.ico", method=GET_HEAD)
    def favicon():
        return HTTPResponse("", 204, {"Cache-Control": "max-age=86400"})

    def clicked(environ: dict, link_id: str) -> HTTPResponse | str:
        """A hit on a short link, kept in the journal: the URL to redirect to, or the answer
        (an interstitial page, 404, 503). Called by the route below and, for the plain GETs
        that are nearly every request, straight from waitress (ClickLane)."""
        seen = visit(environ, link_id)
        if seen is None:
            return _not_found()
        link = seen.link
        now = time.time()
        verdict = judge(seen, environ, now)
        user_agent, referer, language = (
            seen.user_agent,
            environ.get("HTTP_REFERER"),
            seen.accept_language,
        )
        budget = tracker.header_budget
        if not budget.spend(link.id, now):  # a flood on one link: kept, counted, but lean
            user_agent = referer = language = None
            # (flagged as a bot, but where the bot filter is off: every click counts there)
            verdict = bots.Verdict(seen.mode != "off", (*verdict.reasons, budget.reason))
        record = clicks.Click(
            link,
            clock.timestamp_text(now),
            seen.method,
            seen.stored_ip,
            user_agent,
            referer,
            language,
            clicks.visitor(link, seen.ip, seen.user_agent, tracker.secret),
            verdict.is_bot,
            verdict.text,
            seen.mode != "confirm",
            seen.anonymized,
        )
        if not _kept(tracker.writer.record_click, record, link.id):
            return _unavailable()
        if verdict.burst:
            # The link's earlier hits within the window were judged before the burst showed:
            # the drain judges them again, after this hit (a scanner's first hit is no person).
            reason = next(r for r in verdict.reasons if "IPs on one link" in r)
            since = clock.timestamp_text(now - tracker.detector.recent.window)
            _kept(tracker.writer.append, records.burst(link.id, since, reason), link.id)
        if seen.method == "OPTIONS":
            return HTTPResponse("", 204, {"Allow": "GET, HEAD", "Cache-Control": NO_STORE})
        target = clicks.destination(link, seen.offer)
        page = clicks.page_for(seen.offer, seen.sending_list, seen.mode, target)
        if page is not None:
            return _page(pages.interstitial(page, f"/{link.id}/go"))
        return target

    app.config["trackly.clicked"] = _database_away(clicked)

    @app.route("/<link_id>", method=["GET", "HEAD", "OPTIONS"])
    def click(link_id: str):
        answer = clicked(request.environ, link_id)
        return _redirect(answer) if isinstance(answer, str) else answer

    @app.route("/<link_id>/go", method=GET_HEAD)
    def go(link_id: str):
        """The Continue button of an interstitial: a 302 to the destination, no second click.
        In confirm mode this is what makes the MessageClick."""
        seen = visit(request.environ, link_id)
        if seen is None:
            return _not_found()
        link = seen.link
        if seen.method == "GET" and not judge(seen, request.environ).is_bot:
            record = records.confirm(
                link,
                clock.now_text(),
                clicks.visitor(link, seen.ip, seen.user_agent, tracker.secret),
                seen.stored_ip,
                seen.user_agent,
                seen.anonymized,
            )
            if not _kept(tracker.writer.append, record, link.id):
                return _unavailable()
        return _redirect(clicks.destination(link, seen.offer))

    def convert(source: str, path_link_id: str | None = None) -> dict | None:
        """Record a postback for `source`; raises TracklyError for a bad or foreign one. A
        pixel's conversion goes to the journal, stored after the clicks before it (None)."""
        # Settings that revoke (a rotated secret, a new allowlist, a stricter rule) hold from
        # the moment the command that changed them returns: a postback checks for a change
        # first (one small read; redirects keep the once-a-second check).
        tracker.refresh(force=True)
        routed = tracker.route(request.environ.get("HTTP_HOST"))
        if routed is None:
            raise NotFound("not a tracking domain")
        domain, snapshot = routed
        values = conversions.canonical(_utf8_query())
        if path_link_id is not None:
            if values.get("link_id", path_link_id) != path_link_id:
                raise InvalidInput("the link id in the path and the query differ")
            values["link_id"] = path_link_id
        ip = request.environ.get("REMOTE_ADDR")
        offer = None
        if source == "conv_offer":
            offer_ref = (values.get("offer_id") or "").strip()
            if validate.is_id(offer_ref) and len(offer_ref) < 12:
                offer = snapshot.offers.get(int(offer_ref))
            if offer is None or offer.account_id != domain.account_id:
                raise NotFound("unknown offer_id")
            conversions.check_secret(offer, values.get("postback_secret"))
        postback = conversions.parse(values)
        link = None
        if postback.link_id is not None:
            link = tracker.link(postback.link_id)
            if link is None or link.account_id != domain.account_id:
                raise NotFound(f"unknown link_id {postback.link_id}")
            if offer is not None and link.offer_id != offer.id:
                raise InvalidInput(f"link {link.id} does not carry offer {offer.id}")
        elif source == "conv":
            raise InvalidInput("link_id is missing (or click_id, clickid, cid, subid)")
        if offer is None and link is not None and link.offer_id:
            offer = snapshot.offers.get(link.offer_id)
        if source == "pixel" and postback.is_reversal:
            # A pixel loads in any browser: it can report a conversion, never reverse one.
            raise InvalidInput("a pixel cannot record a refund or chargeback")
        # The offer's rules: its secret for /conv when required (and for every refund), no
        # pixel where an IP allowlist names the network's servers, its maximum revenue.
        conversions.check_rules(offer, postback, source, values.get("postback_secret"))
        if source == "pixel":
            anonymized = domain.account_id in snapshot.anonymize_at_once
            tracker.writer.append(
                records.pixel(
                    link,
                    clock.now_text(),
                    domain.account_id,
                    offer.id if offer is not None else None,
                    postback,
                    retention.anonymize_ip(ip) if anonymized else ip,
                    anonymized,
                )
            )
            return None
        conversions.check_source_ip(offer, ip)

        def write(conn: store.Store) -> conversions.Result:
            target = link
            if target is None and postback.message_id is not None:
                found = conversions.find_offer_link(conn, offer, postback.message_id)
                target = clicks.load_link(conn, found) if found else None
            anonymized = domain.account_id in snapshot.anonymize_at_once
            return conversions.record(
                conn,
                account_id=domain.account_id,
                postback=postback,
                link=target,
                offer=offer,
                source=source,
                ip=retention.anonymize_ip(ip) if anonymized else ip,
                ip_anonymized=anonymized,
            )

        return tracker.writer.submit(write).as_dict()

    def postback(source: str) -> HTTPResponse:
        if request.method == "HEAD":  # a link checker or prefetch: it records nothing
            return HTTPResponse({"status": "ignored"}, 200, {"Cache-Control": NO_STORE})
        try:
            return HTTPResponse(convert(source), 200, {"Cache-Control": NO_STORE})
        except TracklyError as e:
            if e.http_status in (403, 429) or isinstance(e, conversions.AboveMaximum):
                # (an attacker's or a misconfigured network's: one line per 10 s at most)
                postback_refusals.log(f"postback refused ({e.http_status}): {e.message}")
            headers = {"Cache-Control": NO_STORE}
            if e.http_status == 503:  # (the database is away: the network should retry)
                headers["Retry-After"] = "5"
            return HTTPResponse({"status": "error", "error": e.message}, e.http_status, headers)
        except Exception as e:  # the database or the writer: try again later
            if not isinstance(e, WriterBusy | WriterClosed):
                log.error("postback failed: %s", e)
            return HTTPResponse(
                {"status": "error", "error": "temporarily unavailable, try again"},
                503,
                {"Cache-Control": NO_STORE, "Retry-After": "5"},
            )

    @app.route("/conv", method=GET_HEAD)
    def conv():
        """The standard postback: link_id (or click_id, clickid, cid, subid), event, revenue
        (or amount), payout, txn_id (or txid, tid, order_id)."""
        return postback("conv")

    @app.route("/conv/offer", method=GET_HEAD)
    def conv_offer():
        """An offer-level postback that needs no prior click; requires the offer's secret."""
        return postback("conv_offer")

    @app.route("/pixel/<name>", method=GET_HEAD)
    def pixel(name: str):
        """Always a 1x1 GIF, so a thank-you page never shows a broken image; bad input records
        nothing."""
        if name.endswith(".gif") and len(name) == 11 and request.method != "HEAD":
            try:
                convert("pixel", path_link_id=name[:7])
            except TracklyError:
                pass
            except (JournalError, WriterClosed) as e:  # not kept: the browser may load it again
                log.error("pixel %s not recorded: %s", name, e)
                return _unavailable()
            except Exception as e:  # a pixel never fails: log and carry on
                log.error("pixel %s failed: %s", name, e)
        return HTTPResponse(
            PIXEL,
            200,
            {
                "Content-Type": "image/gif",
                "Cache-Control": NO_STORE,
                "Content-Length": str(len(PIXEL)),
            },
        )

    @app.error(404)
    @app.error(405)
    def error_not_found(error):
        return pages.NOT_FOUND

    @app.error(500)
    def error_server(error):
        log.error("request failed: %s", error.exception, exc_info=error.exception)
        return _SERVER_ERROR

    return app


_SERVER_ERROR = pages.message("Something went wrong", "Please try again in a moment.")
_REDIRECT_HEADERS = (
    ("Cache-Control", NO_STORE),
    ("Content-Length", "0"),
    ("Content-Type", "text/html; charset=UTF-8"),
)


class ClickLane:
    """The tracking app as waitress runs it: a plain GET of a short link (nearly every
    request) goes straight to the app's click handler, the rest through Bottle.

    Bottle's request and response objects, routing and hooks cost as much CPU as the click
    itself, and under load every microsecond a request holds the GIL is one the others wait
    for. The handler is the one the Bottle route calls, so both answer alike
    (tests/test_click_lane.py compares them); the requests that take this lane are those
    that Bottle's Host check lets through untouched (a Host header, a path-only target)."""

    def __init__(self, app: Bottle) -> None:
        self.app = app
        self.clicked = app.config["trackly.clicked"]
        # The app's own paths that look like a link (/healthz): Bottle routes those first.
        self.routed = frozenset(r.rule for r in app.routes if "<" not in r.rule)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if (
            len(path) != 8
            or environ.get("REQUEST_METHOD") != "GET"
            or "/" in path[1:]
            or path in self.routed
            or not environ.get("HTTP_HOST")
            or environ.get("REQUEST_URI", "")[:1] not in ("/", "")
        ):
            return self.app(environ, start_response)
        try:
            answer = self.clicked(environ, path[1:])
        except Exception as e:  # as Bottle would: logged, and a page that says so
            log.error("request failed: %s", e, exc_info=e)
            answer = HTTPResponse(_SERVER_ERROR, 500)
        if isinstance(answer, str):
            # (Bottle sends a header's text as UTF-8 bytes: so does this)
            location = answer if answer.isascii() else answer.encode().decode("latin-1")
            start_response("302 Found", [*_REDIRECT_HEADERS, ("Location", location)])
            return [b""]
        body = answer.body.encode() if isinstance(answer.body, str) else answer.body
        headers = answer.headerlist
        if "Content-Length" not in answer.headers:
            headers.append(("Content-Length", str(len(body))))
        start_response(answer.status_line, headers)
        return [body]


def _utf8_query() -> FormsDict:
    """The query parameters as the UTF-8 text that was sent (Bottle hands them over as Latin-1
    text); a query that is not UTF-8 is refused."""
    decoded = FormsDict()
    try:
        for key, value in request.query.allitems():
            decoded.append(key.encode("latin-1").decode(), value.encode("latin-1").decode())
    except UnicodeError:
        raise InvalidInput("the query string is not UTF-8") from None
    return decoded


def _kept(append: Callable[[object], object], record: object, link_id: str) -> bool:
    """Keep a record in the journal. If it cannot be kept (disk full, a folder made read-only),
    the request is not acknowledged (the caller answers 503): a phone retries, and a click that
    was answered is a click that was kept."""
    try:
        append(record)
    except (JournalError, WriterClosed) as e:
        _refusals.log(f"could not record a hit on {link_id}: {e}")
        return False
    return True


class _RateLimitedLog:
    """A log line for the first failure, then at most one every `seconds` saying how many
    followed (a full disk fails every request: one line each would fill what is left)."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._logged_at = -seconds
        self._since = 0

    def log(self, message: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._logged_at < self.seconds:
                self._since += 1
                return
            since, self._since, self._logged_at = self._since, 0, now
        log.error("%s%s", message, f" ({since:,} more since the last such line)" if since else "")


_refusals = _RateLimitedLog()


def listen(app, options: dict, host: str, port: int):
    """waitress's server for `app` (bound, not yet running); what stops it from listening as
    one-line errors. The tracking server and the dashboard both start this way."""
    import waitress.server

    try:
        return waitress.server.create_server(app, **options)
    except OSError as e:
        raise InvalidInput(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    except ValueError as e:
        raise InvalidInput(f"bad server option: {e}") from e


def serve(
    db_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 8,
    domains: Iterable[str] | None = None,
    trusted_proxy: str | None = None,
    access_log: bool = False,
    hot_links: int = linkindex.DEFAULT_SIZE,
    journal: str | Path | None = None,
    announce: Callable[[Tracker, str], None] | None = None,
    routes: Callable[[Bottle], None] | None = None,
    sockets: list[socket.socket] | None = None,
    prune: bool = True,
    shared: bool | None = None,
    send_webhooks: bool = True,
) -> None:
    """Serve until SIGTERM or Ctrl-C; then finish what is in flight, commit what is queued, and
    return. `sockets`: listen on these (bound already) rather than on host and port.
    `send_webhooks`: run a webhook sender beside the server (one per process group is enough)."""

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # waitress warns "Task queue depth is N" whenever requests wait for a thread: under load
    # that is normal, and logging it on every request costs more than the request.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    # A file size limit (ulimit -f) must fail a write, which the journal reports, rather than
    # kill the server.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    tracker = Tracker(
        db_path,
        domains=domains,
        hot_links=hot_links,
        journal=journal,
        shared=shared,
        read_connections=threads,
    )
    app = create_app(db_path, tracker=tracker)
    if routes is not None:
        routes(app)
    options: dict = {"threads": threads, "ident": "trackly"}
    options |= {"sockets": sockets} if sockets else {"host": host, "port": port}
    if trusted_proxy:
        options |= {
            "trusted_proxy": trusted_proxy,
            "trusted_proxy_count": 1,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
            "clear_untrusted_proxy_headers": True,
        }
    lane = ClickLane(app)
    wsgi = AccessLog(lane, ip=tracker.logged_ip) if access_log else lane

    def stop(signum, frame):
        raise SystemExit(0)

    # From here on SIGTERM stops the server cleanly (from the moment its port listens).
    previous = signal.signal(signal.SIGTERM, stop)
    server = pruner = sender = None
    try:
        server = listen(wsgi, options, host, port)
        pruner = Pruner(store.location(db_path)) if prune else None
        sender = WebhookSender(store.location(db_path)) if send_webhooks else None
        # What is loaded by now (modules, settings) lives as long as the server: move it out
        # of the collector's way, so that collections triggered by requests only walk their
        # garbage.
        gc.collect()
        gc.freeze()
        if announce:
            announce(tracker, f"http://{server.effective_host}:{server.effective_port}")
        if pruner:
            pruner.start()
        if sender:
            sender.start()
        server.run()  # returns after SIGTERM / Ctrl-C, once running requests have finished
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.close()
        if pruner:
            pruner.stop()
        if sender:
            sender.stop()
        tracker.close()


def serve_workers(
    db_path: str | Path,
    workers: int,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    journal: Journal,
    announce: Callable[[Tracker, str], None] | None = None,
    **options,
) -> int:
    """`serve` in `workers` processes sharing one listening socket (bound here, inherited by
    each: the kernel hands each connection to one of them). Each worker has its own click
    journal (the first the one given, the others beside it, JOURNAL-2, JOURNAL-3…; see
    store_leftover_journals for those of an earlier run with more workers). The first worker
    prunes and announces. SIGTERM or Ctrl-C stops them all; returns the exit status."""
    folders = [journal.folder] + [
        journal.folder.with_name(f"{journal.folder.name}-{n}") for n in range(2, workers + 1)
    ]
    try:
        listener = socket.create_server((host, port), backlog=1024)
    except OSError as e:
        raise InvalidInput(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    children: list[int] = []
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    # (before the first fork: a SIGTERM that comes while the workers start stops those started)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    for n, folder in enumerate(folders, start=1):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # serve() sets its own
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers
                serve(
                    db_path,
                    journal=Journal(folder, segment_bytes=journal.segment_bytes),
                    sockets=[listener],
                    announce=announce if n == 1 else None,
                    prune=n == 1,
                    send_webhooks=n == 1,
                    shared=True,
                    **options,
                )
            except BaseException as e:  # a worker that cannot start says why, and exits
                if not isinstance(e, SystemExit):
                    log.error("worker %d stopped: %s", n, e)
                    code = 1
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    listener.close()
    status = 0
    try:
        for child in children:
            while True:
                try:
                    _, raw = os.waitpid(child, 0)
                    break
                except InterruptedError:
                    continue
            code = os.waitstatus_to_exitcode(raw)
            if stopping and code == -signal.SIGTERM:
                continue  # (stopped while it was still starting: before its own handler)
            if code != 0:
                status = 1
                stop(None, None)  # one worker gone: stop the others rather than serve on less
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def store_leftover_journals(db_path: str | Path, first: Path, workers: int) -> None:
    """Before serving with `workers` processes: store what the journals of workers beyond
    them (JOURNAL-N, from a run with more workers that did not stop cleanly) still hold."""
    for folder in sorted(first.parent.glob(f"{first.name}-*")):
        number = folder.name.rsplit("-", 1)[1]
        if folder.is_dir() and number.isdigit() and int(number) > workers:
            writer = Writer(db_path, folder).start()
            writer.close()
            log.info("click journal: stored what %s held (a worker of an earlier run)", folder)
