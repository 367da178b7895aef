-- Opt-outs (#14): the account's suppression list. A number here gets no message from any
-- shorten (a list send skips it; a one-off message to it is refused), so it never gets a link
-- either. One row per (account, phone), the phone in E.164 as contacts have it: `keyword` is
-- what the person sent (STOP, UNSUBSCRIBE…; NULL when the source did not say), `opted_out_at`
-- when they sent it (the gateway's time, else the time it was recorded), `source` where it came
-- from ('cli', or 'import:FILE' for a gateway's STOP export). The unique key is the index
-- every shorten looks numbers up in.
CREATE TABLE optouts (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    phone        TEXT NOT NULL CHECK (phone GLOB '+[1-9]*'),   -- E.164
    keyword      TEXT,
    opted_out_at TEXT NOT NULL,
    source       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (account_id, phone)
);
