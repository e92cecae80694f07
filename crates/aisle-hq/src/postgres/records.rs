//! Wire records <-> HQ's PostgreSQL rows, both ways: the same mapping as
//! `aisle_core::sync::records` for a replica (the tables match column for
//! column), written against PostgreSQL. Flags are 0/1 bigints as in the
//! replica; times are the protocol's text.

use aisle_core::time::Timestamp;
use aisle_proto::{
    AssociateRecord, BasketLine, BasketRecord, CampaignRecord, CardRecord, Change, CodeKeyRecord,
    CouponInstanceRecord, CouponRecord, CouponRedemptionRecord, MemberRecord, Preference,
    ProductRecord, Role, StoreProductRecord, StoreRecord,
};
use postgres::Row;

use super::Tx;

use crate::storage::HqError;

pub const MEMBER_COLUMNS: &str = "member_id, given_name, family_name, display_name, phone, email, \
     home_store_id, tier, consent_personalization, consent_personalization_at, consent_marketing, \
     consent_marketing_at, enrolled_on, updated_at";

fn flag(row: &Row, idx: usize) -> Result<bool, HqError> {
    Ok(row.try_get::<_, i64>(idx)? != 0)
}

/// A member row (of [`MEMBER_COLUMNS`]) without cards, preferences and keys.
pub fn member_from_row(row: &Row) -> Result<MemberRecord, HqError> {
    Ok(MemberRecord {
        member_id: row.try_get(0)?,
        given_name: row.try_get(1)?,
        family_name: row.try_get(2)?,
        display_name: row.try_get(3)?,
        phone: row.try_get(4)?,
        email: row.try_get(5)?,
        home_store_id: row.try_get(6)?,
        tier: row.try_get(7)?,
        consent_personalization: flag(row, 8)?,
        consent_personalization_at: row.try_get(9)?,
        consent_marketing: flag(row, 10)?,
        consent_marketing_at: row.try_get(11)?,
        enrolled_on: row.try_get(12)?,
        updated_at: row.try_get(13)?,
        cards: Vec::new(),
        preferences: Vec::new(),
        code_keys: None,
        coupons: None,
    })
}

pub fn card_from_row(row: &Row, at: usize) -> Result<CardRecord, HqError> {
    Ok(CardRecord {
        card_number: row.try_get(at)?,
        status: row.try_get(at + 1)?,
        issued_on: row.try_get(at + 2)?,
    })
}

/// A `member_keys` row of (key_id, public_key, created_at) from column `at`.
pub fn code_key_from_row(row: &Row, at: usize) -> Result<CodeKeyRecord, HqError> {
    Ok(CodeKeyRecord {
        key_id: row.try_get(at)?,
        public_key: hex::encode(row.try_get::<_, Vec<u8>>(at + 1)?),
        created_at: row.try_get(at + 2)?,
        revoked_at: None,
    })
}

/// Whether HQ holds the member and whether they are erased.
pub fn member_state(c: &mut Tx<'_>, member_id: i64) -> Result<Option<bool>, HqError> {
    Ok(c.query_opt(
        "SELECT erased_at IS NOT NULL FROM members WHERE member_id = $1",
        &[&member_id],
    )?
    .map(|row| row.get(0)))
}

/// The member's whole profile, or `None` when absent or erased.
pub fn read_member(c: &mut Tx<'_>, member_id: i64) -> Result<Option<MemberRecord>, HqError> {
    let Some(row) = c.query_opt(
        &format!("SELECT {MEMBER_COLUMNS} FROM members WHERE member_id = $1 AND erased_at IS NULL"),
        &[&member_id],
    )?
    else {
        return Ok(None);
    };
    let mut member = member_from_row(&row)?;
    member.cards = c
        .query(
            "SELECT card_number, status, issued_on FROM member_cards
             WHERE member_id = $1 ORDER BY card_number",
            &[&member_id],
        )?
        .iter()
        .map(|row| card_from_row(row, 0))
        .collect::<Result<_, _>>()?;
    member.preferences = c
        .query(
            "SELECT kind, value FROM member_preferences WHERE member_id = $1 ORDER BY kind, value",
            &[&member_id],
        )?
        .iter()
        .map(|row| Preference {
            kind: row.get(0),
            value: row.get(1),
        })
        .collect();
    member.code_keys = Some(
        c.query(
            "SELECT key_id, public_key, created_at FROM member_keys WHERE member_id = $1 ORDER BY key_id",
            &[&member_id],
        )?
        .iter()
        .map(|row| code_key_from_row(row, 0))
        .collect::<Result<_, _>>()?,
    );
    let coupons = read_instances(c, member_id)?;
    member.coupons = (!coupons.is_empty()).then_some(coupons);
    Ok(Some(member))
}

