-- Report counters in shards: on PostgreSQL, where several servers write, each report_rollups
-- row also has the shard of the connection that wrote it, so that two servers never queue on
-- one counter row (see migrations/postgres/0008_rollup_shards.sql). SQLite has one writer: the
-- column is here so that both stores have the same columns (`trackly db copy`), and is always 0.
ALTER TABLE report_rollups ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
