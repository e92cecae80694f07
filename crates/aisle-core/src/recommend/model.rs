//! The recommendation model: what is fitted from purchases, and how it scores.
//!
//! Two calibrated rankers estimate P(item in the member's next basket):
//! - **repeat** (items the member has bought): time-decayed personal frequency
//!   (TIFU-KNN's group decay), the share of their trips holding the item,
//!   recency, and how *due* the item is (days since last purchase against the
//!   member's own interval for it), plus how popular it is here and now;
//! - **explore** (items new to the member): co-purchase similarity to what
//!   they buy (item-item, cosine over baskets, top neighbours kept), store and
//!   recent popularity, and their affinity for the item's kind (product
//!   type: a member who buys yogurt every week is a likely buyer of a popular
//!   yogurt they have not tried, a substitute that co-purchase never shows).
//!
//! Both use "shopper neighbours" too: items found among the staples of the
//! same shoppers (TIFU-KNN's collaborative part, kept per item so the
//! artifact does not carry every member's vector).
//!
//! Each ranker is the mean of a logistic regression and boosted trees
//! ([`super::trees`]) over those features, fitted on a validation split
//! *inside* the training window (history up to five weeks before its end,
//! labels from the first basket after), so nothing is tuned on test data.
//! Their probabilities are comparable, so the blended list the kiosk shows is
//! simply the most probable items of either kind.

use super::history::{History, Trip};
use super::trees::{BoostOptions, Forest};
use crate::rng::{IdMap, IdSet};

/// Which list to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Blended,
    BuyAgain,
    Discover,
}

impl List {
    pub fn name(self) -> &'static str {
        match self {
            List::Blended => "blended",
            List::BuyAgain => "buy-again",
            List::Discover => "discover",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "blended" => Some(List::Blended),
            "buy-again" => Some(List::BuyAgain),
            "discover" => Some(List::Discover),
            _ => None,
        }
    }
}

/// Knobs of fitting.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// TIFU-style group decay per trip (older trips weigh `decay^age`).
    pub decay: f64,
    /// Neighbours kept per item.
    pub neighbors: usize,
    /// Length of each validation window at the end of the training window, in days.
    pub validation_days: i32,
    /// How many validation windows, back to back from the end of the training window.
    pub validation_splits: usize,
    /// Explore candidates per member.
    pub explore_candidates: usize,
    /// Members whose histories train the rankers, at most (a seeded sample
    /// beyond that: a million members teach no more than tens of thousands).
    pub max_training_members: usize,
    /// The rankers fitted for repeat and for explore candidates.
    pub repeat_ranker: RankerKind,
    pub explore_ranker: RankerKind,
    /// Recent popularity window, in days.
    pub recent_days: i32,
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            decay: 0.9,
            neighbors: 50,
            validation_days: 35,
            validation_splits: 1,
            max_training_members: 25_000,
            // Measured on Complete Journey weeks 1-39 (docs/BENCHMARKS.md): the mean of a
            // logistic regression and boosted trees ranks repeat items best.
            repeat_ranker: RankerKind::Both,
            explore_ranker: RankerKind::Both,
            explore_candidates: 150,
            recent_days: 28,
            seed: 1,
        }
    }
}

const N_REPEAT: usize = 28;
/// A member's items that define them for the shopper-neighbour signal.
const STAPLES: usize = 40;
const N_EXPLORE: usize = 16;

/// Which ranker to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankerKind {
    Logistic,
    Forest,
    Both,
}

/// A fitted ranker: P(item in the next basket | features).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Ranker {
    Logistic(Logistic),
    Forest(Forest),
    /// The mean probability of both.
    Both(Logistic, Forest),
}

impl Default for Ranker {
    fn default() -> Self {
        Ranker::Logistic(Logistic::default())
    }
}

impl Ranker {
    pub fn probability(&self, x: &[f64]) -> f64 {
        match self {
            Ranker::Logistic(model) => model.probability(x),
            Ranker::Forest(model) => model.probability(x),
            Ranker::Both(linear, forest) => (linear.probability(x) + forest.probability(x)) / 2.0,
        }
    }

    fn fit(rows: &[Vec<f64>], labels: &[bool], kind: RankerKind) -> Self {
        match kind {
            RankerKind::Forest => {
                Ranker::Forest(Forest::fit(rows, labels, &BoostOptions::default()))
            }
            RankerKind::Both => Ranker::Both(
                Logistic::fit(rows, labels, 300),
                Forest::fit(rows, labels, &BoostOptions::default()),
            ),
            RankerKind::Logistic => Ranker::Logistic(Logistic::fit(rows, labels, 300)),
        }
    }
}

