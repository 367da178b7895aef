"""migrations/postgres against migrations/sqlite: the same schema, and the same rows after the
same statements.

Every test builds both stores from empty: SQLite through Trackly's migration runner, PostgreSQL
by running each file of migrations/postgres as one script in its own transaction. Then

  * the catalogues agree: tables, columns (order, type, NOT NULL, default, identity), primary
    keys, unique constraints, foreign keys, indexes and triggers;
  * one script of plain DML, the statements the application runs (written once, with `?`
    placeholders), gives the same results and leaves every table with the same rows; after each
    step the counter tables (report_rollups, message_rollups, config_version) agree, and every
    trigger of the schema shows its effect in some step;
  * what the SQLite schema refuses, PostgreSQL refuses too (with the same kind of constraint),
    and the edge cases it accepts, PostgreSQL accepts.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import NamedTuple

import pytest

from trackly_cli.core import migrate, store, validate
from trackly_cli.core.dialect import ROLLUP_KEY

psycopg = pytest.importorskip("psycopg")

ROOT = Path(__file__).resolve().parents[1]
SQLITE_MIGRATIONS = ROOT / "migrations" / "sqlite"
PG_MIGRATIONS = ROOT / "migrations" / "postgres"
# The migration runner's ledger is SQLite's own bookkeeping, not part of the schema files.
LEDGER = migrate.LEDGER
COUNTERS = ("report_rollups", "message_rollups", "config_version")
# INTEGER columns that are 0/1 flags: INTEGER in PostgreSQL; every other integer is BIGINT.
FLAGS = {
    ("domains", "is_default"),
    ("message_short_link_clicks", "is_bot"),
    ("message_short_link_clicks", "headers_cut"),
    ("conversions", "is_reversal"),
    ("offers", "require_secret"),
    ("users", "is_admin"),
    ("webhooks", "enabled"),
}
# The triggers that write webhook events (0016): their effect is in webhook_events, not in the
# counters (test_the_webhook_triggers_write_the_same_events).
WEBHOOK_TRIGGERS = {"message_clicks_webhook", "msl_clicks_webhook", "conversions_webhook"}


# -- the two stores ------------------------------------------------------------------------------


def pg_sql(sql: str) -> str:
    """The same statement for psycopg: `?` placeholders become %s (a literal % is doubled); a
    report counter's upsert names PostgreSQL's key, which has the shard
    (dialect.rollup_conflict)."""
    sql = sql.replace(f"ON CONFLICT ({ROLLUP_KEY})", f"ON CONFLICT ({ROLLUP_KEY}, shard)")
    return sql.replace("%", "%%").replace("?", "%s")


def apply_postgres(conn) -> None:
    """Each file of migrations/postgres, in order, as one script in one transaction."""
    for path in sorted(PG_MIGRATIONS.glob("*.sql")):
        conn.execute(path.read_text(encoding="utf-8"))
        conn.commit()


_SQLITE_KINDS = {
    "UNIQUE": "unique",
    "CHECK": "check",
    "FOREIGN KEY": "foreign key",
    "NOT NULL": "not null",
}


def _pg_kind(error: Exception) -> str:
    errors = psycopg.errors
    for kind, cls in (
        ("unique", errors.UniqueViolation),
        ("check", errors.CheckViolation),
        ("foreign key", errors.ForeignKeyViolation),
        ("not null", errors.NotNullViolation),
    ):
        if isinstance(error, cls):
            return kind
    return type(error).__name__


class Outcome(NamedTuple):
    """What a statement did: its rows (RETURNING) or row count, or the constraint it broke."""

    rows: list | None = None
    rowcount: int | None = None
    refused: str | None = None  # unique, check, foreign key, not null
    message: str = ""


def typed(rows) -> list[tuple]:
    """Rows with each value's Python type beside it, so that 2 and 2.0 (or Decimal) differ."""
    return [tuple((type(v).__name__, v) for v in row) for row in rows]


def ordered(rows) -> list[tuple]:
    return sorted(typed(rows), key=lambda row: tuple((v is not None, v) for _, v in row))


class Stores:
    """The same database in SQLite and in PostgreSQL, both in autocommit mode: every statement is
    a transaction of its own on either."""

    def __init__(self, db_path: Path, pg_url: str) -> None:
        self.lite = store.connect(db_path)
        migrate.apply(self.lite, migrate.available(SQLITE_MIGRATIONS))
        self.pg = psycopg.connect(pg_url)
        apply_postgres(self.pg)
        self.pg.autocommit = True
        # One connection writes every counter to one shard; shard 0 is SQLite's (the shards
        # themselves: test_counters_split_by_shard_sum_to_the_same_reports).
        self.pg.execute("SET trackly.rollup_shard = 0")

    def close(self) -> None:
        self.lite.close()
        self.pg.close()

    def run(self, sql: str, params: tuple = ()) -> tuple[Outcome, Outcome]:
        """Run one statement on both; (SQLite's outcome, PostgreSQL's)."""
        try:
            cursor = self.lite.execute(sql, params)
            rows = cursor.fetchall() if cursor.description else None
            lite = (
                Outcome(typed(rows), None) if rows is not None else Outcome(None, cursor.rowcount)
            )
        except sqlite3.IntegrityError as e:
            kind = next((k for p, k in _SQLITE_KINDS.items() if str(e).startswith(p)), str(e))
            lite = Outcome(refused=kind, message=str(e))
        try:
            cursor = self.pg.execute(pg_sql(sql), params)
            rows = cursor.fetchall() if cursor.description else None
            pg = Outcome(typed(rows), None) if rows is not None else Outcome(None, cursor.rowcount)
        except psycopg.errors.IntegrityError as e:
            pg = Outcome(refused=_pg_kind(e), message=str(e).splitlines()[0])
        return lite, pg

    def lite_rows(self, table: str) -> list[tuple]:
        return ordered(self.lite.execute(f"SELECT * FROM {table}").fetchall())

    def pg_rows(self, table: str) -> list[tuple]:
        return ordered(self.pg.execute(f"SELECT * FROM {table}").fetchall())

    def counters(self) -> tuple[dict, dict]:
        return (
            {t: self.lite_rows(t) for t in COUNTERS},
            {t: self.pg_rows(t) for t in COUNTERS},
        )

    def assert_same_contents(self) -> None:
        """Every table holds the same rows (the random visitor secret aside)."""
        assert lite_tables(self.lite) == pg_tables(self.pg)
        for table in lite_tables(self.lite):
            lite, pg = self.lite_rows(table), self.pg_rows(table)
            if table == "settings":
                lite, pg = _without_secret(lite), _without_secret(pg)
            assert lite == pg, f"{table} differs"


def _without_secret(rows: list[tuple]) -> list[tuple]:
    """settings without the value of visitor_secret, checked to have the same form instead."""
    result = []
    for row in rows:
        (_, key), (kind, value) = row
        if key == "visitor_secret":
            assert kind == "str" and re.fullmatch(r"[0-9a-f]{64}", value), value
            row = (row[0], (kind, "<64 hex digits>"))
        result.append(row)
    return result


@pytest.fixture
def stores(db_path: Path, pg_url: str):
    both = Stores(db_path, pg_url)
    yield both
    both.close()


# -- the catalogues ------------------------------------------------------------------------------


def lite_tables(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name <> ? ORDER BY name",
            (LEDGER,),
        )
    ]


def pg_tables(conn) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
    ]


class Column(NamedTuple):
    name: str
    type: str
    not_null: bool
    default: str | None
    identity: bool  # SQLite: a rowid alias; PostgreSQL: GENERATED BY DEFAULT AS IDENTITY


_SQLITE_TYPES = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision"}


def lite_columns(conn: sqlite3.Connection, table: str) -> list[Column]:
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    rowid = not re.search(r"WITHOUT\s+ROWID", sql, re.IGNORECASE)
    pk = [r for r in info if r[5]]
    columns = []
    for _, name, declared, notnull, default, in_pk in info:
        kind = _SQLITE_TYPES[declared]
        if (table, name) in FLAGS:
            kind = "integer"
        alias = rowid and len(pk) == 1 and bool(in_pk) and declared == "INTEGER"
        # A primary key column is NOT NULL (SQLite's PRAGMA says so only when it is declared).
        columns.append(Column(name, kind, bool(notnull or in_pk), default, alias))
    return columns


