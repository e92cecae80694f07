-- 0001: the store replica's tables.
--
-- Append-only: never edit a migration that has shipped; add the next file.
-- aisle-core embeds every file in this folder, records each one's checksum in
-- `schema_migrations`, and refuses to open a replica whose applied migrations
-- differ from the embedded ones.
--
-- Conventions: ids of shop entities are integers given by the source system;
-- money is integer cents; timestamps are ISO-8601 text ('YYYY-MM-DD HH:MM:SS',
-- store-local time) and dates 'YYYY-MM-DD'; flags are 0/1 integers.

CREATE TABLE replica_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE stores (
    store_id INTEGER PRIMARY KEY,
    name     TEXT NOT NULL,
    region   TEXT,
    timezone TEXT NOT NULL DEFAULT 'UTC'
) STRICT;

-- The unified loyalty profile. Personal columns are NULL once `erased_at` is set.
CREATE TABLE members (
    member_id                  INTEGER PRIMARY KEY,
    given_name                 TEXT,
    family_name                TEXT,
    display_name               TEXT,
    phone                      TEXT,
    email                      TEXT,
    home_store_id              INTEGER REFERENCES stores (store_id),
    tier                       TEXT NOT NULL DEFAULT 'standard'
                                   CHECK (tier IN ('standard', 'silver', 'gold', 'platinum')),
    consent_personalization    INTEGER NOT NULL DEFAULT 0 CHECK (consent_personalization IN (0, 1)),
    consent_personalization_at TEXT,
    consent_marketing          INTEGER NOT NULL DEFAULT 0 CHECK (consent_marketing IN (0, 1)),
    consent_marketing_at       TEXT,
    enrolled_on                TEXT,
    erased_at                  TEXT,
    updated_at                 TEXT NOT NULL
) STRICT;
CREATE INDEX members_home_store ON members (home_store_id);