/// A logistic regression with its input standardisation.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Logistic {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Logistic {
    /// The log-odds.
    pub fn margin(&self, x: &[f64]) -> f64 {
        self.bias
            + x.iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((v, m), s), w)| (v - m) / s * w)
                .sum::<f64>()
    }

    pub fn probability(&self, x: &[f64]) -> f64 {
        1.0 / (1.0 + (-self.margin(x)).exp())
    }

    /// Full-batch Adam on the log loss with a small L2 penalty; deterministic.
    pub fn fit(rows: &[Vec<f64>], labels: &[bool], epochs: usize) -> Self {
        let n_features = rows.first().map_or(0, Vec::len);
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0; n_features];
        let mut scale = vec![0.0; n_features];
        for row in rows {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / n;
            }
        }
        for row in rows {
            for ((s, v), m) in scale.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m) / n;
            }
        }
        for s in &mut scale {
            *s = s.sqrt().max(1e-9);
        }
        let standard: Vec<Vec<f64>> = rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&mean)
                    .zip(&scale)
                    .map(|((v, m), s)| (v - m) / s)
                    .collect()
            })
            .collect();
        let mut weights = vec![0.0; n_features + 1];
        let positives = labels.iter().filter(|l| **l).count() as f64;
        let rate_of_positives = (positives / n).clamp(1e-9, 1.0 - 1e-9);
        weights[n_features] = (rate_of_positives / (1.0 - rate_of_positives)).ln();
        let (mut first, mut second) = (vec![0.0; n_features + 1], vec![0.0; n_features + 1]);
        let (beta1, beta2, rate, l2) = (0.9, 0.999, 0.05, 1e-4);
        for epoch in 1..=epochs {
            let mut gradient = vec![0.0; n_features + 1];
            for (x, y) in standard.iter().zip(labels) {
                let z: f64 =
                    weights[n_features] + x.iter().zip(&weights).map(|(a, b)| a * b).sum::<f64>();
                let error = 1.0 / (1.0 + (-z).exp()) - f64::from(u8::from(*y));
                for (g, v) in gradient.iter_mut().zip(x) {
                    *g += error * v / n;
                }
                gradient[n_features] += error / n;
            }
            for idx in 0..n_features {
                gradient[idx] += l2 * weights[idx];
            }
            for idx in 0..=n_features {
                first[idx] = beta1 * first[idx] + (1.0 - beta1) * gradient[idx];
                second[idx] = beta2 * second[idx] + (1.0 - beta2) * gradient[idx] * gradient[idx];
                let m_hat = first[idx] / (1.0 - beta1.powi(epoch as i32));
                let v_hat = second[idx] / (1.0 - beta2.powi(epoch as i32));
                weights[idx] -= rate * m_hat / (v_hat.sqrt() + 1e-8);
            }
        }
        let bias = weights.pop().unwrap_or_default();
        Self {
            mean,
            scale,
            weights,
            bias,
        }
    }
}

/// What one member's trips say about each item they bought.
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemStat {
    pub trips: u32,
    pub decayed: f64,
    /// The same with a short (0.7 per trip) and a long (0.98) memory.
    pub short: f64,
    pub long: f64,
    /// Trips holding it among the member's last five.
    pub last_five: u32,
    pub first_day: i32,
    pub last_day: i32,
    /// Days between the last two purchases (0 if bought once).
    pub last_gap: i32,
}

/// Per-item statistics of one member's trips (in time order).
pub fn member_stats(trips: &[Trip], decay: f64) -> IdMap<u32, ItemStat> {
    let mut stats: IdMap<u32, ItemStat> = IdMap::default();
    let n = trips.len();
    for (idx, trip) in trips.iter().enumerate() {
        let age = (n - 1 - idx) as i32;
        let weight = decay.powi(age);
        for item in &trip.items {
            let stat = stats.entry(*item).or_insert(ItemStat {
                first_day: trip.day,
                last_day: trip.day,
                ..ItemStat::default()
            });
            if stat.trips > 0 {
                stat.last_gap = trip.day - stat.last_day;
            }
            stat.trips += 1;
            stat.decayed += weight;
            stat.short += 0.7f64.powi(age);
            stat.long += 0.98f64.powi(age);
            stat.last_five += u32::from(age < 5);
            stat.last_day = trip.day;
        }
    }
    stats
}

/// What a member's trips say about them as a shopper.
#[derive(Debug, Clone, Copy)]
pub struct MemberSummary {
    pub n_trips: usize,
    /// Mean days between trips.
    pub mean_gap: f64,
    pub since_last_trip: f64,
    /// Mean distinct items per trip.
    pub mean_basket: f64,
    /// ln(1 + distinct items ever bought).
    pub distinct_items: f64,
    pub last_trip_day: i32,
}