def pg_columns(conn, table: str) -> list[Column]:
    columns = []
    for name, kind, nullable, default, identity, generation, collation in conn.execute(
        "SELECT column_name, data_type, is_nullable, column_default, is_identity,"
        " identity_generation, collation_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ):
        if kind == "text":  # SQLite compares text by BINARY: byte (code point) order
            assert collation == "C", f"{table}.{name} has collation {collation}"
        if identity == "YES":
            assert generation == "BY DEFAULT", f"{table}.{name}: ids may be given explicitly"
        if default is not None:
            default = re.sub(r"::[a-z ]+$", "", default)  # '{}'::text -> '{}'
        columns.append(Column(name, kind, nullable == "NO", default, identity == "YES"))
    return columns


def lite_constraints(conn: sqlite3.Connection, table: str) -> dict:
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    primary = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
    unique, indexes = [], {}
    for _, name, is_unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
        columns = [r[2] for r in conn.execute(f"PRAGMA index_info({name})")]
        if origin == "u":
            unique.append(tuple(columns))
        elif origin == "c":
            indexes[name] = (bool(is_unique), bool(partial), tuple(columns))
    foreign: dict[int, list] = {}
    for fk_id, _, parent, child_col, parent_col, on_update, on_delete, _ in conn.execute(
        f"PRAGMA foreign_key_list({table})"
    ):
        foreign.setdefault(fk_id, [parent, [], [], on_update, on_delete])
        foreign[fk_id][1].append(child_col)
        foreign[fk_id][2].append(parent_col)
    return {
        "primary key": tuple(primary),
        "unique": sorted(unique),
        "foreign keys": sorted(
            (tuple(c), p, tuple(pc), u, d) for p, c, pc, u, d in foreign.values()
        ),
        "indexes": indexes,
    }


_PG_ACTIONS = {
    "a": "NO ACTION",
    "r": "RESTRICT",
    "c": "CASCADE",
    "n": "SET NULL",
    "d": "SET DEFAULT",
}


def pg_constraints(conn, table: str) -> dict:
    columns = (
        "ARRAY(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY k(n, i)"
        " JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.n ORDER BY k.i)"
    )
    primary, unique, foreign = (), [], []
    for kind, keys, parent, parent_keys, on_update, on_delete in conn.execute(
        "SELECT con.contype::text, "
        + columns.format(keys="con.conkey", rel="con.conrelid")
        + ", p.relname::text, "
        + columns.format(keys="con.confkey", rel="con.confrelid")
        + ", con.confupdtype::text, con.confdeltype::text"
        " FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid"
        " LEFT JOIN pg_class p ON p.oid = con.confrelid"
        " WHERE t.relname = %s AND t.relnamespace = 'public'::regnamespace"
        " AND con.contype IN ('p', 'u', 'f')",
        (table,),
    ):
        if kind == "p":
            primary = tuple(keys)
        elif kind == "u":
            unique.append(tuple(keys))
        else:
            foreign.append(
                (
                    tuple(keys),
                    parent,
                    tuple(parent_keys),
                    _PG_ACTIONS[on_update],
                    _PG_ACTIONS[on_delete],
                )
            )
    indexes = {}
    for name, is_unique, partial, keys in conn.execute(
        "SELECT i.relname::text, x.indisunique, x.indpred IS NOT NULL, "
        + columns.format(keys="x.indkey::int2[]", rel="x.indrelid")
        + " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relname = %s AND t.relnamespace = 'public'::regnamespace"
        # (not the indexes of primary keys and unique constraints: SQLite's autoindexes)
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = x.indexrelid"
        " AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u'))",
        (table,),
    ):
        indexes[name] = (is_unique, partial, tuple(keys))
    return {
        "primary key": primary,
        "unique": sorted(unique),
        "foreign keys": sorted(foreign),
        "indexes": indexes,
    }


_TRIGGER = re.compile(
    r"CREATE TRIGGER (\w+)\s+(BEFORE|AFTER|INSTEAD OF)\s+(INSERT|UPDATE|DELETE)"
    r"(?:\s+OF\s+([\w, ]+?))?\s+ON\s+(?:public\.)?(\w+)\s+(.*)",
    re.DOTALL | re.IGNORECASE,
)


class Trigger(NamedTuple):
    name: str
    table: str
    timing: str
    event: str
    columns: tuple[str, ...]  # UPDATE OF these
    has_when: bool


def _trigger(definition: str, head_ends: str) -> Trigger:
    found = _TRIGGER.match(definition.strip())
    assert found, definition
    name, timing, event, of, table, rest = found.groups()
    head = re.split(head_ends, rest, maxsplit=1, flags=re.IGNORECASE)[0]
    columns = tuple(c.strip() for c in of.split(",")) if of else ()
    return Trigger(name, table, timing.upper(), event.upper(), columns, "WHEN" in head.upper())


def lite_triggers(conn: sqlite3.Connection) -> list[Trigger]:
    rows = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    return sorted(_trigger(r[0], r"\bBEGIN\b") for r in rows)


def pg_triggers(conn) -> list[Trigger]:
    rows = conn.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
    ).fetchall()
    for (definition,) in rows:  # SQLite has row triggers only
        assert "FOR EACH ROW" in definition, definition
    return sorted(_trigger(r[0], r"\bEXECUTE\s+FUNCTION\b") for r in rows)


def test_a_postgresql_file_for_every_sqlite_migration():
    sqlite_names = sorted(p.name for p in SQLITE_MIGRATIONS.glob("*.sql"))
    assert sqlite_names, "no SQLite migrations found"
    assert sorted(p.name for p in PG_MIGRATIONS.glob("*.sql")) == sqlite_names


# The one difference by design (migration 0008): PostgreSQL splits a report counter row into
# shards, one per writing connection, so that servers do not queue on one row; SQLite (one
# writer) keeps shard 0 and the key without it.
SHARD = Column(
    "shard",
    "smallint",
    True,
    "(COALESCE(NULLIF(current_setting('trackly.rollup_shard'::text, true), ''::text),"
    " ((pg_backend_pid() % 16))::text))",
    False,
)


def test_the_same_tables_columns_constraints_indexes_and_triggers(stores: Stores):
    tables = lite_tables(stores.lite)
    assert pg_tables(stores.pg) == tables
    for table in tables:
        pg, lite = pg_columns(stores.pg, table), lite_columns(stores.lite, table)
        pg_keys, lite_keys = pg_constraints(stores.pg, table), lite_constraints(stores.lite, table)
        if table == "report_rollups":
            (pg_shard,) = [c for c in pg if c.name == "shard"]
            (lite_shard,) = [c for c in lite if c.name == "shard"]
            assert pg_shard == SHARD and lite_shard == Column("shard", "bigint", True, "0", False)
            pg, lite = [c for c in pg if c != pg_shard], [c for c in lite if c != lite_shard]
            assert pg_keys["primary key"] == (*lite_keys["primary key"], "shard")
            pg_keys["primary key"] = lite_keys["primary key"]
        assert pg == lite, table
        assert pg_keys == lite_keys, table
    triggers = lite_triggers(stores.lite)
    # (0010: campaigns_deleted_config; 0014: conversions_converting_*; 0016: *_webhook)
    assert len(triggers) == 30

    # (SQLite's webhook triggers ask in their WHEN whether the account has a hook; PostgreSQL's
    # WHEN takes no subquery, so their functions ask)
    def comparable(found: list[Trigger]) -> list[Trigger]:
        return [t._replace(has_when=None) if t.name in WEBHOOK_TRIGGERS else t for t in found]

    assert comparable(pg_triggers(stores.pg)) == comparable(triggers)


def _catalogue(conn) -> set[tuple]:
    """The tables' columns, indexes, triggers and functions of the public schema."""
    return set(
        conn.execute(
            "SELECT 'column', table_name::text, column_name::text FROM information_schema.columns"
            " WHERE table_schema = 'public'"
            " UNION ALL SELECT 'index', tablename::text, indexname::text FROM pg_indexes"
            " WHERE schemaname = 'public'"
            " UNION ALL SELECT 'trigger', tgrelid::regclass::text, tgname::text FROM pg_trigger"
            " WHERE NOT tgisinternal"
            " UNION ALL SELECT 'function', '', proname::text FROM pg_proc"
            " WHERE pronamespace = 'public'::regnamespace"
        ).fetchall()
    )


def test_each_postgresql_migration_is_one_transaction(pg_url: str):
    """Each file runs as one script inside the caller's transaction: it commits nothing of its
    own (rolled back, it leaves no trace), and one that fails half-way leaves nothing behind."""
    with psycopg.connect(pg_url) as conn:
        for path in sorted(PG_MIGRATIONS.glob("*.sql")):
            text = path.read_text(encoding="utf-8")
            before = _catalogue(conn)
            conn.execute(text)
            assert _catalogue(conn) > before, path.name
            conn.rollback()
            assert _catalogue(conn) == before, path.name
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute(text + "\nSELECT 1 / 0;")
            conn.rollback()
            assert _catalogue(conn) == before, path.name
            conn.execute(text)
            conn.commit()
        assert "report_rollups" in pg_tables(conn)


