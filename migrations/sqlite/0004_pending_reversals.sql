-- A refund or chargeback naming a txn_id whose sale has not arrived yet (networks send them out
-- of order) waits here, and is applied the moment its sale is recorded: the sale is reversed,
-- never answered `duplicate` and left standing (#15). One per (account, txn_id), as a recorded
-- reversal is. The amounts are as the postback gave them (positive); NULL: the sale's own.
CREATE TABLE pending_reversals (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id),
    txn_id          TEXT NOT NULL,
    event           TEXT NOT NULL,
    offer_id        INTEGER REFERENCES offers(id),
    link_id         TEXT REFERENCES short_links(id),
    revenue_micros  INTEGER,
    payout_micros   INTEGER,
    source          TEXT NOT NULL,
    ip              TEXT,
    received_at     TEXT NOT NULL,
    UNIQUE (account_id, txn_id)
);
