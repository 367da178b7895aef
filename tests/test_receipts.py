"""Delivery receipts (#18): `trackly receipts import` reads a gateway's delivery report (plain,
Twilio, Vonage, Telnyx), records each message's delivery state and time, reports count
delivered and undelivered messages, and the clicks of those messages are judged again with the
timing signal measured from delivery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import DESKTOP_HEADERS, HUMAN_HEADERS, execute, query

from trackly_cli.core import clock, receipts
from trackly_cli.core.errors import InvalidInput

DESKTOP, PHONE = DESKTOP_HEADERS, HUMAN_HEADERS
SENT = "2026-01-01T00:00:00.000000Z"  # when the campaign fixture's messages were made


@pytest.fixture
def messages(campaign) -> list[dict]:
    """The campaign's three messages: {'id', 'phone', 'link'} (link1's id)."""
    return [
        {"id": x["message_id"], "phone": x["phone"], "link": x["id"]}
        for x in campaign["by_slot"]["link1"]
    ]


def write(tmp_path, text: str, name: str = "report.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def states(db_path) -> list[tuple]:
    return [
        tuple(r.values())
        for r in query(
            db_path,
            "SELECT id, delivery_status, delivery_at, delivery_detail FROM messages ORDER BY id",
        )
    ]


def campaign_row(acme) -> dict:
    (row,) = acme.json("report", "--by", "campaign")
    return row


def test_a_plain_report_by_message_id_and_by_phone(acme, messages, db_path, tmp_path):
    a, b, c = messages
    report = write(
        tmp_path,
        "message_id,phone,delivered_at,status\n"
        f"{a['id']},,2026-01-01T00:01:00Z,delivered\n"
        f",{b['phone']},2026-01-01 00:02:00,undelivered\n"
        f",(202) 555-{c['phone'][-4:]},,queued\n",
    )
    summary = acme.json("receipts", "import", report)
    assert summary | {"clicks_judged_again": 0} == {
        "format": "plain",
        "rows": 3,
        "recorded": 3,
        "delivered": 1,
        "failed": 1,
        "pending": 1,
        "unchanged": 0,
        "unknown_messages": 0,
        "inbound": 0,
        "invalid": 0,
        "clicks_judged_again": 0,
        "clicks_now_bots": 0,
        "clicks_now_human": 0,
    }
    assert states(db_path) == [
        (a["id"], "delivered", "2026-01-01T00:01:00.000000Z", "delivered"),
        (b["id"], "failed", "2026-01-01T00:02:00.000000Z", "undelivered"),
        (c["id"], "pending", None, "queued"),
    ]
    row = campaign_row(acme)
    assert (row["sent"], row["delivered"], row["undelivered"]) == (3, 1, 1)
    by_offer = {r["offer"]: r for r in acme.json("report", "--by", "offer")}
    for offer in ("Summer Sale", "(plain URL)"):
        row = by_offer[offer]
        assert (row["sent"], row["delivered"], row["undelivered"]) == (3, 1, 1), offer
    (sale,) = acme.json("report", "--by", "campaign", "--offer", "Summer Sale")
    assert (sale["sent"], sale["delivered"], sale["undelivered"]) == (3, 1, 1)
    journey = acme.json("contact", "show", b["phone"])
    assert [(m["delivery"], m["delivery_at"]) for m in journey["messages"]] == [
        ("failed", "2026-01-01T00:02:00.000000Z")
    ]
    assert "failed" in acme("contact", "show", b["phone"]).stdout
    by_message = acme.json("report", "--by", "message", "--campaign", "spring")
    assert [(r["delivered"], r["undelivered"]) for r in by_message] == [(1, 0), (0, 1), (0, 0)]


def test_the_table_shows_delivery_columns_once_a_report_was_imported(acme, messages, tmp_path):
    before = acme("report", "--by", "campaign", "--format", "table", "--wide").stdout
    assert "delivered" not in before
    acme(
        "receipts",
        "import",
        write(tmp_path, f"message_id,delivered_at,status\n{messages[0]['id']},1767225660,sent\n"),
    )
    acme(
        "receipts",
        "import",
        write(tmp_path, f"phone,delivered_at,status\n{messages[1]['phone']},,failed\n", "b.csv"),
    )
    after = acme("report", "--by", "campaign", "--format", "table", "--wide").stdout
    assert "delivered" in after and "undelivered" in after
    # (the compact default keeps to 80 columns: there they are for --columns to ask)
    assert "deliv" not in acme("report", "--by", "campaign").stdout
    asked = acme("report", "--by", "campaign", "--columns", "sent,deliv,undeliv").stdout
    assert " deliv " in asked and " undeliv" in asked


def test_twilio_export_by_body_and_by_phone(acme, messages, campaign, db_path, tmp_path):
    a, b, _ = messages
    (text_a,) = query(db_path, "SELECT body FROM messages WHERE id = ?", a["id"])
    body = text_a["body"].replace('"', '""')
    report = write(
        tmp_path,
        "From,To,Body,Status,SentDate,ApiVersion,NumSegments,ErrorCode,AccountSid,Sid,Direction\n"
        f'+15550001111,{a["phone"]},"{body}",delivered,2026-01-01 00:00:30,2010-04-01,1,0,AC1,'
        "SM1,outbound-api\n"
        f"+15550001111,{b['phone']},Hi,undelivered,"
        '"Thu, 01 Jan 2026 00:00:40 +0000",2010-04-01,1,30003,AC1,SM2,outbound-api\n'
        "+15550001111,+15550001111,STOP,received,2026-01-01 00:05:00,2010-04-01,1,0,AC1,"
        "SM3,inbound\n",
    )
    summary = acme.json("receipts", "import", report)
    assert (summary["format"], summary["recorded"], summary["inbound"]) == ("Twilio", 2, 1)
    found = {r[0]: r[1:] for r in states(db_path)}
    assert found[a["id"]] == ("delivered", "2026-01-01T00:00:30.000000Z", "delivered")
    assert found[b["id"]] == ("failed", "2026-01-01T00:00:40.000000Z", "undelivered (30003)")


def test_vonage_and_telnyx_reports(acme, messages, db_path, tmp_path):
    a, b, c = messages
    vonage = write(
        tmp_path,
        "msisdn,to,network-code,messageId,price,status,scts,err-code,message-timestamp\n"
        f"{a['phone'][1:]},AcmeShop,310090,0A0000001,0.0333,delivered,2601010001,0,"
        "2026-01-01 00:01:00\n"
        f"{b['phone'][1:]},AcmeShop,310090,0A0000002,0.0333,expired,2601010001,5,"
        "2026-01-01 00:01:05\n",
    )
    summary = acme.json("receipts", "import", vonage)
    assert (summary["format"], summary["delivered"], summary["failed"]) == ("Vonage", 1, 1)
    telnyx = write(
        tmp_path,
        "id,direction,from,to,text,status,sent_at,completed_at\n"
        f"40317,outbound,+15550001111,{c['phone']},hello,delivered,"
        "2026-01-01T00:00:58Z,2026-01-01T00:01:02.250+00:00\n",
        "telnyx.csv",
    )
    summary = acme.json("receipts", "import", telnyx)
    assert (summary["format"], summary["delivered"]) == ("Telnyx", 1)
    found = {r[0]: r[1:3] for r in states(db_path)}
    assert found == {
        a["id"]: ("delivered", "2026-01-01T00:01:00.000000Z"),
        b["id"]: ("failed", "2026-01-01T00:01:05.000000Z"),
        c["id"]: ("delivered", "2026-01-01T00:01:02.250000Z"),
    }


def test_bad_rows_are_reported_by_line_and_unknown_messages_counted(
    acme, messages, db_path, tmp_path
):
    a, b, _ = messages
    report = write(
        tmp_path,
        "phone,message_id,delivered_at,status\n"
        f"{a['phone']},,2026-01-01T00:01:00Z,delivered\n"  # line 2: fine
        f"{b['phone']},,yesterday,delivered\n"  # 3: not a time
        f"{b['phone']},,,delivered\n"  # 4: delivered needs its time
        f"{b['phone']},,2026-01-01T00:01:00Z,smoke signals\n"  # 5: unknown status
        "555,,2026-01-01T00:01:00Z,delivered\n"  # 6: not a phone number
        ",abc,2026-01-01T00:01:00Z,delivered\n"  # 7: not a message id
        "+12025550199,,2026-01-01T00:01:00Z,delivered\n"  # 8: nobody we sent to
        ",999999,2026-01-01T00:01:00Z,delivered\n",  # 9: no such message
    )
    result = acme("receipts", "import", report)
    for line, words in (
        (3, "'yesterday' is not a time"),
        (4, "needs its time"),
        (5, "unknown delivery status 'smoke signals'"),
        (6, "not a valid phone number"),
        (7, "message_id 'abc' is not a number"),
    ):
        assert f"line {line}: " in result.stderr and words in result.stderr, (line, result.stderr)
    assert "1 messages updated" in result.stderr
    assert "2 about no message of the account" in result.stderr
    assert "5 invalid" in result.stderr
    before = states(db_path)
    message = acme.error("receipts", "import", report, "--strict")
    assert "line 3:" in message and "nothing was imported" in message
    assert states(db_path) == before


def test_a_file_no_gateway_wrote_is_refused_with_the_formats_named(acme, messages, tmp_path):
    message = acme.error("receipts", "import", write(tmp_path, "name,when\nAnn,today\n"))
    assert "cannot tell which gateway wrote this report (its columns: name, when)" in message
    assert "Twilio" in message and "Vonage" in message and "Telnyx" in message
    assert "empty" in acme.error("receipts", "import", write(tmp_path, "", "empty.csv"))
    assert "cannot read" in acme.error("receipts", "import", tmp_path / "missing.csv")
    assert "no status column" in acme.error(
        "receipts", "import", write(tmp_path, "phone,delivered_at\n+12025550143,\n", "x.csv")
    )


def test_importing_again_or_an_older_state_changes_nothing(acme, messages, db_path, tmp_path):
    a, b, _ = messages
    newer = write(
        tmp_path,
        "message_id,delivered_at,status\n"
        f"{a['id']},2026-01-01T00:00:10Z,sent\n"  # folded: the final state of the file wins
        f"{a['id']},2026-01-01T00:01:00Z,delivered\n"
        f"{b['id']},2026-01-01T00:01:00Z,failed\n",
    )
    first = acme.json("receipts", "import", newer)
    assert (first["recorded"], first["unchanged"]) == (2, 1)
    row = campaign_row(acme)
    again = acme.json("receipts", "import", newer)
    assert (again["recorded"], again["unchanged"]) == (0, 3)
    older = write(
        tmp_path,
        f"message_id,delivered_at,status\n{a['id']},2026-01-01T00:00:05Z,queued\n",
        "older.csv",
    )
    assert acme.json("receipts", "import", older)["recorded"] == 0
    assert campaign_row(acme) == row
    # a later final state does replace an earlier one, and the counters move with it
    later = write(
        tmp_path,
        f"message_id,delivered_at,status\n{b['id']},2026-01-01T00:09:00Z,delivered\n",
        "later.csv",
    )
    assert acme.json("receipts", "import", later)["recorded"] == 1
    row = campaign_row(acme)
    assert (row["delivered"], row["undelivered"]) == (2, 0)


def test_campaign_narrows_a_phone_to_that_campaigns_message(
    acme, campaign, messages, db_path, tmp_path
):
    (tmp_path / "later.txt").write_text("Again {{link1}}", encoding="utf-8")
    acme(
        "shorten", "later.txt", "--list", "vip", "--link", "link1=Summer Sale", "--campaign", "fall"
    )
    phone = messages[0]["phone"]
    report = write(tmp_path, f"phone,delivered_at,status\n{phone},{clock.now_text()},delivered\n")
    acme("receipts", "import", report, "--campaign", "spring")
    (row,) = query(
        db_path,
        "SELECT k.name FROM messages m JOIN campaigns k ON k.id = m.campaign_id"
        " WHERE m.delivery_status = 'delivered'",
    )
    assert row["name"] == "spring"
    # without --campaign, the phone's newest message made before the receipt's time
    acme("receipts", "import", write(tmp_path, report.read_text(), "again.csv"))
    names = query(
        db_path,
        "SELECT k.name FROM messages m JOIN campaigns k ON k.id = m.campaign_id"
        " WHERE m.delivery_status = 'delivered' ORDER BY k.name",
    )
    assert [r["name"] for r in names] == ["fall", "spring"]
    assert "no campaign" in acme.error("receipts", "import", report, "--campaign", "nope").lower()


def test_clicks_soon_after_delivery_are_judged_again(acme, messages, webapp, db_path, tmp_path):
    """A desktop browser on an SMS link is one weak signal: alone it counts. Once a receipt
    shows the hit came a fraction of a second after delivery (a second weak signal), the hit
    is a scanner's and its MessageClick goes; a phone's click as fast stays a person's."""
    app = webapp()
    scanned, tapped, _ = messages
    app.get(f"/{scanned['link']}", headers=DESKTOP, extra_environ={"REMOTE_ADDR": "34.1.2.3"})
    app.get(f"/{tapped['link']}", headers=PHONE, extra_environ={"REMOTE_ADDR": "198.51.100.23"})
    assert campaign_row(acme)["unique_clicks"] == 2
    clicked = {
        r["message_id"]: clock.from_text(r["clicked_at"])
        for r in query(db_path, "SELECT message_id, clicked_at FROM message_short_link_clicks")
    }
    report = write(
        tmp_path,
        "message_id,delivered_at,status\n"
        + "".join(
            f"{m['id']},{clock.to_text(clicked[m['id']] - timedelta(seconds=0.4))},delivered\n"
            for m in (scanned, tapped)
        ),
    )
    summary = acme.json("receipts", "import", report)
    assert (summary["clicks_judged_again"], summary["clicks_now_bots"]) == (2, 1)
    rows = {
        r["message_id"]: r
        for r in query(
            db_path, "SELECT message_id, is_bot, bot_reasons FROM message_short_link_clicks"
        )
    }
    assert rows[scanned["id"]]["is_bot"] == 1
    assert "0.4 s after delivery" in rows[scanned["id"]]["bot_reasons"]
    assert "desktop browser on an SMS link" in rows[scanned["id"]]["bot_reasons"]
    assert rows[tapped["id"]]["is_bot"] == 0
    assert "0.4 s after delivery" in rows[tapped["id"]]["bot_reasons"]  # noted, not enough
    row = campaign_row(acme)
    assert (row["unique_clicks"], row["bot_clicks"], row["delivered"]) == (1, 1, 2)
    assert query(db_path, "SELECT message_id FROM message_clicks") == [{"message_id": tapped["id"]}]


