-- The JSON API (#17): keys that scripts send as `Authorization: Bearer KEY`. A key belongs to
-- one account and sees only it; `read` keys may only GET, `write` keys may change things too.
-- Only the SHA-256 of a key is kept (the key itself is shown once, at creation), so the table
-- alone lets nobody in; `prefix` is the key's first characters, for telling keys apart in a
-- listing. A revoked key keeps its row (its name and dates are history).
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    key_hash     TEXT NOT NULL UNIQUE,       -- sha256 hex of the whole key
    prefix       TEXT NOT NULL,              -- its first characters, as listings show them
    created_at   TEXT NOT NULL,
    last_used_at TEXT,                       -- updated at most once a minute
    revoked_at   TEXT
);
CREATE INDEX api_keys_account ON api_keys (account_id);
-- An `Idempotency-Key` an API client sent with a write, and the answer it got: a retry with the
-- same key gets that answer again instead of a second message. The key is claimed in the same
-- transaction as what the request writes, so two concurrent retries make one message.
CREATE TABLE api_idempotency (
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    key          TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint  TEXT NOT NULL,              -- sha256 hex of the request's method, path and body
    status       INTEGER,                     -- (NULL only inside the claiming transaction)
    response     TEXT,                       -- the JSON body answered
    created_at   TEXT NOT NULL,
    PRIMARY KEY (account_id, key)
);
