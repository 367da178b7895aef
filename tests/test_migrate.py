"""The database: connection settings, migrations (fresh, upgrade, edited, newer, failed) and the
`trackly db` commands (path, migrate, check, backup)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import typer
import typer.main
import typer.testing

from trackly_cli.core import migrate, store
from trackly_cli.core.errors import DatabaseVersionError

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "migrations" / "sqlite"
FIRST = "0001_initial.sql"
# the migrations this checkout ships, and the name of one more after them for the tests
SHIPPED = sorted(p.name for p in MIGRATIONS.glob("*.sql"))
EXTRA = f"{int(SHIPPED[-1][:4]) + 1:04d}_test.sql"
BROKEN = f"{int(SHIPPED[-1][:4]) + 1:04d}_broken.sql"


def tables(conn: sqlite3.Connection) -> set[str]:
    return {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    }


def ledger(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, to compare a database before and after a failed command."""
    conn = sqlite3.connect(path)
    try:
        names = sorted(tables(conn))
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}
    finally:
        conn.close()


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """The real migrations copied into a folder of their own, with a harmless EXTRA after them."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in MIGRATIONS.glob("*.sql"):
        shutil.copy(path, folder / path.name)
    (folder / EXTRA).write_text(
        "-- a later migration: a new table and a new column\n"
        "CREATE TABLE test_extra (id INTEGER PRIMARY KEY, note TEXT NOT NULL);\n"
        "ALTER TABLE accounts ADD COLUMN test_note TEXT;\n"
        "INSERT INTO test_extra (note) VALUES ('semi;colon');\n",
        encoding="utf-8",
    )
    return folder


# --- a fresh database ------------------------------------------------------------------------


def test_fresh_database_gets_the_initial_migration_and_its_ledger_row(db_path):
    assert not db_path.exists()
    db = store.open_db(db_path)
    try:
        rows = list(db.execute("SELECT name, checksum, applied_at FROM schema_migrations"))
        assert [r[0] for r in rows] == SHIPPED
        _, checksum, applied_at = rows[0]
        assert checksum == migrate.available(MIGRATIONS)[0].checksum
        assert applied_at.endswith("Z") and applied_at[:4].isdigit()
        expected = {
            "accounts",
            "domains",
            "offers",
            "lists",
            "contacts",
            "list_members",
            "creatives",
            "campaigns",
            "messages",
            "short_links",
            "message_short_link_clicks",
            "message_clicks",
            "conversions",
            "schema_migrations",
        }
        assert expected <= tables(db)
    finally:
        db.close()


def test_opening_twice_applies_nothing_more(db_path):
    store.open_db(db_path).close()
    conn = store.connect(db_path)
    try:
        assert migrate.apply(conn) == []
        assert ledger(conn) == SHIPPED
    finally:
        conn.close()


def test_the_commands_that_set_up_create_a_migrated_database(cli, db_path, tmp_path):
    cli("account", "create", "acme")
    conn = sqlite3.connect(db_path)
    try:
        assert ledger(conn) == SHIPPED
    finally:
        conn.close()
    other = tmp_path / "other.db"
    cli("--db", other, "db", "migrate")
    conn = sqlite3.connect(other)
    try:
        assert ledger(conn) == SHIPPED
    finally:
        conn.close()


@pytest.mark.parametrize(
    "command",
    [
        ["account", "list"],
        ["report"],
        ["offer", "list"],
        ["contacts", "import", "vip", "c.csv"],
        ["shorten", "m.txt", "--list", "vip"],
        ["db", "backup", "copy.db"],
        ["serve", "--port", "9"],
        ["clicks"],
    ],
)
def test_a_missing_database_is_named_and_never_created(cli, tmp_path, command):
    """#14: `trackly --db typo.db report` made an empty database and said nothing was there."""
    typo = tmp_path / "typo.db"
    (tmp_path / "c.csv").write_text("phone\n+12025550143\n", encoding="utf-8")
    (tmp_path / "m.txt").write_text("Hi {{link1}}", encoding="utf-8")
    message = cli.error("--db", typo, *command)
    assert message == (
        f"Error: no database at {typo}: create one with `trackly account create NAME`"
        " (or `trackly db migrate`), or name another with --db / TRACKLY_DB"
    )
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("typo")]


