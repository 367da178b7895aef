"""Several `trackly serve` nodes over one PostgreSQL database (#13): a link resolves on every
node; concurrent clicks on two nodes for one message make one MessageClick; identical postbacks
spread over the nodes make one conversion; a settings change reaches every node within 2 s; and
the reports equal those of one SQLite server given the same requests."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import DESKTOP_HEADERS, HUMAN_HEADERS, LiveServer

from trackly_cli.core import store

pytestmark = pytest.mark.slow


def build(cli, db: str, folder: Path) -> dict[str, str]:
    """acme, its domain and offer, two contacts and a campaign; {phone: link1 id}."""
    (folder / "c.csv").write_text("phone\n+12025550143\n+12025550144\n", encoding="utf-8")
    (folder / "m.txt").write_text("Sale {{link1}}", encoding="utf-8")
    cli("--db", db, "account", "create", "acme")
    cli("--db", db, "domain", "add", "go.acme.test", "--account", "acme")
    cli("--db", db, "offer", "create", "Sale", "--url", "https://shop.example/?s={link_id}")
    cli("--db", db, "list", "create", "vip")
    cli("--db", db, "contacts", "import", "vip", folder / "c.csv")
    out = folder / f"out-{len(list(folder.glob('out-*')))}.csv"
    cli("--db", db, "shorten", folder / "m.txt", "--list", "vip", "--link", "link1=Sale",
        "--campaign", "june", "-o", out)  # fmt: skip
    conn = store.connect(db)
    try:
        # sent long ago: no click is too fast to be a person's
        conn.execute("UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
        return dict(
            conn.execute(
                "SELECT c.phone, l.id FROM short_links l JOIN contacts c ON c.id = l.contact_id"
            ).fetchall()
        )
    finally:
        conn.close()


def play(servers: list[LiveServer], links: dict[str, str]) -> None:
    """The same requests, spread over `servers` in turn: 50 concurrent clicks on Ann's link,
    one on Bob's, 200 identical postbacks for Ann's sale, and one for Bob's."""
    ann, bob = links["+12025550143"], links["+12025550144"]

    def click(n: int) -> int:
        status, _, _ = servers[n % len(servers)].request(f"/{ann}", headers=HUMAN_HEADERS)
        return status

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(click, range(50))) == {302}
    assert servers[-1].request(f"/{bob}", headers=HUMAN_HEADERS)[0] == 302
    start = threading.Barrier(16)

    def postback(n: int) -> str:
        if n < 16:
            start.wait()  # the first ones at once, on both nodes
        status, _, body = servers[n % len(servers)].request(
            f"/conv?link_id={ann}&event=sale&revenue=49.90&txn_id=A-1"
        )
        assert status == 200, body
        return json.loads(body)["status"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(postback, range(200)))
    assert answers.count("recorded") == 1 and answers.count("duplicate") == 199
    status, _, _ = servers[0].request(f"/conv?link_id={bob}&revenue=10&txn_id=B-1")
    assert status == 200


