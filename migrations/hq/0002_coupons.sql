-- HQ 0002: reconciling coupon redemptions across stores (issue 6).
--
-- HQ records every coupon instance and its first redemption in the replica
-- tables (coupon_issues, coupon_redemptions: the earliest redemption wins).
-- A redemption of an instance another store had already redeemed (each store
-- judged it offline, within its risk budget) is kept here, flagged, and
-- reported by GET /admin/v1/coupons/reconciliation.
CREATE TABLE coupon_over_redemptions (
    over_id           INTEGER PRIMARY KEY,
    serial            TEXT NOT NULL,
    coupon_id         INTEGER NOT NULL,
    member_id         INTEGER,
    issuer_store_id   INTEGER,
    -- The redemption that counts (the earliest known).
    first_store_id    INTEGER NOT NULL,
    first_redeemed_at TEXT NOT NULL,
    -- The redemption flagged.
    later_store_id    INTEGER NOT NULL,
    later_redeemed_at TEXT NOT NULL,
    later_till_id     TEXT,
    value_cents       INTEGER,
    recorded_at       TEXT NOT NULL
) STRICT;
CREATE INDEX coupon_over_redemptions_serial ON coupon_over_redemptions (serial);
