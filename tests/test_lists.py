"""trackly list: sending lists, their bot filter, interstitial defaults and member count."""

from __future__ import annotations

import json

import pytest
from conftest import snapshot

from trackly_cli.core import store


def list_row(db, name: str) -> dict:
    return store.row(db, "SELECT * FROM lists WHERE name = ?", (name,))


@pytest.fixture
def account(cli):
    cli("account", "create", "acme")
    return cli


# --- create -------------------------------------------------------------------------------------


def test_list_create_defaults(account, db):
    result = account("list", "create", "vip")
    assert "vip" in result.stderr
    row = list_row(db, "vip")
    assert row["bot_filter"] == "flag"
    assert row["min_human_seconds"] == 2
    assert row["interstitial_title"] is None
    assert json.loads(row["interstitial_meta"]) == {}
    assert row["created_at"].endswith("Z")
    assert row["account_id"] == db.execute("SELECT id FROM accounts").fetchone()[0]


@pytest.mark.parametrize("value", ["off", "flag", "confirm"])
def test_list_bot_filter_values(account, db, value):
    created = account.json("list", "create", "vip", "--bot-filter", value)
    assert created["bot_filter"] == value
    assert list_row(db, "vip")["bot_filter"] == value


def test_list_bot_filter_inherit_is_only_for_offers(account, db_path):
    before = snapshot(db_path)
    account.error("list", "create", "vip", "--bot-filter", "inherit", code=2)
    account.error("list", "create", "vip", "--bot-filter", "maybe", code=2)
    assert snapshot(db_path) == before


def test_list_create_with_interstitial_fields(account, db):
    created = account.json(
        "list",
        "create",
        "vip",
        "--bot-filter",
        "confirm",
        "--min-human-seconds",
        "3.5",
        "--interstitial-title",
        "Your VIP deal",
        "--interstitial-description",
        "Tap below to open it",
        "--interstitial-cta",
        "Open",
        "--interstitial-meta",
        "og:title=VIP",
        "--interstitial-meta",
        "og:image=https://cdn.example/vip.png?a=1&b=2",
    )
    meta = {"og:title": "VIP", "og:image": "https://cdn.example/vip.png?a=1&b=2"}
    assert created["interstitial_meta"] == meta
    assert created["members"] == 0
    row = list_row(db, "vip")
    assert (
        row["bot_filter"],
        row["min_human_seconds"],
        row["interstitial_title"],
        row["interstitial_description"],
        row["interstitial_cta"],
    ) == ("confirm", 3.5, "Your VIP deal", "Tap below to open it", "Open")
    assert json.loads(row["interstitial_meta"]) == meta


@pytest.mark.parametrize("bad", ["novalue", "=x", "bad key=1"])
def test_bad_interstitial_meta_is_refused(account, db_path, bad):
    before = snapshot(db_path)
    message = account.error("list", "create", "vip", "--interstitial-meta", bad)
    assert "meta" in message
    assert snapshot(db_path) == before


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--min-human-seconds", "-1"], 2),
        (["--min-human-seconds", "abc"], 2),
        (["--min-human-seconds", "100000"], 1),
        (["--interstitial-title", "x" * 301], 1),
        (["--interstitial-cta", "x" * 101], 1),
    ],
)
def test_bad_list_settings_are_refused(account, db_path, args, code):
    before = snapshot(db_path)
    account.error("list", "create", "vip", *args, code=code)
    assert snapshot(db_path) == before


def test_duplicate_list_name_is_refused(account, db_path):
    account("list", "create", "vip")
    before = snapshot(db_path)
    for name in ("vip", "VIP", " Vip "):
        assert "already exists" in account.error("list", "create", name)
    assert snapshot(db_path) == before


@pytest.mark.parametrize("bad", ["12", "", "x" * 101])
def test_bad_list_names_are_refused(account, db_path, bad):
    before = snapshot(db_path)
    account.error("list", "create", bad)
    assert snapshot(db_path) == before


def test_the_same_list_name_in_two_accounts(account, db):
    account("account", "create", "globex")
    account("list", "create", "vip", "-a", "acme")
    account("list", "create", "vip", "-a", "globex")
    assert store.scalar(db, "SELECT count(*) FROM lists") == 2
    assert [x["name"] for x in account.json("list", "list", "-a", "globex")] == ["vip"]


# --- show / list --------------------------------------------------------------------------------


