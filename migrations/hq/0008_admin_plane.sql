-- HQ 0008: the admin plane's audit and two-step device enrolment (issue 18).
--
-- admin_audit: every call of the admin API (and every admin command run
-- against HQ's data folder): which admin token (by its name, never its
-- value), what it did, to what, and how it ended. Refused calls are
-- recorded too (token_name NULL when no valid token was shown).
CREATE TABLE admin_audit (
    audit_id   INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    token_name TEXT,
    action     TEXT NOT NULL,
    target     TEXT,
    outcome    TEXT NOT NULL
) STRICT;

-- enrolments: one-time codes an admin creates for a device; the device
-- redeems its code over TLS and receives its credentials, so the device's
-- secret never passes through the admin's hands. Only the code's SHA-256 is
-- kept; a code is good once, until expires_at.
CREATE TABLE enrolments (
    code_sha256 TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    store_id    INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('kiosk', 'tablet', 'till')),
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    redeemed_at TEXT
) STRICT, WITHOUT ROWID;
CREATE INDEX enrolments_device ON enrolments (device_id);
