"""trackly account and trackly domain: accounts, account selection, tracking hostnames."""

from __future__ import annotations

import pytest
from conftest import snapshot

from trackly_cli.cli import app
from trackly_cli.core import store


@pytest.fixture
def two_accounts(cli):
    cli("account", "create", "acme")
    cli("account", "create", "globex")
    return cli


# --- account create / list / show / update ----------------------------------------------------


def test_account_create_defaults(cli, db):
    result = cli("account", "create", "acme")
    assert "acme" in result.stderr
    assert result.stdout == ""  # messages for people go to stderr
    rows = store.rows(db, "SELECT * FROM accounts")
    assert len(rows) == 1
    assert rows[0]["name"] == "acme"
    assert rows[0]["retention_days"] == 90
    assert rows[0]["created_at"].endswith("Z")


def test_account_create_with_retention_days(cli, db):
    created = cli.json("account", "create", "acme", "--retention-days", "30")
    assert created["name"] == "acme"
    assert created["retention_days"] == 30
    row = store.row(db, "SELECT * FROM accounts WHERE id = ?", (created["id"],))
    assert row["retention_days"] == 30


@pytest.mark.parametrize("bad", ["0", "-5", "abc", "1.5"])
def test_account_create_with_bad_retention_days_is_a_usage_error(cli, db_path, bad):
    cli.error("account", "create", "acme", "--retention-days", bad, code=2)
    assert not db_path.exists() or snapshot(db_path).get("accounts", []) == []


def test_account_list_json(cli):
    cli("db", "migrate")
    assert cli.json("account", "list") == []
    cli("account", "create", "acme")
    cli("account", "create", "globex", "--retention-days", "7")
    found = cli.json("account", "list")
    assert [(a["name"], a["retention_days"]) for a in found] == [("acme", 90), ("globex", 7)]
    assert {"id", "name", "retention_days", "default_domain", "domains", "offers"} <= set(found[0])


def test_account_list_table_and_csv(cli, tmp_path):
    cli("account", "create", "acme")
    assert "acme" in cli("account", "list").stdout
    csv_text = cli("account", "list", "--format", "csv").stdout
    assert csv_text.splitlines()[0].startswith("id,name,retention_days")
    assert ",acme,90," in csv_text
    out = tmp_path / "accounts.json"
    cli("account", "list", "--format", "json", "--output", out)
    assert '"acme"' in out.read_text(encoding="utf-8")


def test_account_list_empty_table_says_so(cli):
    cli("db", "migrate")
    result = cli("account", "list")
    assert "No accounts" in result.stderr


def test_account_show_by_name_and_id(acme):
    by_name = acme.json("account", "show", "acme")
    by_id = acme.json("account", "show", str(by_name["id"]))
    assert by_name == by_id
    assert by_name["default_domain"] == "go.acme.test"
    assert by_name["domains"] == 1
    assert by_name["offers"] == 1
    assert acme.json("account", "show", "ACME")["id"] == by_name["id"]


def test_account_show_unknown(cli, db_path):
    cli("account", "create", "acme")
    message = cli.error("account", "show", "nope")
    assert "nope" in message
    assert "99" in cli.error("account", "show", "99")


def test_account_update_retention_and_name(cli, db):
    cli("account", "create", "acme")
    updated = cli.json("account", "update", "acme", "--retention-days", "365")
    assert updated["retention_days"] == 365
    renamed = cli.json("account", "update", "acme", "--name", "Acme Corp")
    assert renamed["name"] == "Acme Corp"
    assert renamed["retention_days"] == 365
    row = store.row(db, "SELECT * FROM accounts WHERE id = ?", (renamed["id"],))
    assert (row["name"], row["retention_days"]) == ("Acme Corp", 365)


@pytest.mark.parametrize("bad", ["0", "-1", "x"])
def test_account_update_bad_retention_is_a_usage_error(cli, db_path, bad):
    cli("account", "create", "acme")
    before = snapshot(db_path)
    cli.error("account", "update", "acme", "--retention-days", bad, code=2)
    assert snapshot(db_path) == before