def test_available_lists_the_shipped_migrations_in_order():
    names = [m.name for m in migrate.available()]
    assert names[0] == FIRST
    assert names == sorted(names)
    assert names == sorted(p.name for p in MIGRATIONS.glob("*.sql"))


def test_a_badly_named_migration_file_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "initial.sql").write_text("SELECT 1;", encoding="utf-8")
    with pytest.raises(DatabaseVersionError, match=r"NNNN_name\.sql"):
        migrate.available(folder)


# --- connection settings -----------------------------------------------------------------------


def _pragmas(conn: sqlite3.Connection) -> dict:
    return {
        name: conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
    }


def test_connect_sets_the_pragmas(db_path):
    conn = store.connect(db_path)
    try:
        settings = _pragmas(conn)
    finally:
        conn.close()
    assert settings["journal_mode"] == "wal"
    assert settings["foreign_keys"] == 1
    assert settings["synchronous"] == 1  # NORMAL
    assert settings["busy_timeout"] > 0


def test_open_db_sets_the_pragmas_on_every_connection(db_path):
    store.open_db(db_path).close()
    for _ in range(2):
        db = store.open_db(db_path)
        try:
            settings = _pragmas(db)
        finally:
            db.close()
        assert settings["journal_mode"] == "wal"
        assert settings["foreign_keys"] == 1
        assert settings["synchronous"] == 1
        assert settings["busy_timeout"] > 0


def test_foreign_keys_are_enforced(db):
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO domains (account_id, hostname, created_at) VALUES (999, 'x.test', 'now')"
        )
    assert store.scalar(db, "SELECT count(*) FROM domains") == 0


def test_a_directory_as_database_is_a_clear_error(cli, tmp_path):
    folder = tmp_path / "folder.db"
    folder.mkdir()
    message = cli.error("--db", folder, "account", "list")
    assert message == f"Error: database path {folder} is a directory"


def test_a_file_that_is_not_a_database_is_a_clear_error(cli, db_path):
    db_path.write_bytes(b"this is not SQLite, just some text that happens to be here\n" * 20)
    message = cli.error("account", "list")
    assert str(db_path) in message or "database" in message
    assert db_path.read_bytes().startswith(b"this is not SQLite")


# --- upgrading a database stopped at an older migration ---------------------------------------


def test_a_database_stopped_at_an_older_migration_is_upgraded(db_path, migrations_copy):
    known = migrate.available(migrations_copy)
    assert [m.name for m in known] == [*SHIPPED, EXTRA]
    conn = store.connect(db_path)
    try:
        assert migrate.apply(conn, known=known[:-1]) == [m.name for m in known[:-1]]
        assert "test_extra" not in tables(conn)
        conn.execute(
            "INSERT INTO accounts (name, name_key, created_at, updated_at)"
            " VALUES ('old', 'old', 'now', 'now')"
        )
        assert migrate.apply(conn, known=known) == [EXTRA]
        assert ledger(conn) == [m.name for m in known]
        assert "test_extra" in tables(conn)
        assert conn.execute("SELECT note FROM test_extra").fetchall() == [("semi;colon",)]
        # the data written before the upgrade is still there, with the new column
        assert conn.execute("SELECT name, test_note FROM accounts").fetchall() == [("old", None)]
        assert migrate.apply(conn, known=known) == []
    finally:
        conn.close()


def test_the_cli_works_on_a_database_that_an_older_open_created(cli, db_path):
    conn = store.connect(db_path)
    try:
        migrate.apply(conn)
    finally:
        conn.close()
    cli("account", "create", "acme")
    assert cli.json("account", "list")[0]["name"] == "acme"


