-- HQ 0001: the reference HQ's own tables, on top of the replica schema
-- (HQ's master data uses the same tables as a store replica).
--
-- Append-only, like the replica's migrations; aisle-hq embeds and checksums
-- these in `hq_migrations`.

-- Store devices registered at provisioning. Only the SHA-256 of the secret is kept.
CREATE TABLE devices (
    device_id     TEXT PRIMARY KEY,
    store_id      INTEGER NOT NULL REFERENCES stores (store_id),
    secret_sha256 TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
) STRICT;

-- Members in each store's partition: their home store, stores they shopped
-- at, and members a store looked up or saw at its kiosk.
CREATE TABLE store_members (
    store_id  INTEGER NOT NULL,
    member_id INTEGER NOT NULL,
    PRIMARY KEY (store_id, member_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX store_members_member ON store_members (member_id);

-- The change feed. `seq` is the cursor; `scope` says who receives a change:
-- 'all' stores, one 'store', or the stores whose partition holds the 'member'.
-- `body` is the aisle-proto Change as JSON.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    scope     TEXT NOT NULL CHECK (scope IN ('all', 'store', 'member')),
    store_id  INTEGER,
    member_id INTEGER,
    body      TEXT NOT NULL,
    at        TEXT NOT NULL
) STRICT;
CREATE INDEX changes_member ON changes (member_id, seq) WHERE member_id IS NOT NULL;

-- Every store event HQ has received, once per idempotency key.
CREATE TABLE store_events (
    idempotency_key TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    store_id        INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    created_at      TEXT NOT NULL,
    received_at     TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX store_events_device ON store_events (device_id, seq);
