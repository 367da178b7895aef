"""Campaigns as a noun (#14): `trackly campaign list|show|outbox|delete`, on SQLite and on
PostgreSQL. The outbox written again is the very file `shorten --output` wrote (a big send in
many chunks too); numbers are the report's; a delete refuses a campaign with history (unless
--force, which retires it), takes back what a clean one added, and a refused command changes
nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import HUMAN_HEADERS, LiveServer, execute, query, snapshot, wait_for

from trackly_cli.core import campaigns, shorten, store

TABLES = (
    "campaigns",
    "campaign_variants",
    "messages",
    "short_links",
    "report_rollups",
    "message_rollups",
    "message_short_link_clicks",
    "message_clicks",
    "conversions",
    "creatives",
    "config_version",
)


def everything(target: str) -> dict:
    """The rows of the tables a campaign command could touch (all tables on SQLite)."""
    if not target.startswith("postgres"):
        return snapshot(Path(target))
    return {table: sorted(map(repr, query(target, f"SELECT * FROM {table}"))) for table in TABLES}


@pytest.fixture
def sent(target, cli, tmp_path: Path):
    """acme, list vip of four contacts, and two campaigns: `june` (variants A and B, texts that
    need CSV quoting, a UCS-2 one) and the later `july`, each with its outbox."""
    cli("account", "create", "acme")
    cli("domain", "add", "go.acme.test", "--account", "acme")
    cli("offer", "create", "Summer Sale", "--url", "https://shop.example/s?sub={link_id}")
    cli("offer", "create", "TVs", "--url", "https://shop.example/tv", "--payout", "1.25")
    (tmp_path / "c.csv").write_text(
        'phone,first_name\n+12025550143,Ann\n+12025550144,"Bob, Jr."\n+12025550145,Zoë\n'
        "+447911123456,Dee\n",
        encoding="utf-8",
    )
    cli("list", "create", "vip")
    cli("contacts", "import", "vip", tmp_path / "c.csv")
    (tmp_path / "a.txt").write_text(
        'Hi {{first_name}}, "deal": {{link1}}\nTVs: {{link2}}', encoding="utf-8"
    )
    (tmp_path / "b.txt").write_text("Salut {{first_name}} 😀 {{link1}} {{link2}}", encoding="utf-8")
    cli(
        *("shorten", "a.txt", "b.txt", "--list", "vip", "--campaign", "june", "--seed", "3"),
        *("--link", "link1=Summer Sale", "--link", "link2=TVs", "--output", "june.csv"),
    )
    cli(
        *("shorten", "a.txt", "--list", "vip", "--campaign", "july"),
        *("--link", "link1=Summer Sale", "--link", "link2=https://plain.example/x"),
        *("--output", "july.csv"),
    )
    return cli


def link_of(target: str, campaign: str, message: int = 0) -> str:
    rows = query(
        target,
        "SELECT l.id FROM short_links l JOIN messages m ON m.id = l.message_id"
        " JOIN campaigns k ON k.id = m.campaign_id WHERE k.name = ? ORDER BY m.id, l.slot",
        campaign,
    )
    return rows[message * 2]["id"]


@pytest.fixture
def server(target, tmp_path: Path):
    """The real redirect app (WebTest) over the database, waiting after each request until the
    drain has stored what it recorded; its link index holds every link already."""
    import webtest

    from trackly_cli.server import Tracker, create_app

    trackers = []

    def make():
        tracker = Tracker(target, journal=tmp_path / f"journal-{len(trackers)}")
        trackers.append(tracker)
        tracker.hot_links.wait_loaded(10)

        class Synced(webtest.TestApp):
            def do_request(self, *args, **kwargs):
                try:
                    return super().do_request(*args, **kwargs)
                finally:
                    tracker.sync()

        app = Synced(
            create_app(target, tracker=tracker),
            extra_environ={"HTTP_HOST": "go.acme.test", "REMOTE_ADDR": "198.51.100.7"},
        )
        app.tracker = tracker
        return app

    yield make
    for tracker in trackers:
        tracker.close()


# -- outbox ----------------------------------------------------------------------------------


def test_the_outbox_again_is_byte_for_byte_the_one_shorten_wrote(sent, tmp_path):
    for name in ("june", "july"):
        sent("campaign", "outbox", name, "--output", f"{name}-again.csv")
        original = (tmp_path / f"{name}.csv").read_bytes()
        assert (tmp_path / f"{name}-again.csv").read_bytes() == original
    # (the texts needed quoting, and a variant is UCS-2: the test covers the CSV's rules)
    june = (tmp_path / "june.csv").read_bytes().decode("utf-8")
    assert '"Hi Ann, ""deal"":' in june and "UCS-2" in june and june.count("\r\n") == 5


def test_a_big_send_in_many_chunks_is_written_again_the_same(target, cli, tmp_path, monkeypatch):
    # Small chunks, so that 3,000 contacts make a dozen transactions (as a million would).
    monkeypatch.setattr(shorten, "FIRST_CHUNK", 250)
    monkeypatch.setattr(shorten, "MAX_CHUNK", 300)
    cli("account", "create", "acme")
    cli("domain", "add", "go.acme.test", "--account", "acme")
    cli("list", "create", "big")
    conn = store.open_db(target)
    try:
        with store.write(conn):
            now = "2026-01-01T00:00:00.000000Z"
            conn.executemany(
                "INSERT INTO contacts (id, account_id, phone, fields, created_at, updated_at)"
                " VALUES (?, 1, ?, ?, ?, ?)",
                [
                    (i, f"+1{2025500000 + i}", f'{{"n": "{i}, \\"x\\""}}', now, now)
                    for i in range(1, 3001)
                ],
            )
            conn.executemany(
                "INSERT INTO list_members (list_id, contact_id, added_at) VALUES (1, ?, ?)",
                [(i, now) for i in range(1, 3001)],
            )
    finally:
        conn.close()
    (tmp_path / "big.txt").write_text("No {{n}}: {{link1}}", encoding="utf-8")
    cli(
        *("shorten", "big.txt", "--list", "big", "--campaign", "huge"),
        *("--link", "link1=https://shop.example/", "--output", "huge.csv"),
    )
    assert query(target, "SELECT count(*) AS n FROM messages")[0]["n"] == 3000
    cli("campaign", "outbox", "huge", "--output", "again.csv")
    original = (tmp_path / "huge.csv").read_bytes()
    assert original.count(b"\r\n") == 3001 and b'"No 7, ""x"": https://go.acme.test/' in original
    assert (tmp_path / "again.csv").read_bytes() == original


def test_the_outbox_again_leaves_out_who_opted_out_or_was_erased_since(sent, tmp_path):
    """Writing an outbox again is for sending it: a number that said STOP since, or a person
    erased since, is left out (and counted), every other row is as shorten wrote it."""

    def rows(name: str) -> list[list[str]]:
        with (tmp_path / name).open(encoding="utf-8", newline="") as f:
            return list(csv.reader(f))

    sent("optout", "add", "+12025550144")
    sent("contacts", "erase", "+447911123456", "--yes")
    done = sent("campaign", "outbox", "june", "-o", tmp_path / "again.csv").stderr
    assert "2 messages of june (left out: 1 opted out since and 1 erased)" in done
    original = rows("june.csv")
    assert len(original) == 5  # the header and four messages
    assert rows("again.csv") == [
        r for r in original if r[0] not in ("+12025550144", "+447911123456")
    ]


def test_an_existing_file_is_replaced_only_with_force(sent, tmp_path):
    (tmp_path / "keep.csv").write_text("mine\n", encoding="utf-8")
    message = sent.error("campaign", "outbox", "june", "--output", "keep.csv")
    assert message == "Error: keep.csv exists: choose another file, or add --force to replace it"
    assert (tmp_path / "keep.csv").read_text(encoding="utf-8") == "mine\n"
    sent("campaign", "outbox", "june", "--output", "keep.csv", "--force")
    assert (tmp_path / "keep.csv").read_bytes() == (tmp_path / "june.csv").read_bytes()


def test_an_incomplete_or_unknown_campaign_has_no_outbox(sent, target, tmp_path):
    execute(
        target,
        "UPDATE campaigns SET building_pid = 999999999, building_host = 'elsewhere.example'"
        " WHERE name = 'july'",
    )
    before = everything(target)
    message = sent.error("campaign", "outbox", "july", "--output", "x.csv")
    assert "campaign 'july' is incomplete" in message
    assert sent.error("campaign", "outbox", "nope", "--output", "x.csv") == (
        "Error: no campaign 'nope' in this account (see `trackly campaign list`)"
    )
    assert not (tmp_path / "x.csv").exists()
    assert everything(target) == before
    listed = {c["name"]: c["status"] for c in sent.json("campaign", "list")}
    assert listed == {"july": "incomplete", "june": "complete"}


# -- list and show -------------------------------------------------------------------------


def test_list_and_show_give_the_reports_numbers(sent, server, target):
    app = server()
    link = link_of(target, "june")
    assert app.get(f"/{link}", headers=HUMAN_HEADERS).status_int == 302
    app.get(f"/{link}", headers=HUMAN_HEADERS)
    app.get(f"/conv?link_id={link}&txn_id=T1&revenue=49.90")
    listed = sent.json("campaign", "list")
    assert [c["name"] for c in listed] == ["july", "june"]  # newest first
    report = {r["campaign"]: r for r in sent.json("report", "--by", "campaign")}
    for row in listed:
        assert {k: row[k] for k in ("sent", "clicks", "unique_clicks", "conversions")} == {
            k: report[row["name"]][k] for k in ("sent", "clicks", "unique_clicks", "conversions")
        }
        assert row["revenue"] == report[row["name"]]["revenue"]
    assert listed[1] | {"created_at": None} == {
        "id": listed[1]["id"],
        "name": "june",
        "list": "vip",
        "created_at": None,
        "status": "complete",
        "sent": 4,
        "delivered": 0,
        "undelivered": 0,
        "clicks": 2,
        "unique_clicks": 1,
        "conversions": 1,
        "revenue": "49.90",
    }

    shown = sent.json("campaign", "show", "june", "--limit", "2")
    row = report["june"]
    assert {k: shown[k] for k in row if k not in ("campaign", "campaign_id")} == {
        k: v for k, v in row.items() if k not in ("campaign", "campaign_id")
    }
    assert (shown["list"], shown["domain"], shown["status"]) == ("vip", "go.acme.test", "complete")
    assert [(v["variant"], v["creative"], v["links"]) for v in shown["variants"]] == [
        ("A", "a", {"link1": "Summer Sale", "link2": "TVs"}),
        ("B", "b", {"link1": "Summer Sale", "link2": "TVs"}),
    ]
    assert sum(v["messages"] for v in shown["variants"]) == 4
    assert len(shown["messages"]) == 2
    first = shown["messages"][0]
    assert first["phone"] == "+12025550143"
    assert first["links"]["link1"] == f"https://go.acme.test/{link}"
    table = sent("campaign", "show", "july").stdout
    assert "https://plain.example/x" in table and "First 4 messages" in table
    assert "Error: no campaign 'nope'" in sent.error("campaign", "show", "nope")


def test_an_empty_account_lists_no_campaign(target, cli):
    cli("account", "create", "acme")
    assert cli.json("campaign", "list") == []
    assert "No campaigns yet." in cli("campaign", "list").stderr


# -- delete ----------------------------------------------------------------------------------


@pytest.mark.slow  # (a removal waits campaigns.GRACE_SECONDS)
def test_a_campaign_nobody_clicked_is_deleted_whole_and_its_sent_taken_back(
    sent, server, target, tmp_path
):
    app = server()  # a running server, whose link index holds june's links
    june_link, july_link = link_of(target, "june"), link_of(target, "july")
    before = {r["campaign"]: r for r in sent.json("report", "--by", "campaign")}
    by_offer = sent.json("report", "--by", "offer")
    assert sum(r["sent"] for r in by_offer) > 0
    removed = sent("campaign", "delete", "june")
    assert removed.stderr.startswith("Deleted campaign june: 4 messages and their links.")

    after = {r["campaign"]: r for r in sent.json("report", "--by", "campaign")}
    assert after == {"july": before["july"]}  # july untouched, june's sent gone
    assert sum(r["sent"] for r in sent.json("report")) == before["july"]["sent"]
    june_id = before["june"]["campaign_id"]
    for sql in (
        "SELECT count(*) AS n FROM messages WHERE campaign_id = ?",
        "SELECT count(*) AS n FROM report_rollups WHERE campaign_id = ?",
        "SELECT count(*) AS n FROM campaign_variants WHERE campaign_id = ?",
    ):
        assert query(target, sql, june_id)[0]["n"] == 0, sql
    assert query(target, "SELECT count(*) AS n FROM short_links WHERE id = ?", june_link) == [
        {"n": 0}
    ]
    assert [c["name"] for c in sent.json("campaign", "list")] == ["july"]
    assert "no campaign 'june'" in sent.error("campaign", "show", "june")
    assert "no campaign 'june'" in sent.error("report", "--campaign", "june")

    # The server answers 404 for the removed links at once (its settings are re-read), and
    # the other campaign's links still count.
    app.tracker.refresh(force=True)
    assert app.get(f"/{june_link}", headers=HUMAN_HEADERS, expect_errors=True).status_int == 404
    assert app.get(f"/{july_link}", headers=HUMAN_HEADERS).status_int == 302
    assert query(target, "SELECT link_id FROM message_short_link_clicks") == [
        {"link_id": july_link}
    ]

    # The name is free again, and a new campaign gets a new id.
    sent(
        *("shorten", "a.txt", "--list", "vip", "--campaign", "june", "--output", "new.csv"),
        *("--link", "link1=Summer Sale", "--link", "link2=TVs"),
    )
    (again,) = [c for c in sent.json("campaign", "list") if c["name"] == "june"]
    assert again["id"] != june_id and again["sent"] == 4


def test_a_campaign_with_history_is_refused_and_nothing_changes(sent, server, target):
    app = server()
    link = link_of(target, "june")
    app.get(f"/{link}", headers=HUMAN_HEADERS)
    app.get(f"/conv?link_id={link}&txn_id=T1&revenue=10")
    before = everything(target)
    message = sent.error("campaign", "delete", "june")
    assert message == (
        "Error: campaign 'june' has 1 clicks and 1 conversions; its links are live: add --force"
        " to retire it (its links stop answering, its report history stays)"
    )
    assert everything(target) == before
    assert sent.error("campaign", "delete", "nope") == (
        "Error: no campaign 'nope' in this account (see `trackly campaign list`)"
    )
    assert everything(target) == before
    # Only a bot's hit is history too (a scanner was sent the link: it went out).
    link = link_of(target, "july")
    app.get(f"/{link}", headers={"User-Agent": "facebookexternalhit/1.1"})
    assert "has 1 clicks and 0 conversions" in sent.error("campaign", "delete", "july")


def test_force_retires_a_campaign_and_keeps_its_history(sent, server, target):
    app = server()
    link = link_of(target, "june")
    app.get(f"/{link}", headers=HUMAN_HEADERS)
    app.get(f"/conv?link_id={link}&txn_id=T1&revenue=10")
    report = sent.json("report", "--by", "campaign")
    retired = sent("campaign", "delete", "june", "--force")
    assert retired.stderr.startswith(
        "Retired campaign june: its links no longer answer; its 1 clicks and 1 conversions stay"
        " in reports."
    )
    # History intact: the same report, the same messages and clicks.
    assert sent.json("report", "--by", "campaign") == report
    assert query(target, "SELECT count(*) AS n FROM message_short_link_clicks")[0]["n"] == 1
    assert [c["name"] for c in sent.json("campaign", "list")] == ["july"]
    assert "no campaign 'june'" in sent.error("campaign", "outbox", "june", "-o", "x.csv")
    # Its links answer no more clicks (the running server re-reads its settings), others do.
    app.tracker.refresh(force=True)
    assert app.get(f"/{link}", headers=HUMAN_HEADERS, expect_errors=True).status_int == 404
    assert app.get(f"/{link_of(target, 'july')}", headers=HUMAN_HEADERS).status_int == 302
    assert query(target, "SELECT count(*) AS n FROM message_short_link_clicks")[0]["n"] == 2
    # A refund of its sale is still taken: money already paid must be able to come back.
    (offer,) = query(target, "SELECT postback_secret FROM offers WHERE name = 'Summer Sale'")
    secret = offer["postback_secret"]
    refund = app.get(f"/conv?link_id={link}&txn_id=T1&event=refund&postback_secret={secret}")
    assert refund.json["status"] == "recorded"
    # Its name stays taken, for its report history.
    message = sent.error(
        *("shorten", "a.txt", "--list", "vip", "--campaign", "june"),
        *("--link", "link1=Summer Sale", "--link", "link2=TVs"),
    )
    assert "campaign 'june' was deleted with --force" in message
    # And its history stays reachable by name: its report, A/B test and audiences.
    (row,) = sent.json("report", "--campaign", "june")
    assert (row["campaign"], row["clicks"], row["conversions"]) == ("june", 1, 1)
    assert sent.json("ab", "june")["campaign"] == "june"
    assert sent("segment", "june", "--converted").stdout.count("+") == 1


def test_a_campaign_being_written_is_not_deleted(sent, target):
    execute(
        target,
        "UPDATE campaigns SET building_pid = 999999999, building_host = 'elsewhere.example'"
        " WHERE name = 'july'",
    )
    before = everything(target)
    message = sent.error("campaign", "delete", "july", "--force")
    assert message.startswith("Error: campaign 'july' is incomplete: `trackly shorten`")
    assert everything(target) == before


@pytest.mark.slow  # (a removal waits campaigns.GRACE_SECONDS)
def test_a_domain_whose_campaigns_were_deleted_whole_can_be_removed(sent, target):
    sent("domain", "add", "promo.acme.test", "--account", "acme")
    sent(
        *("shorten", "a.txt", "--list", "vip", "--campaign", "promo", "--output", "p.csv"),
        *("--link", "link1=Summer Sale", "--link", "link2=TVs", "--domain", "promo.acme.test"),
    )
    assert "carries the links of 4 messages" in sent.error("domain", "remove", "promo.acme.test")
    sent("campaign", "delete", "promo")
    (promo,) = [d for d in sent.json("domain", "list") if d["hostname"] == "promo.acme.test"]
    assert promo["campaigns"] == 0
    sent("domain", "remove", "promo.acme.test")
    assert [d["hostname"] for d in sent.json("domain", "list")] == ["go.acme.test"]


def test_delivery_columns_appear_in_the_table_once_receipts_were_imported(sent, target, tmp_path):
    table = sent("campaign", "list").stdout
    assert "undelivered" not in table and "unique clicks" in table
    assert {"delivered", "undelivered"} <= set(sent.json("campaign", "list")[0])
    (first,) = query(target, "SELECT min(m.id) AS id FROM messages m")
    (tmp_path / "receipts.csv").write_text(
        f"message_id,delivered_at,status\n{first['id']},2026-11-30T09:00:02Z,delivered\n"
        f"{first['id'] + 1},,undelivered\n",
        encoding="utf-8",
    )
    sent("receipts", "import", "receipts.csv")
    june = {c["name"]: c for c in sent.json("campaign", "list")}["june"]
    assert (june["delivered"], june["undelivered"]) == (1, 1)
    assert "undelivered" in sent("campaign", "list").stdout
    shown = sent.json("campaign", "show", "june")
    assert (shown["delivered"], shown["undelivered"]) == (1, 1)
    assert [m["delivery"] for m in shown["messages"][:3]] == ["delivered", "failed", None]
    # Receipts say it was sent: deleting it is refused like one with clicks (its sent and
    # delivered counts would leave every report).
    before = everything(target)
    assert sent.error("campaign", "delete", "june") == (
        "Error: campaign 'june' has 0 clicks and 0 conversions but 2 delivery receipts: it was"
        " sent; its links are live: add --force to retire it (its links stop answering, its"
        " report history stays)"
    )
    assert everything(target) == before


@pytest.mark.slow  # (a removal waits campaigns.GRACE_SECONDS)
def test_a_refund_waiting_for_a_sale_of_its_links_is_history_too(sent, server, target):
    app = server()
    link = link_of(target, "july")
    (offer,) = query(target, "SELECT postback_secret FROM offers WHERE name = 'Summer Sale'")
    secret = offer["postback_secret"]
    refund = app.get(f"/conv?link_id={link}&txn_id=T9&event=refund&postback_secret={secret}")
    assert refund.json["status"] == "pending"
    before = everything(target)
    assert sent.error("campaign", "delete", "july") == (
        "Error: campaign 'july' has 0 clicks and 0 conversions (1 refunds waiting for their"
        " sale); its links are live: add --force to retire it (its links stop answering, its"
        " report history stays)"
    )
    assert everything(target) == before
    assert sent.json("campaign", "delete", "july", "--force") == {
        "campaign": "july",
        "deleted": "retired",
        "messages_removed": 0,
        "clicks": 0,
        "conversions": 0,
        "refunds_waiting": 1,
    }
    assert sent.json("campaign", "delete", "june") == {
        "campaign": "june",
        "deleted": "removed",
        "messages_removed": 4,
        "clicks": 0,
        "conversions": 0,
        "refunds_waiting": 0,
    }
    assert sent.json("campaign", "list") == []


@pytest.mark.slow
def test_a_running_trackly_serve_stops_answering_deleted_campaigns(sent, target, tmp_path):
    """A real `trackly serve` in another process, holding every link in memory: within
    seconds of each delete its links answer 404, and its drain goes on storing the others."""
    serve = LiveServer(target, "--journal", str(tmp_path / "journal"), logs=tmp_path)
    try:
        june, july = link_of(target, "june"), link_of(target, "july")
        assert serve.request(f"/{june}", headers=HUMAN_HEADERS)[0] == 302
        sent("campaign", "delete", "june", "--force")  # (it has a click: retired)
        sent("campaign", "delete", "july")  # (nobody clicked it: removed)
        for link in (june, july):
            wait_for(
                lambda link=link: serve.request(f"/{link}", headers=HUMAN_HEADERS)[0] == 404,
                what=f"{link} answered 404",
            )
        sent(
            *("shorten", "a.txt", "--list", "vip", "--campaign", "august", "-o", "aug.csv"),
            *("--link", "link1=Summer Sale", "--link", "link2=TVs"),
        )
        august = link_of(target, "august")
        assert serve.request(f"/{august}", headers=HUMAN_HEADERS)[0] == 302
    finally:
        assert serve.stop() == 0
    stored = query(target, "SELECT link_id FROM message_short_link_clicks ORDER BY id")
    assert [r["link_id"] for r in stored] == [june, august]


def test_a_removal_stops_the_links_before_it_removes_their_rows(sent, server, target):
    app = server()
    link = link_of(target, "july")
    seen = []

    def meanwhile(seconds: float) -> None:
        # Between the two steps: the links answer no more, their rows are still there.
        assert seconds == campaigns.GRACE_SECONDS
        app.tracker.refresh(force=True)
        seen.append(app.get(f"/{link}", headers=HUMAN_HEADERS, expect_errors=True).status_int)
        seen.append(query(target, "SELECT count(*) AS n FROM short_links WHERE id = ?", link))

    conn = store.open_db(target)
    try:
        done = campaigns.delete(conn, None, "july", wait=meanwhile)
    finally:
        conn.close()
    assert seen == [404, [{"n": 1}]]
    assert done["deleted"] == "removed" and done["messages_removed"] == 4
    assert query(target, "SELECT count(*) AS n FROM short_links WHERE id = ?", link) == [{"n": 0}]


def test_a_campaign_touched_while_being_removed_is_retired_instead(sent, server, target):
    app = server()
    link = link_of(target, "july")
    report = sent.json("report", "--by", "campaign")

    def meanwhile(seconds: float) -> None:
        # A postback for one of its links (a network's, late): it is recorded.
        assert app.get(f"/conv?link_id={link}&txn_id=X1&revenue=5").json["status"] == "recorded"

    conn = store.open_db(target)
    try:
        done = campaigns.delete(conn, None, "july", wait=meanwhile)
    finally:
        conn.close()
    assert done == {
        "campaign": "july",
        "deleted": "retired",
        "messages_removed": 0,
        "clicks": 0,
        "conversions": 1,
        "refunds_waiting": 0,
    }
    # Nothing it recorded went: its sent, its messages and links, the new conversion.
    (july,) = [r for r in sent.json("report", "--by", "campaign") if r["campaign"] == "july"]
    (before,) = [r for r in report if r["campaign"] == "july"]
    assert july == before | {"unattributed_conversions": 1, "unattributed_revenue": "5.00"}
    assert query(target, "SELECT count(*) AS n FROM short_links WHERE id = ?", link) == [{"n": 1}]
    assert [c["name"] for c in sent.json("campaign", "list")] == ["june"]


def test_names_that_look_like_markup_are_printed_as_written(cli, tmp_path):
    """A campaign, list or account named like Rich markup ('[/]boom') is text: no traceback
    after the command did its work."""
    cli("account", "create", "[b]acme")
    cli("domain", "add", "go.acme.test", "--account", "[b]acme")
    cli("offer", "create", "S", "--url", "https://shop.example/")
    created = cli("list", "create", "[/]vip").stderr
    assert "[/]vip" in created
    (tmp_path / "c.csv").write_text("phone\n+12025550143\n", encoding="utf-8")
    cli("contacts", "import", "[/]vip", tmp_path / "c.csv")
    (tmp_path / "m.txt").write_text("Hi {{link1}}", encoding="utf-8")
    cli("shorten", tmp_path / "m.txt", "--list", "[/]vip", "--link", "link1=S",
        "--campaign", "[/]boom", "-o", tmp_path / "out.csv")  # fmt: skip
    assert "Campaign [/]boom" in cli("campaign", "show", "[/]boom").stdout
    written = cli("campaign", "outbox", "[/]boom", "-o", tmp_path / "again.csv").stderr
    assert "messages of [/]boom" in written
    assert "Deleted campaign [/]boom" in cli("campaign", "delete", "[/]boom").stderr


@pytest.mark.slow  # (a removal waits campaigns.GRACE_SECONDS)
def test_a_removed_campaigns_message_ids_are_never_given_again(sent, target, tmp_path):
    """A gateway's delivery report or a postback naming a removed campaign's message must not
    land on a newer one: the next campaign's messages are numbered above the removed ones."""
    newest = query(target, "SELECT max(id) AS id FROM messages")[0]["id"]
    assert sent.json("campaign", "delete", "july")["messages_removed"] == 4
    sent(*("shorten", "a.txt", "--list", "vip", "--campaign", "august"),
         *("--link", "link1=Summer Sale", "--link", "link2=TVs", "-o", "august.csv"))  # fmt: skip
    (first,) = query(target, "SELECT min(m.id) AS id FROM messages m JOIN campaigns c"
                     " ON c.id = m.campaign_id WHERE c.name = 'august'")  # fmt: skip
    assert first["id"] == newest + 1
    # a report for july's messages finds none of them
    (tmp_path / "dlr.csv").write_text(
        f"message_id,delivered_at,status\n{newest},2026-11-30T09:00:00Z,undelivered\n",
        encoding="utf-8",
    )
    sent("receipts", "import", "dlr.csv")
    (august,) = [r for r in sent.json("report") if r["campaign"] == "august"]
    assert (august["delivered"], august["undelivered"]) == (0, 0)