impl MemberSummary {
    pub fn of(trips: &[Trip], distinct_items: usize, now: i32) -> Self {
        let n = trips.len();
        let (first, last) = (
            trips.first().map_or(now, |t| t.day),
            trips.last().map_or(now, |t| t.day),
        );
        Self {
            n_trips: n,
            mean_gap: if n >= 2 {
                f64::from(last - first) / (n - 1) as f64
            } else {
                30.0
            },
            since_last_trip: f64::from((now - last).max(0)),
            mean_basket: trips.iter().map(|t| t.items.len()).sum::<usize>() as f64
                / n.max(1) as f64,
            distinct_items: (1.0 + distinct_items as f64).ln(),
            last_trip_day: last,
        }
    }
}

/// The fitted model (the artifact's payload).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Model {
    pub decay: f64,
    pub as_of_day: i32,
    pub recent_days: i32,
    pub explore_candidates: usize,
    /// Dense item index -> product id.
    pub products: Vec<i64>,
    /// Kind (product type, else category, else department) index per item, and kind names.
    pub item_kind: Vec<u16>,
    pub kinds: Vec<String>,
    /// Per kind: its most popular items, most first.
    pub kind_top: Vec<Vec<u32>>,
    /// The item's share of its kind's purchases.
    pub kind_share: Vec<f32>,
    /// ln(1 + baskets holding the item), over all training weeks and the recent ones.
    pub popularity: Vec<f32>,
    pub recent_popularity: Vec<f32>,
    /// Items by popularity, most first.
    pub popular: Vec<u32>,
    /// Per store: (item, share of the store's baskets holding it), top items only.
    pub store_popularity: Vec<(i64, Vec<(u32, f32)>)>,
    /// Per item: its most similar items (cosine over baskets), best first.
    pub neighbors: Neighbors,
    /// Per item: items most often among the same shoppers' staples (cosine over
    /// members), best first: the collaborative signal of TIFU-KNN's neighbours,
    /// without keeping every member's vector in the artifact.
    pub shopper_neighbors: Neighbors,
    /// Per item, over all members who bought it: the share who bought it on
    /// two trips or more, their mean days between purchases, and how many
    /// bought it for the first time in the recent window (ln 1+n).
    pub repeat_rate: Vec<f32>,
    pub repeat_interval: Vec<f32>,
    pub new_buyers: Vec<f32>,
    pub repeat: Ranker,
    pub explore: Ranker,
}

/// Every item's neighbour list in three flat arrays (compressed sparse
/// rows): item `i`'s neighbours are `items[starts[i]..starts[i + 1]]`, best
/// first, with their similarities at the same places. One allocation per
/// array instead of one per item: a model of 100 k products decodes to
/// 49 MB instead of 55, and nothing is left scattered on the heap when a
/// newer model replaces it. No arrays at all means no lists.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Neighbors {
    starts: Vec<u32>,
    items: Vec<u32>,
    similarity: Vec<f32>,
}

impl Neighbors {
    /// From one list per item (best first).
    pub fn from_lists(lists: &[Vec<(u32, f32)>]) -> Self {
        let total: usize = lists.iter().map(Vec::len).sum();
        let mut out = Neighbors {
            starts: Vec::with_capacity(lists.len() + 1),
            items: Vec::with_capacity(total),
            similarity: Vec::with_capacity(total),
        };
        out.starts.push(0);
        for list in lists {
            for (item, similarity) in list {
                out.items.push(*item);
                out.similarity.push(*similarity);
            }
            out.starts
                .push(u32::try_from(out.items.len()).unwrap_or(u32::MAX));
        }
        out
    }

    /// `item`'s neighbours and their similarities, best first (none for an
    /// item the lists do not cover).
    pub fn of(&self, item: u32) -> impl Iterator<Item = (u32, f32)> + '_ {
        let idx = item as usize;
        let range = match (self.starts.get(idx), self.starts.get(idx + 1)) {
            (Some(&from), Some(&to)) => from as usize..to as usize,
            _ => 0..0,
        };
        self.items[range.clone()]
            .iter()
            .copied()
            .zip(self.similarity[range].iter().copied())
    }

    /// How many items have a list.
    pub fn n_items(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Neighbours in all lists.
    pub fn n_entries(&self) -> usize {
        self.items.len()
    }

    /// The arrays agree with each other and name only items below `n_items`.
    fn check(&self, n_items: usize) -> Result<(), String> {
        if self.starts.is_empty() && self.items.is_empty() && self.similarity.is_empty() {
            return Ok(());
        }
        if self.starts.len() != n_items + 1 || self.starts.first() != Some(&0) {
            return Err(format!(
                "{} list starts for {n_items} items",
                self.starts.len()
            ));
        }
        if self.starts.windows(2).any(|w| w[0] > w[1])
            || self.starts.last().map(|&last| last as usize) != Some(self.items.len())
            || self.similarity.len() != self.items.len()
        {
            return Err("list starts out of order or past the end".to_owned());
        }
        match self.items.iter().find(|&&item| item as usize >= n_items) {
            Some(item) => Err(format!("neighbour {item} of {n_items} items")),
            None => Ok(()),
        }
    }
}