def test_a_last_statement_without_a_semicolon_still_runs(db_path, migrations_copy):
    (migrations_copy / EXTRA).write_text(
        "CREATE TABLE first_new (id INTEGER);\nCREATE TABLE second_new (id INTEGER)\n",
        encoding="utf-8",
    )
    conn = store.connect(db_path)
    try:
        migrate.apply(conn, known=migrate.available(migrations_copy))
        assert {"first_new", "second_new"} <= tables(conn)
    finally:
        conn.close()


def test_a_last_statement_without_a_semicolon_before_a_final_comment_still_runs(
    db_path, migrations_copy
):
    # a file saved without a final newline: the file is recorded as applied, so every
    # statement in it must have run
    (migrations_copy / EXTRA).write_text(
        "CREATE TABLE first_new (id INTEGER);\nCREATE TABLE second_new (id INTEGER)\n-- the end",
        encoding="utf-8",
    )
    conn = store.connect(db_path)
    try:
        migrate.apply(conn, known=migrate.available(migrations_copy))
        assert EXTRA in ledger(conn)
        assert {"first_new", "second_new"} <= tables(conn)
    finally:
        conn.close()


# --- an applied migration that was edited ------------------------------------------------------


def test_an_edited_applied_migration_is_refused(db_path, migrations_copy):
    conn = store.connect(db_path)
    try:
        migrate.apply(conn, known=migrate.available(migrations_copy))
        path = migrations_copy / EXTRA
        path.write_text(path.read_text(encoding="utf-8") + "-- edited\n", encoding="utf-8")
        with pytest.raises(DatabaseVersionError, match="changed after it was applied"):
            migrate.apply(conn, known=migrate.available(migrations_copy))
        assert ledger(conn) == [*SHIPPED, EXTRA]
    finally:
        conn.close()


def test_an_edited_applied_migration_is_refused_by_the_cli(cli, db_path):
    cli("account", "create", "acme")
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE name = ?", (FIRST,))
    conn.commit()
    conn.close()
    message = cli.error("account", "list")
    assert FIRST in message
    assert "changed" in message


def test_db_migrate_list_shows_an_edited_migration_as_modified(cli, db_path):
    cli("db", "migrate")
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE name = ?", (FIRST,))
    conn.commit()
    conn.close()
    rows = cli.json("db", "migrate", "--list")
    states = {r["name"]: r["state"] for r in rows}
    assert states == {name: "modified" if name == FIRST else "applied" for name in SHIPPED}


# --- a database newer than the code ------------------------------------------------------------


def _add_future_migration(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO schema_migrations (name, checksum, applied_at)"
        " VALUES ('9999_from_the_future.sql', 'abc', '2030-01-01T00:00:00.000000Z')"
    )
    conn.commit()
    conn.close()


def test_a_database_with_an_unknown_migration_is_refused(db_path):
    store.open_db(db_path).close()
    _add_future_migration(db_path)
    with pytest.raises(DatabaseVersionError, match="newer") as raised:
        store.open_db(db_path)
    assert "9999_from_the_future.sql" in raised.value.message
    conn = store.connect(db_path)
    try:
        with pytest.raises(DatabaseVersionError, match="newer"):
            migrate.apply(conn)
    finally:
        conn.close()


def test_a_newer_database_is_refused_by_the_cli(cli, db_path):
    cli("account", "create", "acme")
    _add_future_migration(db_path)
    before = snapshot(db_path)
    message = cli.error("account", "list")
    assert "newer" in message
    assert "9999_from_the_future.sql" in message
    cli.error("account", "create", "other")
    cli.error("db", "migrate")
    assert snapshot(db_path) == before


def test_db_migrate_list_shows_an_unknown_migration(cli, db_path):
    cli("db", "migrate")
    _add_future_migration(db_path)
    rows = cli.json("db", "migrate", "--list")
    assert [(r["name"], r["state"]) for r in rows] == [
        *((name, "applied") for name in SHIPPED),
        ("9999_from_the_future.sql", "unknown"),
    ]


