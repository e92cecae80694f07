-- HQ 0007: redemptions of coupons HQ never saw issued (issue 18).
--
-- coupon_issues.issue_known: 1 when HQ knows the instance was issued (a
-- coupon_issued event, an import); 0 while HQ knows it only from a
-- redemption. A redemption's instance whose issue never arrives is listed as
-- never_issued by the coupon reconciliation (a minted or forged coupon, or
-- a store that lost its outbox). Existing instances count as known.
ALTER TABLE coupon_issues ADD COLUMN issue_known INTEGER NOT NULL DEFAULT 1
    CHECK (issue_known IN (0, 1));
