//! `aisle eval offers`: for each campaign that starts after a date, rank the
//! members it targeted by predicted redemption (the model fitted only on
//! data before that date, each member's signals taken before the
//! campaign's start) and measure the ranking against the redemptions that
//! followed, beside three baselines scored by the same code in the same
//! run: random, "redeemed a coupon before" and total spend.
//!
//! Per campaign: ROC AUC (ties count one half), precision in the top 10%
//! (expected over random tie-breaks) and lift (that precision over the
//! campaign's redemption rate). Overall: AUC over the pairs of a redeemer
//! and a non-redeemer of the same campaign; precision and lift from the
//! redeemers found in every campaign's top 10% together.

use rusqlite::Connection;
use serde::Serialize;

use super::features::{self, Signals};
use super::model::{self, CampaignInfo, ModelError, RedeemModel};

/// The methods compared, in report order.
pub const METHODS: [&str; 4] = [
    "model",
    "baseline: random",
    "baseline: redeemed a coupon before",
    "baseline: total spend",
];

fn score(method: usize, model: &RedeemModel, signals: &Signals, kind: Option<&str>) -> f64 {
    match method {
        0 => model.log_odds(signals, kind),
        1 => 0.0,
        2 => f64::from(signals.redemptions),
        _ => signals.spend_cents as f64,
    }
}

/// A ranking's figures on one campaign (or overall).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    pub auc: f64,
    pub precision_top10: f64,
    pub lift_top10: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignResult {
    pub campaign_id: i64,
    pub campaign_type: Option<String>,
    pub starts_on: String,
    pub targets: usize,
    pub redeemers: usize,
    /// One per [`METHODS`]; `None` when the campaign has no redeemer (or
    /// no non-redeemer) inside the data.
    pub figures: Vec<Option<Figures>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub train_until: String,
    /// The last day with data: redemptions after it are unknown.
    pub data_until: String,
    pub model: RedeemModel,
    pub campaigns: Vec<CampaignResult>,
    pub overall: Vec<Figures>,
}

/// Sums over campaigns for the overall figures.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    wins: f64,
    pairs: f64,
    hits: f64,
    slots: f64,
    expected_hits: f64,
}

/// ROC AUC with ties counted one half: the Mann-Whitney statistic.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let (wins, pairs) = auc_parts(scores, labels);
    (pairs > 0.0).then(|| wins / pairs)
}

fn auc_parts(scores: &[f64], labels: &[bool]) -> (f64, f64) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| labels[order[k]]).count() as f64 * mid;
        i = j + 1;
    }
    let positives = labels.iter().filter(|l| **l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    (
        rank_sum - positives * (positives + 1.0) / 2.0,
        positives * negatives,
    )
}

/// Expected redeemers among the top `k` (ties at the cut shared pro rata).
pub fn hits_in_top(scores: &[f64], labels: &[bool], k: usize) -> f64 {
    if k == 0 || scores.is_empty() {
        return 0.0;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let cut = sorted[k.min(sorted.len()) - 1];
    let above = scores.iter().zip(labels).filter(|(s, _)| **s > cut);
    let (above_n, above_hits) = above.fold((0usize, 0usize), |(n, h), (_, l)| {
        (n + 1, h + usize::from(*l))
    });
    let at: Vec<bool> = scores
        .iter()
        .zip(labels)
        .filter(|(s, _)| **s == cut)
        .map(|(_, l)| *l)
        .collect();
    let need = k.saturating_sub(above_n) as f64;
    let at_hits = at.iter().filter(|l| **l).count() as f64;
    above_hits as f64 + need * at_hits / at.len().max(1) as f64
}

/// The top 10% of `n` targets, at least one.
pub fn top_decile(n: usize) -> usize {
    n.div_ceil(10).max(1)
}

/// The last day with purchases.
pub fn data_until(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT substr(max(purchased_at), 1, 10) FROM baskets",
        [],
        |row| row.get(0),
    )
}

