//! Writes into the replica, shared by every importer.
//!
//! Each table is written through an [`Upsert`]: a plain `INSERT ... ON
//! CONFLICT DO NOTHING` and, only when the row exists, an `UPDATE ... WHERE
//! (old values) IS NOT (new values)`. So a re-import writes nothing, and
//! `written` tells inserted-or-changed from already-there. (A single
//! `INSERT ... DO UPDATE` makes SQLite open a statement journal per row, which
//! measured 40% slower on the bulk of an import.) Members whose personal data
//! was erased are never rewritten by an import.

use crate::time::Timestamp;
use rusqlite::{OptionalExtension, Statement, ToSql, Transaction, params};

use super::{ImportReport, TableCounts};

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

/// An insert-or-update-if-different pair of statements for one table.
///
/// Parameters are bound in the order keys, compared values, touched values
/// (set when the row changes, never compared, e.g. `updated_at`).
struct Upsert<'tx> {
    table: &'static str,
    insert: Statement<'tx>,
    update: Option<Statement<'tx>>,
    counts: TableCounts,
}

impl<'tx> Upsert<'tx> {
    fn new(
        tx: &'tx Transaction<'tx>,
        table: &'static str,
        keys: &[&str],
        values: &[&str],
        touched: &[&str],
        guard: Option<&str>,
    ) -> rusqlite::Result<Self> {
        let all: Vec<&str> = keys.iter().chain(values).chain(touched).copied().collect();
        let placeholders: Vec<String> = (1..=all.len()).map(|n| format!("?{n}")).collect();
        let insert = tx.prepare(&format!(
            "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
            all.join(", "),
            placeholders.join(", "),
            keys.join(", ")
        ))?;
        let update = if values.is_empty() {
            None
        } else {
            let n_keys = keys.len();
            let set: Vec<String> = values
                .iter()
                .chain(touched)
                .enumerate()
                .map(|(idx, column)| format!("{column} = ?{}", n_keys + idx + 1))
                .collect();
            let mut conditions: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(idx, k)| format!("{k} = ?{}", idx + 1))
                .collect();
            conditions.extend(guard.map(str::to_owned));
            conditions.push(format!(
                "({}) IS NOT ({})",
                values.join(", "),
                (n_keys + 1..=n_keys + values.len())
                    .map(|n| format!("?{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            Some(tx.prepare(&format!(
                "UPDATE {table} SET {} WHERE {}",
                set.join(", "),
                conditions.join(" AND ")
            ))?)
        };
        Ok(Self {
            table,
            insert,
            update,
            counts: TableCounts::default(),
        })
    }

    fn count(&mut self, written: bool) -> bool {
        if written {
            self.counts.written += 1;
        } else {
            self.counts.unchanged += 1;
        }
        written
    }

    /// Inserts or updates; true when a row was written.
    fn run(&mut self, values: &[&dyn ToSql]) -> rusqlite::Result<bool> {
        let written = self.insert.execute(values)? > 0
            || match &mut self.update {
                Some(update) => update.execute(values)? > 0,
                None => false,
            };
        Ok(self.count(written))
    }

    /// Inserts only; an existing row is left as it is.
    fn insert_only(&mut self, values: &[&dyn ToSql]) -> rusqlite::Result<bool> {
        let written = self.insert.execute(values)? > 0;
        Ok(self.count(written))
    }
}

impl Writer<'_> {
    /// Rows written and unchanged per table, into `report`.
    pub fn add_counts(&self, report: &mut ImportReport) {
        let upserts = [
            &self.store,
            &self.product,
            &self.store_product,
            &self.member,
            &self.card,
            &self.basket,
            &self.line,
            &self.campaign,
            &self.campaign_target,
            &self.coupon,
            &self.coupon_product,
            &self.redemption,
            &self.demographics,
            &self.preference,
            &self.external_id,
            &self.member_key,
        ];
        for upsert in upserts {
            if upsert.counts != TableCounts::default() {
                let total = report.tables.entry(upsert.table).or_default();
                total.written += upsert.counts.written;
                total.unchanged += upsert.counts.unchanged;
            }
        }
    }
}