/// Fitting inputs beside the history: each product's kind (product type, else category, else department).
pub fn kinds_of(
    conn: &rusqlite::Connection,
    products: &[i64],
) -> rusqlite::Result<Vec<Option<String>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT coalesce(product_type, category, department) FROM products WHERE product_id = ?1",
    )?;
    products
        .iter()
        .map(|id| {
            use rusqlite::OptionalExtension;
            Ok(stmt
                .query_row([id], |row| row.get::<_, Option<String>>(0))
                .optional()?
                .flatten())
        })
        .collect()
}

struct Catalog {
    item_kind: Vec<u16>,
    kinds: Vec<String>,
}

fn catalog(kind_names: &[Option<String>]) -> Catalog {
    let mut kinds: Vec<String> = Vec::new();
    let mut index: std::collections::BTreeMap<String, u16> = std::collections::BTreeMap::new();
    let item_kind = kind_names
        .iter()
        .map(|name| {
            let name = name.clone().unwrap_or_else(|| "OTHER".to_owned());
            *index.entry(name.clone()).or_insert_with(|| {
                kinds.push(name);
                (kinds.len() - 1).min(usize::from(u16::MAX)) as u16
            })
        })
        .collect();
    Catalog { item_kind, kinds }
}

/// Top `keep` neighbours per item by cosine from co-occurrence `pairs`
/// (`a << 32 | b`, a < b) over per-item `counts`, ignoring pairs seen fewer than `min_together` times.
fn cosine_neighbors(
    mut pairs: Vec<u64>,
    counts: &[u32],
    min_together: usize,
    keep: usize,
) -> Vec<Vec<(u32, f32)>> {
    pairs.sort_unstable();
    let mut neighbors: Vec<Vec<(u32, f32)>> = vec![Vec::new(); counts.len()];
    let mut idx = 0;
    while idx < pairs.len() {
        let pair = pairs[idx];
        let mut end = idx + 1;
        while end < pairs.len() && pairs[end] == pair {
            end += 1;
        }
        let (a, b) = ((pair >> 32) as u32, (pair & 0xffff_ffff) as u32);
        if end - idx >= min_together {
            let cosine = (end - idx) as f64
                / (f64::from(counts[a as usize]) * f64::from(counts[b as usize])).sqrt();
            neighbors[a as usize].push((b, cosine as f32));
            neighbors[b as usize].push((a, cosine as f32));
        }
        idx = end;
    }
    for list in &mut neighbors {
        list.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        list.truncate(keep);
    }
    neighbors
}