# --- a failed migration leaves nothing behind --------------------------------------------------


def test_a_failed_migration_leaves_nothing_behind(db_path, migrations_copy):
    (migrations_copy / EXTRA).unlink()
    (migrations_copy / BROKEN).write_text(
        "CREATE TABLE half_done (id INTEGER PRIMARY KEY);\n"
        "INSERT INTO half_done (id) VALUES (1);\n"
        "ALTER TABLE accounts ADD COLUMN half_column TEXT;\n"
        "CREATE TABLEX this_is_not_sql (id);\n",
        encoding="utf-8",
    )
    conn = store.connect(db_path)
    try:
        with pytest.raises(DatabaseVersionError, match=BROKEN.replace(".", r"\.")):
            migrate.apply(conn, known=migrate.available(migrations_copy))
        assert not conn.in_transaction
        assert ledger(conn) == SHIPPED
        found = tables(conn)
        assert "accounts" in found
        assert "half_done" not in found
        columns = [r[1] for r in conn.execute("PRAGMA table_info(accounts)")]
        assert "half_column" not in columns
        # the connection is still usable and the good migration's data is intact
        assert conn.execute("SELECT count(*) FROM config_version").fetchone() == (1,)
    finally:
        conn.close()


def test_a_failed_first_migration_leaves_an_empty_database(db_path, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "0001_broken.sql").write_text(
        "CREATE TABLE first_table (id INTEGER);\nTHIS IS NOT SQL;\n", encoding="utf-8"
    )
    conn = store.connect(db_path)
    try:
        with pytest.raises(DatabaseVersionError, match=r"0001_broken\.sql failed"):
            migrate.apply(conn, known=migrate.available(folder))
        # not even the ledger table: the failed transaction took it with it
        assert tables(conn) == set()
    finally:
        conn.close()


# --- trackly db migrate ------------------------------------------------------------------------


def test_db_migrate_on_a_fresh_database_applies_and_then_is_up_to_date(cli, db_path):
    first = cli("db", "migrate")
    assert f"Applied {len(SHIPPED)} migration" in first.stderr
    second = cli("db", "migrate")
    assert "up to date" in second.stderr
    conn = sqlite3.connect(db_path)
    try:
        assert ledger(conn) == SHIPPED
    finally:
        conn.close()


def test_db_migrate_list_json(cli):
    cli("db", "migrate")
    rows = cli.json("db", "migrate", "--list")
    names = [m.name for m in migrate.available()]
    assert [r["name"] for r in rows] == names
    assert {r["state"] for r in rows} == {"applied"}
    assert all(r["applied_at"] for r in rows)
    assert set(rows[0]) == {"name", "state", "applied_at"}


def test_db_migrate_list_on_an_empty_database_shows_pending(cli, db_path):
    conn = store.connect(db_path)  # a database file without any migration
    conn.close()
    rows = cli.json("db", "migrate", "--list")
    assert [(r["name"], r["state"], r["applied_at"]) for r in rows] == [
        (name, "pending", None) for name in SHIPPED
    ]


# --- trackly db path ---------------------------------------------------------------------------


def test_db_path_with_the_db_option(cli, tmp_path):
    target = tmp_path / "elsewhere" / "mine.db"
    result = cli("--db", target, "db", "path")
    assert result.stdout.strip() == str(target)
    assert not target.exists()


def test_db_path_with_the_environment_variable(cli, tmp_path, monkeypatch):
    target = tmp_path / "from-env.db"
    monkeypatch.setenv("TRACKLY_DB", str(target))
    assert cli("db", "path").stdout.strip() == str(target)


