-- `trackly campaign delete` (#14). A complete campaign's row is never removed: a deleted one
-- stays as a tombstone, so that its id is never given to another campaign (SQLite reuses the
-- largest id once its row is gone) and running servers can tell that its links are gone.
--   deleted 'removed': it had no clicks and no conversions; its messages, links and report
--     counters were removed, and its name is free again (name_key no longer matches a name);
--   deleted 'retired' (--force): its links no longer answer clicks, its history (messages,
--     clicks, conversions, report counters) is kept, and its name stays taken.
-- NULL, as for every earlier campaign: not deleted.
ALTER TABLE campaigns ADD COLUMN deleted TEXT CHECK (deleted IN ('removed', 'retired'));
ALTER TABLE campaigns ADD COLUMN deleted_at TEXT;
-- Running servers re-read their settings (and with them the deleted campaigns) on this change.
CREATE TRIGGER campaigns_deleted_config AFTER UPDATE OF deleted ON campaigns
BEGIN UPDATE config_version SET version = version + 1; END;