/// Statistics that do not depend on the rankers: popularity, store
/// popularity, neighbours. Fitted from `trips` with days < `as_of_day`.
fn statistics(train: &History, as_of_day: i32, options: &FitOptions, catalog: Catalog) -> Model {
    let n_items = train.n_items();
    let mut counts = vec![0u32; n_items];
    let mut recent = vec![0u32; n_items];
    let mut per_store: IdMap<i64, (u32, IdMap<u32, u32>)> = IdMap::default();
    let mut pairs: Vec<u64> = Vec::new();
    for trips in &train.trips {
        for trip in trips.iter().filter(|t| t.day < as_of_day) {
            let store = per_store.entry(trip.store_id).or_default();
            store.0 += 1;
            for item in &trip.items {
                counts[*item as usize] += 1;
                if trip.day >= as_of_day - options.recent_days {
                    recent[*item as usize] += 1;
                }
                *store.1.entry(*item).or_default() += 1;
            }
            // Co-purchases within a basket (capped, so a huge basket cannot dominate).
            let items = &trip.items[..trip.items.len().min(40)];
            for (a_idx, a) in items.iter().enumerate() {
                for b in &items[a_idx + 1..] {
                    pairs.push(u64::from(*a) << 32 | u64::from(*b));
                }
            }
        }
    }
    let mut buyers = vec![0u32; n_items];
    let mut repeaters = vec![0u32; n_items];
    let mut interval_sum = vec![0.0f64; n_items];
    let mut new_buyers = vec![0u32; n_items];
    let mut staple_pairs: Vec<u64> = Vec::new();
    for trips in &train.trips {
        let end = trips.partition_point(|t| t.day < as_of_day);
        let stats = member_stats(&trips[..end], options.decay);
        let mut staples: Vec<(u32, f64)> = stats.iter().map(|(i, s)| (*i, s.decayed)).collect();
        staples.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        staples.truncate(STAPLES);
        let mut items: Vec<u32> = staples.into_iter().map(|(i, _)| i).collect();
        items.sort_unstable();
        for (a_idx, a) in items.iter().enumerate() {
            for b in &items[a_idx + 1..] {
                staple_pairs.push(u64::from(*a) << 32 | u64::from(*b));
            }
        }
        for (item, stat) in stats {
            let item = item as usize;
            buyers[item] += 1;
            if stat.trips >= 2 {
                repeaters[item] += 1;
                interval_sum[item] +=
                    f64::from(stat.last_day - stat.first_day) / f64::from(stat.trips - 1);
            }
            if stat.first_day >= as_of_day - options.recent_days {
                new_buyers[item] += 1;
            }
        }
    }
    let shopper_neighbors = Neighbors::from_lists(&cosine_neighbors(
        staple_pairs,
        &buyers,
        3,
        options.neighbors,
    ));
    let neighbors = Neighbors::from_lists(&cosine_neighbors(pairs, &counts, 2, options.neighbors));
    let mut popular: Vec<u32> = (0..n_items as u32).collect();
    popular.sort_by_key(|item| (std::cmp::Reverse(counts[*item as usize]), *item));
    let mut kind_top: Vec<Vec<u32>> = vec![Vec::new(); catalog.kinds.len()];
    let mut kind_total = vec![0u64; catalog.kinds.len()];
    for item in &popular {
        let kind = catalog.item_kind[*item as usize] as usize;
        kind_total[kind] += u64::from(counts[*item as usize]);
        if kind_top[kind].len() < 20 && counts[*item as usize] > 0 {
            kind_top[kind].push(*item);
        }
    }
    let kind_share: Vec<f32> = (0..n_items)
        .map(|item| {
            let total = kind_total[catalog.item_kind[item] as usize].max(1);
            (f64::from(counts[item]) / total as f64) as f32
        })
        .collect();
    let mut store_popularity: Vec<(i64, Vec<(u32, f32)>)> = per_store
        .into_iter()
        .map(|(store_id, (n_baskets, items))| {
            let mut top: Vec<(u32, f32)> = items
                .into_iter()
                .map(|(item, n)| (item, n as f32 / n_baskets.max(1) as f32))
                .collect();
            top.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
            top.truncate(1000);
            (store_id, top)
        })
        .collect();
    store_popularity.sort_by_key(|(store_id, _)| *store_id);
    Model {
        decay: options.decay,
        as_of_day,
        recent_days: options.recent_days,
        explore_candidates: options.explore_candidates,
        products: train.products.clone(),
        kind_top,
        kind_share,
        item_kind: catalog.item_kind,
        kinds: catalog.kinds,
        popularity: counts
            .iter()
            .map(|c| (1.0 + f64::from(*c)).ln() as f32)
            .collect(),
        recent_popularity: recent
            .iter()
            .map(|c| (1.0 + f64::from(*c)).ln() as f32)
            .collect(),
        popular,
        store_popularity,
        neighbors,
        shopper_neighbors,
        repeat_rate: buyers
            .iter()
            .zip(&repeaters)
            .map(|(b, r)| ((f64::from(*r) + 0.1) / (f64::from(*b) + 1.0)) as f32)
            .collect(),
        repeat_interval: repeaters
            .iter()
            .zip(&interval_sum)
            .map(|(r, sum)| {
                if *r > 0 {
                    (sum / f64::from(*r)) as f32
                } else {
                    0.0
                }
            })
            .collect(),
        new_buyers: new_buyers
            .iter()
            .map(|n| (1.0 + f64::from(*n)).ln() as f32)
            .collect(),
        repeat: Ranker::default(),
        explore: Ranker::default(),
    }
}

/// Repeat and explore candidates of one member with their feature rows.
type Candidates = (Vec<(u32, [f64; N_REPEAT])>, Vec<(u32, [f64; N_EXPLORE])>);

/// One scored candidate.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    pub item: u32,
    pub probability: f64,
    pub repeat: bool,
}

