"""trackly shorten, end to end: template files, bindings, lists, the outbox CSV, A/B splits, link
ids, every error reported at once, and the rollback on failure — on real SQLite files."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from trackly_cli.core import sms, store

SHORT = re.compile(r"https://go\.acme\.test/([0-9A-Za-z]{7})(?![0-9A-Za-z])")
ANY_SHORT = re.compile(r"https?://[a-z0-9.-]+/([0-9A-Za-z]{7})(?![0-9A-Za-z])")
TEMPLATE = (
    "Hi {{first_name|there}}! Clothing sale: {{link1}} Electronics: {{link2}}"
    " More: https://example.org/info"
)
VIP = [("+12025550143", "Ann"), ("+12025550144", "Bob"), ("+12025550145", "")]
TABLES = ("messages", "short_links", "campaigns", "campaign_variants", "creatives")


# --- helpers ----------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def make_list(cli, name: str, people: list[tuple[str, str]], folder: Path, *extra) -> None:
    """A list with contacts imported from a CSV of phone,first_name."""
    cli("list", "create", name, *extra)
    source = folder / f"contacts-{name}.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "first_name"])
        writer.writerows(people)
    cli("contacts", "import", name, source, *extra)


def many(count: int, start: int = 100) -> list[tuple[str, str]]:
    """`count` valid US numbers (+1 202 555 0100 … are valid for phonenumbers)."""
    return [(f"+1202555{n:04d}", f"P{n}") for n in range(start, start + count)]


def counts(db) -> dict[str, int]:
    return {t: store.scalar(db, f"SELECT count(*) FROM {t}") for t in TABLES}


def read_outbox(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def offer_id(db, name: str) -> int:
    return db.execute("SELECT id FROM offers WHERE name = ?", [name]).fetchone()[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


@pytest.fixture
def vip(acme, tmp_path):
    """acme with a second offer `Electronics` and a list `vip` of 3 contacts (one without a
    first name)."""
    acme("offer", "create", "Electronics", "--url", "https://shop.example/electronics")
    make_list(acme, "vip", VIP, tmp_path)
    return acme


# --- the Must-show scenario ----------------------------------------------------------------


def test_campaign_over_a_list_writes_the_outbox_and_the_links(vip, db, tmp_path):
    write(tmp_path / "msg.txt", TEMPLATE + "\n")
    result = vip(
        "shorten",
        "msg.txt",
        "--list",
        "vip",
        "--link",
        "link1=Summer Sale",
        "--link",
        "link2=Electronics",
        "--campaign",
        "spring",
    )
    assert "spring" in result.stdout

    outbox = tmp_path / "spring.csv"
    header, rows = read_outbox(outbox)
    assert header == ["phone", "message_id", "text", "segments", "encoding"]
    assert len(rows) == 3
    assert sorted(r["phone"] for r in rows) == [p for p, _ in VIP]

    summer, electronics = offer_id(db, "Summer Sale"), offer_id(db, "Electronics")
    campaign = db.execute("SELECT id, name FROM campaigns").fetchall()
    assert len(campaign) == 1 and campaign[0][1] == "spring"
    campaign_id = campaign[0][0]

    all_ids = []
    for row in rows:
        text = row["text"]
        ids = SHORT.findall(text)
        assert len(ids) == 3, text  # link1, link2 and the raw URL, all on go.acme.test
        assert len(set(ids)) == 3
        assert "https://example.org/info" not in text
        name = dict(VIP)[row["phone"]] or "there"
        assert text.startswith(f"Hi {name}! Clothing sale: https://go.acme.test/")
        assert re.fullmatch(
            r"Hi \w+! Clothing sale: https://go\.acme\.test/\w{7} Electronics:"
            r" https://go\.acme\.test/\w{7} More: https://go\.acme\.test/\w{7}",
            text,
        ), text
        all_ids += ids

        message_id = int(row["message_id"])
        contact_id = db.execute(
            "SELECT id FROM contacts WHERE phone = ?", [row["phone"]]
        ).fetchone()[0]
        message = db.execute(
            "SELECT campaign_id, contact_id, variant, body, segments, encoding FROM messages"
            " WHERE id = ?",
            [message_id],
        ).fetchone()
        assert message == (
            campaign_id,
            contact_id,
            "A",
            text,
            int(row["segments"]),
            row["encoding"],
        )

        expected = {
            ids[0]: ("link1", summer, None),
            ids[1]: ("link2", electronics, None),
            ids[2]: ("url1", None, "https://example.org/info"),
        }
        for link_id, (slot, offer, url) in expected.items():
            link = db.execute(
                "SELECT message_id, contact_id, slot, offer_id, url, d.hostname"
                " FROM short_links l JOIN domains d ON d.id = l.domain_id WHERE l.id = ?",
                [link_id],
            ).fetchone()
            assert link == (message_id, contact_id, slot, offer, url, "go.acme.test")

    assert len(set(all_ids)) == 9
    assert db.execute("SELECT count(*), count(DISTINCT id) FROM short_links").fetchone() == (9, 9)
    assert store.scalar(db, "SELECT count(*) FROM messages") == 3


def test_campaign_saves_the_template_file_as_a_creative(vip, db, tmp_path):
    write(tmp_path / "msg.txt", TEMPLATE)
    vip("shorten", "msg.txt", "--list", "vip", "-l", "link1=Summer Sale", "-l", "link2=2")
    creatives = db.execute("SELECT id, name, body FROM creatives").fetchall()
    assert [(name, body) for _, name, body in creatives] == [("msg", TEMPLATE)]
    assert {r[0] for r in db.execute("SELECT creative_id FROM messages")} == {creatives[0][0]}
    variants = db.execute("SELECT label, creative_id, weight FROM campaign_variants").fetchall()
    assert variants == [("A", creatives[0][0], 1)]


def test_generated_campaign_name_and_default_outbox(vip, db, tmp_path):
    write(tmp_path / "msg.txt", "Sale {{link1}}")
    vip("shorten", "msg.txt", "--list", "vip", "--link", "link1=Summer Sale")
    name = db.execute("SELECT name FROM campaigns").fetchone()[0]
    assert name.startswith("vip-")
    outboxes = [p for p in tmp_path.iterdir() if p.suffix == ".csv" and p.name.startswith("vip-")]
    assert len(outboxes) == 1
    assert len(read_outbox(outboxes[0])[1]) == 3
    # a second run gets another generated name, never the same campaign
    vip("shorten", "msg.txt", "--list", "vip", "--link", "link1=Summer Sale")
    names = [r[0] for r in db.execute("SELECT name FROM campaigns ORDER BY id")]
    assert len(names) == 2 and len(set(names)) == 2


def test_output_option_and_json_summary(vip, db, tmp_path):
    write(tmp_path / "msg.txt", "Sale {{link1}}")
    summary = vip.json(
        "shorten",
        "msg.txt",
        "--list",
        "vip",
        "--link",
        "link1=Summer Sale",
        "--campaign",
        "fall",
        "--output",
        "gateway.csv",
    )
    assert summary["campaign"] == "fall"
    assert summary["recipients"] == 3
    assert summary["links"] == 3
    assert (tmp_path / "gateway.csv").exists()
    assert not (tmp_path / "fall.csv").exists()
    assert len(read_outbox(tmp_path / "gateway.csv")[1]) == 3


def test_report_counters_after_a_campaign(vip, db, tmp_path):
    write(tmp_path / "msg.txt", TEMPLATE)
    vip(
        "shorten", "msg.txt", "--list", "vip", "--link", "link1=Summer Sale",
        "--link", "link2=Electronics", "--campaign", "spring",
    )  # fmt: skip
    campaign_id = db.execute("SELECT id FROM campaigns WHERE name = 'spring'").fetchone()[0]
    sent = db.execute(
        "SELECT sum(sent) FROM report_rollups WHERE campaign_id = ?", [campaign_id]
    ).fetchone()[0]
    assert sent == store.scalar(db, "SELECT count(*) FROM messages") == 3
    for name in ("Summer Sale", "Electronics"):
        offer_sent = db.execute(
            "SELECT sum(offer_sent) FROM report_rollups WHERE campaign_id = ? AND offer_id = ?",
            [campaign_id, offer_id(db, name)],
        ).fetchone()[0]
        assert offer_sent == 3, name
    # the raw URL carries no offer: its messages count under offer 0
    assert (
        db.execute(
            "SELECT sum(offer_sent) FROM report_rollups WHERE campaign_id = ? AND offer_id = 0",
            [campaign_id],
        ).fetchone()[0]
        == 3
    )


def test_outbox_segments_and_encoding_match_the_text(acme, db, tmp_path):
    people = [
        ("+12025550150", "Zoë"),  # ë is not GSM-7: UCS-2
        ("+12025550151", "Ann"),
        ("+12025550152", "Renée" * 40),  # a long name: more segments
        ("+12025550153", "😀"),
    ]
    make_list(acme, "mixed", people, tmp_path)
    write(tmp_path / "msg.txt", "Hi {{first_name|there}} € [deal] {{link1}} ~ends soon~")
    acme("shorten", "msg.txt", "--list", "mixed", "-l", "link1=Summer Sale", "--campaign", "c")
    _, rows = read_outbox(tmp_path / "c.csv")
    assert len(rows) == 4
    seen = set()
    for row in rows:
        count, encoding = sms.segments(row["text"])
        assert (int(row["segments"]), row["encoding"]) == (count, encoding), row
        stored = db.execute(
            "SELECT body, segments, encoding FROM messages WHERE id = ?", [int(row["message_id"])]
        ).fetchone()
        assert stored == (row["text"], count, encoding)
        seen.add((count, encoding))
    assert {e for _, e in seen} == {"GSM-7", "UCS-2"}
    assert max(c for c, _ in seen) > 1


def test_max_segments_warns_for_long_messages(vip, tmp_path):
    write(tmp_path / "long.txt", "Big sale " + "x" * 400 + " {{link1}}")
    result = vip(
        "shorten", "long.txt", "--list", "vip", "-l", "link1=Summer Sale", "--max-segments", "2",
    )  # fmt: skip
    assert "Warning" in result.stderr
    assert "3 message(s) need more than 2" in result.stderr
    # within the limit: no warning
    result = vip("shorten", "long.txt", "--list", "vip", "-l", "link1=Summer Sale")
    assert "Warning" not in result.stderr


def test_max_segments_warns_for_a_long_one_off(acme, tmp_path):
    write(tmp_path / "long.txt", "y" * 500 + " {{link1}}")
    result = acme("shorten", "long.txt", "-l", "link1=Summer Sale", "--max-segments", "1")
    assert "Warning" in result.stderr
    assert "segments" in result.stderr


# --- one-off messages ----------------------------------------------------------------------


def test_one_off_prints_the_shortened_text(acme, db, tmp_path):
    write(
        tmp_path / "msg.txt",
        "Hi {{first_name|friend}}! Sale: {{link1}} Info: https://example.org/i",
    )
    result = acme("shorten", "msg.txt", "--link", "link1=Summer Sale")
    text = result.stdout.strip()
    ids = SHORT.findall(text)
    assert len(ids) == 2 and len(set(ids)) == 2
    assert text == (
        f"Hi friend! Sale: https://go.acme.test/{ids[0]} Info: https://go.acme.test/{ids[1]}"
    )
    message = db.execute(
        "SELECT id, campaign_id, list_id, contact_id, variant, body FROM messages"
    ).fetchall()
    assert len(message) == 1
    assert message[0][1:] == (None, None, None, None, text)
    rows = db.execute(
        "SELECT id, message_id, contact_id, slot, offer_id, url FROM short_links ORDER BY slot"
    ).fetchall()
    assert rows == [
        (ids[0], message[0][0], None, "link1", offer_id(db, "Summer Sale"), None),
        (ids[1], message[0][0], None, "url1", None, "https://example.org/i"),
    ]
    assert store.scalar(db, "SELECT count(*) FROM campaigns") == 0
    assert not list(tmp_path.glob("*.csv"))


def test_one_off_json_gives_the_message_and_its_links(acme, db, tmp_path):
    write(tmp_path / "msg.txt", "A {{link1}} B {{link2}}")
    data = acme.json(
        "shorten", "msg.txt", "-l", "link1=Summer Sale", "-l", "link2=https://example.org/b?x=1"
    )
    message_id = db.execute("SELECT id FROM messages").fetchone()[0]
    assert data["message_id"] == message_id
    links = {link["slot"]: link for link in data["links"]}
    assert set(links) == {"link1", "link2"}
    for slot, link in links.items():
        assert re.fullmatch(r"[0-9A-Za-z]{7}", link["id"])
        assert link["short_url"] == f"https://go.acme.test/{link['id']}"
        assert link["short_url"] in data["text"]
        stored = db.execute("SELECT message_id, slot FROM short_links WHERE id = ?", [link["id"]])
        assert stored.fetchone() == (message_id, slot)
    assert links["link1"]["offer"] == "Summer Sale"
    assert links["link1"]["destination"] == "https://shop.example/summer?sub={link_id}"
    assert links["link2"]["offer"] is None
    assert links["link2"]["destination"] == "https://example.org/b?x=1"


def test_one_off_messages_under_one_campaign_name_gather_in_it(vip, db, tmp_path):
    """The first one-off message given --campaign makes it, the next ones join it; a list send
    may not take the name of a campaign of one-offs, nor a one-off that of a list send."""
    write(tmp_path / "msg.txt", "A {{link1}}")
    for phone in ("+12025550143", "+12025550144"):
        vip(
            "shorten",
            "msg.txt",
            "-l",
            "link1=Summer Sale",
            "--phone",
            phone,
            "--campaign",
            "welcome",
        )
    (welcome,) = vip.json("report", "--campaign", "welcome")
    assert welcome["sent"] == 2
    assert store.scalar(db, "SELECT count(*) FROM campaigns") == 1
    assert store.scalar(db, "SELECT count(DISTINCT campaign_id) FROM messages") == 1
    refused = vip("shorten", "msg.txt", "-l", "link1=Summer Sale", "--list", "vip",
                  "--campaign", "welcome", "-o", "w.csv", code=1)  # fmt: skip
    assert "campaign 'welcome' already exists" in refused.stderr
    vip("shorten", "msg.txt", "-l", "link1=Summer Sale", "--list", "vip", "--campaign", "june",
        "-o", "june.csv")  # fmt: skip
    refused = vip("shorten", "msg.txt", "-l", "link1=Summer Sale", "--phone", "+12025550145",
                  "--campaign", "june", code=1)  # fmt: skip
    assert "was sent to a list" in refused.stderr
    assert store.scalar(db, "SELECT count(*) FROM messages WHERE campaign_id IS NOT NULL") == 2 + 3


def test_one_off_offer_by_id(acme, db, tmp_path):
    write(tmp_path / "msg.txt", "A {{link1}}")
    summer = offer_id(db, "Summer Sale")
    data = acme.json("shorten", "msg.txt", "-l", f"link1={summer}")
    assert data["links"][0]["offer"] == "Summer Sale"


def test_one_off_merge_field_without_fallback_is_an_error(acme, db, tmp_path):
    write(tmp_path / "msg.txt", "Hi {{first_name}}: {{link1}}")
    message = acme.error("shorten", "msg.txt", "--link", "link1=Summer Sale")
    assert "first_name" in message
    assert "fallback" in message
    assert counts(db)["messages"] == 0


def test_one_off_phone_field_needs_no_contact(acme, tmp_path):
    # `phone` is built in: a one-off has none, so it renders empty rather than failing
    write(tmp_path / "msg.txt", "For {{phone|you}}: {{link1}}")
    result = acme("shorten", "msg.txt", "--link", "link1=Summer Sale")
    assert result.stdout.startswith("For you: https://go.acme.test/")


def test_http_domain_gives_http_links(acme, db, tmp_path):
    acme("domain", "add", "localhost", "--http", "--account", "acme")
    write(tmp_path / "msg.txt", "Sale {{link1}}")
    data = acme.json("shorten", "msg.txt", "-l", "link1=Summer Sale", "--domain", "localhost")
    assert re.fullmatch(r"http://localhost/[0-9A-Za-z]{7}", data["links"][0]["short_url"])
    assert data["text"] == "Sale " + data["links"][0]["short_url"]
    domain = db.execute(
        "SELECT d.hostname FROM short_links l JOIN domains d ON d.id = l.domain_id"
    ).fetchone()[0]
    assert domain == "localhost"
    # without --domain the account's default (the first domain) is used
    data = acme.json("shorten", "msg.txt", "-l", "link1=Summer Sale")
    assert data["links"][0]["short_url"].startswith("https://go.acme.test/")


def test_stdin_template(acme, db):
    result = acme("shorten", "-", "--link", "link1=Summer Sale", input="Stdin sale {{link1}}\n")
    assert re.fullmatch(r"Stdin sale https://go\.acme\.test/[0-9A-Za-z]{7}", result.stdout.strip())
    assert db.execute("SELECT body FROM creatives").fetchone()[0] == "Stdin sale {{link1}}"


def test_saved_creative_as_template(acme, db, tmp_path):
    write(tmp_path / "promo.txt", "Promo {{link1}}")
    acme("creative", "add", "promo", "promo.txt")
    creative_id = db.execute("SELECT id FROM creatives WHERE name = 'promo'").fetchone()[0]
    result = acme("shorten", "--creative", "promo", "--link", "link1=Summer Sale")
    assert result.stdout.startswith("Promo https://go.acme.test/")
    assert db.execute("SELECT creative_id FROM messages").fetchone()[0] == creative_id
    # the creative is used, not copied
    assert store.scalar(db, "SELECT count(*) FROM creatives") == 1
    message = acme.error("shorten", "--creative", "nope", "--link", "link1=Summer Sale")
    assert "nope" in message


def test_keep_urls_leaves_raw_urls_alone(acme, db, tmp_path):
    write(tmp_path / "msg.txt", "Sale {{link1}} Info: https://example.org/info")
    data = acme.json("shorten", "msg.txt", "-l", "link1=Summer Sale", "--keep-urls")
    assert [link["slot"] for link in data["links"]] == ["link1"]
    assert data["text"].endswith(" Info: https://example.org/info")
    assert store.scalar(db, "SELECT count(*) FROM short_links") == 1
    # and without it the raw URL is shortened
    data = acme.json("shorten", "msg.txt", "-l", "link1=Summer Sale")
    assert [link["slot"] for link in data["links"]] == ["link1", "url1"]
    assert "example.org" not in data["text"]


def test_template_file_errors(acme, tmp_path):
    message = acme.error("shorten", "missing.txt", "--link", "link1=Summer Sale")
    assert "missing.txt" in message
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 {{link1}}".encode("latin-1"))
    message = acme.error("shorten", "latin1.txt", "--link", "link1=Summer Sale")
    assert "UTF-8" in message
    write(tmp_path / "empty.txt", "\n")
    assert "empty" in acme.error("shorten", "empty.txt")
    write(tmp_path / "bad.txt", "Hi\nSale {{link1")
    message = acme.error("shorten", "bad.txt", "--link", "link1=Summer Sale")
    assert "bad" in message and "line 2" in message
    assert "template" in acme.error("shorten", "--link", "link1=Summer Sale")


# --- every error at once, and nothing written -----------------------------------------------


def test_every_problem_is_reported_at_once(vip, db, tmp_path):
    write(tmp_path / "msg.txt", TEMPLATE)
    vip(
        "shorten", "msg.txt", "--list", "vip", "-l", "link1=Summer Sale", "-l", "link2=Electronics",
        "--campaign", "spring",
    )  # fmt: skip
    vip("account", "create", "other")
    vip("domain", "add", "go.other.test", "--account", "other")
    before = counts(db)
    rollups = store.scalar(db, "SELECT count(*) FROM report_rollups")

    write(tmp_path / "bad.txt", "Hi {{first_name}}! {{link1}} {{link2}}")
    message = vip.error(
        "shorten", "bad.txt", "--account", "acme", "--list", "vip",
        "--link", "link1=No Such Offer",  # unknown offer
        "--link", "link3=https://example.org/3",  # a slot the template lacks; link2 is unbound
        "--domain", "go.other.test",  # another account's domain
        "--campaign", "spring",  # exists
        "--output", "bad.csv",
    )  # fmt: skip
    assert message.startswith("Error: 6 problems:"), message
    problems = message.splitlines()[1:]
    assert len(problems) == 6 and all(p.startswith("  - ") for p in problems), message
    text = "\n".join(problems)
    assert "No Such Offer" in text
    assert "link3" in text
    assert "{{link2}} is not bound" in text
    assert "first_name" in text and "1 contact" in text and "+12025550145" in text
    assert "go.other.test" in text and "other" in text
    assert "spring" in text and "already exists" in text

    assert counts(db) == before
    assert store.scalar(db, "SELECT count(*) FROM report_rollups") == rollups
    assert not (tmp_path / "bad.csv").exists()
    assert leftovers(tmp_path) == []


def test_account_without_a_domain_is_reported_with_the_rest(cli, db, tmp_path):
    cli("account", "create", "bare")
    write(tmp_path / "msg.txt", "Sale {{link1}} {{link2}}")
    message = cli.error("shorten", "msg.txt", "--link", "link1=https://example.org/a")
    assert message.startswith("Error: 2 problems:"), message
    assert "no shared default domain" in message
    assert "trackly domain add" in message
    assert "link2" in message
    assert counts(db) == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--link", "link1"], "SLOT=OFFER"),
        (["--link", "slot1=Summer Sale"], "link1, link2"),
        (["--link", "link1=Summer Sale", "--link", "link1=Summer Sale"], "bound twice"),
        (["--link", "link1=javascript:alert(1)"], "link1"),
        (["--link", "link1=Summer Sale", "--list", "nope"], "nope"),
        (["--link", "link1=Summer Sale", "--list", "vip", "--campaign", " "], "campaign"),
    ],
)
def test_binding_and_option_errors(vip, db, tmp_path, args, expected):
    write(tmp_path / "msg.txt", "Sale {{link1}}")
    message = vip.error("shorten", "msg.txt", *args)
    assert expected in message
    assert counts(db) == dict.fromkeys(TABLES, 0)


def test_empty_list_is_an_error(acme, db, tmp_path):
    acme("list", "create", "empty")
    write(tmp_path / "msg.txt", "Sale {{link1}}")
    message = acme.error("shorten", "msg.txt", "--list", "empty", "-l", "link1=Summer Sale")
    assert "no members" in message
    assert counts(db)["campaigns"] == 0


@pytest.mark.parametrize(
    ("split", "expected"),
    [("50", "1 parts for 2 templates"), ("50,30,20", "3 parts"), ("a,b", "whole numbers"),
     ("0,100", "positive"), ("50,-50", "positive"), ("", "")],
)  # fmt: skip
def test_split_errors(vip, db, tmp_path, split, expected):
    write(tmp_path / "a.txt", "A {{link1}}")
    write(tmp_path / "b.txt", "B {{link1}}")
    message = vip.error(
        "shorten", "a.txt", "b.txt", "--list", "vip", "-l", "link1=Summer Sale", "--split", split
    )
    assert "--split" in message
    assert expected in message
    assert counts(db) == dict.fromkeys(TABLES, 0)


def test_unwritable_outbox_fails_before_writing(vip, db, tmp_path):
    write(tmp_path / "msg.txt", "Sale {{link1}}")
    message = vip.error(
        "shorten", "msg.txt", "--list", "vip", "-l", "link1=Summer Sale",
        "--campaign", "nowhere", "--output", tmp_path / "no-such-dir" / "out.csv",
    )  # fmt: skip
    assert "out.csv" in message
    assert counts(db) == dict.fromkeys(TABLES, 0)
    assert store.scalar(db, "SELECT count(*) FROM report_rollups") == 0
    assert not (tmp_path / "no-such-dir").exists()
    # the campaign name is still free
    vip("shorten", "msg.txt", "--list", "vip", "-l", "link1=Summer Sale", "--campaign", "nowhere")


def test_failure_midway_rolls_everything_back(acme, db, tmp_path):
    make_list(acme, "five", many(5), tmp_path)
    write(tmp_path / "msg.txt", "Sale {{link1}}")
    acme(
        "shorten", "msg.txt", "-l", "link1=Summer Sale"
    )  # a one-off: 1 message, 1 link, 1 creative
    before = counts(db)
    rollups = store.scalar(db, "SELECT count(*) FROM report_rollups")
    db.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON short_links"
        " WHEN (SELECT count(*) FROM short_links) >= 3"
        " BEGIN SELECT RAISE(ABORT, 'boom'); END"
    )
    write(tmp_path / "new.txt", "New {{link1}}")
    result = acme(
        "shorten", "new.txt", "--list", "five", "-l", "link1=Summer Sale", "--campaign", "doomed",
        code=1,
    )  # fmt: skip
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Error: ")
    assert "boom" in result.stderr
    assert counts(db) == before
    assert store.scalar(db, "SELECT count(*) FROM report_rollups") == rollups
    assert db.execute("SELECT count(*) FROM creatives WHERE name = 'new'").fetchone()[0] == 0
    assert not (tmp_path / "doomed.csv").exists()
    assert leftovers(tmp_path) == []
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]

    db.execute("DROP TRIGGER boom")
    acme("shorten", "new.txt", "--list", "five", "-l", "link1=Summer Sale", "--campaign", "doomed")
    assert store.scalar(db, "SELECT count(*) FROM messages") == before["messages"] + 5
    assert len(read_outbox(tmp_path / "doomed.csv")[1]) == 5


# --- A/B splits -------------------------------------------------------------------------------


@pytest.fixture
def crowd(acme, tmp_path):
    """acme with a list `crowd` of 200 contacts and two template files."""
    make_list(acme, "crowd", many(200), tmp_path)
    write(tmp_path / "short.txt", "Sale {{link1}}")
    write(
        tmp_path / "long.txt",
        "Big summer sale, everything must go: {{link1}} Info: https://example.org/i",
    )
    return acme


def assignment(db, campaign: str) -> dict[int, str]:
    return dict(
        db.execute(
            "SELECT m.contact_id, m.variant FROM messages m JOIN campaigns c"
            " ON c.id = m.campaign_id WHERE c.name = ?",
            [campaign],
        ).fetchall()
    )


def ab(cli, campaign: str, seed: str, *extra):
    return cli(
        "shorten", "short.txt", "long.txt", "--list", "crowd", "-l", "link1=Summer Sale",
        "--split", "50,50", "--seed", seed, "--campaign", campaign, *extra,
    )  # fmt: skip


def test_ab_split_records_variant_and_creative(crowd, db, tmp_path):
    ab(crowd, "ab1", "s1")
    creatives = dict(db.execute("SELECT name, id FROM creatives").fetchall())
    assert set(creatives) == {"short", "long"}
    rows = db.execute(
        "SELECT m.variant, m.creative_id, m.body, c.seed FROM messages m"
        " JOIN campaigns c ON c.id = m.campaign_id"
    ).fetchall()
    assert len(rows) == 200
    by_variant = Counter(r[0] for r in rows)
    assert set(by_variant) == {"A", "B"}
    assert 60 <= by_variant["A"] <= 140, by_variant
    for variant, creative_id, body, seed in rows:
        assert seed == "s1"
        if variant == "A":
            assert creative_id == creatives["short"]
            assert body.startswith("Sale https://go.acme.test/")
        else:
            assert creative_id == creatives["long"]
            assert body.startswith("Big summer sale")
    variants = db.execute(
        "SELECT label, creative_id, weight FROM campaign_variants ORDER BY label"
    ).fetchall()
    assert variants == [("A", creatives["short"], 50), ("B", creatives["long"], 50)]
    # variant B has two links (link1 and the raw URL), variant A one
    links = store.scalar(db, "SELECT count(*) FROM short_links")
    assert links == by_variant["A"] + 2 * by_variant["B"]
    _, outbox = read_outbox(tmp_path / "ab1.csv")
    assert len(outbox) == 200


def test_same_seed_same_assignment_other_seed_other_assignment(crowd, db):
    ab(crowd, "first", "s1")
    ab(crowd, "second", "s1")
    ab(crowd, "third", "s2")
    first, second, third = (assignment(db, c) for c in ("first", "second", "third"))
    assert len(first) == 200
    assert first == second
    assert first != third
    assert sum(first[c] != third[c] for c in first) > 40  # about half should move
    # the same files make no new creatives
    assert store.scalar(db, "SELECT count(*) FROM creatives") == 2


def test_uneven_split(crowd, db):
    ab_args = ("--split", "90,10")
    crowd(
        "shorten", "short.txt", "long.txt", "--list", "crowd", "-l", "link1=Summer Sale",
        *ab_args, "--seed", "x", "--campaign", "uneven",
    )  # fmt: skip
    share = Counter(assignment(db, "uneven").values())
    assert share["A"] > 150 and 0 < share["B"] < 50, share


def test_default_split_is_equal_and_seed_is_random(crowd, db):
    crowd(
        "shorten", "short.txt", "long.txt", "--list", "crowd", "-l", "link1=Summer Sale",
        "--campaign", "equal",
    )  # fmt: skip
    share = Counter(assignment(db, "equal").values())
    assert 60 <= share["A"] <= 140, share
    weights = [r[0] for r in db.execute("SELECT weight FROM campaign_variants")]
    assert weights == [1, 1]
    seed = db.execute("SELECT seed FROM campaigns").fetchone()[0]
    assert seed


def test_ab_report_counters_per_variant(crowd, db):
    ab(crowd, "ab1", "s1")
    campaign_id = db.execute("SELECT id FROM campaigns").fetchone()[0]
    per_variant = dict(
        db.execute(
            "SELECT variant, sum(sent) FROM report_rollups WHERE campaign_id = ? GROUP BY variant",
            [campaign_id],
        ).fetchall()
    )
    assert per_variant == dict(
        db.execute(
            "SELECT variant, count(*) FROM messages WHERE campaign_id = ? GROUP BY variant",
            [campaign_id],
        ).fetchall()
    )


# --- link ids across campaigns ------------------------------------------------------------------


def test_link_ids_are_unique_across_campaigns(crowd, db, tmp_path):
    write(tmp_path / "two.txt", "One {{link1}} two {{link2}} three https://example.org/3")
    for name in ("c1", "c2"):
        crowd(
            "shorten", "two.txt", "--list", "crowd", "-l", "link1=Summer Sale",
            "-l", "link2=https://example.org/2", "--campaign", name,
        )  # fmt: skip
    messages = store.scalar(db, "SELECT count(*) FROM messages")
    assert messages == 400
    total, distinct = db.execute("SELECT count(*), count(DISTINCT id) FROM short_links").fetchone()
    assert total == distinct == messages * 3
    # and every id in the outboxes is one of them, once
    seen = []
    for name in ("c1", "c2"):
        for row in read_outbox(tmp_path / f"{name}.csv")[1]:
            seen += ANY_SHORT.findall(row["text"])
    assert len(seen) == len(set(seen)) == total
    assert set(seen) == {r[0] for r in db.execute("SELECT id FROM short_links")}
