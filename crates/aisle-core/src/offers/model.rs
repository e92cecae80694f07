//! P(redeem | member, offer): a logistic regression over the member's
//! [`Signals`] for the offer plus the campaign's type, fitted on the
//! campaigns that started before a date (each target's signals as of its
//! campaign's start, labelled by whether they redeemed one of its coupons
//! before that date). Few, monotone, log-scaled features and an L2 penalty:
//! campaigns are few, so the model must generalize rather than fit.
//!
//! Fitting is Newton's method (iteratively reweighted least squares), so
//! the same data always gives the same model. The model is stored in the
//! replica as JSON with its SHA-256 (`offer_models`).

use crate::time::Timestamp;
use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::features::{self, FEATURES, Signals};

/// Bumped when the stored format or the features change.
pub const FORMAT_VERSION: i64 = 1;

/// The ridge penalty on the standardized weights (not the intercept).
pub const L2: f64 = 1.0;

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub signals: Signals,
    pub campaign_type: Option<String>,
    pub redeemed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedeemModel {
    pub format_version: i64,
    /// The model saw data strictly before this date.
    pub trained_until: String,
    /// Feature names, in order ([`FEATURES`]).
    pub features: Vec<String>,
    /// Standardization of each feature: mean and standard deviation.
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// Added to the intercept for campaigns of this type (types seen in training).
    pub type_offsets: BTreeMap<String, f64>,
    pub examples: u64,
    pub positives: u64,
    /// Campaigns the examples came from.
    pub campaigns: Vec<i64>,
}