def test_account_update_to_a_taken_name_is_refused(two_accounts, db_path):
    before = snapshot(db_path)
    message = two_accounts.error("account", "update", "acme", "--name", "GLOBEX")
    assert "already exists" in message
    assert snapshot(db_path) == before


def test_account_update_unknown(cli, db_path):
    cli("account", "create", "acme")
    before = snapshot(db_path)
    assert "nope" in cli.error("account", "update", "nope", "--retention-days", "5")
    assert snapshot(db_path) == before


def test_duplicate_account_name_is_refused(cli, db_path):
    cli("account", "create", "acme")
    before = snapshot(db_path)
    assert "already exists" in cli.error("account", "create", "acme")
    assert snapshot(db_path) == before


@pytest.mark.parametrize("other", ["ACME", "Acme", " acme "])
def test_account_names_are_unique_regardless_of_case(cli, db_path, other):
    cli("account", "create", "acme")
    before = snapshot(db_path)
    assert "already exists" in cli.error("account", "create", other)
    assert snapshot(db_path) == before


@pytest.mark.parametrize("bad", ["123", "007", "", "   ", "x" * 101, "tab\there"])
def test_bad_account_names_are_refused(cli, db_path, bad):
    cli("db", "migrate")
    before = snapshot(db_path)
    cli.error("account", "create", bad)
    assert snapshot(db_path) == before


def test_account_names_are_unique_regardless_of_case_beyond_ascii(cli, db_path):
    # SQLite's NOCASE folds only A-Z: "Bücher" and "BÜCHER" would be two accounts, and
    # `account show bücher` would not find "BÜCHER", unlike "acme" / "ACME"
    cli("account", "create", "Bücher")
    before = snapshot(db_path)
    assert "already exists" in cli.error("account", "create", "BÜCHER")
    assert snapshot(db_path) == before
    assert cli.json("account", "show", "BÜCHER")["name"] == "Bücher"


def test_a_reference_that_looks_numeric_but_is_not_an_id_is_a_clear_error(cli):
    # "²".isdigit() is True, but int("²") raises: no traceback may reach the user
    cli("account", "create", "acme")
    message = cli.error("account", "show", "²")
    assert "²" in message


def _one_line_failure(cli, *args):
    """A command that must fail (exit 1, or 2 for a usage error) with a message, no traceback."""
    result = cli.runner.invoke(app, [str(a) for a in args])
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.stderr.strip(), "expected an error message on stderr"
    assert "Traceback" not in result.output


def test_a_huge_retention_is_refused_without_a_traceback(cli, db_path):
    cli("account", "create", "acme")
    before = snapshot(db_path)
    _one_line_failure(cli, "account", "create", "big", "--retention-days", "9" * 20)
    _one_line_failure(cli, "account", "update", "acme", "--retention-days", "9" * 20)
    assert snapshot(db_path) == before


def test_account_update_to_a_digit_only_name_is_refused(cli, db_path):
    cli("account", "create", "acme")
    before = snapshot(db_path)
    assert "digits" in cli.error("account", "update", "acme", "--name", "123")
    assert snapshot(db_path) == before


def test_digit_only_name_explains_why(cli):
    assert "digits" in cli.error("account", "create", "2024")


def test_account_name_is_stripped(cli, db):
    cli("account", "create", "  acme  ")
    assert [r["name"] for r in store.rows(db, "SELECT * FROM accounts")] == ["acme"]


# --- account selection --------------------------------------------------------------------------


def test_the_only_account_is_implied(cli, db):
    cli("account", "create", "acme")
    cli("list", "create", "vip")
    assert store.scalar(db, "SELECT count(*) FROM lists") == 1