# -- the script ----------------------------------------------------------------------------------


class Step(NamedTuple):
    sql: str
    params: tuple = ()
    fires: tuple[str, ...] = ()  # the triggers whose effect this step shows in the counters


T0 = "2026-03-01T08:00:00.000000Z"
SENT = "2026-03-01T09:07:30.000000Z"  # every message's created_at: bucket 09:00
B9 = "2026-03-01T09:00:00Z"
V4 = "v:" + "4" * 32  # anonymous visitors of the one-off messages 4 and 5
V5 = "v:" + "5" * 32
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Version/17.4 Mobile Safari/604.1"

# link id: (message_id, contact_id, offer_id, account_id, campaign_id, creative_id, list_id,
#           variant, domain_id, slot, url)
LINKS = {
    "Aaaaaa1": (1, 1, 1, 1, 1, 1, 1, "A", 1, "link1", None),
    "Aaaaaa2": (1, 1, None, 1, 1, 1, 1, "A", 1, "link2", "https://plain.example/page"),
    "Bbbbbb1": (2, 2, 1, 1, 1, 2, 1, "B", 1, "link1", None),
    "Bbbbbb2": (2, 2, None, 1, 1, 2, 1, "B", 1, "link2", "https://plain.example/page"),
    "Cccccc1": (3, 3, 2, 1, 1, 1, 1, "A", 1, "link1", None),
    "Dddddd1": (4, None, None, 1, None, None, None, None, 1, "url1", "https://shop.example/a"),
    "Eeeeee1": (5, None, 1, 1, None, None, None, None, 1, "link1", None),
}

