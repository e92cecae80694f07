//! Wire records <-> replica rows, both ways. The same tables hold a store's
//! replica and HQ's master data, so HQ reads its records with these
//! functions and a store writes them with these functions.

use aisle_proto::{
    AssociateRecord, BasketLine, BasketRecord, CampaignRecord, CardRecord, Change, CodeKeyRecord,
    CouponRecord, MemberRecord, ProductRecord, Role, StoreProductRecord, StoreRecord,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::time::Timestamp;

/// The member columns [`member_from_row`] reads, in order (prefix with a table alias as needed).
pub const MEMBER_COLUMNS: &str = "member_id, given_name, family_name, display_name, phone, email, \
     home_store_id, tier, consent_personalization, consent_personalization_at, consent_marketing, \
     consent_marketing_at, enrolled_on, updated_at";

/// A member row (of [`MEMBER_COLUMNS`]) without cards, preferences and keys.
pub fn member_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MemberRecord> {
    Ok(MemberRecord {
        member_id: row.get(0)?,
        given_name: row.get(1)?,
        family_name: row.get(2)?,
        display_name: row.get(3)?,
        phone: row.get(4)?,
        email: row.get(5)?,
        home_store_id: row.get(6)?,
        tier: row.get(7)?,
        consent_personalization: row.get(8)?,
        consent_personalization_at: row.get(9)?,
        consent_marketing: row.get(10)?,
        consent_marketing_at: row.get(11)?,
        enrolled_on: row.get(12)?,
        updated_at: row.get(13)?,
        cards: Vec::new(),
        preferences: Vec::new(),
        code_keys: None,
        coupons: None,
    })
}

/// The member's whole profile, or `None` when absent or erased.
pub fn read_member(conn: &Connection, member_id: i64) -> rusqlite::Result<Option<MemberRecord>> {
    let member = conn
        .prepare_cached(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE member_id = ?1 AND erased_at IS NULL"
        ))?
        .query_row([member_id], member_from_row)
        .optional()?;
    let Some(mut member) = member else {
        return Ok(None);
    };
    member.cards = conn
        .prepare_cached(
            "SELECT card_number, status, issued_on FROM member_cards
             WHERE member_id = ?1 ORDER BY card_number",
        )?
        .query_map([member_id], |row| {
            Ok(CardRecord {
                card_number: row.get(0)?,
                status: row.get(1)?,
                issued_on: row.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    member.preferences = crate::members::read_preferences(conn, member_id)?;
    member.code_keys = Some(read_code_keys(conn, member_id)?);
    let coupons = crate::offers::ledger::read_instances(conn, member_id)?;
    member.coupons = (!coupons.is_empty()).then_some(coupons);
    Ok(Some(member))
}

/// A member's app-code keys, by key id.
pub fn read_code_keys(conn: &Connection, member_id: i64) -> rusqlite::Result<Vec<CodeKeyRecord>> {
    conn.prepare_cached(
        "SELECT key_id, public_key, created_at FROM member_keys WHERE member_id = ?1 ORDER BY key_id",
    )?
    .query_map([member_id], code_key_from_row)?
    .collect()
}

/// A `member_keys` row of (key_id, public_key, created_at).
pub fn code_key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CodeKeyRecord> {
    Ok(CodeKeyRecord {
        key_id: row.get(0)?,
        public_key: hex::encode(row.get::<_, Vec<u8>>(1)?),
        created_at: row.get(2)?,
        revoked_at: None,
    })
}

/// Writes a member's whole profile: the row, exactly these cards, exactly
/// these preferences and, when the record states them, exactly these
/// app-code keys. A member erased here stays erased (erasure always wins).
pub fn write_member(tx: &Transaction<'_>, member: &MemberRecord) -> rusqlite::Result<bool> {
    let erased: Option<bool> = tx
        .prepare_cached("SELECT erased_at IS NOT NULL FROM members WHERE member_id = ?1")?
        .query_row([member.member_id], |row| row.get(0))
        .optional()?;
    if erased == Some(true) {
        return Ok(false);
    }
    if let Some(store_id) = member.home_store_id {
        ensure_store(tx, store_id)?;
    }
    tx.prepare_cached(
        "INSERT INTO members (member_id, given_name, family_name, display_name, phone, email,
             home_store_id, tier, consent_personalization, consent_personalization_at,
             consent_marketing, consent_marketing_at, enrolled_on, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (member_id) DO UPDATE SET
             given_name = excluded.given_name, family_name = excluded.family_name,
             display_name = excluded.display_name, phone = excluded.phone, email = excluded.email,
             home_store_id = excluded.home_store_id, tier = excluded.tier,
             consent_personalization = excluded.consent_personalization,
             consent_personalization_at = excluded.consent_personalization_at,
             consent_marketing = excluded.consent_marketing,
             consent_marketing_at = excluded.consent_marketing_at,
             enrolled_on = excluded.enrolled_on, updated_at = excluded.updated_at",
    )?
    .execute(params![
        member.member_id,
        member.given_name,
        member.family_name,
        member.display_name,
        member.phone,
        member.email,
        member.home_store_id,
        member.tier,
        member.consent_personalization,
        member.consent_personalization_at,
        member.consent_marketing,
        member.consent_marketing_at,
        member.enrolled_on,
        member.updated_at,
    ])?;
    tx.prepare_cached("DELETE FROM member_cards WHERE member_id = ?1")?
        .execute([member.member_id])?;
    for card in &member.cards {
        tx.prepare_cached(
            "INSERT INTO member_cards (card_number, member_id, status, issued_on)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (card_number) DO UPDATE SET member_id = excluded.member_id,
                 status = excluded.status, issued_on = excluded.issued_on",
        )?
        .execute(params![
            card.card_number,
            member.member_id,
            card.status,
            card.issued_on
        ])?;
    }
    tx.prepare_cached("DELETE FROM member_preferences WHERE member_id = ?1")?
        .execute([member.member_id])?;
    for preference in &member.preferences {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO member_preferences (member_id, kind, value) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![member.member_id, preference.kind, preference.value])?;
    }
    if let Some(code_keys) = &member.code_keys {
        write_code_keys(tx, member.member_id, code_keys)?;
    }
    if let Some(coupons) = &member.coupons {
        crate::offers::ledger::apply_instances(tx, member.member_id, coupons)?;
    }
    Ok(true)
}

/// Sets a member's app-code keys to exactly these.
fn write_code_keys(
    tx: &Transaction<'_>,
    member_id: i64,
    code_keys: &[CodeKeyRecord],
) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM member_keys WHERE member_id = ?1")?
        .execute([member_id])?;
    for key in code_keys {
        // HQ checks keys when it takes them in (keys::parse_strong_public);
        // here only the shape is, to keep a million-member bootstrap fast: a
        // stored value that is no key verifies nothing (identify: `no_key`).
        // One that is not 32 bytes of hex is left out, never fatal to a batch.
        match crate::keys::decode_hex32(&key.public_key) {
            Ok(bytes) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO member_keys (member_id, key_id, public_key, created_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![member_id, key.key_id, bytes, key.created_at])?;
            }
            Err(reason) => tracing::warn!(
                member_id,
                key_id = key.key_id,
                %reason,
                "app-code key left out"
            ),
        }
    }
    Ok(())
}

/// The columns [`associate_from_row`] reads, in order.
pub const ASSOCIATE_COLUMNS: &str =
    "staff_id, store_id, display_name, role, pin_hash, active, updated_at";

/// An `associates` row selected with [`ASSOCIATE_COLUMNS`].
pub fn associate_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AssociateRecord> {
    let role: String = row.get(3)?;
    Ok(AssociateRecord {
        staff_id: row.get(0)?,
        store_id: row.get(1)?,
        display_name: row.get(2)?,
        role: Role::parse(&role).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("unknown role {role:?}").into(),
            )
        })?,
        pin_hash: row.get(4)?,
        active: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

/// An associate, whole (a PIN hash that is not Argon2id is refused by the
/// schema: the batch fails rather than lock the staff out silently).
pub fn write_associate(tx: &Transaction<'_>, associate: &AssociateRecord) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO associates (staff_id, store_id, display_name, role, pin_hash, active, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (staff_id) DO UPDATE SET store_id = excluded.store_id,
             display_name = excluded.display_name, role = excluded.role,
             pin_hash = excluded.pin_hash, active = excluded.active,
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        associate.staff_id,
        associate.store_id,
        associate.display_name,
        associate.role.as_str(),
        associate.pin_hash,
        associate.active,
        associate.updated_at
    ])?;
    Ok(())
}

