-- Archived offers (#14): an offer that links use cannot be deleted (its links redirect to its URL
-- and take its postbacks), but an operator can retire it: `trackly offer archive` hides it from
-- `offer list` and refuses it to new messages, while its links, postbacks and reports go on.
-- NULL: in use; else when it was archived.
ALTER TABLE offers ADD COLUMN archived_at TEXT COLLATE "C";
