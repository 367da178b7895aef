"""`trackly serve` and `trackly demo` for real: subprocesses on loopback ports, real HTTP
connections, signals, and the database file they leave behind."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import HUMAN_HEADERS, Load, add_url_links, free_port, wait_for

pytestmark = pytest.mark.slow

HOST = "go.acme.test"


# -- helpers -----------------------------------------------------------------------------------


def query(db_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows from a plain sqlite3 connection of the test's own (WAL recovery included)."""
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def scalar(db_path: Path, sql: str, params: tuple = ()):
    return query(db_path, sql, params)[0][0]


def clicks_per_link(db_path: Path) -> Counter:
    return Counter(
        dict(query(db_path, "SELECT link_id, count(*) FROM message_short_link_clicks GROUP BY 1"))
    )


def get(
    port: int, path: str, *, host: str = HOST, headers: dict | None = None, timeout: float = 10
) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def assert_every_redirect_recorded(db_path: Path, load: Load) -> None:
    rows = clicks_per_link(db_path)
    missing = {
        link_id: (received, rows[link_id])
        for link_id, received in load.redirects.items()
        if rows[link_id] < received
    }
    assert not missing, f"302s received vs click rows, per link: {missing}"


def run_serve(db_path: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """`trackly --db DB serve ARGS` that is expected to exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "trackly_cli", "--db", str(db_path), "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_refused(result: subprocess.CompletedProcess) -> str:
    """Exit code 1 and one clear line on stderr, no traceback; returns the line."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


# -- starting ----------------------------------------------------------------------------------


def test_banner_names_database_domains_and_address_and_healthz_answers(acme, live_server, db_path):
    acme("domain", "add", "links.acme.test", "--account", "acme")
    server = live_server()

    def banner() -> str | None:
        text = server.log.read_text()
        return text if "listening on" in text else None

    log = wait_for(banner, what="the banner")
    assert str(db_path) in log
    assert "go.acme.test" in log
    assert "links.acme.test" in log
    assert f"http://127.0.0.1:{server.port}" in log

    status, headers, body = server.request("/healthz")
    assert status == 200, body
    assert b'"ok"' in body
    assert headers["Content-Type"].startswith("application/json")


def test_banner_tells_how_many_links_are_held_in_memory(campaign, live_server):
    server = live_server()
    log = wait_for(
        lambda: (text := server.log.read_text()) and "listening on" in text and text,
        what="the banner",
    )
    assert "6 newest links in memory" in log


def test_a_large_link_index_loads_while_the_server_answers(campaign, live_server, db_path):
    add_url_links(db_path, 500_000)  # over a second to load, the server waits 0.2 s
    server = live_server()
    link = campaign["by_slot"]["link1"][0]
    status, headers, _ = server.request(f"/{link['id']}", host="go.acme.test")
    assert status == 302
    assert headers["Location"] == f"https://shop.example/summer?sub={link['id']}"
    log = wait_for(
        lambda: (text := server.log.read_text()) and "link index: 500,006 links" in text and text,
        what="the link index loaded",
    )
    assert "loading up to 1,000,000 newest links into memory" in log
    assert log.index("loading up to") < log.index("link index: 500,006 links")


def test_without_the_link_index_links_are_read_from_the_database(campaign, live_server, db_path):
    server = live_server("--hot-links", "0")
    link = campaign["by_slot"]["link1"][0]
    status, headers, _ = server.request(f"/{link['id']}", host="go.acme.test")
    assert status == 302
    assert headers["Location"] == f"https://shop.example/summer?sub={link['id']}"
    assert "newest links in memory" not in server.log.read_text()
    assert server.stop() == 0  # stores what its journal holds, then stops
    rows = query(db_path, "SELECT link_id FROM message_short_link_clicks")
    assert rows == [(link["id"],)]


def test_refuses_a_negative_link_index_size(acme, db_path):
    result = run_serve(db_path, "--port", str(free_port()), "--hot-links", "-1")
    assert result.returncode == 2
    assert "--hot-links" in result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_a_port_that_is_taken(acme, db_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(db_path, "--port", str(port))
    line = assert_refused(result)
    assert str(port) in line
    assert "listen" in line or "in use" in line, line


def test_refuses_an_unknown_domain(acme, db_path):
    result = run_serve(db_path, "--port", str(free_port()), "--domain", "unknown.test")
    line = assert_refused(result)
    assert "unknown.test" in line


def _make_unwritable(db_path: Path) -> tuple[Path, Callable[[], None]]:
    """A database `trackly serve` cannot write, and how to undo it.

    Not root: the file and its folder read-only. Root ignores permissions, so there the file is
    made immutable (chattr +i) when the filesystem supports it, else the database path runs
    through a regular file, which cannot be a folder."""
    folder = db_path.parent
    if os.geteuid() != 0:
        db_path.chmod(0o444)
        folder.chmod(0o555)

        def undo() -> None:
            folder.chmod(0o755)
            db_path.chmod(0o644)

        return db_path, undo
    chattr = shutil.which("chattr")
    made = chattr and subprocess.run([chattr, "+i", str(db_path)], capture_output=True, timeout=10)
    if made and made.returncode == 0:
        try:
            with db_path.open("ab"):
                pass
        except PermissionError:
            return db_path, lambda: subprocess.run(
                [chattr, "-i", str(db_path)], check=True, timeout=10
            )
        subprocess.run([chattr, "-i", str(db_path)], check=True, timeout=10)
    not_a_folder = folder / "not-a-folder"
    not_a_folder.write_text("a file\n", encoding="utf-8")
    return not_a_folder / "trackly.db", lambda: None


def test_refuses_a_database_it_cannot_write(acme, db_path):
    target, undo = _make_unwritable(db_path)
    try:
        result = run_serve(target, "--port", str(free_port()))
    finally:
        undo()
    line = assert_refused(result)
    assert "database" in line.lower(), line


# -- clicks under load -------------------------------------------------------------------------


def test_fifty_concurrent_clicks_make_fifty_rows_and_one_message_click(
    campaign, live_server, db_path
):
    link = campaign["by_slot"]["link1"][0]
    server = live_server()
    start = threading.Barrier(50, timeout=20)
    statuses: list[int | str] = []
    lock = threading.Lock()

    def click() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        try:
            conn.connect()
            start.wait()
            conn.request("GET", f"/{link['id']}", headers={"Host": HOST, **HUMAN_HEADERS})
            response = conn.getresponse()
            response.read()
            result: int | str = response.status
        except Exception as e:
            result = repr(e)
        finally:
            conn.close()
        with lock:
            statuses.append(result)

    threads = [threading.Thread(target=click, daemon=True) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads), "a client hung"

    assert statuses == [302] * 50, Counter(statuses)
    assert server.stop() == 0  # stores what its journal holds, then stops
    assert (
        scalar(
            db_path,
            "SELECT count(*) FROM message_short_link_clicks WHERE link_id = ?",
            (link["id"],),
        )
        == 50
    )
    assert query(
        db_path,
        "SELECT link_id, contact_id, source FROM message_clicks WHERE message_id = ?",
        (link["message_id"],),
    ) == [(link["id"], link["contact_id"], "click")]


def assert_stored_exactly_once(db_path: Path, load: Load, in_flight: int) -> None:
    """Every 302 has its row, and nothing is stored twice: at most the `in_flight` requests
    that were kept but not answered when the server died have a row without a 302."""
    assert_every_redirect_recorded(db_path, load)
    rows = clicks_per_link(db_path)
    extra = sum(rows.values()) - load.total
    assert 0 <= extra <= in_flight, (sum(rows.values()), load.total)
    rolled = scalar(db_path, "SELECT sum(clicks) FROM report_rollups")
    per_message = scalar(db_path, "SELECT sum(clicks) FROM message_rollups")
    assert rolled == per_message == sum(rows.values())


@pytest.mark.parametrize("after", [0.3, 1.5, 2.5])
def test_sigkill_under_load_then_restart_stores_each_acknowledged_click_once(
    campaign, live_server, db_path, after
):
    """SIGKILL at several moments of a load (the journal being written and drained all the
    while), then a restart: the journal's records are stored exactly once."""
    link_ids = [link["id"] for link in campaign["links"]]
    server = live_server()
    with Load(server.port, link_ids, threads=8, seconds=15) as load:
        started = time.monotonic()
        wait_for(lambda: load.total >= 50, timeout=10, what="50 redirects")
        time.sleep(max(0.0, after - (time.monotonic() - started)))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        time.sleep(0.3)  # whatever was already on the wire arrives
    assert server.proc.returncode == -signal.SIGKILL
    assert not load.other_statuses, load.other_statuses
    assert load.total >= 50
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]

    again = live_server()
    wait_for(
        lambda: sum(clicks_per_link(db_path).values()) >= load.total,
        timeout=20,
        what="the restarted server to store the journal",
    )
    assert again.stop() == 0
    assert_stored_exactly_once(db_path, load, in_flight=8)
    # Each contact's first click still became its one MessageClick.
    assert scalar(db_path, "SELECT count(*) FROM message_clicks") == len(campaign["links"]) // 2
    assert (
        scalar(db_path, "SELECT sum(unique_clicks) FROM report_rollups")
        == len(campaign["links"]) // 2
    )
    # Drained: the journal holds no segment any more.
    assert not list((db_path.parent / "trackly.db.journal").glob("*.jnl"))


def test_sigterm_under_load_stops_cleanly_and_keeps_every_click(campaign, live_server, db_path):
    link_ids = [link["id"] for link in campaign["links"]]
    server = live_server()
    with Load(server.port, link_ids, threads=8, seconds=15) as load:
        started = time.monotonic()
        wait_for(lambda: load.total >= 300, timeout=10, what="300 redirects")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            raise AssertionError("trackly serve did not stop within 15 s of SIGTERM") from None
    assert code == 0, server.log.read_text()
    assert "Stopped." in server.log.read_text()
    assert "Traceback" not in server.log.read_text()
    assert not load.other_statuses, load.other_statuses

    assert_every_redirect_recorded(db_path, load)
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]


