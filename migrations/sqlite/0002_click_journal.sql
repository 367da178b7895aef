-- How far each server's click journal has been stored in this database. The drain updates its
-- row in the same transaction as the rows it stores, so that a restart goes on from exactly
-- there: nothing acknowledged is lost, nothing is stored twice.
CREATE TABLE journal_state (
    id          TEXT PRIMARY KEY,          -- the journal folder's `id` file
    folder      TEXT NOT NULL,             -- where it was last opened
    segment     INTEGER NOT NULL,          -- the segment file being drained
    byte_offset INTEGER NOT NULL,          -- everything before this byte of it is stored
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;
