//! Next-basket evaluation, as in Li et al., "A Next Basket Recommendation
//! Reality Check" (ACM TOIS 2023): for every member with a basket in both the
//! training and the test window, predict the items of their first test basket.
//!
//! Metrics at K: Recall, NDCG (binary relevance), HitRate, and Recall split
//! into repeat items (bought in the training window) and explore items (never
//! bought before), each averaged over the members whose target basket has such
//! items; catalog coverage of all predictions.

use rusqlite::{Connection, params};

use super::history::{History, day_of};
use crate::rng::IdSet;

/// A window of weeks, 1-based and inclusive, counted from `origin_day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weeks {
    pub first: u32,
    pub last: u32,
}

impl Weeks {
    /// Parses `1-39` or `40`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a week range such as 1-39");
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let first: u32 = first.trim().parse().map_err(|_| bad())?;
        let last: u32 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(Self { first, last })
    }

    /// `[from, until)` as timestamps, weeks counted from `origin_day` (week 1 starts there).
    pub fn bounds(&self, origin_day: i32) -> (String, String) {
        let start = i64::from(origin_day) + 7 * i64::from(self.first - 1);
        let end = i64::from(origin_day) + 7 * i64::from(self.last);
        (
            crate::dates::date_string(start),
            crate::dates::date_string(end),
        )
    }
}

/// The day week 1 starts on. Weeks run Monday to Sunday in store-local time;
/// week 1 is the (possibly partial) week of the replica's first basket, as in
/// the Complete Journey data.
pub fn origin_day(conn: &Connection) -> rusqlite::Result<Option<i32>> {
    let first: Option<String> =
        conn.query_row("SELECT min(purchased_at) FROM baskets", [], |row| {
            row.get(0)
        })?;
    Ok(first
        .as_deref()
        .and_then(day_of)
        .map(|day| day - crate::dates::weekday(i64::from(day)) as i32))
}

/// One member to predict for.
#[derive(Debug, Clone)]
pub struct Case {
    pub member_id: i64,
    /// Dense index in the training history.
    pub member: u32,
    pub store_id: i64,
    pub day: i32,
    /// Product ids of the target basket.
    pub truth: Vec<i64>,
}

/// The first test-window basket of every member who also shopped in the training window.
pub fn cases(
    conn: &Connection,
    train: &History,
    test_from: &str,
    test_until: &str,
) -> rusqlite::Result<Vec<Case>> {
    let mut stmt = conn.prepare(
        "SELECT b.member_id, b.store_id, b.purchased_at,
                (SELECT group_concat(l.product_id) FROM purchase_lines AS l WHERE l.basket_id = b.basket_id)
         FROM baskets AS b
         WHERE b.member_id IS NOT NULL AND b.purchased_at >= ?1 AND b.purchased_at < ?2
         ORDER BY b.member_id, b.purchased_at, b.basket_id",
    )?;
    let mut rows = stmt.query(params![test_from, test_until])?;
    let mut out: Vec<Case> = Vec::new();
    while let Some(row) = rows.next()? {
        let member_id: i64 = row.get(0)?;
        if out.last().is_some_and(|c| c.member_id == member_id) {
            continue;
        }
        let Some(member) = train.member_index.get(&member_id) else {
            continue;
        };
        let at: String = row.get(2)?;
        let items: Option<String> = row.get(3)?;
        let mut truth: Vec<i64> = items
            .unwrap_or_default()
            .split(',')
            .filter_map(|t| t.parse().ok())
            .collect();
        truth.sort_unstable();
        truth.dedup();
        if truth.is_empty() {
            continue;
        }
        out.push(Case {
            member_id,
            member: *member,
            store_id: row.get(1)?,
            day: day_of(&at).unwrap_or_default(),
            truth,
        });
    }
    Ok(out)
}

/// Figures over all cases.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Metrics {
    pub k: usize,
    pub members: usize,
    pub recall: f64,
    pub ndcg: f64,
    pub hit_rate: f64,
    pub recall_repeat: f64,
    pub members_with_repeat: usize,
    pub recall_explore: f64,
    pub members_with_explore: usize,
    pub coverage: f64,
}

