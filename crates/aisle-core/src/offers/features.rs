//! What the redemption model knows about a member before an offer: how often
//! they use coupons, how much they buy the coupon's products, how many
//! coupons they redeemed, how much they spend. One definition, computed two
//! ways that must agree: in bulk for a campaign's targets (training, the
//! evaluation, batch scoring) and from one member's history (serving).

use crate::time::Timestamp;
use std::collections::HashMap;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

/// A member's history strictly before a moment, summarized for one offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Purchase lines paid with a coupon discount (the till's coupon habit).
    pub coupon_lines: u32,
    /// Purchase lines of the offer's coupon products (affinity).
    pub affinity_lines: u32,
    /// Coupons redeemed.
    pub redemptions: u32,
    /// Spend, cents.
    pub spend_cents: i64,
}

/// The model's inputs, in the order of [`FEATURES`].
pub const FEATURES: [&str; 4] = ["coupon_lines", "affinity_lines", "redemptions", "spend"];

impl Signals {
    /// The transformed features (log of one plus each count; spend in units).
    pub fn features(&self) -> [f64; 4] {
        [
            f64::from(self.coupon_lines).ln_1p(),
            f64::from(self.affinity_lines).ln_1p(),
            f64::from(self.redemptions).ln_1p(),
            (self.spend_cents.max(0) as f64 / 100.0).ln_1p(),
        ]
    }
}

/// [`Signals`] of every member a campaign targets, from data strictly before
/// `as_of` (`YYYY-MM-DD`), ordered by member id. Members with no history get
/// zeros.
pub fn for_campaign_targets(
    conn: &Connection,
    campaign_id: i64,
    as_of: &str,
) -> rusqlite::Result<Vec<(i64, Signals)>> {
    let mut by_member: Vec<(i64, Signals)> = conn
        .prepare_cached(
            "SELECT member_id FROM campaign_targets WHERE campaign_id = ?1 ORDER BY member_id",
        )?
        .query_map([campaign_id], |row| Ok((row.get(0)?, Signals::default())))?
        .collect::<Result<_, _>>()?;
    let index: HashMap<i64, usize> = by_member
        .iter()
        .enumerate()
        .map(|(i, (member, _))| (*member, i))
        .collect();
    let mut totals = conn.prepare_cached(
        "SELECT b.member_id, count(*) FILTER (WHERE l.coupon_disc_cents <> 0), sum(l.sales_cents),
                count(*) FILTER (WHERE l.product_id IN (
                    SELECT cp.product_id FROM coupon_products cp
                    JOIN coupons c ON c.coupon_id = cp.coupon_id WHERE c.campaign_id = ?1))
         FROM campaign_targets t
         JOIN baskets b ON b.member_id = t.member_id
         JOIN purchase_lines l ON l.basket_id = b.basket_id
         WHERE t.campaign_id = ?1 AND b.purchased_at < ?2
         GROUP BY b.member_id",
    )?;
    let mut rows = totals.query(params![campaign_id, as_of])?;
    while let Some(row) = rows.next()? {
        if let Some(&i) = index.get(&row.get::<_, i64>(0)?) {
            let signals = &mut by_member[i].1;
            signals.coupon_lines = row.get(1)?;
            signals.spend_cents = row.get::<_, Option<i64>>(2)?.unwrap_or(0);
            signals.affinity_lines = row.get(3)?;
        }
    }
    let mut redeemed = conn.prepare_cached(
        "SELECT r.member_id, count(*) FROM campaign_targets t
         JOIN coupon_redemptions r ON r.member_id = t.member_id
         WHERE t.campaign_id = ?1 AND r.redeemed_on < ?2
         GROUP BY r.member_id",
    )?;
    let mut rows = redeemed.query(params![campaign_id, as_of])?;
    while let Some(row) = rows.next()? {
        if let Some(&i) = index.get(&row.get::<_, i64>(0)?) {
            by_member[i].1.redemptions = row.get(1)?;
        }
    }
    Ok(by_member)
}

/// One member's history strictly before `before` (a date or timestamp),
/// kept per product so that any offer's affinity is a sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberHistory {
    pub coupon_lines: u32,
    pub redemptions: u32,
    pub spend_cents: i64,
    /// Spend in the 90 days before `before`.
    pub recent_spend_cents: i64,
    /// Purchase lines per product.
    pub lines_by_product: HashMap<i64, u32>,
}

impl MemberHistory {
    pub fn load(conn: &Connection, member_id: i64, before: Timestamp) -> rusqlite::Result<Self> {
        let mut history = MemberHistory::default();
        let mut statement = conn.prepare_cached(
            "SELECT l.product_id, count(*), count(*) FILTER (WHERE l.coupon_disc_cents <> 0),
                    sum(l.sales_cents),
                    sum(l.sales_cents) FILTER (WHERE b.purchased_at >= date(?2, '-90 days'))
             FROM baskets b JOIN purchase_lines l ON l.basket_id = b.basket_id
             WHERE b.member_id = ?1 AND b.purchased_at < ?2
             GROUP BY l.product_id",
        )?;
        let mut rows = statement.query(params![member_id, before])?;
        while let Some(row) = rows.next()? {
            history.lines_by_product.insert(row.get(0)?, row.get(1)?);
            history.coupon_lines += row.get::<_, u32>(2)?;
            history.spend_cents += row.get::<_, Option<i64>>(3)?.unwrap_or(0);
            history.recent_spend_cents += row.get::<_, Option<i64>>(4)?.unwrap_or(0);
        }
        history.redemptions = conn
            .prepare_cached(
                "SELECT count(*) FROM coupon_redemptions WHERE member_id = ?1 AND redeemed_on < ?2",
            )?
            .query_row(params![member_id, before], |row| row.get(0))?;
        Ok(history)
    }

    /// Purchase lines of any of `products` (sorted or not).
    pub fn affinity(&self, products: &[i64]) -> u32 {
        if self.lines_by_product.is_empty() {
            return 0;
        }
        products
            .iter()
            .filter_map(|p| self.lines_by_product.get(p))
            .sum()
    }

    /// The model's signals for an offer on these products.
    pub fn signals(&self, products: &[i64]) -> Signals {
        Signals {
            coupon_lines: self.coupon_lines,
            affinity_lines: self.affinity(products),
            redemptions: self.redemptions,
            spend_cents: self.spend_cents,
        }
    }
}
