"""Creatives: saved message templates."""

from __future__ import annotations

from trackly_cli.core import accounts, clock, lookup, paging, store, templates, validate
from trackly_cli.core.errors import Conflict


def add(db: store.Store, account_ref: str | None, name: str, body: str) -> dict:
    name = validate.name(name, "creative")
    compiled = templates.compile_template(body)
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        if store.row(
            conn,
            "SELECT id FROM creatives WHERE account_id = ? AND name_key = ?",
            (account["id"], validate.key(name)),
        ):
            raise Conflict(f"creative {name!r} already exists in account {account['name']!r}")
        creative_id = insert(conn, account["id"], name, body)
    return describe(get(db, creative_id), compiled)


def insert(conn: store.Store, account_id: int, name: str, body: str) -> int:
    return store.returned_id(
        conn.execute(
            "INSERT INTO creatives (account_id, name, name_key, body, created_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (account_id, name, validate.key(name), body, clock.now_text()),
        )
    )


def save_for_campaign(conn: store.Store, account_id: int, name: str, body: str) -> int:
    """The id of a creative holding `body`: the one called `name` when its text is the same,
    else a new one (named `name`, or `name-2`, `name-3`… when that name is taken)."""
    name = validate.name(name, "creative")
    candidate, n = name, 1
    while True:
        found = store.row(
            conn,
            "SELECT id, body FROM creatives WHERE account_id = ? AND name_key = ?",
            (account_id, validate.key(candidate)),
        )
        if found is None:
            # (another process may save one of this name meanwhile: then look again)
            created = store.returned_id(
                conn.execute(
                    "INSERT INTO creatives (account_id, name, name_key, body, created_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, name_key) DO NOTHING"
                    " RETURNING id",
                    (account_id, candidate, validate.key(candidate), body, clock.now_text()),
                )
            )
            if created is not None:
                return created
            continue
        if found["body"] == body:
            return found["id"]
        n += 1
        candidate = f"{name[:95]}-{n}"


def get(conn: store.Store, creative_id: int) -> dict:
    return store.row(
        conn,
        "SELECT c.id, c.name, a.name AS account, c.body, c.created_at,"
        " (SELECT count(*) FROM messages m WHERE m.creative_id = c.id) AS messages"
        " FROM creatives c JOIN accounts a ON a.id = c.account_id WHERE c.id = ?",
        (creative_id,),
    )


def describe(creative: dict, compiled: templates.Template | None = None) -> dict:
    compiled = compiled or templates.compile_template(creative["body"])
    creative["slots"] = compiled.slots
    creative["fields"] = [
        f.name + (f"|{f.fallback}" if f.fallback is not None else "") for f in compiled.fields
    ]
    creative["urls"] = list(compiled.urls.values())
    return creative


def show(db: store.Store, account_ref: str | None, ref: str) -> dict:
    account = accounts.resolve(db, account_ref)
    return describe(get(db, lookup.find(db, "creatives", ref, account["id"])["id"]))


def list_all(db: store.Store, account_ref: str | None, limit: int | None = None) -> paging.Page:
    account = accounts.resolve(db, account_ref)
    found = paging.fetch(
        db,
        "SELECT id FROM creatives WHERE account_id = ?",
        "ORDER BY name",
        (account["id"],),
        limit,
    )
    return paging.Page([describe(get(db, r["id"])) for r in found.rows], found.total)
