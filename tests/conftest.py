"""Shared fixtures: every test gets its own real SQLite file, and the real Typer app."""

from __future__ import annotations

import functools
import http.client
import json
import os
import secrets
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner

from trackly_cli.cli import app
from trackly_cli.core import store


@pytest.fixture(autouse=True)
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TRACKLY_DB points at a fresh file in this test's folder, which is also the working
    directory (so outbox files land there)."""
    path = tmp_path / "trackly.db"
    monkeypatch.setenv("TRACKLY_DB", str(path))
    monkeypatch.delenv("TRACKLY_ACCOUNT", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


# -- PostgreSQL ----------------------------------------------------------------------------------
# `.ci/postgres start` runs a throwaway server and names it in TRACKLY_TEST_POSTGRES; each test
# that asks for `pg_url` gets a database of its own there. Without a server such a test is
# skipped, unless TRACKLY_REQUIRE_POSTGRES=1 (as in CI), where that is a failure.


def _postgres_admin() -> str:
    url = os.environ.get("TRACKLY_TEST_POSTGRES")
    if not url:
        message = 'no PostgreSQL server: run `eval "$(.ci/postgres start)"` first'
        if os.environ.get("TRACKLY_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


def new_postgres_database() -> str:
    """A fresh PostgreSQL database on the test server (its URL); see drop_postgres_database."""
    import psycopg

    admin = _postgres_admin()
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin.rpartition('/')[0]}/{name}"


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = url.rpartition("/")[2]
    with psycopg.connect(_postgres_admin(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> str:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url = new_postgres_database()
    yield url
    drop_postgres_database(url)


# typer.testing.CliRunner turns the Typer app into a command tree on every call (~25 ms, most of a
# CLI test's time). Build it once, as one `trackly` process does; it runs exactly as before.
# (raising=False: should Typer rename this helper, the tests stay correct, only slower.)
_command_once = functools.cache(typer.main.get_command)


@pytest.fixture(autouse=True)
def _build_the_command_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typer.testing, "_get_command", _command_once, raising=False)


class Cli:
    """The real CLI through CliRunner: `cli("offer", "list")` asserts exit code 0."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args, input: str | bytes | None = None, code: int = 0):
        result = self.runner.invoke(app, [str(a) for a in args], input=input)
        assert result.exit_code == code, (
            f"trackly {' '.join(map(str, args))} exited {result.exit_code}, expected {code}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\nexception: {result.exception!r}"
        )
        return result

    def json(self, *args, input: str | bytes | None = None):
        return json.loads(self(*args, "--format", "json", input=input).stdout)

    def error(self, *args, code: int = 1, input: str | bytes | None = None) -> str:
        """Run a command that must fail with one line on stderr (no traceback); return it."""
        result = self(*args, code=code, input=input)
        message = result.stderr.strip()
        assert message, "expected an error message on stderr"
        assert "Traceback" not in result.output
        if code in (1, 2):  # (a usage error too is one line: #14, point 7)
            assert message.startswith("Error: "), message
            assert "\n" not in message or "problems:" in message, message
        return message


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The database every command and app of a test uses, run once on each store: the test's
    SQLite file, or a fresh PostgreSQL database (TRACKLY_DB names it). A module may have its own
    `target` (one holding a history, say)."""
    if request.param == "sqlite":
        return str(db_path)
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("TRACKLY_DB", url)
    return url


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture
def db(db_path: Path):
    database = store.open_db(db_path)
    yield database
    database.close()


@pytest.fixture
def acme(cli: Cli) -> Cli:
    """An account `acme` with the tracking domain go.acme.test and an offer `Summer Sale`."""
    cli("account", "create", "acme")
    cli("domain", "add", "go.acme.test", "--account", "acme")
    cli(
        "offer",
        "create",
        "Summer Sale",
        "--url",
        "https://shop.example/summer?sub={link_id}",
        "--payout",
        "2.50",
    )
    return cli


# -- servers -----------------------------------------------------------------------------------

BROWSER_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
HUMAN_HEADERS = {"User-Agent": BROWSER_UA, "Accept-Language": "en-US,en;q=0.9"}
# What carriers' and mail gateways' link scanners mostly present: a desktop Chrome.
DESKTOP_HEADERS = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like"
    " Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Accept-Language": "en-US,en;q=0.9",
}


def make_click(link, *, ip="198.51.100.7", is_bot=False, counts=True):
    """A click as the server hands it to the writer (a person's, unless `is_bot`)."""
    from trackly_cli.core import clicks, clock

    return clicks.Click(
        link,
        clock.now_text(),
        "GET",
        ip,
        BROWSER_UA,
        None,
        "en-US",
        clicks.visitor(link, ip, BROWSER_UA, b"secret"),
        is_bot,
        "user agent: crawler (test)" if is_bot else "",
        counts,
    )


@pytest.fixture
def links(campaign, db_path: Path):
    """The campaign's links as the server resolves them (clicks.LinkInfo); a module may have
    its own `links`."""
    from trackly_cli.core import clicks

    conn = store.connect(db_path)
    try:
        return [clicks.load_link(conn, link["id"]) for link in campaign["links"]]
    finally:
        conn.close()


@pytest.fixture
def campaign(acme: Cli, tmp_path: Path) -> dict:
    """acme's campaign 'spring': list 'vip' of 3 contacts, a 2-link template (link1 = Summer
    Sale, link2 = a plain URL), sent long enough ago that no click is too fast to be human.
    Returns {'links': [{'id', 'slot', 'phone', 'message_id', 'contact_id'}…], 'by_slot': …}."""
    (tmp_path / "c.csv").write_text(
        "phone,first_name\n+12025550143,Ann\n+12025550144,Bob\n+12025550145,Cy\n",
        encoding="utf-8",
    )
    acme("list", "create", "vip")
    acme("contacts", "import", "vip", tmp_path / "c.csv")
    (tmp_path / "msg.txt").write_text("Hi {{first_name}} {{link1}} {{link2}}", encoding="utf-8")
    acme(
        "shorten",
        "msg.txt",
        "--list",
        "vip",
        "--link",
        "link1=Summer Sale",
        "--link",
        "link2=https://plain.example/page",
        "--campaign",
        "spring",
    )
    database = store.open_db(tmp_path / "trackly.db")
    try:
        database.execute("UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
        links = store.rows(
            database,
            "SELECT l.id, l.slot, c.phone, l.message_id, l.contact_id FROM short_links l"
            " JOIN contacts c ON c.id = l.contact_id ORDER BY l.message_id, l.slot",
        )
    finally:
        database.close()
    return {
        "links": links,
        "by_slot": {slot: [x for x in links if x["slot"] == slot] for slot in ("link1", "link2")},
    }


@pytest.fixture
def webapp(db_path: Path):
    """make(**create_app options) -> a WebTest TestApp over the real app (behind its click lane,
    as waitress runs it) and database, whose requests come from 198.51.100.7 for go.acme.test
    unless they say otherwise. After each request it waits until the server's drain has stored
    what the request put in the click journal, so that a test reads the rows the request made
    (`app.tracker` is the server)."""
    import webtest

    from trackly_cli.server import ClickLane, Tracker, create_app

    class SyncedApp(webtest.TestApp):
        def do_request(self, *args, **kwargs):
            try:
                return super().do_request(*args, **kwargs)
            finally:
                self.tracker.sync()

    trackers = []

    def make(**options):
        options.setdefault("journal", db_path.parent / f"journal-{len(trackers)}")
        tracker = Tracker(db_path, **options)
        trackers.append(tracker)
        app = SyncedApp(
            ClickLane(create_app(db_path, tracker=tracker)),  # (as `trackly serve` runs it)
            extra_environ={"HTTP_HOST": "go.acme.test", "REMOTE_ADDR": "198.51.100.7"},
        )
        app.tracker = tracker
        return app

    yield make
    for tracker in trackers:
        tracker.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`trackly serve` in a subprocess on a free loopback port."""

    def __init__(
        self, db_path: Path | str, *args: str, port: int | None = None, logs: Path | None = None
    ) -> None:
        """`db_path`: a SQLite file (the log goes beside it) or a PostgreSQL URL (give `logs`,
        the folder for the log)."""
        import subprocess
        import sys

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (logs or Path(db_path).parent) / f"serve-{self.port}.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trackly_cli",
                "--db",
                str(db_path),
                "serve",
                "--port",
                str(self.port),
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        import socket
        import time

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"trackly serve exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("trackly serve did not start")

    def request(
        self,
        path: str,
        *,
        host: str = "go.acme.test",
        method: str = "GET",
        headers: dict | None = None,
        timeout: float = 10.0,
    ):
        """(status, headers dict, body bytes) — no redirect is followed."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def stop(self, sig: int | None = None, timeout: float = 30.0) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            self.proc.wait(timeout)
        self._log.close()
        return self.proc.returncode


class Load:
    """`threads` clients, each on its own keep-alive connection, clicking `link_ids` in turn
    until stopped (or `seconds` pass). Counts, per link, the 302s that actually arrived: each
    is a committed click."""

    def __init__(
        self, port: int, link_ids: list[str], threads: int = 8, seconds: float | None = None
    ) -> None:
        self.port = port
        self.link_ids = link_ids
        self.redirects: Counter = Counter()
        self.other_statuses: Counter = Counter()
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds if seconds else float("inf")
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.redirects.values())

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        assert not any(t.is_alive() for t in self._threads), "a load client hung"

    def _client(self, n: int) -> None:
        conn: http.client.HTTPConnection | None = None
        i = n
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            link_id = self.link_ids[i % len(self.link_ids)]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request(
                    "GET", f"/{link_id}", headers={"Host": "go.acme.test", **HUMAN_HEADERS}
                )
                response = conn.getresponse()
                status = response.status
                response.read()
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
                continue
            with self._lock:
                if status == 302:
                    self.redirects[link_id] += 1
                else:
                    self.other_statuses[status] += 1
            if response.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


@pytest.fixture
def live_server(db_path: Path):
    """start(*serve args) -> a LiveServer on this test's database; stopped at the end."""
    servers: list[LiveServer] = []

    def start(*args: str, port: int | None = None) -> LiveServer:
        server = LiveServer(db_path, *args, port=port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# -- reading the database directly -------------------------------------------------------------


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, to check that a failed command wrote nothing."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}
    finally:
        conn.close()


def query(db_path: Path | str, sql: str, *params) -> list[dict]:
    """Rows as dicts, read through a fresh connection (what the writer committed); on
    PostgreSQL for a postgresql:// URL."""
    import sqlite3

    if isinstance(db_path, str) and db_path.startswith("postgres"):
        conn = store.connect(db_path)
        try:
            return store.rows(conn, sql, params)
        finally:
            conn.close()
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def execute(db_path: Path | str, sql: str, *params) -> None:
    """One statement, committed, through a fresh connection (PostgreSQL's for a URL)."""
    import sqlite3

    if isinstance(db_path, str) and db_path.startswith("postgres"):
        conn = store.connect(db_path)
        try:
            conn.execute(sql, params)
        finally:
            conn.close()
        return
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def add_url_links(db_path: Path, count: int) -> None:
    """`count` more links on message 1 (z000001, z000002, …): an index that takes a while to
    load."""
    execute(
        db_path,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO short_links (id, account_id, message_id, contact_id, domain_id, slot, url,"
        " created_at) SELECT printf('z%06d', i), account_id, id, contact_id, domain_id,"
        " 'url' || i, 'https://example.com/', created_at FROM messages, n WHERE messages.id = 1",
        count,
    )


def wait_for(check, timeout: float = 10.0, what: str = "condition"):
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