def test_list_show_by_name_and_id(account):
    created = account.json("list", "create", "vip", "--interstitial-title", "Hi")
    shown = account.json("list", "show", "vip")
    assert shown["id"] == created["id"]
    assert shown["name"] == "vip"
    assert shown["bot_filter"] == "flag"
    assert shown["interstitial_title"] == "Hi"
    assert shown["members"] == 0
    assert account.json("list", "show", str(created["id"])) == shown
    assert account.json("list", "show", "VIP") == shown
    assert "Hi" in account("list", "show", "vip").stdout


def test_list_show_member_count(account, tmp_path, db):
    account("list", "create", "vip")
    account("list", "create", "other")
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(
        "phone,first_name\n+12025550143,Ann\n+12025550144,Bob\n2025550145,Cy\n+12025550143,Ann\n",
        encoding="utf-8",
    )
    account("contacts", "import", "vip", csv_file)
    assert account.json("list", "show", "vip")["members"] == 3
    assert account.json("list", "show", "other")["members"] == 0
    # a contact already on the list is counted once; new ones add up
    csv_file.write_text("phone\n+12025550143\n+12025550146\n", encoding="utf-8")
    account("contacts", "import", "vip", csv_file)
    assert account.json("list", "show", "vip")["members"] == 4
    account("contacts", "import", "other", csv_file)
    assert account.json("list", "show", "other")["members"] == 2
    assert store.scalar(db, "SELECT count(*) FROM contacts") == 4
    listed = {x["name"]: x["members"] for x in account.json("list", "list")}
    assert listed == {"vip": 4, "other": 2}


def test_list_show_unknown(account):
    assert "nope" in account.error("list", "show", "nope")
    assert "list list" in account.error("list", "show", "77")


def test_list_list_formats(account, tmp_path):
    assert account.json("list", "list") == []
    assert "No lists" in account("list", "list").stderr
    account("list", "create", "vip")
    account("list", "create", "all", "--bot-filter", "off")
    found = account.json("list", "list")
    assert [(x["name"], x["bot_filter"]) for x in found] == [("all", "off"), ("vip", "flag")]
    assert {"id", "name", "members", "bot_filter", "interstitial_meta"} <= set(found[0])
    csv_text = account("list", "list", "--format", "csv").stdout
    assert csv_text.splitlines()[0].startswith("id,name")
    table = account("list", "list").stdout
    assert "vip" in table and "all" in table
    out = tmp_path / "lists.json"
    account("list", "list", "--format", "json", "--output", out)
    assert json.loads(out.read_text(encoding="utf-8")) == found


# --- update -------------------------------------------------------------------------------------


def test_list_update_changes_settings(account, db):
    account("list", "create", "vip", "--interstitial-title", "Old", "--interstitial-meta", "og:a=1")
    updated = account.json(
        "list",
        "update",
        "vip",
        "--bot-filter",
        "confirm",
        "--min-human-seconds",
        "0",
        "--interstitial-title",
        "New",
        "--interstitial-cta",
        "Go",
    )
    assert updated["bot_filter"] == "confirm"
    assert updated["interstitial_title"] == "New"
    row = list_row(db, "vip")
    assert row["bot_filter"] == "confirm"
    assert row["min_human_seconds"] == 0
    assert row["interstitial_cta"] == "Go"
    # meta tags were not given, so they stay
    assert json.loads(row["interstitial_meta"]) == {"og:a": "1"}
    account("list", "update", "vip", "--interstitial-meta", "og:b=2")
    assert json.loads(list_row(db, "vip")["interstitial_meta"]) == {"og:b": "2"}


def test_list_update_rename(account, db):
    account("list", "create", "vip")
    account("list", "update", "vip", "--name", "VIP customers")
    assert [r[0] for r in db.execute("SELECT name FROM lists")] == ["VIP customers"]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--bot-filter", "inherit"], 2),
        (["--interstitial-meta", "novalue"], 1),
        (["--name", "other"], 1),
        (["--name", "OTHER"], 1),
        (["--name", "55"], 1),
        (["--min-human-seconds", "-3"], 2),
        (["--min-human-seconds", "90000"], 1),
    ],
)
def test_list_update_bad_values_change_nothing(account, db_path, args, code):
    account("list", "create", "vip")
    account("list", "create", "other")
    before = snapshot(db_path)
    account.error("list", "update", "vip", *args, code=code)
    assert snapshot(db_path) == before


def test_list_update_unknown(account, db_path):
    before = snapshot(db_path)
    assert "nope" in account.error("list", "update", "nope", "--bot-filter", "off")
    assert snapshot(db_path) == before