def test_account_option_by_name_and_id(two_accounts, db):
    two_accounts("list", "create", "a-list", "--account", "acme")
    globex_id = db.execute("SELECT id FROM accounts WHERE name = 'globex'").fetchone()[0]
    two_accounts("list", "create", "g-list", "--account", str(globex_id))
    two_accounts("list", "create", "g-list-2", "-a", "GLOBEX")
    owners = dict(
        db.execute(
            "SELECT l.name, a.name FROM lists l JOIN accounts a ON a.id = l.account_id"
        ).fetchall()
    )
    assert owners == {"a-list": "acme", "g-list": "globex", "g-list-2": "globex"}


def test_account_from_the_environment(two_accounts, db, monkeypatch):
    monkeypatch.setenv("TRACKLY_ACCOUNT", "globex")
    two_accounts("list", "create", "from-env")
    owner = db.execute(
        "SELECT a.name FROM lists l JOIN accounts a ON a.id = l.account_id"
    ).fetchone()[0]
    assert owner == "globex"
    # the option wins over the environment
    two_accounts("list", "create", "from-option", "--account", "acme")
    owner = db.execute(
        "SELECT a.name FROM lists l JOIN accounts a ON a.id = l.account_id"
        " WHERE l.name = 'from-option'"
    ).fetchone()[0]
    assert owner == "acme"


def test_several_accounts_and_none_chosen_lists_them(two_accounts, db_path):
    before = snapshot(db_path)
    message = two_accounts.error("list", "create", "vip")
    assert "acme" in message and "globex" in message
    assert "--account" in message
    assert snapshot(db_path) == before
    for command in (
        ["offer", "list"],
        ["list", "list"],
        ["creative", "list"],
        ["contacts", "list"],
        ["domain", "add", "go.acme.test"],
        ["offer", "create", "x", "--url", "https://shop.example/"],
    ):
        message = two_accounts.error(*command)
        assert "acme" in message and "globex" in message, command
    assert snapshot(db_path) == before


def test_no_account_yet_is_a_clear_error(cli, db_path):
    cli("db", "migrate")
    before = snapshot(db_path)
    for command in (
        ["list", "create", "vip"],
        ["offer", "create", "x", "--url", "https://shop.example/"],
        ["domain", "add", "go.acme.test"],
        ["offer", "list"],
    ):
        message = cli.error(*command)
        assert "account create" in message, command
    assert snapshot(db_path) == before


def test_unknown_account_option(cli, db_path, monkeypatch):
    cli("account", "create", "acme")
    before = snapshot(db_path)
    assert "nope" in cli.error("list", "create", "vip", "--account", "nope")
    assert "nope" in cli.error("domain", "add", "go.acme.test", "--account", "nope")
    assert "nope" in cli.error("domain", "list", "--account", "nope")
    monkeypatch.setenv("TRACKLY_ACCOUNT", "ghost")
    assert "ghost" in cli.error("offer", "list")
    assert snapshot(db_path) == before


# --- domain add ---------------------------------------------------------------------------------


def test_domain_add_normalises_and_becomes_default(cli, db):
    cli("account", "create", "acme")
    result = cli("domain", "add", "Go.Acme.TEST", "--account", "acme")
    assert "go.acme.test" in result.stderr
    rows = store.rows(db, "SELECT * FROM domains")
    assert len(rows) == 1
    assert rows[0]["hostname"] == "go.acme.test"
    assert rows[0]["scheme"] == "https"
    assert rows[0]["is_default"] == 1


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Go.Acme.TEST", "go.acme.test"),
        ("go.acme.test.", "go.acme.test"),
        ("  go.acme.test  ", "go.acme.test"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("localhost", "localhost"),
        ("a-b.c-d.example", "a-b.c-d.example"),
    ],
)
def test_domain_hostnames_are_normalised(cli, db, typed, stored):
    cli("account", "create", "acme")
    added = cli.json("domain", "add", typed)
    assert added["hostname"] == stored
    assert [r["hostname"] for r in store.rows(db, "SELECT * FROM domains")] == [stored]


