"""Deleting (#14): `list remove-contacts`, `list delete`, `offer|creative|domain|account delete`.
What nothing refers to is deleted; what history refers to is refused with the reason, the
counts and the alternative, and the database is left as it was. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import webtest
from conftest import HUMAN_HEADERS, query
from history import ANN, BOB, build, everything, reports

from trackly_cli.server import Tracker, create_app


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


def refused(cli, target: str, *args: str) -> str:
    """The one-line error of a command that must change nothing."""
    before = everything(target)
    message = cli.error(*args)
    assert everything(target) == before, args
    return message


def test_every_refusal_names_the_reason_and_changes_nothing(cli, target):
    assert refused(cli, target, "list", "delete", "vip") == (
        "Error: list 'vip' was sent 1 campaign (3 messages): it stays, so that their reports"
        " keep its name and their links its bot filter. --force deletes it anyway (its report"
        ' rows show as "(deleted list 1)", later clicks count under "(no list)")'
    )
    assert refused(cli, target, "offer", "delete", "Summer Sale") == (
        "Error: offer 'Summer Sale' has 3 links, 4 clicks and 1 conversion: deleting it would"
        " break its live links (they redirect to its URL and take its postbacks) and its report"
        " rows, so it stays: `trackly offer archive Summer Sale` takes it out of `offer list`"
        " and new messages instead"
    )
    used = query(
        target,
        "SELECT c.name, count(m.id) AS n FROM creatives c LEFT JOIN messages m"
        " ON m.creative_id = c.id WHERE c.name <> 'spare' GROUP BY c.name ORDER BY c.name",
    )
    assert len(used) == 2 and sum(c["n"] for c in used) == 3
    for creative in used:
        messages = f"{creative['n']} message{'' if creative['n'] == 1 else 's'}"
        assert refused(cli, target, "creative", "delete", creative["name"]) == (
            f"Error: creative {creative['name']!r} was used by 1 campaign ({messages}): their"
            " A/B variants and reports name it, so it stays; add a new creative for new"
            " campaigns"
        )
    for command in ("delete", "remove"):
        assert refused(cli, target, "domain", command, "go.acme.test") == (
            "Error: domain go.acme.test carries the links of 3 messages: removing it would break"
            " them (it stays; stop pointing DNS at this server to retire it)"
        )
    assert refused(cli, target, "account", "delete", "acme") == (
        "Error: account 'acme' has 3 messages, 5 clicks, 1 conversion and 3 contacts: --force"
        " deletes all of it, its live links and reports too (back it up first: `trackly db"
        " backup`)"
    )


def test_unknown_names_are_one_line_errors(cli, target):
    assert refused(cli, target, "list", "delete", "nope") == (
        "Error: no list 'nope' in this account (see `trackly list list`)"
    )
    assert refused(cli, target, "list", "delete", "nope", "--force").startswith("Error: no list")
    assert refused(cli, target, "offer", "delete", "nope") == (
        "Error: no offer 'nope' in this account (see `trackly offer list`)"
    )
    assert refused(cli, target, "creative", "delete", "99") == (
        "Error: no creative '99' in this account (see `trackly creative list`)"
    )
    assert refused(cli, target, "domain", "delete", "nope.example") == (
        "Error: no domain nope.example (see `trackly domain list`)"
    )
    assert refused(cli, target, "account", "delete", "nope", "--force", "--yes") == (
        "Error: no account 'nope' (see `trackly account list`)"
    )
    assert refused(cli, target, "list", "remove-contacts", "nope", BOB).startswith(
        "Error: no list 'nope'"
    )


def test_what_nothing_refers_to_is_deleted(cli, target):
    before = reports(cli)
    cli("offer", "delete", "Spare")
    cli("creative", "delete", "spare")
    cli("list", "create", "empty")
    done = cli("list", "delete", "empty")
    assert "Deleted list empty (id 2) and its 0 memberships; the contacts stay." in done.stderr
    cli("domain", "add", "spare.acme.test")
    cli("domain", "delete", "spare.acme.test")
    assert [o["name"] for o in cli.json("offer", "list")] == ["Summer Sale"]
    assert "spare" not in [c["name"] for c in cli.json("creative", "list")]
    assert [d["hostname"] for d in cli.json("domain", "list")] == ["go.acme.test"]
    assert [x["name"] for x in cli.json("list", "list")] == ["vip"]
    assert reports(cli) == before


def test_remove_contacts_takes_numbers_or_files(cli, target, tmp_path: Path):
    (tmp_path / "gone.csv").write_text("Phone,name\n(202) 555-0145,Cy\n", encoding="utf-8")
    (tmp_path / "gone.txt").write_text("+1 202 555 0199\n", encoding="utf-8")
    done = cli.json("list", "remove-contacts", "vip", ANN, "gone.csv", "gone.txt")
    assert done == {"list": "vip", "removed": 2, "not_members": 1}
    assert [c["phone"] for c in cli.json("contacts", "list", "--list", "vip")] == [BOB]
    # the contacts stay
    assert len(cli.json("contacts", "list")) == 3
    again = cli("list", "remove-contacts", "vip", BOB)
    assert "Removed 1 contact from list vip." in again.stderr


def test_remove_contacts_with_a_bad_number_removes_none(cli, target, tmp_path: Path):
    assert refused(cli, target, "list", "remove-contacts", "vip", ANN, "not a phone") == (
        "Error: 'not a phone': not a phone number (nothing was removed)"
    )
    (tmp_path / "bad.txt").write_text(f"{BOB}\n12\n", encoding="utf-8")
    assert refused(cli, target, "list", "remove-contacts", "vip", "bad.txt").startswith(
        "Error: '12': "
    )
    (tmp_path / "empty.csv").write_text("\n", encoding="utf-8")
    assert refused(cli, target, "list", "remove-contacts", "vip", "empty.csv") == (
        "Error: empty.csv holds no phone numbers"
    )


def test_list_delete_force_keeps_the_report_rows(cli, target):
    before = reports(cli)
    done = cli.json("list", "delete", "vip", "--force")
    assert done == {"list": "vip", "id": 1, "members": 3, "campaigns": 1, "messages": 3}
    after = reports(cli)
    assert [r["list"] for r in after["list"]] == ["(deleted list 1)"]
    assert [{**r, "list": "vip"} for r in after["list"]] == before["list"]
    assert {k: v for k, v in after.items() if k != "list"} == {
        k: v for k, v in before.items() if k != "list"
    }
    assert len(cli.json("contacts", "list")) == 3  # (the contacts stay)
    assert not query(target, "SELECT 1 FROM list_members")


def test_account_delete_force_deletes_every_row_of_it(cli, target, tmp_path: Path):
    cli("account", "create", "other")
    cli("domain", "add", "go.other.test", "--account", "other")
    cli("list", "create", "keep", "--account", "other")
    (tmp_path / "o.csv").write_text(f"phone\n{ANN}\n", encoding="utf-8")
    cli("contacts", "import", "keep", "o.csv", "--account", "other")
    before = everything(target)
    asked = cli("account", "delete", "acme", "--force", input="n\n", code=1).stderr
    assert asked.startswith("Delete account acme and every row of it")
    assert asked.endswith("Error: nothing was deleted (--yes confirms without asking)\n")
    assert everything(target) == before

    done = cli.json("account", "delete", "acme", "--force", "--yes")

    assert (done["account"], done["messages"], done["clicks"], done["conversions"]) == (
        "acme",
        3,
        5,
        1,
    )
    assert done["contacts"] == 3 and done["rows"] > 20
    assert [a["name"] for a in cli.json("account", "list")] == ["other"]
    for table in ("domains", "offers", "lists", "contacts", "creatives", "campaigns"):
        assert not query(target, f"SELECT 1 FROM {table} WHERE account_id = 1"), table
    for table in (
        "messages",
        "short_links",
        "message_short_link_clicks",
        "message_clicks",
        "conversions",
        "report_rollups",
        "message_rollups",
        "campaign_variants",
        "webhooks",
        "webhook_events",
    ):
        assert not query(target, f"SELECT 1 FROM {table}"), table
    # the other account's rows stay
    assert cli.json("contacts", "list", "--account", "other")[0]["phone"] == ANN
    assert len(query(target, "SELECT 1 FROM list_members")) == 1
    assert [d["hostname"] for d in cli.json("domain", "list")] == ["go.other.test"]


def test_an_account_that_sent_nothing_is_deleted_outright(cli, target):
    cli("account", "create", "fresh")
    cli("domain", "add", "go.fresh.test", "--account", "fresh")
    cli("offer", "create", "Fresh", "--url", "https://fresh.example", "--account", "fresh")
    cli("list", "create", "fresh", "--account", "fresh")
    done = cli("account", "delete", "fresh")
    assert "Deleted account fresh (id 2): 4 rows." in done.stderr
    assert [a["name"] for a in cli.json("account", "list")] == ["acme"]
    assert not query(target, "SELECT 1 FROM domains WHERE hostname = 'go.fresh.test'")


def test_an_offer_in_use_is_archived_instead(cli, target, tmp_path: Path):
    """The alternative the refusal names: an archived offer leaves `offer list` and new
    messages, while its links redirect, its postbacks count and its reports stay."""
    before = reports(cli)
    assert cli("offer", "archive", "Summer Sale").stderr.startswith("Archived offer Summer Sale")
    assert [o["name"] for o in cli.json("offer", "list")] == ["Spare"]
    listed = cli.json("offer", "list", "--archived")
    assert [(o["name"], o["archived_at"] is not None) for o in listed] == [
        ("Summer Sale", True),
        ("Spare", False),
    ]
    assert reports(cli) == before
    # its links answer, and its postbacks count
    link = query(target, "SELECT id FROM short_links WHERE offer_id = 1 LIMIT 1")[0]["id"]
    tracker = Tracker(target, journal=tmp_path / "journal")
    try:
        app = webtest.TestApp(
            create_app(target, tracker=tracker),
            extra_environ={"HTTP_HOST": "go.acme.test", "REMOTE_ADDR": "198.51.100.7"},
        )
        response = app.get(f"/{link}", headers=HUMAN_HEADERS)
        assert response.status_int == 302
        assert response.location.startswith("https://shop.example/s?sub=")
        answer = app.get(f"/conv?link_id={link}&revenue=5&txn_id=ARCHIVED-1").json
        assert answer["status"] == "recorded"
        tracker.sync()
    finally:
        tracker.close()
    assert query(target, "SELECT count(*) AS n FROM conversions WHERE txn_id = 'ARCHIVED-1'") == [
        {"n": 1}
    ]
    (tmp_path / "new.txt").write_text("New {{link1}}", encoding="utf-8")
    message = refused(cli, target, "shorten", tmp_path / "new.txt", "--list", "vip",
                      "--link", "link1=Summer Sale", "--campaign", "july")  # fmt: skip
    assert message == (
        "Error: --link link1: offer 'Summer Sale' is archived: its links still work, new messages"
        " cannot use it (`trackly offer unarchive Summer Sale`)"
    )
    assert "archived already" in refused(cli, target, "offer", "archive", "Summer Sale")
    cli("offer", "unarchive", "Summer Sale")
    assert "in use already" in refused(cli, target, "offer", "unarchive", "Summer Sale")
    cli("shorten", tmp_path / "new.txt", "--list", "vip", "--link", "link1=Summer Sale",
        "--campaign", "july")  # fmt: skip
    assert [o["name"] for o in cli.json("offer", "list")] == ["Summer Sale", "Spare"]


def test_an_account_that_keeps_only_opt_outs_is_not_deleted_without_force(cli, target, tmp_path):
    """The opt-out list is history too: deleting it would let a later import message people
    who said STOP."""
    cli("account", "create", "quiet")
    cli("optout", "add", "+12025550199", "--account", "quiet")
    assert refused(cli, target, "account", "delete", "quiet") == (
        "Error: account 'quiet' has 0 messages, 0 clicks, 0 conversions, 1 opt-out and 0"
        " contacts: --force deletes all of it, its live links and reports too (back it up"
        " first: `trackly db backup`)"
    )
    cli("account", "delete", "quiet", "--force", "--yes")
    assert query(target, "SELECT count(*) AS n FROM optouts WHERE account_id NOT IN"
                 " (SELECT id FROM accounts)") == [{"n": 0}]  # fmt: skip


def test_a_deleted_lists_id_and_report_rows_never_go_to_a_new_list(cli, target):
    cli("list", "delete", "vip", "--force")
    created = cli.json("list", "create", "newlist")
    assert created["id"] == 2  # not 1, vip's
    rows = cli.json("report", "--by", "list")
    assert [r["list"] for r in rows] == ["(deleted list 1)"]
    assert "Nothing in this range" in cli("report", "--list", "newlist").stderr
    cli("segment", "spring", "--clicked", "--into-list", "clickers")
    assert cli.json("list", "show", "clickers")["id"] == 3


def test_a_deleted_accounts_ids_are_never_given_to_the_next_rows(cli, target, tmp_path: Path):
    """After `account delete --force`, the next message, list, webhook and API key of another
    account are numbered above the deleted ones: a delivery report, a postback or a script that
    still names an old id finds nothing, not another account's row."""
    from trackly_cli.core import ids

    cli("apikey", "create", "--account", "acme")
    largest = {t: query(target, f"SELECT max(id) AS id FROM {t}")[0]["id"] for t in ids.FLOORED}
    assert all(largest.values()), largest
    cli("account", "create", "other")
    cli("domain", "add", "go.other.test", "--account", "other")
    cli.json("account", "delete", "acme", "--force", "--yes")

    cli("list", "create", "fresh", "--account", "other")
    hook = "https://crm.example/hooks"
    cli("webhook", "add", hook, "--account", "other", "--events", "click.first")
    cli("apikey", "create", "--account", "other")
    (tmp_path / "one.txt").write_text("Hi {{link1}}", encoding="utf-8")
    cli(*("shorten", "one.txt", "--phone", ANN, "--link", "link1=https://shop.example/x"),
        *("--account", "other"))  # fmt: skip
    for table in ids.FLOORED:
        (new,) = query(target, f"SELECT id FROM {table} WHERE account_id = 2")
        assert new["id"] > largest[table], table
