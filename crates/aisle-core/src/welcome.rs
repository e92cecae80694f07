//! What the kiosk's welcome screen shows once a member is identified: the
//! first name only (a public screen), both recommendation lists under the
//! public-screen policy, and the member's usable coupons. One function, pure
//! over the replica and the clock it is given; the kiosk renders it.

use rusqlite::Connection;
use serde::Serialize;

use crate::recommend::serve::{self, Lists, Policy, Request, Served};

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
    pub description: Option<String>,
    pub discount_cents: Option<i64>,
    pub discount_percent: Option<i64>,
    pub expires_at: String,
}

/// Coupons shown at most.
pub const MAX_COUPONS: usize = 3;

/// Assembles the welcome screen for `member_id` at `store_id`, at `now`
/// (`YYYY-MM-DD HH:MM:SS`, store-local), showing `k` items per list.
pub fn welcome(
    conn: &Connection,
    served: &Served,
    member_id: i64,
    store_id: i64,
    now: &str,
    k: usize,
    policy: &Policy,
) -> rusqlite::Result<Welcome> {
    let (first_name, consent): (Option<String>, bool) = conn
        .prepare_cached(
            "SELECT CASE WHEN erased_at IS NULL THEN given_name END,
                    consent_personalization = 1 AND erased_at IS NULL
             FROM members WHERE member_id = ?1",
        )?
        .query_row([member_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let lists = serve::recommend(
        conn,
        served,
        &Request {
            member_id: Some(member_id),
            store_id,
            now: now.to_owned(),
            k,
            public_screen: true,
            shown: Vec::new(),
        },
        policy,
    )?;
    let coupons = if consent {
        conn.prepare_cached(
            "SELECT i.serial, c.description, c.discount_cents, c.discount_percent, i.expires_at
             FROM coupon_issues i
             JOIN coupons c ON c.coupon_id = i.coupon_id
             WHERE i.member_id = ?1 AND i.expires_at > ?2
               AND NOT EXISTS (SELECT 1 FROM coupon_redemptions r WHERE r.issue_id = i.issue_id)
             ORDER BY i.expires_at, i.serial
             LIMIT ?3",
        )?
        .query_map(
            rusqlite::params![member_id, now, MAX_COUPONS as i64],
            |row| {
                Ok(WelcomeCoupon {
                    serial: row.get(0)?,
                    description: row.get(1)?,
                    discount_cents: row.get(2)?,
                    discount_percent: row.get(3)?,
                    expires_at: row.get(4)?,
                })
            },
        )?
        .collect::<Result<_, _>>()?
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
