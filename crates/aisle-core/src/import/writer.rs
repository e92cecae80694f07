//! Prepared upserts into the replica, shared by every importer.
//!
//! Each upsert writes only when a value differs (`... DO UPDATE ... WHERE
//! (old) IS NOT (new)`), so `execute` returning 0 means "already there,
//! unchanged": that is how a re-import proves it changed nothing. Members whose
//! personal data was erased are never rewritten by an import.

use rusqlite::{Statement, Transaction, params};

use super::ImportReport;

pub struct Store<'a> {
    pub store_id: i64,
    pub name: &'a str,
    pub region: Option<&'a str>,
    pub timezone: &'a str,
}

pub struct Product<'a> {
    pub product_id: i64,
    pub name: &'a str,
    pub gtin: Option<&'a str>,
    pub manufacturer_id: Option<i64>,
    pub department: Option<&'a str>,
    pub category: Option<&'a str>,
    pub product_type: Option<&'a str>,
    pub brand: Option<&'a str>,
    pub brand_type: Option<&'a str>,
    pub package_size: Option<&'a str>,
    pub active: bool,
}

pub struct StoreProduct<'a> {
    pub store_id: i64,
    pub product_id: i64,
    pub price_cents: i64,
    pub stock_qty: i64,
    pub location: Option<&'a str>,
    pub updated_at: &'a str,
}

pub struct Member<'a> {
    pub member_id: i64,
    pub given_name: Option<&'a str>,
    pub family_name: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub home_store_id: Option<i64>,
    pub tier: &'a str,
    pub consent_personalization: bool,
    pub consent_personalization_at: Option<&'a str>,
    pub consent_marketing: bool,
    pub consent_marketing_at: Option<&'a str>,
    pub enrolled_on: Option<&'a str>,
}

pub struct Line {
    pub basket_id: i64,
    pub line_no: i64,
    pub product_id: i64,
    pub quantity: i64,
    pub sales_cents: i64,
    pub retail_disc_cents: i64,
    pub coupon_disc_cents: i64,
    pub coupon_match_disc_cents: i64,
}

/// What happened to a member row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberWrite {
    Written,
    Unchanged,
    /// The member was erased: nothing personal is written back.
    Erased,
}

/// Prepared statements over one import transaction.
pub struct Writer<'tx> {
    tx: &'tx Transaction<'tx>,
    store: Statement<'tx>,
    product: Statement<'tx>,
    store_product: Statement<'tx>,
    member: Statement<'tx>,
    member_if_new: Statement<'tx>,
    erased: Statement<'tx>,
    card: Statement<'tx>,
    card_owner: Statement<'tx>,
    basket: Statement<'tx>,
    line: Statement<'tx>,
}

const MEMBER_COLUMNS: &str =
    "member_id, given_name, family_name, display_name, phone, email, home_store_id, tier,
     consent_personalization, consent_personalization_at, consent_marketing, consent_marketing_at,
     enrolled_on, updated_at";
const MEMBER_VALUES: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14";

