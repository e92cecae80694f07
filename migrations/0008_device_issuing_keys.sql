-- 0008: coupon issuing keys belong to devices, and can be revoked (issue 18).
--
-- Each device that issues coupons makes its own Ed25519 issuing key and
-- registers the public half with HQ, which numbers it (key ids are unique
-- within a store) and sends it to every store with the store's record.
-- device_id: the device that holds the private half (NULL: a store-wide key
-- of before this migration, or one a replica made for itself).
-- revoked_at: when HQ revoked the key (its device was revoked, or the device
-- registered a newer key). A token signed by a revoked key is accepted only
-- for an instance the ledger already holds as issued before that time
-- (docs/PROTOCOL.md, "Coupon codes").
ALTER TABLE coupon_issuers ADD COLUMN device_id TEXT;
ALTER TABLE coupon_issuers ADD COLUMN revoked_at TEXT;
