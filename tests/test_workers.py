"""`trackly serve --workers N` (#13): N server processes on one port, each with its own click
journal; SIGTERM stops them all with every click stored; a SIGKILL of them all loses nothing the
journals hold, even when the next start has fewer workers; on either store."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import HUMAN_HEADERS, LiveServer, Load, query

from trackly_cli.core import store

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


def stored(db) -> int:
    conn = store.connect(db)
    try:
        return store.scalar(conn, "SELECT count(*) FROM message_short_link_clicks")
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, db_path, tmp_path):
    """The test's database: its SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return str(db_path)
    return request.getfixturevalue("pg_url")


def test_workers_share_the_port_and_stop_together(campaign, cli, target, tmp_path, db_path):
    if target != str(db_path):  # the campaign, copied to PostgreSQL
        cli("db", "copy", db_path, target)
    journal = tmp_path / "journal"
    server = LiveServer(target, "--workers", "3", "--journal", str(journal), logs=tmp_path)
    try:
        deadline = time.monotonic() + 10  # (the port listens before the workers are forked)
        while len(workers := children(server.proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 3
        link_ids = [link["id"] for link in campaign["links"]]
        with Load(server.port, link_ids, threads=12) as load:
            time.sleep(2)
        answered = load.total
        assert answered > 0
    finally:
        assert server.stop() == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    assert stored(target) == answered
    log = server.log.read_text()
    assert "3 worker processes" in log and log.count("listening on") == 1
    # each worker kept its own journal, and each journal was drained to its end
    folders = sorted(p.name for p in tmp_path.glob("journal*") if p.is_dir())
    assert folders == ["journal", "journal-2", "journal-3"]
    conn = store.connect(target)
    try:
        assert len(store.rows(conn, "SELECT id FROM journal_state")) == 3
    finally:
        conn.close()


def test_a_killed_run_with_more_workers_is_stored_by_the_next_start(campaign, tmp_path, db_path):
    journal = tmp_path / "journal"
    server = LiveServer(db_path, "--workers", "3", "--journal", str(journal))
    while len(children(server.proc.pid)) < 3:
        time.sleep(0.05)
    link_ids = [link["id"] for link in campaign["links"]]
    with Load(server.port, link_ids, threads=12) as load:
        time.sleep(1.5)
    answered = load.total
    for pid in [*children(server.proc.pid), server.proc.pid]:  # no drain gets to finish
        os.kill(pid, signal.SIGKILL)
    server.proc.wait(10)
    time.sleep(0.2)
    # started again with one worker: the journals of workers 2 and 3 are stored first
    again = LiveServer(db_path, "--journal", str(journal))
    try:
        deadline = time.monotonic() + 20
        while stored(str(db_path)) < answered and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        assert again.stop() == 0
    assert stored(str(db_path)) == answered
    rows = query(db_path, "SELECT count(*) AS n FROM message_clicks")
    assert rows[0]["n"] >= 1


def test_workers_refuse_a_port_in_use(campaign, cli, tmp_path):
    busy = LiveServer(Path(tmp_path / "trackly.db"), "--workers", "2")
    try:
        result = cli("serve", "--port", busy.port, "--workers", "2", code=1)
        assert f"cannot listen on 127.0.0.1:{busy.port}" in result.stderr
        assert busy.request(f"/{campaign['links'][0]['id']}", headers=HUMAN_HEADERS)[0] == 302
    finally:
        busy.stop()
