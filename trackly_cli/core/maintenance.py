"""Backups and integrity checks."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from trackly_cli.core import campaigns, migrate, records, store
from trackly_cli.core.errors import Conflict, InvalidInput, NotFound


def backup(db: store.Store, target: Path, *, overwrite: bool = False) -> dict:
    """Copy the database with SQLite's online backup API into `target`.

    The copy is taken in one step, from one read snapshot: it holds every transaction committed
    before it started and none that committed after, and a running server keeps writing
    meanwhile (in WAL mode readers do not block writers). It is written beside the target and
    renamed into place, so a failed backup never leaves a file that looks complete.
    """
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


def check(conn: store.Store) -> dict:
    """SQLite's integrity and foreign-key checks, and the schema version."""
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
            conn.execute("SELECT count(*) FROM pending_reversals").fetchone()[0]
            if has_pending
            else 0
        ),
    }