/// The coupon instances bound to a member, with their redemptions.
pub fn read_instances(
    c: &mut Tx<'_>,
    member_id: i64,
) -> Result<Vec<CouponInstanceRecord>, HqError> {
    c.query(
        "SELECT i.serial, i.coupon_id, i.store_id, i.key_id, i.channel, i.issued_at, i.expires_at,
                r.store_id, coalesce(r.redeemed_at, r.redeemed_on)
         FROM coupon_issues AS i LEFT JOIN coupon_redemptions AS r ON r.issue_id = i.issue_id
         WHERE i.bound_member_id = $1 AND i.store_id IS NOT NULL ORDER BY i.issue_id",
        &[&member_id],
    )?
    .iter()
    .map(|row| {
        let redeemed_at: Option<String> = row.try_get(8)?;
        Ok(CouponInstanceRecord {
            serial: row.try_get(0)?,
            coupon_id: row.try_get(1)?,
            issuer_store_id: row.try_get(2)?,
            key_id: row.try_get(3)?,
            channel: row.try_get(4)?,
            issued_at: row.try_get(5)?,
            expires_at: row.try_get(6)?,
            redemption: match redeemed_at {
                Some(redeemed_at) => Some(CouponRedemptionRecord {
                    store_id: row.try_get(7)?,
                    redeemed_at,
                }),
                None => None,
            },
        })
    })
    .collect()
}

/// Writes a member's whole profile (as `aisle_core::sync::records::write_member`):
/// `false` for a member erased here (erasure always wins).
pub fn write_member(c: &mut Tx<'_>, member: &MemberRecord) -> Result<bool, HqError> {
    if member_state(c, member.member_id)? == Some(true) {
        return Ok(false);
    }
    if let Some(store_id) = member.home_store_id {
        ensure_store(c, store_id)?;
    }
    c.execute(
        "INSERT INTO members (member_id, given_name, family_name, display_name, phone, email,
             home_store_id, tier, consent_personalization, consent_personalization_at,
             consent_marketing, consent_marketing_at, enrolled_on, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (member_id) DO UPDATE SET
             given_name = excluded.given_name, family_name = excluded.family_name,
             display_name = excluded.display_name, phone = excluded.phone, email = excluded.email,
             home_store_id = excluded.home_store_id, tier = excluded.tier,
             consent_personalization = excluded.consent_personalization,
             consent_personalization_at = excluded.consent_personalization_at,
             consent_marketing = excluded.consent_marketing,
             consent_marketing_at = excluded.consent_marketing_at,
             enrolled_on = excluded.enrolled_on, updated_at = excluded.updated_at",
        &[
            &member.member_id,
            &member.given_name,
            &member.family_name,
            &member.display_name,
            &member.phone,
            &member.email,
            &member.home_store_id,
            &member.tier,
            &i64::from(member.consent_personalization),
            &member.consent_personalization_at,
            &i64::from(member.consent_marketing),
            &member.consent_marketing_at,
            &member.enrolled_on,
            &member.updated_at,
        ],
    )?;
    c.execute(
        "DELETE FROM member_cards WHERE member_id = $1",
        &[&member.member_id],
    )?;
    for card in &member.cards {
        c.execute(
            "INSERT INTO member_cards (card_number, member_id, status, issued_on)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (card_number) DO UPDATE SET member_id = excluded.member_id,
                 status = excluded.status, issued_on = excluded.issued_on",
            &[
                &card.card_number,
                &member.member_id,
                &card.status,
                &card.issued_on,
            ],
        )?;
    }
    c.execute(
        "DELETE FROM member_preferences WHERE member_id = $1",
        &[&member.member_id],
    )?;
    for preference in &member.preferences {
        c.execute(
            "INSERT INTO member_preferences (member_id, kind, value) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&member.member_id, &preference.kind, &preference.value],
        )?;
    }
    if let Some(code_keys) = &member.code_keys {
        c.execute(
            "DELETE FROM member_keys WHERE member_id = $1",
            &[&member.member_id],
        )?;
        for key in code_keys {
            match aisle_core::keys::decode_hex32(&key.public_key) {
                Ok(bytes) => {
                    c.execute(
                        "INSERT INTO member_keys (member_id, key_id, public_key, created_at)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (member_id, key_id) DO UPDATE SET
                             public_key = excluded.public_key, created_at = excluded.created_at",
                        &[
                            &member.member_id,
                            &key.key_id,
                            &bytes.as_slice(),
                            &key.created_at,
                        ],
                    )?;
                }
                Err(reason) => tracing::warn!(
                    member_id = member.member_id,
                    key_id = key.key_id,
                    %reason,
                    "app-code key left out"
                ),
            }
        }
    }
    if let Some(coupons) = &member.coupons {
        apply_instances(c, member.member_id, coupons)?;
    }
    Ok(true)
}

