"""Databases written by earlier releases open under this code: their migrations apply in place,
their data and reports are unchanged, and their servers take clicks through the journal. The
reports each printed then are kept beside it. The oldest (main at 3ef9e97, schema 0001 only:
account acme, campaign `spring` to 3 contacts, 3 clicks of which 1 bot, 1 conversion), and the
release before this one (main at f762d01, schema 0007: see below)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import HUMAN_HEADERS, query

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
RELEASE = DATA / "release-3ef9e97.db"


@pytest.fixture
def old_db(db_path: Path) -> Path:
    shutil.copy(RELEASE, db_path)
    return db_path


def test_the_previous_release_reports_the_same_after_the_upgrade(cli, old_db):
    for by in ("campaign", "offer"):
        expected = json.loads((DATA / f"release-3ef9e97-report-{by}.json").read_text())
        rows = cli.json("report", "--by", by)
        # every figure the release reported, the same; the columns added since, nothing yet
        assert [{k: r[k] for k in e} for r, e in zip(rows, expected, strict=True)] == expected
        assert {(r["delivered"], r["undelivered"]) for r in rows} == {(0, 0)}, by
    applied = [m["name"] for m in cli.json("db", "migrate", "--list")]
    # every migration since, applied on top
    assert applied == sorted(p.name for p in (ROOT / "migrations" / "sqlite").glob("*.sql"))
    assert applied[:7] == [
        "0001_initial.sql",
        "0002_click_journal.sql",
        "0003_campaign_building.sql",
        "0004_pending_reversals.sql",
        "0005_postback_rules.sql",
        "0006_header_caps.sql",
        "0007_delivery_receipts.sql",
    ]
    assert all(m["state"] == "applied" for m in cli.json("db", "migrate", "--list"))
    assert cli.json("db", "check")["ok"] is True
    # Its campaign is complete and visible.
    assert query(old_db, "SELECT name, building_pid FROM campaigns") == [
        {"name": "spring", "building_pid": None}
    ]


def test_the_previous_release_serves_its_links_through_the_journal(cli, old_db, webapp):
    before = cli.json("report", "--by", "campaign")[0]
    link = query(old_db, "SELECT id FROM short_links ORDER BY message_id LIMIT 1 OFFSET 2")[0]["id"]
    app = webapp()
    assert app.get(f"/{link}", headers=HUMAN_HEADERS).status_int == 302
    after = cli.json("report", "--by", "campaign")[0]
    assert (after["clicks"], after["unique_clicks"]) == (
        before["clicks"] + 1,
        before["unique_clicks"] + 1,
    )
    conn = sqlite3.connect(old_db)
    try:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


# --- the release before this one: main at f762d01, schema 0007 ----------------------------------
# Made by that code (account acme, campaign june to Ann, Bob and Cy; Ann's link clicked by her
# and by a link preview, Bob's by him; Ann's click brought a lead and a sale, Bob's a sale; a
# delivery report: 2 delivered, 1 failed). Its reports, as that release printed them, beside it.
F762D01 = DATA / "release-f762d01.db"


@pytest.fixture
def f762d01_db(db_path: Path) -> Path:
    shutil.copy(F762D01, db_path)
    return db_path


def test_the_release_before_keeps_its_reports_through_the_new_migrations(cli, f762d01_db):
    for by in ("campaign", "offer", "day", "list"):
        expected = json.loads((DATA / f"release-f762d01-report-{by}.json").read_text())
        rows = cli.json("report", "--by", by)
        assert sum(r["conversions"] for r in rows) == 3
        for row, then in zip(rows, expected, strict=True):
            if then["conversions"]:
                # One change, on purpose (#14): the conversion rate counts clicks that
                # converted, so Ann's lead and sale are one converting click: 2 of 2, not 3.
                assert (then["conversion_rate"], row["conversion_rate"]) == ("150.00", "100.00")
                assert (row["conversions"], row["converting_clicks"]) == (3, 2), by
                then = then | {"conversion_rate": "100.00"}
            assert {k: row[k] for k in then} == then, by
    applied = [m["name"] for m in cli.json("db", "migrate", "--list")]
    assert applied == sorted(p.name for p in (ROOT / "migrations" / "sqlite").glob("*.sql"))
    assert cli.json("db", "check")["ok"] is True
    # Its report counters are one shard, shard 0 (SQLite's only one).
    assert query(f762d01_db, "SELECT DISTINCT shard FROM report_rollups") == [{"shard": 0}]


def test_the_release_before_takes_the_new_workflow(cli, f762d01_db, tmp_path, webapp):
    """What this change added works on the upgraded database: opt-outs, the campaign noun and
    its outbox, the refusals of deletes, an erase; and its links still answer."""
    cli("optout", "add", "+12025550145")
    assert [r["phone"] for r in cli.json("optout", "list")] == ["+12025550145"]
    (june,) = cli.json("campaign", "list")
    assert (june["name"], june["sent"], june["clicks"]) == ("june", 3, 3)
    written = cli("campaign", "outbox", "june", "--output", tmp_path / "again.csv").stderr
    assert "2 messages of june (left out: 1 opted out since)" in written  # Cy said STOP
    assert (tmp_path / "again.csv").read_text().count("go.acme.test/") == 2
    assert "has 3 clicks" in cli.error("campaign", "delete", "june")
    assert "links" in cli.error("offer", "delete", "Sale")
    before = cli.json("report", "--by", "offer")
    cli("contacts", "erase", "+12025550144", "--yes")
    assert cli.json("report", "--by", "offer") == before
    link = query(f762d01_db, "SELECT id FROM short_links ORDER BY message_id LIMIT 1")[0]["id"]
    assert webapp().get(f"/{link}", headers=HUMAN_HEADERS).status_int == 302
    (after,) = cli.json("report", "--by", "offer")
    assert after["clicks"] == before[0]["clicks"] + 1