impl Model {
    /// Whether the model holds together: every per-item array covers every
    /// item and every item or kind it names exists. An artifact that does
    /// not is refused when read (serving would index past the arrays).
    pub fn check(&self) -> Result<(), String> {
        let n = self.products.len();
        for (name, len) in [
            ("item kinds", self.item_kind.len()),
            ("kind shares", self.kind_share.len()),
            ("popularity", self.popularity.len()),
            ("recent popularity", self.recent_popularity.len()),
            ("repeat rates", self.repeat_rate.len()),
            ("repeat intervals", self.repeat_interval.len()),
            ("new buyers", self.new_buyers.len()),
        ] {
            if len != n {
                return Err(format!("{len} {name} for {n} products"));
            }
        }
        if self.kind_top.len() != self.kinds.len()
            || self
                .item_kind
                .iter()
                .any(|k| usize::from(*k) >= self.kinds.len())
        {
            return Err(format!("item kinds beyond the {} kinds", self.kinds.len()));
        }
        let named = self
            .popular
            .iter()
            .chain(self.kind_top.iter().flatten())
            .chain(
                self.store_popularity
                    .iter()
                    .flat_map(|(_, top)| top.iter().map(|(i, _)| i)),
            );
        if let Some(item) = named.into_iter().find(|&&item| item as usize >= n) {
            return Err(format!("item {item} of {n} products"));
        }
        self.neighbors
            .check(n)
            .map_err(|e| format!("neighbours: {e}"))?;
        self.shopper_neighbors
            .check(n)
            .map_err(|e| format!("shoppers' neighbours: {e}"))
    }

    fn store_shares(&self, store_id: i64) -> Option<&[(u32, f32)]> {
        self.store_popularity
            .binary_search_by_key(&store_id, |(id, _)| *id)
            .ok()
            .map(|idx| self.store_popularity[idx].1.as_slice())
    }

    /// Repeat features of `item` for a member, as of `now`.
    fn repeat_features(
        &self,
        stat: &ItemStat,
        member: &MemberSummary,
        now: i32,
        store_share: f64,
        item: u32,
    ) -> [f64; N_REPEAT - 6] {
        let n = member.n_trips.max(1) as f64;
        let since_last = f64::from((now - stat.last_day).max(0));
        let own_interval = if stat.trips >= 2 {
            f64::from(stat.last_day - stat.first_day) / f64::from(stat.trips - 1)
        } else {
            0.0
        };
        let global_interval = f64::from(self.repeat_interval[item as usize]);
        let interval = if own_interval > 0.0 {
            own_interval
        } else {
            global_interval
        };
        let due = if interval > 0.0 {
            let ratio = (since_last + 1.0) / (interval + 1.0);
            (-(ratio.ln()).powi(2)).exp()
        } else {
            0.0
        };
        let decay_norm = (1.0 - self.decay.powi(member.n_trips as i32)) / (1.0 - self.decay);
        [
            f64::from(stat.trips) / n,
            stat.decayed / decay_norm.max(1e-9),
            (1.0 + f64::from(stat.trips)).ln(),
            since_last,
            due,
            (own_interval + 1.0).ln(),
            n.ln(),
            f64::from(self.popularity[item as usize]),
            f64::from(self.recent_popularity[item as usize]),
            (store_share * 100.0 + 1.0).ln(),
            f64::from(self.repeat_rate[item as usize]),
            (global_interval + 1.0).ln(),
            member.mean_gap,
            member.since_last_trip,
            member.mean_basket,
            since_last / (member.mean_gap + 1.0),
            f64::from(now - stat.first_day),
            stat.short / ((1.0 - 0.7f64.powi(member.n_trips as i32)) / 0.3),
            stat.long / ((1.0 - 0.98f64.powi(member.n_trips as i32)) / 0.02),
            f64::from(stat.last_five) / n.min(5.0),
            f64::from(u8::from(stat.last_day == member.last_trip_day)),
            (f64::from(stat.last_gap) + 1.0).ln(),
        ]
    }

    fn explore_features(
        &self,
        knn: f64,
        store_share: f64,
        item: u32,
        member: &MemberSummary,
    ) -> [f64; N_EXPLORE - 6] {
        [
            (1.0 + knn).ln(),
            knn / member.n_trips.max(1) as f64,
            f64::from(self.popularity[item as usize]),
            f64::from(self.recent_popularity[item as usize]),
            (store_share * 100.0 + 1.0).ln(),
            (member.n_trips.max(1) as f64).ln(),
            f64::from(self.new_buyers[item as usize]),
            f64::from(self.repeat_rate[item as usize]),
            member.mean_basket,
            member.distinct_items,
        ]
    }

    /// Per kind: (trips holding it, decayed weight, last day) over a member's trips.
    pub fn kind_stats(&self, trips: &[Trip]) -> IdMap<u16, ItemStat> {
        let kind_trips: Vec<Trip> = trips
            .iter()
            .map(|trip| {
                let mut kinds: Vec<u32> = trip
                    .items
                    .iter()
                    .map(|i| u32::from(self.item_kind[*i as usize]))
                    .collect();
                kinds.sort_unstable();
                kinds.dedup();
                Trip {
                    day: trip.day,
                    store_id: trip.store_id,
                    items: kinds,
                }
            })
            .collect();
        member_stats(&kind_trips, self.decay)
            .into_iter()
            .map(|(kind, stat)| (kind as u16, stat))
            .collect()
    }

