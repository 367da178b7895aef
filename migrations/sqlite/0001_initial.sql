-- Trackly's schema. Applied once, in one transaction, with its row in schema_migrations.
-- Never edit this file after it has shipped: add 0002_….sql instead.
--
-- Conventions
--   * names are unique per account by name_key, the name case-folded (NFKC) by the code, so
--     that 'Bücher' and 'BÜCHER' are one name (SQLite's NOCASE folds only A-Z);
--   * timestamps are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ' in columns ending in _at; the fixed
--     width makes text order time order;
--   * money is an integer number of micros (1/1,000,000 of the currency unit) in *_micros columns;
--   * the uniqueness rules the product depends on are constraints here, not checks in Python.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- The secret that keys the visitor hash of anonymous (one-off) clicks, so that a visitor id
-- cannot be turned back into an IP address by brute force.
INSERT INTO settings (key, value) VALUES ('visitor_secret', lower(hex(randomblob(32))));

-- Bumped by triggers whenever routing or bot settings change, so that a running server can
-- refresh its caches with one cheap read.
CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE accounts (
    id                       INTEGER PRIMARY KEY,
    name                     TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    name_key                 TEXT NOT NULL UNIQUE,   -- the name case-folded (NFKC): one per name
    retention_days           INTEGER NOT NULL DEFAULT 90 CHECK (retention_days >= 1),
    anonymize_ips_after_days INTEGER CHECK (anonymize_ips_after_days >= 0),
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL
);

CREATE TABLE domains (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    hostname   TEXT NOT NULL UNIQUE,              -- one account per hostname
    scheme     TEXT NOT NULL DEFAULT 'https' CHECK (scheme IN ('http', 'https')),
    is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created_at TEXT NOT NULL
);
CREATE INDEX domains_account ON domains(account_id);
CREATE UNIQUE INDEX domains_one_default ON domains(account_id) WHERE is_default = 1;

CREATE TABLE offers (
    id               INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    name_key         TEXT NOT NULL,   -- the name case-folded (NFKC)
    url              TEXT NOT NULL,
    payout_micros    INTEGER NOT NULL DEFAULT 0 CHECK (payout_micros >= 0),
    attribution_days INTEGER NOT NULL DEFAULT 7 CHECK (attribution_days >= 1),
    interstitial     TEXT NOT NULL DEFAULT 'none'
                     CHECK (interstitial IN ('none', 'custom', 'list_default')),
    title            TEXT,
    description      TEXT,
    cta              TEXT,
    meta             TEXT NOT NULL DEFAULT '{}',   -- JSON object of meta tags
    bot_filter       TEXT NOT NULL DEFAULT 'inherit'
                     CHECK (bot_filter IN ('inherit', 'off', 'flag', 'confirm')),
    postback_secret  TEXT NOT NULL,
    postback_ips     TEXT NOT NULL DEFAULT '[]',   -- JSON array of CIDRs; empty: any address
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (account_id, name_key)
);

CREATE TABLE lists (
    id                       INTEGER PRIMARY KEY,
    account_id               INTEGER NOT NULL REFERENCES accounts(id),
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    name_key         TEXT NOT NULL,   -- the name case-folded (NFKC)
    bot_filter               TEXT NOT NULL DEFAULT 'flag'
                             CHECK (bot_filter IN ('off', 'flag', 'confirm')),
    min_human_seconds        REAL NOT NULL DEFAULT 2 CHECK (min_human_seconds >= 0),
    interstitial_title       TEXT,
    interstitial_description TEXT,
    interstitial_cta         TEXT,
    interstitial_meta        TEXT NOT NULL DEFAULT '{}',
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    UNIQUE (account_id, name_key)
);

CREATE TABLE contacts (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    phone      TEXT NOT NULL CHECK (phone GLOB '+[1-9]*'),   -- E.164
    fields     TEXT NOT NULL DEFAULT '{}',                 -- JSON object of merge fields
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (account_id, phone)
);

CREATE TABLE list_members (
    list_id    INTEGER NOT NULL REFERENCES lists(id),
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    added_at   TEXT NOT NULL,
    PRIMARY KEY (list_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX list_members_contact ON list_members(contact_id);

CREATE TABLE creatives (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    name_key         TEXT NOT NULL,   -- the name case-folded (NFKC)
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (account_id, name_key)
);

CREATE TABLE campaigns (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    name_key         TEXT NOT NULL,   -- the name case-folded (NFKC)
    list_id    INTEGER REFERENCES lists(id),
    domain_id  INTEGER NOT NULL REFERENCES domains(id),
    seed       TEXT NOT NULL,          -- reproduces the A/B assignment
    created_at TEXT NOT NULL,
    UNIQUE (account_id, name_key)
);

CREATE TABLE campaign_variants (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    label       TEXT NOT NULL,         -- A, B, …
    creative_id INTEGER NOT NULL REFERENCES creatives(id),
    weight      INTEGER NOT NULL CHECK (weight > 0),
    PRIMARY KEY (campaign_id, label)
) WITHOUT ROWID;

-- One row per recipient (or one for a one-off message without a contact).
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    campaign_id INTEGER REFERENCES campaigns(id),
    list_id     INTEGER REFERENCES lists(id),
    creative_id INTEGER REFERENCES creatives(id),
    contact_id  INTEGER REFERENCES contacts(id),
    variant     TEXT,
    domain_id   INTEGER NOT NULL REFERENCES domains(id),
    body        TEXT NOT NULL,         -- the rendered text, as sent
    segments    INTEGER NOT NULL,
    encoding    TEXT NOT NULL CHECK (encoding IN ('GSM-7', 'UCS-2')),
    created_at  TEXT NOT NULL
);
CREATE INDEX messages_campaign ON messages(campaign_id, variant);
CREATE INDEX messages_contact ON messages(contact_id);

CREATE TABLE short_links (
    id          TEXT PRIMARY KEY
                CHECK (length(id) = 7 AND id NOT GLOB '*[^0-9A-Za-z]*'),
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    contact_id  INTEGER REFERENCES contacts(id),
    domain_id   INTEGER NOT NULL REFERENCES domains(id),
    slot        TEXT NOT NULL,         -- link1, link2, … or url1, url2, … for URLs in the text
    offer_id    INTEGER REFERENCES offers(id),
    url         TEXT,                  -- the destination when there is no offer
    created_at  TEXT NOT NULL,
    CHECK ((offer_id IS NULL) <> (url IS NULL)),
    UNIQUE (message_id, slot)
) WITHOUT ROWID;

-- Every hit on a short link: repeats and bots included. The grouping keys of the reports are
-- copied onto the row so that nothing needs a join to count it.
CREATE TABLE message_short_link_clicks (
    id               INTEGER PRIMARY KEY,
    clicked_at       TEXT NOT NULL
                     CHECK (clicked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:*Z'),
    link_id          TEXT NOT NULL REFERENCES short_links(id),
    message_id       INTEGER NOT NULL,
    contact_id       INTEGER,
    offer_id         INTEGER,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    campaign_id      INTEGER,
    creative_id      INTEGER,
    list_id          INTEGER,
    variant          TEXT,
    domain_id        INTEGER,
    method           TEXT NOT NULL,
    ip               TEXT,
    user_agent       TEXT,
    referer          TEXT,
    accept_language  TEXT,
    visitor          TEXT NOT NULL,
    is_bot           INTEGER NOT NULL DEFAULT 0 CHECK (is_bot IN (0, 1)),
    bot_reasons      TEXT NOT NULL DEFAULT '',
    ip_anonymized_at TEXT
);
CREATE INDEX msl_clicks_link ON message_short_link_clicks(link_id, clicked_at);
CREATE INDEX msl_clicks_account_time ON message_short_link_clicks(account_id, clicked_at);

-- The attributable click: the first non-bot click per message and visitor. The visitor is
-- 'c:<contact_id>' for a message to a contact and a keyed hash of IP and user agent otherwise.
CREATE TABLE message_clicks (
    id               INTEGER PRIMARY KEY,
    message_id       INTEGER NOT NULL REFERENCES messages(id),
    visitor          TEXT NOT NULL,
    contact_id       INTEGER,
    link_id          TEXT NOT NULL REFERENCES short_links(id),
    offer_id         INTEGER,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    campaign_id      INTEGER,
    creative_id      INTEGER,
    list_id          INTEGER,
    variant          TEXT,
    domain_id        INTEGER,
    click_id         INTEGER REFERENCES message_short_link_clicks(id) ON DELETE SET NULL,
    clicked_at       TEXT NOT NULL
                     CHECK (clicked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:*Z'),
    ip               TEXT,
    user_agent       TEXT,
    source           TEXT NOT NULL CHECK (source IN ('click', 'confirm', 'promoted', 'rescan')),
    reason           TEXT,
    created_at       TEXT NOT NULL,
    ip_anonymized_at TEXT,
    UNIQUE (message_id, visitor)
);
CREATE INDEX message_clicks_click ON message_clicks(click_id);
CREATE INDEX message_clicks_link ON message_clicks(link_id);
CREATE INDEX message_clicks_account_time ON message_clicks(account_id, clicked_at);

CREATE TABLE conversions (
    id               INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    offer_id         INTEGER REFERENCES offers(id),
    link_id          TEXT REFERENCES short_links(id),
    message_id       INTEGER REFERENCES messages(id),
    contact_id       INTEGER,
    campaign_id      INTEGER,
    creative_id      INTEGER,
    list_id          INTEGER,
    variant          TEXT,
    domain_id        INTEGER,
    message_click_id INTEGER REFERENCES message_clicks(id) ON DELETE SET NULL,
    event            TEXT NOT NULL
                     CHECK (length(event) BETWEEN 1 AND 32 AND event NOT GLOB '*[^a-z0-9_]*'),
    is_reversal      INTEGER NOT NULL CHECK (is_reversal IN (0, 1)),   -- refund, chargeback
    revenue_micros   INTEGER NOT NULL,
    payout_micros    INTEGER NOT NULL,
    txn_id           TEXT,
    source           TEXT NOT NULL CHECK (source IN ('conv', 'conv_offer', 'pixel', 'import')),
    attribution      TEXT NOT NULL
                     CHECK (attribution IN ('attributed', 'outside_window', 'no_click', 'no_message')),
    ip               TEXT,
    converted_at     TEXT NOT NULL
                     CHECK (converted_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:*Z'),
    created_at       TEXT NOT NULL,
    ip_anonymized_at TEXT
);
-- txn_id is unique per account; a refund or chargeback may carry the txn_id of the sale it reverses.
CREATE UNIQUE INDEX conversions_txn ON conversions(account_id, txn_id, is_reversal)
    WHERE txn_id IS NOT NULL;
-- Without a txn_id, one conversion per link and event (a reloaded thank-you page counts once).
CREATE UNIQUE INDEX conversions_link_event ON conversions(link_id, event)
    WHERE txn_id IS NULL AND link_id IS NOT NULL;
CREATE INDEX conversions_message ON conversions(message_id);
CREATE INDEX conversions_click ON conversions(message_click_id);
CREATE INDEX conversions_account_time ON conversions(account_id, converted_at);

-- Operator-managed and imported IP ranges for bot detection.
CREATE TABLE ip_ranges (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('deny', 'allow', 'datacenter')),
    cidr       TEXT NOT NULL,
    source     TEXT NOT NULL,          -- 'manual', 'aws', 'google', or the imported file's name
    created_at TEXT NOT NULL,
    UNIQUE (kind, cidr)
);

-- Report counters, kept by the triggers below (clicks, MessageClicks, conversions) and by
-- `trackly shorten` (sent), in 15-minute UTC buckets. Reports read these, never the raw clicks,
-- so they stay fast at scale and unchanged when `trackly prune` removes old raw clicks.
-- A missing key is 0 ('' for variant).
CREATE TABLE report_rollups (
    account_id                  INTEGER NOT NULL,
    bucket_at                   TEXT NOT NULL,
    campaign_id                 INTEGER NOT NULL DEFAULT 0,
    creative_id                 INTEGER NOT NULL DEFAULT 0,
    list_id                     INTEGER NOT NULL DEFAULT 0,
    variant                     TEXT NOT NULL DEFAULT '',
    domain_id                   INTEGER NOT NULL DEFAULT 0,
    offer_id                    INTEGER NOT NULL DEFAULT 0,
    sent                        INTEGER NOT NULL DEFAULT 0,  -- messages, once each
    offer_sent                  INTEGER NOT NULL DEFAULT 0,  -- messages, once per offer they carry
    clicks                      INTEGER NOT NULL DEFAULT 0,
    bot_clicks                  INTEGER NOT NULL DEFAULT 0,
    unique_clicks               INTEGER NOT NULL DEFAULT 0,
    conversions                 INTEGER NOT NULL DEFAULT 0,
    revenue_micros              INTEGER NOT NULL DEFAULT 0,
    payout_micros               INTEGER NOT NULL DEFAULT 0,
    unattributed_conversions    INTEGER NOT NULL DEFAULT 0,
    unattributed_revenue_micros INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id,
                 offer_id)
) WITHOUT ROWID;
CREATE INDEX report_rollups_campaign ON report_rollups(campaign_id, bucket_at);

-- Raw and bot clicks per message (and offer), for `report --by message`, which the rollups
-- above cannot give.
CREATE TABLE message_rollups (
    message_id INTEGER NOT NULL,
    bucket_at  TEXT NOT NULL,
    offer_id   INTEGER NOT NULL DEFAULT 0,
    clicks     INTEGER NOT NULL DEFAULT 0,
    bot_clicks INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, bucket_at, offer_id)
) WITHOUT ROWID;

-- Rollup maintenance. The bucket of a timestamp t is substr(t, 1, 14) || the quarter || ':00Z'.
CREATE TRIGGER msl_clicks_rollup AFTER INSERT ON message_short_link_clicks
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant,
                                domain_id, offer_id, clicks, bot_clicks)
    VALUES (NEW.account_id,
            substr(NEW.clicked_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0),
            1, NEW.is_bot)
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id,
                 offer_id)
    DO UPDATE SET clicks = clicks + 1, bot_clicks = bot_clicks + excluded.bot_clicks;
    INSERT INTO message_rollups (message_id, bucket_at, offer_id, clicks, bot_clicks)
    VALUES (NEW.message_id,
            substr(NEW.clicked_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.offer_id, 0), 1, NEW.is_bot)
    ON CONFLICT (message_id, bucket_at, offer_id)
    DO UPDATE SET clicks = clicks + 1, bot_clicks = bot_clicks + excluded.bot_clicks;
