-- The operator's dashboard (#16): who may log in, which accounts each may see, and their
-- sessions. A user's password is stored as `scrypt$n$r$p$salt_hex$hash_hex`; an admin sees
-- every account, any other user only the accounts in user_accounts. A session keeps only the
-- SHA-256 of its cookie's token, so the table alone lets nobody in.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    name_key      TEXT NOT NULL UNIQUE,   -- the name case-folded (NFKC): one per name
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE TABLE user_accounts (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, account_id)
);
CREATE INDEX user_accounts_account ON user_accounts (account_id);
CREATE TABLE user_sessions (
    token_hash  TEXT PRIMARY KEY,          -- sha256 hex of the cookie's token
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL,             -- idle expiry counts from here
    expires_at  TEXT NOT NULL              -- the absolute end
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);
