"""Listings page in SQL (#14, point 6): --limit N and --all, 50 rows of a table by default, every
row of JSON and CSV, and a line saying how many there are in all. On both stores."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
from conftest import BROWSER_UA, HUMAN_HEADERS, query

from trackly_cli.core import contacts, store


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path) -> str:
    """The database of the test: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "paging.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def listed(cli, target, tmp_path: Path):
    """`trackly --db TARGET …` on an account with 120 contacts in list vip, two offers, two
    lists, two creatives, two domains, two deny ranges and three conversions."""

    def run(*args, code: int = 0):
        return cli("--db", target, *args, code=code)

    run.target = target
    run("account", "create", "acme")
    run("account", "create", "beta")
    run("domain", "add", "go.acme.test", "--account", "acme")
    run("domain", "add", "go2.acme.test", "--account", "acme")
    for name in ("Summer", "Winter"):
        run("offer", "create", name, "--url", "https://shop.example/", "-a", "acme")
    run("list", "create", "vip", "-a", "acme")
    run("list", "create", "other", "-a", "acme")
    phones = "\n".join(f"+1202555{n:04d}" for n in range(120))
    (tmp_path / "c.csv").write_text(f"phone\n{phones}\n", encoding="utf-8")
    run("contacts", "import", "vip", tmp_path / "c.csv", "-a", "acme")
    (tmp_path / "a.txt").write_text("A {{link1}}", encoding="utf-8")
    (tmp_path / "b.txt").write_text("B {{link1}}", encoding="utf-8")
    run("creative", "add", "a", tmp_path / "a.txt", "-a", "acme")
    run("creative", "add", "b", tmp_path / "b.txt", "-a", "acme")
    run("bots", "ranges", "add", "203.0.113.7", "198.51.100.0/24")
    sent = json.loads(
        run(
            "shorten", tmp_path / "a.txt", "--link", "link1=Summer", "-a", "acme", "-f", "json"
        ).stdout
    )
    rows = "".join(f"{sent['links'][0]['id']},sale,1.00,T{n}\n" for n in range(3))
    (tmp_path / "conv.csv").write_text(f"link_id,event,revenue,txn_id\n{rows}", encoding="utf-8")
    run("conversions", "import", tmp_path / "conv.csv", "-a", "acme")
    return run


def footer(result) -> str:
    return result.stderr.strip()


def test_contacts_list_shows_50_rows_of_a_table_and_says_how_many_there_are(listed):
    result = listed("contacts", "list", "-a", "acme")
    assert result.stdout.count("+1202555") == 50
    assert footer(result) == "showing 50 of 120 — use --limit N or --all"
    # --limit N, --all; JSON and CSV have every row, and no footer
    limited = listed("contacts", "list", "-a", "acme", "--limit", "7")
    assert limited.stdout.count("+1202555") == 7
    assert footer(limited) == "showing 7 of 120 — use --limit N or --all"
    every = listed("contacts", "list", "-a", "acme", "--all")
    assert every.stdout.count("+1202555") == 120 and footer(every) == ""
    as_json = listed("contacts", "list", "-a", "acme", "-f", "json")
    assert len(json.loads(as_json.stdout)) == 120 and footer(as_json) == ""
    as_csv = listed("contacts", "list", "-a", "acme", "-f", "csv")
    assert len(list(csv.DictReader(io.StringIO(as_csv.stdout)))) == 120
    assert (
        len(
            json.loads(
                listed("contacts", "list", "-a", "acme", "-f", "json", "--limit", "3").stdout
            )
        )
        == 3
    )
    # (exactly as many as the limit: nothing more to say)
    assert footer(listed("contacts", "list", "-a", "acme", "--limit", "120")) == ""
    assert listed(
        "contacts", "list", "-a", "acme", "--list", "vip", "--limit", "2"
    ).stderr.strip() == ("showing 2 of 120 — use --limit N or --all")