@pytest.mark.parametrize(
    "bad",
    [
        "https://go.acme.test",
        "http://go.acme.test/",
        "go.acme.test/path",
        "go.acme.test?x=1",
        "go.acme.test#top",
        "user@go.acme.test",
        "go.acme.test:8080",
        "127.0.0.1",
        "10.1.2.3",
        "::1",
        "[::1]",
        "-bad.example",
        "bad-.example",
        "a..example",
        "under_score.example",
        "sp ace.example",
        "x" * 64 + ".example",
        ("a" * 60 + ".") * 5 + "example",
        "go.acme.123",
        "",
        "   ",
        ".",
    ],
)
def test_invalid_hostnames_are_refused(cli, db_path, bad):
    cli("account", "create", "acme")
    before = snapshot(db_path)
    cli.error("domain", "add", "--account", "acme", "--", bad)
    assert snapshot(db_path) == before


def test_hostname_errors_explain(cli):
    cli("account", "create", "acme")
    assert "scheme" in cli.error("domain", "add", "https://go.acme.test")
    assert "port" in cli.error("domain", "add", "go.acme.test:8080")
    assert "IP address" in cli.error("domain", "add", "192.0.2.1")
    assert "path" in cli.error("domain", "add", "go.acme.test/x")


def test_idna_follows_idna2008_as_browsers_do(cli, db):
    # Python's "idna" codec is IDNA 2003, which maps ß to "ss": the operator's real domain
    # faß.example is xn--fa-hia.example, the Host header browsers send; fass.example is another
    cli("account", "create", "acme")
    assert cli.json("domain", "add", "faß.example")["hostname"] == "xn--fa-hia.example"


def test_unicode_and_punycode_forms_are_the_same_hostname(two_accounts, db_path):
    two_accounts("domain", "add", "bücher.example", "--account", "acme")
    before = snapshot(db_path)
    message = two_accounts.error("domain", "add", "xn--bcher-kva.example", "--account", "globex")
    assert "acme" in message
    assert snapshot(db_path) == before
    assert "xn--bcher-kva.example" in two_accounts("domain", "remove", "BÜCHER.example").stderr


def test_same_hostname_on_a_second_account_is_refused(two_accounts, db_path):
    two_accounts("domain", "add", "go.acme.test", "--account", "acme")
    before = snapshot(db_path)
    message = two_accounts.error("domain", "add", "GO.ACME.TEST.", "--account", "globex")
    assert "go.acme.test" in message
    assert "acme" in message
    assert snapshot(db_path) == before
    # and twice on the same account
    assert "already" in two_accounts.error("domain", "add", "go.acme.test", "--account", "acme")
    assert snapshot(db_path) == before


def test_first_domain_is_default_and_default_option_switches(cli, db):
    cli("account", "create", "acme")
    cli("domain", "add", "one.acme.test")
    cli("domain", "add", "two.acme.test")
    defaults = dict(db.execute("SELECT hostname, is_default FROM domains").fetchall())
    assert defaults == {"one.acme.test": 1, "two.acme.test": 0}
    cli("domain", "add", "three.acme.test", "--default")
    defaults = dict(db.execute("SELECT hostname, is_default FROM domains").fetchall())
    assert defaults == {"one.acme.test": 0, "two.acme.test": 0, "three.acme.test": 1}
    assert cli.json("account", "show", "acme")["default_domain"] == "three.acme.test"


def test_each_account_has_its_own_default(two_accounts, db):
    two_accounts("domain", "add", "go.acme.test", "--account", "acme")
    two_accounts("domain", "add", "go.globex.test", "--account", "globex")
    rows = db.execute(
        "SELECT a.name, d.hostname FROM domains d JOIN accounts a ON a.id = d.account_id"
        " WHERE d.is_default ORDER BY a.name"
    ).fetchall()
    assert rows == [("acme", "go.acme.test"), ("globex", "go.globex.test")]


