"""Reports, listings and imports on PostgreSQL give what they give on SQLite.

The same data is built on both stores: accounts, offers, a list and the imports through the CLI,
clicks with plain SQL (the columns trackly_cli/core/clicks.py writes; the schema's triggers keep
the rollups). Every report, listing and import summary is then compared between the two, as JSON
and CSV. The clock is frozen, so that every time written is the same on both.
Link ids are random: outputs name each as <message id:slot> before they are compared.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import BROWSER_UA

from trackly_cli.core import clock, reports, store
from trackly_cli.core.postgres import hide_password

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
PLAIN = "https://plain.example/page"
SCANNER_UA = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
CONTACTS = (
    "phone,first_name\n+12025550143,Ann\n+12025550144,Bob\n+12025550145,Cy\n"
    "+12025550146,Dee\n+12025550147,Eve\n+12025550148,Fay\n"
)


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """A frozen clock, the same for both stores: set `now[0]` to move it."""
    moment = [T0]
    monkeypatch.setattr(clock, "utcnow", lambda: moment[0])
    return moment


def _at(**delta) -> str:
    return clock.to_text(T0 + timedelta(**delta))


class Stores:
    """Runs each command on the SQLite file and on the PostgreSQL database."""

    def __init__(self, cli, sqlite_path: Path, pg_url: str) -> None:
        self.cli = cli
        self.targets = {"sqlite": str(sqlite_path), "postgres": pg_url}

        # Link ids are random: each store's, as <message id>:<slot>.
        self.links: dict[str, dict[str, str]] = {name: {} for name in self.targets}

    def learn_links(self) -> None:
        for name in self.targets:
            conn = self.sql(name)
            try:
                self.links[name] = {
                    link: f"<{message}:{slot}>"
                    for link, message, slot in conn.execute(
                        "SELECT id, message_id, slot FROM short_links"
                    )
                }
            finally:
                conn.close()

    def run(self, *args, code: int = 0) -> dict[str, str]:
        found = {}
        for name, target in self.targets.items():
            text = self.cli("--db", target, *args, code=code).stdout
            for link, label in self.links[name].items():
                text = text.replace(link, label)
            found[name] = text
        return found

    def same(self, *args, normalise=None) -> str:
        """Run on both; the outputs must be equal (after `normalise`, if given)."""
        out = self.run(*args)
        sqlite_out, pg_out = out["sqlite"], out["postgres"]
        if normalise:
            sqlite_out, pg_out = normalise(sqlite_out), normalise(pg_out)
        assert pg_out == sqlite_out, f"trackly {' '.join(map(str, args))}"
        return out["sqlite"]

    def same_json(self, *args):
        found = json.loads(self.same(*args, "--format", "json"))
        self.same(*args, "--format", "csv")
        return found

    def sql(self, name: str) -> store.Store:
        return store.connect(self.targets[name])


# (phone, campaign, slot, when, ip, user agent, is_bot, reasons)
CLICKS = [
    ("+12025550143", "spring", "link1", _at(hours=1), "198.51.100.7", BROWSER_UA, 0, ""),
    ("+12025550143", "spring", "link1", _at(hours=1, minutes=5), "198.51.100.7", BROWSER_UA, 0, ""),
    ("+12025550143", "spring", "link2", _at(hours=20), "198.51.100.8", BROWSER_UA, 0, ""),
    ("+12025550144", "spring", "link1", _at(seconds=1), "203.0.113.9", BROWSER_UA, 1, "timing"),
    ("+12025550145", "spring", "link2", _at(hours=14), "192.0.2.50", BROWSER_UA, 0, ""),
    ("+12025550146", "winter", "link1", _at(days=1, hours=3), "198.51.100.9", BROWSER_UA, 0, ""),
    ("+12025550147", "spring", "link1", _at(hours=3), "203.0.113.10", SCANNER_UA, 1, "scanner"),
    ("+12025550147", "spring", "link1", _at(hours=3, minutes=30), "2001:db8::7", BROWSER_UA, 0, ""),
]


def _click(conn: store.Store, phone, campaign, slot, when, ip, agent, is_bot, reasons) -> None:
    """One hit as the server stores it: the raw click and, for the first one of its message
    that is no bot, the MessageClick."""
    link = store.row(
        conn,
        "SELECT l.id, l.message_id, l.contact_id, l.offer_id, l.account_id, m.campaign_id,"
        " m.creative_id, m.list_id, m.variant, l.domain_id FROM short_links l"
        " JOIN messages m ON m.id = l.message_id JOIN contacts c ON c.id = l.contact_id"
        " JOIN campaigns k ON k.id = m.campaign_id"
        " WHERE c.phone = ? AND k.name = ? AND l.slot = ?",
        (phone, campaign, slot),
    )
    visitor = f"c:{link['contact_id']}"
    keys = (
        link["offer_id"],
        link["account_id"],
        link["campaign_id"],
        link["creative_id"],
        link["list_id"],
        link["variant"],
        link["domain_id"],
    )
    with store.write(conn):
        click_id = store.returned_id(
            conn.execute(
                "INSERT INTO message_short_link_clicks (clicked_at, link_id, message_id,"
                " contact_id, offer_id, account_id, campaign_id, creative_id, list_id, variant,"
                " domain_id, method, ip, user_agent, referer, accept_language, visitor, is_bot,"
                " bot_reasons, ip_anonymized_at, headers_cut)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                (
                    when,
                    link["id"],
                    link["message_id"],
                    link["contact_id"],
                    *keys,
                    "GET",
                    ip,
                    agent,
                    None,
                    "en-US,en;q=0.9",
                    visitor,
                    is_bot,
                    reasons,
                    None,
                    0,
                ),
            )
        )
        if not is_bot:
            conn.execute(
                "INSERT INTO message_clicks (message_id, visitor, contact_id, link_id, offer_id,"
                " account_id, campaign_id, creative_id, list_id, variant, domain_id, click_id,"
                " clicked_at, ip, user_agent, source, reason, created_at, ip_anonymized_at)"
                " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'click', NULL, ?, NULL"
                # (not ON CONFLICT DO NOTHING, which takes an id from PostgreSQL's sequence)
                " WHERE NOT EXISTS (SELECT 1 FROM message_clicks WHERE message_id = ?"
                " AND visitor = ?)",
                (
                    link["message_id"],
                    visitor,
                    link["contact_id"],
                    link["id"],
                    *keys,
                    click_id,
                    when,
                    ip,
                    agent,
                    when,
                    link["message_id"],
                    visitor,
                ),
            )


def _link(conn: store.Store, phone: str, campaign: str, slot: str) -> str:
    return store.scalar(
        conn,
        "SELECT l.id FROM short_links l JOIN messages m ON m.id = l.message_id"
        " JOIN contacts c ON c.id = l.contact_id JOIN campaigns k ON k.id = m.campaign_id"
        " WHERE c.phone = ? AND k.name = ? AND l.slot = ?",
        (phone, campaign, slot),
    )


def _message(conn: store.Store, phone: str, campaign: str) -> int:
    return store.scalar(
        conn,
        "SELECT m.id FROM messages m JOIN contacts c ON c.id = m.contact_id"
        " JOIN campaigns k ON k.id = m.campaign_id WHERE c.phone = ? AND k.name = ?",
        (phone, campaign),
    )


def _conversions_csv(conn: store.Store) -> str:
    def link(phone, campaign="spring", slot="link1"):
        return _link(conn, phone, campaign, slot)

    rows = [
        ("link_id", "event", "revenue", "payout", "txn_id", "time"),
        (link("+12025550143"), "sale", "24.99", "", "T1001", _at(hours=2)),  # attributed
        (link("+12025550143"), "sale", "24.99", "", "T1001", _at(hours=2)),  # a duplicate
        (link("+12025550148"), "lead", "0", "0.50", "", _at(hours=3)),  # no click
        (link("+12025550144"), "sale", "10", "", "T1002", _at(hours=4)),  # promotes a bot click
        (link("+12025550143"), "refund", "", "", "T1001", _at(days=1)),  # reverses T1001
        (link("+12025550146", "winter"), "refund", "5", "", "T1003", _at(days=2)),  # held…
        (link("+12025550146", "winter"), "sale", "15", "", "T1003", _at(days=1, hours=5)),
        (link("+12025550147"), "sale", "30", "", "T1004", _at(days=10)),  # outside the window
        (link("+12025550145", "spring", "link2"), "sale", "5", "", "T1005", _at(hours=15)),
        (link("+12025550148"), "refund", "3", "", "T1999", _at(hours=5)),  # its sale never comes
        ("zzzzzzz", "sale", "1", "", "T1006", _at(hours=5)),  # unknown link
    ]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


def _receipts_csv(conn: store.Store) -> str:
    def message(phone, campaign="spring"):
        return _message(conn, phone, campaign)

    rows = [
        ("message_id", "delivered_at", "status"),
        (message("+12025550143"), _at(seconds=30), "delivered"),
        (message("+12025550144"), "", "undelivered"),
        (message("+12025550145"), _at(minutes=2), "DELIVRD"),
        (message("+12025550146", "winter"), _at(seconds=20), "delivered"),
        (message("+12025550147"), "", "queued"),
        (999999, _at(minutes=1), "delivered"),  # not a message of the account
    ]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


def _build(stores: Stores, tmp_path: Path) -> None:
    for args in (
        ("account", "create", "acme"),
        ("domain", "add", "go.acme.test", "--account", "acme"),
        ("offer", "create", "Summer Sale", "--url", "https://shop.example/s?sub={link_id}"),
        ("offer", "update", "Summer Sale", "--payout", "2.50"),
        ("offer", "create", "Winter Deal", "--url", "https://shop.example/w", "--payout", "1"),
        ("list", "create", "vip"),
    ):
        stores.run(*args)
    _send(stores, tmp_path)
    for name in stores.targets:
        conn = stores.sql(name)
        try:
            for click in CLICKS:
                _click(conn, *click)
            (tmp_path / f"conv-{name}.csv").write_text(_conversions_csv(conn), encoding="utf-8")
            (tmp_path / f"receipts-{name}.csv").write_text(_receipts_csv(conn), encoding="utf-8")
        finally:
            conn.close()


def _send(stores: Stores, tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(CONTACTS, encoding="utf-8")
    (tmp_path / "a.txt").write_text("Hi {{first_name}} {{link1}} {{link2}}", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Hey {{first_name}}: {{link1}} {{link2}}", encoding="utf-8")
    (tmp_path / "w.txt").write_text("Winter {{first_name}} {{link1}}", encoding="utf-8")
    stores.same("contacts", "import", "vip", tmp_path / "c.csv", "-f", "json")
    # (both stores write the same default outbox here: the second replaces the first)
    spring = ("--campaign", "spring", "--seed", "s1", "--link", "link1=Summer Sale", "--force")
    stores.run("shorten", "a.txt", "b.txt", "--list", "vip", *spring, "--link", f"link2={PLAIN}")
    winter = ("--campaign", "winter", "--seed", "s2", "--link", "link1=Winter Deal", "--force")
    stores.run("shorten", "w.txt", "--list", "vip", *winter)
    stores.learn_links()


@pytest.fixture
def stores(cli, db_path: Path, pg_url: str, tmp_path: Path, now) -> Stores:
    both = Stores(cli, db_path, pg_url)
    _build(both, tmp_path)
    return both


def _import(stores: Stores, tmp_path: Path, kind: str, *options) -> dict:
    found = {
        name: json.loads(
            stores.cli(
                "--db",
                target,
                kind,
                "import",
                tmp_path / f"{kind}-{name}.csv",
                *options,
                "-f",
                "json",
            ).stdout
        )
        for name, target in stores.targets.items()
    }
    assert found["postgres"] == found["sqlite"]
    return found["sqlite"]


def _imports(stores: Stores, tmp_path: Path, now) -> None:
    now[0] = T0 + timedelta(days=20)
    for name in stores.targets:
        (tmp_path / f"conversions-{name}.csv").write_text(
            (tmp_path / f"conv-{name}.csv").read_text(encoding="utf-8"), encoding="utf-8"
        )
    summary = _import(stores, tmp_path, "conversions")
    assert summary == {"rows": 11, "recorded": 7, "duplicates": 1, "pending": 2, "invalid": 1}
    again = _import(stores, tmp_path, "conversions")
    assert again["recorded"] == 0
    receipts = _import(stores, tmp_path, "receipts")
    assert (receipts["delivered"], receipts["failed"], receipts["unknown_messages"]) == (3, 1, 1)


REPORT_FILTERS = [
    (),
    ("--campaign", "spring"),
    ("--offer", "Summer Sale"),
    ("--list", "vip"),
    ("--since", "2026-01-05T11:00", "--until", "2026-01-06"),
    ("--since", "2026-01-05", "--tz", "America/New_York"),
]


def _reports(stores: Stores, tmp_path: Path) -> dict:
    """Every report, listing and export, the same on both stores; the SQLite outputs."""
    seen = {}
    for by in reports.DIMENSIONS:
        for chosen in REPORT_FILTERS:
            extra = (
                ("--campaign", "spring") if by == "message" and "--campaign" not in chosen else ()
            )
            args = ("report", "--by", by, *chosen, *extra)
            seen[args] = stores.same_json(*args)
        stores.same("report", "--by", by, "--campaign", "winter")
    for chosen in ((), ("--bots",), ("--humans",), ("--campaign", "winter")):
        seen[("clicks", *chosen)] = stores.same_json("clicks", *chosen)
    for chosen in ((), ("--campaign", "spring"), ("--offer", "Winter Deal")):
        seen[("conversions", *chosen)] = stores.same_json("conversions", *chosen)
    seen["ab"] = stores.same_json("ab", "spring")
    stores.same("ab", "spring")
    for kind in ("--clicked", "--not-clicked", "--converted", "--bots-only"):
        seen[("segment", kind)] = stores.same_json("segment", "spring", kind)
        stores.same_json("segment", "spring", kind, "--offer", "Summer Sale")
    for phone in ("+12025550143", "+12025550146", "+12025550148"):
        seen[("contact", phone)] = stores.same_json("contact", "show", phone)
    stores.same("bots", "ranges", "list", "-f", "json")
    return seen


def test_reports_listings_and_imports_match_sqlite(stores: Stores, tmp_path: Path, now) -> None:
    _imports(stores, tmp_path, now)
    before = _reports(stores, tmp_path)
    # Sanity: the data says what it was built to say.
    totals = before[("report", "--by", "campaign")]
    assert sum(r["clicks"] for r in totals) == len(CLICKS)
    attributions = {c["txn_id"]: c["attribution"] for c in before[("conversions",)]}
    assert attributions["T1001"] == "attributed" and attributions["T1004"] == "outside_window"
    assert attributions["T1002"] == "attributed"  # (its bot click was promoted)
    refunds = [c for c in before[("conversions",)] if c["event"] == "refund"]
    assert sorted(c["txn_id"] for c in refunds) == ["T1001", "T1003"]
    assert before[("segment", "--bots-only")] == []  # (Bob's bot click was promoted)
    not_clicked = before[("segment", "--not-clicked")]
    assert [c["phone"] for c in not_clicked] == ["+12025550146", "+12025550148"]
    assert before["ab"]["variants"] and len(before["ab"]["verdicts"]) == 2
    journey = before[("contact", "+12025550143")]
    assert journey["clicks"] == 3 and journey["revenue"] == "0.00"

    # HTML reports: the same page.
    for name, target in stores.targets.items():
        stores.cli("--db", target, "report", "--by", "offer", "--html", tmp_path / f"{name}.html")
    sqlite_page = (tmp_path / "sqlite.html").read_text(encoding="utf-8")
    assert (tmp_path / "postgres.html").read_text(encoding="utf-8") == sqlite_page


def test_bots_ranges_and_rescan_match_sqlite(stores: Stores, tmp_path: Path, now) -> None:
    _imports(stores, tmp_path, now)
    (tmp_path / "dc.txt").write_text(
        "# hosting\n192.0.2.0/24\n2001:db8::/32\n192.0.2.0/24\n", encoding="utf-8"
    )
    found = stores.same_json("bots", "ranges", "import", tmp_path / "dc.txt", "--source", "dc")
    assert (found["ranges"], found["duplicates"]) == (2, 1)
    found = stores.same_json("bots", "ranges", "import", tmp_path / "dc.txt", "--source", "dc")
    assert found["replaced"] == 2
    stores.same("bots", "ranges", "add", "203.0.113.0/24", "198.51.100.99")
    stores.same("bots", "ranges", "add", "203.0.113.0/24", "--kind", "allow")
    assert len(stores.same_json("bots", "ranges", "list")) == 3
    stores.same("bots", "ranges", "remove", "198.51.100.99")
    stores.same("bots", "ranges", "remove", "--source", "manual", "--kind", "allow")
    stores.run("bots", "ranges", "remove", "10.0.0.0/8", code=1)
    for ip in ("192.0.2.50", "203.0.113.4", "198.51.100.1"):
        stores.same_json("bots", "check", "--ua", BROWSER_UA, "--ip", ip)
    result = stores.same_json("bots", "rescan")
    assert result["to_bot"] >= 1 and result["message_clicks_removed"] >= 1
    stores.same("bots", "rescan", "--since", "2026-01-05T12:00")
    after = _reports(stores, tmp_path)
    attributions = {c["txn_id"]: c["attribution"] for c in after[("conversions",)]}
    assert attributions["T1005"] == "no_click"  # its click came from a datacenter after all


def test_segment_into_list_and_prune_match_sqlite(stores: Stores, tmp_path: Path, now) -> None:
    _imports(stores, tmp_path, now)
    stores.same("segment", "spring", "--clicked", "--into-list", "clicked")
    saved = json.loads(stores.same("list", "show", "clicked", "-f", "json"))
    assert saved["members"] == 4
    stores.same("contacts", "list", "--list", "clicked", "-f", "json")
    before = _reports(stores, tmp_path)
    stores.same("account", "update", "acme", "--retention-days", "7", "--anonymize-ips-after", "3")
    now[0] = T0 + timedelta(days=8)
    dry = stores.same_json("prune", "--dry-run")
    assert dry[0]["clicks"] == len(CLICKS) - 1  # (Dee's winter click stays)
    assert dry[0]["ips_anonymized"] > 0
    assert stores.same_json("prune")[0]["clicks"] == dry[0]["clicks"]
    assert stores.same_json("prune")[0]["clicks"] == 0
    after = _reports(stores, tmp_path)
    for key, rows in before.items():
        if key[0] == "report":
            assert after[key] == rows, key  # reports read counters, not raw clicks


def test_db_commands(cli, pg_url: str, db_path: Path, tmp_path: Path) -> None:
    stores = Stores(cli, db_path, pg_url)
    stores.run("db", "migrate")

    def no_times(text: str) -> str:
        return json.dumps([r | {"applied_at": "…"} for r in json.loads(text)])

    listed = stores.same("db", "migrate", "--list", "-f", "json", normalise=no_times)
    assert {r["state"] for r in json.loads(listed)} == {"applied"}
    checked = json.loads(cli("--db", pg_url, "db", "check", "-f", "json").stdout)
    assert checked["ok"] is True and checked["pending_migrations"] == 0
    assert checked["schema_version"] == json.loads(listed)[-1]["name"]
    assert checked["refunds_waiting_for_their_sale"] == 0 and checked["url"] == pg_url
    parts = urlsplit(pg_url)
    secret = urlunsplit(parts._replace(netloc=f"someone:hunter2@{parts.hostname}:{parts.port}"))
    message = cli.error("--db", secret, "db", "backup", tmp_path / "copy.dump")
    assert "hunter2" not in message
    assert f"pg_dump --format=custom --file {tmp_path / 'copy.dump'} " in message
    assert hide_password(secret) in message
    assert not (tmp_path / "copy.dump").exists()
    # SQLite keeps its own.
    sqlite_check = json.loads(cli("db", "check", "-f", "json").stdout)
    assert sqlite_check["integrity"] == "ok" and sqlite_check["journal_mode"] == "wal"
    cli("db", "backup", tmp_path / "copy.db")
