//! What a replica holds: row counts per table, schema version, file size.

use rusqlite::Connection;
use serde::Serialize;

/// Tables reported by [`stats`], in display order.
pub const TABLES: &[&str] = &[
    "stores",
    "members",
    "member_cards",
    "member_external_ids",
    "member_demographics",
    "member_preferences",
    "member_notes",
    "products",
    "store_products",
    "baskets",
    "purchase_lines",
    "campaigns",
    "campaign_targets",
    "coupons",
    "coupon_products",
    "coupon_issues",
    "coupon_redemptions",
    "audit_log",
    "outbox",
];

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub schema_version: u32,
    pub tables: Vec<(String, i64)>,
    pub first_purchase: Option<String>,
    pub last_purchase: Option<String>,
    pub erased_members: i64,
}

pub fn stats(conn: &Connection) -> rusqlite::Result<Stats> {
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })?;
        tables.push(((*table).to_owned(), n));
    }
    let (first_purchase, last_purchase) = conn.query_row(
        "SELECT min(purchased_at), max(purchased_at) FROM baskets",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(Stats {
        schema_version: crate::replica::schema_version(conn)?,
        tables,
        first_purchase,
        last_purchase,
        erased_members: conn.query_row(
            "SELECT count(*) FROM members WHERE erased_at IS NOT NULL",
            [],
            |row| row.get(0),
        )?,
    })
}
