-- Converting clicks (#14, point 8): the unique clicks with at least one attributed conversion,
-- which a conversion rate counts (a lead and a sale on one click are two conversions but one
-- converting click). Counted like every other report figure, by triggers, so that reports read
-- counters and never the conversions themselves (counting them per report took seconds at a
-- million conversions). A click counts once, in the quarter hour and groups of the conversion
-- that made it convert; it stops counting when its last attributed conversion goes (deleted,
-- re-attributed, or its MessageClick deleted, which clears the conversions' message_click_id).
ALTER TABLE report_rollups ADD COLUMN converting_clicks BIGINT NOT NULL DEFAULT 0;

-- what the conversions so far make
INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, converting_clicks)
SELECT c.account_id, substr(c.converted_at, 1, 14)
        || substr('00153045', (CAST(substr(c.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2) || ':00Z',
       coalesce(c.campaign_id, 0), coalesce(c.creative_id, 0), coalesce(c.list_id, 0),
       coalesce(c.variant, ''), coalesce(c.domain_id, 0), coalesce(c.offer_id, 0), count(*)
FROM conversions c
WHERE c.attribution = 'attributed' AND c.is_reversal = 0 AND c.message_click_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM conversions e WHERE e.message_click_id = c.message_click_id
                  AND e.attribution = 'attributed' AND e.is_reversal = 0
                  AND (e.converted_at < c.converted_at OR (e.converted_at = c.converted_at AND e.id < c.id)))
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard) DO UPDATE
SET converting_clicks = report_rollups.converting_clicks + excluded.converting_clicks;

-- (PostgreSQL's WHEN takes no subquery: the functions ask whether another conversion counts.)
CREATE FUNCTION conversions_converting_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM conversions e WHERE e.message_click_id = NEW.message_click_id AND e.id <> NEW.id
                   AND e.attribution = 'attributed' AND e.is_reversal = 0) THEN
        INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, converting_clicks)
        VALUES (NEW.account_id, substr(NEW.converted_at, 1, 14)
            || substr('00153045', (CAST(substr(NEW.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2) || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0), 1)
        ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard) DO UPDATE
        SET converting_clicks = report_rollups.converting_clicks + excluded.converting_clicks;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversions_converting_insert AFTER INSERT ON conversions
    FOR EACH ROW WHEN (NEW.attribution = 'attributed' AND NEW.is_reversal = 0 AND NEW.message_click_id IS NOT NULL)
    EXECUTE FUNCTION conversions_converting_insert();

CREATE FUNCTION conversions_converting_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM conversions e WHERE e.message_click_id = OLD.message_click_id
                   AND e.attribution = 'attributed' AND e.is_reversal = 0) THEN
        INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, converting_clicks)
        VALUES (OLD.account_id, substr(OLD.converted_at, 1, 14)
            || substr('00153045', (CAST(substr(OLD.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2) || ':00Z',
            coalesce(OLD.campaign_id, 0), coalesce(OLD.creative_id, 0), coalesce(OLD.list_id, 0),
            coalesce(OLD.variant, ''), coalesce(OLD.domain_id, 0), coalesce(OLD.offer_id, 0), -1)
        ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard) DO UPDATE
        SET converting_clicks = report_rollups.converting_clicks + excluded.converting_clicks;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversions_converting_delete AFTER DELETE ON conversions
    FOR EACH ROW WHEN (OLD.attribution = 'attributed' AND OLD.is_reversal = 0 AND OLD.message_click_id IS NOT NULL)
    EXECUTE FUNCTION conversions_converting_delete();

-- An update is the old row going and the new one coming, each side on its own.
CREATE TRIGGER conversions_converting_old
    AFTER UPDATE OF attribution, is_reversal, message_click_id ON conversions
    FOR EACH ROW WHEN (OLD.attribution = 'attributed' AND OLD.is_reversal = 0 AND OLD.message_click_id IS NOT NULL)
    EXECUTE FUNCTION conversions_converting_delete();

CREATE FUNCTION conversions_converting_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM conversions e WHERE e.message_click_id = NEW.message_click_id AND e.id <> NEW.id
                   AND e.attribution = 'attributed' AND e.is_reversal = 0) THEN
        INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, converting_clicks)
        VALUES (NEW.account_id, substr(NEW.converted_at, 1, 14)
            || substr('00153045', (CAST(substr(NEW.converted_at, 15, 2) AS INTEGER) / 15) * 2 + 1, 2) || ':00Z',
            coalesce(NEW.campaign_id, 0), coalesce(NEW.creative_id, 0), coalesce(NEW.list_id, 0),
            coalesce(NEW.variant, ''), coalesce(NEW.domain_id, 0), coalesce(NEW.offer_id, 0), 1)
        ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id, variant, domain_id, offer_id, shard) DO UPDATE
        SET converting_clicks = report_rollups.converting_clicks + excluded.converting_clicks;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversions_converting_new
    AFTER UPDATE OF attribution, is_reversal, message_click_id ON conversions
    FOR EACH ROW WHEN (NEW.attribution = 'attributed' AND NEW.is_reversal = 0 AND NEW.message_click_id IS NOT NULL
        AND NOT (OLD.attribution = 'attributed' AND OLD.is_reversal = 0 AND OLD.message_click_id IS NOT NULL AND OLD.message_click_id = NEW.message_click_id))
    EXECUTE FUNCTION conversions_converting_new();