def test_domain_default_command_switches(cli, db):
    cli("account", "create", "acme")
    cli("domain", "add", "one.acme.test")
    cli("domain", "add", "two.acme.test")
    result = cli("domain", "default", "Two.Acme.Test")
    assert "two.acme.test" in result.stderr
    defaults = dict(db.execute("SELECT hostname, is_default FROM domains").fetchall())
    assert defaults == {"one.acme.test": 0, "two.acme.test": 1}


def test_domain_default_unknown(cli, db_path):
    cli("account", "create", "acme")
    cli("domain", "add", "one.acme.test")
    before = snapshot(db_path)
    assert "nope.test" in cli.error("domain", "default", "nope.test")
    cli.error("domain", "default", "https://one.acme.test")
    assert snapshot(db_path) == before


def test_http_option_gives_scheme_http(cli, db):
    cli("account", "create", "acme")
    added = cli.json("domain", "add", "localhost", "--http")
    assert added["scheme"] == "http"
    assert store.row(db, "SELECT * FROM domains WHERE id = ?", (added["id"],))["scheme"] == "http"
    cli("offer", "create", "x", "--url", "https://shop.example/")
    shown = cli.json("offer", "show", "x")
    assert shown["postback_url"].startswith("http://localhost/conv/offer?")


def test_domain_list_json_and_account_filter(two_accounts):
    two_accounts("domain", "add", "go.acme.test", "--account", "acme")
    two_accounts("domain", "add", "go.globex.test", "--account", "globex", "--http")
    everything = two_accounts.json("domain", "list")
    assert [(d["hostname"], d["account"], d["scheme"], d["is_default"]) for d in everything] == [
        ("go.acme.test", "acme", "https", True),
        ("go.globex.test", "globex", "http", True),
    ]
    only = two_accounts.json("domain", "list", "--account", "globex")
    assert [d["hostname"] for d in only] == ["go.globex.test"]


def test_domain_list_empty(cli):
    cli("account", "create", "acme")
    assert cli.json("domain", "list") == []
    assert "No domains" in cli("domain", "list").stderr


# --- domain remove ------------------------------------------------------------------------------


def test_domain_remove_an_unused_domain(cli, db):
    cli("account", "create", "acme")
    cli("domain", "add", "one.acme.test")
    cli("domain", "add", "two.acme.test")
    result = cli("domain", "remove", "ONE.acme.test")
    assert "one.acme.test" in result.stderr
    rows = db.execute("SELECT hostname, is_default FROM domains").fetchall()
    # the default moved to the remaining domain
    assert rows == [("two.acme.test", 1)]
    cli("domain", "remove", "two.acme.test")
    assert store.scalar(db, "SELECT count(*) FROM domains") == 0
    # a removed hostname can be added again, by any account
    cli("domain", "add", "one.acme.test")
    assert store.scalar(db, "SELECT count(*) FROM domains") == 1


def test_domain_remove_unknown(cli, db_path):
    cli("account", "create", "acme")
    cli("domain", "add", "one.acme.test")
    before = snapshot(db_path)
    assert "nope.test" in cli.error("domain", "remove", "nope.test")
    cli.error("domain", "remove", "one.acme.test:80")
    assert snapshot(db_path) == before


def test_domain_remove_refuses_a_domain_that_messages_use(cli, db_path, db):
    cli("account", "create", "acme")
    added = cli.json("domain", "add", "go.acme.test")
    db.execute(
        "INSERT INTO messages (account_id, domain_id, body, segments, encoding, created_at)"
        " VALUES (?, ?, 'hello', 1, 'GSM-7', '2026-01-01T00:00:00.000000Z')",
        (db.execute("SELECT id FROM accounts").fetchone()[0], added["id"]),
    )
    before = snapshot(db_path)
    message = cli.error("domain", "remove", "go.acme.test")
    assert "go.acme.test" in message
    assert "1 message" in message
    assert snapshot(db_path) == before
