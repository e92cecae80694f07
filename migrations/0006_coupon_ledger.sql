-- 0006: the coupon ledger (issue 6): signed coupon instances, redemptions
-- judged offline, the issuers' public keys (docs/PROTOCOL.md, "Coupon codes";
-- docs/OFFERS.md, "Coupons: offline risk budget").
--
-- coupon_issuers: the public halves of the Ed25519 keys stores sign coupon
-- instances with, for every issuing store (HQ sends them with each store's
-- record), so a till verifies a coupon issued at another store offline.
-- key_id 0 is a key a replica made for itself before it was provisioned.
CREATE TABLE coupon_issuers (
    store_id   INTEGER NOT NULL,
    key_id     INTEGER NOT NULL CHECK (key_id >= 0),
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    created_at TEXT NOT NULL,
    PRIMARY KEY (store_id, key_id)
) STRICT, WITHOUT ROWID;

-- coupon_issues, for instances issued by Aisle: the key that signed the
-- token, and the member it is bound to even when that member is not in this
-- replica's partition (member_id is a foreign key and stays NULL then).
ALTER TABLE coupon_issues ADD COLUMN key_id INTEGER;
ALTER TABLE coupon_issues ADD COLUMN bound_member_id INTEGER;

-- coupon_redemptions, for redemptions judged by Aisle: the exact time, the
-- till, the value counted against the offline risk budget, and whether the
-- redemption was of a coupon issued at another store (1: "foreign,
-- unconfirmed", counted in the store's daily budget). issue_id stays UNIQUE:
-- one redemption per instance in a replica, the single-use rule.
ALTER TABLE coupon_redemptions ADD COLUMN redeemed_at TEXT;
ALTER TABLE coupon_redemptions ADD COLUMN till_id TEXT;
ALTER TABLE coupon_redemptions ADD COLUMN value_cents INTEGER;
ALTER TABLE coupon_redemptions ADD COLUMN offline_risk INTEGER NOT NULL DEFAULT 0
    CHECK (offline_risk IN (0, 1));
CREATE INDEX coupon_redemptions_risk ON coupon_redemptions (store_id, redeemed_on)
    WHERE offline_risk = 1;
