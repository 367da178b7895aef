-- Postbacks an operator can trust (#15), per offer:
--   require_secret: /conv needs the offer's postback_secret too, as /conv/offer always does;
--   max_revenue_micros: a conversion reporting more revenue is refused (NULL: no limit);
--   link_conversions_per_hour: at most this many conversions on one link in an hour, whatever
--     their txn_ids (0: no limit). Every earlier offer gets the default of 20.
-- (PostgreSQL translation of migrations/sqlite/0005_postback_rules.sql; require_secret is a 0/1
-- integer, not a boolean, as in SQLite.)
ALTER TABLE offers ADD COLUMN require_secret INTEGER NOT NULL DEFAULT 0
    CHECK (require_secret IN (0, 1));
ALTER TABLE offers ADD COLUMN max_revenue_micros BIGINT CHECK (max_revenue_micros >= 0);
ALTER TABLE offers ADD COLUMN link_conversions_per_hour BIGINT NOT NULL DEFAULT 20
    CHECK (link_conversions_per_hour >= 0);
CREATE INDEX conversions_link_time ON conversions(link_id, created_at);
