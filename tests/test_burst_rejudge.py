"""A scanner's burst re-judges what it already counted (#18): the first hits of a burst have
nothing against them when they come; once a later hit reveals several addresses on one
per-recipient link within the window, they are bots too, the message's MessageClick moves to
its first human click (or goes), conversions follow, and reports count exactly that."""

from __future__ import annotations

import time

from conftest import DESKTOP_HEADERS, HUMAN_HEADERS, execute, query

DESKTOP, PHONE = DESKTOP_HEADERS, HUMAN_HEADERS
SCANNERS = ("34.1.2.3", "35.4.5.6", "52.7.8.9")


def hit(app, link_id: str, ip: str, headers: dict) -> None:
    app.get(f"/{link_id}", headers=headers, extra_environ={"REMOTE_ADDR": ip})


def message_clicks(db_path, message_id: int) -> list[dict]:
    return query(
        db_path,
        "SELECT m.click_id, m.source, c.ip FROM message_clicks m"
        " LEFT JOIN message_short_link_clicks c ON c.id = m.click_id WHERE m.message_id = ?",
        message_id,
    )


def unique_clicks(acme) -> int:
    (row,) = acme.json("report", "--by", "campaign")
    return row["unique_clicks"]


def test_a_burst_demotes_its_first_hits_and_no_message_click_is_left(
    acme, campaign, webapp, db_path
):
    app = webapp()
    link = campaign["by_slot"]["link1"][0]
    hit(app, link["id"], SCANNERS[0], DESKTOP)
    assert len(message_clicks(db_path, link["message_id"])) == 1  # the first hit, for now
    for ip in SCANNERS[1:]:
        hit(app, link["id"], ip, DESKTOP)
    rows = query(
        db_path, "SELECT ip, is_bot, bot_reasons FROM message_short_link_clicks ORDER BY id"
    )
    assert [r["is_bot"] for r in rows] == [1, 1, 1]
    assert "later: 3 IPs on one link within 10 s" in rows[0]["bot_reasons"]
    assert message_clicks(db_path, link["message_id"]) == []
    assert unique_clicks(acme) == 0
    (row,) = acme.json("report", "--by", "campaign")
    assert (row["clicks"], row["bot_clicks"]) == (3, 3)


def test_the_message_click_moves_to_the_first_human_click_after_the_burst(
    acme, campaign, webapp, db_path
):
    app = webapp()
    app.tracker.detector.recent.window = 0.5  # (this server's burst window, shortened)
    link = campaign["by_slot"]["link1"][0]
    hit(app, link["id"], SCANNERS[0], DESKTOP)
    # a conversion arrives, attributed to that first hit for now
    answer = app.get(f"/conv?link_id={link['id']}&revenue=10&txn_id=B1").json
    assert answer["attribution"] == "attributed"
    for ip in SCANNERS[1:]:
        hit(app, link["id"], ip, DESKTOP)
    (conversion,) = query(db_path, "SELECT attribution, message_click_id FROM conversions")
    assert conversion["message_click_id"] is None  # its click was a scanner's
    time.sleep(0.6)
    hit(app, link["id"], "198.51.100.23", PHONE)  # the person, later
    (made,) = message_clicks(db_path, link["message_id"])
    assert made["ip"] == "198.51.100.23"
    assert unique_clicks(acme) == 1


def test_a_person_before_the_window_keeps_the_message_click(acme, campaign, webapp, db_path):
    app = webapp()
    app.tracker.detector.recent.window = 0.5
    link = campaign["by_slot"]["link1"][0]
    hit(app, link["id"], "198.51.100.23", PHONE)
    time.sleep(0.6)
    for ip in SCANNERS:
        hit(app, link["id"], ip, DESKTOP)
    (kept,) = message_clicks(db_path, link["message_id"])
    assert kept["ip"] == "198.51.100.23"
    bots = query(db_path, "SELECT count(*) AS n FROM message_short_link_clicks WHERE is_bot = 1")
    assert bots[0]["n"] == 3
    assert unique_clicks(acme) == 1


def test_segment_clicked_announces_a_click_only_once_it_has_settled(
    acme, campaign, webapp, db_path
):
    """The first hit of a burst looks like a person until the burst shows: `segment --clicked`
    counts a click once the burst window is over, so it never lists a scanner's first hit."""
    app = webapp()
    scanned, tapped = campaign["by_slot"]["link1"][0], campaign["by_slot"]["link1"][1]
    hit(app, scanned["id"], SCANNERS[0], DESKTOP)  # a scanner's first hit: the rest to come
    hit(app, tapped["id"], "198.51.100.23", PHONE)
    assert acme.json("segment", "spring", "--clicked") == []  # nothing settled yet
    # neither is listed as not having clicked meanwhile
    not_clicked = {r["phone"] for r in acme.json("segment", "spring", "--not-clicked")}
    assert scanned["phone"] not in not_clicked and tapped["phone"] not in not_clicked
    for ip in SCANNERS[1:]:
        hit(app, scanned["id"], ip, DESKTOP)  # the burst shows
    execute(
        db_path,
        "UPDATE message_clicks SET clicked_at = '2026-01-01T00:00:00.000000Z'",
    )
    execute(
        db_path,
        "UPDATE message_short_link_clicks SET clicked_at = '2026-01-01T00:00:00.000000Z'",
    )
    assert [r["phone"] for r in acme.json("segment", "spring", "--clicked")] == [tapped["phone"]]