/// A member's basket, whole. A basket of a member the replica does not hold
/// (or has erased) stays an anonymous sale; lines of products outside the
/// catalog are left out.
pub fn write_basket(tx: &Transaction<'_>, basket: &BasketRecord) -> rusqlite::Result<()> {
    ensure_store(tx, basket.store_id)?;
    tx.prepare_cached(
        "INSERT INTO baskets (basket_id, member_id, store_id, purchased_at)
         VALUES (?1, (SELECT member_id FROM members WHERE member_id = ?2 AND erased_at IS NULL), ?3, ?4)
         ON CONFLICT (basket_id) DO UPDATE SET member_id = excluded.member_id,
             store_id = excluded.store_id, purchased_at = excluded.purchased_at",
    )?
    .execute(params![
        basket.basket_id,
        basket.member_id,
        basket.store_id,
        basket.purchased_at
    ])?;
    tx.prepare_cached("DELETE FROM purchase_lines WHERE basket_id = ?1")?
        .execute([basket.basket_id])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO purchase_lines (basket_id, line_no, product_id, quantity, sales_cents,
             retail_disc_cents, coupon_disc_cents, coupon_match_disc_cents)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE EXISTS (SELECT 1 FROM products WHERE product_id = ?3)",
    )?;
    for line in &basket.lines {
        insert.execute(params![
            basket.basket_id,
            line.line_no,
            line.product_id,
            line.quantity,
            line.sales_cents,
            line.retail_disc_cents,
            line.coupon_disc_cents,
            line.coupon_match_disc_cents
        ])?;
    }
    Ok(())
}

