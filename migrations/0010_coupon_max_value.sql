-- A coupon instance's maximum value, as its token signs it (token format
-- AISLEC2): what a percentage coupon is worth at most, so a till counts it
-- at that value in the offline budget and discounts no more. NULL for
-- instances issued before it (AISLEC1) or learned from HQ's feed.
ALTER TABLE coupon_issues ADD COLUMN max_value_cents INTEGER;
