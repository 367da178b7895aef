"""`trackly contacts erase PHONE` (#14): the person's data is gone, on both stores, and every
report counts as before; on SQLite not a byte of the number or the name is left in the
database file or its WAL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import query
from history import (
    ANN,
    ANN_CITY,
    ANN_DIGITS,
    ANN_IP,
    ANN_NAME,
    BOB,
    BOB_IP,
    build,
    everything,
    reports,
)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, db_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """TRACKLY_DB (a SQLite file or a PostgreSQL URL) holding acme's history."""
    if request.param == "sqlite":
        database = str(db_path)
    else:
        database = request.getfixturevalue("pg_url")
        monkeypatch.setenv("TRACKLY_DB", database)
    build(request.getfixturevalue("cli"), tmp_path, database)
    return database


def _ann_rows(target: str) -> dict:
    """Everything that could still name Ann."""
    return {
        "contacts": query(target, "SELECT * FROM contacts WHERE phone = ?", ANN),
        "bodies": query(
            target,
            "SELECT id FROM messages WHERE body LIKE ? OR body LIKE ?",
            f"%{ANN_NAME}%",
            "%2025550143%",
        ),
        "clicks": query(
            target,
            "SELECT id FROM message_short_link_clicks WHERE ip = ? OR user_agent LIKE ?"
            " OR referer LIKE ?",
            ANN_IP,
            "%Quillonia%",
            "%quillonia%",
        ),
        "message_clicks": query(target, "SELECT id FROM message_clicks WHERE ip = ?", ANN_IP),
        "conversions": query(target, "SELECT id FROM conversions WHERE ip = ?", ANN_IP),
        "webhook_events": query(
            target,
            "SELECT id FROM webhook_events WHERE data LIKE ? OR data LIKE ? OR data LIKE ?",
            "%2025550143%",
            f"%{ANN_IP}%",
            "%Quillonia%",
        ),
    }


def test_erase_leaves_reports_identical_and_no_row_naming_the_person(cli, target):
    before = reports(cli)
    assert before["campaign"][0]["clicks"] == 5 and before["campaign"][0]["conversions"] == 1
    assert all(_ann_rows(target).values())  # (there is something to erase)
    bob_before = query(target, "SELECT * FROM message_short_link_clicks WHERE ip = ?", BOB_IP)

    done = cli.json("contacts", "erase", "(202) 555-0143", "--yes")

    assert done["phone"] == ANN
    assert (done["lists"], done["messages"], done["clicks"]) == (1, 1, 4)
    assert (done["message_clicks"], done["conversions"]) == (1, 1)  # (one per message)
    assert reports(cli) == before
    assert not any(_ann_rows(target).values()), _ann_rows(target)
    erased = query(
        target,
        "SELECT ip, user_agent, referer, accept_language, contact_id, visitor"
        " FROM message_short_link_clicks WHERE visitor = 'erased'",
    )
    assert len(erased) == 4
    assert {tuple(r.values()) for r in erased} == {(None, None, None, None, None, "erased")}
    assert query(target, "SELECT count(*) AS n FROM messages WHERE body = '(erased)'")[0]["n"] == 1
    # her webhook events stay (a receiver still hears of the click and the sale), without her
    assert done["webhook_events"] == 3  # (her first click, a scanner's, her sale)
    kept = query(target, "SELECT type, contact_id, data FROM webhook_events ORDER BY id")
    assert len(kept) == 4  # (and Bob's first click)
    erased_events = [json.loads(e["data"]) for e in kept if e["contact_id"] is None]
    assert len(erased_events) == 3
    for data in erased_events:
        assert (data["phone"], data["ip"], data["user_agent"], data["contact_id"]) == (None,) * 4
        assert data["campaign"] == "spring"
    # (a MessageClick keeps its visitor 'c:<id>', the id of no one now: see below)
    assert not query(
        target, "SELECT 1 FROM message_clicks WHERE contact_id IS NULL AND ip IS NOT NULL"
    )
    # Bob's data is his own, untouched
    assert query(target, "SELECT * FROM message_short_link_clicks WHERE ip = ?", BOB_IP) == (
        bob_before
    )
    assert [c["phone"] for c in cli.json("contacts", "list")] == [BOB, "+12025550145"]
    assert cli.json("list", "show", "vip")["members"] == 2
    # the contact is unknown now, for show and for erase
    assert cli.error("contact", "show", ANN) == f"Error: no contact {ANN!r} in this account"
    assert cli.error("contacts", "erase", ANN, "--yes").startswith("Error: no contact")


def test_reports_stay_identical_after_a_rescan(cli, target):
    """The erased clicks have no headers left: a rescan does not judge them again (an empty
    user agent would make them bots, and change the counts)."""
    before = reports(cli)
    cli("contact", "erase", ANN, "--yes")
    cli("bots", "rescan")
    assert reports(cli) == before


