//! What a screen shows for what was scanned: the kiosk's welcome for an
//! identified member (the first name only on a public screen, both
//! recommendation lists under the public-screen policy, the member's usable
//! coupons), a product's view with what is often bought with it, a coupon's
//! status. Pure over the replica and the clock it is given; the apps render.

use crate::time::{Day, Timestamp};
use rusqlite::Connection;
use serde::Serialize;

use rusqlite::OptionalExtension;

use crate::consent::{self, Consents};
use crate::recommend::serve::{Lists, Pick, Policy, Ranking, Request};

/// The welcome screen's data.
#[derive(Debug, Clone, Serialize)]
pub struct Welcome {
    pub member_id: i64,
    /// Given name only: never the family name, contact details or tier on a
    /// screen others can see. `None` for an erased member.
    pub first_name: Option<String>,
    pub lists: Lists,
    /// Issued to this member, not redeemed, not expired (soonest to expire
    /// first). Empty without personalization consent.
    pub coupons: Vec<WelcomeCoupon>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WelcomeCoupon {
    pub serial: String,
    pub coupon_id: i64,
    pub description: Option<String>,
    pub discount_cents: Option<i64>,
    pub discount_percent: Option<i64>,
    pub expires_at: String,
}

/// Coupons shown at most.
pub const MAX_COUPONS: usize = 3;

/// Assembles the welcome screen for `member_id` at `store_id`, at `now`
/// (`YYYY-MM-DD HH:MM:SS`, store-local), showing `k` items per list,
/// ranked by a model (`&Served`) or, without one, by the store's bestsellers.
pub fn welcome<'a>(
    conn: &Connection,
    ranking: impl Into<Ranking<'a>>,
    member_id: i64,
    store_id: i64,
    now: Timestamp,
    k: usize,
    policy: &Policy,
) -> rusqlite::Result<Welcome> {
    let (first_name, consents): (Option<String>, Consents) = conn
        .prepare_cached(&format!(
            "SELECT CASE WHEN erased_at IS NULL THEN given_name END, {}
             FROM members WHERE member_id = ?1",
            consent::COLUMNS
        ))?
        .query_row([member_id], |row| {
            Ok((row.get(0)?, consent::from_row(row, 1)?))
        })?;
    let lists = ranking.into().lists(
        conn,
        &Request {
            member_id: Some(member_id),
            store_id,
            now,
            k,
            public_screen: true,
            shown: Vec::new(),
        },
        policy,
    )?;
    let coupons = if consent::may_personalize(&consents) {
        // A coupon for a product a public screen never shows is not shown either.
        let mut shown = Vec::with_capacity(MAX_COUPONS);
        for coupon in live_coupons(conn, member_id, now, usize::MAX)? {
            if shown.len() == MAX_COUPONS {
                break;
            }
            if coupon_is_public(conn, coupon.coupon_id, policy)? {
                shown.push(coupon);
            }
        }
        shown
    } else {
        Vec::new()
    };
    Ok(Welcome {
        member_id,
        first_name,
        lists,
        coupons,
    })
}

