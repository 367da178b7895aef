-- A stored click keeps at most 512 characters of its user agent, referer and Accept-Language
-- (#15: 1 kB headers made 4.2 kB a click, 5.6 GB an hour from one client). headers_cut says
-- that one of them was longer and is cut; clicks beyond the per-link rate a server stores in
-- full keep none of the three (their reasons say so). 0 for every earlier click.
-- (PostgreSQL translation of migrations/sqlite/0006_header_caps.sql; a 0/1 integer, as there.)
ALTER TABLE message_short_link_clicks ADD COLUMN headers_cut INTEGER NOT NULL DEFAULT 0
    CHECK (headers_cut IN (0, 1));
