"""Dashboard users: their passwords (scrypt, from the standard library), the accounts each may
see, and their login sessions.

A password is stored as `scrypt$n$r$p$salt_hex$hash_hex` with a random 16-byte salt and
compared in constant time. A session is a random token in the browser's cookie; the database
keeps only its SHA-256, with an idle and an absolute expiry.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from datetime import timedelta

from trackly_cli.core import clock, lookup, store, validate
from trackly_cli.core.errors import Conflict, InvalidInput, NotFound

# scrypt's cost: 2**14 * 8 * 128 bytes = 16 MiB and ~50 ms a check (OWASP's minimum is 2**13).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_PASSWORD = 1024
SESSION_IDLE = timedelta(hours=12)
SESSION_LIFETIME = timedelta(days=7)


# -- passwords -----------------------------------------------------------------------------------


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=HASH_BYTES
    )


def check_password(password: str) -> str:
    if not password or not password.strip():
        raise InvalidInput("the password is empty")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"the password is longer than {MAX_PASSWORD} characters")
    if len(password) < 8:
        raise InvalidInput("the password is shorter than 8 characters")
    return password


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        found = _scrypt(password[:MAX_PASSWORD], bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:  # (not a hash this code made)
        return False
    return hmac.compare_digest(found, expected)


@functools.cache
def _nobody() -> str:
    """A hash to check a password against when the name is unknown, so that a login takes as
    long either way (made on first use: every CLI command imports this module)."""
    return hash_password(secrets.token_urlsafe(16))


def prepare_logins() -> None:
    """Make the unknown name's hash now (a server, before its first login), so that even the
    first login with an unknown name takes as long as one with a known name."""
    _nobody()


# -- users ---------------------------------------------------------------------------------------


def _accounts(conn: store.Store, refs: list[str]) -> list[dict]:
    found: dict[int, dict] = {}
    for ref in refs:
        account = lookup.find(conn, "accounts", ref)
        found[account["id"]] = account
    return list(found.values())


def add(
    db: store.Store, name: str, password: str, *, accounts: list[str], admin: bool = False
) -> dict:
    name = validate.name(name, "user")
    check_password(password)
    if not admin and not accounts:
        raise InvalidInput("a user sees nothing without --account A (repeatable) or --admin")
    digest = hash_password(password)
    now = clock.now_text()
    with store.write(db) as conn:
        granted = _accounts(conn, accounts)
        if store.row(conn, "SELECT id FROM users WHERE name_key = ?", (validate.key(name),)):
            raise Conflict(f"user {name!r} already exists")
        cursor = conn.execute(
            "INSERT INTO users (name, name_key, password_hash, is_admin, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (name, validate.key(name), digest, int(admin), now, now),
        )
        user_id = store.returned_id(cursor)
        for account in granted:
            conn.execute(
                "INSERT INTO user_accounts (user_id, account_id) VALUES (?, ?)",
                (user_id, account["id"]),
            )
    return show(db, user_id)


def find(conn: store.Store, ref: str | int) -> dict:
    text = str(ref).strip()
    if validate.is_id(text):
        found = store.row(conn, "SELECT * FROM users WHERE id = ?", (int(text),))
    else:
        found = store.row(conn, "SELECT * FROM users WHERE name_key = ?", (validate.key(text),))
    if found is None:
        raise NotFound(f"no user {text!r} (see `trackly user list`)")
    return found


def show(conn: store.Store, ref: str | int) -> dict:
    """A user as listed: never the password hash."""
    user = find(conn, ref)
    names = [
        r[0]
        for r in conn.execute(
            "SELECT a.name FROM user_accounts ua JOIN accounts a ON a.id = ua.account_id"
            " WHERE ua.user_id = ? ORDER BY a.name",
            (user["id"],),
        )
    ]
    return {
        "id": user["id"],
        "name": user["name"],
        "admin": bool(user["is_admin"]),
        "accounts": ["(all)"] if user["is_admin"] else names,
        "created_at": user["created_at"],
    }


def list_all(conn: store.Store) -> list[dict]:
    ids = [r[0] for r in conn.execute("SELECT id FROM users ORDER BY name_key")]
    return [show(conn, user_id) for user_id in ids]


def remove(db: store.Store, ref: str) -> dict:
    with store.write(db) as conn:
        user = show(conn, ref)
        conn.execute("DELETE FROM user_sessions WHERE user_id = ?", (user["id"],))
        conn.execute("DELETE FROM user_accounts WHERE user_id = ?", (user["id"],))
        conn.execute("DELETE FROM users WHERE id = ?", (user["id"],))
    return user


def set_password(db: store.Store, ref: str, password: str) -> dict:
    """A new password; the user's sessions end (a stolen one is useless after a change)."""
    check_password(password)
    digest = hash_password(password)
    with store.write(db) as conn:
        user = find(conn, ref)
        conn.execute(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
            (digest, clock.now_text(), user["id"]),
        )
        conn.execute("DELETE FROM user_sessions WHERE user_id = ?", (user["id"],))
    return show(db, user["id"])


