"""What one client can add to the database is bounded (#15: 1 kB headers on one link made
4.2 kB a stored click, 5.6 GB an hour): stored headers keep 512 characters with a flag that they
were cut, and beyond 30 hits a minute on one link a hit is stored without them, as a bot."""

from __future__ import annotations

import sqlite3

from conftest import HUMAN_HEADERS, query

from trackly_cli.core import clicks, records

LONG = {
    "User-Agent": HUMAN_HEADERS["User-Agent"] + " x" * 4000,
    "Referer": "https://ref.example/" + "r" * 8000,
    "Accept-Language": "en-US," + "de;q=0.9," * 900,
}


def stored(db_path) -> list[dict]:
    return query(
        db_path,
        "SELECT link_id, user_agent, referer, accept_language, headers_cut, is_bot, bot_reasons"
        " FROM message_short_link_clicks ORDER BY id",
    )


def test_long_headers_are_cut_to_512_characters_and_flagged(campaign, webapp, db_path):
    app = webapp()
    link = campaign["by_slot"]["link1"][0]["id"]
    # (a user agent under 1 kB: not a bot for its length, so this hit is the MessageClick)
    long_ua = HUMAN_HEADERS["User-Agent"] + " x" * 300
    app.get(f"/{link}", headers={**HUMAN_HEADERS, **LONG, "User-Agent": long_ua})
    app.get(f"/{link}", headers=HUMAN_HEADERS)
    cut, whole = stored(db_path)
    assert [len(cut[k]) for k in ("user_agent", "referer", "accept_language")] == [512] * 3
    assert cut["user_agent"] == long_ua[:512] and not cut["is_bot"]
    assert (cut["headers_cut"], whole["headers_cut"]) == (1, 0)
    assert whole["user_agent"] == HUMAN_HEADERS["User-Agent"]
    (message_click,) = query(db_path, "SELECT user_agent FROM message_clicks")
    assert len(message_click["user_agent"]) == 512


def test_the_journal_keeps_one_character_more_so_the_drain_knows(campaign, links):
    hit = clicks.Click(links[0], "2026-01-01T00:00:00.000000Z", "GET", "198.51.100.7",
                       "u" * 5000, "r" * 512, None, "v", False, "", True)  # fmt: skip
    record = records.click(hit)
    assert "u" * 513 in record and "r" * 512 in record
    assert "u" * 514 not in str(record)


def test_a_flood_on_one_link_is_counted_but_stored_lean(campaign, webapp, db_path):
    app = webapp()
    link = campaign["by_slot"]["link1"][0]["id"]
    for _ in range(35):
        app.get(f"/{link}", headers={**HUMAN_HEADERS, **LONG})
    rows = stored(db_path)
    assert len(rows) == 35  # every hit is kept: the raw count is exact
    full, lean = rows[:30], rows[30:]
    assert all(r["user_agent"] and r["headers_cut"] for r in full)
    for r in lean:
        assert (r["user_agent"], r["referer"], r["accept_language"]) == (None, None, None)
        assert r["is_bot"] == 1
        assert "over 30 hits a minute on one link (headers not stored)" in r["bot_reasons"]
    # another link has its own budget
    other = campaign["by_slot"]["link1"][1]["id"]
    app.get(f"/{other}", headers=HUMAN_HEADERS)
    assert stored(db_path)[-1]["user_agent"] == HUMAN_HEADERS["User-Agent"]


def test_the_bytes_one_client_adds_a_click_are_bounded(campaign, webapp, db_path):
    """Maximal headers on every link: about 2 kB a stored click within the budget, a few
    hundred bytes beyond it (the same client before #15: 4.2 kB)."""
    app = webapp()
    ids = [link["id"] for link in campaign["links"]]

    def pages() -> int:
        conn = sqlite3.connect(db_path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return conn.execute("PRAGMA page_count").fetchone()[0] * 4096
        finally:
            conn.close()

    start = pages()
    for _ in range(30):
        for link in ids:
            app.get(f"/{link}", headers={**HUMAN_HEADERS, **LONG})
    within = (pages() - start) / (30 * len(ids))
    middle = pages()
    for _ in range(60):
        for link in ids:
            app.get(f"/{link}", headers={**HUMAN_HEADERS, **LONG})
    beyond = (pages() - middle) / (60 * len(ids))
    print(f"{within:,.0f} bytes a click within the budget, {beyond:,.0f} beyond it")
    assert within < 2_600
    assert beyond < 600


def test_the_budget_is_per_link_and_starts_again_after_a_minute():
    budget = clicks.HeaderBudget(per_minute=2)
    assert [budget.spend("a", 100.0 + n) for n in range(3)] == [True, True, False]
    assert budget.spend("b", 103.0)
    assert not budget.spend("a", 159.9)
    assert budget.spend("a", 160.0)  # a new window


def test_where_the_bot_filter_is_off_a_flood_is_stored_lean_but_not_flagged(
    acme, campaign, webapp, db_path
):
    acme("list", "update", "vip", "--bot-filter", "off")
    app = webapp()
    link = campaign["by_slot"]["link1"][0]["id"]
    for _ in range(32):
        app.get(f"/{link}", headers=HUMAN_HEADERS)
    rows = stored(db_path)
    assert len(rows) == 32
    assert [r["is_bot"] for r in rows] == [0] * 32
    assert rows[-1]["user_agent"] is None
    assert rows[-1]["bot_reasons"] == "over 30 hits a minute on one link (headers not stored)"