def wait_stored(cli, db: str, clicks: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        (row,) = cli.json("--db", db, "report", "--by", "campaign")
        if row["clicks"] == clicks:
            return
        time.sleep(0.1)
    raise AssertionError(f"the clicks did not all reach {db}")


def test_two_nodes_make_one_message_click_one_conversion_and_the_sqlite_reports(
    cli, pg_url, db_path, tmp_path
):
    links = build(cli, pg_url, tmp_path)
    nodes = [
        LiveServer(pg_url, "--journal", str(tmp_path / f"journal-{n}"), logs=tmp_path)
        for n in (1, 2)
    ]
    try:
        play(nodes, links)
    finally:
        for node in nodes:
            assert node.stop() == 0
    wait_stored(cli, pg_url, 51)
    conn = store.connect(pg_url)
    try:
        ann = links["+12025550143"]
        assert store.scalar(conn, "SELECT count(*) FROM message_short_link_clicks") == 51
        made = store.rows(conn, "SELECT link_id FROM message_clicks ORDER BY link_id")
        assert sorted(r["link_id"] for r in made) == sorted(links.values())
        sales = store.rows(conn, "SELECT link_id, txn_id FROM conversions ORDER BY txn_id")
        assert sales == [{"link_id": ann, "txn_id": "A-1"},
                         {"link_id": links["+12025550144"], "txn_id": "B-1"}]  # fmt: skip
    finally:
        conn.close()
    # The same requests to two servers on one SQLite file give the same reports. (Two, as
    # each server bounds what one link's hits store per minute on its own: one server given all
    # 50 would store 20 of them without headers, as bots.)
    sqlite_links = build(cli, str(db_path), tmp_path)
    pair = [LiveServer(db_path, "--journal", str(tmp_path / f"sqlite-{n}")) for n in (1, 2)]
    try:
        play(pair, sqlite_links)
    finally:
        for server in pair:
            assert server.stop() == 0
    for by in ("campaign", "offer", "list", "day"):
        on_postgres = cli.json("--db", pg_url, "report", "--by", by)
        assert on_postgres == cli.json("--db", db_path, "report", "--by", by), by


def test_a_settings_change_reaches_every_node_within_two_seconds(cli, pg_url, tmp_path):
    links = build(cli, pg_url, tmp_path)
    ann = links["+12025550143"]
    nodes = [
        LiveServer(pg_url, "--journal", str(tmp_path / f"journal-{n}"), logs=tmp_path)
        for n in (1, 2)
    ]
    try:
        for node in nodes:  # the link resolves on every node
            assert node.request(f"/{ann}", headers=HUMAN_HEADERS)[1]["Location"].startswith(
                "https://shop.example/"
            )
        cli("--db", pg_url, "offer", "update", "Sale", "--url", "https://new.example/?s={link_id}")
        changed = time.monotonic()
        seen: dict[int, float] = {}
        while len(seen) < 2 and time.monotonic() - changed < 5:
            for n, node in enumerate(nodes):
                if n not in seen:
                    location = node.request(f"/{ann}", method="HEAD")[1]["Location"]
                    if location.startswith("https://new.example/"):
                        seen[n] = time.monotonic() - changed
            time.sleep(0.05)
        assert len(seen) == 2, seen
        assert max(seen.values()) <= 2.0, seen
    finally:
        for node in nodes:
            node.stop()


def test_a_postgresql_restart_loses_no_click_and_refuses_none(cli, pg_url, tmp_path):
    """While PostgreSQL is down, redirects go on from the node's journal (and the links in
    memory), postbacks and /healthz answer 503; once it is back, the node connects again and
    stores every click it answered, exactly once."""
    folder = os.environ.get("TRACKLY_PG_DIR")
    if not folder:  # (a server this suite did not start cannot be restarted by it)
        pytest.fail("this test restarts the server `.ci/postgres start` made (TRACKLY_PG_DIR)")
    links = build(cli, pg_url, tmp_path)
    ann, bob = links["+12025550143"], links["+12025550144"]
    node = LiveServer(pg_url, "--journal", str(tmp_path / "journal"), logs=tmp_path)
    script = str(Path(__file__).resolve().parents[1] / ".ci" / "postgres")
    try:
        assert node.request(f"/{ann}", headers=HUMAN_HEADERS)[0] == 302
        subprocess.run([script, "pause", folder], check=True)
        try:
            answered = 1
            for _ in range(20):
                assert node.request(f"/{bob}", headers=HUMAN_HEADERS)[0] == 302
                answered += 1
            assert node.request("/healthz")[0] == 503
            status, headers, _ = node.request(f"/conv?link_id={ann}&txn_id=R-1&revenue=1")
            assert (status, headers.get("Retry-After")) == (503, "5")
        finally:
            subprocess.run([script, "resume", folder], check=True)
        deadline = time.monotonic() + 30
        while node.request("/healthz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, _, body = node.request(f"/conv?link_id={ann}&txn_id=R-1&revenue=1")
        assert (status, json.loads(body)["status"]) == (200, "recorded")
    finally:
        assert node.stop() == 0
    conn = store.connect(pg_url)
    try:
        assert store.scalar(conn, "SELECT count(*) FROM message_short_link_clicks") == answered
        assert store.scalar(conn, "SELECT count(*) FROM message_clicks") == 2
    finally:
        conn.close()


def test_a_scanner_burst_split_over_two_nodes_is_judged_whole(cli, pg_url, tmp_path):
    """Three cloud addresses on one recipient's link, two on one node and one on the other:
    neither node sees three, but the drains look at every node's hits of the links they store,
    so all three are bots and no MessageClick is left (one node alone would judge the same)."""
    links = build(cli, pg_url, tmp_path)
    ann = links["+12025550143"]
    nodes = [
        LiveServer(
            pg_url,
            "--journal",
            str(tmp_path / f"journal-{n}"),
            "--trusted-proxy",
            "127.0.0.1",
            logs=tmp_path,
        )
        for n in (1, 2)
    ]
    desktop = {**DESKTOP_HEADERS}
    try:
        for node, ip in ((nodes[0], "34.1.2.3"), (nodes[1], "35.4.5.6"), (nodes[0], "52.7.8.9")):
            headers = desktop | {"X-Forwarded-For": ip}
            assert node.request(f"/{ann}", headers=headers)[0] == 302
            time.sleep(0.3)  # (each node's drain stores its hit before the next comes)
    finally:
        for node in nodes:
            assert node.stop() == 0
    conn = store.connect(pg_url)
    try:
        rows = store.rows(
            conn, "SELECT ip, is_bot, bot_reasons FROM message_short_link_clicks ORDER BY id"
        )
        assert [r["is_bot"] for r in rows] == [1, 1, 1], rows
        assert "3 IPs on one link within 10 s (across servers)" in rows[0]["bot_reasons"]
        assert store.scalar(conn, "SELECT count(*) FROM message_clicks") == 0
    finally:
        conn.close()