def test_a_click_long_after_delivery_is_left_alone(acme, messages, webapp, db_path, tmp_path):
    app = webapp()
    first = messages[0]
    app.get(f"/{first['link']}", headers=DESKTOP, extra_environ={"REMOTE_ADDR": "34.1.2.3"})
    report = write(
        tmp_path, f"message_id,delivered_at,status\n{first['id']},2026-01-01T00:01:00Z,delivered\n"
    )
    summary = acme.json("receipts", "import", report)
    assert (summary["clicks_judged_again"], summary["clicks_now_bots"]) == (1, 0)
    assert campaign_row(acme)["unique_clicks"] == 1


def test_a_rescan_keeps_what_a_burst_revealed(acme, messages, webapp, db_path):
    """`bots rescan` judges each hit again; a burst's first hits, judged bots by the later
    hits that revealed it, stay bots (they were flipped back to people before)."""
    app = webapp()
    link = messages[0]["link"]
    for ip in ("34.1.2.3", "35.4.5.6", "52.7.8.9"):
        app.get(f"/{link}", headers=DESKTOP, extra_environ={"REMOTE_ADDR": ip})
    before = query(db_path, "SELECT id, is_bot, bot_reasons FROM message_short_link_clicks")
    assert [r["is_bot"] for r in before] == [1, 1, 1]
    result = acme.json("bots", "rescan")
    assert result["to_human"] == 0
    after = query(db_path, "SELECT id, is_bot, bot_reasons FROM message_short_link_clicks")
    assert [r["is_bot"] for r in after] == [1, 1, 1]
    assert "later: 3 IPs on one link within 10 s" in after[0]["bot_reasons"]
    assert query(db_path, "SELECT id FROM message_clicks") == []


