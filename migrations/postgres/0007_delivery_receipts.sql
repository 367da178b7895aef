-- Delivery receipts (#18): what the gateway said of each message, as `trackly receipts import`
-- read it from a delivery report. delivery_status is the final or latest state (delivered,
-- failed: undelivered, expired, rejected…; pending: queued, sent, buffered…), delivery_at the
-- gateway's time of it, delivery_detail the gateway's own words (status and error code). NULL
-- for a message no report has named. The bot detector's timing signal measures from
-- delivery_at once a message is delivered.
-- (PostgreSQL translation of migrations/sqlite/0007_delivery_receipts.sql.)
ALTER TABLE messages ADD COLUMN delivery_status TEXT COLLATE "C"
    CHECK (delivery_status IN ('delivered', 'failed', 'pending'));
ALTER TABLE messages ADD COLUMN delivery_at TEXT COLLATE "C";
ALTER TABLE messages ADD COLUMN delivery_detail TEXT COLLATE "C";
-- Report counters, in the message's own bucket and groups (as `sent`, `offer_sent`): messages
-- delivered, and messages the gateway gave up on.
ALTER TABLE report_rollups ADD COLUMN delivered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_rollups ADD COLUMN offer_delivered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_rollups ADD COLUMN undelivered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_rollups ADD COLUMN offer_undelivered BIGINT NOT NULL DEFAULT 0;