INSERT_ACCOUNT = (
    "INSERT INTO accounts (name, name_key, retention_days, anonymize_ips_after_days,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
)
INSERT_DOMAIN = (
    "INSERT INTO domains (account_id, hostname, scheme, is_default, created_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
INSERT_OFFER = (
    "INSERT INTO offers (url, payout_micros, attribution_days, interstitial, title, description,"
    " cta, meta, bot_filter, postback_ips, require_secret, max_revenue_micros,"
    " link_conversions_per_hour, account_id, name, name_key, postback_secret, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
INSERT_LIST = (
    "INSERT INTO lists (bot_filter, min_human_seconds, interstitial_title,"
    " interstitial_description, interstitial_cta, interstitial_meta, account_id, name, name_key,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
INSERT_IP_RANGE = (
    "INSERT INTO ip_ranges (kind, cidr, source, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (kind, cidr) DO NOTHING"
)
INSERT_CONTACT = (
    "INSERT INTO contacts (account_id, phone, fields, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
INSERT_MEMBER = (
    "INSERT INTO list_members (list_id, contact_id, added_at)"
    " SELECT ?, id, ? FROM contacts WHERE account_id = ? AND phone = ? ON CONFLICT DO NOTHING"
)
INSERT_CREATIVE = (
    "INSERT INTO creatives (account_id, name, name_key, body, created_at)"
    " VALUES (?, ?, ?, ?, ?) RETURNING id"
)
INSERT_CAMPAIGN = (
    "INSERT INTO campaigns (account_id, name, name_key, list_id, domain_id, seed,"
    " created_at, building_pid, building_host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
INSERT_VARIANT = (
    "INSERT INTO campaign_variants (campaign_id, label, creative_id, weight) VALUES (?, ?, ?, ?)"
)
INSERT_MESSAGE = (
    "INSERT INTO messages (id, account_id, campaign_id, list_id, creative_id, contact_id,"
    " variant, domain_id, body, segments, encoding, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_LINK = (
    "INSERT INTO short_links (id, account_id, message_id, contact_id, domain_id, slot, offer_id,"
    " url, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# (In an upsert's SET, PostgreSQL finds a bare column ambiguous, so the counters name their
# table: `sent = report_rollups.sent + excluded.sent`, where the code writes `sent = sent + …`.)
COUNT_SENT = (  # trackly shorten, as it finishes
    "INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id,"
    " variant, domain_id, offer_id, sent, offer_sent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    f" ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET sent = report_rollups.sent + excluded.sent,"
    " offer_sent = report_rollups.offer_sent + excluded.offer_sent"
)
INSERT_CLICK = (  # the drain, one MessageShortLinkClick
    "INSERT INTO message_short_link_clicks (id, clicked_at, link_id, message_id, contact_id,"
    " offer_id, account_id, campaign_id, creative_id, list_id, variant, domain_id, method, ip,"
    " user_agent, referer, accept_language, visitor, is_bot, bot_reasons, ip_anonymized_at,"
    " headers_cut) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
MESSAGE_CLICK_COLUMNS = (
    "INSERT INTO message_clicks (message_id, visitor, contact_id, link_id, offer_id, account_id,"
    " campaign_id, creative_id, list_id, variant, domain_id, click_id, clicked_at, ip,"
    " user_agent, source, reason, created_at, ip_anonymized_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_MESSAGE_CLICK = MESSAGE_CLICK_COLUMNS + " ON CONFLICT (message_id, visitor) DO NOTHING"
CONVERSION_COLUMNS = (
    "INSERT INTO conversions (account_id, offer_id, link_id, message_id, contact_id, campaign_id,"
    " creative_id, list_id, variant, domain_id, message_click_id, event, is_reversal,"
    " revenue_micros, payout_micros, txn_id, source, attribution, ip, converted_at, created_at,"
    " ip_anonymized_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_CONVERSION = CONVERSION_COLUMNS + " ON CONFLICT DO NOTHING"
HOLD_REVERSAL = (
    "INSERT INTO pending_reversals (account_id, txn_id, event, offer_id, link_id,"
    " revenue_micros, payout_micros, source, ip, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, txn_id) DO NOTHING"
)
SET_VERDICT = "UPDATE message_short_link_clicks SET is_bot = ?, bot_reasons = ? WHERE id = ?"
REATTRIBUTE = "UPDATE conversions SET message_click_id = ?, attribution = ? WHERE id = ?"
SET_DELIVERY = (
    "UPDATE messages SET delivery_status = ?, delivery_at = ?, delivery_detail = ? WHERE id = ?"
)
COUNT_DELIVERY = (  # trackly receipts import
    "INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id,"
    " variant, domain_id, offer_id, delivered, undelivered, offer_delivered, offer_undelivered)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    f" ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET delivered = report_rollups.delivered"
    " + excluded.delivered,"
    " undelivered = report_rollups.undelivered + excluded.undelivered,"
    " offer_delivered = report_rollups.offer_delivered + excluded.offer_delivered,"
    " offer_undelivered = report_rollups.offer_undelivered + excluded.offer_undelivered"
)


def click(
    click_id: int,
    at: str,
    link_id: str,
    *,
    is_bot: int = 0,
    reasons: str = "",
    visitor: str | None = None,
    ip: str | None = "198.51.100.7",
    user_agent: str | None = UA,
    anonymized: bool = False,
    headers_cut: int = 0,
) -> Step:
    message_id, contact_id, *keys, _, _ = LINKS[link_id]
    visitor = visitor or f"c:{contact_id}"
    values = (
        click_id,
        at,
        link_id,
        message_id,
        contact_id,
        *keys,
        "GET",
        ip,
        user_agent,
        None if user_agent is None else "https://m.facebook.com/",
        None if user_agent is None else "en-US,en;q=0.9",
        visitor,
        is_bot,
        reasons,
        at if anonymized else None,
        headers_cut,
    )
    return Step(INSERT_CLICK, values, ("msl_clicks_rollup",))


def message_click(
    link_id: str,
    click_id: int | None,
    at: str,
    *,
    source: str = "click",
    reason: str | None = None,
    visitor: str | None = None,
    new: bool = True,
    ip: str | None = "198.51.100.7",
    sql: str = INSERT_MESSAGE_CLICK,
) -> Step:
    message_id, contact_id, *keys, _, _ = LINKS[link_id]
    values = (
        message_id,
        visitor or f"c:{contact_id}",
        contact_id,
        link_id,
        *keys,
        click_id,
        at,
        ip,
        UA,
        source,
        reason,
        at,
        None,
    )
    return Step(sql, values, ("message_clicks_rollup_insert",) if new else ())


def conversion(
    link_id: str | None,
    *,
    event: str = "sale",
    revenue: int = 0,
    payout: int = 0,
    txn_id: str | None = None,
    message_click_id: int | None = None,
    attribution: str = "attributed",
    source: str = "conv",
    at: str = "2026-03-01T11:02:00.000000Z",
    offer_id: int | None = None,
    reversal: bool | int = False,
    new: bool = True,
    sql: str = INSERT_CONVERSION,
) -> Step:
    if link_id is None:
        message_id, contact_id, link_offer, keys = None, None, None, (None,) * 5
    else:
        message_id, contact_id, link_offer, _, *keys, _, _ = LINKS[link_id]
    values = (
        1,
        link_offer if offer_id is None else offer_id,
        link_id,
        message_id,
        contact_id,
        *keys,
        message_click_id,
        event,
        int(reversal),
        revenue,
        payout,
        txn_id,
        source,
        attribution,
        "203.0.113.9",
        at,
        at,
        None,
    )
    fires = ("conversions_rollup_insert",) if new else ()
    if new and attribution == "attributed" and message_click_id is not None and not reversal:
        fires += ("conversions_converting_insert",)  # (its click converts, if not already)
    return Step(sql, values, fires)


def offer_values(name: str, **changes) -> tuple:
    values = {
        "url": "https://shop.example/summer?sub={link_id}",
        "payout_micros": 2_500_000,
        "attribution_days": 7,
        "interstitial": "none",
        "title": None,
        "description": None,
        "cta": None,
        "meta": "{}",
        "bot_filter": "inherit",
        "postback_ips": "[]",
        "require_secret": 0,
        "max_revenue_micros": None,
        "link_conversions_per_hour": 20,
        "account_id": 1,
        "name": name,
        "name_key": validate.key(name),
        "postback_secret": "s3cr3t-" + validate.key(name),
        "created_at": T0,
        "updated_at": T0,
    } | changes
    return tuple(values.values())


def script() -> list[Step]:
    """What Trackly does to a database, as plain statements: set up an account, send a campaign
    and two one-off messages, take clicks and conversions, judge clicks again, prune, anonymise,
    import delivery receipts."""
    config = "config"  # (a stand-in, replaced below by the trigger of the statement's table)
    steps = [
        # accounts, domains, offers, lists, IP ranges: each write bumps config_version
        Step(INSERT_ACCOUNT, ("Acme", validate.key("Acme"), 90, None, T0, T0), (config,)),
        Step(INSERT_ACCOUNT, ("Scratch", validate.key("Scratch"), 30, 7, T0, T0), (config,)),
        Step(
            "UPDATE accounts SET retention_days = ?, updated_at = ? WHERE id = ?",
            (14, T0, 2),
            (config,),
        ),
        Step(INSERT_DOMAIN, (1, "go.acme.test", "https", 1, T0), (config,)),
        Step(INSERT_DOMAIN, (1, "old.acme.test", "http", 0, T0), (config,)),
        Step(INSERT_DOMAIN, (1, "spare.acme.test", "https", 0, T0), (config,)),
        Step("UPDATE domains SET is_default = 0 WHERE account_id = ?", (1,), (config,)),
        Step("UPDATE domains SET is_default = 1 WHERE id = ?", (1,), (config,)),
        Step("DELETE FROM domains WHERE id = ?", (2,), (config,)),
        Step("DELETE FROM accounts WHERE id = ?", (2,), (config,)),
        Step(INSERT_OFFER, offer_values("Summer Sale"), (config,)),
        Step(
            INSERT_OFFER,
            offer_values(
                "Bücher",
                url="https://books.example/?c={contact_id}",
                payout_micros=0,
                attribution_days=30,
                interstitial="custom",
                title="Bücher für alle",
                cta="Weiter",
                meta='{"og:title": "Bücher"}',
                bot_filter="confirm",
                postback_ips='["203.0.113.0/24"]',
                require_secret=1,
                max_revenue_micros=500_000_000,
                link_conversions_per_hour=0,
            ),
            (config,),
        ),
        Step(INSERT_OFFER, offer_values("Scratch offer"), (config,)),
        Step(
            "UPDATE offers SET postback_secret = ?, updated_at = ? WHERE id = ?",
            ("rotated", "2026-03-01T08:01:00.000000Z", 1),
            (config,),
        ),
        Step("DELETE FROM offers WHERE id = ?", (3,), (config,)),
        Step(
            INSERT_LIST,
            ("flag", 2.5, "VIP", None, "Open", '{"og:site_name": "Acme"}', 1, "VIP", "vip", T0, T0),
            (config,),
        ),
        Step(  # the defaults
            "INSERT INTO lists (account_id, name, name_key, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (1, "Scratch list", validate.key("Scratch list"), T0, T0),
            (config,),
        ),
        Step(  # two rows: two bumps
            "UPDATE lists SET bot_filter = ?, updated_at = ? WHERE account_id = ?",
            ("confirm", T0, 1),
            (config,),
        ),
        Step("DELETE FROM lists WHERE id = ?", (2,), (config,)),
        Step(INSERT_IP_RANGE, ("deny", "203.0.113.0/24", "manual", T0), (config,)),
        Step(INSERT_IP_RANGE, ("datacenter", "198.18.0.0/15", "aws", T0), (config,)),
        Step(
            "UPDATE ip_ranges SET source = ? WHERE kind = ? AND cidr = ?",
            ("ops", "deny", "203.0.113.0/24"),
            (config,),
        ),
        Step(
            "DELETE FROM ip_ranges WHERE kind = ? AND source = ?", ("datacenter", "aws"), (config,)
        ),
        # contacts and their list
        Step(INSERT_CONTACT, (1, "+12025550143", '{"first_name": "Ann"}', T0, T0)),
        Step(INSERT_CONTACT, (1, "+12025550144", '{"first_name": "Bob"}', T0, T0)),
        Step(INSERT_CONTACT, (1, "+4915112345678", '{"first_name": "Jürgen"}', T0, T0)),
        Step(INSERT_MEMBER, (1, T0, 1, "+12025550143")),
        Step(INSERT_MEMBER, (1, T0, 1, "+12025550144")),
        Step(INSERT_MEMBER, (1, T0, 1, "+4915112345678")),
        # trackly shorten: a campaign of two variants, then two one-off messages
        Step(INSERT_CREATIVE, (1, "Spring A", validate.key("Spring A"), "Hi {{link1}}", T0)),
        Step(INSERT_CREATIVE, (1, "Spring B", validate.key("Spring B"), "Yo {{link1}}", T0)),
        Step(
            INSERT_CAMPAIGN,
            (1, "Spring", validate.key("Spring"), 1, 1, "9f2c", SENT, 4242, "worker-1"),
        ),
        Step(INSERT_VARIANT, (1, "A", 1, 1)),
        Step(INSERT_VARIANT, (1, "B", 2, 1)),
        Step(INSERT_MESSAGE, (1, 1, 1, 1, 1, 1, "A", 1, "Hi Ann", 1, "GSM-7", SENT)),
        Step(INSERT_MESSAGE, (2, 1, 1, 1, 2, 2, "B", 1, "Yo Bobby", 1, "GSM-7", SENT)),
        Step(INSERT_MESSAGE, (3, 1, 1, 1, 1, 3, "A", 1, "Hi Jürgen 🌷", 2, "UCS-2", SENT)),
        Step(INSERT_MESSAGE, (4, 1, None, None, None, None, None, 1, "Deal", 1, "GSM-7", SENT)),
        Step(INSERT_MESSAGE, (5, 1, None, None, None, None, None, 1, "Sale", 1, "GSM-7", SENT)),
        *(
            Step(INSERT_LINK, (link_id, 1, m, contact, domain, slot, offer, url, SENT))
            for link_id, (m, contact, offer, _, _, _, _, _, domain, slot, url) in LINKS.items()
        ),
        Step(COUNT_SENT, (1, B9, 1, 1, 1, "A", 1, 0, 2, 0)),
        Step(COUNT_SENT, (1, B9, 1, 2, 1, "B", 1, 0, 1, 0)),
        Step(COUNT_SENT, (1, B9, 1, 1, 1, "A", 1, 1, 0, 1)),
        Step(COUNT_SENT, (1, B9, 1, 2, 1, "B", 1, 1, 0, 1)),
        Step(COUNT_SENT, (1, B9, 1, 1, 1, "A", 1, 2, 0, 1)),
        Step(COUNT_SENT, (1, B9, 0, 0, 0, "", 1, 0, 1, 0)),  # message 4
        Step(COUNT_SENT, (1, B9, 0, 0, 0, "", 1, 0, 1, 0)),  # message 5: DO UPDATE
        Step(COUNT_SENT, (1, B9, 0, 0, 0, "", 1, 1, 0, 1)),
        Step("UPDATE campaigns SET building_pid = NULL, building_host = NULL WHERE id = ?", (1,)),
        # clicks, on both sides of every quarter-hour boundary, and their MessageClicks
        click(1, "2026-03-01T10:14:59.999999Z", "Aaaaaa1", is_bot=1, reasons="user agent: bot"),
        click(2, "2026-03-01T10:15:00.000000Z", "Aaaaaa1"),
        message_click("Aaaaaa1", 2, "2026-03-01T10:15:00.000000Z"),  # MessageClick 1
        click(3, "2026-03-01T10:16:30.000000Z", "Aaaaaa1"),
        click(4, "2026-03-01T10:29:59.000000Z", "Aaaaaa2"),
        click(5, "2026-03-01T10:30:00.000000Z", "Bbbbbb1"),
        message_click("Bbbbbb1", 5, "2026-03-01T10:30:00.000000Z"),  # MessageClick 2
        click(
            6,
            "2026-03-01T10:44:59.000000Z",
            "Cccccc1",
            is_bot=1,
            reasons="over 30 hits a minute on one link (headers not stored)",
            user_agent=None,
            headers_cut=1,
        ),
        click(
            7,
            "2026-03-01T10:45:00.000000Z",
            "Dddddd1",
            visitor=V4,
            ip="198.51.100.0",
            anonymized=True,
        ),
        message_click("Dddddd1", 7, "2026-03-01T10:45:00.000000Z", visitor=V4),  # 3
        click(8, "2026-03-01T10:59:59.999999Z", "Bbbbbb1", is_bot=1, reasons="datacenter"),
        click(9, "2026-03-02T00:00:00.000000Z", "Eeeeee1", visitor=V5),
        message_click("Eeeeee1", 9, "2026-03-02T00:00:00.000000Z", visitor=V5),  # 4
        click(10, "2026-03-01T11:05:00.000000Z", "Bbbbbb2"),
        # conversions: attributed, reversals, unattributed, held reversals
        conversion(
            "Aaaaaa1", revenue=19_990_000, payout=2_500_000, txn_id="T-1", message_click_id=1
        ),
        conversion("Bbbbbb1", event="lead", payout=2_500_000, message_click_id=2, source="pixel"),
        conversion(
            "Aaaaaa1",
            event="refund",
            revenue=-19_990_000,
            payout=-2_500_000,
            txn_id="T-1",
            message_click_id=1,
            reversal=True,
            at="2026-03-03T08:00:00.000000Z",
        ),
        conversion(
            "Cccccc1",
            revenue=50_000_000,
            txn_id="T-3",
            attribution="no_click",
            source="import",
            at="2026-03-01T12:30:00.000000Z",
        ),
        conversion(
            None,
            revenue=7_000_000,
            payout=2_500_000,
            txn_id="T-5",
            attribution="no_message",
            source="conv_offer",
            offer_id=1,
            at="2026-03-01T13:45:00.000000Z",
        ),
        Step(HOLD_REVERSAL, (1, "T-6", "refund", 1, "Bbbbbb1", 10_000_000, None, "conv", None, T0)),
        Step(HOLD_REVERSAL, (1, "T-7", "chargeback", 1, None, None, None, "conv", None, T0)),
        conversion(
            "Bbbbbb1",
            revenue=10_000_000,
            payout=2_500_000,
            txn_id="T-6",
            message_click_id=2,
            attribution="outside_window",
            at="2026-03-20T10:00:00.000000Z",
        ),
        conversion(  # the held refund, applied now that its sale is recorded
            "Bbbbbb1",
            event="refund",
            revenue=-10_000_000,
            payout=-2_500_000,
            txn_id="T-6",
            message_click_id=2,
            attribution="outside_window",
            reversal=True,
            at=T0,
        ),
        Step("DELETE FROM pending_reversals WHERE id = ?", (1,)),
        conversion(
            None,
            event="chargeback",
            revenue=-7_000_000,
            payout=-2_500_000,
            txn_id="T-5",
            attribution="no_message",
            source="conv_offer",
            offer_id=1,
            reversal=True,
            at="2026-03-04T09:00:00.000000Z",
        ),
        conversion("Dddddd1", revenue=1_000_000, message_click_id=3),
        # trackly bots rescan: verdicts change, MessageClicks move, conversions follow
        Step(SET_VERDICT, (1, "later: a burst", 2), ("msl_clicks_rollup_verdict",)),
        Step(  # its conversions keep no MessageClick (ON DELETE SET NULL): it converts no more
            "DELETE FROM message_clicks WHERE id = ?",
            (1,),
            ("message_clicks_rollup_delete", "conversions_converting_old"),
        ),
        message_click(
            "Aaaaaa1",
            3,
            "2026-03-01T10:16:30.000000Z",
            source="rescan",
            reason="bots rescan: the first click that is not a bot",
        ),  # 5
        # attributed before too: its conversion counts again, its click converts
        Step(REATTRIBUTE, (5, "attributed", 1), ("conversions_converting_new",)),
        Step(SET_VERDICT, (0, "", 6), ("msl_clicks_rollup_verdict",)),
        message_click("Cccccc1", 6, "2026-03-01T10:44:59.000000Z", source="rescan"),  # 6
        Step(REATTRIBUTE, (6, "attributed", 4), ("conversions_rollup_update",)),
        Step(SET_VERDICT, (1, "user agent: bot", 1)),  # no change of verdict: no counter moves
        Step("UPDATE message_short_link_clicks SET bot_reasons = ? WHERE id = ?", ("dc", 8)),
        Step(  # a burst
            "UPDATE message_short_link_clicks SET is_bot = 1, bot_reasons = ? WHERE id = ?",
            ("later: over 3 hits", 10),
            ("msl_clicks_rollup_verdict",),
        ),
        Step(  # two rows, each the other way
            "UPDATE message_short_link_clicks SET is_bot = 1 - is_bot WHERE link_id = ?",
            ("Bbbbbb1",),
            ("msl_clicks_rollup_verdict",),
        ),
        Step(
            "UPDATE conversions SET attribution = ? WHERE id = ?",
            ("attributed", 6),
            ("conversions_rollup_update",),
        ),
        Step(
            "UPDATE conversions SET revenue_micros = ?, payout_micros = ? WHERE id = ?",
            (1_500_000, 2_000_000, 2),
            ("conversions_rollup_update",),
        ),
        Step(  # a campaign's conversions go (trackly campaign remove): the counters follow
            "DELETE FROM conversions WHERE id IN (?, ?)",
            (2, 8),
            ("conversions_rollup_delete", "conversions_converting_delete"),
        ),
        # trackly prune: old raw clicks go, counters stay; IP addresses are anonymised
        Step(
            "DELETE FROM message_short_link_clicks WHERE id IN ("
            " SELECT id FROM message_short_link_clicks"
            " WHERE account_id = ? AND clicked_at < ? LIMIT ?)",
            (1, "2026-03-01T10:20:00.000000Z", 1000),
        ),
        *(
            Step(
                f"UPDATE {table} SET ip = ?, ip_anonymized_at = ? WHERE id = ?"
                " AND ip_anonymized_at IS NULL",
                ("198.51.100.0", "2026-06-01T00:00:00.000000Z", row_id),
            )
            for table in ("message_short_link_clicks", "message_clicks", "conversions")
            for row_id in (4, 5, 6, 7)
        ),
        # trackly receipts import
        Step(SET_DELIVERY, ("delivered", "2026-03-01T09:07:31.250000Z", "delivered", 1)),
        Step(COUNT_DELIVERY, (1, B9, 1, 1, 1, "A", 1, 0, 1, 0, 0, 0)),
        Step(COUNT_DELIVERY, (1, B9, 1, 1, 1, "A", 1, 1, 0, 0, 1, 0)),
        Step(COUNT_DELIVERY, (1, B9, 1, 1, 1, "A", 1, 0, 0, 0, 1, 0)),  # (a plain URL: 0)
        Step(SET_DELIVERY, ("failed", "2026-03-01T09:08:00.000000Z", "undelivered (30007)", 2)),
        Step(COUNT_DELIVERY, (1, B9, 1, 2, 1, "B", 1, 0, 0, 1, 0, 0)),
        Step(COUNT_DELIVERY, (1, B9, 1, 2, 1, "B", 1, 1, 0, 0, 0, 1)),
        Step(SET_DELIVERY, ("delivered", "2026-03-01T09:09:00.000000Z", "delivered", 2)),
        Step(COUNT_DELIVERY, (1, B9, 1, 2, 1, "B", 1, 0, 1, -1, 0, 0)),
        Step(COUNT_DELIVERY, (1, B9, 1, 2, 1, "B", 1, 1, 0, 0, 1, -1)),
        Step(SET_DELIVERY, ("pending", None, "queued", 3)),
        # the server's click journal
        Step(
            "INSERT INTO journal_state (id, folder, segment, byte_offset, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("4f0c9d", "/var/lib/trackly/journal", 7, 0, T0, T0),
        ),
        Step(
            "UPDATE journal_state SET segment = ?, byte_offset = ?, updated_at = ? WHERE id = ?",
            (8, 5_000_000_000, "2026-03-01T12:00:00.000000Z", "4f0c9d"),
        ),
        # trackly campaign delete --force: the tombstone that tells running servers
        Step(
            "UPDATE campaigns SET deleted = 'retired', deleted_at = ? WHERE id = ?",
            ("2026-03-01T12:30:00.000000Z", 1),
            ("campaigns_deleted_config",),
        ),
    ]
    result = []
    for step in steps:
        if config in step.fires:
            table = re.search(r"(?:INSERT INTO|UPDATE|DELETE FROM) (\w+)", step.sql).group(1)
            event = step.sql.split()[0].lower()
            step = step._replace(fires=(f"{table}_{event}_config",))
        result.append(step)
    return result


def duplicates() -> list[Step]:
    """What the unique constraints turn away or merge, through the application's ON CONFLICT
    clauses: nothing is added, no counter moves. (Kept apart from script() because PostgreSQL
    draws an identity value for a row before it finds the conflict, and SQLite does not: after
    these, a new row's id differs between the two. Nothing adds rows after them here.)"""
    return [
        message_click("Aaaaaa1", 3, "2026-03-01T10:16:30.000000Z", new=False),  # it has one
        message_click("Bbbbbb2", 10, "2026-03-01T11:05:00.000000Z", new=False),
        conversion("Aaaaaa1", revenue=5, txn_id="T-1", message_click_id=1, new=False),
        conversion("Aaaaaa1", event="refund", txn_id="T-1", reversal=True, new=False),
        conversion("Dddddd1", revenue=1_000_000, message_click_id=3, new=False),  # no txn_id
        Step(HOLD_REVERSAL, (1, "T-7", "refund", 1, None, None, None, "conv", None, T0)),
        Step(INSERT_IP_RANGE, ("deny", "203.0.113.0/24", "manual", T0)),
        Step(INSERT_MEMBER, (1, T0, 1, "+12025550143")),
        Step(  # (the code merges the JSON with json_patch, which PostgreSQL does not have)
            INSERT_CONTACT + " ON CONFLICT (account_id, phone) DO UPDATE SET"
            " fields = excluded.fields, updated_at = excluded.updated_at",
            (1, "+12025550144", '{"first_name": "Bobby"}', T0, "2026-03-01T08:30:00.000000Z"),
        ),
    ]


def test_the_same_statements_leave_the_same_rows(stores: Stores):
    steps = script() + duplicates()
    shown: set[str] = set()
    config_rows = 0  # rows written to accounts, domains, offers, lists and ip_ranges
    for number, step in enumerate(steps, 1):
        before, _ = stores.counters()
        lite, pg = stores.run(step.sql, step.params)
        where = f"step {number}: {step.sql[:70]} {step.params}"
        assert lite.refused is None, f"{where}: SQLite refused it: {lite.message}"
        assert pg == lite, where
        after_lite, after_pg = stores.counters()
        assert after_pg == after_lite, f"{where}: the counters differ"
        writes_counters = re.match(
            r"(INSERT INTO|UPDATE) (report_rollups|message_rollups)", step.sql
        )
        if step.fires or writes_counters:
            assert after_lite != before, f"{where}: expected the counters to move"
        else:
            assert after_lite == before, f"{where}: expected the counters to stay"
        shown.update(step.fires)
        if any(name.endswith("_config") for name in step.fires):
            config_rows += lite.rowcount if lite.rows is None else len(lite.rows)
    # every trigger of the schema showed its effect in some step
    triggers = {t.name for t in lite_triggers(stores.lite)}
    assert {t.name for t in pg_triggers(stores.pg)} == triggers
    assert shown == triggers - WEBHOOK_TRIGGERS, sorted(triggers ^ shown)
    stores.assert_same_contents()
    # and the counters are what the steps make them (a spot check of the arithmetic)
    quarter = stores.lite.execute(
        "SELECT clicks, bot_clicks, unique_clicks FROM report_rollups WHERE bucket_at = ?"
        " AND campaign_id = 1 AND variant = 'A' AND offer_id = 1",
        ("2026-03-01T10:15:00Z",),
    ).fetchall()
    assert quarter == [(2, 1, 1)]  # clicks 2 (bot after the rescan) and 3; MessageClick 5
    # one bump per row, as SQLite's row triggers do
    assert stores.lite.execute("SELECT version FROM config_version").fetchone() == (config_rows,)
    assert config_rows == 27


INSERT_WEBHOOK = (
    "INSERT INTO webhooks (account_id, url, events, secret, enabled, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def webhook_events(conn) -> list[tuple]:
    """The outbox, its random event ids checked for their form and its JSON data read (the
    stores spell JSON text differently: key order, spaces)."""
    found = []
    for row in conn.execute(
        "SELECT event_id, webhook_id, account_id, type, contact_id, data, created_at,"
        " attempts, next_attempt_at, delivered_at FROM webhook_events"
    ).fetchall():
        assert re.fullmatch(r"evt_[0-9a-f]{32}", row[0]), row[0]
        found.append((*row[1:5], json.dumps(json.loads(row[5]), sort_keys=True), *row[6:]))
    return sorted(found, key=repr)


def test_the_webhook_triggers_write_the_same_events(stores: Stores):
    """The whole script with a hook of account 1 subscribed to every type (and one not
    subscribed, and one disabled): both stores write the same events, with the same data."""
    every = "click.first,click.bot,conversion.created,conversion.reversed"
    key = "whsec_0123456789abcdef"
    hooks = [
        Step(INSERT_WEBHOOK, (1, "https://crm.example/h", every, key, 1, T0)),
        Step(INSERT_WEBHOOK, (1, "https://b.example/h", "click.bot", key, 1, T0)),
        Step(INSERT_WEBHOOK, (1, "https://off.example/h", every, key, 0, T0)),
    ]
    steps = script() + duplicates()
    steps[1:1] = hooks  # (right after account 1)
    for number, step in enumerate(steps, 1):
        lite, pg = stores.run(step.sql, step.params)
        assert lite.refused is None and pg == lite, f"step {number}: {step.sql[:70]}"
    lite, pg = webhook_events(stores.lite), webhook_events(stores.pg)
    assert lite == pg
    by_type = {}
    for webhook_id, _, type_, *_ in lite:
        by_type.setdefault(type_, set()).add(webhook_id)
    assert by_type == {
        "click.first": {1},
        "click.bot": {1, 2},
        "conversion.created": {1},
        "conversion.reversed": {1},
    }
    for event in lite:
        assert event[5] == event[7]  # due at once
    money = {
        (e[2], d["txn_id"], d["revenue"], d["payout"])
        for e in lite
        if e[2].startswith("conversion.") and (d := json.loads(e[4]))
    }
    assert ("conversion.created", "T-1", "19.99", "2.50") in money
    assert ("conversion.reversed", "T-1", "-19.99", "-2.50") in money


# -- what either refuses -------------------------------------------------------------------------


def _short_link(link_id: str, slot: str = "url9", offer_id=None, url="https://x.example/") -> Step:
    return Step(INSERT_LINK, (link_id, 1, 4, None, 1, slot, offer_id, url, SENT))


def _bad_click(**changes) -> Step:
    step = click(99, "2026-03-05T10:00:00.000000Z", "Dddddd1", visitor=V4)
    names = INSERT_CLICK.split("(", 1)[1].split(")", 1)[0].replace(" ", "").split(",")
    values = dict(zip(names, step.params, strict=True)) | changes
    return step._replace(params=tuple(values.values()))


ACCEPTED = [
    # short link ids: seven ASCII letters and digits, any case
    _short_link("0000000", "url2"),
    _short_link("zZ9aA0b", "url3"),
    # phones: '+' and a digit 1-9, then anything (GLOB '+[1-9]*')
    Step(INSERT_CONTACT, (1, "+1", "{}", T0, T0)),
    Step(INSERT_CONTACT, (1, "+9 anything", "{}", T0, T0)),
    # timestamps: date, 'T', hours and minutes, anything, 'Z' (newlines included)
    click(20, "2026-03-05T10:00:Z", "Dddddd1", visitor=V4),
    click(21, "2026-03-05T23:59:59.999999Z", "Dddddd1", visitor=V4),
    click(22, "2026-03-05T10:61:00.000000Z", "Dddddd1", visitor=V4),  # bucket minute ''
    click(23, "2026-03-05T10:07:\nZ", "Dddddd1", visitor=V4),
    message_click("Dddddd1", 23, "2026-03-05T10:07:\nZ", visitor="v:other"),
    # events: 1-32 of a-z, 0-9 and _; without a txn_id, one per link and event
    conversion("Eeeeee1", event="a", at="2026-03-05T10:00:00.000000Z"),
    conversion("Eeeeee1", event="x" * 32, at="2026-03-05T10:00:00.000000Z"),
    conversion("Eeeeee1", event="sale_2", at="2026-03-05T10:00:00.000000Z"),
    # without a txn_id and a link, any number
    conversion(None, event="lead", attribution="no_message", offer_id=1),
    conversion(None, event="lead", attribution="no_message", offer_id=1),
    # names of 1 and of 100 characters; a second domain that is not the default
    Step(INSERT_CREATIVE, (1, "x", "x", "body", T0)),
    Step(INSERT_CREATIVE, (1, "y" * 100, "y" * 100, "body", T0)),
    Step(INSERT_CREATIVE, (1, "é" * 100, "é" * 100, "body", T0)),  # characters, not bytes
    Step(INSERT_DOMAIN, (1, "go2.acme.test", "http", 0, T0), ("domains_insert_config",)),
    Step(INSERT_DOMAIN, (1, "go3.acme.test", "https", 0, T0), ("domains_insert_config",)),
    Step(HOLD_REVERSAL, (1, "T-99", "refund", 1, None, None, None, "conv", None, T0)),
    Step(  # a counter row of defaults
        "INSERT INTO report_rollups (account_id, bucket_at) VALUES (?, ?)",
        (1, "2026-03-01T23:45:00Z"),
    ),
]

REFUSED = [
    # (what, statement, the kind of constraint)
    (
        "a second MessageClick per (message, visitor)",
        message_click("Bbbbbb1", 5, "2026-03-01T10:31:00.000000Z", sql=MESSAGE_CLICK_COLUMNS),
        "unique",
    ),
    (
        "a second sale with one txn_id",
        conversion("Bbbbbb1", txn_id="T-1", sql=CONVERSION_COLUMNS),
        "unique",
    ),
    (
        "a second refund of one txn_id",
        conversion(
            "Aaaaaa1", event="chargeback", txn_id="T-1", reversal=True, sql=CONVERSION_COLUMNS
        ),
        "unique",
    ),
    (
        "without a txn_id, a second sale on one link",
        conversion("Dddddd1", revenue=9, sql=CONVERSION_COLUMNS),
        "unique",
    ),
    (
        "a second held reversal of one txn_id",
        Step(
            HOLD_REVERSAL.split(" ON CONFLICT")[0],
            (1, "T-99", "refund", 1, None, None, None, "conv", None, T0),
        ),
        "unique",
    ),
    ("a link id of 6 characters", _short_link("abcdef"), "check"),
    ("a link id of 8 characters", _short_link("abcdefgh"), "check"),
    ("a link id with a hyphen", _short_link("abc-def"), "check"),
    ("a link id with an underscore", _short_link("abc_def"), "check"),
    ("a link id with a space", _short_link("abc def"), "check"),
    ("a link id with a non-ASCII letter", _short_link("abcdéfg"), "check"),
    ("a link id with a newline", _short_link("abcdef\n"), "check"),
    ("a link id with a fullwidth digit", _short_link("abcdef１"), "check"),
    ("a link id taken", _short_link("Aaaaaa1"), "unique"),
    ("a slot of its message taken", _short_link("Zzzzzz1", "url1"), "unique"),
    ("a link with an offer and a URL", _short_link("Zzzzzz2", offer_id=1), "check"),
    ("a link with neither", _short_link("Zzzzzz3", url=None), "check"),
    ("a click on an unknown link", _bad_click(link_id="Zzzzzz9"), "foreign key"),
    (
        "an account named as another, case-folded",
        Step(INSERT_ACCOUNT, ("ACME", validate.key("ACME"), 90, None, T0, T0)),
        "unique",
    ),
    (
        "an offer named as another, case-folded",
        Step(INSERT_OFFER, offer_values("BÜCHER")),
        "unique",
    ),
    (
        "a list named as another, case-folded",
        Step(
            INSERT_LIST, ("flag", 2, None, None, None, "{}", 1, "vip", validate.key("vip"), T0, T0)
        ),
        "unique",
    ),
    (
        "a creative named as another, case-folded",
        Step(INSERT_CREATIVE, (1, "SPRING A", validate.key("SPRING A"), "x", T0)),
        "unique",
    ),
    (
        "a campaign named as another, case-folded",
        Step(INSERT_CAMPAIGN, (1, "SPRING", validate.key("SPRING"), 1, 1, "x", T0, None, None)),
        "unique",
    ),
    ("a hostname taken", Step(INSERT_DOMAIN, (1, "go.acme.test", "https", 0, T0)), "unique"),
    ("a second default domain", Step(INSERT_DOMAIN, (1, "x.acme.test", "https", 1, T0)), "unique"),
    ("a contact's phone twice", Step(INSERT_CONTACT, (1, "+12025550143", "{}", T0, T0)), "unique"),
    (
        "a member twice",
        Step(
            "INSERT INTO list_members (list_id, contact_id, added_at) VALUES (?, ?, ?)", (1, 1, T0)
        ),
        "unique",
    ),
    ("a variant label twice", Step(INSERT_VARIANT, (1, "A", 2, 1)), "unique"),
    (
        "an IP range twice",
        Step(INSERT_IP_RANGE.split(" ON CONFLICT")[0], ("deny", "203.0.113.0/24", "manual", T0)),
        "unique",
    ),
    (
        "a journal twice",
        Step(
            "INSERT INTO journal_state (id, folder, segment, byte_offset, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("4f0c9d", "/x", 0, 0, T0, T0),
        ),
        "unique",
    ),
    (
        "a setting twice",
        Step("INSERT INTO settings (key, value) VALUES (?, ?)", ("visitor_secret", "00")),
        "unique",
    ),
    (
        "a counter row twice",
        Step(
            "INSERT INTO report_rollups (account_id, bucket_at) VALUES (?, ?)",
            (1, "2026-03-01T23:45:00Z"),
        ),
        "unique",
    ),
    (
        "a message counter row twice",
        Step(
            "INSERT INTO message_rollups (message_id, bucket_at) VALUES (?, ?)",
            (1, "2026-03-01T10:15:00Z"),
        ),
        "unique",
    ),
    (
        "a message id taken",
        Step(INSERT_MESSAGE, (5, 1, None, None, None, None, None, 1, "x", 1, "GSM-7", SENT)),
        "unique",
    ),
    (
        "a second config_version row",
        Step("INSERT INTO config_version (id, version) VALUES (?, ?)", (2, 0)),
        "check",
    ),
    ("a phone without '+'", Step(INSERT_CONTACT, (1, "12025550100", "{}", T0, T0)), "check"),
    ("a phone '+0…'", Step(INSERT_CONTACT, (1, "+0123", "{}", T0, T0)), "check"),
    ("a phone with a leading space", Step(INSERT_CONTACT, (1, " +1202", "{}", T0, T0)), "check"),
    ("an empty phone", Step(INSERT_CONTACT, (1, "", "{}", T0, T0)), "check"),
    ("a click time with a space", _bad_click(clicked_at="2026-03-05 10:00:00.000000Z"), "check"),
    ("a click time without 'Z'", _bad_click(clicked_at="2026-03-05T10:00:00.000000"), "check"),
    ("a click time after 'Z'", _bad_click(clicked_at="2026-03-05T10:00:00Z\n"), "check"),
    ("a one-digit month", _bad_click(clicked_at="2026-3-05T10:00:00.000000Z"), "check"),
    ("an empty click time", _bad_click(clicked_at=""), "check"),
    (
        "a MessageClick time",
        message_click("Dddddd1", None, "2026-03-05", visitor="v:x", sql=MESSAGE_CLICK_COLUMNS),
        "check",
    ),
    ("a conversion time", conversion("Eeeeee1", event="b", at="yesterday"), "check"),
    ("an event in capitals", conversion("Eeeeee1", event="Sale"), "check"),
    ("an empty event", conversion("Eeeeee1", event=""), "check"),
    ("an event of 33 characters", conversion("Eeeeee1", event="x" * 33), "check"),
    ("an event with a hyphen", conversion("Eeeeee1", event="sale-1"), "check"),
    ("an event with a non-ASCII letter", conversion("Eeeeee1", event="é"), "check"),
    ("is_bot 2", _bad_click(is_bot=2), "check"),
    ("is_bot -1", _bad_click(is_bot=-1), "check"),
    ("headers_cut 2", _bad_click(headers_cut=2), "check"),
    ("is_reversal 2", conversion("Eeeeee1", event="c", reversal=2), "check"),
    ("is_default 2", Step(INSERT_DOMAIN, (1, "y.acme.test", "https", 2, T0)), "check"),
    ("require_secret 2", Step(INSERT_OFFER, offer_values("R", require_secret=2)), "check"),
    ("scheme ftp", Step(INSERT_DOMAIN, (1, "z.acme.test", "ftp", 0, T0)), "check"),
    ("interstitial popup", Step(INSERT_OFFER, offer_values("I", interstitial="popup")), "check"),
    ("an offer's bot_filter", Step(INSERT_OFFER, offer_values("B", bot_filter="strict")), "check"),
    (
        "a list's bot_filter inherit",
        Step(INSERT_LIST, ("inherit", 2, None, None, None, "{}", 1, "L", "l", T0, T0)),
        "check",
    ),
    (
        "encoding UTF-8",
        Step(INSERT_MESSAGE, (9, 1, None, None, None, None, None, 1, "x", 1, "UTF-8", SENT)),
        "check",
    ),
    (
        "a MessageClick source",
        message_click("Dddddd1", None, "2026-03-05T10:00:00Z", visitor="v:y", source="web"),
        "check",
    ),
    ("a conversion source", conversion("Eeeeee1", event="d", source="api"), "check"),
    ("an attribution", conversion("Eeeeee1", event="e", attribution="maybe"), "check"),
    ("an IP range kind", Step(INSERT_IP_RANGE, ("block", "192.0.2.0/24", "manual", T0)), "check"),
    ("a delivery status", Step(SET_DELIVERY, ("sent", None, "sent", 4)), "check"),
    ("a negative payout", Step(INSERT_OFFER, offer_values("P", payout_micros=-1)), "check"),
    ("0 attribution days", Step(INSERT_OFFER, offer_values("A", attribution_days=0)), "check"),
    ("a negative maximum", Step(INSERT_OFFER, offer_values("M", max_revenue_micros=-1)), "check"),
    (
        "a negative rate",
        Step(INSERT_OFFER, offer_values("H", link_conversions_per_hour=-1)),
        "check",
    ),
    ("0 retention days", Step(INSERT_ACCOUNT, ("R", "r", 0, None, T0, T0)), "check"),
    ("negative anonymisation", Step(INSERT_ACCOUNT, ("N", "n", 1, -1, T0, T0)), "check"),
    (
        "negative seconds",
        Step(INSERT_LIST, ("flag", -0.5, None, None, None, "{}", 1, "S", "s", T0, T0)),
        "check",
    ),
    ("a weight of 0", Step(INSERT_VARIANT, (1, "C", 1, 0)), "check"),
    ("an empty name", Step(INSERT_ACCOUNT, ("", "", 90, None, T0, T0)), "check"),
    ("a name of 101 characters", Step(INSERT_OFFER, offer_values("n" * 101)), "check"),
    ("a name of 101 letters ü", Step(INSERT_OFFER, offer_values("ü" * 101)), "check"),
    ("no name", Step(INSERT_ACCOUNT, (None, "none", 90, None, T0, T0)), "not null"),
    ("no visitor", _bad_click(visitor=None), "not null"),
    (
        "no bucket",
        Step("INSERT INTO report_rollups (account_id, bucket_at) VALUES (?, ?)", (1, None)),
        "not null",
    ),
    (
        "a message of an unknown account",
        Step(INSERT_MESSAGE, (9, 99, None, None, None, None, None, 1, "x", 1, "GSM-7", SENT)),
        "foreign key",
    ),
    (
        "an unknown MessageClick",
        conversion("Eeeeee1", event="f", message_click_id=999),
        "foreign key",
    ),
    ("a variant of an unknown creative", Step(INSERT_VARIANT, (1, "D", 99, 1)), "foreign key"),
    (
        "an unknown contact in a list",
        Step(
            "INSERT INTO list_members (list_id, contact_id, added_at) VALUES (?, ?, ?)", (1, 99, T0)
        ),
        "foreign key",
    ),
    ("an account with rows", Step("DELETE FROM accounts WHERE id = ?", (1,)), "foreign key"),
    ("a message with links", Step("DELETE FROM messages WHERE id = ?", (1,)), "foreign key"),
    ("an offer with links", Step("DELETE FROM offers WHERE id = ?", (1,)), "foreign key"),
    ("config_version's id", Step("UPDATE config_version SET id = ?", (2,)), "check"),
]


def test_what_sqlite_refuses_postgresql_refuses(stores: Stores):
    for step in script():
        stores.run(step.sql, step.params)
    for number, step in enumerate(ACCEPTED, 1):
        lite, pg = stores.run(step.sql, step.params)
        assert lite.refused is None, f"accepted {number}: SQLite refused it: {lite.message}"
        assert pg == lite, f"accepted {number}: {step.params}"
        after_lite, after_pg = stores.counters()
        assert after_pg == after_lite, f"accepted {number}: the counters differ"
    differences = []
    for what, step, kind in REFUSED:
        lite, pg = stores.run(step.sql, step.params)
        assert lite.refused == kind, f"{what}: SQLite gave {lite}"
        if pg.refused != kind:
            differences.append(f"{what}: PostgreSQL gave {pg}")
    assert not differences, "\n".join(differences)
    stores.assert_same_contents()  # nothing refused left a trace, on either


# -- where the two differ (for the application code) ---------------------------------------------


def test_where_postgresql_differs(stores: Stores):
    """What the schema cannot make the same, so the application's SQL must allow for."""
    for step in script():
        stores.run(step.sql, step.params)
    lite, pg = stores.lite, stores.pg
    # SQLite numbers a new row from the largest id, so an id deleted last is given again
    # (account 2); an identity never gives one twice, and an explicit NULL id is an error.
    account = ("Again", "again", 90, None, T0, T0)
    null_id = INSERT_ACCOUNT.replace("(name,", "(id, name,").replace("VALUES (", "VALUES (NULL, ")
    assert lite.execute(null_id, account).fetchone() == (2,)
    with pytest.raises(psycopg.errors.NotNullViolation):
        pg.execute(pg_sql(null_id), account)
    assert pg.execute(pg_sql(INSERT_ACCOUNT), account).fetchone() == (3,)
    # A row turned away by ON CONFLICT (or by any error) has drawn its identity value already.
    conflict = conversion("Aaaaaa1", txn_id="T-1", new=False)
    assert stores.run(conflict.sql, conflict.params) == (Outcome(None, 0), Outcome(None, 0))
    fresh = conversion("Eeeeee1", event="z")
    lite_id, pg_id = stores.run(fresh.sql + " RETURNING id", fresh.params)
    assert (lite_id.rows, pg_id.rows) == ([(("int", 10),)], [(("int", 11),)])
    # Ids the code gives itself (messages, clicks) leave the identity's sequence behind: the
    # next id it draws is 1, and taken.
    without_id = INSERT_MESSAGE.replace("(id, ", "(").replace("(?, ", "(", 1)
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute(pg_sql(without_id), (1, None, None, None, None, None, 1, "x", 1, "GSM-7", SENT))
    # In an upsert's SET a bare column is ambiguous (SQLite: the stored row's).
    bare = COUNT_SENT.replace("report_rollups.", "")
    assert "sent = sent + excluded.sent" in bare
    sent = (1, B9, 1, 1, 1, "A", 1, 0, 1, 0)
    lite.execute(bare, sent)
    with pytest.raises(psycopg.errors.AmbiguousColumn):
        pg.execute(pg_sql(bare), sent)
    # NOT of an integer, `IS ?` with a value, and a Python bool for a 0/1 column are SQLite's.
    with pytest.raises(psycopg.errors.DatatypeMismatch):
        pg.execute("SELECT count(*) FROM conversions WHERE NOT is_reversal")
    with pytest.raises(psycopg.errors.SyntaxError):
        pg.execute("SELECT count(*) FROM message_clicks WHERE ip IS %s", ("198.51.100.7",))
    with pytest.raises(psycopg.errors.DatatypeMismatch):
        pg.execute("UPDATE message_short_link_clicks SET is_bot = %s WHERE id = 4", (True,))
    # sum() of a BIGINT column is numeric: a Decimal in Python, where SQLite gives an int.
    assert type(lite.execute("SELECT sum(clicks) FROM report_rollups").fetchone()[0]) is int
    total = pg.execute("SELECT sum(clicks) FROM report_rollups").fetchone()[0]
    assert type(total).__name__ == "Decimal"