/// Adds instances (and redemptions) stated with a member's record; the
/// ledger only grows.
fn apply_instances(
    c: &mut Tx<'_>,
    member_id: i64,
    instances: &[CouponInstanceRecord],
) -> Result<(), HqError> {
    use aisle_core::offers::coupon::{Channel, is_serial};
    for record in instances {
        if !is_serial(&record.serial) || Channel::parse(&record.channel).is_none() {
            continue;
        }
        if c.query_opt(
            "SELECT 1 FROM coupons WHERE coupon_id = $1",
            &[&record.coupon_id],
        )?
        .is_none()
        {
            continue;
        }
        ensure_store(c, record.issuer_store_id)?;
        c.execute(
            "INSERT INTO coupon_issues (serial, coupon_id, member_id, store_id, channel, issued_at,
                 expires_at, key_id, bound_member_id)
             VALUES ($1, $2, (SELECT member_id FROM members WHERE member_id = $3), $4, $5, $6, $7, $8, $3)
             ON CONFLICT (serial) DO NOTHING",
            &[
                &record.serial,
                &record.coupon_id,
                &member_id,
                &record.issuer_store_id,
                &record.channel,
                &record.issued_at,
                &record.expires_at,
                &record.key_id,
            ],
        )?;
        if let Some(redemption) = &record.redemption {
            ensure_store(c, redemption.store_id)?;
            c.execute(
                "INSERT INTO coupon_redemptions (coupon_id, member_id, issue_id, store_id,
                     redeemed_on, redeemed_at)
                 SELECT i.coupon_id, i.member_id, i.issue_id, $2, substr($3, 1, 10), $3
                 FROM coupon_issues AS i WHERE i.serial = $1
                 ON CONFLICT (issue_id) DO NOTHING",
                &[
                    &record.serial,
                    &redemption.store_id,
                    &redemption.redeemed_at,
                ],
            )?;
        }
    }
    Ok(())
}

pub const ASSOCIATE_COLUMNS: &str =
    "staff_id, store_id, display_name, role, pin_hash, active, updated_at";

pub fn associate_from_row(row: &Row) -> Result<AssociateRecord, HqError> {
    let role: String = row.try_get(3)?;
    Ok(AssociateRecord {
        staff_id: row.try_get(0)?,
        store_id: row.try_get(1)?,
        display_name: row.try_get(2)?,
        role: Role::parse(&role)
            .ok_or_else(|| HqError::Invalid(format!("unknown role {role:?}")))?,
        pin_hash: row.try_get(4)?,
        active: flag(row, 5)?,
        updated_at: row.try_get(6)?,
    })
}

pub fn read_associate(c: &mut Tx<'_>, staff_id: i64) -> Result<Option<AssociateRecord>, HqError> {
    c.query_opt(
        &format!("SELECT {ASSOCIATE_COLUMNS} FROM associates WHERE staff_id = $1"),
        &[&staff_id],
    )?
    .map(|row| associate_from_row(&row))
    .transpose()
}

