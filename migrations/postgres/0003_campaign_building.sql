-- `trackly shorten` writes a large campaign in chunks, each its own short transaction, so that
-- it never holds the write lock for long. Until its last chunk commits, the campaign records
-- which process is writing it; such a campaign is invisible (reports, exports, segments,
-- lookups), and one whose process is gone is a leftover of a killed run, removed by a rerun of
-- the same command or by `trackly prune`. NULL, as for every earlier campaign: complete.
-- (PostgreSQL translation of migrations/sqlite/0003_campaign_building.sql.)
ALTER TABLE campaigns ADD COLUMN building_pid BIGINT;
ALTER TABLE campaigns ADD COLUMN building_host TEXT COLLATE "C";
