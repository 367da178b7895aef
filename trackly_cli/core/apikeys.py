"""API keys: what a script sends as `Authorization: Bearer KEY` to the JSON API of the
operator app (`/api/v1`).

A key is `trk_` and 43 random URL-safe characters (256 bits), shown once when it is made; the
database keeps only its SHA-256 (a key has all the entropy it needs: no salt or slow hash, which
would make every API request pay for it) and its first characters, so that a listing tells keys
apart. A key belongs to one account and sees only it. Its scope is `read` (GET only: the safe
default for a dashboard or a report script) or `write` (it may shorten and change offers too).
A revoked key answers 401 at once; its row stays, as history.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from trackly_cli.core import accounts, clock, ids, lookup, store, validate
from trackly_cli.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized

KEY_PREFIX = "trk_"
SHOWN_CHARS = 12  # `trk_` and 8 characters: what listings show of a key
SCOPES = ("read", "write")
DEFAULT_SCOPE = "read"
MAX_KEY_LENGTH = 100
# last_used_at is written at most this often per key: reading the API writes nothing more.
TOUCH_EVERY = timedelta(minutes=1)

_LISTED = (
    "SELECT k.id, a.name AS account, k.name, k.scope, k.prefix, k.created_at, k.last_used_at,"
    " k.revoked_at FROM api_keys k JOIN accounts a ON a.id = k.account_id"
)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise InvalidInput(f"--scope must be one of {', '.join(SCOPES)}", field="scope")
    return scope


def create(
    db: store.Store, account_ref: str | None, *, scope: str = DEFAULT_SCOPE, name: str | None = None
) -> dict:
    """A new key of the account: its listing row and, this once, the key itself (`key`)."""
    check_scope(scope)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    shown = key[:SHOWN_CHARS]
    name = validate.name(name, "key") if name is not None else shown
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        key_id = ids.insert(  # (never the id of a key deleted with its account: `revoke ID`)
            conn,
            "api_keys",
            {
                "account_id": account["id"],
                "name": name,
                "scope": scope,
                "key_hash": _digest(key),
                "prefix": shown,
                "created_at": clock.now_text(),
            },
        )
    return show(db, key_id) | {"key": key}


def show(conn: store.Store, key_id: int) -> dict:
    found = store.row(conn, _LISTED + " WHERE k.id = ?", (key_id,))
    if found is None:
        raise NotFound(f"no API key {key_id} (see `trackly apikey list`)")
    return found


def list_all(db: store.Store, account_ref: str | None = None) -> list[dict]:
    """Every key (of one account, when named), revoked ones too; never a key or its hash."""
    if account_ref:
        account = lookup.find(db, "accounts", account_ref)
        return store.rows(db, _LISTED + " WHERE k.account_id = ? ORDER BY k.id", (account["id"],))
    return store.rows(db, _LISTED + " ORDER BY k.id")


def revoke(db: store.Store, ref: str) -> dict:
    """Revoke a key by its id: it answers 401 from the next request on."""
    text = str(ref).strip()
    if not validate.is_id(text):
        raise InvalidInput(f"{text[:40]!r} is not an API key id (see `trackly apikey list`)")
    with store.write(db) as conn:
        found = show(conn, int(text))
        if found["revoked_at"] is not None:
            raise Conflict(f"API key {found['id']} was revoked already ({found['revoked_at']})")
        conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (clock.now_text(), found["id"])
        )
    return show(db, found["id"])


def authenticate(conn: store.Store, bearer: str) -> dict:
    """The key row (with its account's id and name) that `bearer` is, or Unauthorized: no key,
    one that is not a key, an unknown or a revoked one. Its last use is noted (at most once a
    minute)."""
    if not bearer:
        raise Unauthorized("an API key is needed: Authorization: Bearer KEY")
    if not bearer.startswith(KEY_PREFIX) or len(bearer) > MAX_KEY_LENGTH or not bearer.isascii():
        raise Unauthorized("this is not a Trackly API key (they start with trk_)")
    digest = _digest(bearer)
    found = store.row(
        conn,
        "SELECT k.id, k.account_id, a.name AS account, k.name, k.scope, k.key_hash,"
        " k.last_used_at, k.revoked_at FROM api_keys k JOIN accounts a ON a.id = k.account_id"
        " WHERE k.key_hash = ?",
        (digest,),
    )
    # (the row was found by the hash: the comparison is for form, in constant time all the same)
    if found is None or not hmac.compare_digest(found.pop("key_hash"), digest):
        raise Unauthorized("unknown API key")
    if found["revoked_at"] is not None:
        raise Unauthorized("this API key was revoked")
    now = clock.utcnow()
    if found["last_used_at"] is None or found["last_used_at"] < clock.to_text(now - TOUCH_EVERY):
        found["last_used_at"] = clock.to_text(now)
        with store.write(conn):
            conn.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
                (found["last_used_at"], found["id"]),
            )
    return found


def require_write(key: dict) -> None:
    """A key that may change things (scope `write`), or Forbidden."""
    if key["scope"] != "write":
        raise Forbidden("this API key may only read (scope read): use a write key")