def test_no_trace_in_the_sqlite_file_or_its_wal(cli, db_path: Path, tmp_path: Path):
    build(cli, tmp_path, str(db_path))

    def stored() -> bytes:
        wal = Path(f"{db_path}-wal")
        return db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

    assert ANN_DIGITS in stored() and ANN_NAME.encode() in stored()  # (a test that can fail)
    cli("contacts", "erase", ANN, "--yes")
    data = stored()
    for trace in (ANN_DIGITS, ANN_NAME.encode(), ANN_CITY.encode(), ANN_IP.encode()):
        assert trace not in data, trace
    assert b"Quillonia" not in data and b"quillonia" not in data  # user agent, referer


def test_unknown_or_bad_numbers_change_nothing(cli, target):
    before = everything(target)
    assert cli.error("contacts", "erase", "+1 202 555 0199", "--yes") == (
        "Error: no contact '+1 202 555 0199' in this account"
    )
    assert cli.error("contacts", "erase", "not a phone", "--yes") == ("Error: not a phone number")
    assert "is not a two-letter country code" in cli.error(
        "contacts", "erase", "202 555 0143", "--country", "ZZ", "--yes"
    )
    assert everything(target) == before


def test_erase_asks_first(cli, target):
    before = everything(target)
    asked = cli("contacts", "erase", ANN, input="n\n", code=1).stderr
    assert asked.startswith("Erase +12025550143 and everything that names them?")
    assert asked.endswith("\nError: nothing was erased (--yes confirms without asking)\n")
    assert "Traceback" not in asked
    cli("contacts", "erase", ANN, input="", code=1)  # (no answer: no terminal)
    assert everything(target) == before
    done = cli("contacts", "erase", ANN, input="y\n")
    assert "Erased +12025550143: 1 list membership, 1 message text, 4 clicks" in done.stderr
    assert ("frees the old row versions at its next VACUUM" in done.stderr) == (
        target.startswith("postgres")
    )
    assert "Warning" not in done.stderr  # (on SQLite, nothing kept the WAL)
    assert not query(target, "SELECT 1 FROM contacts WHERE phone = ?", ANN)


def test_an_erased_persons_link_still_answers(cli, target, db_path):
    """The SMS is on their phone: its link keeps redirecting, as a one-off's would."""
    from trackly_cli.core import clicks, store

    link_id = query(
        target,
        "SELECT l.id FROM short_links l JOIN contacts c ON c.id = l.contact_id"
        " WHERE c.phone = ? AND l.slot = 'link1'",
        ANN,
    )[0]["id"]
    cli("contacts", "erase", ANN, "--yes")
    conn = store.connect(target)
    try:
        link = clicks.load_link(conn, link_id)
    finally:
        conn.close()
    assert link is not None and link.contact_id is None


def test_a_server_holding_the_link_counts_no_second_unique_click(cli, target, tmp_path):
    """A running server may hold the erased person's link in memory, with the contact id it
    had: a click on it then is that visitor's again, not a second unique click."""
    import webtest
    from conftest import HUMAN_HEADERS

    from trackly_cli.server import Tracker, create_app

    link_id = query(
        target,
        "SELECT l.id FROM short_links l JOIN contacts c ON c.id = l.contact_id"
        " JOIN message_clicks mc ON mc.message_id = l.message_id"
        " WHERE c.phone = ? AND l.slot = 'link1'",
        ANN,
    )[0]["id"]
    tracker = Tracker(target, journal=tmp_path / "journal")
    try:
        app = webtest.TestApp(
            create_app(target, tracker=tracker),
            extra_environ={"HTTP_HOST": "go.acme.test", "REMOTE_ADDR": "198.51.100.77"},
        )
        assert tracker.link(link_id).contact_id is not None  # held, as before the erase
        before = reports(cli)
        cli("contacts", "erase", ANN, "--yes")
        assert app.get(f"/{link_id}", headers=HUMAN_HEADERS).status_int == 302
        tracker.sync()
    finally:
        tracker.close()
    after = reports(cli)
    for by in ("campaign", "offer", "list"):
        assert [r["unique_clicks"] for r in after[by]] == [
            r["unique_clicks"] for r in before[by]
        ], by
        assert sum(r["clicks"] for r in after[by]) == sum(r["clicks"] for r in before[by]) + 1


def test_a_reader_in_the_way_is_told_and_the_wal_goes_when_it_closes(
    cli, db_path: Path, tmp_path: Path
):
    import sqlite3

    build(cli, tmp_path, str(db_path))
    reader = sqlite3.connect(db_path)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM contacts").fetchone()  # (holds its snapshot)
        done = cli("contacts", "erase", ANN, "--yes")
        assert "Erased +12025550143" in done.stderr
        assert "Warning: another process is reading the database, so its WAL keeps" in (done.stderr)
        reader.execute("COMMIT")
    finally:
        reader.close()  # (the last connection: SQLite checkpoints and deletes the WAL)
    assert not Path(f"{db_path}-wal").exists()
    assert ANN_DIGITS not in db_path.read_bytes()
    assert ANN_NAME.encode() not in db_path.read_bytes()
