"""The operator's dashboard: a Bottle app of its own (never mounted in the tracking server),
made by `create_app` and served by waitress in `serve`.

Every request opens a store connection of its own and closes it. Every response carries a strict
Content-Security-Policy (no inline script or style: the stylesheet and the live page's script
are files of this package). The app answers nothing on a hostname that is a tracking domain.

Who may see what: a user logs in (POST /login) and gets a session cookie; a POST is accepted
only when its Origin (or, without one, its Referer) is this very host, which is the CSRF check.
Failed logins are counted per client IP in memory (one process: a restart forgets them).
While no user exists, a dashboard listening on a loopback address answers requests from this
machine without a login (and says so on every page); `trackly dashboard` refuses to listen
elsewhere until a user exists.
"""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bottle import Bottle, HTTPResponse, request, response, static_file

from trackly_cli.core import domains, filters, store, users
from trackly_cli.core.errors import InvalidInput, NotFound, TracklyError
from trackly_cli.dashboard import api, pages, views
from trackly_cli.dashboard.answers import scheme, see_other
from trackly_cli.dashboard.views import Page, Table
from trackly_cli.output import csv_cell

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = frozenset({"style.css", "live.js"})
COOKIE = "trackly_session"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)
RANGES = ("all", "today", "7d", "30d", "custom")
LOGIN_FAILURES = 10  # within LOGIN_WINDOW seconds, per client IP
LOGIN_WINDOW = 15 * 60
_FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_FORWARDED_HOST", "HTTP_X_REAL_IP")


