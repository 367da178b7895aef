"""trackly creative: message templates with link slots, merge fields and URLs in the text."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import snapshot

from trackly_cli.core import store

TEMPLATE = (
    "Hi {{first_name|there}}! Summer sale: {{link1}} "
    "Also see {{ link2 }} and https://shop.example/faq. {{LINK1}} again, {{ city }}.\n"
)


@pytest.fixture
def account(cli):
    cli("account", "create", "acme")
    return cli


def template(tmp_path: Path, text: str | bytes, name: str = "template.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_creative_add_from_a_file(account, db, tmp_path):
    result = account("creative", "add", "summer", template(tmp_path, TEMPLATE))
    assert "summer" in result.stderr
    assert "link1, link2" in result.stderr
    rows = store.rows(db, "SELECT * FROM creatives")
    assert len(rows) == 1
    assert rows[0]["name"] == "summer"
    assert rows[0]["body"] == TEMPLATE.rstrip("\n")  # the editor's final newline is dropped
    assert rows[0]["created_at"].endswith("Z")


def test_creative_add_json_describes_the_template(account, tmp_path):
    added = account.json("creative", "add", "summer", template(tmp_path, TEMPLATE))
    assert added["name"] == "summer"
    assert added["account"] == "acme"
    assert added["body"] == TEMPLATE.rstrip("\n")
    assert added["slots"] == ["link1", "link2"]
    assert added["fields"] == ["first_name|there", "city"]
    assert added["urls"] == ["https://shop.example/faq"]
    assert added["messages"] == 0


def test_creative_show(account, tmp_path):
    added = account.json("creative", "add", "summer", template(tmp_path, TEMPLATE))
    shown = account.json("creative", "show", "summer")
    assert shown == added
    assert account.json("creative", "show", str(added["id"])) == shown
    assert account.json("creative", "show", "SUMMER") == shown
    table = account("creative", "show", "summer").stdout
    assert "link1" in table and "first_name" in table


def test_creative_list(account, tmp_path):
    assert account.json("creative", "list") == []
    assert "No creatives" in account("creative", "list").stderr
    account("creative", "add", "b-second", template(tmp_path, "Hello {{link1}}", "b.txt"))
    account("creative", "add", "a-first", template(tmp_path, "No links here, {{name|friend}}"))
    found = account.json("creative", "list")
    assert [(c["name"], c["slots"], c["fields"]) for c in found] == [
        ("a-first", [], ["name|friend"]),
        ("b-second", ["link1"], []),
    ]
    assert "b-second" in account("creative", "list").stdout
    out = tmp_path / "creatives.csv"
    account("creative", "list", "--format", "csv", "--output", out)
    assert "a-first" in out.read_text(encoding="utf-8")


def test_creative_add_from_stdin(account, db):
    account("creative", "add", "piped", "-", input="Flash sale {{link1}} {{first_name}}")
    shown = account.json("creative", "show", "piped")
    assert shown["body"] == "Flash sale {{link1}} {{first_name}}"
    assert shown["slots"] == ["link1"]
    assert shown["fields"] == ["first_name"]


def test_creative_add_from_stdin_bytes_with_non_ascii(account):
    account("creative", "add", "piped", "-", input="Olá {{first_name|amigo}} → {{link1}}".encode())
    assert (
        account.json("creative", "show", "piped")["body"] == "Olá {{first_name|amigo}} → {{link1}}"
    )


def test_inner_newlines_are_kept(account, tmp_path):
    account("creative", "add", "multi", template(tmp_path, "Line one {{link1}}\n\nLine two\r\n"))
    assert account.json("creative", "show", "multi")["body"] == "Line one {{link1}}\n\nLine two"


def test_a_utf8_bom_is_dropped(account, tmp_path):
    account("creative", "add", "bom", template(tmp_path, "\ufeffHi {{link1}}".encode()))
    assert account.json("creative", "show", "bom")["body"] == "Hi {{link1}}"


def test_duplicate_creative_name_is_refused(account, db_path, tmp_path):
    path = template(tmp_path, TEMPLATE)
    account("creative", "add", "summer", path)
    before = snapshot(db_path)
    for name in ("summer", "Summer", " SUMMER "):
        assert "already exists" in account.error("creative", "add", name, path)
    assert snapshot(db_path) == before


def test_the_same_creative_name_in_two_accounts(account, db, tmp_path):
    account("account", "create", "globex")
    path = template(tmp_path, TEMPLATE)
    account("creative", "add", "summer", path, "-a", "acme")
    account("creative", "add", "summer", path, "-a", "globex")
    assert store.scalar(db, "SELECT count(*) FROM creatives") == 2


def test_non_utf8_file_is_refused(account, db_path, tmp_path):
    before = snapshot(db_path)
    path = template(tmp_path, b"Hello {{link1}}\nCaf\xe9 tonight\n")
    message = account.error("creative", "add", "bad", path)
    assert "UTF-8" in message
    assert "line 2" in message
    assert snapshot(db_path) == before


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("Hi {{link1|fallback}}", "fallback"),
        ("Hi {{first name}} {{link1}}", "malformed"),
        ("Hi {{link1}", "malformed"),
        ("Hi link1}} there", "malformed"),
        ("x" * 5001, "longer"),
    ],
)
def test_bad_templates_are_refused(account, db_path, tmp_path, text, hint):
    before = snapshot(db_path)
    message = account.error("creative", "add", "bad", template(tmp_path, text))
    assert hint in message
    assert snapshot(db_path) == before


@pytest.mark.parametrize("bad", ["123", "", "x" * 101])
def test_bad_creative_names_are_refused(account, db_path, tmp_path, bad):
    before = snapshot(db_path)
    account.error("creative", "add", bad, template(tmp_path, TEMPLATE))
    assert snapshot(db_path) == before


def test_missing_file_is_an_error(account, db_path, tmp_path):
    before = snapshot(db_path)
    assert "nope.txt" in account.error("creative", "add", "x", tmp_path / "nope.txt")
    assert snapshot(db_path) == before


def test_creative_show_unknown(account):
    assert "nope" in account.error("creative", "show", "nope")


def test_creative_without_account_is_an_error(cli, tmp_path, db_path):
    cli("db", "migrate")
    before = snapshot(db_path)
    assert "account" in cli.error("creative", "add", "x", template(tmp_path, TEMPLATE))
    assert snapshot(db_path) == before