END;

-- A re-classified click (trackly bots rescan) moves between bot and human counts. Deleting raw
-- clicks (trackly prune) deliberately changes no counter.
CREATE TRIGGER msl_clicks_rollup_verdict AFTER UPDATE OF is_bot ON message_short_link_clicks
WHEN OLD.is_bot <> NEW.is_bot
BEGIN
    UPDATE report_rollups SET bot_clicks = bot_clicks + NEW.is_bot - OLD.is_bot
    WHERE account_id = NEW.account_id
      AND bucket_at = substr(NEW.clicked_at, 1, 14)
            || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
            || ':00Z'
      AND campaign_id = coalesce(NEW.campaign_id, 0) AND creative_id = coalesce(NEW.creative_id, 0)
      AND list_id = coalesce(NEW.list_id, 0) AND variant = coalesce(NEW.variant, '')
      AND domain_id = coalesce(NEW.domain_id, 0) AND offer_id = coalesce(NEW.offer_id, 0);
    UPDATE message_rollups SET bot_clicks = bot_clicks + NEW.is_bot - OLD.is_bot
    WHERE message_id = NEW.message_id
      AND bucket_at = substr(NEW.clicked_at, 1, 14)
            || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
            || ':00Z'
      AND offer_id = coalesce(NEW.offer_id, 0);