/// Fits the model on data before `train_until` and evaluates it on every
/// campaign that starts on or after that day and no later than the data.
pub fn evaluate(conn: &Connection, train_until: &str) -> Result<Report, ModelError> {
    let data_until = data_until(conn)?.ok_or_else(|| ModelError::NoExamples(train_until.into()))?;
    let fitted = model::fit_from(conn, train_until)?;
    let tested: Vec<CampaignInfo> = model::campaigns(conn)?
        .into_iter()
        .filter(|c| c.starts_on.as_str() >= train_until && c.starts_on <= data_until)
        .collect();
    // The day after the data's last: redemptions strictly before it count.
    let end = crate::dates::seconds_of(&format!("{data_until} 00:00:00"))
        .map(|s| crate::dates::date_string(s / 86_400 + 1))
        .unwrap_or_else(|| data_until.clone());
    let mut totals = vec![Totals::default(); METHODS.len()];
    let mut campaigns = Vec::new();
    for campaign in tested {
        let redeemed = model::redeemers(conn, campaign.campaign_id, &campaign.starts_on, &end)?;
        let rows = features::for_campaign_targets(conn, campaign.campaign_id, &campaign.starts_on)?;
        let labels: Vec<bool> = rows.iter().map(|(m, _)| redeemed.contains(m)).collect();
        let positives = labels.iter().filter(|l| **l).count();
        let k = top_decile(rows.len());
        let base = positives as f64 / rows.len().max(1) as f64;
        let mut figures = Vec::new();
        for (method, total) in totals.iter_mut().enumerate() {
            let scores: Vec<f64> = rows
                .iter()
                .map(|(_, s)| score(method, &fitted, s, campaign.campaign_type.as_deref()))
                .collect();
            let (wins, pairs) = auc_parts(&scores, &labels);
            if pairs == 0.0 {
                figures.push(None);
                continue;
            }
            let hits = hits_in_top(&scores, &labels, k);
            total.wins += wins;
            total.pairs += pairs;
            total.hits += hits;
            total.slots += k as f64;
            total.expected_hits += k as f64 * base;
            figures.push(Some(Figures {
                auc: wins / pairs,
                precision_top10: hits / k as f64,
                lift_top10: hits / (k as f64 * base),
            }));
        }
        campaigns.push(CampaignResult {
            campaign_id: campaign.campaign_id,
            campaign_type: campaign.campaign_type,
            starts_on: campaign.starts_on,
            targets: rows.len(),
            redeemers: positives,
            figures,
        });
    }
    let overall = totals
        .iter()
        .map(|t| Figures {
            auc: if t.pairs > 0.0 {
                t.wins / t.pairs
            } else {
                f64::NAN
            },
            precision_top10: if t.slots > 0.0 {
                t.hits / t.slots
            } else {
                f64::NAN
            },
            lift_top10: if t.expected_hits > 0.0 {
                t.hits / t.expected_hits
            } else {
                f64::NAN
            },
        })
        .collect();
    Ok(Report {
        train_until: train_until.to_owned(),
        data_until,
        model: fitted,
        campaigns,
        overall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half_and_orders_correctly() {
        let labels = [false, true, false, true];
        assert_eq!(auc(&[0.1, 0.9, 0.2, 0.8], &labels), Some(1.0));
        assert_eq!(auc(&[0.9, 0.1, 0.8, 0.2], &labels), Some(0.0));
        assert_eq!(auc(&[0.5; 4], &labels), Some(0.5));
        // One inversion among four pairs.
        assert_eq!(auc(&[0.1, 0.9, 0.85, 0.8], &labels), Some(0.75));
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn top_k_hits_share_ties_at_the_cut() {
        let labels = [true, false, true, false, false];
        assert_eq!(hits_in_top(&[5.0, 4.0, 3.0, 2.0, 1.0], &labels, 2), 1.0);
        assert_eq!(hits_in_top(&[5.0, 1.0, 4.0, 2.0, 1.0], &labels, 2), 2.0);
        // All tied: the expectation of a random pick, 2 of 5 per slot.
        assert!((hits_in_top(&[0.0; 5], &labels, 2) - 0.8).abs() < 1e-12);
        assert_eq!(top_decile(9), 1);
        assert_eq!(top_decile(214), 22);
    }
}
