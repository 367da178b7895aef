-- Report counters in shards (PostgreSQL only), so that several servers never queue on one row.
-- Every click of a campaign in a quarter hour added to the same report_rollups row, and a row
-- stays locked from its first update to its commit: two nodes draining clicks of one campaign
-- took turns. Each row now also has a shard, 0-15, taken from the writing connection (the
-- setting trackly.rollup_shard when a server sets it, else its backend's process id), and every
-- change to a counter, up or down, is added to the writing connection's own shard. A report
-- sums the shards (it always summed rows). The triggers that took a counter down by updating
-- the one row now add a negative amount to their own shard, for the same reason.
ALTER TABLE report_rollups ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE report_rollups ALTER COLUMN shard SET DEFAULT
    CAST(coalesce(nullif(current_setting('trackly.rollup_shard', true), ''),
                  CAST(pg_backend_pid() % 16 AS TEXT)) AS SMALLINT);
ALTER TABLE report_rollups DROP CONSTRAINT report_rollups_pkey;
ALTER TABLE report_rollups ADD PRIMARY KEY (account_id, bucket_at, campaign_id, creative_id,
                                            list_id, variant, domain_id, offer_id, shard);

CREATE OR REPLACE FUNCTION msl_clicks_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id,
                                clicks, bot_clicks)
    VALUES (NEW.account_id,
            substr(NEW.clicked_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0),
            1,
            NEW.is_bot)
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard)
    DO UPDATE SET clicks = report_rollups.clicks + excluded.clicks,
                  bot_clicks = report_rollups.bot_clicks + excluded.bot_clicks;
    INSERT INTO message_rollups (message_id, bucket_at, offer_id, clicks, bot_clicks)
    VALUES (NEW.message_id,
            substr(NEW.clicked_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.offer_id, 0), 1, NEW.is_bot)
    ON CONFLICT (message_id, bucket_at, offer_id)
    DO UPDATE SET clicks = message_rollups.clicks + 1,
                  bot_clicks = message_rollups.bot_clicks + excluded.bot_clicks;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION msl_clicks_rollup_verdict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id,
                                bot_clicks)
    VALUES (NEW.account_id,
            substr(NEW.clicked_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0),
            NEW.is_bot - OLD.is_bot)
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard)
    DO UPDATE SET bot_clicks = report_rollups.bot_clicks + excluded.bot_clicks;
    UPDATE message_rollups SET bot_clicks = bot_clicks + NEW.is_bot - OLD.is_bot
    WHERE message_id = NEW.message_id
      AND bucket_at = substr(NEW.clicked_at, 1, 14)
            || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
            || ':00Z'
      AND offer_id = coalesce(NEW.offer_id, 0);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION message_clicks_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id,
                                unique_clicks)
    VALUES (NEW.account_id,
            substr(NEW.clicked_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0),
            1)
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard)
    DO UPDATE SET unique_clicks = report_rollups.unique_clicks + excluded.unique_clicks;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION message_clicks_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id,
                                unique_clicks)
    VALUES (OLD.account_id,
            substr(OLD.clicked_at, 1, 14)
                || substr('00153045', (CAST(substr(OLD.clicked_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(OLD.campaign_id, 0), coalesce(OLD.creative_id, 0), coalesce(OLD.list_id, 0),
            coalesce(OLD.variant, ''), coalesce(OLD.domain_id, 0), coalesce(OLD.offer_id, 0),
            -1)
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard)
    DO UPDATE SET unique_clicks = report_rollups.unique_clicks + excluded.unique_clicks;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION conversions_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id,
                                conversions, revenue_micros, payout_micros, unattributed_conversions, unattributed_revenue_micros)
    VALUES (NEW.account_id,
            substr(NEW.converted_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0),
            CASE WHEN NEW.attribution = 'attributed' AND NEW.is_reversal = 0 THEN 1 ELSE 0 END,
            CASE WHEN NEW.attribution = 'attributed' THEN NEW.revenue_micros ELSE 0 END,
            CASE WHEN NEW.attribution = 'attributed' THEN NEW.payout_micros ELSE 0 END,
            CASE WHEN NEW.attribution <> 'attributed' AND NEW.is_reversal = 0 THEN 1 ELSE 0 END,
            CASE WHEN NEW.attribution <> 'attributed' THEN NEW.revenue_micros ELSE 0 END)
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard)
    DO UPDATE SET conversions = report_rollups.conversions + excluded.conversions,
                  revenue_micros = report_rollups.revenue_micros + excluded.revenue_micros,
                  payout_micros = report_rollups.payout_micros + excluded.payout_micros,
                  unattributed_conversions = report_rollups.unattributed_conversions + excluded.unattributed_conversions,
                  unattributed_revenue_micros = report_rollups.unattributed_revenue_micros + excluded.unattributed_revenue_micros;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION conversions_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id,
                                conversions, revenue_micros, payout_micros, unattributed_conversions, unattributed_revenue_micros)
    VALUES (OLD.account_id,
            substr(OLD.converted_at, 1, 14)
                || substr('00153045', (CAST(substr(OLD.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(OLD.campaign_id, 0), coalesce(OLD.creative_id, 0), coalesce(OLD.list_id, 0),
            coalesce(OLD.variant, ''), coalesce(OLD.domain_id, 0), coalesce(OLD.offer_id, 0),
            -CASE WHEN OLD.attribution = 'attributed' AND OLD.is_reversal = 0 THEN 1 ELSE 0 END,
            -CASE WHEN OLD.attribution = 'attributed' THEN OLD.revenue_micros ELSE 0 END,
            -CASE WHEN OLD.attribution = 'attributed' THEN OLD.payout_micros ELSE 0 END,
            -CASE WHEN OLD.attribution <> 'attributed' AND OLD.is_reversal = 0 THEN 1 ELSE 0 END,
            -CASE WHEN OLD.attribution <> 'attributed' THEN OLD.revenue_micros ELSE 0 END)
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard)
    DO UPDATE SET conversions = report_rollups.conversions + excluded.conversions,
                  revenue_micros = report_rollups.revenue_micros + excluded.revenue_micros,
                  payout_micros = report_rollups.payout_micros + excluded.payout_micros,
                  unattributed_conversions = report_rollups.unattributed_conversions + excluded.unattributed_conversions,
                  unattributed_revenue_micros = report_rollups.unattributed_revenue_micros + excluded.unattributed_revenue_micros;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION conversions_rollup_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id,
                                conversions, revenue_micros, payout_micros, unattributed_conversions, unattributed_revenue_micros)
    VALUES (NEW.account_id,
            substr(NEW.converted_at, 1, 14)
                || substr('00153045', (CAST(substr(NEW.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2)
                || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0),
            CASE WHEN NEW.attribution = 'attributed' AND NEW.is_reversal = 0 THEN 1 ELSE 0 END
            - CASE WHEN OLD.attribution = 'attributed' AND OLD.is_reversal = 0 THEN 1 ELSE 0 END,
            CASE WHEN NEW.attribution = 'attributed' THEN NEW.revenue_micros ELSE 0 END
            - CASE WHEN OLD.attribution = 'attributed' THEN OLD.revenue_micros ELSE 0 END,
            CASE WHEN NEW.attribution = 'attributed' THEN NEW.payout_micros ELSE 0 END
            - CASE WHEN OLD.attribution = 'attributed' THEN OLD.payout_micros ELSE 0 END,
            CASE WHEN NEW.attribution <> 'attributed' AND NEW.is_reversal = 0 THEN 1 ELSE 0 END
            - CASE WHEN OLD.attribution <> 'attributed' AND OLD.is_reversal = 0 THEN 1 ELSE 0 END,
            CASE WHEN NEW.attribution <> 'attributed' THEN NEW.revenue_micros ELSE 0 END
            - CASE WHEN OLD.attribution <> 'attributed' THEN OLD.revenue_micros ELSE 0 END)
    ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard)
    DO UPDATE SET conversions = report_rollups.conversions + excluded.conversions,
                  revenue_micros = report_rollups.revenue_micros + excluded.revenue_micros,
                  payout_micros = report_rollups.payout_micros + excluded.payout_micros,
                  unattributed_conversions = report_rollups.unattributed_conversions + excluded.unattributed_conversions,
                  unattributed_revenue_micros = report_rollups.unattributed_revenue_micros + excluded.unattributed_revenue_micros;
    RETURN NULL;
END
$$;
