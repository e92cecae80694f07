-- HQ 0006: devices over their quota (issue 18).
--
-- device_throttles: per device and limit (member look-ups, store events),
-- how many requests HQ refused for going over the device's quota, and when
-- the first and the last were. Listed by GET /admin/v1/devices/throttled: a
-- device that keeps hitting its limit is a device to look at.
CREATE TABLE device_throttles (
    device_id TEXT NOT NULL,
    store_id  INTEGER NOT NULL,
    what      TEXT NOT NULL CHECK (what IN ('lookups', 'events')),
    refused   INTEGER NOT NULL CHECK (refused > 0),
    first_at  TEXT NOT NULL,
    last_at   TEXT NOT NULL,
    PRIMARY KEY (device_id, what)
) STRICT, WITHOUT ROWID;
