-- 0005: offers (issue 6): the rules of each campaign's offer and the fitted
-- redemption model the decision engine ranks with.
--
-- offer_rules: one row per campaign; a campaign without a row gets the
-- defaults below (targeted members only, once per member, both channels,
-- 14 days). Every limit is enforced offline, in the transaction that issues
-- the coupon (aisle_core::offers::issue).
CREATE TABLE offer_rules (
    campaign_id           INTEGER PRIMARY KEY REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    -- Only members in campaign_targets (1), or any member passing the rules (0).
    targeted_only         INTEGER NOT NULL DEFAULT 1 CHECK (targeted_only IN (0, 1)),
    -- 'column=value' over member_demographics (e.g. 'income_band=50-74K'); NULL: anyone.
    segment               TEXT CHECK (segment IS NULL OR instr(segment, '=') > 1),
    -- Lowest loyalty tier; NULL: any.
    min_tier              TEXT CHECK (min_tier IS NULL OR min_tier IN ('standard', 'silver', 'gold', 'platinum')),
    -- Purchases of the coupon's products (lines, over the member's history) at least this.
    min_affinity          INTEGER NOT NULL DEFAULT 0 CHECK (min_affinity >= 0),
    -- The member's spend over the last 90 days at least this.
    min_spend_cents       INTEGER NOT NULL DEFAULT 0 CHECK (min_spend_cents >= 0),
    -- Coupons of this campaign one member may be issued, ever.
    per_member_limit      INTEGER NOT NULL DEFAULT 1 CHECK (per_member_limit >= 1),
    -- Coupons of this campaign one store may issue per day / in total; NULL: no limit.
    per_store_daily_limit INTEGER CHECK (per_store_daily_limit >= 0),
    per_store_limit       INTEGER CHECK (per_store_limit >= 0),
    -- A member holds at most one live (issued, unredeemed, unexpired) coupon per group.
    stacking_group        TEXT,
    -- Comma-separated channels that may issue it.
    channels              TEXT NOT NULL DEFAULT 'kiosk,associate',
    -- Days an issued coupon stays valid (never past the campaign's end).
    valid_days            INTEGER NOT NULL DEFAULT 14 CHECK (valid_days BETWEEN 1 AND 366),
    -- What one redemption is worth to the retailer before the discount
    -- (incremental margin); NULL: estimated from the coupon's products' prices.
    value_cents           INTEGER CHECK (value_cents >= 0),
    -- What issuing one costs (printing, handling), paid whether redeemed or not.
    cost_cents            INTEGER NOT NULL DEFAULT 0 CHECK (cost_cents >= 0)
) STRICT;

-- offer_models: fitted P(redeem) models (JSON, aisle_core::offers::model),
-- newest first; a row whose SHA-256 does not match its text is skipped.
CREATE TABLE offer_models (
    model_id       INTEGER PRIMARY KEY,
    format_version INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    -- The model saw purchases and redemptions strictly before this date.
    trained_until  TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    body           TEXT NOT NULL
) STRICT;

-- The decision engine reads a member's issued coupons per campaign, and
-- issuing counts a store's coupons per day.
CREATE INDEX coupon_issues_store_day ON coupon_issues (store_id, issued_at);
CREATE INDEX coupon_redemptions_coupon ON coupon_redemptions (coupon_id, redeemed_on);
