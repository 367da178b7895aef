"""Numbered SQL migrations, applied in order, each in one transaction with its ledger row.

Each store has its folder (migrations/sqlite, migrations/postgres) of files with the same names;
the ledger records names, so moving the SQLite files into their folder changed nothing for a
database that had applied them.

An applied file that was edited afterwards is refused (its checksum no longer matches), and so is
a database that a newer Trackly migrated (its ledger names files this code does not have).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from trackly_cli.core import clock, dialect
from trackly_cli.core.errors import DatabaseVersionError

_PACKAGE = Path(__file__).resolve().parents[1]
# In a wheel the folder ships as trackly_cli/migrations; in a source checkout it is top-level.
_CANDIDATES = (_PACKAGE / "migrations", _PACKAGE.parent / "migrations")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

LEDGER = "schema_migrations"
# PostgreSQL: the advisory lock that one migrating process holds at a time.
_LOCK = 7_318_251_007


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    name: str
    state: str  # applied, pending, modified, unknown
    applied_at: str | None


def migrations_dir(dialect: str = "sqlite") -> Path:
    """The folder of one store's migrations (migrations/sqlite, migrations/postgres): each
    dialect has its own files, with the same names and the same ledger rules."""
    for candidate in _CANDIDATES:
        folder = candidate / dialect
        if folder.is_dir() and any(folder.glob("*.sql")):
            return folder
    raise DatabaseVersionError(
        "Trackly's migrations are missing from this installation: reinstall it with `pip install .`"
    )


def available(directory: Path | None = None, dialect: str = "sqlite") -> list[Migration]:
    directory = directory or migrations_dir(dialect)
    found = []
    for path in sorted(directory.glob("*.sql")):
        if not _NAME.match(path.name):
            raise DatabaseVersionError(f"migration file name {path.name!r} is not NNNN_name.sql")
        found.append(Migration(path.name, path.read_text(encoding="utf-8")))
    return found


def _ensure_ledger(conn) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {LEDGER} ("
        " name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )


def _applied(conn) -> dict[str, tuple[str, str]]:
    if not dialect.table_exists(conn, LEDGER):
        return {}
    return {
        name: (checksum, applied_at)
        for name, checksum, applied_at in conn.execute(
            f"SELECT name, checksum, applied_at FROM {LEDGER} ORDER BY name"
        )
    }


def _check(applied: dict[str, tuple[str, str]], known: list[Migration]) -> None:
    by_name = {m.name: m for m in known}
    unknown = sorted(set(applied) - set(by_name))
    if unknown:
        raise DatabaseVersionError(
            f"this database was migrated by a newer Trackly (it has {', '.join(unknown)}, "
            "which this version does not know): upgrade trackly to use it"
        )
    for name, (checksum, _) in applied.items():
        if by_name[name].checksum != checksum:
            raise DatabaseVersionError(
                f"migration {name} was changed after it was applied to this database; "
                "applied migrations must never be edited (add a new one instead)"
            )


def status(conn) -> list[MigrationStatus]:
    applied = _applied(conn)
    result = []
    known = available(dialect=conn.dialect)
    for m in known:
        if m.name in applied:
            state = "applied" if applied[m.name][0] == m.checksum else "modified"
            result.append(MigrationStatus(m.name, state, applied[m.name][1]))
        else:
            result.append(MigrationStatus(m.name, "pending", None))
    for name in sorted(set(applied) - {m.name for m in known}):
        result.append(MigrationStatus(name, "unknown", applied[name][1]))
    return result


def schema_version(conn) -> str | None:
    applied = _applied(conn)
    return max(applied) if applied else None


def _statements(sql: str):
    """Split a script into statements with SQLite's own notion of a complete statement, so that
    semicolons inside triggers, strings and comments are handled."""
    buffer = ""
    pieces = sql.split(";")
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        buffer += piece if last else piece + ";"
        if last and _strip_comments(buffer).strip():
            buffer += "\n;"  # a last statement without its semicolon still runs
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if _strip_comments(statement).strip(" \n\t;"):
                yield statement
    if _strip_comments(buffer).strip():
        raise DatabaseVersionError(
            f"a migration ends with an incomplete statement: {buffer[:60]!r}"
        )


def _strip_comments(statement: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in statement.splitlines())


def apply(conn, known: list[Migration] | None = None) -> list[str]:
    """Apply every pending migration; return the names applied."""
    known = available(dialect=conn.dialect) if known is None else known
    applied = _applied(conn)
    _check(applied, known)
    pending = [m for m in known if m.name not in applied]
    done = []
    for migration in pending:
        conn.execute(dialect.begin_write(conn))
        try:
            if conn.dialect == dialect.POSTGRES:  # (SQLite's BEGIN IMMEDIATE serialises)
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
            _ensure_ledger(conn)
            if conn.execute(f"SELECT 1 FROM {LEDGER} WHERE name = ?", (migration.name,)).fetchone():
                conn.execute("ROLLBACK")  # another process applied it meanwhile
                continue
            if conn.dialect == dialect.POSTGRES:
                conn.executescript(migration.sql)
            else:
                for statement in _statements(migration.sql):
                    conn.execute(statement)
            conn.execute(
                f"INSERT INTO {LEDGER} (name, checksum, applied_at) VALUES (?, ?, ?)",
                (migration.name, migration.checksum, clock.now_text()),
            )
            conn.execute("COMMIT")
        except BaseException as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(e, dialect.errors(conn)):
                raise DatabaseVersionError(f"migration {migration.name} failed: {e}") from e
            raise
        done.append(migration.name)
    return done