/// The basket's columns and its lines' as [`fold_baskets`] reads them, in
/// basket then line order.
pub const BASKET_LINE_COLUMNS: &str = "b.basket_id, b.member_id, b.store_id, b.purchased_at,
    l.line_no, l.product_id, l.quantity, l.sales_cents, l.retail_disc_cents, l.coupon_disc_cents,
    l.coupon_match_disc_cents";

/// Folds rows of [`BASKET_LINE_COLUMNS`] (ordered by basket, then line) into
/// whole baskets, each handed to `each` as soon as its last line is read.
pub fn fold_baskets<E: From<rusqlite::Error>>(
    rows: &mut rusqlite::Rows<'_>,
    mut each: impl FnMut(BasketRecord) -> Result<(), E>,
) -> Result<(), E> {
    let mut current: Option<BasketRecord> = None;
    while let Some(row) = rows.next()? {
        let basket_id: i64 = row.get(0)?;
        if current.as_ref().is_some_and(|b| b.basket_id != basket_id)
            && let Some(done) = current.take()
        {
            each(done)?;
        }
        let basket = match &mut current {
            Some(basket) => basket,
            None => current.insert(BasketRecord {
                basket_id,
                member_id: row.get(1)?,
                store_id: row.get(2)?,
                purchased_at: row.get(3)?,
                lines: Vec::new(),
            }),
        };
        basket.lines.push(BasketLine {
            line_no: row.get(4)?,
            product_id: row.get(5)?,
            quantity: row.get(6)?,
            sales_cents: row.get(7)?,
            retail_disc_cents: row.get(8)?,
            coupon_disc_cents: row.get(9)?,
            coupon_match_disc_cents: row.get(10)?,
        });
    }
    if let Some(done) = current {
        each(done)?;
    }
    Ok(())
}

