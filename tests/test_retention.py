"""Retention, IP privacy and backups: `trackly prune` (dry run, each account's retention, what it
keeps and clears), every report identical before and after it (the Must-show), IP anonymisation
by age and at once, the server's own daily prune, and `trackly db backup` / `trackly db check`,
one backup taken while a real `trackly serve` is taking clicks (the Must-show)."""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import BROWSER_UA, HUMAN_HEADERS, Load, execute, query, snapshot, wait_for

from trackly_cli.core import migrate, retention
from trackly_cli.server import Pruner

# The schema a database made by this code is at: its newest migration.
NEWEST = migrate.available()[-1].name

CURL = "curl/8.5.0"
STORED = "%Y-%m-%dT%H:%M:%S.%fZ"
PRUNE_KEYS = {
    "account",
    "retention_days",
    "cutoff",
    "clicks",
    "anonymize_ips_after_days",
    "ips_anonymized",
}


# --- helpers ------------------------------------------------------------------------------------


def ago(days: float, hours: float = 0) -> str:
    """The stored form of the moment `days` (and `hours`) before now."""
    return (datetime.now(UTC) - timedelta(days=days, hours=hours)).strftime(STORED)


def on(days_back: int, time_of_day: str) -> str:
    """The stored form of `time_of_day` ('23:40:00') on the UTC day `days_back` days ago."""
    day = (datetime.now(UTC) - timedelta(days=days_back)).date()
    return f"{day.isoformat()}T{time_of_day}.000000Z"


def count(db_path: Path, sql: str, *params) -> int:
    return next(iter(query(db_path, sql, *params)[0].values()))


def raw_ids(db_path: Path) -> set[int]:
    return {r["id"] for r in query(db_path, "SELECT id FROM message_short_link_clicks")}


_LINK = (
    "SELECT l.id AS link_id, l.message_id, l.contact_id, l.offer_id, l.account_id, m.campaign_id,"
    " m.creative_id, m.list_id, m.variant, l.domain_id"
    " FROM short_links l JOIN messages m ON m.id = l.message_id WHERE l.id = ?"
)