def test_receipts_wait_for_an_incomplete_campaign(acme, messages, db_path, tmp_path):
    execute(db_path, "UPDATE campaigns SET building_pid = 1, building_host = 'elsewhere'")
    report = write(
        tmp_path, f"message_id,delivered_at,status\n{messages[0]['id']},{SENT},delivered\n"
    )
    assert acme.json("receipts", "import", report)["unknown_messages"] == 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-01-01T00:01:00Z", "2026-01-01T00:01:00.000000Z"),
        ("2026-01-01T02:01:00+02:00", "2026-01-01T00:01:00.000000Z"),
        ("2026-01-01 00:01:00", "2026-01-01T00:01:00.000000Z"),
        ("2026-01-01 00:01:00 UTC", "2026-01-01T00:01:00.000000Z"),
        ("Thu, 01 Jan 2026 00:01:00 +0000", "2026-01-01T00:01:00.000000Z"),
        ("1767225660", "2026-01-01T00:01:00.000000Z"),
        ("1767225660500", "2026-01-01T00:01:00.500000Z"),
        ("1767225660.25", "2026-01-01T00:01:00.250000Z"),
    ],
)
def test_gateway_times(text, expected):
    assert receipts.parse_time(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "2026-13-01", "Thu, 99 Foo", "1e9", "12.5.1"])
def test_not_times(text):
    with pytest.raises(InvalidInput):
        receipts.parse_time(text)


def test_every_gateway_status_word_has_one_state():
    words = [w for group in receipts.STATUSES.values() for w in group]
    assert len(words) == len(set(words))
    assert receipts.parse_status("DELIVRD") == "delivered"
    assert receipts.parse_status("Delivery-Failed") == "failed"
    assert receipts.parse_status(" accepted ") == "pending"
