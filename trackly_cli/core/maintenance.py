"""Backups and integrity checks."""

from __future__ import annotations

import os
import shlex
import sqlite3
from pathlib import Path

from trackly_cli.core import campaigns, dialect, migrate, records, store
from trackly_cli.core.errors import Conflict, InvalidInput, NotFound
from trackly_cli.core.postgres import hide_password


def backup(db: store.Store, target: Path, *, overwrite: bool = False) -> dict:
    """Copy the database with SQLite's online backup API into `target`.

    The copy is taken in one step, from one read snapshot: it holds every transaction committed
    before it started and none that committed after, and a running server keeps writing
    meanwhile (in WAL mode readers do not block writers). It is written beside the target and
    renamed into place, so a failed backup never leaves a file that looks complete.
    """
    if db.dialect != dialect.SQLITE:
        raise refuse_postgres_backup(db.url, target)
    target = Path(target).expanduser()
    live = Path(db.execute("PRAGMA database_list").fetchone()[2]).resolve()
    # The database's own files: itself, its WAL and shared memory, its journal of clicks and
    # the lock beside it. Replacing one under a running server breaks it ("file is not a
    # database"), --force or not.
    own = {live, *(live.with_name(live.name + suffix) for suffix in ("-wal", "-shm", "-journal"))}
    own |= {live.with_name(live.name + ".turn"), live.with_name(live.name + ".journal")}
    resolved = target.resolve()
    if resolved in own or live.with_name(live.name + ".journal") in resolved.parents:
        raise InvalidInput(
            f"{target} is one of the database's own files: choose another path for the backup"
        )
    if target.exists() and not overwrite:
        raise Conflict(f"{target} already exists (use --force to overwrite it)")
    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        copy = sqlite3.connect(partial, factory=store.SqliteStore)
    except OSError as e:
        raise InvalidInput(f"cannot write {target}: {e.strerror or e}") from e
    try:
        db.backup(copy, pages=0)
        pages = copy.execute("PRAGMA page_count").fetchone()[0]
        version = migrate.schema_version(copy)
        copy.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as e:
        copy.close()
        partial.unlink(missing_ok=True)
        raise InvalidInput(f"backup failed: {e}") from e
    copy.close()
    os.replace(partial, target)
    return {
        "path": str(target),
        "pages": pages,
        "bytes": target.stat().st_size,
        "schema_version": version,
    }


def refuse_postgres_backup(url: str, target: Path) -> InvalidInput:
    """The error for `db backup` of a PostgreSQL database: the server's own tool copies it."""
    command = shlex.join(["pg_dump", "--format=custom", "--file", str(target), hide_password(url)])
    return InvalidInput(
        f"db backup copies a SQLite file; back up a PostgreSQL database with pg_dump: {command}"
    )


def check_file(path: Path) -> dict:
    """`check` on the database file at `path`, opened read-only: a missing file is an error,
    and nothing (not even the journal mode) is changed."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no database at {path}")
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, factory=store.SqliteStore
        )
    except sqlite3.Error as e:
        raise InvalidInput(f"cannot open {path}: {e}") from e
    try:
        return check(conn)
    except sqlite3.DatabaseError as e:
        raise InvalidInput(f"{path} is not a usable SQLite database: {e}") from e
    finally:
        conn.close()


def check_url(url: str) -> dict:
    """`check` on the PostgreSQL database at `url`, in a read-only transaction: it migrates
    and creates nothing."""
    conn = store.connect(url)
    try:
        conn.execute("BEGIN READ ONLY")
        try:
            return check(conn)
        finally:
            conn.execute("ROLLBACK")
    except dialect.errors(conn) as e:
        from trackly_cli.core.postgres import error_line

        raise InvalidInput(f"cannot check {hide_password(url)}: {error_line(e)}") from e
    finally:
        conn.close()


def check(conn: store.Store) -> dict:
    """SQLite's integrity and foreign-key checks, and the schema version."""
    if conn.dialect == dialect.POSTGRES:
        return _check_postgres(conn)
    problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    fk_problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    ok = problems == ["ok"] and not fk_problems
    has_journals = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal_state'"
    ).fetchone()
    journals = records.journals(conn) if has_journals else []
    columns = {r[1] for r in conn.execute("PRAGMA table_info(campaigns)")}
    unfinished = campaigns.incomplete(conn) if "building_pid" in columns else []
    has_pending = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pending_reversals'"
    ).fetchone()
    return {
        "ok": ok,
        "integrity": "ok" if problems == ["ok"] else "; ".join(problems[:20]),
        "foreign_key_problems": len(fk_problems),
        "schema_version": migrate.schema_version(conn),
        "pending_migrations": sum(1 for m in migrate.status(conn) if m.state == "pending"),
        "path": path,
        "bytes": os.path.getsize(path) if path else None,
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
    } | _waiting(conn, journals, unfinished, has_pending)


def _waiting(conn: store.Store, journals: list, unfinished: list, has_pending: bool) -> dict:
    """What `check` says is still to be done, on either store."""
    return {
        # Clicks a server acknowledged that are still in its click journal (stored by its
        # drain within a moment while it runs, or at its next start).
        "undrained_journal_records": sum(j["undrained_records"] for j in journals),
        "undrained_journal_bytes": sum(j["undrained_bytes"] for j in journals),
        # Campaigns `trackly shorten` is writing, or left by a run that died (`trackly prune`
        # or a rerun of the same command removes those).
        "incomplete_campaigns": ", ".join(
            f"{c['account']}/{c['name']} ({c['state']}, {c['messages']:,} messages)"
            for c in unfinished
        )
        or None,
        # Refunds and chargebacks that came before their sale, applied when it arrives.
        "refunds_waiting_for_their_sale": (
            store.scalar(conn, "SELECT count(*) FROM pending_reversals") if has_pending else 0
        ),
    }


def _check_postgres(conn: store.Store) -> dict:
    """What `check` says of a PostgreSQL database. The server keeps its own files sound (there is
    no integrity_check): the integrity line reports the data-checksum failures it has counted
    (pg_amcheck goes further), and foreign keys are always enforced, so only a constraint added
    NOT VALID could hide a broken reference."""
    failures, checksums = conn.execute(
        "SELECT checksum_failures, current_setting('data_checksums')"
        " FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    if failures:
        integrity = f"{failures:,} data checksum failure(s): see the server's log"
    elif checksums == "on":
        integrity = "ok"
    else:
        integrity = "ok (data checksums are off: pg_amcheck checks the indexes)"
    unvalidated = store.scalar(
        conn,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"
        " AND connamespace = current_schema()::regnamespace",
    )
    has = {
        name: dialect.table_exists(conn, name)
        for name in ("journal_state", "pending_reversals", "campaigns")
    }
    journals = records.journals(conn) if has["journal_state"] else []
    building = has["campaigns"] and store.scalar(
        conn,
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = 'campaigns' AND column_name = 'building_pid'",
    )
    unfinished = campaigns.incomplete(conn) if building else []
    return {
        "ok": not failures and not unvalidated,
        "integrity": integrity,
        "foreign_key_problems": unvalidated,
        "schema_version": migrate.schema_version(conn),
        "pending_migrations": sum(1 for m in migrate.status(conn) if m.state == "pending"),
        "url": conn.target,
        "bytes": store.scalar(conn, "SELECT pg_database_size(current_database())"),
        "server": "PostgreSQL " + store.scalar(conn, "SHOW server_version"),
    } | _waiting(conn, journals, unfinished, has["pending_reversals"])