pub fn write_associate(c: &mut Tx<'_>, associate: &AssociateRecord) -> Result<(), HqError> {
    c.execute(
        "INSERT INTO associates (staff_id, store_id, display_name, role, pin_hash, active, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (staff_id) DO UPDATE SET store_id = excluded.store_id,
             display_name = excluded.display_name, role = excluded.role,
             pin_hash = excluded.pin_hash, active = excluded.active,
             updated_at = excluded.updated_at",
        &[
            &associate.staff_id,
            &associate.store_id,
            &associate.display_name,
            &associate.role.as_str(),
            &associate.pin_hash,
            &i64::from(associate.active),
            &associate.updated_at,
        ],
    )?;
    Ok(())
}

/// A member's basket, whole (lines of products outside the catalog left out).
pub fn write_basket(c: &mut Tx<'_>, basket: &BasketRecord) -> Result<(), HqError> {
    ensure_store(c, basket.store_id)?;
    c.execute(
        "INSERT INTO baskets (basket_id, member_id, store_id, purchased_at)
         VALUES ($1, (SELECT member_id FROM members WHERE member_id = $2 AND erased_at IS NULL), $3, $4)
         ON CONFLICT (basket_id) DO UPDATE SET member_id = excluded.member_id,
             store_id = excluded.store_id, purchased_at = excluded.purchased_at",
        &[
            &basket.basket_id,
            &basket.member_id,
            &basket.store_id,
            &basket.purchased_at,
        ],
    )?;
    c.execute(
        "DELETE FROM purchase_lines WHERE basket_id = $1",
        &[&basket.basket_id],
    )?;
    for line in &basket.lines {
        c.execute(
            "INSERT INTO purchase_lines (basket_id, line_no, product_id, quantity, sales_cents,
                 retail_disc_cents, coupon_disc_cents, coupon_match_disc_cents)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM products WHERE product_id = $3)",
            &[
                &basket.basket_id,
                &line.line_no,
                &line.product_id,
                &line.quantity,
                &line.sales_cents,
                &line.retail_disc_cents,
                &line.coupon_disc_cents,
                &line.coupon_match_disc_cents,
            ],
        )?;
    }
    Ok(())
}

pub const BASKET_LINE_COLUMNS: &str = "b.basket_id, b.member_id, b.store_id, b.purchased_at,
    l.line_no, l.product_id, l.quantity, l.sales_cents, l.retail_disc_cents, l.coupon_disc_cents,
    l.coupon_match_disc_cents";

/// Folds rows of [`BASKET_LINE_COLUMNS`] (ordered by basket, then line)
/// into whole baskets; the last, possibly incomplete one stays in `current`.
pub fn fold_basket_row(
    row: &Row,
    current: &mut Option<BasketRecord>,
) -> Result<Option<BasketRecord>, HqError> {
    let basket_id: i64 = row.try_get(0)?;
    let done = if current.as_ref().is_some_and(|b| b.basket_id != basket_id) {
        current.take()
    } else {
        None
    };
    let basket = match current {
        Some(basket) => basket,
        None => current.insert(BasketRecord {
            basket_id,
            member_id: row.try_get(1)?,
            store_id: row.try_get(2)?,
            purchased_at: row.try_get(3)?,
            lines: Vec::new(),
        }),
    };
    basket.lines.push(BasketLine {
        line_no: row.try_get(4)?,
        product_id: row.try_get(5)?,
        quantity: row.try_get(6)?,
        sales_cents: row.try_get(7)?,
        retail_disc_cents: row.try_get(8)?,
        coupon_disc_cents: row.try_get(9)?,
        coupon_match_disc_cents: row.try_get(10)?,
    });
    Ok(done)
}

fn ensure_store(c: &mut Tx<'_>, store_id: i64) -> Result<(), HqError> {
    c.execute(
        "INSERT INTO stores (store_id, name) VALUES ($1, 'Store ' || $1::bigint)
         ON CONFLICT DO NOTHING",
        &[&store_id],
    )?;
    Ok(())
}

pub fn store_known(c: &mut Tx<'_>, store_id: i64) -> Result<bool, HqError> {
    Ok(
        c.query_opt("SELECT 1 FROM stores WHERE store_id = $1", &[&store_id])?
            .is_some(),
    )
}