fn ensure_store(tx: &Transaction<'_>, store_id: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO stores (store_id, name) VALUES (?1, 'Store ' || ?1)")?
        .execute([store_id])?;
    Ok(())
}

pub fn read_store(conn: &Connection, store_id: i64) -> rusqlite::Result<Option<StoreRecord>> {
    let store = conn
        .prepare_cached("SELECT store_id, name, region, timezone FROM stores WHERE store_id = ?1")?
        .query_row([store_id], |row| {
            Ok(StoreRecord {
                store_id: row.get(0)?,
                name: row.get(1)?,
                region: row.get(2)?,
                timezone: row.get(3)?,
                coupon_keys: None,
            })
        })
        .optional()?;
    let Some(mut store) = store else {
        return Ok(None);
    };
    let keys: Vec<CodeKeyRecord> = conn
        .prepare_cached(
            "SELECT key_id, public_key, created_at, revoked_at FROM coupon_issuers
             WHERE store_id = ?1 ORDER BY key_id",
        )?
        .query_map([store_id], |row| {
            Ok(CodeKeyRecord {
                revoked_at: row.get(3)?,
                ..code_key_from_row(row)?
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    store.coupon_keys = (!keys.is_empty()).then_some(keys);
    Ok(Some(store))
}

pub const PRODUCT_COLUMNS: &str = "product_id, name, gtin, manufacturer_id, department, category, \
     product_type, brand, brand_type, package_size, active";

pub fn product_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProductRecord> {
    Ok(ProductRecord {
        product_id: row.get(0)?,
        name: row.get(1)?,
        gtin: row.get(2)?,
        manufacturer_id: row.get(3)?,
        department: row.get(4)?,
        category: row.get(5)?,
        product_type: row.get(6)?,
        brand: row.get(7)?,
        brand_type: row.get(8)?,
        package_size: row.get(9)?,
        active: row.get(10)?,
    })
}

pub fn read_product(conn: &Connection, product_id: i64) -> rusqlite::Result<Option<ProductRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE product_id = ?1"
    ))?
    .query_row([product_id], product_from_row)
    .optional()
}

pub fn store_product_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreProductRecord> {
    Ok(StoreProductRecord {
        store_id: row.get(0)?,
        product_id: row.get(1)?,
        price_cents: row.get(2)?,
        stock_qty: row.get(3)?,
        location: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

pub fn read_store_product(
    conn: &Connection,
    store_id: i64,
    product_id: i64,
) -> rusqlite::Result<Option<StoreProductRecord>> {
    conn.prepare_cached(
        "SELECT store_id, product_id, price_cents, stock_qty, location, updated_at
         FROM store_products WHERE store_id = ?1 AND product_id = ?2",
    )?
    .query_row([store_id, product_id], store_product_from_row)
    .optional()
}

/// A campaign with every member it targets (HQ narrows the list to a store's partition).
pub fn read_campaign(
    conn: &Connection,
    campaign_id: i64,
) -> rusqlite::Result<Option<CampaignRecord>> {
    let campaign = conn
        .prepare_cached(
            "SELECT campaign_id, name, campaign_type, starts_on, ends_on FROM campaigns
             WHERE campaign_id = ?1",
        )?
        .query_row([campaign_id], |row| {
            Ok(CampaignRecord {
                campaign_id: row.get(0)?,
                name: row.get(1)?,
                campaign_type: row.get(2)?,
                starts_on: row.get(3)?,
                ends_on: row.get(4)?,
                targets: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut campaign) = campaign else {
        return Ok(None);
    };
    campaign.targets = conn
        .prepare_cached(
            "SELECT member_id FROM campaign_targets WHERE campaign_id = ?1 ORDER BY member_id",
        )?
        .query_map([campaign_id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(campaign))
}

pub fn read_coupon(conn: &Connection, coupon_id: i64) -> rusqlite::Result<Option<CouponRecord>> {
    let coupon = conn
        .prepare_cached(
            "SELECT coupon_id, code, campaign_id, description, discount_cents, discount_percent
             FROM coupons WHERE coupon_id = ?1",
        )?
        .query_row([coupon_id], |row| {
            Ok(CouponRecord {
                coupon_id: row.get(0)?,
                code: row.get(1)?,
                campaign_id: row.get(2)?,
                description: row.get(3)?,
                discount_cents: row.get(4)?,
                discount_percent: row.get(5)?,
                product_ids: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut coupon) = coupon else {
        return Ok(None);
    };
    coupon.product_ids = conn
        .prepare_cached(
            "SELECT product_id FROM coupon_products WHERE coupon_id = ?1 ORDER BY product_id",
        )?
        .query_map([coupon_id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(coupon))
}

/// Applies one change. Every change is a whole state, so applying it again
/// changes nothing. Records that refer to rows the replica does not hold
/// (a target outside the partition, a product not in the catalog) are
/// skipped for those rows, never failed: HQ owns the catalog and the partition.
/// A time HQ sent, parsed; a malformed one fails the batch's transaction.
fn received_time(text: &str) -> rusqlite::Result<Timestamp> {
    Timestamp::parse(text).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

pub fn apply_change(tx: &Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::Store(store) => {
            tx.prepare_cached(
                "INSERT INTO stores (store_id, name, region, timezone) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (store_id) DO UPDATE SET name = excluded.name,
                     region = excluded.region, timezone = excluded.timezone",
            )?
            .execute(params![
                store.store_id,
                store.name,
                store.region,
                store.timezone
            ])?;
            for key in store.coupon_keys.iter().flatten() {
                // A malformed key is left out (its coupons refuse as unknown_issuer).
                if let Ok(public) = crate::keys::parse_strong_public(&key.public_key) {
                    crate::keys::add_issuer(
                        tx,
                        store.store_id,
                        key.key_id,
                        &public,
                        received_time(&key.created_at)?,
                    )?;
                    if let Some(revoked_at) = &key.revoked_at {
                        crate::keys::revoke_issuer(
                            tx,
                            store.store_id,
                            key.key_id,
                            received_time(revoked_at)?,
                        )?;
                    }
                }
            }
        }
        Change::Product(product) => {
            tx.prepare_cached(
                "INSERT INTO products (product_id, name, gtin, manufacturer_id, department, category,
                     product_type, brand, brand_type, package_size, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (product_id) DO UPDATE SET name = excluded.name,
                     gtin = excluded.gtin, manufacturer_id = excluded.manufacturer_id,
                     department = excluded.department, category = excluded.category,
                     product_type = excluded.product_type, brand = excluded.brand,
                     brand_type = excluded.brand_type, package_size = excluded.package_size,
                     active = excluded.active",
            )?
            .execute(params![
                product.product_id,
                product.name,
                product.gtin,
                product.manufacturer_id,
                product.department,
                product.category,
                product.product_type,
                product.brand,
                product.brand_type,
                product.package_size,
                product.active,
            ])?;
        }
        Change::StoreProduct(row) => {
            ensure_store(tx, row.store_id)?;
            tx.prepare_cached(
                "INSERT INTO store_products (store_id, product_id, price_cents, stock_qty, location, updated_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM products WHERE product_id = ?2)
                 ON CONFLICT (store_id, product_id) DO UPDATE SET price_cents = excluded.price_cents,
                     stock_qty = excluded.stock_qty, location = excluded.location,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![
                row.store_id,
                row.product_id,
                row.price_cents,
                row.stock_qty,
                row.location,
                row.updated_at
            ])?;
        }
        Change::Member(member) => {
            write_member(tx, member)?;
        }
        Change::MemberErased {
            member_id,
            erased_at,
        } => crate::members::erase(tx, *member_id, received_time(erased_at)?)?,
        Change::Campaign(campaign) => {
            tx.prepare_cached(
                "INSERT INTO campaigns (campaign_id, name, campaign_type, starts_on, ends_on)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (campaign_id) DO UPDATE SET name = excluded.name,
                     campaign_type = excluded.campaign_type, starts_on = excluded.starts_on,
                     ends_on = excluded.ends_on",
            )?
            .execute(params![
                campaign.campaign_id,
                campaign.name,
                campaign.campaign_type,
                campaign.starts_on,
                campaign.ends_on
            ])?;
            tx.prepare_cached("DELETE FROM campaign_targets WHERE campaign_id = ?1")?
                .execute([campaign.campaign_id])?;
            for member_id in &campaign.targets {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO campaign_targets (campaign_id, member_id)
                     SELECT ?1, ?2 WHERE EXISTS
                         (SELECT 1 FROM members WHERE member_id = ?2 AND erased_at IS NULL)",
                )?
                .execute([campaign.campaign_id, *member_id])?;
            }
        }
        // Its bytes are fetched and kept by the sync engine, with the batch.
        Change::Model(_) => {}
        Change::Basket(basket) => write_basket(tx, basket)?,
        Change::Associate(associate) => write_associate(tx, associate)?,
        Change::Coupon(coupon) => {
            tx.prepare_cached(
                "INSERT INTO coupons (coupon_id, code, campaign_id, description, discount_cents, discount_percent)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6
                 WHERE EXISTS (SELECT 1 FROM campaigns WHERE campaign_id = ?3)
                 ON CONFLICT (coupon_id) DO UPDATE SET code = excluded.code,
                     campaign_id = excluded.campaign_id, description = excluded.description,
                     discount_cents = excluded.discount_cents,
                     discount_percent = excluded.discount_percent",
            )?
            .execute(params![
                coupon.coupon_id,
                coupon.code,
                coupon.campaign_id,
                coupon.description,
                coupon.discount_cents,
                coupon.discount_percent
            ])?;
            tx.prepare_cached("DELETE FROM coupon_products WHERE coupon_id = ?1")?
                .execute([coupon.coupon_id])?;
            for product_id in &coupon.product_ids {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO coupon_products (coupon_id, product_id)
                     SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM products WHERE product_id = ?2)
                         AND EXISTS (SELECT 1 FROM coupons WHERE coupon_id = ?1)",
                )?
                .execute([coupon.coupon_id, *product_id])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key_id: i64, public_key: String) -> CodeKeyRecord {
        CodeKeyRecord {
            key_id,
            public_key,
            created_at: "2026-01-01 00:00:00".into(),
            revoked_at: None,
        }
    }

    /// `code_keys`: `Some` replaces the member's keys (a malformed one left
    /// out), `None` keeps them; reading states them, `[]` included.
    #[test]
    fn member_records_state_keys_or_keep_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        let demo = hex::encode(crate::keys::demo_member_key(7).verifying_key().as_bytes());
        let mut member = MemberRecord {
            member_id: 7,
            given_name: Some("Zoe".into()),
            family_name: None,
            display_name: None,
            phone: None,
            email: None,
            home_store_id: None,
            tier: "standard".into(),
            consent_personalization: true,
            consent_personalization_at: None,
            consent_marketing: false,
            consent_marketing_at: None,
            enrolled_on: None,
            updated_at: "2026-01-01 00:00:00".into(),
            cards: Vec::new(),
            preferences: Vec::new(),
            code_keys: Some(vec![key(1, demo.clone()), key(2, "not hex".into())]),
            coupons: None,
        };
        let mut write = |member: &MemberRecord| {
            let tx = conn.transaction().expect("tx");
            assert!(write_member(&tx, member).expect("write"));
            let keys = read_member(&tx, 7)
                .expect("read")
                .expect("member")
                .code_keys;
            tx.commit().expect("commit");
            keys
        };
        assert_eq!(write(&member), Some(vec![key(1, demo.clone())]));
        member.code_keys = None;
        assert_eq!(write(&member), Some(vec![key(1, demo)]), "not stated: kept");
        member.code_keys = Some(Vec::new());
        assert_eq!(write(&member), Some(Vec::new()), "stated as none: removed");
    }
}