@pytest.mark.parametrize(
    ("args", "shown", "total"),
    [
        (("account", "list"), 1, 2),
        (("offer", "list", "-a", "acme"), 1, 2),
        (("list", "list", "-a", "acme"), 1, 2),
        (("creative", "list", "-a", "acme"), 1, 2),
        (("domain", "list"), 1, 2),
        (("conversions", "list", "-a", "acme"), 1, 3),
        (("conversions", "-a", "acme"), 1, 3),
        (("bots", "ranges", "list", "--cidrs"), 1, 2),
    ],
)
def test_every_listing_pages(listed, args, shown, total):
    table = listed(*args, "--limit", str(shown))
    assert footer(table) == f"showing {shown} of {total} — use --limit N or --all"
    assert len(json.loads(listed(*args, "-f", "json").stdout)) == total
    assert len(json.loads(listed(*args, "-f", "json", "--limit", str(shown)).stdout)) == shown
    assert footer(listed(*args, "--all")) == ""


def test_limit_and_all_are_a_usage_error_in_one_line(listed):
    before = query(listed.target, "SELECT count(*) AS n FROM contacts")
    result = listed("contacts", "list", "-a", "acme", "--limit", "3", "--all", code=2)
    message = result.stderr.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert "--limit and --all exclude each other" in message
    assert "Traceback" not in result.output and result.stdout == ""
    for bad in ("0", "x", "-1"):
        message = listed("contacts", "list", "-a", "acme", "--limit", bad, code=2).stderr.strip()
        assert message.startswith("Error: ") and "\n" not in message, message
    assert query(listed.target, "SELECT count(*) AS n FROM contacts") == before


def test_ranges_list_cidrs_lists_the_ranges(listed):
    ranges = listed("bots", "ranges", "list", "--cidrs", "-f", "json").stdout
    assert {(r["kind"], r["cidr"]) for r in json.loads(ranges)} == {
        ("deny", "203.0.113.7/32"),
        ("deny", "198.51.100.0/24"),
    }
    summary = json.loads(listed("bots", "ranges", "list", "-f", "json").stdout)
    assert [(r["kind"], r["ranges"]) for r in summary] == [("deny", 2)]


def test_clicks_list_pages_and_is_the_bare_clicks(cli, campaign, webapp):
    app = webapp()
    for link in campaign["links"][:3]:
        app.get(f"/{link['id']}", headers=HUMAN_HEADERS)
    assert cli.json("clicks", "list") == cli.json("clicks")
    assert len(cli.json("clicks", "list")) == 3
    table = cli("clicks", "list", "--format", "table", "--limit", "2")
    assert table.stdout.count("Summer Sale") + table.stdout.count("plain") <= 2
    assert footer(table) == "showing 2 of 3 — use --limit N or --all"
    assert footer(cli("clicks", "--format", "table", "--limit", "2")) == footer(table)
    csv_rows = list(csv.DictReader(io.StringIO(cli("clicks", "list", "--limit", "1").stdout)))
    assert len(csv_rows) == 1 and csv_rows[0]["user_agent"] == BROWSER_UA
    assert "--humans" in cli.error("clicks", "list", "--bots", "--humans")


def test_a_99k_contact_listing_reads_one_page_not_the_table(acme, db_path: Path):
    """`contacts list` on 99,358 contacts took 108 s: it built the whole table. It now reads 50
    rows with LIMIT and counts the rest with count(*)."""
    acme("list", "create", "big")
    conn = store.open_db(db_path)
    try:
        with store.write(conn):
            conn.executemany(
                "INSERT INTO contacts (account_id, phone, fields, created_at, updated_at)"
                " VALUES (1, ?, '{\"first_name\": \"Ann\"}', '2026-01-01T00:00:00.000000Z',"
                " '2026-01-01T00:00:00.000000Z')",
                [(f"+1{n:010d}",) for n in range(99_358)],
            )
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        page = contacts.list_contacts(conn, None, limit=50)
        conn.set_trace_callback(None)
    finally:
        conn.close()
    assert (len(page.rows), page.total) == (50, 99_358)
    assert any("LIMIT" in s for s in statements) and any("count(*)" in s for s in statements)
    started = time.perf_counter()
    result = acme("contacts", "list")
    elapsed = time.perf_counter() - started
    assert result.stdout.count("+1") == 50
    assert result.stderr.strip() == "showing 50 of 99,358 — use --limit N or --all"
    assert elapsed < 5, f"contacts list took {elapsed:.1f} s"