pub fn read_store(c: &mut Tx<'_>, store_id: i64) -> Result<Option<StoreRecord>, HqError> {
    let Some(row) = c.query_opt(
        "SELECT store_id, name, region, timezone FROM stores WHERE store_id = $1",
        &[&store_id],
    )?
    else {
        return Ok(None);
    };
    let keys: Vec<CodeKeyRecord> = c
        .query(
            "SELECT key_id, public_key, created_at, revoked_at FROM coupon_issuers
             WHERE store_id = $1 ORDER BY key_id",
            &[&store_id],
        )?
        .iter()
        .map(|row| {
            Ok(CodeKeyRecord {
                revoked_at: row.try_get(3)?,
                ..code_key_from_row(row, 0)?
            })
        })
        .collect::<Result<_, HqError>>()?;
    Ok(Some(StoreRecord {
        store_id: row.try_get(0)?,
        name: row.try_get(1)?,
        region: row.try_get(2)?,
        timezone: row.try_get(3)?,
        coupon_keys: (!keys.is_empty()).then_some(keys),
    }))
}

pub const PRODUCT_COLUMNS: &str = "product_id, name, gtin, manufacturer_id, department, category, \
     product_type, brand, brand_type, package_size, active";

pub fn product_from_row(row: &Row) -> Result<ProductRecord, HqError> {
    Ok(ProductRecord {
        product_id: row.try_get(0)?,
        name: row.try_get(1)?,
        gtin: row.try_get(2)?,
        manufacturer_id: row.try_get(3)?,
        department: row.try_get(4)?,
        category: row.try_get(5)?,
        product_type: row.try_get(6)?,
        brand: row.try_get(7)?,
        brand_type: row.try_get(8)?,
        package_size: row.try_get(9)?,
        active: flag(row, 10)?,
    })
}

pub const STORE_PRODUCT_COLUMNS: &str =
    "store_id, product_id, price_cents, stock_qty, location, updated_at";

pub fn store_product_from_row(row: &Row) -> Result<StoreProductRecord, HqError> {
    Ok(StoreProductRecord {
        store_id: row.try_get(0)?,
        product_id: row.try_get(1)?,
        price_cents: row.try_get(2)?,
        stock_qty: row.try_get(3)?,
        location: row.try_get(4)?,
        updated_at: row.try_get(5)?,
    })
}

pub fn read_store_product(
    c: &mut Tx<'_>,
    store_id: i64,
    product_id: i64,
) -> Result<Option<StoreProductRecord>, HqError> {
    c.query_opt(
        &format!(
            "SELECT {STORE_PRODUCT_COLUMNS} FROM store_products WHERE store_id = $1 AND product_id = $2"
        ),
        &[&store_id, &product_id],
    )?
    .map(|row| store_product_from_row(&row))
    .transpose()
}