/// Whether `coupon_id` may be shown (or issued) on a public screen: none
/// of its products is one the screen never shows.
pub fn coupon_is_public(
    conn: &Connection,
    coupon_id: i64,
    policy: &Policy,
) -> rusqlite::Result<bool> {
    let labels: Vec<String> = conn
        .prepare_cached(
            "SELECT upper(coalesce(p.department, '') || ' ' || coalesce(p.category, '') || ' ' || coalesce(p.product_type, ''))
             FROM coupon_products cp JOIN products p ON p.product_id = cp.product_id
             WHERE cp.coupon_id = ?1",
        )?
        .query_map([coupon_id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(labels.iter().all(|labels| policy.public(labels)))
}

/// The member's coupons that can still be redeemed at `now`, soonest to
/// expire first, at most `limit`.
pub fn live_coupons(
    conn: &Connection,
    member_id: i64,
    now: Timestamp,
    limit: usize,
) -> rusqlite::Result<Vec<WelcomeCoupon>> {
    conn.prepare_cached(
        "SELECT i.serial, c.description, c.discount_cents, c.discount_percent, i.expires_at,
                c.coupon_id
         FROM coupon_issues i
         JOIN coupons c ON c.coupon_id = i.coupon_id
         WHERE i.member_id = ?1 AND i.expires_at > ?2
           AND NOT EXISTS (SELECT 1 FROM coupon_redemptions r WHERE r.issue_id = i.issue_id)
         ORDER BY i.expires_at, i.serial
         LIMIT ?3",
    )?
    .query_map(
        rusqlite::params![member_id, now, i64::try_from(limit).unwrap_or(i64::MAX)],
        |row| {
            Ok(WelcomeCoupon {
                serial: row.get(0)?,
                coupon_id: row.get(5)?,
                description: row.get(1)?,
                discount_cents: row.get(2)?,
                discount_percent: row.get(3)?,
                expires_at: row.get(4)?,
            })
        },
    )?
    .collect()
}

/// A scanned product at this store.
#[derive(Debug, Clone, Serialize)]
pub struct ProductView {
    pub product_id: i64,
    pub name: String,
    pub brand: Option<String>,
    pub package_size: Option<String>,
    /// This store's price, stock and aisle, when it sells the product.
    pub price_cents: Option<i64>,
    pub in_stock: bool,
    pub location: Option<String>,
    pub bought_together: Vec<Pick>,
}

/// A scanned product's view, `None` for a product the replica does not hold
/// (nothing bought together without a model).
pub fn product_view<'a>(
    conn: &Connection,
    ranking: impl Into<Ranking<'a>>,
    product_id: i64,
    store_id: i64,
    now: Timestamp,
    k: usize,
    policy: &Policy,
) -> rusqlite::Result<Option<ProductView>> {
    let Some((name, brand, package_size)) = conn
        .prepare_cached("SELECT name, brand, package_size FROM products WHERE product_id = ?1")?
        .query_row([product_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let here: Option<(i64, i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT price_cents, stock_qty, location FROM store_products
             WHERE store_id = ?1 AND product_id = ?2",
        )?
        .query_row([store_id, product_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let request = Request {
        member_id: None,
        store_id,
        now,
        k,
        public_screen: true,
        shown: Vec::new(),
    };
    Ok(Some(ProductView {
        product_id,
        name,
        brand,
        package_size,
        price_cents: here.as_ref().map(|h| h.0),
        in_stock: here.as_ref().is_some_and(|h| h.1 > 0),
        location: here.and_then(|h| h.2),
        bought_together: ranking
            .into()
            .bought_together(conn, product_id, &request, policy)?,
    }))
}

/// Where a coupon stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponState {
    NotYetValid,
    Active,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CouponStatus {
    pub coupon_id: i64,
    pub code: String,
    pub description: Option<String>,
    pub campaign: String,
    pub starts_on: Day,
    pub ends_on: Day,
    pub state: CouponState,
    /// Redemptions recorded in this replica.
    pub redemptions: i64,
}

/// A scanned coupon's status on `today` (`YYYY-MM-DD`); `None` if unknown.
pub fn coupon_status(
    conn: &Connection,
    coupon_id: i64,
    today: Day,
) -> rusqlite::Result<Option<CouponStatus>> {
    conn.prepare_cached(
        "SELECT c.code, c.description, k.name, k.starts_on, k.ends_on,
                (SELECT count(*) FROM coupon_redemptions r WHERE r.coupon_id = c.coupon_id)
         FROM coupons c JOIN campaigns k ON k.campaign_id = c.campaign_id
         WHERE c.coupon_id = ?1",
    )?
    .query_row([coupon_id], |row| {
        let (starts_on, ends_on): (Day, Day) = (row.get(3)?, row.get(4)?);
        let state = if today < starts_on {
            CouponState::NotYetValid
        } else if today > ends_on {
            CouponState::Expired
        } else {
            CouponState::Active
        };
        Ok(CouponStatus {
            coupon_id,
            code: row.get(0)?,
            description: row.get(1)?,
            campaign: row.get(2)?,
            starts_on,
            ends_on,
            state,
            redemptions: row.get(5)?,
        })
    })
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::lit::day;

    #[test]
    fn a_coupons_state_follows_its_campaign_dates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        conn.execute_batch(
            "INSERT INTO campaigns (campaign_id, name, starts_on, ends_on) VALUES (1, 'Spring', '2026-03-01', '2026-03-31');
             INSERT INTO coupons (coupon_id, code, campaign_id, description) VALUES (5, 'SAVE5', 1, '5 off');
             INSERT INTO coupon_redemptions (coupon_id, redeemed_on) VALUES (5, '2026-03-02');",
        )
        .expect("rows");
        let state = |day| {
            coupon_status(&conn, 5, day)
                .expect("status")
                .expect("known")
                .state
        };
        assert_eq!(state(day("2026-02-28")), CouponState::NotYetValid);
        assert_eq!(state(day("2026-03-01")), CouponState::Active);
        assert_eq!(state(day("2026-03-31")), CouponState::Active);
        assert_eq!(state(day("2026-04-01")), CouponState::Expired);
        let status = coupon_status(&conn, 5, day("2026-03-15"))
            .expect("status")
            .expect("known");
        assert_eq!(
            (status.redemptions, status.campaign.as_str()),
            (1, "Spring")
        );
        assert_eq!(
            coupon_status(&conn, 6, day("2026-03-15")).expect("status"),
            None
        );
    }
}
