"""A list send is written in short transactions: other writers never wait long for the lock, the
campaign is invisible until complete, and a killed run leaves nothing visible, is listed by
`db check`, and is replaced by a rerun or removed by `prune`."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import HUMAN_HEADERS, query, wait_for

from trackly_cli.core import campaigns, store


def add_members(db_path: Path, list_name: str, count: int) -> None:
    """`count` contacts on the list (plain SQL: the CLI import is not what is tested here)."""
    conn = sqlite3.connect(db_path)
    with conn:
        list_id = conn.execute("SELECT id FROM lists WHERE name = ?", (list_name,)).fetchone()[0]
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM contacts").fetchone()[0]
        now = "2026-01-01T00:00:00.000000Z"
        conn.executemany(
            "INSERT INTO contacts (id, account_id, phone, fields, created_at, updated_at)"
            ' VALUES (?, 1, ?, \'{"first_name": "Al"}\', ?, ?)',
            ((i, f"+1{2025500000 + i}", now, now) for i in range(first, first + count)),
        )
        conn.executemany(
            "INSERT INTO list_members (list_id, contact_id, added_at) VALUES (?, ?, ?)",
            ((list_id, i, now) for i in range(first, first + count)),
        )
    conn.close()


@pytest.fixture
def big(acme, db_path, tmp_path):
    """acme with the list `big` of 40,000 contacts and a template."""
    acme("list", "create", "big")
    add_members(db_path, "big", 40_000)
    (tmp_path / "big.txt").write_text("Hi {{first_name}} {{link1}}", encoding="utf-8")
    return acme


def shorten_args(db_path: Path, campaign: str = "huge") -> list[str]:
    return [
        *(sys.executable, "-m", "trackly_cli", "--db", str(db_path), "shorten", "big.txt"),
        *("--list", "big", "--link", "link1=Summer Sale", "--campaign", campaign),
        *("--output", f"{campaign}.csv"),
    ]


def count(db_path: Path, sql: str, *params) -> int:
    return query(db_path, sql, *params)[0]["n"]


@pytest.mark.slow
def test_a_killed_shorten_leaves_nothing_visible_and_a_rerun_works(big, db_path, tmp_path):
    proc = subprocess.Popen(shorten_args(db_path), cwd=tmp_path, stderr=subprocess.PIPE)
    wait_for(
        lambda: (
            count(db_path, "SELECT count(*) AS n FROM messages WHERE campaign_id IS NOT NULL")
            > 2_000
        ),
        timeout=30,
        what="some chunks committed",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    written = count(db_path, "SELECT count(*) AS n FROM messages")
    assert 0 < written < 40_000

    # Invisible: no report row, no lookup, no journey, no outbox; listed by db check.
    assert big.json("report", "--by", "campaign") == []
    assert "no campaign 'huge'" in big.error("segment", "huge", "--clicked")
    journey = big.json("contact", "show", "+12025500001")
    assert journey["messages"] == []
    assert not (tmp_path / "huge.csv").exists()
    # …and no file of phone numbers under another name either (#15: a `.partial` outbox with
    # 254,173 numbers outlived its run)
    for path in tmp_path.iterdir():
        if path.is_file() and path.suffix != ".db" and "trackly.db" not in path.name:
            assert "+1202550" not in path.read_text(errors="replace"), path.name
    checked = big.json("db", "check")
    assert "acme/huge (left over" in checked["incomplete_campaigns"]

    # The same command again: the leftover is replaced, the campaign complete.
    rerun = subprocess.run(shorten_args(db_path), cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert count(db_path, "SELECT count(*) AS n FROM messages") == 40_000
    assert count(db_path, "SELECT count(*) AS n FROM short_links") == 40_000
    assert count(db_path, "SELECT count(*) AS n FROM campaigns WHERE building_pid IS NULL") == 1
    (row,) = big.json("report", "--by", "campaign")
    assert (row["campaign"], row["sent"]) == ("huge", 40_000)
    assert big.json("db", "check")["incomplete_campaigns"] is None
    assert len((tmp_path / "huge.csv").read_text().splitlines()) == 40_001
    assert (tmp_path / "huge.csv").stat().st_mode & 0o077 == 0  # personal data: owner only


@pytest.mark.slow
def test_prune_removes_what_a_killed_shorten_left(big, db_path, tmp_path):
    proc = subprocess.Popen(shorten_args(db_path, "gone"), cwd=tmp_path, stderr=subprocess.PIPE)
    wait_for(
        lambda: count(db_path, "SELECT count(*) AS n FROM messages") > 1_000,
        timeout=30,
        what="some chunks committed",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = big.json("report")
    dry = big("prune", "--dry-run")
    assert "would remove campaign 'gone'" in dry.stderr
    assert count(db_path, "SELECT count(*) AS n FROM messages") > 0
    done = big("prune")
    assert "removed campaign 'gone'" in done.stderr
    for table in ("messages", "short_links", "campaigns", "campaign_variants"):
        assert count(db_path, f"SELECT count(*) AS n FROM {table}") == 0, table
    assert big.json("report") == before
    assert query(db_path, "PRAGMA foreign_key_check") == []


def test_a_campaign_being_written_is_not_removed_nor_written_twice(big, db_path, tmp_path):
    """A campaign row naming a live process (this one) is in progress: prune keeps it and the
    same name is refused while it is."""
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO campaigns (account_id, name, name_key, domain_id, seed, created_at,"
            " building_pid, building_host) VALUES (1, 'busy', 'busy', 1, 's', ?, ?, ?)",
            ("2026-01-01T00:00:00.000000Z", *campaigns.builder()),
        )
    conn.close()
    assert "being written by another `trackly shorten`" in big.error(
        "shorten", "big.txt", "--list", "big", "-l", "link1=Summer Sale", "--campaign", "busy"
    )
    big("prune")
    assert count(db_path, "SELECT count(*) AS n FROM campaigns WHERE name = 'busy'") == 1
    assert "busy (being written" in big.json("db", "check")["incomplete_campaigns"]


@pytest.mark.slow
def test_other_writers_never_wait_long_for_a_large_shorten(big, db_path, tmp_path):
    """While 40,000 messages are written, another writer that takes turns as Trackly's do (the
    server's drain) takes the write lock again and again: it never waits more than about a
    quarter of a second (chunks of ~0.15 s)."""
    waits: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        conn = store.connect(db_path)
        while not stop.is_set():
            started = time.perf_counter()
            with store.turn(conn), store.write(conn):
                waits.append(time.perf_counter() - started)
                conn.execute("UPDATE config_version SET version = version")
            time.sleep(0.01)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = subprocess.run(shorten_args(db_path), cwd=tmp_path, capture_output=True)
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    assert len(waits) > 20
    assert max(waits) < 0.5, sorted(waits)[-5:]


@pytest.mark.slow
def test_a_live_server_answers_clicks_and_postbacks_at_once_during_a_large_shorten(
    big, campaign, live_server, db_path, tmp_path
):
    link = campaign["by_slot"]["link1"][0]["id"]
    # (one link takes every postback here: no hourly limit on it)
    big("offer", "update", "Summer Sale", "--link-conversions-per-hour", "0")
    server = live_server()
    job = subprocess.Popen(shorten_args(db_path), cwd=tmp_path, stderr=subprocess.PIPE)
    slowest, answered, n = 0.0, 0, 0
    try:
        while job.poll() is None:
            started = time.perf_counter()
            status, _, body = server.request(f"/{link}", headers=HUMAN_HEADERS)
            assert status == 302
            status, _, body = server.request(f"/conv?link_id={link}&txn_id=T{n}&revenue=1")
            assert status == 200, body
            slowest = max(slowest, time.perf_counter() - started)
            answered += 1
            n += 1
    finally:
        job.wait(60)
    assert job.returncode == 0
    assert answered > 10
    assert slowest < 1.0, slowest
    assert server.stop() == 0
    assert count(db_path, "SELECT count(*) AS n FROM conversions") == answered


DEAD_PID = 2**30  # above any pid_max: no such process


def leftover(db_path: Path, name: str) -> int:
    """A campaign row as a killed `trackly shorten` leaves it (its process is gone)."""
    conn = sqlite3.connect(db_path)
    with conn:
        campaign_id = conn.execute(
            "INSERT INTO campaigns (account_id, name, name_key, domain_id, seed, created_at,"
            " building_pid, building_host) VALUES (1, ?, ?, 1, 's', ?, ?, ?)",
            (name, name, "2026-01-01T00:00:00.000000Z", DEAD_PID, campaigns.HOST),
        ).lastrowid
    conn.close()
    return campaign_id


def test_a_leftover_is_claimed_once_so_no_two_runs_remove_the_same_id(acme, db_path):
    """Campaign ids are reused: two reruns (or a rerun and a prune) that both saw the dead run's
    leftover must not both remove by its id."""
    campaign_id = leftover(db_path, "dead")
    seen = query(db_path, "SELECT * FROM campaigns WHERE id = ?", campaign_id)[0]
    conn = store.connect(db_path)
    try:
        assert campaigns.claim(conn, seen) is True
        assert campaigns.claim(conn, seen) is False  # the second one sees it taken
    finally:
        conn.close()
    row = query(db_path, "SELECT building_pid FROM campaigns WHERE id = ?", campaign_id)[0]
    assert row["building_pid"] == campaigns.builder()[0]


def test_a_one_off_send_replaces_a_leftover_of_its_name(acme, db_path, tmp_path):
    leftover(db_path, "dead")
    (tmp_path / "one.txt").write_text("Hi {{link1}}", encoding="utf-8")
    acme("shorten", "one.txt", "-l", "link1=Summer Sale", "--campaign", "dead")
    rows = query(db_path, "SELECT name, building_pid FROM campaigns")
    assert rows == [{"name": "dead", "building_pid": None}]


def test_a_dead_runs_leftover_does_not_hold_back_the_link_index(campaign, db_path):
    """Only a campaign that is really being written keeps its links out of the index: a dead
    run's leftover would otherwise hold back every campaign after it until a prune."""
    from trackly_cli.core import linkindex

    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "UPDATE campaigns SET building_pid = ?, building_host = ?", (DEAD_PID, campaigns.HOST)
        )
    conn.close()
    conn = store.connect(db_path)
    try:
        assert linkindex.ready_until(conn) == 3  # all three messages
    finally:
        conn.close()