/// Prepared writes over one import transaction.
pub struct Writer<'tx> {
    store: Upsert<'tx>,
    product: Upsert<'tx>,
    store_product: Upsert<'tx>,
    member: Upsert<'tx>,
    erased: Statement<'tx>,
    card: Upsert<'tx>,
    card_owner: Statement<'tx>,
    basket: Upsert<'tx>,
    line: Upsert<'tx>,
    campaign: Upsert<'tx>,
    campaign_target: Upsert<'tx>,
    offer_rule: Upsert<'tx>,
    coupon: Upsert<'tx>,
    coupon_id: Statement<'tx>,
    coupon_product: Upsert<'tx>,
    redemption: Upsert<'tx>,
    demographics: Upsert<'tx>,
    preference: Upsert<'tx>,
    external_id: Upsert<'tx>,
    member_key: Upsert<'tx>,
    home_store: Statement<'tx>,
}

impl<'tx> Writer<'tx> {
    pub fn new(tx: &'tx Transaction<'tx>) -> rusqlite::Result<Self> {
        Ok(Self {
            store: Upsert::new(
                tx,
                "stores",
                &["store_id"],
                &["name", "region", "timezone"],
                &[],
                None,
            )?,
            product: Upsert::new(
                tx,
                "products",
                &["product_id"],
                &[
                    "name",
                    "gtin",
                    "manufacturer_id",
                    "department",
                    "category",
                    "product_type",
                    "brand",
                    "brand_type",
                    "package_size",
                    "active",
                ],
                &[],
                None,
            )?,
            store_product: Upsert::new(
                tx,
                "store_products",
                &["store_id", "product_id"],
                &["price_cents", "stock_qty", "location"],
                &["updated_at"],
                None,
            )?,
            member: Upsert::new(
                tx,
                "members",
                &["member_id"],
                &[
                    "given_name",
                    "family_name",
                    "display_name",
                    "phone",
                    "email",
                    "home_store_id",
                    "tier",
                    "consent_personalization",
                    "consent_personalization_at",
                    "consent_marketing",
                    "consent_marketing_at",
                    "enrolled_on",
                ],
                &["updated_at"],
                Some("erased_at IS NULL"),
            )?,
            erased: tx.prepare("SELECT erased_at IS NOT NULL FROM members WHERE member_id = ?1")?,
            card: Upsert::new(
                tx,
                "member_cards",
                &["card_number"],
                &[],
                &["member_id", "issued_on"],
                None,
            )?,
            card_owner: tx.prepare("SELECT member_id FROM member_cards WHERE card_number = ?1")?,
            basket: Upsert::new(
                tx,
                "baskets",
                &["basket_id"],
                &["member_id", "store_id", "purchased_at"],
                &[],
                None,
            )?,
            line: Upsert::new(
                tx,
                "purchase_lines",
                &["basket_id", "line_no"],
                &[
                    "product_id",
                    "quantity",
                    "sales_cents",
                    "retail_disc_cents",
                    "coupon_disc_cents",
                    "coupon_match_disc_cents",
                ],
                &[],
                None,
            )?,
            campaign: Upsert::new(
                tx,
                "campaigns",
                &["campaign_id"],
                &["name", "campaign_type", "starts_on", "ends_on"],
                &[],
                None,
            )?,
            campaign_target: Upsert::new(
                tx,
                "campaign_targets",
                &["campaign_id", "member_id"],
                &[],
                &[],
                None,
            )?,
            offer_rule: Upsert::new(
                tx,
                "offer_rules",
                &["campaign_id"],
                &[
                    "targeted_only",
                    "segment",
                    "min_tier",
                    "min_affinity",
                    "min_spend_cents",
                    "per_member_limit",
                    "per_store_daily_limit",
                    "per_store_limit",
                    "stacking_group",
                    "channels",
                    "valid_days",
                    "value_cents",
                    "cost_cents",
                ],
                &[],
                None,
            )?,
            coupon: Upsert::new(
                tx,
                "coupons",
                &["code", "campaign_id"],
                &["description", "discount_cents", "discount_percent"],
                &[],
                None,
            )?,
            coupon_id: tx
                .prepare("SELECT coupon_id FROM coupons WHERE code = ?1 AND campaign_id = ?2")?,
            coupon_product: Upsert::new(
                tx,
                "coupon_products",
                &["coupon_id", "product_id"],
                &[],
                &[],
                None,
            )?,
            redemption: Upsert::new(
                tx,
                "coupon_redemptions",
                &["source_key"],
                &["coupon_id", "member_id", "store_id", "redeemed_on"],
                &[],
                None,
            )?,
            demographics: Upsert::new(
                tx,
                "member_demographics",
                &["member_id"],
                &[
                    "age_band",
                    "income_band",
                    "home_ownership",
                    "marital_status",
                    "household_size",
                    "household_comp",
                    "kids_count",
                ],
                &[],
                None,
            )?,
            preference: Upsert::new(
                tx,
                "member_preferences",
                &["member_id", "kind", "value"],
                &[],
                &[],
                None,
            )?,
            external_id: Upsert::new(
                tx,
                "member_external_ids",
                &["source", "external_id"],
                &[],
                &["member_id"],
                None,
            )?,
            member_key: Upsert::new(
                tx,
                "member_keys",
                &["member_id", "key_id"],
                &["public_key"],
                &["created_at"],
                None,
            )?,
            home_store: tx.prepare(
                "UPDATE members SET home_store_id = ?2, updated_at = ?3
                 WHERE member_id = ?1 AND erased_at IS NULL AND home_store_id IS NOT ?2",
            )?,
        })
    }

