"""One grammar (#14, point 7) and reports that fit 80 columns (point 6): noun verb everywhere,
one-line usage errors, plain placeholders in help, -V, bots check --ip, shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HUMAN_HEADERS
from typer.main import get_command

from trackly_cli import __version__, completion
from trackly_cli.cli import app
from trackly_cli.core import reports

ROOT = Path(__file__).resolve().parents[1]
LONG = "spring-clearance-for-our-very-best-customers-2026"
COMPACT_HEADERS = ["sent", "clicks", "bots", "unique", "rate", "conv", "revenue"]


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "grammar.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def clicked(cli, campaign, webapp, tmp_path):
    """The conftest campaign `spring` with clicks and a sale, and a second campaign whose name is
    longer than an 80-column table leaves room for."""
    app = webapp()
    for link in campaign["links"]:
        app.get(f"/{link['id']}", headers=HUMAN_HEADERS)
    link = campaign["by_slot"]["link1"][0]["id"]
    app.get(f"/conv?link_id={link}&revenue=123456.78&txn_id=A1")
    cli("shorten", "msg.txt", "--list", "vip", "--link", "link1=Summer Sale", "--link",
        "link2=https://plain.example/", "--campaign", LONG)  # fmt: skip
    return cli


# -- reports in 80 columns -----------------------------------------------------------------------


def report_args(by: str) -> list[str]:
    return ["report", "--by", by, *(["--campaign", "spring"] if by == "message" else [])]


@pytest.mark.parametrize("by", reports.DIMENSIONS)
def test_the_default_report_fits_80_columns_and_cuts_nothing(clicked, monkeypatch, by):
    monkeypatch.setenv("COLUMNS", "80")
    args = report_args(by)
    text = clicked(*args).stdout
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert "…" not in text, text
    header = next(line for line in lines if " sent " in f" {line} ")
    for name in COMPACT_HEADERS:  # every header whole
        assert f" {name} " in f" {header} ", (name, header)
    # every number whole: each row's figures are in the table as they are in JSON
    body = " ".join(text.split())
    for row in clicked.json(*args):
        assert row["revenue"] in body
        assert f" {row['sent']:,} " in f" {body} "
        if row["click_rate"] is not None:
            assert f"{row['click_rate']}%" in body
    if by == "campaign":  # the long name folds across lines rather than being cut
        assert LONG not in text and LONG[:12] in text


def test_wide_shows_every_column_and_columns_picks(clicked):
    wide = clicked("report", "--wide").stdout
    for header in ("bot clicks", "bot pct", "unique clicks", "click rate", "conversion rate",
                   "payout", "epc", "unattributed conversions"):  # fmt: skip
        assert header in wide, header
    compact = clicked("report").stdout
    assert "payout" not in compact and "epc" not in compact
    picked = clicked("report", "--columns", "revenue,epc,unique").stdout
    header = next(line for line in picked.splitlines() if "revenue" in line).split()
    assert header == ["campaign", "revenue", "epc", "unique"]
    same = clicked("report", "--columns", "revenue,epc,unique_clicks").stdout
    assert same == picked


def test_json_and_csv_keep_every_column_whatever_the_table_shows(clicked):
    for fmt in ("json", "csv"):
        plain = clicked("report", "--by", "offer", "-f", fmt).stdout
        assert clicked("report", "--by", "offer", "-f", fmt, "--wide").stdout == plain
        assert clicked("report", "--by", "offer", "-f", fmt, "--columns", "sent").stdout == plain
    keys = list(clicked.json("report", "--by", "offer")[0])
    assert keys == reports.columns("offer")


@pytest.mark.parametrize(
    "args",
    [
        ("--columns", "sent,nope"),
        ("--columns", ""),
        ("--wide", "--columns", "sent"),
    ],
)
def test_bad_columns_are_a_one_line_usage_error(clicked, args):
    result = clicked("report", *args, code=2)
    message = result.stderr.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert result.stdout == ""
    if "nope" in args[1]:
        assert "no column 'nope'" in message and "revenue" in message and "unique" in message


# -- usage errors, help, version -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("report", "--foo"), "(try: trackly report --help)"),
        (("--foo",), "No such option: --foo (try: trackly --help)"),
        (("report", "--by", "nope"), "'nope' is not one of"),
        (("contacts", "list", "--limit", "x"), "--limit"),
        (("account", "show"), "Missing argument 'NAME'"),
        (("nothing",), "No such command 'nothing'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(cli, args, words):
    result = cli(*args, code=2)
    message = result.stderr.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert words in message
    assert "╭" not in result.output and "Usage:" not in result.output


def test_a_group_alone_still_shows_its_help(cli):
    result = cli("contacts", code=2)
    assert "Usage:" in result.output and "Error" not in result.output


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(cli, flag):
    assert cli(flag).stdout == f"trackly {__version__}\n"


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_shows_plain_placeholders_not_python_types(cli):
    pages = [cli(*path, "--help").stdout for path, _ in _commands(get_command(app))]
    text = "\n".join(pages)
    for python in ("<str>", "<int", "<bool>", "<float", "<path>", "<file>", "<Path"):
        assert python not in text, python
    report = cli("report", "--help").stdout
    for placeholder in ("--campaign  ", "NAME", "DATE", "N ", "FILE", "A,B,…"):
        assert placeholder in report, placeholder
    assert "--install-completion" in cli("--help").stdout


# -- noun verb -----------------------------------------------------------------------------------


def test_contacts_show_is_contact_show(clicked):
    phone = "+12025550143"
    assert clicked.json("contacts", "show", phone) == clicked.json("contact", "show", phone)
    assert clicked("contacts", "show", phone).stdout == clicked("contact", "show", phone).stdout
    assert "no contact" in clicked.error("contacts", "show", "+12025550199")


def test_conversions_list_is_the_bare_conversions(clicked):
    listed = clicked.json("conversions", "list")
    assert listed == clicked.json("conversions") and len(listed) == 1
    assert clicked("conversions", "list").stdout == clicked("conversions").stdout


# -- bots check --ip -----------------------------------------------------------------------------


def test_bots_check_ip_alone(cli, target):
    cli("--db", target, "account", "create", "acme")
    cli("--db", target, "bots", "ranges", "add", "203.0.113.0/24")
    denied = cli.json("--db", target, "bots", "check", "--ip", "203.0.113.9")
    assert denied["is_bot"] is True and denied["user_agent"] is None
    assert denied["reasons"] == ["IP on the deny list (manual)"]
    assert cli("--db", target, "bots", "check", "--ip", "192.0.2.1").stdout.strip() == "human"
    # with a user agent, the whole verdict as before
    both = cli.json("--db", target, "bots", "check", "--ua", "curl/8.0", "--ip", "203.0.113.9")
    assert both["is_bot"] and "IP on the deny list (manual)" in both["reasons"]
    for bad in ("nonsense", "999.1.1.1", "203.0.113.0/24"):
        message = cli.error("--db", target, "bots", "check", "--ip", bad)
        assert f"--ip {bad!r} is not an IP address" in message
    assert "--ua, --ip" in cli.error("--db", target, "bots", "check")


# -- shell completion ----------------------------------------------------------------------------


def complete(words: str, env_db: str | None = None) -> list[str]:
    """What Tab offers for `words` (the word being completed is the last, maybe empty), through
    Typer's completion protocol in a process of its own, as a shell would ask."""
    parts = words.split(" ")
    env = dict(
        os.environ,
        _TRACKLY_COMPLETE="complete_bash",
        COMP_WORDS=words,
        COMP_CWORD=str(len(parts) - 1),
        PYTHONPATH=str(ROOT),
    )
    env.pop("TRACKLY_DB", None)
    if env_db:
        env["TRACKLY_DB"] = env_db
    done = subprocess.run(
        [sys.executable, "-c", "from trackly_cli.cli import app; app(prog_name='trackly')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.split()


@pytest.mark.slow  # (a process of its own per Tab, as a shell starts)
def test_completion_offers_account_list_offer_and_campaign_names(cli, target, tmp_path):
    cli("--db", target, "account", "create", "acme")
    cli("--db", target, "account", "create", "beta")
    cli("--db", target, "domain", "add", "go.acme.test", "--account", "acme")
    cli("--db", target, "offer", "create", "Summer", "--url", "https://s.example/", "-a", "acme")
    cli("--db", target, "offer", "create", "Spring", "--url", "https://s.example/", "-a", "acme")
    cli("--db", target, "offer", "create", "Sol", "--url", "https://s.example/", "-a", "beta")
    cli("--db", target, "list", "create", "vip", "-a", "acme")
    (tmp_path / "m.txt").write_text("Hi {{link1}}", encoding="utf-8")
    cli("--db", target, "shorten", "m.txt", "--link", "link1=Summer", "--campaign", "june",
        "-a", "acme")  # fmt: skip
    db = f"--db {target}"
    assert complete(f"trackly {db} report --account ") == ["acme", "beta"]
    assert complete(f"trackly {db} offer show -a acme S") == ["Spring", "Summer"]
    assert complete(f"trackly {db} offer show S") == ["Sol", "Spring", "Summer"]
    assert complete(f"trackly {db} report --offer Su") == ["Summer"]
    assert complete(f"trackly {db} contacts list --list ") == ["vip"]
    assert complete(f"trackly {db} ab ") == ["june"]
    assert complete(f"trackly {db} report --campaign j") == ["june"]
    assert complete("trackly report --campaign ", env_db=target) == ["june"]
    # the callbacks themselves, as Typer calls them
    ctx = get_command(app).make_context("trackly", ["--db", target, "report"])
    assert completion.accounts(ctx, "a") == ["acme"]


@pytest.mark.slow  # (a process of its own per Tab, as a shell starts)
def test_completion_says_nothing_when_the_database_cannot_answer(tmp_path):
    missing = tmp_path / "missing.db"
    assert complete(f"trackly --db {missing} report --account ") == []
    assert not missing.exists()  # (completion never makes a database)
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    assert complete(f"trackly --db {tmp_path / 'junk.db'} offer show ") == []
    assert complete("trackly --db postgresql://nobody@127.0.0.1:1/x report --list ") == []


@pytest.mark.parametrize("noun", ["clicks", "conversions"])
def test_options_before_list_are_refused_not_dropped(acme, noun):
    """`trackly clicks --bots list` would list every click, bots or not: refused instead."""
    message = acme.error(noun, "--limit", "1", "list", code=2)
    assert message == (
        f"Error: put the options after the command: trackly {noun} list --limit …"
        f" (try: trackly {noun} --help)"
    )
    acme(noun, "list", "--limit", "1")


def test_a_group_name_is_shown_as_written_not_as_markup(clicked, tmp_path):
    clicked("shorten", "msg.txt", "--list", "vip", "--link", "link1=Summer Sale", "--link",
            "link2=https://plain.example/", "--campaign", "[red]x")  # fmt: skip
    assert " [red]x " in clicked("report").stdout