impl<'tx> Writer<'tx> {
    pub fn new(tx: &'tx Transaction<'tx>) -> rusqlite::Result<Self> {
        Ok(Self {
            store: tx.prepare(
                "INSERT INTO stores (store_id, name, region, timezone) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (store_id) DO UPDATE SET
                     name = excluded.name, region = excluded.region, timezone = excluded.timezone
                 WHERE (stores.name, stores.region, stores.timezone)
                       IS NOT (excluded.name, excluded.region, excluded.timezone)",
            )?,
            product: tx.prepare(
                "INSERT INTO products (product_id, name, gtin, manufacturer_id, department, category,
                     product_type, brand, brand_type, package_size, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (product_id) DO UPDATE SET
                     name = excluded.name, gtin = excluded.gtin, manufacturer_id = excluded.manufacturer_id,
                     department = excluded.department, category = excluded.category,
                     product_type = excluded.product_type, brand = excluded.brand,
                     brand_type = excluded.brand_type, package_size = excluded.package_size,
                     active = excluded.active
                 WHERE (products.name, products.gtin, products.manufacturer_id, products.department,
                        products.category, products.product_type, products.brand, products.brand_type,
                        products.package_size, products.active)
                   IS NOT (excluded.name, excluded.gtin, excluded.manufacturer_id, excluded.department,
                        excluded.category, excluded.product_type, excluded.brand, excluded.brand_type,
                        excluded.package_size, excluded.active)",
            )?,
            store_product: tx.prepare(
                "INSERT INTO store_products (store_id, product_id, price_cents, stock_qty, location, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (store_id, product_id) DO UPDATE SET
                     price_cents = excluded.price_cents, stock_qty = excluded.stock_qty,
                     location = excluded.location, updated_at = excluded.updated_at
                 WHERE (store_products.price_cents, store_products.stock_qty, store_products.location)
                   IS NOT (excluded.price_cents, excluded.stock_qty, excluded.location)",
            )?,
            member: tx.prepare(&format!(
                "INSERT INTO members ({MEMBER_COLUMNS}) VALUES ({MEMBER_VALUES})
                 ON CONFLICT (member_id) DO UPDATE SET
                     given_name = excluded.given_name, family_name = excluded.family_name,
                     display_name = excluded.display_name, phone = excluded.phone, email = excluded.email,
                     home_store_id = excluded.home_store_id, tier = excluded.tier,
                     consent_personalization = excluded.consent_personalization,
                     consent_personalization_at = excluded.consent_personalization_at,
                     consent_marketing = excluded.consent_marketing,
                     consent_marketing_at = excluded.consent_marketing_at,
                     enrolled_on = excluded.enrolled_on, updated_at = excluded.updated_at
                 WHERE members.erased_at IS NULL
                   AND (members.given_name, members.family_name, members.display_name, members.phone,
                        members.email, members.home_store_id, members.tier,
                        members.consent_personalization, members.consent_personalization_at,
                        members.consent_marketing, members.consent_marketing_at, members.enrolled_on)
                   IS NOT (excluded.given_name, excluded.family_name, excluded.display_name,
                        excluded.phone, excluded.email, excluded.home_store_id, excluded.tier,
                        excluded.consent_personalization, excluded.consent_personalization_at,
                        excluded.consent_marketing, excluded.consent_marketing_at, excluded.enrolled_on)"
            ))?,
            member_if_new: tx.prepare(&format!(
                "INSERT INTO members ({MEMBER_COLUMNS}) VALUES ({MEMBER_VALUES})
                 ON CONFLICT (member_id) DO NOTHING"
            ))?,
            erased: tx.prepare("SELECT erased_at IS NOT NULL FROM members WHERE member_id = ?1")?,
            card: tx.prepare(
                "INSERT INTO member_cards (card_number, member_id, status, issued_on) VALUES (?1, ?2, 'active', ?3)
                 ON CONFLICT (card_number) DO NOTHING",
            )?,
            card_owner: tx.prepare("SELECT member_id FROM member_cards WHERE card_number = ?1")?,
            basket: tx.prepare(
                "INSERT INTO baskets (basket_id, member_id, store_id, purchased_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (basket_id) DO UPDATE SET
                     member_id = excluded.member_id, store_id = excluded.store_id,
                     purchased_at = excluded.purchased_at
                 WHERE (baskets.member_id, baskets.store_id, baskets.purchased_at)
                   IS NOT (excluded.member_id, excluded.store_id, excluded.purchased_at)",
            )?,
            line: tx.prepare(
                "INSERT INTO purchase_lines (basket_id, line_no, product_id, quantity, sales_cents,
                     retail_disc_cents, coupon_disc_cents, coupon_match_disc_cents)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (basket_id, line_no) DO UPDATE SET
                     product_id = excluded.product_id, quantity = excluded.quantity,
                     sales_cents = excluded.sales_cents, retail_disc_cents = excluded.retail_disc_cents,
                     coupon_disc_cents = excluded.coupon_disc_cents,
                     coupon_match_disc_cents = excluded.coupon_match_disc_cents
                 WHERE (purchase_lines.product_id, purchase_lines.quantity, purchase_lines.sales_cents,
                        purchase_lines.retail_disc_cents, purchase_lines.coupon_disc_cents,
                        purchase_lines.coupon_match_disc_cents)
                   IS NOT (excluded.product_id, excluded.quantity, excluded.sales_cents,
                        excluded.retail_disc_cents, excluded.coupon_disc_cents,
                        excluded.coupon_match_disc_cents)",
            )?,
            tx,
        })
    }

    /// The transaction, for statements used once per import.
    pub fn tx(&self) -> &'tx Transaction<'tx> {
        self.tx
    }

    pub fn store(&mut self, report: &mut ImportReport, s: &Store<'_>) -> rusqlite::Result<()> {
        let n = self
            .store
            .execute(params![s.store_id, s.name, s.region, s.timezone])?;
        report.count("stores", n > 0);
        Ok(())
    }

    pub fn product(&mut self, report: &mut ImportReport, p: &Product<'_>) -> rusqlite::Result<()> {
        let n = self.product.execute(params![
            p.product_id,
            p.name,
            p.gtin,
            p.manufacturer_id,
            p.department,
            p.category,
            p.product_type,
            p.brand,
            p.brand_type,
            p.package_size,
            p.active
        ])?;
        report.count("products", n > 0);
        Ok(())
    }

    pub fn store_product(
        &mut self,
        report: &mut ImportReport,
        sp: &StoreProduct<'_>,
    ) -> rusqlite::Result<()> {
        let n = self.store_product.execute(params![
            sp.store_id,
            sp.product_id,
            sp.price_cents,
            sp.stock_qty,
            sp.location,
            sp.updated_at
        ])?;
        report.count("store_products", n > 0);
        Ok(())
    }

    /// Upserts a member. With `only_if_new`, an existing member is left as it is
    /// (derived identities never overwrite a profile).
    pub fn member(
        &mut self,
        report: &mut ImportReport,
        m: &Member<'_>,
        now: &str,
        only_if_new: bool,
    ) -> rusqlite::Result<MemberWrite> {
        let values = params![
            m.member_id,
            m.given_name,
            m.family_name,
            m.display_name,
            m.phone,
            m.email,
            m.home_store_id,
            m.tier,
            m.consent_personalization,
            m.consent_personalization_at,
            m.consent_marketing,
            m.consent_marketing_at,
            m.enrolled_on,
            now
        ];
        let n = if only_if_new {
            self.member_if_new.execute(values)?
        } else {
            self.member.execute(values)?
        };
        report.count("members", n > 0);
        if n > 0 {
            return Ok(MemberWrite::Written);
        }
        let erased: bool = self.erased.query_row([m.member_id], |row| row.get(0))?;
        Ok(if erased {
            MemberWrite::Erased
        } else {
            MemberWrite::Unchanged
        })
    }

    /// Attaches a card to a member. A card already held by another member is
    /// refused: the owner is returned as `Err(owner)`.
    pub fn card(
        &mut self,
        report: &mut ImportReport,
        card_number: &str,
        member_id: i64,
        issued_on: Option<&str>,
    ) -> rusqlite::Result<Result<(), i64>> {
        let n = self
            .card
            .execute(params![card_number, member_id, issued_on])?;
        if n == 0 {
            let owner: i64 = self.card_owner.query_row([card_number], |row| row.get(0))?;
            if owner != member_id {
                return Ok(Err(owner));
            }
        }
        report.count("member_cards", n > 0);
        Ok(Ok(()))
    }

    pub fn basket(
        &mut self,
        report: &mut ImportReport,
        basket_id: i64,
        member_id: Option<i64>,
        store_id: i64,
        purchased_at: &str,
    ) -> rusqlite::Result<()> {
        let n = self
            .basket
            .execute(params![basket_id, member_id, store_id, purchased_at])?;
        report.count("baskets", n > 0);
        Ok(())
    }

    pub fn line(&mut self, report: &mut ImportReport, l: &Line) -> rusqlite::Result<()> {
        let n = self.line.execute(params![
            l.basket_id,
            l.line_no,
            l.product_id,
            l.quantity,
            l.sales_cents,
            l.retail_disc_cents,
            l.coupon_disc_cents,
            l.coupon_match_disc_cents
        ])?;
        report.count("purchase_lines", n > 0);
        Ok(())
    }

    /// Sets a member's home store if it differs.
    pub fn home_store(
        &self,
        report: &mut ImportReport,
        member_id: i64,
        store_id: i64,
        now: &str,
    ) -> rusqlite::Result<()> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE members SET home_store_id = ?2, updated_at = ?3
             WHERE member_id = ?1 AND erased_at IS NULL AND home_store_id IS NOT ?2",
            )?
            .execute(params![member_id, store_id, now])?;
        report.count("members", n > 0);
        Ok(())
    }

    pub fn campaign(
        &self,
        report: &mut ImportReport,
        campaign_id: i64,
        name: &str,
        campaign_type: Option<&str>,
        starts_on: &str,
        ends_on: &str,
    ) -> rusqlite::Result<()> {
        let n = self.tx.prepare_cached(
            "INSERT INTO campaigns (campaign_id, name, campaign_type, starts_on, ends_on) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (campaign_id) DO UPDATE SET
                 name = excluded.name, campaign_type = excluded.campaign_type,
                 starts_on = excluded.starts_on, ends_on = excluded.ends_on
             WHERE (campaigns.name, campaigns.campaign_type, campaigns.starts_on, campaigns.ends_on)
               IS NOT (excluded.name, excluded.campaign_type, excluded.starts_on, excluded.ends_on)",
        )?
        .execute(params![campaign_id, name, campaign_type, starts_on, ends_on])?;
        report.count("campaigns", n > 0);
        Ok(())
    }

    pub fn campaign_target(
        &self,
        report: &mut ImportReport,
        campaign_id: i64,
        member_id: i64,
    ) -> rusqlite::Result<()> {
        let n = self.tx.prepare_cached(
            "INSERT INTO campaign_targets (campaign_id, member_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![campaign_id, member_id])?;
        report.count("campaign_targets", n > 0);
        Ok(())
    }

    /// Upserts a coupon and returns its id.
    pub fn coupon(
        &self,
        report: &mut ImportReport,
        code: &str,
        campaign_id: i64,
        description: Option<&str>,
        discount_cents: Option<i64>,
        discount_percent: Option<i64>,
    ) -> rusqlite::Result<i64> {
        let n = self.tx.prepare_cached(
            "INSERT INTO coupons (code, campaign_id, description, discount_cents, discount_percent)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (code, campaign_id) DO UPDATE SET
                 description = excluded.description, discount_cents = excluded.discount_cents,
                 discount_percent = excluded.discount_percent
             WHERE (coupons.description, coupons.discount_cents, coupons.discount_percent)
               IS NOT (excluded.description, excluded.discount_cents, excluded.discount_percent)",
        )?
        .execute(params![code, campaign_id, description, discount_cents, discount_percent])?;
        report.count("coupons", n > 0);
        self.coupon_id(code, campaign_id)
            .and_then(|id| id.ok_or(rusqlite::Error::QueryReturnedNoRows))
    }

    pub fn coupon_id(&self, code: &str, campaign_id: i64) -> rusqlite::Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        self.tx
            .prepare_cached("SELECT coupon_id FROM coupons WHERE code = ?1 AND campaign_id = ?2")?
            .query_row(params![code, campaign_id], |row| row.get(0))
            .optional()
    }

    pub fn coupon_product(
        &self,
        report: &mut ImportReport,
        coupon_id: i64,
        product_id: i64,
    ) -> rusqlite::Result<()> {
        let n = self.tx.prepare_cached(
            "INSERT INTO coupon_products (coupon_id, product_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![coupon_id, product_id])?;
        report.count("coupon_products", n > 0);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn redemption(
        &self,
        report: &mut ImportReport,
        source_key: &str,
        coupon_id: i64,
        member_id: i64,
        store_id: Option<i64>,
        redeemed_on: &str,
    ) -> rusqlite::Result<()> {
        let n = self.tx.prepare_cached(
            "INSERT INTO coupon_redemptions (coupon_id, member_id, store_id, redeemed_on, source_key)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (source_key) DO UPDATE SET
                 coupon_id = excluded.coupon_id, member_id = excluded.member_id,
                 store_id = excluded.store_id, redeemed_on = excluded.redeemed_on
             WHERE (coupon_redemptions.coupon_id, coupon_redemptions.member_id,
                    coupon_redemptions.store_id, coupon_redemptions.redeemed_on)
               IS NOT (excluded.coupon_id, excluded.member_id, excluded.store_id, excluded.redeemed_on)",
        )?
        .execute(params![coupon_id, member_id, store_id, redeemed_on, source_key])?;
        report.count("coupon_redemptions", n > 0);
        Ok(())
    }

    pub fn demographics(
        &self,
        report: &mut ImportReport,
        member_id: i64,
        values: [Option<&str>; 7],
    ) -> rusqlite::Result<()> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO member_demographics (member_id, age_band, income_band, home_ownership,
                 marital_status, household_size, household_comp, kids_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (member_id) DO UPDATE SET
                 age_band = excluded.age_band, income_band = excluded.income_band,
                 home_ownership = excluded.home_ownership, marital_status = excluded.marital_status,
                 household_size = excluded.household_size, household_comp = excluded.household_comp,
                 kids_count = excluded.kids_count
             WHERE (member_demographics.age_band, member_demographics.income_band,
                    member_demographics.home_ownership, member_demographics.marital_status,
                    member_demographics.household_size, member_demographics.household_comp,
                    member_demographics.kids_count)
               IS NOT (excluded.age_band, excluded.income_band, excluded.home_ownership,
                    excluded.marital_status, excluded.household_size, excluded.household_comp,
                    excluded.kids_count)",
            )?
            .execute(params![
                member_id, values[0], values[1], values[2], values[3], values[4], values[5],
                values[6]
            ])?;
        report.count("member_demographics", n > 0);
        Ok(())
    }

    pub fn preference(
        &self,
        report: &mut ImportReport,
        member_id: i64,
        kind: &str,
        value: &str,
    ) -> rusqlite::Result<()> {
        let n = self.tx.prepare_cached(
            "INSERT INTO member_preferences (member_id, kind, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![member_id, kind, value])?;
        report.count("member_preferences", n > 0);
        Ok(())
    }
}
