"""Opt-outs (#14): the account's suppression list (`trackly optout add|import|list|remove`), and
every shorten honouring it: a list send skips the numbers that opted out (no message, no link,
not in the outbox, not counted as sent), a one-off message to one is refused, in the core's
shorten itself (the path the API's shorten takes too). On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from conftest import query

from trackly_cli.core import optouts, shorten, store
from trackly_cli.core.errors import Conflict

CONTACTS = (
    "phone,first_name\n+1 202 555 0143,Ann\n(202) 555-0144,Bob\n202.555.0145,Cy\n"
    "+44 7911 123456,Dee\n"
)
TEMPLATE = "Hi {{first_name|there}}! {{link1}} Reply STOP to opt out"
LINK = ("--link", "link1=Summer Sale")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> str | Path:
    """The store every command of the test uses: the test's SQLite file, or a fresh PostgreSQL
    database (TRACKLY_DB names it)."""
    if request.param == "sqlite":
        return db_path
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("TRACKLY_DB", url)
    return url


@pytest.fixture
def shop(database, acme, tmp_path: Path):
    """acme with list vip of 4 contacts (Ann, Bob, Cy, Dee) and the template msg.txt."""
    (tmp_path / "c.csv").write_text(CONTACTS, encoding="utf-8")
    acme("list", "create", "vip")
    acme("contacts", "import", "vip", tmp_path / "c.csv")
    (tmp_path / "msg.txt").write_text(TEMPLATE, encoding="utf-8")
    return acme


def rows(database, sql: str = "SELECT * FROM optouts ORDER BY phone", *params) -> list[dict]:
    return query(database, sql, *params)


def count(database, table: str) -> int:
    return query(database, f"SELECT count(*) AS n FROM {table}")[0]["n"]


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- add -----------------------------------------------------------------------------------------


def test_add_normalises_numbers_and_is_idempotent(shop, database):
    first = shop.json("optout", "add", "(202) 555-0144", "+44 7911 123456", "202.555.0144")
    assert first == {"account": "acme", "added": ["+12025550144", "+447911123456"], "already": []}
    again = shop("optout", "add", "+1 202 555 0144", "+1 202 555 0199", "--keyword", "quit")
    assert (
        "Added 1 number(s) to the opt-out list of account acme; 1 already opted out."
        in again.stderr
    )
    found = {r["phone"]: r for r in rows(database)}
    assert sorted(found) == ["+12025550144", "+12025550199", "+447911123456"]
    assert found["+12025550144"]["keyword"] == "STOP"  # as first recorded
    assert found["+12025550199"]["keyword"] == "QUIT"
    assert {r["source"] for r in found.values()} == {"cli"}
    assert all(r["opted_out_at"].endswith("Z") for r in found.values())
    # A number written without a country code, with --country.
    shop("optout", "add", "07911 123457", "--country", "GB")
    assert rows(database, "SELECT phone FROM optouts WHERE phone LIKE '+44%' ORDER BY phone") == [
        {"phone": "+447911123456"},
        {"phone": "+447911123457"},
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("+12025550144", "12345"), "Error: '12345': not a valid phone number (nothing was added)"),
        (("not a phone",), "Error: 'not a phone': not a phone number (nothing was added)"),
        (("+12025550144", "--country", "XX"), "--country 'XX' is not a two-letter country code"),
        (("+12025550144", "--keyword", "  "), "Error: --keyword is empty"),
        (("+12025550144", "--keyword", "x" * 41), "is not a word of up to 40 letters"),
        (("+12025550144", "--account", "nope"), "Error: no account 'nope'"),
    ],
)
def test_add_refuses_bad_input_and_writes_nothing(shop, database, args, message):
    assert message in shop.error("optout", "add", *args)
    assert count(database, "optouts") == 0


def test_add_without_a_number_is_a_usage_error(shop, database):
    result = shop("optout", "add", code=2)
    assert "Missing argument" in result.stderr
    assert count(database, "optouts") == 0


def test_opt_outs_belong_to_their_account(shop, database, tmp_path):
    shop("account", "create", "other")
    shop("optout", "add", "+12025550144", "--account", "other")
    assert shop.json("optout", "list", "--account", "acme") == []
    assert [r["phone"] for r in shop.json("optout", "list", "--account", "other")] == [
        "+12025550144"
    ]
    # acme's shorten to Bob is not suppressed by another account's opt-out.
    summary = shop.json("shorten", "msg.txt", "--list", "vip", *LINK, "--account", "acme")
    assert (summary["recipients"], summary["skipped_optouts"]) == (4, 0)


# -- import --------------------------------------------------------------------------------------

TWILIO = (
    "From,To,Body,Status,DateSent,Direction\n"
    "+12025550144,+18005550100,STOP,received,2026-11-30T08:00:00Z,inbound\n"
    "+12025550143,+18005550100,Thanks! See you,received,2026-11-30T08:01:00Z,inbound\n"
    "+18005550100,+12025550145,Reply STOP to opt out,delivered,2026-11-30T08:01:30Z,outbound-api\n"
    "12345,+18005550100,stop,received,2026-11-30T08:02:00Z,inbound\n"
    '+12025550199, +18005550100,  Stop all! ,received,"Mon, 30 Nov 2026 07:00:00 +0000",inbound\n'
    "+12025550199,+18005550100,UNSUBSCRIBE,received,2026-11-30T06:00:00Z,inbound\n"
    "+12025550146,+18005550100,end.,received,yesterday,inbound\n"
    "\n"
    "447911123456,+18005550100,Opt-Out,received,1796025600,inbound\n"
)


def test_import_takes_the_opt_out_rows_of_a_gateway_export(shop, database, tmp_path):
    shop("optout", "add", "+447911123456")  # (already on the list: stays as it was)
    result = shop("optout", "import", write(tmp_path / "twilio.csv", TWILIO))
    assert result.stderr.splitlines() == [
        "Warning: line 5: '12345': not a valid phone number (skipped)",
        "Warning: line 8: 'yesterday': 'yesterday' is not a time (skipped)",
        "Read 8 rows: imported 2, already 2, skipped 2 (not opt-outs), bad 2.",
    ]
    found = {r["phone"]: r for r in rows(database)}
    assert sorted(found) == ["+12025550144", "+12025550199", "+447911123456"]
    assert (found["+12025550144"]["keyword"], found["+12025550144"]["opted_out_at"]) == (
        "STOP",
        "2026-11-30T08:00:00.000000Z",
    )
    # A number twice: its earliest opt-out is kept.
    assert (found["+12025550199"]["keyword"], found["+12025550199"]["opted_out_at"]) == (
        "UNSUBSCRIBE",
        "2026-11-30T06:00:00.000000Z",
    )
    assert found["+12025550144"]["source"] == "import:twilio.csv"
    assert found["+447911123456"]["source"] == "cli"
    again = shop.json("optout", "import", tmp_path / "twilio.csv")
    assert {k: again[k] for k in ("rows", "imported", "already", "not_optouts", "invalid")} == {
        "rows": 8,
        "imported": 0,
        "already": 4,
        "not_optouts": 2,
        "invalid": 2,
    }
    assert again["columns"] == {
        "phone": "From",
        "body": "Body",
        "time": "DateSent",
        "direction": "Direction",
    }
    assert len(rows(database)) == 3


def test_import_reads_other_gateways_headers(shop, database, tmp_path):
    vonage = write(
        tmp_path / "vonage.csv",
        "msisdn,to,text,keyword,message-timestamp\n"
        "447911123456,12015550100,stop,STOP,2026-11-30 08:00:00\n"
        "12025550143,12015550100,Stop please call me,STOP,2026-11-30 08:05:00\n",
    )
    assert "imported 1, already 0, skipped 1 (not opt-outs), bad 0." in (
        shop("optout", "import", vonage).stderr
    )
    assert rows(database, "SELECT phone, keyword, opted_out_at FROM optouts") == [
        {"phone": "+447911123456", "keyword": "STOP", "opted_out_at": "2026-11-30T08:00:00.000000Z"}
    ]


def test_a_plain_list_of_numbers_opts_out_every_row(shop, database, tmp_path):
    plain = write(
        tmp_path / "dnc.csv",
        b"\xef\xbb\xbfMobile Number;Name\r\n(202) 555-0143;Ann\r\n+1 202 555 0145;Cy\r\n",
    )
    # (a ; file is read as one column: no phone column, one line, nothing written)
    assert "the CSV header has no phone column" in shop.error("optout", "import", plain)
    write(plain, b"\xef\xbb\xbfMobile Number,Name\r\n(202) 555-0143,Ann\r\n+1 202 555 0145,Cy\r\n")
    assert "imported 2, already 0, skipped 0 (not opt-outs), bad 0." in (
        shop("optout", "import", plain).stderr
    )
    found = rows(database)
    assert [(r["phone"], r["keyword"]) for r in found] == [
        ("+12025550143", None),
        ("+12025550145", None),
    ]
    assert all(r["opted_out_at"] == r["created_at"] for r in found)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("To,Body,DateSent\n+18005550100,STOP,2026-11-30\n", "the CSV header has no phone column"),
        ("", "the CSV file is empty"),
        ("From,Body\n", "the CSV file has a header but no rows"),
        ('From,Body\n+12025550144,STOP\n+12025550143,"STOP\n', "unexpected end of data"),
        (b"From,Body\n+12025550144,STOP\n+1202555\xff0143,STOP\n", "line 3 is not UTF-8"),
    ],
)
def test_import_refuses_bad_files_and_writes_nothing(shop, database, tmp_path, content, message):
    bad = write(tmp_path / "bad.csv", content)
    assert message in shop.error("optout", "import", bad)
    assert count(database, "optouts") == 0


def test_import_of_a_missing_file_is_one_line(shop, database, tmp_path):
    assert "cannot read" in shop.error("optout", "import", tmp_path / "missing.csv")
    assert count(database, "optouts") == 0


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("STOP", "STOP"),
        (" stop ", "STOP"),
        ("Stop.", "STOP"),
        ("stop all", "STOPALL"),
        ("Unsubscribe!", "UNSUBSCRIBE"),
        ("cancel", "CANCEL"),
        ("END", "END"),
        ("quit", "QUIT"),
        ("opt-out", "OPTOUT"),
        ("Revoke", "REVOKE"),
        ("STOP texting me", None),
        ("start", None),
        ("", None),
        ("stopp", None),
    ],
)
def test_opt_out_keywords(text, keyword):
    assert optouts.keyword_of(text) == keyword


# -- list and remove -----------------------------------------------------------------------------


def test_list_in_every_format(shop, database, tmp_path):
    assert "No opt-outs." in shop("optout", "list").stderr
    shop("optout", "add", "+12025550144", "--keyword", "STOP")
    table = shop("optout", "list").stdout
    assert "+12025550144" in table and "STOP" in table and "cli" in table
    listed = shop.json("optout", "list")
    assert [(r["phone"], r["keyword"], r["source"]) for r in listed] == [
        ("+12025550144", "STOP", "cli")
    ]
    assert listed[0]["opted_out_at"].endswith("Z")
    shop("optout", "list", "--format", "csv", "--output", tmp_path / "o.csv")
    written = list(csv.DictReader(io.StringIO((tmp_path / "o.csv").read_text())))
    assert [r["phone"] for r in written] == ["+12025550144"]
    assert "exists" in shop.error("optout", "list", "--output", tmp_path / "o.csv")


def test_remove_takes_numbers_off_and_refuses_unknown_ones(shop, database):
    shop("optout", "add", "+12025550144", "+12025550145")
    message = shop.error("optout", "remove", "(202) 555-0144", "+12025550199")
    assert message == (
        "Error: +12025550199 is not on the opt-out list of account acme (nothing was removed)"
    )
    assert "not a valid phone number (nothing was removed)" in shop.error(
        "optout", "remove", "+12025550144", "12345"
    )
    assert count(database, "optouts") == 2
    result = shop("optout", "remove", "(202) 555-0144")
    assert "Removed 1 number(s) from the opt-out list: +12025550144." in result.stderr
    assert [r["phone"] for r in rows(database)] == ["+12025550145"]
    assert shop("optout", "remove", code=2)


# -- shorten honours them ------------------------------------------------------------------------


def test_a_list_send_skips_opted_out_members(shop, database, tmp_path):
    shop("optout", "add", "+12025550144", "+447911123456", "+12025550199")
    result = shop("shorten", "msg.txt", "--list", "vip", *LINK, "--campaign", "june")
    assert "skipped     2 opted-out (no message)" in result.stdout
    assert "recipients  2" in result.stdout
    outbox = list(csv.DictReader(io.StringIO((tmp_path / "june.csv").read_text())))
    assert [r["phone"] for r in outbox] == ["+12025550143", "+12025550145"]
    sent = query(
        database,
        "SELECT c.phone FROM messages m JOIN contacts c ON c.id = m.contact_id ORDER BY m.id",
    )
    assert [r["phone"] for r in sent] == ["+12025550143", "+12025550145"]
    linked = query(
        database,
        "SELECT DISTINCT c.phone FROM short_links l JOIN contacts c ON c.id = l.contact_id"
        " ORDER BY c.phone",
    )
    assert [r["phone"] for r in linked] == ["+12025550143", "+12025550145"]
    report = shop.json("report", "--campaign", "june")
    assert report[0]["sent"] == 2
    # Taken off the list, a number gets messages again.
    shop("optout", "remove", "+12025550144")
    summary = shop.json("shorten", "msg.txt", "--list", "vip", *LINK, "--campaign", "july")
    assert (summary["recipients"], summary["skipped_optouts"], summary["links"]) == (3, 1, 3)


def test_a_send_without_opt_outs_says_nothing_of_them(shop, tmp_path):
    result = shop("shorten", "msg.txt", "--list", "vip", *LINK, "--campaign", "june")
    assert "skipped" not in result.stdout
    assert shop.json("report", "--campaign", "june")[0]["sent"] == 4


def test_a_list_whose_members_all_opted_out_sends_nothing(shop, database, tmp_path):
    shop("optout", "add", "+12025550143", "+12025550144", "+12025550145", "+447911123456")
    message = shop.error("shorten", "msg.txt", "--list", "vip", *LINK, "--campaign", "june")
    assert message == "Error: every member of list 'vip' (4) has opted out: nothing to send"
    assert not (tmp_path / "june.csv").exists()
    for table in ("messages", "short_links", "campaigns", "creatives"):
        assert count(database, table) == 0, table


def test_a_merge_field_missing_only_for_opted_out_members_is_no_problem(shop, tmp_path):
    write(tmp_path / "strict.txt", "Hi {{first_name}} {{link1}}")
    write(tmp_path / "noname.csv", "phone,first_name\n+12025550146,\n")
    shop("contacts", "import", "vip", tmp_path / "noname.csv")
    assert "have no first_name" in shop.error("shorten", "strict.txt", "--list", "vip", *LINK)
    shop("optout", "add", "+12025550146")
    assert shop.json("shorten", "strict.txt", "--list", "vip", *LINK)["recipients"] == 4


def test_a_chunked_send_skips_opted_out_members_in_every_chunk(shop, database, tmp_path):
    numbers = [f"+1202555{i:04d}" for i in range(1000, 3500)]
    write(tmp_path / "many.csv", "phone\n" + "\n".join(numbers) + "\n")
    shop("list", "create", "many")
    shop("contacts", "import", "many", tmp_path / "many.csv")
    opted = numbers[::7]  # spread over every chunk (the first is 1,000 members)
    shop("optout", "add", *opted)
    summary = shop.json("shorten", "msg.txt", "--list", "many", *LINK, "--campaign", "big")
    assert summary["skipped_optouts"] == len(opted)
    assert summary["recipients"] == len(numbers) - len(opted)
    outbox = list(csv.DictReader(io.StringIO((tmp_path / "big.csv").read_text())))
    assert len(outbox) == len(numbers) - len(opted)
    assert not {r["phone"] for r in outbox} & set(opted)
    assert shop.json("report", "--campaign", "big")[0]["sent"] == len(numbers) - len(opted)


def test_an_opt_out_recorded_while_a_send_runs_holds_from_the_next_chunk(shop, database, tmp_path):
    numbers = [f"+1202555{i:04d}" for i in range(1000, 3500)]
    write(tmp_path / "many.csv", "phone\n" + "\n".join(numbers) + "\n")
    shop("list", "create", "many")
    shop("contacts", "import", "many", tmp_path / "many.csv")
    conn = store.open_db(database)
    try:
        plan = shorten.prepare(
            conn, account_ref="acme", sources=[shorten.TemplateSource("t", TEMPLATE)],
            bindings=["link1=Summer Sale"], list_ref="many", campaign="big",
        )  # fmt: skip
        late = []

        def progress(done: int) -> None:
            if not late:  # after the first chunk (1,000 members): the last member opts out
                late.append(numbers[-1])
                if isinstance(database, Path):  # (SQLite: the send holds the write lock)
                    optouts.add(conn, "acme", late)
                else:
                    other = store.open_db(database)
                    try:
                        optouts.add(other, "acme", late)
                    finally:
                        other.close()

        summary = shorten.run(conn, plan, outbox=tmp_path / "big.csv", progress=progress)
    finally:
        conn.close()
    assert late and (summary.recipients, summary.skipped_optouts) == (len(numbers) - 1, 1)
    outbox = list(csv.DictReader(io.StringIO((tmp_path / "big.csv").read_text())))
    assert numbers[-1] not in {r["phone"] for r in outbox}
    assert len(outbox) == len(numbers) - 1


def test_a_one_off_message_to_an_opted_out_number_is_refused(shop, database, tmp_path):
    shop("optout", "add", "+12025550144")
    message = shop.error("shorten", "msg.txt", *LINK, "--phone", "(202) 555-0144")
    assert message.startswith("Error: +12025550144 has opted out (STOP, 20")
    assert message.endswith("): no message is made for it")
    for table in ("messages", "short_links", "creatives"):
        assert count(database, table) == 0, table
    # To a number that did not opt out: its message, filled from its contact.
    made = shop.json("shorten", "msg.txt", *LINK, "--phone", "202.555.0143")
    assert made["phone"] == "+12025550143"
    assert made["text"].startswith("Hi Ann! https://go.acme.test/")
    assert query(database, "SELECT c.phone FROM messages m JOIN contacts c ON c.id = m.contact_id")
    # To a number that is no contact: a message for it, without contact.
    made = shop.json("shorten", "msg.txt", *LINK, "--phone", "+1 202 555 0199")
    assert made["text"].startswith("Hi there! ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--phone", "12345"), "--phone '12345': not a valid phone number"),
        (("--phone", "+12025550143", "--list", "vip"), "--phone is for a one-off message"),
        (("--phone", "+12025550143", "--country", "ZZ"), "--country 'ZZ'"),
    ],
)
def test_bad_phones_of_a_shorten_are_one_line(shop, database, args, message):
    assert message in shop.error("shorten", "msg.txt", *LINK, *args)
    assert count(database, "messages") == 0


def test_the_core_shorten_honours_opt_outs_recorded_after_it_was_checked(shop, database):
    """The API's shorten calls core.shorten as the CLI does: the check is there, at the moment
    the messages are written, not only when the request is checked."""
    conn = store.open_db(database)
    try:
        source = [shorten.TemplateSource("api", TEMPLATE)]
        one = shorten.prepare(
            conn, account_ref="acme", sources=source, bindings=["link1=Summer Sale"],
            phone="+12025550144",
        )  # fmt: skip
        listed = shorten.prepare(
            conn, account_ref="acme", sources=source, bindings=["link1=Summer Sale"],
            list_ref="vip", campaign="api",
        )  # fmt: skip
        assert listed.recipients == 4
        optouts.add(conn, "acme", ["+12025550144"], source="api")
        with pytest.raises(Conflict, match=r"\+12025550144 has opted out"):
            shorten.run(conn, one)
        summary = shorten.run(conn, listed, outbox=Path("api.csv"))
        assert (summary.recipients, summary.skipped_optouts) == (3, 1)
        assert summary.as_dict()["skipped_optouts"] == 1
        with pytest.raises(Conflict, match="has opted out"):
            shorten.prepare(
                conn, account_ref="acme", sources=source, bindings=["link1=Summer Sale"],
                phone="202-555-0144",
            )  # fmt: skip
    finally:
        conn.close()
    assert count(database, "messages") == 3


# -- contact show, db copy -----------------------------------------------------------------------


def test_contact_show_says_a_contact_opted_out(shop, database):
    assert "opted out" not in shop("contact", "show", "+12025550143").stdout
    assert shop.json("contact", "show", "+12025550143")["opted_out"] is None
    shop("optout", "add", "+12025550144", "--keyword", "unsubscribe")
    shown = shop("contact", "show", "(202) 555-0144").stdout
    assert "opted out      UNSUBSCRIBE, 20" in shown
    record = shop.json("contact", "show", "+12025550144")["opted_out"]
    assert (record["keyword"], record["source"]) == ("UNSUBSCRIBE", "cli")


def test_db_copy_keeps_the_opt_outs(acme, db_path, pg_url):
    acme("optout", "add", "+12025550144", "+12025550199")
    acme("db", "copy", db_path, pg_url)
    assert [r["phone"] for r in rows(pg_url)] == ["+12025550144", "+12025550199"]
    assert [r["phone"] for r in rows(db_path)] == ["+12025550144", "+12025550199"]