def exist(conn: store.Store) -> bool:
    return store.scalar(conn, "SELECT count(*) FROM users") > 0


def authenticate(conn: store.Store, name: str, password: str) -> dict | None:
    """The user whose name and password these are, or None (as slow for an unknown name)."""
    user = None
    if name.strip() and len(name) <= 100:
        user = store.row(conn, "SELECT * FROM users WHERE name_key = ?", (validate.key(name),))
    if user is None:
        verify_password(password, _nobody())
        return None
    return user if verify_password(password, user["password_hash"]) else None


def allowed_accounts(conn: store.Store, user: dict) -> list[dict]:
    """The accounts a user may see, by name: every one for an admin."""
    if user["is_admin"]:
        return store.rows(conn, "SELECT id, name FROM accounts ORDER BY name_key")
    return store.rows(
        conn,
        "SELECT a.id, a.name FROM accounts a JOIN user_accounts ua ON ua.account_id = a.id"
        " WHERE ua.user_id = ? ORDER BY a.name_key",
        (user["id"],),
    )


# -- sessions ------------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(db: store.Store, user_id: int) -> str:
    """A new session's token (for the cookie); expired sessions are cleared on the way."""
    token = secrets.token_urlsafe(32)
    now = clock.utcnow()
    with store.write(db) as conn:
        conn.execute(
            "DELETE FROM user_sessions WHERE expires_at < ? OR seen_at < ?",
            (clock.to_text(now), clock.to_text(now - SESSION_IDLE)),
        )
        conn.execute(
            "INSERT INTO user_sessions (token_hash, user_id, created_at, seen_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                _token_hash(token),
                user_id,
                clock.to_text(now),
                clock.to_text(now),
                clock.to_text(now + SESSION_LIFETIME),
            ),
        )
    return token


def session_user(db: store.Store, token: str) -> dict | None:
    """The user of a live session, its idle clock reset; None for an unknown or expired one."""
    if not token or len(token) > 100:
        return None
    now = clock.utcnow()
    found = store.row(
        db,
        "SELECT s.seen_at, s.expires_at, u.id, u.name, u.is_admin FROM user_sessions s"
        " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?",
        (_token_hash(token),),
    )
    if found is None:
        return None
    if found["expires_at"] < clock.to_text(now) or found["seen_at"] < clock.to_text(
        now - SESSION_IDLE
    ):
        end_session(db, token)
        return None
    # (touched at most once a minute: a page that polls need not write every second)
    if found["seen_at"] < clock.to_text(now - timedelta(minutes=1)):
        with store.write(db) as conn:
            conn.execute(
                "UPDATE user_sessions SET seen_at = ? WHERE token_hash = ?",
                (clock.to_text(now), _token_hash(token)),
            )
    return found


def end_session(db: store.Store, token: str) -> None:
    with store.write(db) as conn:
        conn.execute("DELETE FROM user_sessions WHERE token_hash = ?", (_token_hash(token),))