def add_click(
    db_path: Path,
    link_id: str,
    clicked_at: str,
    *,
    bot: bool = False,
    unique: bool = False,
    ip: str = "203.0.113.77",
) -> int:
    """A raw click at `clicked_at` written as the server's writer writes one (the schema's
    triggers count it in its own 15-minute bucket); with `unique`, also the MessageClick it
    made. Returns the raw click's id."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        with conn:
            link = dict(conn.execute(_LINK, (link_id,)).fetchone())
            if link["contact_id"] is not None:
                visitor = f"c:{link['contact_id']}"
            else:
                visitor = "v:" + hashlib.sha256(ip.encode()).hexdigest()[:32]
            user_agent = CURL if bot else BROWSER_UA
            click_id = conn.execute(
                "INSERT INTO message_short_link_clicks (clicked_at, link_id, message_id,"
                " contact_id, offer_id, account_id, campaign_id, creative_id, list_id, variant,"
                " domain_id, method, ip, user_agent, referer, accept_language, visitor, is_bot,"
                " bot_reasons, ip_anonymized_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'GET', ?, ?, NULL, ?, ?, ?, ?, NULL)",
                (
                    clicked_at,
                    link_id,
                    link["message_id"],
                    link["contact_id"],
                    link["offer_id"],
                    link["account_id"],
                    link["campaign_id"],
                    link["creative_id"],
                    link["list_id"],
                    link["variant"],
                    link["domain_id"],
                    ip,
                    user_agent,
                    "" if bot else "en-US,en;q=0.9",
                    visitor,
                    int(bot),
                    "crawler user agent" if bot else "",
                ),
            ).lastrowid
            if unique:
                conn.execute(
                    "INSERT INTO message_clicks (message_id, visitor, contact_id, link_id,"
                    " offer_id, account_id, campaign_id, creative_id, list_id, variant, domain_id,"
                    " click_id, clicked_at, ip, user_agent, source, reason, created_at,"
                    " ip_anonymized_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'click', NULL, ?, NULL)",
                    (
                        link["message_id"],
                        visitor,
                        link["contact_id"],
                        link_id,
                        link["offer_id"],
                        link["account_id"],
                        link["campaign_id"],
                        link["creative_id"],
                        link["list_id"],
                        link["variant"],
                        link["domain_id"],
                        click_id,
                        clicked_at,
                        ip,
                        user_agent,
                        clicked_at,
                    ),
                )
    finally:
        conn.close()
    return click_id


def import_conversions(cli, tmp_path: Path, rows: list[tuple], *extra: str) -> None:
    """`trackly conversions import` of (link_id, event, revenue, txn_id, time) rows: the real
    attribution and refund handling, at the times given."""
    lines = ["link_id,event,revenue,txn_id,time"] + [",".join(map(str, r)) for r in rows]
    path = tmp_path / f"conversions-{len(list(tmp_path.glob('conversions-*.csv')))}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("conversions", "import", path, "--strict", *extra)
    assert f"Imported {len(rows)} of {len(rows)} rows" in result.stderr, result.stderr


def prune_lines(stderr: str) -> dict[str, str]:
    """The lines `trackly prune` says, by account."""
    return {
        line.split(":", 1)[0]: line for line in stderr.splitlines() if re.match(r"^\w+: ", line)
    }


# --- trackly prune --------------------------------------------------------------------------------


@pytest.fixture
def two_accounts(campaign, acme, tmp_path, db_path) -> dict:
    """acme (campaign 'spring') keeps raw clicks 3 days, beta (one one-off message) 10 days; each
    has clicks just outside and just inside its retention, and one five days old, which only
    acme drops. Returns the raw click ids by name."""
    acme("account", "update", "acme", "--retention-days", "3")
    acme("account", "create", "beta", "--retention-days", "10")
    acme("domain", "add", "go.beta.test", "--account", "beta")
    (tmp_path / "beta.txt").write_text("Hi {{link1}}", encoding="utf-8")
    acme("shorten", "beta.txt", "--link", "link1=https://beta.example/", "--account", "beta")
    beta_link = query(
        db_path,
        "SELECT l.id FROM short_links l JOIN accounts a ON a.id = l.account_id"
        " WHERE a.name = 'beta'",
    )[0]["id"]
    ann1 = campaign["by_slot"]["link1"][0]["id"]
    ann2 = campaign["by_slot"]["link2"][0]["id"]
    bob1 = campaign["by_slot"]["link1"][1]["id"]
    ids = {
        "acme_outside": add_click(db_path, ann1, ago(3, hours=1), unique=True),
        "acme_inside": add_click(db_path, ann2, ago(3, hours=-1)),
        "acme_5_days_bot": add_click(db_path, bob1, ago(5), bot=True),
        "beta_outside": add_click(db_path, beta_link, ago(10, hours=1), unique=True),
        "beta_inside": add_click(db_path, beta_link, ago(10, hours=-1)),
        "beta_5_days": add_click(db_path, beta_link, ago(5)),
    }
    # Conversions attributed to the MessageClicks of clicks that prune will remove.
    import_conversions(acme, tmp_path, [(ann1, "sale", "30", "A1", ago(3))], "--account", "acme")
    import_conversions(
        acme, tmp_path, [(beta_link, "sale", "12", "B1", ago(9))], "--account", "beta"
    )
    assert [r["attribution"] for r in query(db_path, "SELECT * FROM conversions")] == [
        "attributed",
        "attributed",
    ]
    return ids


def test_dry_run_says_what_it_would_remove_and_changes_nothing(two_accounts, acme, db_path):
    before = snapshot(db_path)

    said = prune_lines(acme("prune", "--dry-run").stderr)
    rows = acme.json("prune", "--dry-run")

    assert re.fullmatch(r"acme: would remove 2 raw clicks? older than 3 days\.", said["acme"])
    assert re.fullmatch(r"beta: would remove 1 raw clicks? older than 10 days\.", said["beta"])
    assert [(r["account"], r["retention_days"], r["clicks"]) for r in rows] == [
        ("acme", 3, 2),
        ("beta", 10, 1),
    ]
    assert snapshot(db_path) == before


def test_prune_removes_exactly_the_clicks_older_than_each_accounts_retention(
    two_accounts, acme, db_path
):
    ids = two_accounts
    message_clicks = query(db_path, "SELECT * FROM message_clicks ORDER BY id")
    conversions = query(db_path, "SELECT * FROM conversions ORDER BY id")
    counters = query(db_path, "SELECT * FROM report_rollups ORDER BY 1, 2, 3, 4, 5, 6, 7, 8")
    message_counters = query(db_path, "SELECT * FROM message_rollups ORDER BY 1, 2")

    said = prune_lines(acme("prune").stderr)

    assert re.fullmatch(r"acme: removed 2 raw clicks? older than 3 days\.", said["acme"])
    assert re.fullmatch(r"beta: removed 1 raw clicks? older than 10 days\.", said["beta"])
    assert raw_ids(db_path) == {ids["acme_inside"], ids["beta_inside"], ids["beta_5_days"]}
    # MessageClicks and conversions stay; a MessageClick whose raw click went loses the link
    # to it (ON DELETE SET NULL), nothing else.
    removed = {ids["acme_outside"], ids["beta_outside"]}
    assert {m["click_id"] for m in message_clicks} == removed
    assert query(db_path, "SELECT * FROM message_clicks ORDER BY id") == [
        {**m, "click_id": None} for m in message_clicks
    ]
    assert query(db_path, "SELECT * FROM conversions ORDER BY id") == conversions
    assert query(db_path, "SELECT * FROM report_rollups ORDER BY 1, 2, 3, 4, 5, 6, 7, 8") == (
        counters
    )
    assert query(db_path, "SELECT * FROM message_rollups ORDER BY 1, 2") == message_counters
    assert query(db_path, "PRAGMA foreign_key_check") == []

    again = acme.json("prune")
    assert [(r["account"], r["clicks"]) for r in again] == [("acme", 0), ("beta", 0)]
    assert raw_ids(db_path) == {ids["acme_inside"], ids["beta_inside"], ids["beta_5_days"]}


def test_prune_account_limits_it_to_that_account(two_accounts, acme, db_path):
    ids = two_accounts

    rows = acme.json("prune", "--account", "beta")

    assert [(r["account"], r["clicks"]) for r in rows] == [("beta", 1)]
    assert raw_ids(db_path) == set(ids.values()) - {ids["beta_outside"]}
    assert prune_lines(acme("prune", "--dry-run", "--account", "acme").stderr).keys() == {"acme"}
    assert [r["clicks"] for r in acme.json("prune", "--account", "acme")] == [2]
    assert raw_ids(db_path) == {ids["acme_inside"], ids["beta_inside"], ids["beta_5_days"]}
    assert "nobody" in acme.error("prune", "--account", "nobody")


def test_prune_json_output(two_accounts, acme):
    started = datetime.now(UTC)
    rows = acme.json("prune")
    finished = datetime.now(UTC)

    assert [set(r) for r in rows] == [PRUNE_KEYS, PRUNE_KEYS]
    acme_row, beta_row = rows
    assert acme_row == {
        **acme_row,
        "account": "acme",
        "retention_days": 3,
        "clicks": 2,
        "anonymize_ips_after_days": None,
        "ips_anonymized": 0,
    }
    assert beta_row == {**beta_row, "account": "beta", "retention_days": 10, "clicks": 1}
    for row in rows:
        cutoff = datetime.fromisoformat(row["cutoff"])
        days = timedelta(days=row["retention_days"])
        assert started - days <= cutoff <= finished - days, row


# --- the Must-show: every report identical before and after trackly prune -----------------------


PHONES = ("+12025550143", "+12025550144", "+12025550145", "+12025550110", "+12025550111")


def day(days_back: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_back)).date().isoformat()


def reports_to_compare() -> list[tuple[str, ...]]:
    return [
        *(
            ("report", "--by", by)
            for by in ("campaign", "offer", "creative", "list", "variant", "day", "domain")
        ),
        ("report", "--by", "message", "--campaign", "spring"),
        ("report", "--by", "message", "--campaign", "duo"),
        ("report", "--by", "day", "--tz", "Europe/Paris"),
        ("report", "--by", "offer", "--campaign", "duo"),
        ("report", "--by", "campaign", "--since", day(10), "--until", day(9)),
        ("report", "--by", "day", "--since", day(10), "--until", day(9), "--tz", "Europe/Paris"),
        ("ab", "duo"),
        *(("contact", "show", phone) for phone in PHONES),
        ("conversions",),
        *(("segment", "spring", kind) for kind in ("--clicked", "--converted", "--bots-only")),
        *(("segment", "duo", kind) for kind in ("--clicked", "--not-clicked", "--converted")),
    ]


def every_report(cli, folder: Path) -> dict:
    """Every report, as JSON and as a table (totals included), and two HTML reports."""
    outputs: dict = {}
    for args in reports_to_compare():
        outputs[(*args, "json")] = cli.json(*args)
        outputs[(*args, "table")] = cli(*args, "--format", "table").stdout
    folder.mkdir()
    for by in ("campaign", "day"):
        cli("report", "--by", by, "--html", folder / f"{by}.html")
        outputs[("report", "--by", by, "--html")] = (folder / f"{by}.html").read_text("utf-8")
    return outputs


@pytest.fixture
def history(campaign, acme, webapp, tmp_path, db_path) -> dict:
    """acme keeps raw clicks 3 days. Campaign 'spring' (3 contacts, 2 links each) and an A/B
    campaign 'duo' (20 contacts) have, 10 and 9 days ago, human and bot clicks (some just
    before UTC midnight: the next day in Paris), repeats, MessageClicks (one promoted from a bot
    click by a conversion), sales, a partial refund, a lead and an unattributed sale; and today,
    clicks and conversions through the app (one outside its attribution window)."""
    acme("account", "update", "acme", "--retention-days", "3")
    (tmp_path / "duo-contacts.csv").write_text(
        "phone\n" + "".join(f"+120255501{n}\n" for n in range(10, 30)), encoding="utf-8"
    )
    acme("list", "create", "duo")
    acme("contacts", "import", "duo", tmp_path / "duo-contacts.csv")
    (tmp_path / "a.txt").write_text("Deal A {{link1}}", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Deal B, today only: {{link1}}", encoding="utf-8")
    ab_test = ("a.txt", "b.txt", "--list", "duo", "--campaign", "duo", "--seed", "s1")
    acme("shorten", *ab_test, "-l", "link1=Summer Sale")
    # Sent long ago, so that no click through the app is too fast to be human.
    execute(db_path, "UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
    ann1, bob1, cy1 = (link["id"] for link in campaign["by_slot"]["link1"])
    ann2, bob2, cy2 = (link["id"] for link in campaign["by_slot"]["link2"])
    duo = query(
        db_path,
        "SELECT l.id, m.variant FROM short_links l JOIN messages m ON m.id = l.message_id"
        " JOIN campaigns c ON c.id = m.campaign_id WHERE c.name = 'duo' ORDER BY m.id",
    )
    a = [r["id"] for r in duo if r["variant"] == "A"]
    b = [r["id"] for r in duo if r["variant"] == "B"]
    assert len(a) >= 6 and len(b) >= 6, duo

    def click(link_id: str, at: str, **kw) -> int:
        return add_click(db_path, link_id, at, **kw)

    # 10 days ago
    click(ann1, on(10, "09:01:00"), bot=True)
    click(ann1, on(10, "09:05:00"), unique=True)
    click(ann1, on(10, "09:20:00"))  # a repeat: a raw click, no MessageClick
    click(ann2, on(10, "23:40:00"))  # the same message again, after midnight in Paris
    click(bob1, on(10, "11:00:00"), bot=True)
    for n, link_id in enumerate(a[:3]):
        click(link_id, on(10, f"1{n}:10:00"), unique=True)
        click(link_id, on(10, f"1{n}:11:00"), bot=True)
    for link_id in b[:2]:
        click(link_id, on(10, "14:50:00"), bot=True)
    # 9 days ago
    click(bob1, on(9, "00:10:00"), bot=True)
    click(cy2, on(9, "23:45:00"), unique=True)
    click(b[0], on(9, "08:00:00"), unique=True)
    click(b[2], on(9, "08:30:00"), unique=True, ip="2001:db8:1:2::5")
    click(b[3], on(9, "23:59:00"), unique=True)
    click(a[3], on(9, "12:00:00"), unique=True)
    import_conversions(
        acme,
        tmp_path,
        [
            (ann1, "sale", "40", "S1", on(9, "10:00:00")),
            (ann1, "refund", "15", "S1", on(9, "23:50:00")),  # partial; Paris: the next day
            (bob1, "sale", "25", "S2", on(9, "12:00:00")),  # promotes Bob's first bot click
            (cy1, "lead", "0", "", on(9, "23:55:00")),
            (b[0], "sale", "60", "S3", on(9, "09:00:00")),
            (b[5], "sale", "5", "S4", on(9, "09:30:00")),  # nobody clicked: unattributed
        ],
    )
    # today, through the app
    app = webapp()
    app.get(f"/{cy1}", headers=HUMAN_HEADERS, status=302)  # a repeat of Cy's
    app.get(f"/{bob2}", headers={"User-Agent": CURL}, status=302)
    app.get(f"/{a[4]}", headers=HUMAN_HEADERS, status=302)
    app.get(f"/conv?link_id={a[4]}&revenue=9.50&txn_id=N1", status=200)
    app.get(f"/conv?link_id={a[3]}&revenue=7&txn_id=N2", status=200)  # clicked 9 days ago

    attributions = {
        r["txn_id"] or r["event"]: r["attribution"]
        for r in query(db_path, "SELECT txn_id, event, attribution FROM conversions")
    }
    assert attributions == {
        "S1": "attributed",
        "S2": "attributed",
        "lead": "attributed",
        "S3": "attributed",
        "S4": "no_click",
        "N1": "attributed",
        "N2": "outside_window",
    }
    assert count(db_path, "SELECT count(*) FROM message_clicks WHERE source = 'promoted'") == 1
    return {"cutoff": ago(3)}


def test_every_report_is_identical_before_and_after_prune(history, acme, db_path, tmp_path):
    """The Must-show: reports read counters, so removing the raw clicks of old days changes
    none of them, whatever the grouping, the time zone or the format."""
    old = query(
        db_path,
        "SELECT substr(clicked_at, 1, 10) AS day, count(*) AS clicks, sum(is_bot) AS bots"
        " FROM message_short_link_clicks WHERE clicked_at < ? GROUP BY 1 ORDER BY 1",
        history["cutoff"],
    )
    total = count(db_path, "SELECT count(*) FROM message_short_link_clicks")
    young = total - sum(d["clicks"] for d in old)
    assert [d["day"] for d in old] == [day(10), day(9)] and young == 3
    before = every_report(acme, tmp_path / "before")
    # The old days are in the reports, raw and bot clicks included.
    by_day = {r["day"]: r for r in before[("report", "--by", "day", "json")]}
    for d in old:
        assert (by_day[d["day"]]["clicks"], by_day[d["day"]]["bot_clicks"]) == (
            d["clicks"],
            d["bots"],
        )
    totals = {r["campaign"]: r for r in before[("report", "--by", "campaign", "json")]}
    assert totals["spring"]["revenue"] == "50.00"  # 40 - 15 + 25 + 0
    assert totals["duo"]["revenue"] == "69.50"  # 60 + 9.50 (N2 is outside its window)
    paris = before[("report", "--by", "day", "--tz", "Europe/Paris", "json")]
    assert paris != before[("report", "--by", "day", "json")]

    said = acme("prune").stderr

    removed = sum(d["clicks"] for d in old)
    assert re.search(rf"acme: removed {removed} raw clicks? older than 3 days", said), said
    assert count(db_path, "SELECT count(*) FROM message_short_link_clicks") == young
    assert (
        count(
            db_path,
            "SELECT count(*) FROM message_short_link_clicks WHERE clicked_at < ?",
            history["cutoff"],
        )
        == 0
    )
    after = every_report(acme, tmp_path / "after")
    changed = [key for key in before if after[key] != before[key]]
    assert not changed, f"changed by prune: {changed}"
    assert after == before


def test_a_rescan_after_prune_keeps_the_unique_click_of_a_pruned_click(
    campaign, acme, webapp, db_path, tmp_path
):
    """Ann's MessageClick of ten days ago (and the sale attributed to it) came from a raw click
    that prune removed. Today she clicks again from an address the operator then puts on the
    deny list, and `trackly bots rescan` turns today's click into a bot. Without prune her old
    human click would still be her first and nothing would change; prune must not change that
    outcome (the reports of ten days ago must stay)."""
    acme("account", "update", "acme", "--retention-days", "3")
    ann1 = campaign["by_slot"]["link1"][0]["id"]
    add_click(db_path, ann1, ago(10), unique=True)
    import_conversions(acme, tmp_path, [(ann1, "sale", "20", "R1", ago(9))])
    webapp().get(f"/{ann1}", headers=HUMAN_HEADERS, status=302)  # from 198.51.100.7
    assert [r["clicks"] for r in acme.json("prune")] == [1]
    message_clicks = query(db_path, "SELECT * FROM message_clicks")
    conversions = query(db_path, "SELECT * FROM conversions")
    days = acme.json("report", "--by", "day")
    assert [(d["unique_clicks"], d["conversions"]) for d in days[:2]] == [(1, 0), (0, 1)]

    acme("bots", "ranges", "add", "198.51.100.7/32")
    acme("bots", "rescan")

    assert query(db_path, "SELECT is_bot FROM message_short_link_clicks") == [{"is_bot": 1}]
    assert query(db_path, "SELECT * FROM message_clicks") == message_clicks
    assert query(db_path, "SELECT * FROM conversions") == conversions
    assert acme.json("report", "--by", "day")[:2] == days[:2]


# --- IP anonymisation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("203.0.113.0", "203.0.113.0"),
        ("10.1.2.255", "10.1.2.0"),
        ("2001:db8:1:2::5", "2001:db8:1::"),
        ("2001:0db8:abcd:ffff:ffff:ffff:ffff:ffff", "2001:db8:abcd::"),
        ("2001:db8:1::", "2001:db8:1::"),
        ("::ffff:192.0.2.33", "192.0.2.0"),  # IPv4-mapped IPv6: the IPv4 address, /24
        ("::ffff:c000:221", "192.0.2.0"),
        ("not an address", None),  # keep nothing rather than something unknown
        ("203.0.113", None),
        ("203.0.113.77:8080", None),
        ("", ""),
        (None, None),
    ],
)
def test_anonymize_ip(given, stored):
    assert retention.anonymize_ip(given) == stored


def ips(db_path: Path, table: str) -> dict:
    """{row id: (ip, whether ip_anonymized_at is set)} of a table."""
    return {
        r["id"]: (r["ip"], r["ip_anonymized_at"] is not None)
        for r in query(db_path, f"SELECT id, ip, ip_anonymized_at FROM {table} ORDER BY id")
    }


def test_prune_truncates_ips_older_than_the_setting_in_every_table(campaign, acme, webapp, db_path):
    acme("account", "update", "acme", "--anonymize-ips-after", "2")
    app = webapp()
    ann1, bob1, cy1 = (link["id"] for link in campaign["by_slot"]["link1"])
    ann2, bob2, _ = (link["id"] for link in campaign["by_slot"]["link2"])
    for link_id, ip in (
        (ann1, "203.0.113.77"),
        (bob1, "2001:db8:1:2::5"),
        (cy1, "::ffff:192.0.2.33"),
        (ann2, "198.51.100.7"),
        (bob2, "198.51.100.8"),
    ):
        app.get(f"/{link_id}", headers=HUMAN_HEADERS, extra_environ={"REMOTE_ADDR": ip})
    for link_id, ip, txn in (
        (ann1, "203.0.113.77", "T1"),
        (bob1, "2001:db8:1:2::5", "T2"),
        (cy1, "192.0.2.99", "T3"),
    ):
        app.get(
            f"/conv?link_id={link_id}&revenue=10&txn_id={txn}", extra_environ={"REMOTE_ADDR": ip}
        )
    assert count(db_path, "SELECT count(*) FROM message_clicks") == 3
    # Three days old: Ann's, Bob's and Cy's first clicks, their MessageClicks, and the
    # conversions of Ann and Bob. Bob's second click is just younger than two days.
    for table, column, where in (
        ("message_short_link_clicks", "clicked_at", f"link_id IN ('{ann1}', '{bob1}', '{cy1}')"),
        ("message_clicks", "clicked_at", "1"),
        ("conversions", "converted_at", "txn_id IN ('T1', 'T2')"),
    ):
        execute(db_path, f"UPDATE {table} SET {column} = ? WHERE {where}", ago(3))
    execute(
        db_path,
        "UPDATE message_short_link_clicks SET clicked_at = ? WHERE link_id = ?",
        ago(2, hours=-1),
        bob2,
    )
    raw_before = ips(db_path, "message_short_link_clicks")
    assert [ip for ip, anonymized in raw_before.values() if not anonymized] == [
        "203.0.113.77",
        "2001:db8:1:2::5",
        "::ffff:192.0.2.33",
        "198.51.100.7",
        "198.51.100.8",
    ]
    before = snapshot(db_path)

    dry = acme("prune", "--dry-run")
    dry_rows = acme.json("prune", "--dry-run")

    assert "acme: would remove 0 raw clicks older than 90 days, 8 IPs to anonymise." in dry.stderr
    assert [(r["anonymize_ips_after_days"], r["ips_anonymized"]) for r in dry_rows] == [(2, 8)]
    assert snapshot(db_path) == before

    rows = acme.json("prune")

    assert [(r["clicks"], r["anonymize_ips_after_days"], r["ips_anonymized"]) for r in rows] == [
        (0, 2, 8)
    ]
    assert list(ips(db_path, "message_short_link_clicks").values()) == [
        ("203.0.113.0", True),
        ("2001:db8:1::", True),
        ("192.0.2.0", True),
        ("198.51.100.7", False),  # today
        ("198.51.100.8", False),  # an hour younger than two days
    ]
    assert list(ips(db_path, "message_clicks").values()) == [
        ("203.0.113.0", True),
        ("2001:db8:1::", True),
        ("192.0.2.0", True),
    ]
    assert list(ips(db_path, "conversions").values()) == [
        ("203.0.113.0", True),
        ("2001:db8:1::", True),
        ("192.0.2.99", False),  # today
    ]
    stamps = query(
        db_path,
        "SELECT ip_anonymized_at FROM message_short_link_clicks WHERE ip_anonymized_at NOT NULL",
    )
    for row in stamps:
        assert ago(0, hours=1) < row["ip_anonymized_at"] <= ago(0, hours=-1)
    # Nothing else changed, and nothing is anonymised twice.
    assert snapshot(db_path)["report_rollups"] == before["report_rollups"]
    assert [r["ips_anonymized"] for r in acme.json("prune")] == [0]
    assert "acme: removed 0 raw clicks older than 90 days, 0 IPs anonymised." in (
        acme("prune").stderr
    )


def test_anonymize_at_once_stores_truncated_ips_after_a_verdict_on_the_full_one(
    campaign, acme, webapp, db_path
):
    """--anonymize-ips-after 0: the deny list holds 198.51.100.7/32 only; a click from it is a
    bot and one from 198.51.100.77 is not, though both are stored as 198.51.100.0."""
    acme("account", "update", "acme", "--anonymize-ips-after", "0")
    acme("bots", "ranges", "add", "198.51.100.7/32")
    ann1, bob1, cy1 = (link["id"] for link in campaign["by_slot"]["link1"])
    ann_message, bob_message, _ = (link["message_id"] for link in campaign["by_slot"]["link1"])
    app = webapp()

    app.get(f"/{ann1}", headers=HUMAN_HEADERS, status=302)  # from 198.51.100.7
    neighbour = {"REMOTE_ADDR": "198.51.100.77"}
    app.get(f"/{bob1}", headers=HUMAN_HEADERS, extra_environ=neighbour, status=302)
    app.get(f"/conv?link_id={bob1}&revenue=5&txn_id=X1", extra_environ=neighbour, status=200)

    denied, welcome = query(db_path, "SELECT * FROM message_short_link_clicks ORDER BY id")
    assert (denied["ip"], denied["is_bot"]) == ("198.51.100.0", 1)
    assert "deny list" in denied["bot_reasons"]
    assert (welcome["ip"], welcome["is_bot"]) == ("198.51.100.0", 0)
    for row in (denied, welcome):
        assert row["ip_anonymized_at"] == row["clicked_at"]
    message_clicks = query(db_path, "SELECT * FROM message_clicks")
    assert [(m["message_id"], m["click_id"], m["ip"]) for m in message_clicks] == [
        (bob_message, welcome["id"], "198.51.100.0")
    ]
    assert message_clicks[0]["ip_anonymized_at"] is not None
    (conversion,) = query(db_path, "SELECT * FROM conversions")
    assert conversion["attribution"] == "attributed"
    assert conversion["ip"] == "198.51.100.0"
    assert conversion["ip_anonymized_at"] is not None
    assert ann_message not in {m["message_id"] for m in message_clicks}
    # The full addresses are nowhere (but in the deny list the operator typed).
    stored = repr({k: v for k, v in snapshot(db_path).items() if k != "ip_ranges"})
    assert "198.51.100.7" not in stored
    # Prune finds nothing left to anonymise.
    assert [r["ips_anonymized"] for r in acme.json("prune")] == [0]

    assert acme.json("account", "update", "acme", "--keep-ips")["anonymize_ips_after_days"] is None
    kept = webapp()
    kept.get(f"/{cy1}", headers=HUMAN_HEADERS, extra_environ={"REMOTE_ADDR": "203.0.113.9"})
    latest = query(db_path, "SELECT * FROM message_short_link_clicks ORDER BY id DESC LIMIT 1")[0]
    assert (latest["link_id"], latest["ip"], latest["ip_anonymized_at"]) == (
        cy1,
        "203.0.113.9",
        None,
    )
    execute(
        db_path,
        "UPDATE message_short_link_clicks SET clicked_at = ? WHERE link_id = ?",
        ago(30),
        cy1,
    )
    rows = acme.json("prune")
    assert [(r["anonymize_ips_after_days"], r["ips_anonymized"]) for r in rows] == [(None, 0)]
    assert query(db_path, "SELECT ip FROM message_short_link_clicks WHERE link_id = ?", cy1) == [
        {"ip": "203.0.113.9"}
    ]


def test_anonymize_at_once_covers_the_continue_button_of_confirm_mode(
    campaign, acme, webapp, db_path
):
    acme("account", "update", "acme", "--anonymize-ips-after", "0")
    acme("list", "update", "vip", "--bot-filter", "confirm")
    link_id = campaign["by_slot"]["link2"][0]["id"]
    app = webapp()

    page = app.get(f"/{link_id}", headers=HUMAN_HEADERS, status=200)
    assert f"/{link_id}/go" in page.text
    app.get(f"/{link_id}/go", headers=HUMAN_HEADERS, status=302)

    (view,) = query(db_path, "SELECT * FROM message_short_link_clicks")
    (message_click,) = query(db_path, "SELECT * FROM message_clicks")
    assert (view["ip"], message_click["ip"]) == ("198.51.100.0", "198.51.100.0")
    assert message_click["source"] == "confirm"
    assert message_click["click_id"] == view["id"]
    assert view["ip_anonymized_at"] is not None
    assert message_click["ip_anonymized_at"] is not None


def test_a_message_click_promoted_by_a_conversion_is_marked_anonymised_too(
    campaign, acme, webapp, db_path
):
    """At once: Ann's link had only a bot click when her sale arrived, so the sale promotes that
    click to her MessageClick. It carries the truncated IP, and must say so (ip_anonymized_at),
    like every other row the account stores; prune then has nothing left to anonymise."""
    acme("account", "update", "acme", "--anonymize-ips-after", "0")
    link_id = campaign["by_slot"]["link1"][0]["id"]
    app = webapp()
    app.get(f"/{link_id}", headers={"User-Agent": CURL}, status=302)
    app.get(f"/conv?link_id={link_id}&revenue=8&txn_id=P1", status=200)

    (message_click,) = query(db_path, "SELECT * FROM message_clicks")
    assert (message_click["source"], message_click["ip"]) == ("promoted", "198.51.100.0")
    assert message_click["ip_anonymized_at"] is not None
    assert [r["ips_anonymized"] for r in acme.json("prune")] == [0]


# --- the server's daily prune -----------------------------------------------------------------


def test_the_servers_pruner_prunes_in_its_own_thread_and_stops_promptly(campaign, acme, db_path):
    acme("account", "update", "acme", "--retention-days", "3", "--anonymize-ips-after", "1")
    links = [link["id"] for link in campaign["links"]]
    for link_id in links[:4]:
        add_click(db_path, link_id, ago(5))
    young = add_click(db_path, links[4], ago(2))
    pruner = Pruner(db_path, first_after=0.1, every=3600)

    pruner.start()
    try:
        wait_for(
            lambda: raw_ids(db_path) == {young},
            timeout=10,
            what="the pruner to remove the old clicks",
        )
        wait_for(
            lambda: (
                query(db_path, "SELECT ip FROM message_short_link_clicks")
                == [{"ip": "203.0.113.0"}]
            ),
            timeout=10,
            what="the pruner to anonymise the two-day-old IP",
        )
    finally:
        started = time.monotonic()
        pruner.stop()  # it is waiting an hour for the next run
        stopped_after = time.monotonic() - started
    assert stopped_after < 5
    assert "trackly-prune" not in {thread.name for thread in threading.enumerate()}


def test_the_servers_pruner_removes_what_a_killed_shorten_left(campaign, acme, db_path, caplog):
    from trackly_cli.core import campaigns

    execute(
        db_path,
        "UPDATE campaigns SET building_pid = ?, building_host = ?",
        2**30,  # no such process: a run that was killed
        campaigns.HOST,
    )
    pruner = Pruner(db_path, first_after=0.1, every=3600)
    caplog.set_level(logging.INFO)
    pruner.start()
    try:
        wait_for(
            lambda: query(db_path, "SELECT count(*) AS n FROM campaigns")[0]["n"] == 0,
            timeout=10,
            what="the pruner to remove the leftover campaign",
        )
    finally:
        pruner.stop()
    assert query(db_path, "SELECT count(*) AS n FROM messages")[0]["n"] == 0
    assert "removed campaign 'spring', left half-written" in caplog.text


@pytest.mark.slow
def test_a_prune_that_finds_the_database_locked_tries_again_within_minutes(
    campaign, acme, db_path, caplog
):
    """#15: the daily prune failed on a locked database and tried again only 24 h later."""
    acme("account", "update", "acme", "--retention-days", "3")
    old = add_click(db_path, campaign["links"][0]["id"], ago(5))
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # a long job holding the write lock
    pruner = Pruner(db_path, first_after=0.05, every=3600, retries=(0.2,))
    caplog.set_level(logging.INFO)
    pruner.start()
    try:
        wait_for(lambda: "prune failed" in caplog.text, timeout=30, what="a failed prune")
        assert "trying again in" in caplog.text
        assert old in raw_ids(db_path)
        blocker.execute("ROLLBACK")
        wait_for(lambda: old not in raw_ids(db_path), timeout=30, what="the retried prune")
    finally:
        blocker.close()
        pruner.stop()
    assert pruner.failures == 0


