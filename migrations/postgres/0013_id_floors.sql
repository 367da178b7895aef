-- Ids never given twice (review of #14). Deleting rows can free the largest id of a table, and
-- SQLite gives a new row max(id) + 1 (so does `trackly shorten`, which numbers its messages
-- itself, on either store): a campaign removed whole handed its message ids to the next one,
-- and a gateway's delivery report or a postback naming an old message landed on a new one; a
-- list deleted with --force handed its id, and its report rows, to the next list. The largest
-- id a delete freed is kept here, and new ids start above it (core/ids.py).
CREATE TABLE id_floors (
    name  TEXT COLLATE "C" PRIMARY KEY,  -- a table
    floor BIGINT NOT NULL                -- no new row of it gets an id at or below this
);