-- Ids of the same member in other systems (e.g. source 'completejourney', a household_id).
CREATE TABLE member_external_ids (
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    member_id   INTEGER NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    PRIMARY KEY (source, external_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX member_external_ids_member ON member_external_ids (member_id);

-- Loyalty cards. `card_number` carries its check digit (EAN-13); aisle-core validates it before any look-up.
CREATE TABLE member_cards (
    card_number TEXT PRIMARY KEY,
    member_id   INTEGER NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked', 'replaced')),
    issued_on   TEXT
) STRICT, WITHOUT ROWID;
CREATE INDEX member_cards_member ON member_cards (member_id);

-- Stated preferences: brands, categories, sizes, dietary needs.
CREATE TABLE member_preferences (
    member_id INTEGER NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    kind      TEXT NOT NULL CHECK (kind IN ('brand', 'category', 'size', 'dietary')),
    value     TEXT NOT NULL,
    PRIMARY KEY (member_id, kind, value)
) STRICT, WITHOUT ROWID;

-- Associates' notes on a member.
CREATE TABLE member_notes (
    note_id    INTEGER PRIMARY KEY,
    member_id  INTEGER NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX member_notes_member ON member_notes (member_id, created_at);

CREATE TABLE member_demographics (
    member_id       INTEGER PRIMARY KEY REFERENCES members (member_id) ON DELETE CASCADE,
    age_band        TEXT,
    income_band     TEXT,
    home_ownership  TEXT,
    marital_status  TEXT,
    household_size  TEXT,
    household_comp  TEXT,
    kids_count      TEXT
) STRICT;

-- The catalog.
CREATE TABLE products (
    product_id      INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    gtin            TEXT,
    manufacturer_id INTEGER,
    department      TEXT,
    category        TEXT,
    product_type    TEXT,
    brand           TEXT,
    brand_type      TEXT CHECK (brand_type IN ('national', 'private')),
    package_size    TEXT,
    active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
) STRICT;
CREATE INDEX products_gtin ON products (gtin) WHERE gtin IS NOT NULL;

-- What each store sells, at what price, how many are on hand, and where.
CREATE TABLE store_products (
    store_id    INTEGER NOT NULL REFERENCES stores (store_id),
    product_id  INTEGER NOT NULL REFERENCES products (product_id),
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    stock_qty   INTEGER NOT NULL DEFAULT 0,
    location    TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (store_id, product_id)
) STRICT, WITHOUT ROWID;

-- One shopping trip. `member_id` is NULL for anonymous baskets.
CREATE TABLE baskets (
    basket_id    INTEGER PRIMARY KEY,
    member_id    INTEGER REFERENCES members (member_id) ON DELETE SET NULL,
    store_id     INTEGER NOT NULL REFERENCES stores (store_id),
    purchased_at TEXT NOT NULL
) STRICT;
CREATE INDEX baskets_member ON baskets (member_id, purchased_at);

CREATE TABLE purchase_lines (
    basket_id              INTEGER NOT NULL REFERENCES baskets (basket_id) ON DELETE CASCADE,
    line_no                INTEGER NOT NULL,
    product_id             INTEGER NOT NULL REFERENCES products (product_id),
    quantity               INTEGER NOT NULL,
    sales_cents            INTEGER NOT NULL,
    retail_disc_cents      INTEGER NOT NULL DEFAULT 0,
    coupon_disc_cents      INTEGER NOT NULL DEFAULT 0,
    coupon_match_disc_cents INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (basket_id, line_no)
) STRICT, WITHOUT ROWID;

CREATE TABLE campaigns (
    campaign_id   INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    campaign_type TEXT,
    starts_on     TEXT NOT NULL,
    ends_on       TEXT NOT NULL,
    CHECK (starts_on <= ends_on)
) STRICT;

-- Members a campaign targets.
CREATE TABLE campaign_targets (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    member_id   INTEGER NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, member_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX campaign_targets_member ON campaign_targets (member_id);

-- A coupon is a code (a UPC for Complete Journey) within a campaign.
CREATE TABLE coupons (
    coupon_id        INTEGER PRIMARY KEY,
    code             TEXT NOT NULL,
    campaign_id      INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    description      TEXT,
    discount_cents   INTEGER CHECK (discount_cents >= 0),
    discount_percent INTEGER CHECK (discount_percent BETWEEN 0 AND 100),
    UNIQUE (code, campaign_id)
) STRICT;

CREATE TABLE coupon_products (
    coupon_id  INTEGER NOT NULL REFERENCES coupons (coupon_id) ON DELETE CASCADE,
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    PRIMARY KEY (coupon_id, product_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX coupon_products_product ON coupon_products (product_id);

-- A coupon instance handed to one member (kiosk, associate, till).
CREATE TABLE coupon_issues (
    issue_id   INTEGER PRIMARY KEY,
    serial     TEXT NOT NULL UNIQUE,
    coupon_id  INTEGER NOT NULL REFERENCES coupons (coupon_id),
    member_id  INTEGER REFERENCES members (member_id) ON DELETE SET NULL,
    store_id   INTEGER REFERENCES stores (store_id),
    channel    TEXT NOT NULL CHECK (channel IN ('kiosk', 'associate', 'till', 'import')),
    issued_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
CREATE INDEX coupon_issues_member ON coupon_issues (member_id);

CREATE TABLE coupon_redemptions (
    redemption_id INTEGER PRIMARY KEY,
    coupon_id     INTEGER NOT NULL REFERENCES coupons (coupon_id),
    member_id     INTEGER REFERENCES members (member_id) ON DELETE SET NULL,
    issue_id      INTEGER UNIQUE REFERENCES coupon_issues (issue_id),
    store_id      INTEGER REFERENCES stores (store_id),
    redeemed_on   TEXT NOT NULL,
    -- Natural key of an imported redemption, so a re-import changes nothing.
    source_key    TEXT UNIQUE
) STRICT;
CREATE INDEX coupon_redemptions_member ON coupon_redemptions (member_id);

-- Who did what to which profile; written in the same transaction as the change it records.
CREATE TABLE audit_log (
    audit_id  INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    member_id INTEGER,
    detail    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
) STRICT;
CREATE INDEX audit_log_member ON audit_log (member_id, at);

-- Sync with HQ (filled by the sync issue): one row per replicated partition.
CREATE TABLE sync_state (
    partition      TEXT PRIMARY KEY,
    cursor         TEXT,
    last_success_at TEXT,
    last_error_at  TEXT,
    last_error     TEXT
) STRICT;

-- Local events waiting for HQ, written in the same transaction as the local change,
-- deleted only once HQ acknowledges them.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error      TEXT
) STRICT;