pub fn read_campaign(c: &mut Tx<'_>, campaign_id: i64) -> Result<Option<CampaignRecord>, HqError> {
    let Some(row) = c.query_opt(
        "SELECT campaign_id, name, campaign_type, starts_on, ends_on FROM campaigns
         WHERE campaign_id = $1",
        &[&campaign_id],
    )?
    else {
        return Ok(None);
    };
    let targets = c
        .query(
            "SELECT member_id FROM campaign_targets WHERE campaign_id = $1 ORDER BY member_id",
            &[&campaign_id],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok(Some(CampaignRecord {
        campaign_id: row.try_get(0)?,
        name: row.try_get(1)?,
        campaign_type: row.try_get(2)?,
        starts_on: row.try_get(3)?,
        ends_on: row.try_get(4)?,
        targets,
    }))
}

pub fn read_coupon(c: &mut Tx<'_>, coupon_id: i64) -> Result<Option<CouponRecord>, HqError> {
    let Some(row) = c.query_opt(
        "SELECT coupon_id, code, campaign_id, description, discount_cents, discount_percent
         FROM coupons WHERE coupon_id = $1",
        &[&coupon_id],
    )?
    else {
        return Ok(None);
    };
    let product_ids = c
        .query(
            "SELECT product_id FROM coupon_products WHERE coupon_id = $1 ORDER BY product_id",
            &[&coupon_id],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok(Some(CouponRecord {
        coupon_id: row.try_get(0)?,
        code: row.try_get(1)?,
        campaign_id: row.try_get(2)?,
        description: row.try_get(3)?,
        discount_cents: row.try_get(4)?,
        discount_percent: row.try_get(5)?,
        product_ids,
    }))
}

/// Adds (or re-keys) a store's coupon issuing key.
pub fn add_issuer(
    c: &mut Tx<'_>,
    store_id: i64,
    key_id: i64,
    public_key: &[u8],
    now: &str,
) -> Result<(), HqError> {
    c.execute(
        "INSERT INTO coupon_issuers (store_id, key_id, public_key, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (store_id, key_id) DO UPDATE SET public_key = excluded.public_key",
        &[&store_id, &key_id, &public_key, &now],
    )?;
    Ok(())
}

fn received_time(text: &str) -> Result<Timestamp, HqError> {
    Timestamp::parse(text).map_err(|e| HqError::Invalid(format!("time {text:?}: {e}")))
}

/// Applies one change, as a replica does (`aisle_core::sync::records::apply_change`).
pub fn apply_change(c: &mut Tx<'_>, change: &Change) -> Result<(), HqError> {
    match change {
        Change::Store(store) => {
            c.execute(
                "INSERT INTO stores (store_id, name, region, timezone) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (store_id) DO UPDATE SET name = excluded.name,
                     region = excluded.region, timezone = excluded.timezone",
                &[&store.store_id, &store.name, &store.region, &store.timezone],
            )?;
            for key in store.coupon_keys.iter().flatten() {
                if let Ok(public) = aisle_core::keys::parse_strong_public(&key.public_key) {
                    let created = received_time(&key.created_at)?.to_string();
                    add_issuer(c, store.store_id, key.key_id, public.as_bytes(), &created)?;
                    if let Some(revoked_at) = &key.revoked_at {
                        let revoked = received_time(revoked_at)?.to_string();
                        c.execute(
                            "UPDATE coupon_issuers SET revoked_at = coalesce(revoked_at, $3)
                             WHERE store_id = $1 AND key_id = $2",
                            &[&store.store_id, &key.key_id, &revoked],
                        )?;
                    }
                }
            }
        }
        Change::Product(product) => {
            c.execute(
                "INSERT INTO products (product_id, name, gtin, manufacturer_id, department, category,
                     product_type, brand, brand_type, package_size, active)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (product_id) DO UPDATE SET name = excluded.name,
                     gtin = excluded.gtin, manufacturer_id = excluded.manufacturer_id,
                     department = excluded.department, category = excluded.category,
                     product_type = excluded.product_type, brand = excluded.brand,
                     brand_type = excluded.brand_type, package_size = excluded.package_size,
                     active = excluded.active",
                &[
                    &product.product_id,
                    &product.name,
                    &product.gtin,
                    &product.manufacturer_id,
                    &product.department,
                    &product.category,
                    &product.product_type,
                    &product.brand,
                    &product.brand_type,
                    &product.package_size,
                    &i64::from(product.active),
                ],
            )?;
        }
        Change::StoreProduct(row) => {
            ensure_store(c, row.store_id)?;
            c.execute(
                "INSERT INTO store_products (store_id, product_id, price_cents, stock_qty, location, updated_at)
                 SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM products WHERE product_id = $2)
                 ON CONFLICT (store_id, product_id) DO UPDATE SET price_cents = excluded.price_cents,
                     stock_qty = excluded.stock_qty, location = excluded.location,
                     updated_at = excluded.updated_at",
                &[
                    &row.store_id,
                    &row.product_id,
                    &row.price_cents,
                    &row.stock_qty,
                    &row.location,
                    &row.updated_at,
                ],
            )?;
        }
        Change::Member(member) => {
            write_member(c, member)?;
        }
        Change::MemberErased {
            member_id,
            erased_at,
        } => erase_member(c, *member_id, &received_time(erased_at)?.to_string())?,
        Change::Campaign(campaign) => {
            c.execute(
                "INSERT INTO campaigns (campaign_id, name, campaign_type, starts_on, ends_on)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (campaign_id) DO UPDATE SET name = excluded.name,
                     campaign_type = excluded.campaign_type, starts_on = excluded.starts_on,
                     ends_on = excluded.ends_on",
                &[
                    &campaign.campaign_id,
                    &campaign.name,
                    &campaign.campaign_type,
                    &campaign.starts_on,
                    &campaign.ends_on,
                ],
            )?;
            c.execute(
                "DELETE FROM campaign_targets WHERE campaign_id = $1",
                &[&campaign.campaign_id],
            )?;
            c.execute(
                "INSERT INTO campaign_targets (campaign_id, member_id)
                 SELECT $1, m.member_id FROM members AS m
                 WHERE m.member_id = ANY($2) AND m.erased_at IS NULL
                 ON CONFLICT DO NOTHING",
                &[&campaign.campaign_id, &campaign.targets],
            )?;
        }
        Change::Model(_) => {}
        Change::Basket(basket) => write_basket(c, basket)?,
        Change::Associate(associate) => write_associate(c, associate)?,
        Change::Coupon(coupon) => {
            c.execute(
                "INSERT INTO coupons (coupon_id, code, campaign_id, description, discount_cents, discount_percent)
                 SELECT $1, $2, $3, $4, $5, $6
                 WHERE EXISTS (SELECT 1 FROM campaigns WHERE campaign_id = $3)
                 ON CONFLICT (coupon_id) DO UPDATE SET code = excluded.code,
                     campaign_id = excluded.campaign_id, description = excluded.description,
                     discount_cents = excluded.discount_cents,
                     discount_percent = excluded.discount_percent",
                &[
                    &coupon.coupon_id,
                    &coupon.code,
                    &coupon.campaign_id,
                    &coupon.description,
                    &coupon.discount_cents,
                    &coupon.discount_percent,
                ],
            )?;
            c.execute(
                "DELETE FROM coupon_products WHERE coupon_id = $1",
                &[&coupon.coupon_id],
            )?;
            c.execute(
                "INSERT INTO coupon_products (coupon_id, product_id)
                 SELECT $1, p.product_id FROM products AS p
                 WHERE p.product_id = ANY($2) AND EXISTS (SELECT 1 FROM coupons WHERE coupon_id = $1)
                 ON CONFLICT DO NOTHING",
                &[&coupon.coupon_id, &coupon.product_ids],
            )?;
        }
    }
    Ok(())
}