class LoginLimiter:
    """Failed logins per client IP in the last window (memory only, this process)."""

    def __init__(self, limit: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, ip: str, now: float) -> deque[float]:
        found = self._failures.setdefault(ip, deque())
        while found and found[0] <= now - self.window:
            found.popleft()
        return found

    def retry_after(self, ip: str) -> int:
        """Seconds until this IP may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            found = self._recent(ip, now)
            if len(found) < self.limit:
                return 0
            return max(1, int(found[0] + self.window - now) + 1)

    def failed(self, ip: str) -> None:
        with self._lock:
            self._recent(ip, time.monotonic()).append(time.monotonic())
            if len(self._failures) > 100_000:  # (a flood of addresses: forget the oldest)
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, ip: str) -> None:
        with self._lock:
            self._failures.pop(ip, None)


@dataclass
class Request:
    """A page request, resolved: the connection, the view (user, account, range) and the
    filters that every table of the page is built with."""

    conn: store.Store
    view: views.View
    chosen: filters.Filters
    user: dict


def _netloc(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


def _hostname(host: str) -> str:
    try:
        return (urlsplit("//" + host).hostname or "").lower()
    except ValueError:
        return ""


def _is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class DashboardApp(Bottle):
    """The Bottle app, with the security headers put on every response (errors included)."""

    def __call__(self, environ, start_response):
        def secured(status, headers, exc_info=None):
            names = {name.lower() for name, _ in SECURITY_HEADERS} | {"cache-control"}
            kept = [(k, v) for k, v in headers if k.lower() not in names]
            static = environ.get("PATH_INFO", "").startswith("/static/")
            cache = "public, max-age=300" if static else "no-store"
            return start_response(
                status, [*kept, *SECURITY_HEADERS, ("Cache-Control", cache)], exc_info
            )

        return super().__call__(environ, secured)


class Dashboard:
    """What the dashboard holds between requests (the database it shows, the failed logins),
    and its request handlers; `create_app` routes to them."""

    def __init__(self, target: str | Path, *, open_local: bool = True) -> None:
        self.target = store.location(target)
        self.open_local = open_local
        self.limiter = LoginLimiter()

    @contextlib.contextmanager
    def connection(self) -> Iterator[store.Store]:
        """A connection of this request's own, closed after it."""
        conn = store.connect(self.target)
        try:
            yield conn
        finally:
            conn.close()

    # -- who is asking ---------------------------------------------------------------------------

    def check_host(self, conn: store.Store) -> None:
        """Nothing answers on a tracking domain: 404, as the tracking server does for a
        stranger's host."""
        if domains.is_tracking(conn, _hostname(request.get_header("Host", ""))):
            raise HTTPResponse(views.message_page("Not found", "Not found."), 404)

    def local_request(self) -> bool:
        """From this machine, straight (not through a proxy), to a loopback host name."""
        if not self.open_local or any(request.environ.get(h) for h in _FORWARDED):
            return False
        host = _hostname(request.get_header("Host", ""))
        return _is_loopback(request.environ.get("REMOTE_ADDR", "")) and _is_loopback(host)

    @staticmethod
    def same_origin() -> bool:
        """The CSRF check of every POST: the browser says where the form was."""
        source = request.get_header("Origin") or request.get_header("Referer")
        if not source or source == "null":
            return False
        parts = urlsplit(source)
        mine = _netloc(scheme(), request.get_header("Host", ""))
        return _netloc(parts.scheme, parts.netloc) == mine and parts.scheme in ("http", "https")

    def current_user(self, conn: store.Store) -> tuple[dict | None, bool]:
        """(user, open): the session's user; or, on this machine while no user exists, an
        admin nobody logged in as."""
        user = users.session_user(conn, request.get_cookie(COOKIE) or "")
        if user is not None:
            return user, False
        if self.local_request() and not users.exist(conn):
            return {"id": None, "name": "(this machine)", "is_admin": 1}, True
        return None, False

    @staticmethod
    def resolve(conn: store.Store, user: dict, open_: bool, path: str) -> Request:
        """The account (one the user may see), the date range and the filters of a page."""
        allowed = users.allowed_accounts(conn, user)
        if not allowed:
            raise NotFound(
                "no account to show: create one with `trackly account create NAME`"
                if user["is_admin"]
                else "this user sees no account: `trackly user add` grants them"
            )
        wanted = request.query.get("account", "").strip()
        account = allowed[0]
        if wanted:
            matches = [a for a in allowed if str(a["id"]) == wanted or a["name"] == wanted]
            if not matches:
                raise NotFound(f"no account {wanted!r} that you can see")
            account = matches[0]
        range_key = request.query.get("range", "all") or "all"
        if range_key not in RANGES:
            raise InvalidInput(f"range must be one of {', '.join(RANGES)}")
        since = until = None
        if range_key == "today":
            since = time.strftime("%Y-%m-%d", time.gmtime())
        elif range_key in ("7d", "30d"):
            since = range_key
        elif range_key == "custom":
            since = request.query.get("since", "").strip() or None
            until = request.query.get("until", "").strip() or None
        chosen = filters.resolve(conn, account=str(account["id"]), since=since, until=until)
        view = views.View(
            user_name=user["name"],
            open_local=open_,
            accounts=allowed,
            account=account,
            range_key=range_key,
            since=request.query.get("since", "") if range_key == "custom" else "",
            until=request.query.get("until", "") if range_key == "custom" else "",
            path=path,
            sort=request.query.get("sort", ""),
            direction="asc" if request.query.get("dir") == "asc" else "desc",
        )
        return Request(conn, view, chosen, user)

    # -- pages -----------------------------------------------------------------------------------

    def page(self, handler: Callable[..., Page | str]) -> Callable:
        """A page that needs a login: its tables also download as CSV (?csv=NAME)."""

        def run(**kwargs):
            try:
                with self.connection() as conn:
                    self.check_host(conn)
                    user, open_ = self.current_user(conn)
                    if user is None:
                        see_other("/login")
                    req = self.resolve(conn, user, open_, request.path)
                    result = handler(req, **kwargs)
                    if isinstance(result, str):  # (JSON, or an answer of its own)
                        return result
                    wanted = request.query.get("csv")
                    if wanted:
                        return csv_download(result, wanted)
                    return render(req.view, result)
            except TracklyError as err:
                return error_page(err)

        return run

    # -- logging in and out ----------------------------------------------------------------------

    def login_form(self):
        with self.connection() as conn:
            self.check_host(conn)
            user, _ = self.current_user(conn)
        if user is not None:
            see_other("/")
        return views.login_page()

    def login(self):
        ip = request.environ.get("REMOTE_ADDR", "")
        with self.connection() as conn:
            self.check_host(conn)
            if not self.same_origin():
                return HTTPResponse(views.login_page("This form must be sent from this page."), 403)
            wait = self.limiter.retry_after(ip)
            if wait:
                return HTTPResponse(
                    views.login_page(f"Too many failed logins: try again in {wait} s."),
                    429,
                    headers={"Retry-After": str(wait)},
                )
            name = request.forms.getunicode("username", default="") or ""
            password = request.forms.getunicode("password", default="") or ""
            user = users.authenticate(conn, name, password)
            if user is None:
                self.limiter.failed(ip)
                return HTTPResponse(views.login_page("Wrong user or password.", name), 401)
            self.limiter.succeeded(ip)
            token = users.start_session(conn, user["id"])
        response.set_cookie(
            COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="lax",
            secure=scheme() == "https",
            max_age=int(users.SESSION_LIFETIME.total_seconds()),
        )
        see_other("/")

    def logout(self):
        with self.connection() as conn:
            self.check_host(conn)
            if not self.same_origin():
                return HTTPResponse(views.message_page("Forbidden", "Cross-site request."), 403)
            token = request.get_cookie(COOKIE)
            if token:
                users.end_session(conn, token)
        response.delete_cookie(COOKIE, path="/")
        see_other("/login")

    def static(self, name: str):
        with self.connection() as conn:
            self.check_host(conn)
        if name not in STATIC_FILES:
            return HTTPResponse("Not found", 404)
        return static_file(name, root=str(STATIC))