def test_a_pruner_stopped_before_its_first_run_changes_nothing(campaign, db_path):
    add_click(db_path, campaign["links"][0]["id"], ago(100))
    before = snapshot(db_path)
    pruner = Pruner(db_path, first_after=3600, every=3600)
    pruner.start()
    started = time.monotonic()
    pruner.stop()
    assert time.monotonic() - started < 5
    assert snapshot(db_path) == before


# --- backups and checks ---------------------------------------------------------------------------


def add_old_clicks(db_path: Path, link_ids: list[str], n: int) -> None:
    """`n` raw clicks of last month, spread over `link_ids`, in one transaction."""
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute(
                "CREATE TEMP TABLE seed AS SELECT l.id AS link_id, l.message_id, l.contact_id,"
                " l.offer_id, l.account_id, m.campaign_id, m.creative_id, m.list_id, m.variant,"
                " l.domain_id FROM short_links l JOIN messages m ON m.id = l.message_id"
                f" WHERE l.id IN ({', '.join('?' * len(link_ids))})",
                link_ids,
            )
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
                " INSERT INTO message_short_link_clicks (clicked_at, link_id, message_id,"
                " contact_id, offer_id, account_id, campaign_id, creative_id, list_id, variant,"
                " domain_id, method, ip, user_agent, accept_language, visitor, is_bot)"
                " SELECT strftime('%Y-%m-%dT%H:%M:%S', 'now', '-30 days',"
                " (i % 86400) || ' seconds') || '.000000Z', s.link_id, s.message_id,"
                " s.contact_id, s.offer_id, s.account_id,"
                " s.campaign_id, s.creative_id, s.list_id, s.variant, s.domain_id, 'GET',"
                " '203.0.113.' || (i % 250), ?, 'en', 'c:' || s.contact_id, i % 3 = 0"
                " FROM n JOIN seed s ON s.rowid = 1 + i % (SELECT count(*) FROM seed)",
                (n, BROWSER_UA),
            )
    finally:
        conn.close()