def test_db_option_wins_over_the_environment_variable(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKLY_DB", str(tmp_path / "env.db"))
    assert cli("--db", tmp_path / "opt.db", "db", "path").stdout.strip() == str(tmp_path / "opt.db")


def test_db_path_default_is_the_app_folder(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("TRACKLY_DB", raising=False)
    # keep the real home untouched: the app folder follows XDG_CONFIG_HOME on Linux
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = Path(typer.get_app_dir("trackly")) / "trackly.db"
    printed = cli("db", "path").stdout.strip()
    assert printed == str(expected)
    assert printed.endswith("trackly.db")
    assert "trackly" in Path(printed).parent.name.lower()
    assert not expected.exists()


def test_the_db_option_is_used_by_every_command(cli, tmp_path):
    other = tmp_path / "other.db"
    cli("--db", other, "account", "create", "elsewhere")
    assert other.exists()
    conn = sqlite3.connect(other)
    try:
        assert conn.execute("SELECT name FROM accounts").fetchall() == [("elsewhere",)]
    finally:
        conn.close()
    assert cli.json("--db", other, "account", "list")[0]["name"] == "elsewhere"
    # the default database (TRACKLY_DB) is a separate file, and none was made
    assert "no database at" in cli.error("account", "list")


# --- trackly db check --------------------------------------------------------------------------


def test_db_check_json(cli, db_path):
    cli("account", "create", "acme")
    result = cli.json("db", "check")
    assert result["ok"] is True
    assert result["integrity"] == "ok"
    assert result["foreign_key_problems"] == 0
    assert result["schema_version"] == migrate.available()[-1].name
    assert result["journal_mode"] == "wal"
    assert Path(result["path"]) == db_path


def test_db_check_table(cli):
    cli("db", "migrate")
    out = cli("db", "check").stdout
    assert "ok" in out
    assert SHIPPED[-1] in out


def test_db_check_of_a_missing_database_is_an_error_and_creates_nothing(cli, db_path):
    assert "no database" in cli.error("db", "check")
    assert not db_path.exists()


def test_db_check_changes_nothing_in_the_file_it_checks(cli, db_path, tmp_path):
    cli("db", "migrate")
    copy = tmp_path / "copy.db"
    cli("db", "backup", copy)
    before = copy.read_bytes()
    result = cli.json("--db", copy, "db", "check")
    assert result["ok"] is True and result["journal_mode"] == "delete"
    assert copy.read_bytes() == before


# --- trackly db backup -------------------------------------------------------------------------


def test_db_backup_copies_the_rows(acme, db_path, tmp_path):
    acme("list", "create", "vip")
    target = tmp_path / "backups" / "copy.db"
    result = acme("db", "backup", target)
    assert target.exists()
    assert "Backed up" in result.stderr
    assert not list(target.parent.glob(".*partial"))
    original = snapshot(db_path)
    copy = snapshot(target)
    assert copy == original
    assert copy["accounts"] and copy["offers"] and copy["domains"] and copy["lists"]
    # the copy opens as a Trackly database of its own
    assert acme.json("--db", target, "offer", "list")[0]["name"] == "Summer Sale"
    assert acme.json("--db", target, "db", "check")["ok"] is True


def test_db_backup_refuses_to_overwrite_without_force(acme, tmp_path):
    target = tmp_path / "copy.db"
    target.write_bytes(b"precious")
    message = acme.error("db", "backup", target)
    assert "already exists" in message
    assert "--force" in message
    assert target.read_bytes() == b"precious"
    acme("db", "backup", target, "--force")
    assert acme.json("--db", target, "account", "list")[0]["name"] == "acme"


def test_db_backup_after_changes_holds_the_new_rows(acme, tmp_path):
    target = tmp_path / "copy.db"
    acme("db", "backup", target)
    acme("offer", "create", "Winter", "--url", "https://shop.example/winter")
    acme("db", "backup", target, "--force")
    names = [o["name"] for o in acme.json("--db", target, "offer", "list")]
    assert names == ["Summer Sale", "Winter"]


def test_db_backup_cannot_overwrite_the_database_itself(acme, db_path):
    before = snapshot(db_path)
    acme.error("db", "backup", db_path, "--force")
    assert snapshot(db_path) == before
