-- 0007: the associate tablet (issue 8): the store's associates and their
-- sign-in, and the store's own record of kiosk visits for the store view.
--
-- associates: synced from HQ (docs/PROTOCOL.md, "associate" changes). HQ
-- hashes each PIN with Argon2id; a store only ever holds the PHC string and
-- verifies offline. An inactive associate cannot sign in.
CREATE TABLE associates (
    staff_id     INTEGER PRIMARY KEY,
    store_id     INTEGER NOT NULL,
    display_name TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 80),
    role         TEXT NOT NULL CHECK (role IN ('associate', 'manager')),
    pin_hash     TEXT NOT NULL CHECK (pin_hash LIKE '$argon2id$%'),
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    updated_at   TEXT NOT NULL
) STRICT;
CREATE INDEX associates_store ON associates (store_id);

-- sign_in_failures: local only (never synced, never overwritten by HQ):
-- consecutive failed PINs per staff number, known to the replica or not, and
-- the lockout they led to. A successful sign-in or a manager clears the row.
-- Kept in the replica so that restarting the app does not lift a lockout.
CREATE TABLE sign_in_failures (
    staff_id        INTEGER PRIMARY KEY,
    failures        INTEGER NOT NULL CHECK (failures >= 0),
    last_failure_at TEXT NOT NULL,
    locked_until    TEXT
) STRICT;

-- store_visits: the kiosk visits this store recorded (the kiosk_visit events
-- leave with the outbox; the store view counts today's from here).
CREATE TABLE store_visits (
    visit_id  INTEGER PRIMARY KEY,
    store_id  INTEGER,
    -- NULL once the member is erased (the visit still counts).
    member_id INTEGER,
    at        TEXT NOT NULL
) STRICT;
CREATE INDEX store_visits_at ON store_visits (at);

-- erasure_requests: erasures asked for on this replica and not yet carried
-- out by HQ's tombstone (which deletes the row with the profile). The
-- tablet shows the request and takes no more edits for the member.
CREATE TABLE erasure_requests (
    member_id    INTEGER PRIMARY KEY,
    requested_at TEXT NOT NULL,
    requested_by TEXT NOT NULL
) STRICT;