def sqlite_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
def test_backup_while_the_server_takes_clicks_is_consistent_and_complete(
    campaign, acme, live_server, db_path, tmp_path
):
    """The Must-show: `trackly db backup` during a load run gives a file that passes
    PRAGMA integrity_check and holds every click answered before the backup started."""
    links = [link["id"] for link in campaign["links"]]
    add_old_clicks(db_path, links, 40_000)  # a database that takes a moment to copy
    base = count(db_path, "SELECT count(*) FROM message_short_link_clicks")
    assert base == 40_000
    server = live_server()
    target = tmp_path / "backups" / "nightly" / "trackly-copy.db"  # folders that do not exist

    with Load(server.port, links, threads=6) as load:
        wait_for(lambda: load.total >= 200, timeout=20, what="200 answered clicks")
        answered_before = load.total
        # The backup copies the database; a click answered a moment ago may still be in the
        # server's journal. Start once the drain has stored what was answered so far.
        wait_for(
            lambda: (
                count(db_path, "SELECT count(*) FROM message_short_link_clicks")
                >= base + answered_before
            ),
            timeout=20,
            what="the drain to store the answered clicks",
        )
        result = acme("db", "backup", target)
        answered_at_end = load.total
        wait_for(
            lambda: load.total >= answered_at_end + 100,
            timeout=20,
            what="the server to go on answering after the backup",
        )
    assert not load.other_statuses, load.other_statuses
    assert server.proc.poll() is None, "the server stopped"

    assert re.fullmatch(
        rf"Backed up [\d,]+ pages to {re.escape(str(target))}"
        rf" \(schema {re.escape(NEWEST)}, [\d,]+ bytes\)\.",
        result.stderr.strip(),
    ), result.stderr
    assert sqlite_files(target.parent) == ["trackly-copy.db"]  # no partial file, no journal
    copy = sqlite3.connect(target)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert copy.execute("PRAGMA foreign_key_check").fetchall() == []
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        raw = copy.execute("SELECT count(*) FROM message_short_link_clicks").fetchone()[0]
        # One snapshot: the counters agree with the rows they count.
        counted = copy.execute("SELECT sum(clicks) FROM report_rollups").fetchone()[0]
        per_message = copy.execute("SELECT sum(clicks) FROM message_rollups").fetchone()[0]
        message_clicks = copy.execute("SELECT count(*) FROM message_clicks").fetchone()[0]
    finally:
        copy.close()
    assert raw - base >= answered_before, (raw - base, answered_before)
    assert counted == per_message == raw
    assert message_clicks == 3  # each contact's first click of the load
    live = count(db_path, "SELECT count(*) FROM message_short_link_clicks")
    assert live - base >= load.total >= answered_at_end + 100
    assert raw <= live

    checked = acme.json("--db", target, "db", "check")
    assert checked == {
        **checked,
        "ok": True,
        "integrity": "ok",
        "foreign_key_problems": 0,
        "schema_version": NEWEST,
        "pending_migrations": 0,
        "journal_mode": "delete",
    }
    assert Path(checked["path"]).resolve() == target.resolve()


