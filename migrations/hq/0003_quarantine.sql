-- HQ 0003: the quarantine of store events HQ refused.
--
-- An uploaded event HQ cannot apply (a kind it does not know, a payload that
-- does not decode, a member, coupon or store it does not hold, a text longer
-- than the store allows, a preference kind the schema refuses, or effects
-- its database refuses) is kept here as received, with a stable reason
-- code, instead of failing its upload: the events behind it go on, and the
-- store is told it was rejected. A key is either here or in store_events,
-- never both; a resent quarantined key is answered as rejected again.
-- Append-only: rows are never updated; GET /admin/v1/quarantine lists them.
CREATE TABLE event_quarantine (
    quarantine_id   INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    device_id       TEXT NOT NULL,
    store_id        INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    -- The payload as received (JSON text).
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    created_at      TEXT NOT NULL,
    reason_code     TEXT NOT NULL,
    reason          TEXT NOT NULL,
    received_at     TEXT NOT NULL
) STRICT;
CREATE INDEX event_quarantine_store ON event_quarantine (store_id, quarantine_id);
