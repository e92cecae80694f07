-- HQ 0004: HQ trusts no device (issue 18).
--
-- devices.kind: what a device is, and so what it may do (docs/PROTOCOL.md,
-- "Device kinds"): the events it may upload and whether it may look members
-- up. A device registered before kinds becomes a kiosk, the least trusted
-- kind; re-register a tablet or a till to give it its scope.
ALTER TABLE devices ADD COLUMN kind TEXT NOT NULL DEFAULT 'kiosk'
    CHECK (kind IN ('kiosk', 'tablet', 'till'));

-- lookup_audit: every member look-up a device asked for, with the proof it
-- gave (a card number or a member's app code; a bare member id is refused
-- and recorded as such) and what HQ answered. Append-only.
CREATE TABLE lookup_audit (
    lookup_id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    store_id  INTEGER NOT NULL,
    proof     TEXT NOT NULL CHECK (proof IN ('card', 'app_code', 'member_id', 'none')),
    member_id INTEGER,
    outcome   TEXT NOT NULL CHECK (outcome IN ('found', 'unknown', 'erased', 'refused')),
    at        TEXT NOT NULL
) STRICT;
CREATE INDEX lookup_audit_device ON lookup_audit (device_id, lookup_id);