/// Removes every personal datum of a member (as `aisle_core::members::erase`),
/// leaving the tombstone row.
pub fn erase_member(c: &mut Tx<'_>, member_id: i64, erased_at: &str) -> Result<(), HqError> {
    for sql in [
        "DELETE FROM member_cards WHERE member_id = $1",
        "DELETE FROM member_preferences WHERE member_id = $1",
        "DELETE FROM member_notes WHERE member_id = $1",
        "DELETE FROM member_demographics WHERE member_id = $1",
        "DELETE FROM member_external_ids WHERE member_id = $1",
        "DELETE FROM campaign_targets WHERE member_id = $1",
        "DELETE FROM member_keys WHERE member_id = $1",
        "DELETE FROM code_replays WHERE member_id = $1",
        "UPDATE baskets SET member_id = NULL WHERE member_id = $1",
        "UPDATE coupon_issues SET member_id = NULL WHERE member_id = $1",
        "UPDATE coupon_issues SET bound_member_id = NULL WHERE bound_member_id = $1",
        "UPDATE coupon_redemptions SET member_id = NULL WHERE member_id = $1",
    ] {
        c.execute(sql, &[&member_id])?;
    }
    c.execute(
        "INSERT INTO members (member_id, updated_at, erased_at) VALUES ($1, $2, $2)
         ON CONFLICT (member_id) DO UPDATE SET
             given_name = NULL, family_name = NULL, display_name = NULL, phone = NULL,
             email = NULL, home_store_id = NULL, tier = 'standard',
             consent_personalization = 0, consent_personalization_at = NULL,
             consent_marketing = 0, consent_marketing_at = NULL, enrolled_on = NULL,
             erased_at = coalesce(members.erased_at, excluded.erased_at),
             updated_at = excluded.updated_at",
        &[&member_id, &erased_at],
    )?;
    Ok(())
}