# -- options -----------------------------------------------------------------------------------


def test_access_log_has_one_line_per_request(campaign, live_server):
    link_id = campaign["links"][0]["id"]
    server = live_server("--access-log")
    requests = [
        ("/healthz", 200),
        (f"/{link_id}", 302),
        ("/nope123", 404),
        (f"/{link_id}", 302),
    ]
    for path, expected in requests:
        status, _, _ = server.request(path, headers=HUMAN_HEADERS)
        assert status == expected, path

    def log_lines() -> list[str]:
        return [line for line in server.log.read_text().splitlines() if '"GET /' in line]

    lines = wait_for(lambda: len(log_lines()) >= len(requests) and log_lines(), what="log lines")
    assert len(lines) == len(requests), lines
    for line, (path, status) in zip(lines, requests, strict=True):
        assert f'"GET {path} HTTP/1.1" {status} ' in line, line


def test_trusted_proxy_decides_the_client_ip(campaign, live_server, db_path):
    first, second = campaign["by_slot"]["link1"][:2]
    forwarded = {**HUMAN_HEADERS, "X-Forwarded-For": "203.0.113.9"}

    trusting = live_server("--trusted-proxy", "127.0.0.1")
    assert trusting.request(f"/{first['id']}", headers=forwarded)[0] == 302
    trusting.stop()
    not_trusting = live_server()
    assert not_trusting.request(f"/{second['id']}", headers=forwarded)[0] == 302
    not_trusting.stop()

    sql = "SELECT ip FROM message_short_link_clicks WHERE link_id = ?"
    assert query(db_path, sql, (first["id"],)) == [("203.0.113.9",)]
    assert query(db_path, sql, (second["id"],)) == [("127.0.0.1",)]
    sql = "SELECT ip FROM message_clicks WHERE link_id = ?"
    assert query(db_path, sql, (first["id"],)) == [("203.0.113.9",)]
    assert query(db_path, sql, (second["id"],)) == [("127.0.0.1",)]