def test_db_check_reads_the_copy_and_changes_nothing(campaign, acme, tmp_path):
    target = tmp_path / "copy.db"
    acme("db", "backup", target)
    content = target.read_bytes()
    changed_at = target.stat().st_mtime_ns

    table = acme("--db", target, "db", "check").stdout
    checked = acme.json("--db", target, "db", "check")

    assert re.search(r"^ok\s+yes\s*$", table, re.M), table
    assert re.search(rf"^schema version\s+{re.escape(NEWEST)}\s*$", table, re.M), table
    assert checked["ok"] is True and checked["bytes"] == len(content)
    assert checked["schema_version"] == NEWEST
    assert target.read_bytes() == content
    assert target.stat().st_mtime_ns == changed_at
    assert sorted(p.name for p in tmp_path.glob("copy.db*")) == ["copy.db"]
    # the copy holds the campaign
    assert count(target, "SELECT count(*) FROM short_links") == len(campaign["links"])


def test_db_check_of_a_missing_file_is_an_error_and_creates_nothing(acme, tmp_path):
    missing = tmp_path / "nowhere" / "trackly.db"
    message = acme.error("--db", missing, "db", "check")
    assert "no database" in message and str(missing) in message
    assert not missing.parent.exists()
    alone = tmp_path / "absent.db"
    acme.error("--db", alone, "db", "check")
    assert sorted(p.name for p in tmp_path.glob("absent*")) == []


