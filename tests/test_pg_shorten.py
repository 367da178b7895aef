"""Shorten, contacts, creatives, lists, domains, accounts and offers on PostgreSQL (#13): the same
commands give the same output and the same rows as on SQLite (link ids and times aside), and
what PostgreSQL does differently is handled: concurrent shortens number their messages apart,
ids the code gives itself leave the identity sequence past them, a killed run is replaced by
a rerun. Real servers only (`eval "$(.ci/postgres start)"`)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import wait_for

from trackly_cli.core import campaigns, lookup, store
from trackly_cli.core.errors import NotFound

LINK_URL = re.compile(r"(https?://[a-z0-9.-]+/)[0-9A-Za-z]{7}(?![0-9A-Za-z])")
LINK_ID = re.compile(r"^[0-9A-Za-z]{7}$")
VARYING = {"created_at", "updated_at", "postback_secret", "postback_url", "added_at"}
NOW = "2026-01-01T00:00:00.000000Z"


def steady(value, key: str | None = None):
    """`value` with what differs by nature between two runs left out: times, secrets and the
    random link ids (a short URL keeps its host)."""
    if isinstance(value, dict):
        return {k: steady(v, k) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [steady(v) for v in value]
    if isinstance(value, str):
        if key == "id" and LINK_ID.match(value) and not value.isdigit():
            return "<link>"
        return LINK_URL.sub(r"\1<link>", value)
    return value


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def files(folder: Path) -> None:
    """The contacts and templates of the scenario."""
    write(
        folder / "c1.csv",
        "phone,First Name,city\n+12025550143,Ann,Paris\n(202) 555-0144,Bob,\n"
        "+12025550145,,Lyon\nnot a phone,X,Y\n+12025550146,Dé,Köln\n",
    )
    # A re-import: fields merged into what the contacts have (a new one, a changed one, one
    # left as it was), a contact twice, a new contact.
    write(
        folder / "c2.csv",
        "phone,first_name,zip\n+12025550143,Anne,75001\n+12025550147,Eve,1000\n"
        "+12025550143,Annie,\n+12025550144,,20500\n",
    )
    write(folder / "c3.csv", "phone,first_name\n+12025550148,Zed\n+12025550143,Ann\n")
    write(
        folder / "a.txt", "Hi {{first_name|there}}! Sale: {{link1}} More: https://example.org/a\n"
    )
    write(folder / "b.txt", "{{first_name|Friend}}, from {{city|home}}: {{link1}} {{link2}} 😀")
    write(folder / "promo.txt", "Deals for {{phone}} in {{zip|your area}}: {{link1}}")
    write(folder / "one.txt", "One-off: {{link1}} and https://example.org/x?y=1")
    write(folder / "bad.txt", "Hi {{city}} {{link1}}")


SETUP = [
    ("account", "create", "acme", "--retention-days", "30"),
    ("account", "create", "Globex"),
    ("account", "update", "Globex", "--retention-days", "60", "--anonymize-ips-after", "7"),
    ("domain", "add", "go.acme.test", "--account", "acme"),
    ("domain", "add", "promo.acme.test", "--account", "acme"),
    ("domain", "add", "old.acme.test", "--account", "acme", "--default"),
    ("domain", "add", "globex.test", "--account", "Globex", "--http"),
    ("domain", "add", "spare.acme.test", "--account", "acme"),
    (
        "offer",
        "create",
        "Summer Sale",
        "-a",
        "acme",
        "--url",
        "https://shop.example/s?sub={link_id}",
    ),
    ("offer", "create", "Electronics", "-a", "acme", "--url", "https://shop.example/e"),
    ("offer", "update", "Electronics", "-a", "acme", "--payout", "1.25", "--require-secret"),
    ("offer", "rotate-secret", "Electronics", "-a", "acme"),
    ("list", "create", "vip", "-a", "acme"),
    ("list", "update", "vip", "-a", "acme", "--bot-filter", "confirm", "--interstitial-title", "T"),
    ("list", "create", "other", "-a", "acme", "--min-human-seconds", "3.5"),
    ("contacts", "import", "vip", "c1.csv", "-a", "acme"),
    ("contacts", "import", "vip", "c2.csv", "-a", "acme"),
    ("contacts", "import", "other", "c3.csv", "-a", "acme"),
    ("creative", "add", "promo", "promo.txt", "-a", "acme"),
]
SENDS = [
    (
        *("shorten", "a.txt", "b.txt", "--list", "vip", "--split", "30,70", "--seed", "s1"),
        *("--campaign", "spring", "--link", "link1=Summer Sale"),
        *("--link", "link2=https://plain.example/page?x={link_id}", "-a", "acme"),
    ),
    (
        *("shorten", "--creative", "promo", "--list", "vip", "--campaign", "Winter"),
        *("--domain", "promo.acme.test", "--link", "link1=Electronics", "-a", "acme"),
        *("--seed", "s2"),
    ),
    (
        *("shorten", "a.txt", "--list", "other", "--campaign", "a", "-l", "link1=2"),
        *("-a", "acme", "--seed", "s3"),
    ),
    ("shorten", "one.txt", "--link", "link1=Summer Sale", "-a", "acme"),
    (
        *("shorten", "one.txt", "--link", "link1=https://x.example/", "--campaign", "solo"),
        *("-a", "acme", "--seed", "s4"),
    ),
]
LISTINGS = [
    ("account", "list"),
    ("account", "show", "Globex"),
    ("domain", "list"),
    ("offer", "list", "-a", "acme"),
    ("offer", "show", "Electronics", "-a", "acme"),
    ("list", "list", "-a", "acme"),
    ("list", "show", "vip", "-a", "acme"),
    ("contacts", "list", "-a", "acme"),
    ("contacts", "list", "--list", "vip", "--limit", "3", "-a", "acme"),
    ("creative", "list", "-a", "acme"),
    ("creative", "show", "promo", "-a", "acme"),
    ("creative", "show", "b", "-a", "acme"),
]
REFUSED = [
    ("shorten", "bad.txt", "--list", "vip", "-l", "link1=Summer Sale", "-a", "acme"),
    ("shorten", "a.txt", "--list", "vip", "-l", "link1=x", "--campaign", "SPRING", "-a", "acme"),
    ("creative", "add", "PROMO", "promo.txt", "-a", "acme"),
    ("domain", "remove", "old.acme.test"),
    ("account", "update", "Globex", "--name", "ACME"),
]
TEXT = [
    ("domain", "default", "go.acme.test"),
    ("domain", "remove", "spare.acme.test"),
    ("contacts", "import", "vip", "c1.csv", "-a", "acme"),
]
ROWS = {
    "contacts": "SELECT id, account_id, phone, fields FROM contacts ORDER BY id",
    "list_members": "SELECT list_id, contact_id FROM list_members ORDER BY list_id, contact_id",
    "creatives": "SELECT id, account_id, name, name_key, body FROM creatives ORDER BY id",
    "campaigns": "SELECT id, account_id, name, list_id, domain_id, seed, building_pid"
    " FROM campaigns ORDER BY id",
    "campaign_variants": "SELECT * FROM campaign_variants ORDER BY campaign_id, label",
    "messages": "SELECT id, account_id, campaign_id, list_id, creative_id, contact_id, variant,"
    " domain_id, body, segments, encoding FROM messages ORDER BY id",
    "short_links": "SELECT message_id, contact_id, domain_id, slot, offer_id, url"
    " FROM short_links ORDER BY message_id, slot",
    "report_rollups": "SELECT account_id, campaign_id, creative_id, list_id, variant, domain_id,"
    " offer_id, sent, offer_sent FROM report_rollups"
    " ORDER BY campaign_id, creative_id, list_id, variant, domain_id, offer_id",
    "domains": "SELECT id, account_id, hostname, scheme, is_default FROM domains ORDER BY id",
}


def scenario(cli, db: str, folder: Path, tag: str) -> dict:
    """Every command of the scenario on `db`: its steady JSON output (or its text, or its error
    line), the outbox files and the rows it left."""
    seen: dict = {}
    for command in SETUP:
        seen[command] = steady(cli.json("--db", db, *command))
    for number, command in enumerate(SENDS):
        outbox = ("-o", f"{tag}-{number}.csv") if "--list" in command else ()
        seen[command] = steady(cli.json("--db", db, *command, *outbox))
        if outbox:
            seen[command]["outbox"] = seen[command]["outbox"].removeprefix(tag)
            text = (folder / outbox[1]).read_text(encoding="utf-8")
            seen[(*command, "outbox")] = LINK_URL.sub(r"\1<link>", text)
    for command in LISTINGS:
        seen[command] = steady(cli.json("--db", db, *command))
    for command in REFUSED:
        seen[command] = cli.error("--db", db, *command)
    for command in TEXT:
        seen[command] = cli("--db", db, *command).output
    conn = store.open_db(db)
    try:
        for table, sql in ROWS.items():
            rows = [steady(r) for r in store.rows(conn, sql)]
            for r in rows:  # the merged fields compared in their order, whatever the spacing
                if "fields" in r:
                    r["fields"] = list(json.loads(r["fields"]).items())
            seen[table] = rows
    finally:
        conn.close()
    return seen


def test_the_same_commands_give_the_same_output_and_rows_on_both_stores(
    cli, db_path, pg_url, tmp_path
):
    files(tmp_path)
    on_sqlite = scenario(cli, str(db_path), tmp_path, "sqlite")
    on_postgres = scenario(cli, pg_url, tmp_path, "postgres")
    assert on_postgres.keys() == on_sqlite.keys()
    for key in on_sqlite:
        assert on_postgres[key] == on_sqlite[key], key
    # (the scenario is what it means to be)
    assert on_sqlite["contacts"][0]["fields"] == [
        ("first_name", "Ann"),
        ("city", "Paris"),
        ("zip", "75001"),
    ]
    spring = on_sqlite[SENDS[0]]
    assert [v["messages"] for v in spring["variants"]] != [0, 0]
    assert sum(v["messages"] for v in spring["variants"]) == 5
    assert {m["encoding"] for m in on_sqlite["messages"]} == {"GSM-7", "UCS-2"}
    assert "have no city" in on_sqlite[REFUSED[0]]


# --- PostgreSQL's own ---------------------------------------------------------------------------


def pg(url: str):
    return psycopg.connect(url, autocommit=True)


def setup_acme(cli, url: str) -> None:
    cli("--db", url, "account", "create", "acme")
    cli("--db", url, "domain", "add", "go.acme.test")
    cli("--db", url, "offer", "create", "Summer Sale", "--url", "https://shop.example/s")


def add_members(url: str, list_name: str, count: int) -> list[int]:
    """`count` new contacts on the list, by COPY (the import is not what is tested here)."""
    with pg(url) as conn:
        list_id = conn.execute("SELECT id FROM lists WHERE name = %s", (list_name,)).fetchone()[0]
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM contacts").fetchone()[0]
        ids = range(first, first + count)
        with conn.cursor().copy(
            "COPY contacts (id, account_id, phone, fields, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in ids:
                copy.write_row((i, 1, f"+1{2025500000 + i}", '{"first_name": "Al"}', NOW, NOW))
        with conn.cursor().copy(
            "COPY list_members (list_id, contact_id, added_at) FROM STDIN"
        ) as c:
            for i in ids:
                c.write_row((list_id, i, NOW))
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('contacts', 'id'), max(id)) FROM contacts"
        )
    return list(ids)


def scalar(url: str, sql: str, *params):
    with pg(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def shorten_args(url: str, list_name: str, campaign: str) -> list[str]:
    return [
        *(sys.executable, "-m", "trackly_cli", "--db", url, "shorten", "big.txt"),
        *("--list", list_name, "--link", "link1=Summer Sale", "--campaign", campaign),
        *("--output", f"{campaign}.csv"),
    ]


def outbox_ids(path: Path) -> list[int]:
    return [int(line.split(",")[1]) for line in path.read_text().splitlines()[1:]]


def test_concurrent_shortens_number_their_messages_and_links_apart(cli, pg_url, tmp_path):
    setup_acme(cli, pg_url)
    for name in ("one", "two"):
        cli("--db", pg_url, "list", "create", name)
        add_members(pg_url, name, 6000)
    write(tmp_path / "big.txt", "Hi {{first_name}} {{link1}}")
    runs = [
        subprocess.Popen(
            shorten_args(pg_url, name, f"c-{name}"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("one", "two")
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
    assert scalar(pg_url, "SELECT count(*) FROM messages") == 12_000
    assert scalar(pg_url, "SELECT count(DISTINCT id) FROM messages") == 12_000
    assert scalar(pg_url, "SELECT max(id) FROM messages") == 12_000  # numbered without gaps
    assert scalar(pg_url, "SELECT count(*) FROM short_links") == 12_000
    assert scalar(pg_url, "SELECT count(*) FROM creatives") == 1  # the same template, saved once
    one, two = (outbox_ids(tmp_path / f"c-{name}.csv") for name in ("one", "two"))
    assert len(one) == len(two) == 6000
    assert not set(one) & set(two)
    with pg(pg_url) as conn:
        for name, ids in (("one", one), ("two", two)):
            stored = conn.execute(
                "SELECT m.id FROM messages m JOIN campaigns c ON c.id = m.campaign_id"
                " WHERE c.name = %s ORDER BY m.id",
                (f"c-{name}",),
            ).fetchall()
            assert [r[0] for r in stored] == sorted(ids)
        (row,) = conn.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM short_links"
        ).fetchall()
        assert row == (12_000, 12_000)


def test_ids_given_by_the_code_do_not_collide_with_later_ones(cli, pg_url, tmp_path):
    setup_acme(cli, pg_url)
    write(tmp_path / "one.txt", "Hi {{link1}}")
    first = cli.json("--db", pg_url, "shorten", "one.txt", "-l", "link1=Summer Sale")
    assert first["message_id"] == 1
    with pg(pg_url) as conn:
        # a message with a default id (as another tool might write one): after shorten's own
        conn.execute(
            "INSERT INTO messages (account_id, domain_id, body, segments, encoding, created_at)"
            " VALUES (1, 1, 'x', 1, 'GSM-7', %s)",
            (NOW,),
        )
        # …and one with an id of its own, beyond the sequence
        conn.execute(
            "INSERT INTO messages (id, account_id, domain_id, body, segments, encoding,"
            " created_at) VALUES (50, 1, 1, 'y', 1, 'GSM-7', %s)",
            (NOW,),
        )
    assert scalar(pg_url, "SELECT max(id) FROM messages") == 50
    second = cli.json("--db", pg_url, "shorten", "one.txt", "-l", "link1=Summer Sale")
    assert second["message_id"] == 51  # after the explicit id: no collision
    with pg(pg_url) as conn:
        added = conn.execute(
            "INSERT INTO messages (account_id, domain_id, body, segments, encoding, created_at)"
            " VALUES (1, 1, 'z', 1, 'GSM-7', %s) RETURNING id",
            (NOW,),
        ).fetchone()[0]
    assert added == 52  # the sequence was moved past shorten's ids


def test_a_reimport_numbers_new_contacts_as_sqlite_does(cli, db_path, pg_url, tmp_path):
    """PostgreSQL draws a sequence number for every row an upsert proposes: contacts that exist
    must not use up ids, or the next new contact's id would differ from SQLite's."""
    write(tmp_path / "a.csv", "phone,name\n+12025550143,A\n+12025550144,B\n")
    write(tmp_path / "b.csv", "phone,name\n+12025550143,A2\n+12025550144,B\n+12025550145,C\n")
    for db in (str(db_path), pg_url):
        cli("--db", db, "account", "create", "acme")
        cli("--db", db, "list", "create", "vip")
        cli("--db", db, "contacts", "import", "vip", "a.csv")
        cli("--db", db, "contacts", "import", "vip", "a.csv")
        result = cli.json("--db", db, "contacts", "import", "vip", "b.csv")
        assert (result["new_contacts"], result["added_to_list"]) == (1, 1)
        found = cli.json("--db", db, "contacts", "list")
        assert [(c["id"], c["phone"], c["fields"]) for c in found] == [
            (1, "+12025550143", {"name": "A2"}),
            (2, "+12025550144", {"name": "B"}),
            (3, "+12025550145", {"name": "C"}),
        ]


@pytest.mark.slow
def test_a_killed_shorten_is_replaced_by_a_rerun(cli, pg_url, tmp_path):
    setup_acme(cli, pg_url)
    cli("--db", pg_url, "list", "create", "big")
    add_members(pg_url, "big", 30_000)
    write(tmp_path / "big.txt", "Hi {{first_name}} {{link1}}")
    proc = subprocess.Popen(shorten_args(pg_url, "big", "huge"), cwd=tmp_path)
    wait_for(
        lambda: scalar(pg_url, "SELECT count(*) FROM messages") > 2_000,
        timeout=60,
        what="some chunks committed",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    written = scalar(pg_url, "SELECT count(*) FROM messages")
    assert 0 < written < 30_000
    assert not (tmp_path / "huge.csv").exists()
    with pg(pg_url) as conn:
        (pid, host) = conn.execute(
            "SELECT building_pid, building_host FROM campaigns WHERE name = 'huge'"
        ).fetchone()
    assert pid == proc.pid and host == campaigns.HOST
    conn = store.open_db(pg_url)
    try:  # invisible while incomplete
        with pytest.raises(NotFound):
            lookup.find(conn, "campaigns", "huge", 1)
        assert [c["state"] for c in campaigns.incomplete(conn)] == ["left over"]
    finally:
        conn.close()

    rerun = subprocess.run(
        shorten_args(pg_url, "big", "huge"), cwd=tmp_path, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert scalar(pg_url, "SELECT count(*) FROM messages") == 30_000
    assert scalar(pg_url, "SELECT count(*) FROM short_links") == 30_000
    assert scalar(pg_url, "SELECT count(*) FROM campaigns WHERE building_pid IS NULL") == 1
    assert scalar(pg_url, "SELECT sum(sent) FROM report_rollups WHERE offer_id = 0") == 30_000
    lines = (tmp_path / "huge.csv").read_text().splitlines()
    assert len(lines) == 30_001
    # (the leftover's messages went first: the numbering starts again, as on SQLite)
    assert sorted(outbox_ids(tmp_path / "huge.csv")) == list(range(1, 30_001))


def test_a_leftover_is_claimed_once(pg_url, cli):
    setup_acme(cli, pg_url)
    with pg(pg_url) as conn:
        seen = conn.execute(
            "INSERT INTO campaigns (account_id, name, name_key, domain_id, seed, created_at,"
            " building_pid, building_host) VALUES (1, 'dead', 'dead', 1, 's', %s, %s, %s)"
            " RETURNING id, building_pid, building_host",
            (NOW, 2**30, campaigns.HOST),
        ).fetchone()
    conn = store.open_db(pg_url)
    try:
        leftover = dict(zip(("id", "building_pid", "building_host"), seen, strict=True))
        assert campaigns.claim(conn, leftover) is True
        assert campaigns.claim(conn, leftover) is False
        # …and one whose host is unknown (NULL) is claimed by its NULL
        conn.execute("UPDATE campaigns SET building_pid = 7, building_host = NULL")
        assert campaigns.claim(conn, leftover | {"building_pid": 7, "building_host": None})
        # (this process's claim given up: dead again, for the rerun below)
        conn.execute(
            "UPDATE campaigns SET building_pid = ?, building_host = ?", (2**30, campaigns.HOST)
        )
    finally:
        conn.close()
    write(Path("one.txt"), "Hi {{link1}}")
    cli("--db", pg_url, "shorten", "one.txt", "-l", "link1=Summer Sale", "--campaign", "dead")
    with pg(pg_url) as c:
        assert c.execute("SELECT name, building_pid FROM campaigns").fetchall() == [("dead", None)]
