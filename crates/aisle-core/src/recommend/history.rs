//! Purchase histories read from the replica into compact, dense arrays: the
//! input of model fitting and of evaluation.
//!
//! Members and products get dense indices (`u32`) so models are plain vectors;
//! a basket is a day, a store and a sorted, de-duplicated item set.

use rusqlite::{Connection, params};

use crate::rng::IdMap;

/// Days since 1970-01-01 of a `YYYY-MM-DD...` text.
pub fn day_of(text: &str) -> Option<i32> {
    let year: i64 = text.get(0..4)?.parse().ok()?;
    let month: u32 = text.get(5..7)?.parse().ok()?;
    let day: u32 = text.get(8..10)?.parse().ok()?;
    Some(crate::dates::days_from_civil(year, month, day) as i32)
}

/// One shopping trip.
#[derive(Debug, Clone)]
pub struct Trip {
    pub day: i32,
    pub store_id: i64,
    /// Dense item indices, sorted, unique.
    pub items: Vec<u32>,
}

/// Every member's trips in time order, over a window of the replica.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Dense index -> product id.
    pub products: Vec<i64>,
    pub product_index: IdMap<i64, u32>,
    /// Dense index -> member id.
    pub members: Vec<i64>,
    pub member_index: IdMap<i64, u32>,
    /// Per dense member: trips in time order.
    pub trips: Vec<Vec<Trip>>,
}

impl History {
    pub fn n_items(&self) -> usize {
        self.products.len()
    }

    fn item(&mut self, product_id: i64) -> u32 {
        let next = self.products.len() as u32;
        *self.product_index.entry(product_id).or_insert_with(|| {
            self.products.push(product_id);
            next
        })
    }

    fn member(&mut self, member_id: i64) -> u32 {
        let next = self.members.len() as u32;
        *self.member_index.entry(member_id).or_insert_with(|| {
            self.members.push(member_id);
            self.trips.push(Vec::new());
            next
        })
    }

    /// Member baskets with `from <= purchased_at < until` (text timestamps).
    /// Products are indexed in first-seen order of (member, time), which is
    /// deterministic for a given replica.
    pub fn load(conn: &Connection, from: &str, until: &str) -> rusqlite::Result<Self> {
        let mut history = Self::default();
        let mut stmt = conn.prepare(
            "SELECT b.member_id, b.basket_id, b.store_id, b.purchased_at, l.product_id
             FROM baskets AS b JOIN purchase_lines AS l ON l.basket_id = b.basket_id
             WHERE b.member_id IS NOT NULL AND b.purchased_at >= ?1 AND b.purchased_at < ?2
             ORDER BY b.member_id, b.purchased_at, b.basket_id",
        )?;
        let mut rows = stmt.query(params![from, until])?;
        let mut current: Option<(i64, i64)> = None;
        while let Some(row) = rows.next()? {
            let member_id: i64 = row.get(0)?;
            let basket_id: i64 = row.get(1)?;
            let product_id: i64 = row.get(4)?;
            let item = history.item(product_id);
            let member = history.member(member_id) as usize;
            if current != Some((member_id, basket_id)) {
                current = Some((member_id, basket_id));
                let at: String = row.get(3)?;
                history.trips[member].push(Trip {
                    day: day_of(&at).unwrap_or_default(),
                    store_id: row.get(2)?,
                    items: Vec::new(),
                });
            }
            if let Some(trip) = history.trips[member].last_mut() {
                trip.items.push(item);
            }
        }
        for trips in &mut history.trips {
            for trip in trips.iter_mut() {
                trip.items.sort_unstable();
                trip.items.dedup();
            }
        }
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(day_of("2017-01-01 11:53:26"), Some(17_167));
        assert_eq!(day_of("2017-01-02"), Some(17_168));
        assert_eq!(day_of("bad"), None);
    }
}