/// One feature's part in a prediction, for the reason shown to people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub feature: &'static str,
    /// Its part of the log-odds against an average member.
    pub log_odds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no campaign started before {0} with targeted members to learn from")]
    NoExamples(String),
    #[error(
        "the campaigns before {until} had {positives} redemptions among {examples} targets: nothing to learn from"
    )]
    OneClass {
        until: String,
        examples: u64,
        positives: u64,
    },
    #[error("offer model {model_id} is damaged: {what}")]
    Damaged { model_id: i64, what: String },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl RedeemModel {
    /// The log-odds of redemption.
    pub fn log_odds(&self, signals: &Signals, campaign_type: Option<&str>) -> f64 {
        let x = signals.features();
        let mut z = self.intercept
            + campaign_type
                .and_then(|t| self.type_offsets.get(t))
                .copied()
                .unwrap_or(0.0);
        let standardized = self.mean.iter().zip(&self.scale);
        for ((w, x), (mean, scale)) in self.weights.iter().zip(x).zip(standardized) {
            z += w * (x - mean) / scale;
        }
        z
    }

    pub fn predict(&self, signals: &Signals, campaign_type: Option<&str>) -> f64 {
        sigmoid(self.log_odds(signals, campaign_type))
    }

    /// Each feature's part of the log-odds relative to the training average,
    /// largest first.
    pub fn explain(&self, signals: &Signals) -> Vec<Contribution> {
        let x = signals.features();
        let mut parts: Vec<Contribution> = FEATURES
            .iter()
            .enumerate()
            .map(|(j, feature)| Contribution {
                feature,
                log_odds: self.weights[j] * (x[j] - self.mean[j]) / self.scale[j],
            })
            .collect();
        parts.sort_by(|a, b| b.log_odds.total_cmp(&a.log_odds));
        parts
    }

    /// Fits on `examples`; `campaigns` and `trained_until` are recorded.
    pub fn fit(
        examples: &[Example],
        trained_until: &str,
        campaigns: Vec<i64>,
    ) -> Result<Self, ModelError> {
        let n = examples.len();
        let positives = examples.iter().filter(|e| e.redeemed).count();
        if n == 0 {
            return Err(ModelError::NoExamples(trained_until.to_owned()));
        }
        if positives == 0 || positives == n {
            return Err(ModelError::OneClass {
                until: trained_until.to_owned(),
                examples: n as u64,
                positives: positives as u64,
            });
        }
        let d = FEATURES.len();
        let raw: Vec<[f64; 4]> = examples.iter().map(|e| e.signals.features()).collect();
        let mut mean = vec![0.0; d];
        let mut scale = vec![0.0; d];
        for j in 0..d {
            mean[j] = raw.iter().map(|x| x[j]).sum::<f64>() / n as f64;
            let var = raw.iter().map(|x| (x[j] - mean[j]).powi(2)).sum::<f64>() / n as f64;
            scale[j] = if var > 1e-12 { var.sqrt() } else { 1.0 };
        }
        // Campaign types with both classes get an offset; others share the intercept.
        let mut by_type: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for e in examples {
            if let Some(t) = e.campaign_type.as_deref() {
                let entry = by_type.entry(t).or_default();
                entry.0 += 1;
                entry.1 += usize::from(e.redeemed);
            }
        }
        let types: Vec<&str> = by_type
            .iter()
            .filter(|(_, (count, pos))| *pos > 0 && pos < count)
            .map(|(t, _)| *t)
            .collect();
        // Design: intercept, features, then one column per type but the first
        // (the first is the reference level).
        let columns = 1 + d + types.len().saturating_sub(1);
        let design: Vec<Vec<f64>> = examples
            .iter()
            .zip(&raw)
            .map(|(e, x)| {
                let mut row = Vec::with_capacity(columns);
                row.push(1.0);
                row.extend((0..d).map(|j| (x[j] - mean[j]) / scale[j]));
                for t in types.iter().skip(1) {
                    row.push(f64::from(u8::from(e.campaign_type.as_deref() == Some(*t))));
                }
                row
            })
            .collect();
        let labels: Vec<f64> = examples
            .iter()
            .map(|e| f64::from(u8::from(e.redeemed)))
            .collect();
        let beta = newton(&design, &labels, L2, 50);
        let mut type_offsets = BTreeMap::new();
        if let Some(first) = types.first() {
            type_offsets.insert((*first).to_owned(), 0.0);
        }
        for (k, t) in types.iter().skip(1).enumerate() {
            type_offsets.insert((*t).to_owned(), beta[1 + d + k]);
        }
        Ok(RedeemModel {
            format_version: FORMAT_VERSION,
            trained_until: trained_until.to_owned(),
            features: FEATURES.iter().map(|f| (*f).to_owned()).collect(),
            mean,
            scale,
            weights: beta[1..=d].to_vec(),
            intercept: beta[0],
            type_offsets,
            examples: n as u64,
            positives: positives as u64,
            campaigns,
        })
    }

    fn check(&self) -> Result<(), String> {
        let d = FEATURES.len();
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format {} (this build reads {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.features != FEATURES {
            return Err(format!("features {:?}", self.features));
        }
        if [&self.mean, &self.scale, &self.weights]
            .iter()
            .any(|v| v.len() != d)
        {
            return Err("a coefficient vector has the wrong length".into());
        }
        let finite = self
            .mean
            .iter()
            .chain(&self.weights)
            .chain(self.type_offsets.values())
            .chain(std::iter::once(&self.intercept))
            .all(|v| v.is_finite());
        if !finite || self.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err("a coefficient is not a finite number".into());
        }
        Ok(())
    }
}

/// Maximizes the L2-penalized log-likelihood by Newton's method. Column 0 is
/// the unpenalized intercept.
#[allow(clippy::needless_range_loop)] // matrix code reads best with indices
fn newton(x: &[Vec<f64>], y: &[f64], l2: f64, iterations: usize) -> Vec<f64> {
    let m = x[0].len();
    let mut beta = vec![0.0; m];
    let base = y.iter().sum::<f64>() / y.len() as f64;
    beta[0] = (base / (1.0 - base)).ln();
    for _ in 0..iterations {
        let mut gradient = vec![0.0; m];
        let mut hessian = vec![vec![0.0; m]; m];
        for (row, &label) in x.iter().zip(y) {
            let z: f64 = row.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = sigmoid(z);
            let w = (p * (1.0 - p)).max(1e-9);
            for i in 0..m {
                gradient[i] += (label - p) * row[i];
                for j in 0..=i {
                    hessian[i][j] += w * row[i] * row[j];
                }
            }
        }
        for i in 0..m {
            for j in 0..i {
                hessian[j][i] = hessian[i][j];
            }
            if i > 0 {
                gradient[i] -= l2 * beta[i];
                hessian[i][i] += l2;
            }
        }
        let Some(step) = solve(hessian, gradient) else {
            break;
        };
        let size: f64 = step.iter().map(|s| s.abs()).fold(0.0, f64::max);
        for (b, s) in beta.iter_mut().zip(&step) {
            *b += s;
        }
        if size < 1e-9 {
            break;
        }
    }
    beta
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
#[allow(clippy::needless_range_loop)] // matrix code reads best with indices
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let factor = a[row][col] / a[col][col];
            for k in col..n {
                a[row][k] -= factor * a[col][k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let rest: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

/// A campaign the model can learn from or be evaluated on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignInfo {
    pub campaign_id: i64,
    pub name: String,
    pub campaign_type: Option<String>,
    pub starts_on: String,
    pub ends_on: String,
}

/// Campaigns with targeted members, by start date.
pub fn campaigns(conn: &Connection) -> rusqlite::Result<Vec<CampaignInfo>> {
    conn.prepare_cached(
        "SELECT campaign_id, name, campaign_type, starts_on, ends_on FROM campaigns c
         WHERE EXISTS (SELECT 1 FROM campaign_targets t WHERE t.campaign_id = c.campaign_id)
         ORDER BY starts_on, campaign_id",
    )?
    .query_map([], |row| {
        Ok(CampaignInfo {
            campaign_id: row.get(0)?,
            name: row.get(1)?,
            campaign_type: row.get(2)?,
            starts_on: row.get(3)?,
            ends_on: row.get(4)?,
        })
    })?
    .collect()
}

/// Members of the campaign's targets who redeemed one of its coupons on a
/// day in `[from, until)`.
pub fn redeemers(
    conn: &Connection,
    campaign_id: i64,
    from: &str,
    until: &str,
) -> rusqlite::Result<std::collections::HashSet<i64>> {
    conn.prepare_cached(
        "SELECT DISTINCT r.member_id FROM coupon_redemptions r
         JOIN coupons c ON c.coupon_id = r.coupon_id
         WHERE c.campaign_id = ?1 AND r.redeemed_on >= ?2 AND r.redeemed_on < ?3
           AND r.member_id IS NOT NULL",
    )?
    .query_map(params![campaign_id, from, until], |row| row.get(0))?
    .collect()
}

/// Training examples: the targets of every campaign that started before
/// `until`, their signals as of the campaign's start, labelled by a
/// redemption of the campaign's coupons before `until`.
pub fn examples(conn: &Connection, until: &str) -> rusqlite::Result<(Vec<Example>, Vec<i64>)> {
    let mut examples = Vec::new();
    let mut used = Vec::new();
    for campaign in campaigns(conn)?
        .into_iter()
        .filter(|c| c.starts_on.as_str() < until)
    {
        let redeemed = redeemers(conn, campaign.campaign_id, &campaign.starts_on, until)?;
        for (member, signals) in
            features::for_campaign_targets(conn, campaign.campaign_id, &campaign.starts_on)?
        {
            examples.push(Example {
                signals,
                campaign_type: campaign.campaign_type.clone(),
                redeemed: redeemed.contains(&member),
            });
        }
        used.push(campaign.campaign_id);
    }
    Ok((examples, used))
}

/// Fits the model on everything the replica holds before `until`.
pub fn fit_from(conn: &Connection, until: &str) -> Result<RedeemModel, ModelError> {
    let (examples, campaigns) = examples(conn, until)?;
    RedeemModel::fit(&examples, until, campaigns)
}

/// Stores a model; returns its id.
pub fn store(
    conn: &Connection,
    model: &RedeemModel,
    created_at: Timestamp,
) -> Result<i64, ModelError> {
    let body = serde_json::to_string(model).map_err(|e| ModelError::Damaged {
        model_id: 0,
        what: e.to_string(),
    })?;
    insert(conn, model, &body, created_at)
}

/// Keeps `body`, the JSON of `model`, with its checksum; returns its id.
fn insert(
    conn: &Connection,
    model: &RedeemModel,
    body: &str,
    created_at: Timestamp,
) -> Result<i64, ModelError> {
    conn.prepare_cached(
        "INSERT INTO offer_models (format_version, created_at, trained_until, sha256, body)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        model.format_version,
        created_at,
        model.trained_until,
        hex::encode(Sha256::digest(body.as_bytes())),
        body
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The newest intact model, with the damaged newer ones it skipped.
#[derive(Debug)]
pub struct LoadedModel {
    pub model_id: i64,
    pub model: RedeemModel,
    pub skipped: Vec<ModelError>,
}

/// The newest model whose checksum and contents are intact; `None` if the
/// replica holds none that is.
pub fn load_newest(conn: &Connection) -> Result<Option<LoadedModel>, ModelError> {
    load_newest_above(conn, None)
}

/// The newest intact model with an id above `floor` (a server holding model
/// `floor` reads only newer ones); `None` if none is.
pub fn load_newest_above(
    conn: &Connection,
    floor: Option<i64>,
) -> Result<Option<LoadedModel>, ModelError> {
    let mut skipped = Vec::new();
    let mut statement = conn.prepare_cached(
        "SELECT model_id, sha256, body FROM offer_models WHERE model_id > ?1 ORDER BY model_id DESC",
    )?;
    let mut rows = statement.query([floor.unwrap_or(i64::MIN)])?;
    while let Some(row) = rows.next()? {
        let (model_id, sha, body): (i64, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let damaged = |what: String| ModelError::Damaged { model_id, what };
        if hex::encode(Sha256::digest(body.as_bytes())) != sha {
            skipped.push(damaged("its SHA-256 does not match".into()));
            continue;
        }
        match serde_json::from_str::<RedeemModel>(&body) {
            Ok(model) => match model.check() {
                Ok(()) => {
                    for error in &skipped {
                        tracing::warn!(%error, "skipped a damaged offer model");
                    }
                    return Ok(Some(LoadedModel {
                        model_id,
                        model,
                        skipped,
                    }));
                }
                Err(what) => skipped.push(damaged(what)),
            },
            Err(error) => skipped.push(damaged(error.to_string())),
        }
    }
    for error in &skipped {
        tracing::warn!(%error, "skipped a damaged offer model");
    }
    Ok(None)
}

/// The newest stored model's id, intact or not (one primary-key look-up).
pub fn newest_id(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT max(model_id) FROM offer_models")?
        .query_row([], |row| row.get(0))
}

/// The default training date: the day after the last purchase (`None`
/// without purchases).
pub fn day_after_data(conn: &Connection) -> rusqlite::Result<Option<String>> {
    Ok(super::eval::data_until(conn)?
        .and_then(|last| crate::dates::seconds_of(&format!("{last} 00:00:00")))
        .map(|seconds| crate::dates::date_string(seconds / 86_400 + 1)))
}

/// Keeps a model received from HQ, byte for byte, after checking it parses
/// and is sound (feature count, finite numbers); a damaged one is refused.
pub fn store_received(
    conn: &Connection,
    bytes: &[u8],
    created_at: Timestamp,
) -> Result<i64, ModelError> {
    let damaged = |what: String| ModelError::Damaged { model_id: 0, what };
    let body = std::str::from_utf8(bytes).map_err(|e| damaged(e.to_string()))?;
    let model: RedeemModel = serde_json::from_str(body).map_err(|e| damaged(e.to_string()))?;
    model.check().map_err(damaged)?;
    insert(conn, &model, body, created_at)
}

/// A stored model as shipped to stores: its id, when it was made, what it
/// saw, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipped {
    pub model_id: i64,
    pub format_version: i64,
    pub created_at: String,
    pub trained_until: String,
    pub bytes: Vec<u8>,
}

/// The newest stored model's bytes (HQ ships them), or one by id.
pub fn shipped(conn: &Connection, model_id: Option<i64>) -> rusqlite::Result<Option<Shipped>> {
    conn.prepare_cached(
        "SELECT model_id, format_version, created_at, trained_until, body FROM offer_models
         WHERE ?1 IS NULL OR model_id = ?1 ORDER BY model_id DESC LIMIT 1",
    )?
    .query_row([model_id], |row| {
        Ok(Shipped {
            model_id: row.get(0)?,
            format_version: row.get(1)?,
            created_at: row.get(2)?,
            trained_until: row.get(3)?,
            bytes: row.get::<_, String>(4)?.into_bytes(),
        })
    })
    .optional()
}

/// The trained-until date of the newest stored model, if any.
pub fn newest_trained_until(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT trained_until FROM offer_models ORDER BY model_id DESC LIMIT 1")?
        .query_row([], |row| row.get(0))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::lit::ts;

    fn example(coupon_lines: u32, affinity: u32, kind: &str, redeemed: bool) -> Example {
        Example {
            signals: Signals {
                coupon_lines,
                affinity_lines: affinity,
                redemptions: 0,
                spend_cents: 10_000,
            },
            campaign_type: Some(kind.to_owned()),
            redeemed,
        }
    }

    /// Generated data where coupon use and affinity raise the odds: the fit
    /// recovers the signs, ranks accordingly, and is deterministic.
    #[test]
    fn the_fit_learns_monotone_effects_and_is_deterministic() {
        let mut rng = crate::rng::SplitMix64::new(7);
        let mut data = Vec::new();
        for _ in 0..4000 {
            let coupons = rng.below(20) as u32;
            let affinity = rng.below(10) as u32;
            let kind = if rng.below(2) == 0 { "A" } else { "B" };
            let z = -3.0
                + 0.8 * f64::from(coupons).ln_1p()
                + 0.5 * f64::from(affinity).ln_1p()
                + if kind == "A" { 1.0 } else { 0.0 };
            data.push(example(coupons, affinity, kind, rng.unit() < sigmoid(z)));
        }
        let model = RedeemModel::fit(&data, "2017-07-01", vec![1]).expect("fit");
        assert!(model.weights[0] > 0.3, "coupon habit: {:?}", model.weights);
        assert!(model.weights[1] > 0.2, "affinity: {:?}", model.weights);
        assert!(
            model.type_offsets["B"] < -0.5,
            "type B has lower odds: {:?}",
            model.type_offsets
        );
        let low = model.predict(&example(0, 0, "A", false).signals, Some("A"));
        let high = model.predict(&example(19, 9, "A", false).signals, Some("A"));
        assert!(high > 3.0 * low, "{low} vs {high}");
        let again = RedeemModel::fit(&data, "2017-07-01", vec![1]).expect("fit");
        assert_eq!(model, again);
        // Calibration: the mean prediction matches the base rate.
        let mean: f64 = data
            .iter()
            .map(|e| model.predict(&e.signals, e.campaign_type.as_deref()))
            .sum::<f64>()
            / data.len() as f64;
        let base = data.iter().filter(|e| e.redeemed).count() as f64 / data.len() as f64;
        assert!((mean - base).abs() < 0.01, "{mean} vs {base}");
    }

    #[test]
    fn nothing_to_learn_is_an_error_not_a_model() {
        assert!(matches!(
            RedeemModel::fit(&[], "2017-07-01", vec![]),
            Err(ModelError::NoExamples(_))
        ));
        let all_no = vec![example(1, 1, "A", false); 10];
        assert!(matches!(
            RedeemModel::fit(&all_no, "2017-07-01", vec![1]),
            Err(ModelError::OneClass { positives: 0, .. })
        ));
    }

    /// A model fitted on 200 generated examples, as stored models are.
    fn small_model() -> RedeemModel {
        let data: Vec<Example> = (0..200)
            .map(|i| example(i % 10, i % 7, "A", i % 5 == 0 && i % 10 > 3))
            .collect();
        RedeemModel::fit(&data, "2017-07-01", vec![1]).expect("fit")
    }

    #[test]
    fn a_damaged_newest_model_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        let model = small_model();
        let first = store(&conn, &model, ts("2026-01-01 00:00:00")).expect("store");
        let second = store(&conn, &model, ts("2026-01-02 00:00:00")).expect("store");
        conn.execute(
            "UPDATE offer_models SET body = replace(body, '\"intercept\":', '\"intercept\": ') WHERE model_id = ?1",
            [second],
        )
        .expect("damage");
        let loaded = load_newest(&conn).expect("load").expect("a model");
        assert_eq!(loaded.model_id, first);
        assert_eq!(loaded.model, model);
        assert!(matches!(
            loaded.skipped.as_slice(),
            [ModelError::Damaged { model_id, .. }] if *model_id == second
        ));
        // A body whose checksum matches but whose numbers are not finite is refused too.
        let mut bad = model.clone();
        bad.weights[0] = f64::NAN;
        store(&conn, &bad, ts("2026-01-03 00:00:00")).expect("store");
        assert_eq!(
            load_newest(&conn).expect("load").expect("a model").model_id,
            first
        );
        conn.execute("DELETE FROM offer_models WHERE model_id = ?1", [first])
            .expect("delete");
        assert!(load_newest(&conn).expect("load").is_none());
    }

    /// A model from HQ is kept byte for byte and shipped on unchanged; one
    /// that is not a sound model is refused and nothing is stored.
    #[test]
    fn a_received_model_is_checked_then_kept_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        let model = small_model();
        let bytes = serde_json::to_vec(&model).expect("json");
        let mut nan = model.clone();
        nan.weights[0] = f64::NAN;
        let mut short = model.clone();
        short.weights.pop();
        for refused in [
            b"not json".to_vec(),
            vec![0xff, 0xfe],
            serde_json::to_vec(&nan).expect("json"),
            serde_json::to_vec(&short).expect("json"),
        ] {
            assert!(
                matches!(
                    store_received(&conn, &refused, ts("2026-01-01 00:00:00")),
                    Err(ModelError::Damaged { .. })
                ),
                "{}",
                String::from_utf8_lossy(&refused)
            );
        }
        assert!(
            shipped(&conn, None).expect("read").is_none(),
            "nothing kept"
        );
        let id = store_received(&conn, &bytes, ts("2026-01-02 00:00:00")).expect("kept");
        let kept = shipped(&conn, Some(id)).expect("read").expect("the model");
        assert_eq!(kept.bytes, bytes);
        assert_eq!(kept.trained_until, "2017-07-01");
        assert_eq!(
            load_newest(&conn).expect("load").expect("loads").model,
            model
        );
        assert!(shipped(&conn, Some(id + 1)).expect("read").is_none());
    }
}
