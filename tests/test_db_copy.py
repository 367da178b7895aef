"""`trackly db copy SRC DST` (#13): a whole install moves between stores, SQLite -> PostgreSQL ->
SQLite, with every row and identical reports; a target that is not empty, the same database,
a missing source and a source of another schema are refused, and the target is left as it was."""

from __future__ import annotations

import json

import pytest
from conftest import HUMAN_HEADERS, snapshot

from trackly_cli.core import dbcopy, store

REPORTS = [
    ("report", "--by", "campaign"),
    ("report", "--by", "offer"),
    ("report", "--by", "day"),
    ("report", "--by", "message", "--campaign", "spring"),
    ("clicks",),
    ("conversions",),
    ("contact", "show", "+12025550143"),
    ("segment", "spring", "--not-clicked"),
]


@pytest.fixture
def filled(campaign, webapp, acme, db_path) -> dict:
    """The campaign fixture with clicks (a person, a bot), a sale and a refund pending."""
    app = webapp()
    first = campaign["by_slot"]["link1"][0]["id"]
    app.get(f"/{first}", headers=HUMAN_HEADERS)
    app.get(f"/{first}", headers={"User-Agent": "facebookexternalhit/1.1"})
    app.get(f"/conv?link_id={first}&revenue=49.90&txn_id=S-1")
    app.tracker.close()
    return campaign


def outputs(cli, db) -> list:
    return [json.loads(cli("--db", db, *c, "--format", "json").stdout) for c in REPORTS]


def rows(db) -> dict[str, list]:
    conn = store.connect(db)
    try:
        return {
            t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}").fetchall()), key=repr)
            for t in dbcopy.TABLES
        }
    finally:
        conn.close()


def test_a_round_trip_through_postgresql_keeps_every_row_and_report(
    filled, cli, db_path, pg_url, tmp_path
):
    before = outputs(cli, str(db_path))
    result = cli("db", "copy", db_path, pg_url)
    assert "Copied" in result.stderr and "6 links" in result.stderr
    assert outputs(cli, pg_url) == before
    back = tmp_path / "back.db"
    cli("db", "copy", pg_url, back)
    assert outputs(cli, str(back)) == before
    assert rows(str(back)) == rows(str(db_path))
    # the copy goes on where the source was: a new message, click and sale on PostgreSQL
    cli("--db", pg_url, "shorten", "msg.txt", "--list", "vip", "--link", "link1=Summer Sale",
        "--link", "link2=https://plain.example/page", "-o", "again.csv")  # fmt: skip
    conn = store.connect(pg_url)
    try:
        assert store.scalar(conn, "SELECT count(*) FROM messages") == 6
    finally:
        conn.close()


def test_a_target_that_is_not_empty_is_refused_and_left_alone(filled, cli, db_path, tmp_path):
    other = tmp_path / "other.db"
    cli("--db", other, "account", "create", "globex")
    before = snapshot(other)
    message = cli.error("db", "copy", db_path, other)
    assert message.startswith("Error: the target is not empty (it has rows in accounts")
    assert snapshot(other) == before


def test_bad_sources_are_one_line_each(filled, cli, db_path, tmp_path):
    assert cli.error("db", "copy", db_path, db_path) == (
        "Error: the source and the target are the same database"
    )
    assert cli.error("db", "copy", tmp_path / "missing.db", tmp_path / "x.db") == (
        f"Error: no database at {tmp_path / 'missing.db'}"
    )
    assert not (tmp_path / "x.db").exists()
