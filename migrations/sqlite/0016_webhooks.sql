-- Signed webhooks (#17): an account's hooks, and the outbox of their events.
--
-- An event is written by a trigger in the same transaction as the row it describes (a first
-- click, a bot click, a conversion or a reversal), whatever wrote that row (the server's drain,
-- `confirm`, a promoted bot click, `bots rescan`, an import, a held reversal applied later),
-- one row per enabled hook of the account subscribed to its type. An account without hooks
-- pays one probe of webhooks_account: the trigger asks first (in its WHEN on SQLite, where an
-- INSERT that writes nothing still opens the outbox and its indexes; in the function on
-- PostgreSQL, whose WHEN takes no subquery). `data` is built once, here, so that every retry sends
-- the same body, even after the rows it names change; `contacts erase` clears the personal
-- fields of an erased person's events (found by contact_id).
--
-- The senders (core/delivery.py) claim due events (next_attempt_at <= now, no live claim) for
-- a lease, post them, and record the outcome: delivered_at after a 2xx; otherwise the next
-- attempt, until 24 hours after the event, then given_up_at. next_attempt_at is NULL once an
-- event is done either way, so the partial index holds only the events still to send.

CREATE TABLE webhooks (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts (id),
    url             TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    events          TEXT NOT NULL,          -- event types, comma-separated: click.first,click.bot
    secret          TEXT NOT NULL,          -- the HMAC key of the Trackly-Signature header
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at      TEXT NOT NULL,
    failing_since   TEXT,                   -- the first failure since the last success
    disabled_at     TEXT,
    disabled_reason TEXT
);
CREATE INDEX webhooks_account ON webhooks (account_id);

CREATE TABLE webhook_events (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,          -- 'evt_' and 32 hex digits: the body's id, on every retry
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    account_id      INTEGER NOT NULL REFERENCES accounts (id),
    type            TEXT NOT NULL,
    contact_id      INTEGER,                  -- whose event it is (for contacts erase)
    data            TEXT NOT NULL,          -- the body's data: a JSON object
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,                   -- NULL once delivered or given up
    claimed_by      TEXT,                   -- 'host:pid' of the sender posting it
    claimed_until   TEXT,
    delivered_at    TEXT,
    given_up_at     TEXT,
    last_status     INTEGER,                  -- the receiver's HTTP status
    last_error      TEXT
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_events_webhook ON webhook_events (webhook_id, id);
CREATE INDEX webhook_events_contact ON webhook_events (contact_id) WHERE contact_id IS NOT NULL;

-- The events, one per subscribed hook. (Money is integer micros here: the body says it as a
-- decimal string, as core/money.format_amount does: '24.99', '-0.50', '1.2345'.)
CREATE TRIGGER message_clicks_webhook AFTER INSERT ON message_clicks
WHEN EXISTS (SELECT 1 FROM webhooks WHERE account_id = NEW.account_id AND enabled = 1)
BEGIN
    INSERT INTO webhook_events (event_id, webhook_id, account_id, type, contact_id, data, created_at, next_attempt_at)
    SELECT 'evt_' || lower(hex(randomblob(16))), w.id, NEW.account_id, 'click.first', NEW.contact_id,
        json_object(
            'message_click_id', NEW.id,
            'click_id', NEW.click_id,
            'link_id', NEW.link_id,
            'message_id', NEW.message_id,
            'campaign_id', NEW.campaign_id,
            'campaign', (SELECT name FROM campaigns WHERE id = NEW.campaign_id),
            'offer_id', NEW.offer_id,
            'offer', (SELECT name FROM offers WHERE id = NEW.offer_id),
            'variant', NEW.variant,
            'contact_id', NEW.contact_id,
            'phone', (SELECT phone FROM contacts WHERE id = NEW.contact_id),
            'ip', NEW.ip,
            'user_agent', NEW.user_agent,
            'clicked_at', NEW.clicked_at,
            'source', NEW.source),
        NEW.created_at, NEW.created_at
    FROM webhooks w
    WHERE w.account_id = NEW.account_id AND w.enabled = 1
      AND instr(',' || w.events || ',', ',click.first,') > 0;
END;

CREATE TRIGGER msl_clicks_webhook AFTER INSERT ON message_short_link_clicks
WHEN NEW.is_bot = 1 AND EXISTS (SELECT 1 FROM webhooks WHERE account_id = NEW.account_id AND enabled = 1)
BEGIN
    INSERT INTO webhook_events (event_id, webhook_id, account_id, type, contact_id, data, created_at, next_attempt_at)
    SELECT 'evt_' || lower(hex(randomblob(16))), w.id, NEW.account_id, 'click.bot', NEW.contact_id,
        json_object(
            'click_id', NEW.id,
            'link_id', NEW.link_id,
            'message_id', NEW.message_id,
            'campaign_id', NEW.campaign_id,
            'campaign', (SELECT name FROM campaigns WHERE id = NEW.campaign_id),
            'offer_id', NEW.offer_id,
            'offer', (SELECT name FROM offers WHERE id = NEW.offer_id),
            'variant', NEW.variant,
            'contact_id', NEW.contact_id,
            'phone', (SELECT phone FROM contacts WHERE id = NEW.contact_id),
            'ip', NEW.ip,
            'user_agent', NEW.user_agent,
            'clicked_at', NEW.clicked_at,
            'bot_reasons', NEW.bot_reasons),
        NEW.clicked_at, NEW.clicked_at
    FROM webhooks w
    WHERE w.account_id = NEW.account_id AND w.enabled = 1
      AND instr(',' || w.events || ',', ',click.bot,') > 0;
END;

CREATE TRIGGER conversions_webhook AFTER INSERT ON conversions
WHEN EXISTS (SELECT 1 FROM webhooks WHERE account_id = NEW.account_id AND enabled = 1)
BEGIN
    INSERT INTO webhook_events (event_id, webhook_id, account_id, type, contact_id, data, created_at, next_attempt_at)
    SELECT 'evt_' || lower(hex(randomblob(16))), w.id, NEW.account_id, CASE WHEN NEW.is_reversal = 1 THEN 'conversion.reversed' ELSE 'conversion.created' END, NEW.contact_id,
        json_object(
            'conversion_id', NEW.id,
            'txn_id', NEW.txn_id,
            'event', NEW.event,
            'revenue', (CASE WHEN NEW.revenue_micros < 0 THEN '-' ELSE '' END || (abs(NEW.revenue_micros) / 1000000) || '.' || CASE WHEN abs(NEW.revenue_micros) % 10000 = 0 THEN printf('%02d', abs(NEW.revenue_micros) % 1000000 / 10000) WHEN abs(NEW.revenue_micros) % 1000 = 0 THEN printf('%03d', abs(NEW.revenue_micros) % 1000000 / 1000) ELSE printf('%04d', abs(NEW.revenue_micros) % 1000000 / 100) END),
            'payout', (CASE WHEN NEW.payout_micros < 0 THEN '-' ELSE '' END || (abs(NEW.payout_micros) / 1000000) || '.' || CASE WHEN abs(NEW.payout_micros) % 10000 = 0 THEN printf('%02d', abs(NEW.payout_micros) % 1000000 / 10000) WHEN abs(NEW.payout_micros) % 1000 = 0 THEN printf('%03d', abs(NEW.payout_micros) % 1000000 / 1000) ELSE printf('%04d', abs(NEW.payout_micros) % 1000000 / 100) END),
            'attribution', NEW.attribution,
            'converted_at', NEW.converted_at,
            'source', NEW.source,
            'message_click_id', NEW.message_click_id,
            'click_id', (SELECT click_id FROM message_clicks WHERE id = NEW.message_click_id),
            'link_id', NEW.link_id,
            'message_id', NEW.message_id,
            'campaign_id', NEW.campaign_id,
            'campaign', (SELECT name FROM campaigns WHERE id = NEW.campaign_id),
            'offer_id', NEW.offer_id,
            'offer', (SELECT name FROM offers WHERE id = NEW.offer_id),
            'variant', NEW.variant,
            'contact_id', NEW.contact_id,
            'phone', (SELECT phone FROM contacts WHERE id = NEW.contact_id)),
        NEW.created_at, NEW.created_at
    FROM webhooks w
    WHERE w.account_id = NEW.account_id AND w.enabled = 1
      AND instr(',' || w.events || ',', ',' || CASE WHEN NEW.is_reversal = 1 THEN 'conversion.reversed' ELSE 'conversion.created' END || ',') > 0;
END;
