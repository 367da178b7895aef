"""A database written by the previous release (main at 3ef9e97, schema 0001 only: account acme,
campaign `spring` to 3 contacts, 3 clicks of which 1 bot, 1 conversion) opens under this code:
its migrations apply in place, its data and reports are unchanged, and its server takes clicks
through the journal. The reports it printed then are kept beside it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import HUMAN_HEADERS, query

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
    assert applied == [
        "0001_initial.sql",
        "0002_click_journal.sql",
        "0003_campaign_building.sql",
        "0004_pending_reversals.sql",
        "0005_postback_rules.sql",
        "0006_header_caps.sql",
        "0007_delivery_receipts.sql",
        "0009_optouts.sql",
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
