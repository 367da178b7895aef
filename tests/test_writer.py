"""The server's writer (the drain of the click journal) and the click path under it: batches of
clicks stored as one statement (the click_input view's trigger makes the MessageClicks), the
retry when another process wrote clicks meanwhile, foreign keys still enforced for other jobs,
and click timestamps."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest
from conftest import make_click as click
from conftest import query

from trackly_cli.core import clicks, clock, store
from trackly_cli.core.writer import Writer


@pytest.fixture
def writer(db_path):
    started = Writer(db_path).start()
    yield started
    started.close()


def stored(writer: Writer, hit: clicks.Click) -> None:
    """Append a click to the journal and wait until the drain has stored it."""
    writer.record_click(hit)
    writer.sync()


def test_concurrent_clicks_are_all_stored_with_one_message_click_per_message(
    writer, links, db_path
):
    hits = [click(link) for link in links for _ in range(10)]  # 60 hits on 6 links, 3 messages
    threads = [threading.Thread(target=writer.record_click, args=(hit,)) for hit in hits]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.sync()
    rows = query(db_path, "SELECT id, link_id FROM message_short_link_clicks ORDER BY id")
    assert len(rows) == 60
    assert [r["id"] for r in rows] == list(range(rows[0]["id"], rows[0]["id"] + 60))
    assert writer.commits < 60  # grouped
    message_clicks = query(db_path, "SELECT message_id, click_id, source FROM message_clicks")
    assert sorted(m["message_id"] for m in message_clicks) == sorted(
        {link.message_id for link in links}
    )
    assert {m["source"] for m in message_clicks} == {"click"}
    stored = {r["id"] for r in rows}
    assert all(m["click_id"] in stored for m in message_clicks)
    rollups = query(db_path, "SELECT sum(clicks) AS c, sum(unique_clicks) AS u FROM report_rollups")
    assert (rollups[0]["c"], rollups[0]["u"]) == (60, 3)


def test_bots_and_clicks_that_do_not_count_make_no_message_click(writer, links, db_path):
    stored(writer, click(links[0], is_bot=True))
    stored(writer, click(links[2], counts=False))  # confirm mode: the button decides
    assert query(db_path, "SELECT count(*) AS n FROM message_clicks")[0]["n"] == 0
    rows = query(db_path, "SELECT is_bot, bot_reasons FROM message_short_link_clicks ORDER BY id")
    assert [(r["is_bot"], r["bot_reasons"]) for r in rows] == [
        (1, "user agent: crawler (test)"),
        (0, ""),
    ]
    stored(writer, click(links[0]))
    assert [m["link_id"] for m in query(db_path, "SELECT link_id FROM message_clicks")] == [
        links[0].id
    ]


def test_a_click_written_by_another_process_meanwhile_is_not_overwritten(writer, links, db_path):
    stored(writer, click(links[0]))  # the writer now numbers on from its last id
    other = store.connect(db_path)
    try:
        clicks.prepare_click_input(other)
        clicks.record_many(other, [click(links[1], ip="203.0.113.9")])  # takes the next id
    finally:
        other.close()
    stored(writer, click(links[2]))  # its id is taken: stored one by one, numbered anew
    rows = query(db_path, "SELECT id, link_id, ip FROM message_short_link_clicks ORDER BY id")
    assert [(r["link_id"], r["ip"]) for r in rows] == [
        (links[0].id, "198.51.100.7"),
        (links[1].id, "203.0.113.9"),
        (links[2].id, "198.51.100.7"),
    ]
    assert len({r["id"] for r in rows}) == 3


def test_more_clicks_than_one_statement_holds(links, db_path):
    conn = store.connect(db_path)
    try:
        clicks.prepare_click_input(conn)
        count = clicks.MAX_CLICKS_PER_STATEMENT * 2 + 5
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            next_id = clicks.record_many(conn, [click(links[i % 6]) for i in range(count)])
    finally:
        conn.close()
    rows = query(db_path, "SELECT min(id) AS a, max(id) AS b, count(*) AS n FROM "
                 "message_short_link_clicks")  # fmt: skip
    assert (rows[0]["a"], rows[0]["b"], rows[0]["n"], next_id) == (1, count, count, count + 1)
    assert query(db_path, "SELECT count(*) AS n FROM message_clicks")[0]["n"] == 3


def test_jobs_still_have_their_foreign_keys_checked(writer, links, db_path):
    def orphan(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO message_clicks (message_id, visitor, link_id, account_id, clicked_at,"
            " source, created_at) VALUES (999999, 'c:1', 'zzzzzzz', 1, ?, 'click', ?)",
            (clock.now_text(), clock.now_text()),
        )

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        writer.submit(orphan)
    stored(writer, click(links[0]))  # the click path goes on
    assert query(db_path, "SELECT count(*) AS n FROM message_clicks")[0]["n"] == 1
    problems = sqlite3.connect(db_path).execute("PRAGMA foreign_key_check").fetchall()
    assert problems == []


@pytest.mark.parametrize(
    "seconds",
    [0.0, 1767225600.0, 1767225600.5, 1767225599.999999, 1767225600.000001, 1796083199.25],
)
def test_click_timestamps_are_the_stored_form(seconds):
    text = clock.timestamp_text(seconds)
    assert len(text) == len("2026-01-01T00:00:00.000000Z")
    expected = datetime.fromtimestamp(seconds, UTC)
    assert (
        datetime.fromisoformat(text) == expected
        or abs((datetime.fromisoformat(text) - expected).total_seconds()) <= 1e-6
    )
    assert clock.timestamp_text(seconds) == text  # the second's text, cached, is the same


def test_a_message_click_is_created_when_committed_not_when_clicked(writer, links, db_path):
    late = click(links[0])._replace(clicked_at="2026-01-02T03:04:05.000000Z")
    stored(writer, late)
    row = query(db_path, "SELECT clicked_at, created_at FROM message_clicks")[0]
    assert row["clicked_at"] == "2026-01-02T03:04:05.000000Z"
    assert row["created_at"] > row["clicked_at"]
    assert row["created_at"][:4] == clock.now_text()[:4]
