-- How far each server's click journal has been stored in this database. The drain updates its
-- row in the same transaction as the rows it stores, so that a restart goes on from exactly
-- there: nothing acknowledged is lost, nothing is stored twice.
-- (PostgreSQL translation of migrations/sqlite/0002_click_journal.sql; WITHOUT ROWID dropped.)
CREATE TABLE journal_state (
    id          TEXT COLLATE "C" PRIMARY KEY,  -- the journal folder's `id` file
    folder      TEXT COLLATE "C" NOT NULL,     -- where it was last opened
    segment     BIGINT NOT NULL,               -- the segment file being drained
    byte_offset BIGINT NOT NULL,               -- everything before this byte of it is stored
    created_at  TEXT COLLATE "C" NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL
);