    /// Candidates with their feature rows for one member, as of `now` at `store_id`.
    fn candidates(
        &self,
        trips: &[Trip],
        stats: &IdMap<u32, ItemStat>,
        store_id: i64,
        now: i32,
    ) -> Candidates {
        let kinds = self.kind_stats(trips);
        let member = MemberSummary::of(trips, stats.len(), now);
        let decay_norm =
            ((1.0 - self.decay.powi(member.n_trips as i32)) / (1.0 - self.decay)).max(1e-9);
        let kind_of = |item: u32| {
            kinds
                .get(&self.item_kind[item as usize])
                .copied()
                .unwrap_or_default()
        };
        let shares: IdMap<u32, f32> = self
            .store_shares(store_id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let share = |item: u32| f64::from(shares.get(&item).copied().unwrap_or(0.0));
        // "Shoppers who buy what you buy also buy": over the member's staples.
        let mut staples: Vec<(u32, f64)> = stats.iter().map(|(i, s)| (*i, s.decayed)).collect();
        staples.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        staples.truncate(STAPLES);
        let mut shoppers: IdMap<u32, f64> = IdMap::default();
        for (item, weight) in &staples {
            for (neighbor, similarity) in self.shopper_neighbors.of(*item) {
                *shoppers.entry(neighbor).or_default() +=
                    weight / decay_norm * f64::from(similarity);
            }
        }
        let kind_features = |item: u32, own_trips: u32| {
            let kind = kind_of(item);
            [
                f64::from(kind.trips) / member.n_trips.max(1) as f64,
                kind.decayed / decay_norm,
                f64::from((now - kind.last_day).max(0)) * f64::from(u8::from(kind.trips > 0)),
                f64::from(own_trips) / f64::from(kind.trips.max(1)),
                f64::from(self.kind_share[item as usize]),
                shoppers.get(&item).copied().unwrap_or(0.0),
            ]
        };
        let mut repeat: Vec<(u32, [f64; N_REPEAT])> = stats
            .iter()
            .map(|(item, stat)| {
                let base = self.repeat_features(stat, &member, now, share(*item), *item);
                let mut x = [0.0; N_REPEAT];
                x[..N_REPEAT - 6].copy_from_slice(&base);
                x[N_REPEAT - 6..].copy_from_slice(&kind_features(*item, stat.trips));
                (*item, x)
            })
            .collect();
        repeat.sort_by_key(|(item, _)| *item);

        // Explore: neighbours of what the member buys, weighted by how much they buy it ...
        let mut knn: IdMap<u32, f64> = IdMap::default();
        for (item, stat) in stats {
            for (neighbor, similarity) in self.neighbors.of(*item) {
                if !stats.contains_key(&neighbor) {
                    *knn.entry(neighbor).or_default() += stat.decayed * f64::from(similarity);
                }
            }
        }
        let mut pool: Vec<(u32, f64)> = knn.iter().map(|(i, s)| (*i, *s)).collect();
        pool.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        pool.truncate(self.explore_candidates / 2);
        let mut seen: IdSet<u32> = pool.iter().map(|(i, _)| *i).collect();
        // ... what shoppers like them buy ...
        let mut alike: Vec<(u32, f64)> = shoppers
            .iter()
            .filter(|(i, _)| !stats.contains_key(i))
            .map(|(i, w)| (*i, *w))
            .collect();
        alike.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (item, _) in alike.into_iter().take(50) {
            if seen.insert(item) {
                pool.push((item, knn.get(&item).copied().unwrap_or(0.0)));
            }
        }
        // ... popular items of the kinds they buy most ...
        let mut top_kinds: Vec<(u16, f64)> =
            kinds.iter().map(|(k, stat)| (*k, stat.decayed)).collect();
        top_kinds.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let kind_items = top_kinds
            .iter()
            .take(25)
            .flat_map(|(kind, _)| self.kind_top[*kind as usize].iter().take(8).copied());
        // ... and what is popular here and everywhere.
        let store_top = self
            .store_shares(store_id)
            .unwrap_or(&[])
            .iter()
            .map(|(i, _)| *i)
            .take(100);
        for item in kind_items
            .chain(store_top)
            .chain(self.popular.iter().copied().take(100))
        {
            if !stats.contains_key(&item) && seen.insert(item) {
                pool.push((item, knn.get(&item).copied().unwrap_or(0.0)));
            }
        }
        let explore = pool
            .into_iter()
            .map(|(item, score)| {
                let base = self.explore_features(score, share(item), item, &member);
                let mut x = [0.0; N_EXPLORE];
                x[..N_EXPLORE - 6].copy_from_slice(&base);
                x[N_EXPLORE - 6..].copy_from_slice(&kind_features(item, 0));
                (item, x)
            })
            .collect();
        (repeat, explore)
    }

    /// Every candidate with its probability of being in the next basket, best first.
    pub fn score(&self, trips: &[Trip], store_id: i64, now: i32) -> Vec<Scored> {
        let stats = member_stats(trips, self.decay);
        self.score_with(trips, &stats, store_id, now)
    }

    /// [`Self::score`] for a caller that already has the member's item statistics.
    pub fn score_with(
        &self,
        trips: &[Trip],
        stats: &IdMap<u32, ItemStat>,
        store_id: i64,
        now: i32,
    ) -> Vec<Scored> {
        let (repeat, explore) = self.candidates(trips, stats, store_id, now);
        let mut scored: Vec<Scored> = repeat
            .iter()
            .map(|(item, x)| Scored {
                item: *item,
                probability: self.repeat.probability(x),
                repeat: true,
            })
            .chain(explore.iter().map(|(item, x)| Scored {
                item: *item,
                probability: self.explore.probability(x),
                repeat: false,
            }))
            .collect();
        scored.sort_by(|a, b| {
            b.probability
                .total_cmp(&a.probability)
                .then(a.item.cmp(&b.item))
        });
        scored
    }

    /// The top `k` product ids of `list` for a member of `history` (evaluation path: no filters).
    pub fn predict(
        &self,
        history: &History,
        member: u32,
        store_id: i64,
        list: List,
        k: usize,
    ) -> Vec<i64> {
        let trips = &history.trips[member as usize];
        let scored = self.score(trips, store_id, self.as_of_day);
        let mut out: Vec<u32> = scored
            .iter()
            .filter(|s| match list {
                List::Blended => true,
                List::BuyAgain => s.repeat,
                List::Discover => !s.repeat,
            })
            .map(|s| s.item)
            .take(k)
            .collect();
        if out.len() < k {
            let bought: IdSet<u32> = if list == List::BuyAgain {
                IdSet::default()
            } else {
                trips.iter().flat_map(|t| t.items.iter().copied()).collect()
            };
            super::baseline::fill(&mut out, &self.popular, k, &bought);
        }
        out.into_iter()
            .map(|item| self.products[item as usize])
            .collect()
    }
}

/// Fits the model on `train` (all trips are history; the as-of day is `as_of_day`).
pub fn fit(
    train: &History,
    kind_names: &[Option<String>],
    as_of_day: i32,
    options: &FitOptions,
) -> Model {
    // Rankers: fitted on splits inside the training window. Each split uses
    // the history before a cut-off day as input and the member's first basket
    // after it as labels, exactly as a prediction made on the as-of day.
    let mut repeat_rows = Vec::new();
    let mut repeat_labels = Vec::new();
    let mut explore_rows = Vec::new();
    let mut explore_labels = Vec::new();
    for split in 1..=options.validation_splits {
        let split_day = as_of_day - options.validation_days * split as i32;
        let validation = statistics(train, split_day, options, catalog(kind_names));
        let share = options.max_training_members as f64 / train.trips.len().max(1) as f64;
        for (member, trips) in train.trips.iter().enumerate() {
            if share < 1.0
                && crate::rng::SplitMix64::for_key(options.seed, "train-member", member as u64)
                    .unit()
                    >= share
            {
                continue;
            }
            let history_end = trips.partition_point(|t| t.day < split_day);
            let (history, future) = trips.split_at(history_end);
            let Some(target) = future.first() else {
                continue;
            };
            if history.is_empty() {
                continue;
            }
            let truth: IdSet<u32> = target.items.iter().copied().collect();
            let stats = member_stats(history, validation.decay);
            let (repeat, explore) =
                validation.candidates(history, &stats, home_store(history), split_day);
            for (item, x) in repeat {
                repeat_rows.push(x.to_vec());
                repeat_labels.push(truth.contains(&item));
            }
            for (item, x) in explore {
                explore_rows.push(x.to_vec());
                explore_labels.push(truth.contains(&item));
            }
        }
    }
    let mut model = statistics(train, as_of_day, options, catalog(kind_names));
    model.repeat = Ranker::fit(&repeat_rows, &repeat_labels, options.repeat_ranker);
    model.explore = Ranker::fit(&explore_rows, &explore_labels, options.explore_ranker);
    tracing::info!(
        repeat_rows = repeat_rows.len(),
        explore_rows = explore_rows.len(),
        "fitted rankers on splits of the training window"
    );
    model
}

/// The store of most of these trips (ties: the lowest id); 0 when there are none.
pub fn home_store(trips: &[Trip]) -> i64 {
    let mut counts: IdMap<i64, u32> = IdMap::default();
    for trip in trips {
        *counts.entry(trip.store_id).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(store, n)| (*n, -store))
        .map_or(0, |(store, _)| store)
}