def render(view: views.View, result: Page) -> str:
    body = "".join(
        views.table(view, part) if isinstance(part, Table) else part for part in result.parts
    )
    return views.layout(view, result.title, body, result.status_line)


def csv_download(result: Page, name: str) -> str:
    """One table of the page as CSV (cells that a spreadsheet would run as formulas defused)."""
    tables = {t.name: t for t in result.parts if isinstance(t, Table)}
    if name not in tables:
        raise NotFound(f"no table {name!r} on this page")
    found = tables[name]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = found.csv_columns or found.columns
    writer.writerow(columns)
    for row in found.rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    response.content_type = "text/csv; charset=utf-8"
    response.set_header("Content-Disposition", f'attachment; filename="{name}.csv"')
    return buffer.getvalue()


def error_page(err: TracklyError) -> HTTPResponse:
    title = {404: "Not found", 403: "Forbidden", 429: "Too many"}.get(
        err.http_status, "Cannot show this"
    )
    return HTTPResponse(views.message_page(title, err.message), err.http_status)


def create_app(target: str | Path, *, open_local: bool = True) -> DashboardApp:
    """The dashboard over the database `target` (a SQLite path or a PostgreSQL URL): routes
    only. `open_local`: while no user exists, answer requests from this machine without a
    login."""
    store.open_db(target).close()  # migrated before the first request
    dashboard = Dashboard(target, open_local=open_local)
    app = DashboardApp()
    app.get("/login")(dashboard.login_form)
    app.post("/login")(dashboard.login)
    app.post("/logout")(dashboard.logout)
    app.get("/static/<name>")(dashboard.static)
    pages.register(app, dashboard.page)
    api.register(app, dashboard.target)
    app.error(404)(unrouted(404, lambda: views.message_page("Not found", "Not found.")))
    app.error(405)(unrouted(405, lambda: views.message_page("Not allowed", "Method not allowed.")))
    return app


def unrouted(status: int, page: Callable[[], str]) -> Callable:
    """Bottle's answer to a path (404) or method (405) that no route has: the API's JSON under
    /api/v1, else a page."""

    def handle(error):
        if api.is_api(request.path):
            found = api.not_routed(status)
            response.content_type = found.headers["Content-Type"]
            return found.body
        return page()

    return handle


def is_loopback_address(host: str) -> bool:
    """Whether a listening address is reachable only from this machine."""
    return _is_loopback(host.strip("[]").lower())


def serve(
    app: DashboardApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8081,
    threads: int = 4,
    trusted_proxy: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or Ctrl-C (waitress)."""
    import signal

    from trackly_cli.server import listen

    users.prepare_logins()
    options: dict = {"host": host, "port": port, "threads": threads, "ident": "trackly"}
    if trusted_proxy:
        options |= {
            "trusted_proxy": trusted_proxy,
            "trusted_proxy_count": 1,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
            "clear_untrusted_proxy_headers": True,
        }

    def stop(signum, frame):
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, stop)
    server = None
    try:
        server = listen(app, options, host, port)  # (as `trackly serve` listens)
        if announce:
            announce(f"http://{server.effective_host}:{server.effective_port}")
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.close()