# -- the demo ----------------------------------------------------------------------------------


def test_demo_serves_links_that_lead_to_the_shop_and_a_pixel_conversion(tmp_path):
    port = free_port()
    demo_db = tmp_path / "demo" / "demo.db"
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trackly_cli", "demo", "--port", str(port)],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "TRACKLY_DB": str(demo_db)},
        )
    try:
        link_pattern = re.compile(rf"^http://localhost:{port}/([0-9A-Za-z]{{7}})$", re.M)

        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"trackly demo exited: {err.read_text()}")
            if "listening on" not in err.read_text():
                return None
            return link_pattern.findall(out.read_text())

        links = wait_for(ready, timeout=30, what="the demo's links and banner")
        assert len(links) == 3, out.read_text()
        host = f"localhost:{port}"
        link_id = links[0]

        status, headers, body = get(port, f"/{link_id}", host=host)
        assert status == 302, body
        location = urlsplit(headers["Location"])
        assert (location.scheme, location.netloc, location.path) == ("http", host, "/demo/shop")
        assert parse_qs(location.query) == {"link": [link_id]}

        status, _, body = get(port, f"{location.path}?{location.query}", host=host)
        assert status == 200, body
        assert f"/demo/thanks?link={link_id}".encode() in body
        status, _, body = get(port, f"/demo/thanks?link={link_id}", host=host)
        assert status == 200, body
        pixel = re.search(r'<img src="(/pixel/[^"]+)"', body.decode())
        assert pixel, body
        assert pixel.group(1).startswith(f"/pixel/{link_id}.gif")
        status, headers, body = get(port, unescape(pixel.group(1)), host=host)
        assert status == 200
        assert headers["Content-Type"] == "image/gif"
        # The pixel's conversion is kept in the journal and stored by the drain, after the click.
        wait_for(
            lambda: query(demo_db, "SELECT 1 FROM conversions WHERE link_id = ?", (link_id,)),
            what="the pixel's conversion",
        )

        assert query(
            demo_db, "SELECT count(*) FROM message_short_link_clicks WHERE link_id = ?", (link_id,)
        ) == [(1,)]
        assert query(
            demo_db, "SELECT count(*) FROM message_clicks WHERE link_id = ?", (link_id,)
        ) == [(1,)]
        assert query(
            demo_db,
            "SELECT source, event, revenue_micros, attribution FROM conversions WHERE link_id = ?",
            (link_id,),
        ) == [("pixel", "sale", 19_990_000, "attributed")]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise
    assert code == 0, err.read_text()
    assert "Stopped." in err.read_text()