    pub fn store(&mut self, s: &Store<'_>) -> rusqlite::Result<()> {
        self.store
            .run(params![s.store_id, s.name, s.region, s.timezone])?;
        Ok(())
    }

    pub fn product(&mut self, p: &Product<'_>) -> rusqlite::Result<()> {
        self.product.run(params![
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
        Ok(())
    }

    pub fn store_product(&mut self, sp: &StoreProduct<'_>) -> rusqlite::Result<()> {
        self.store_product.run(params![
            sp.store_id,
            sp.product_id,
            sp.price_cents,
            sp.stock_qty,
            sp.location,
            sp.updated_at
        ])?;
        Ok(())
    }

    /// Upserts a member. With `only_if_new`, an existing member is left as it is
    /// (derived identities never overwrite a profile).
    pub fn member(
        &mut self,
        m: &Member<'_>,
        now: Timestamp,
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
        let written = if only_if_new {
            self.member.insert_only(values)?
        } else {
            self.member.run(values)?
        };
        if written {
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
        card_number: &str,
        member_id: i64,
        issued_on: Option<&str>,
    ) -> rusqlite::Result<Result<(), i64>> {
        let written = self
            .card
            .insert_only(params![card_number, member_id, issued_on])?;
        if !written {
            let owner: i64 = self.card_owner.query_row([card_number], |row| row.get(0))?;
            if owner != member_id {
                return Ok(Err(owner));
            }
        }
        Ok(Ok(()))
    }

    pub fn external_id(
        &mut self,
        source: &str,
        external_id: &str,
        member_id: i64,
    ) -> rusqlite::Result<()> {
        self.external_id
            .insert_only(params![source, external_id, member_id])?;
        Ok(())
    }

    pub fn basket(
        &mut self,
        basket_id: i64,
        member_id: Option<i64>,
        store_id: i64,
        purchased_at: &str,
    ) -> rusqlite::Result<()> {
        self.basket
            .run(params![basket_id, member_id, store_id, purchased_at])?;
        Ok(())
    }

    pub fn line(&mut self, l: &Line) -> rusqlite::Result<()> {
        self.line.run(params![
            l.basket_id,
            l.line_no,
            l.product_id,
            l.quantity,
            l.sales_cents,
            l.retail_disc_cents,
            l.coupon_disc_cents,
            l.coupon_match_disc_cents
        ])?;
        Ok(())
    }

    /// Sets a member's home store if it differs.
    pub fn home_store(
        &mut self,
        member_id: i64,
        store_id: i64,
        now: Timestamp,
    ) -> rusqlite::Result<()> {
        let n = self.home_store.execute(params![member_id, store_id, now])?;
        self.member.count(n > 0);
        Ok(())
    }

    pub fn campaign(
        &mut self,
        campaign_id: i64,
        name: &str,
        campaign_type: Option<&str>,
        starts_on: &str,
        ends_on: &str,
    ) -> rusqlite::Result<()> {
        self.campaign.run(params![
            campaign_id,
            name,
            campaign_type,
            starts_on,
            ends_on
        ])?;
        Ok(())
    }

    /// A campaign's offer rules (the whole row: columns not given are the defaults).
    pub fn offer_rule(
        &mut self,
        campaign_id: i64,
        rule: &crate::offers::rules::Rule,
    ) -> rusqlite::Result<()> {
        let segment = rule.segment.as_ref().map(|(c, v)| format!("{c}={v}"));
        let channels: Vec<&str> = rule.channels.iter().map(|c| c.name()).collect();
        self.offer_rule.run(params![
            campaign_id,
            rule.targeted_only,
            segment,
            rule.min_tier,
            rule.min_affinity,
            rule.min_spend_cents,
            rule.per_member_limit,
            rule.per_store_daily_limit,
            rule.per_store_limit,
            rule.stacking_group,
            channels.join(","),
            rule.valid_days,
            rule.value_cents,
            rule.cost_cents
        ])?;
        Ok(())
    }

    pub fn campaign_target(&mut self, campaign_id: i64, member_id: i64) -> rusqlite::Result<()> {
        self.campaign_target
            .insert_only(params![campaign_id, member_id])?;
        Ok(())
    }

    /// Upserts a coupon and returns its id.
    pub fn coupon(
        &mut self,
        code: &str,
        campaign_id: i64,
        description: Option<&str>,
        discount_cents: Option<i64>,
        discount_percent: Option<i64>,
    ) -> rusqlite::Result<i64> {
        let values = params![
            code,
            campaign_id,
            description,
            discount_cents,
            discount_percent
        ];
        if description.is_none() && discount_cents.is_none() && discount_percent.is_none() {
            // A source that states none of them (Complete Journey): a coupon
            // already here keeps what the import derived for it.
            self.coupon.insert_only(values)?;
        } else {
            self.coupon.run(values)?;
        }
        self.coupon_id(code, campaign_id)?
            .ok_or(rusqlite::Error::QueryReturnedNoRows)
    }

    pub fn coupon_id(&mut self, code: &str, campaign_id: i64) -> rusqlite::Result<Option<i64>> {
        self.coupon_id
            .query_row(params![code, campaign_id], |row| row.get(0))
            .optional()
    }

    pub fn coupon_product(&mut self, coupon_id: i64, product_id: i64) -> rusqlite::Result<()> {
        self.coupon_product
            .insert_only(params![coupon_id, product_id])?;
        Ok(())
    }

    pub fn redemption(
        &mut self,
        source_key: &str,
        coupon_id: i64,
        member_id: i64,
        store_id: Option<i64>,
        redeemed_on: &str,
    ) -> rusqlite::Result<()> {
        self.redemption.run(params![
            source_key,
            coupon_id,
            member_id,
            store_id,
            redeemed_on
        ])?;
        Ok(())
    }

    pub fn demographics(
        &mut self,
        member_id: i64,
        values: [Option<&str>; 7],
    ) -> rusqlite::Result<()> {
        self.demographics.run(params![
            member_id, values[0], values[1], values[2], values[3], values[4], values[5], values[6]
        ])?;
        Ok(())
    }

    /// Gives a member an app-code public key (32 bytes); `created_at` is
    /// written only with a new or changed key. With `only_if_new`, a key
    /// already there is left as it is (derived keys never overwrite one).
    pub fn member_key(
        &mut self,
        member_id: i64,
        key_id: i64,
        public_key: &[u8; 32],
        created_at: Timestamp,
        only_if_new: bool,
    ) -> rusqlite::Result<()> {
        let values = params![member_id, key_id, public_key.as_slice(), created_at];
        if only_if_new {
            self.member_key.insert_only(values)?;
        } else {
            self.member_key.run(values)?;
        }
        Ok(())
    }

    pub fn preference(&mut self, member_id: i64, kind: &str, value: &str) -> rusqlite::Result<()> {
        self.preference
            .insert_only(params![member_id, kind, value])?;
        Ok(())
    }
}