END;

CREATE TRIGGER message_clicks_rollup_insert AFTER INSERT ON message_clicks
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant,
                                domain_id, offer_id, unique_clicks)
    VALUES (NEW.account_id,
            substr(NEW.clicked_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0), 1)
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id,
                 offer_id)
    DO UPDATE SET unique_clicks = unique_clicks + 1;
END;

CREATE TRIGGER message_clicks_rollup_delete AFTER DELETE ON message_clicks
BEGIN
    UPDATE report_rollups SET unique_clicks = unique_clicks - 1
    WHERE account_id = OLD.account_id
      AND bucket_at = substr(OLD.clicked_at, 1, 14)
            || substr('00153045', (CAST(substr(OLD.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
            || ':00Z'
      AND campaign_id = coalesce(OLD.campaign_id, 0) AND creative_id = coalesce(OLD.creative_id, 0)
      AND list_id = coalesce(OLD.list_id, 0) AND variant = coalesce(OLD.variant, '')
      AND domain_id = coalesce(OLD.domain_id, 0) AND offer_id = coalesce(OLD.offer_id, 0);
END;

CREATE TRIGGER conversions_rollup_insert AFTER INSERT ON conversions
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant,
                                domain_id, offer_id, conversions, revenue_micros, payout_micros,
                                unattributed_conversions, unattributed_revenue_micros)
    VALUES (NEW.account_id,
            substr(NEW.converted_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0),
            iif(NEW.attribution = 'attributed' AND NOT NEW.is_reversal, 1, 0),
            iif(NEW.attribution = 'attributed', NEW.revenue_micros, 0),
            iif(NEW.attribution = 'attributed', NEW.payout_micros, 0),
            iif(NEW.attribution <> 'attributed' AND NOT NEW.is_reversal, 1, 0),
            iif(NEW.attribution <> 'attributed', NEW.revenue_micros, 0))
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id,
                 offer_id)
    DO UPDATE SET conversions = conversions + excluded.conversions,
                  revenue_micros = revenue_micros + excluded.revenue_micros,
                  payout_micros = payout_micros + excluded.payout_micros,
                  unattributed_conversions = unattributed_conversions + excluded.unattributed_conversions,
                  unattributed_revenue_micros = unattributed_revenue_micros + excluded.unattributed_revenue_micros;
END;

CREATE TRIGGER conversions_rollup_delete AFTER DELETE ON conversions
BEGIN
    UPDATE report_rollups
    SET conversions = conversions - iif(OLD.attribution = 'attributed' AND NOT OLD.is_reversal, 1, 0),
        revenue_micros = revenue_micros - iif(OLD.attribution = 'attributed', OLD.revenue_micros, 0),
        payout_micros = payout_micros - iif(OLD.attribution = 'attributed', OLD.payout_micros, 0),
        unattributed_conversions = unattributed_conversions
            - iif(OLD.attribution <> 'attributed' AND NOT OLD.is_reversal, 1, 0),
        unattributed_revenue_micros = unattributed_revenue_micros
            - iif(OLD.attribution <> 'attributed', OLD.revenue_micros, 0)
    WHERE account_id = OLD.account_id
      AND bucket_at = substr(OLD.converted_at, 1, 14)
            || substr('00153045', (CAST(substr(OLD.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
            || ':00Z'
      AND campaign_id = coalesce(OLD.campaign_id, 0) AND creative_id = coalesce(OLD.creative_id, 0)
      AND list_id = coalesce(OLD.list_id, 0) AND variant = coalesce(OLD.variant, '')
      AND domain_id = coalesce(OLD.domain_id, 0) AND offer_id = coalesce(OLD.offer_id, 0);
END;

-- A change of attribution (bots rescan, a promoted click) moves the conversion between the
-- attributed and unattributed counters.
CREATE TRIGGER conversions_rollup_update
AFTER UPDATE OF attribution, revenue_micros, payout_micros ON conversions
BEGIN
    UPDATE report_rollups
    SET conversions = conversions
            - iif(OLD.attribution = 'attributed' AND NOT OLD.is_reversal, 1, 0)
            + iif(NEW.attribution = 'attributed' AND NOT NEW.is_reversal, 1, 0),
        revenue_micros = revenue_micros
            - iif(OLD.attribution = 'attributed', OLD.revenue_micros, 0)
            + iif(NEW.attribution = 'attributed', NEW.revenue_micros, 0),
        payout_micros = payout_micros
            - iif(OLD.attribution = 'attributed', OLD.payout_micros, 0)
            + iif(NEW.attribution = 'attributed', NEW.payout_micros, 0),
        unattributed_conversions = unattributed_conversions
            - iif(OLD.attribution <> 'attributed' AND NOT OLD.is_reversal, 1, 0)
            + iif(NEW.attribution <> 'attributed' AND NOT NEW.is_reversal, 1, 0),
        unattributed_revenue_micros = unattributed_revenue_micros
            - iif(OLD.attribution <> 'attributed', OLD.revenue_micros, 0)
            + iif(NEW.attribution <> 'attributed', NEW.revenue_micros, 0)
    WHERE account_id = NEW.account_id
      AND bucket_at = substr(NEW.converted_at, 1, 14)
            || substr('00153045', (CAST(substr(NEW.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
            || ':00Z'
      AND campaign_id = coalesce(NEW.campaign_id, 0) AND creative_id = coalesce(NEW.creative_id, 0)
      AND list_id = coalesce(NEW.list_id, 0) AND variant = coalesce(NEW.variant, '')
      AND domain_id = coalesce(NEW.domain_id, 0) AND offer_id = coalesce(NEW.offer_id, 0);
END;

-- Routing and bot settings changed: running servers refresh their caches.
CREATE TRIGGER accounts_insert_config AFTER INSERT ON accounts
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER accounts_update_config AFTER UPDATE ON accounts
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER accounts_delete_config AFTER DELETE ON accounts
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER domains_insert_config AFTER INSERT ON domains
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER domains_update_config AFTER UPDATE ON domains
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER domains_delete_config AFTER DELETE ON domains
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER offers_insert_config AFTER INSERT ON offers
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER offers_update_config AFTER UPDATE ON offers
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER offers_delete_config AFTER DELETE ON offers
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER lists_insert_config AFTER INSERT ON lists
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER lists_update_config AFTER UPDATE ON lists
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER lists_delete_config AFTER DELETE ON lists
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER ip_ranges_insert_config AFTER INSERT ON ip_ranges
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER ip_ranges_update_config AFTER UPDATE ON ip_ranges
BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER ip_ranges_delete_config AFTER DELETE ON ip_ranges
BEGIN UPDATE config_version SET version = version + 1; END;
