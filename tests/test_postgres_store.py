"""The store by URL (#13): `--db postgresql://…` runs the same commands on PostgreSQL, with the
same output as on SQLite; the URL's password is never printed; a missing driver or an unreachable
server is one line naming what to do."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trackly_cli.core import dialect, migrate, store
from trackly_cli.core.errors import DatabaseVersionError

# Set-up commands that run on both stores; their JSON must be the same but for secrets and times.
SETUP = [
    ("account", "create", "acme", "--retention-days", "30"),
    ("domain", "add", "go.acme.test", "--account", "acme"),
    ("offer", "create", "Summer Sale", "--url", "https://shop.example/s?sub={link_id}"),
    ("offer", "update", "Summer Sale", "--payout", "2.50"),
    ("list", "create", "vip", "--bot-filter", "confirm"),
    ("account", "create", "Globex"),
]
LISTINGS = [
    ("account", "list"),
    ("account", "show", "acme"),
    ("domain", "list"),
    ("offer", "list", "--account", "acme"),
    ("offer", "show", "Summer Sale", "--account", "acme"),
    ("list", "list", "--account", "acme"),
    ("list", "show", "vip", "--account", "acme"),
    ("db", "migrate", "--list"),
]
VARYING = {"created_at", "updated_at", "postback_secret", "postback_url", "applied_at"}


def steady(value):
    """`value` without what differs by nature between two runs (times, secrets)."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def outputs(cli, db: str) -> list:
    for command in SETUP:
        cli("--db", db, *command)
    return [steady(json.loads(cli("--db", db, *c, "--format", "json").stdout)) for c in LISTINGS]


def test_the_same_commands_give_the_same_output_on_both_stores(cli, db_path, pg_url):
    on_sqlite = outputs(cli, str(db_path))
    on_postgres = outputs(cli, pg_url)
    assert on_postgres == on_sqlite
    assert [m["name"] for m in on_postgres[-1]] == [m.name for m in migrate.available()]


def test_errors_and_refusals_are_the_same_lines(cli, db_path, pg_url):
    for db in (str(db_path), pg_url):
        cli("--db", db, "account", "create", "acme")
        assert cli.error("--db", db, "account", "create", "ACME") == (
            "Error: account 'ACME' already exists"
        )
        message = cli.error("--db", db, "offer", "create", "x", "--url", "ftp://x")
        assert "http" in message


def test_a_postgres_database_is_migrated_once_and_refused_when_newer(pg_url):
    conn = store.open_db(pg_url)
    try:
        assert conn.dialect == dialect.POSTGRES
        names = [s.name for s in migrate.status(conn) if s.state == "applied"]
        assert names == [m.name for m in migrate.available(dialect="postgres")]
        assert migrate.apply(conn) == []  # nothing twice
        conn.execute(
            "INSERT INTO schema_migrations (name, checksum, applied_at) VALUES (?, ?, ?)",
            ("9999_from_the_future.sql", "x", "2026-01-01T00:00:00.000000Z"),
        )
    finally:
        conn.close()
    with pytest.raises(DatabaseVersionError, match="migrated by a newer Trackly"):
        store.open_db(pg_url)


def test_db_path_hides_the_password(cli):
    url = "postgresql://trackly:s3cret@db.example:5433/trackly"
    assert cli("--db", url, "db", "path").stdout.strip() == (
        "postgresql://trackly:***@db.example:5433/trackly"
    )
    assert cli("--db", "postgres://u@h/db", "db", "path").stdout.strip() == "postgres://u@h/db"


def test_an_unreachable_server_is_one_line_without_the_password(cli):
    url = "postgresql://trackly:s3cret@127.0.0.1:9/trackly"
    message = cli.error("--db", url, "account", "list")
    assert message.startswith("Error: cannot connect to postgresql://trackly:***@127.0.0.1:9/")
    assert "s3cret" not in message


def test_without_the_driver_the_error_names_the_extra(tmp_path):
    """psycopg is optional: an install without it says how to add it (the driver is hidden
    from this one process, as if it were not installed)."""
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from trackly_cli.cli import main\n"
        "sys.argv = ['trackly', '--db', 'postgresql://u@127.0.0.1:9/x', 'account', 'list']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: a PostgreSQL database needs the PostgreSQL driver: pip install 'trackly[postgres]'"
    )


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT ? , ?", "SELECT %s , %s"),
        ("WHERE a = :name AND t = '10:30'", "WHERE a = %(name)s AND t = '10:30'"),
        ("SELECT '?', x::text, 100 % 7 -- 50% ?", "SELECT '?', x::text, 100 %% 7 -- 50%% ?"),
        ("WHERE ip LIKE '198.51.%'", "WHERE ip LIKE '198.51.%%'"),
        ('SELECT "a?b" FROM t', 'SELECT "a?b" FROM t'),
    ],
)
def test_placeholders_are_translated_outside_literals(sql, expected):
    assert dialect.to_postgres(sql) == expected


def test_a_server_on_postgresql_is_told_where_its_journal_is(pg_url, tmp_path):
    """A PostgreSQL database has no folder to keep a journal beside: a server there names its
    own (`trackly serve` defaults to one in the app folder), never a folder made of the URL."""
    from trackly_cli.core.errors import InvalidInput
    from trackly_cli.server import Tracker

    store.open_db(pg_url).close()
    with pytest.raises(InvalidInput, match="needs the folder of its click journal"):
        Tracker(pg_url)
    assert not any(p.name.startswith("postgres") for p in tmp_path.iterdir())