def test_backup_refuses_to_overwrite_without_force_and_quiet_says_nothing(acme, db_path, tmp_path):
    target = tmp_path / "copy.db"
    acme("db", "backup", target)
    content = target.read_bytes()
    acme("offer", "create", "Winter", "--url", "https://shop.example/winter")

    message = acme.error("db", "backup", target)

    assert "already exists" in message and "--force" in message
    assert target.read_bytes() == content
    quiet = acme("db", "backup", target, "--force", "--quiet")
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert [r["name"] for r in query(target, "SELECT name FROM offers ORDER BY id")] == [
        "Summer Sale",
        "Winter",
    ]
    assert sorted(p.name for p in tmp_path.glob("*copy.db*")) == ["copy.db"]
    # Never onto the database itself or one of its files, not even with --force.
    before = db_path.read_bytes()
    assert "database's own files" in acme.error("db", "backup", db_path, "--force")
    assert db_path.read_bytes() == before
    assert acme.json("db", "check")["ok"] is True


def test_backup_never_replaces_the_live_databases_wal_or_shm(acme, live_server, db_path, tmp_path):
    """#15: `db backup trackly.db-wal --force` replaced the running server's WAL, and it
    answered 500 ("file is not a database")."""
    server = live_server()
    for suffix in ("-wal", "-shm", "-journal", ".turn", ".journal/00000001.jnl"):
        target = db_path.parent / (db_path.name + suffix)
        existed = target.exists()
        before = target.read_bytes() if target.is_file() else None
        message = acme.error("db", "backup", target, "--force")
        assert "database's own files" in message, (suffix, message)
        assert target.exists() == existed
        if before is not None:
            assert target.read_bytes() == before or suffix in ("-wal", "-shm")
    import urllib.request

    request = urllib.request.Request(f"{server.url}/healthz", headers={"Host": "go.acme.test"})
    assert urllib.request.urlopen(request, timeout=10).status == 200
    assert acme.json("db", "check")["ok"] is True