def test_the_demo_keeps_its_own_database_and_prints_links_that_answer(tmp_path):
    """#14: `trackly demo` wrote account `demo` and domain `localhost` into the operator's
    default database, printed texts without the port, and a banner address that answers 404."""
    port = free_port()
    config = tmp_path / "config"
    env = {k: v for k, v in os.environ.items() if k != "TRACKLY_DB"}
    env |= {"XDG_CONFIG_HOME": str(config), "HOME": str(tmp_path / "home")}
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trackly_cli", "demo", "--port", str(port)],
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
    try:
        wait_for(
            lambda: proc.poll() is None and "open http://localhost" in err.read_text(),
            timeout=30,
            what="the demo's banner",
        )
        demo_db = config / "trackly" / "demo.db"
        assert demo_db.exists()
        assert not (config / "trackly" / "trackly.db").exists()  # the operator's: untouched
        text = err.read_text()
        assert f"in {demo_db}:" in text and f"trackly --db {demo_db} report" in text
        assert f"http://localhost:{port}/" in text and "http://localhost/" not in text
        opened = re.search(rf"open (http://localhost:{port}/([0-9A-Za-z]{{7}}))", text)
        status, _, _ = get(port, f"/{opened.group(2)}", host=f"localhost:{port}")
        assert status == 302
    finally:
        proc.terminate()
        proc.wait(30)