/// Scores `predict`'s lists (product ids, best first) against every case.
pub fn evaluate(
    cases: &[Case],
    train: &History,
    k: usize,
    mut predict: impl FnMut(&Case) -> Vec<i64>,
) -> Metrics {
    let mut metrics = Metrics {
        k,
        members: cases.len(),
        ..Metrics::default()
    };
    let mut predicted_items: IdSet<i64> = IdSet::default();
    let discount = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    for case in cases {
        let list: Vec<i64> = predict(case).into_iter().take(k).collect();
        predicted_items.extend(list.iter().copied());
        let truth: IdSet<i64> = case.truth.iter().copied().collect();
        let history: IdSet<i64> = train.trips[case.member as usize]
            .iter()
            .flat_map(|trip| trip.items.iter().map(|item| train.products[*item as usize]))
            .collect();
        let hits: Vec<bool> = list.iter().map(|p| truth.contains(p)).collect();
        let n_hits = hits.iter().filter(|h| **h).count();
        metrics.recall += n_hits as f64 / truth.len() as f64;
        metrics.hit_rate += f64::from(u8::from(n_hits > 0));
        let dcg: f64 = hits
            .iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(rank, _)| discount(rank))
            .sum();
        let ideal: f64 = (0..truth.len().min(k)).map(discount).sum();
        metrics.ndcg += dcg / ideal;
        let (repeat, explore): (Vec<i64>, Vec<i64>) =
            case.truth.iter().partition(|p| history.contains(p));
        if !repeat.is_empty() {
            metrics.members_with_repeat += 1;
            metrics.recall_repeat +=
                list.iter().filter(|p| repeat.contains(p)).count() as f64 / repeat.len() as f64;
        }
        if !explore.is_empty() {
            metrics.members_with_explore += 1;
            metrics.recall_explore +=
                list.iter().filter(|p| explore.contains(p)).count() as f64 / explore.len() as f64;
        }
    }
    let n = cases.len().max(1) as f64;
    metrics.recall /= n;
    metrics.ndcg /= n;
    metrics.hit_rate /= n;
    metrics.recall_repeat /= metrics.members_with_repeat.max(1) as f64;
    metrics.recall_explore /= metrics.members_with_explore.max(1) as f64;
    metrics.coverage = predicted_items.len() as f64 / train.n_items().max(1) as f64;
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn week_ranges() {
        assert_eq!(Weeks::parse("1-39"), Ok(Weeks { first: 1, last: 39 }));
        assert_eq!(
            Weeks::parse("40"),
            Ok(Weeks {
                first: 40,
                last: 40
            })
        );
        assert!(Weeks::parse("39-1").is_err());
        assert!(Weeks::parse("0-3").is_err());
        // Complete Journey: week 1 is the partial week of Sunday 2017-01-01, week 2 starts Monday 2017-01-02.
        let origin = day_of("2016-12-26").expect("day");
        assert_eq!(
            Weeks { first: 1, last: 39 }.bounds(origin),
            ("2016-12-26".to_owned(), "2017-09-25".to_owned())
        );
        assert_eq!(
            Weeks {
                first: 40,
                last: 44
            }
            .bounds(origin),
            ("2017-09-25".to_owned(), "2017-10-30".to_owned())
        );
    }

    #[test]
    fn metrics_by_hand() {
        let train = History {
            products: vec![1, 2, 3],
            trips: vec![vec![super::super::history::Trip {
                day: 0,
                store_id: 1,
                items: vec![0, 1],
            }]],
            ..History::default()
        };
        let case = Case {
            member_id: 9,
            member: 0,
            store_id: 1,
            day: 10,
            truth: vec![1, 3, 7],
        };
        // Predict 3 (explore hit, rank 1), 2 (miss), 1 (repeat hit, rank 3).
        let m = evaluate(&[case], &train, 10, |_| vec![3, 2, 1]);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let ideal = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((m.ndcg - dcg / ideal).abs() < 1e-12);
        assert_eq!(m.hit_rate, 1.0);
        assert_eq!(m.recall_repeat, 1.0);
        assert!((m.recall_explore - 0.5).abs() < 1e-12);
        assert!((m.coverage - 1.0).abs() < 1e-12);
    }
}
