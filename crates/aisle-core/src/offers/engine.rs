//! The decision engine: for member M at store S at time T, the ranked
//! eligible offers, each with P(redeem), its expected value to the store
//! and a reason. [`decide`] is a pure function of its inputs (the clock and
//! the exploration seed included); [`OfferBook`], [`MemberFacts`] and
//! [`MemberHistory`] load those inputs from the replica.
//!
//! Expected value of offering coupon c to member m, in cents:
//! `P(redeem | m, c) x (value - discount) - cost`, where value is what a
//! redemption is worth to the retailer (the rule's `value_cents`, or the
//! coupon's products' typical price here), discount the coupon's discount
//! at that price and cost the rule's cost of issuing.

use crate::time::{Day, Timestamp};
use std::collections::HashMap;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::features::MemberHistory;
use super::model::RedeemModel;
use super::rules::{
    self, Channel, Ineligible, MemberFacts, OfferTerms, RULE_COLUMNS, Rule, StoreUsage,
};
use crate::consent;
use crate::rng::SplitMix64;

/// One active coupon of a campaign, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    pub coupon_id: i64,
    pub campaign_id: i64,
    pub campaign_name: String,
    pub campaign_type: Option<String>,
    pub starts_on: Day,
    pub ends_on: Day,
    pub description: Option<String>,
    pub discount_cents: Option<i64>,
    pub discount_percent: Option<i64>,
    /// The products the coupon applies to, sorted.
    pub products: Vec<i64>,
    /// The median of this store's prices of those products.
    pub typical_price_cents: Option<i64>,
    pub rule: Rule,
}

impl Offer {
    /// The discount at the typical price, cents.
    pub fn discount_at_price(&self) -> i64 {
        let percent = self
            .discount_percent
            .zip(self.typical_price_cents)
            .map_or(0, |(p, price)| price * p / 100);
        self.discount_cents.unwrap_or(0).max(percent)
    }

    /// What one redemption is worth to the retailer before the discount.
    pub fn value_cents(&self) -> i64 {
        self.rule
            .value_cents
            .or(self.typical_price_cents)
            .unwrap_or(0)
    }
}

/// The store's offers active on a day: load once, rank for many members.
#[derive(Debug, Clone, Default)]
pub struct OfferBook {
    pub store_id: i64,
    pub day: Day,
    pub offers: Vec<Offer>,
}

impl OfferBook {
    /// Coupons of campaigns running on `day` at `store_id`.
    pub fn load(conn: &Connection, store_id: i64, day: Day) -> rusqlite::Result<Self> {
        Ok(OfferBook {
            store_id,
            day,
            offers: load_offers(conn, store_id, Some(day), None)?,
        })
    }

    /// One coupon's offer at `store_id`, whatever its dates; `None` if unknown.
    pub fn load_coupon(
        conn: &Connection,
        store_id: i64,
        coupon_id: i64,
    ) -> rusqlite::Result<Option<Offer>> {
        Ok(load_offers(conn, store_id, None, Some(coupon_id))?.pop())
    }
}

/// Coupons of the campaigns running on `day` (any day when `None`), or only
/// `coupon` when given, with their rules, products and typical price here.
fn load_offers(
    conn: &Connection,
    store_id: i64,
    day: Option<Day>,
    coupon: Option<i64>,
) -> rusqlite::Result<Vec<Offer>> {
    let mut offers: Vec<Offer> = conn
        .prepare_cached(&format!(
            "SELECT c.coupon_id, k.campaign_id, k.name, k.campaign_type, k.starts_on, k.ends_on,
                    c.description, c.discount_cents, c.discount_percent, {RULE_COLUMNS}
             FROM coupons c
             JOIN campaigns k ON k.campaign_id = c.campaign_id
             LEFT JOIN offer_rules r ON r.campaign_id = k.campaign_id
             WHERE (?1 IS NULL OR (k.starts_on <= ?1 AND k.ends_on >= ?1))
               AND (?2 IS NULL OR c.coupon_id = ?2)
             ORDER BY c.coupon_id"
        ))?
        .query_map(params![day, coupon], |row| {
            Ok(Offer {
                coupon_id: row.get(0)?,
                campaign_id: row.get(1)?,
                campaign_name: row.get(2)?,
                campaign_type: row.get(3)?,
                starts_on: row.get(4)?,
                ends_on: row.get(5)?,
                description: row.get(6)?,
                discount_cents: row.get(7)?,
                discount_percent: row.get(8)?,
                products: Vec::new(),
                typical_price_cents: None,
                rule: Rule::from_row(row, 9)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let index: HashMap<i64, usize> = offers
        .iter()
        .enumerate()
        .map(|(i, o)| (o.coupon_id, i))
        .collect();
    let mut prices: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut statement = conn.prepare_cached(
        "SELECT cp.coupon_id, cp.product_id, sp.price_cents
         FROM coupon_products cp
         JOIN coupons c ON c.coupon_id = cp.coupon_id
         JOIN campaigns k ON k.campaign_id = c.campaign_id
         LEFT JOIN store_products sp ON sp.product_id = cp.product_id AND sp.store_id = ?3
         WHERE (?1 IS NULL OR (k.starts_on <= ?1 AND k.ends_on >= ?1))
           AND (?2 IS NULL OR c.coupon_id = ?2)
         ORDER BY cp.coupon_id, cp.product_id",
    )?;
    let mut rows = statement.query(params![day, coupon, store_id])?;
    while let Some(row) = rows.next()? {
        let coupon: i64 = row.get(0)?;
        if let Some(&i) = index.get(&coupon) {
            offers[i].products.push(row.get(1)?);
            if let Some(price) = row.get::<_, Option<i64>>(2)? {
                prices.entry(coupon).or_default().push(price);
            }
        }
    }
    for offer in &mut offers {
        if let Some(list) = prices.get_mut(&offer.coupon_id) {
            list.sort_unstable();
            offer.typical_price_cents = Some(list[list.len() / 2]);
        }
    }
    Ok(offers)
}

/// Exploration: with probability `share` an offer's P(redeem) is drawn from
/// a Beta distribution around the model's estimate (Thompson sampling), so
/// offers the model knows little about get shown and measured. Off (0.0) by
/// default; the seed makes a decision reproducible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exploration {
    pub share: f64,
    pub seed: u64,
    /// Pseudo-observations behind the model's estimate: lower explores wider.
    pub strength: f64,
}

impl Default for Exploration {
    fn default() -> Self {
        Exploration {
            share: 0.0,
            seed: 0,
            strength: 20.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecideRequest {
    pub store_id: i64,
    pub channel: Channel,
    /// `YYYY-MM-DD`: which campaigns run and which limits apply.
    pub today: Day,
    /// At most this many ranked offers.
    pub limit: usize,
    /// Offers of negative expected value are left out unless this is set.
    pub include_negative: bool,
    pub exploration: Exploration,
}

/// Why an offer is suggested, for people and for audits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// The member buys the coupon's products.
    Affinity { purchases: u32 },
    /// The member often pays with coupons.
    CouponHabit { coupon_lines: u32, redemptions: u32 },
    /// The campaign targets the member; nothing in the history stands out.
    Targeted,
    /// Open to every member (and the only kind without personalization consent).
    General,
    /// Shown to learn how it does (exploration).
    Exploration,
}

impl Reason {
    pub fn text(&self) -> String {
        match self {
            Reason::Affinity { purchases } => {
                format!("You often buy these products ({purchases} times)")
            }
            Reason::CouponHabit {
                coupon_lines,
                redemptions,
            } => format!(
                "Matches how you save: {coupon_lines} purchases with coupons, {redemptions} coupons redeemed"
            ),
            Reason::Targeted => "Selected for you in this campaign".into(),
            Reason::General => "Available to all members".into(),
            Reason::Exploration => "A new offer we think you may like".into(),
        }
    }
}

/// One ranked offer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub coupon_id: i64,
    pub campaign_id: i64,
    pub description: Option<String>,
    /// The model's P(redeem) (personal signals left out without consent).
    pub p_redeem: f64,
    /// The probability the ranking used (differs only when exploring).
    pub p_ranked: f64,
    pub expected_value_cents: f64,
    pub reason: Reason,
    pub reason_text: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Decision {
    pub ranked: Vec<Ranked>,
    /// Offers left out, with the first rule that refused each.
    pub refused: Vec<(i64, Ineligible)>,
    /// Eligible offers left out because their expected value was negative.
    pub negative: Vec<i64>,
}

/// Ranks `book`'s offers for a member: eligibility under each offer's rules,
/// P(redeem) from `model`, expected value, ties broken by coupon id.
/// Without personalization consent the history is not used at all.
pub fn decide(
    book: &OfferBook,
    member: &MemberFacts,
    history: &MemberHistory,
    usage: &StoreUsage,
    model: &RedeemModel,
    request: &DecideRequest,
) -> Decision {
    let empty = MemberHistory::default();
    let history = if consent::may_personalize(&member.consent) {
        history
    } else {
        &empty
    };
    let mut decision = Decision::default();
    for offer in &book.offers {
        let signals = history.signals(&offer.products);
        let terms = OfferTerms {
            campaign_id: offer.campaign_id,
            starts_on: offer.starts_on,
            ends_on: offer.ends_on,
            rule: &offer.rule,
        };
        if let Err(why) = rules::eligibility(
            terms,
            member,
            usage,
            request.channel,
            request.today,
            signals.affinity_lines,
        ) {
            decision.refused.push((offer.coupon_id, why));
            continue;
        }
        let p = model.predict(&signals, offer.campaign_type.as_deref());
        let mut p_ranked = p;
        let mut reason = if !consent::may_personalize(&member.consent) {
            Reason::General
        } else {
            reason_for(model, &signals, offer, member)
        };
        let explore = request.exploration;
        if explore.share > 0.0 {
            let mut rng = SplitMix64::for_key(
                explore.seed,
                "offers-explore",
                (member.member_id as u64) << 32 ^ offer.coupon_id as u64,
            );
            if rng.unit() < explore.share {
                let n = explore.strength.max(1.0);
                p_ranked = beta(&mut rng, 1.0 + p * n, 1.0 + (1.0 - p) * n);
                reason = Reason::Exploration;
            }
        }
        let margin = (offer.value_cents() - offer.discount_at_price()) as f64;
        let value = p_ranked * margin - offer.rule.cost_cents as f64;
        if value < 0.0 && !request.include_negative {
            decision.negative.push(offer.coupon_id);
            continue;
        }
        decision.ranked.push(Ranked {
            coupon_id: offer.coupon_id,
            campaign_id: offer.campaign_id,
            description: offer.description.clone(),
            p_redeem: p,
            p_ranked,
            expected_value_cents: value,
            reason_text: reason.text(),
            reason,
        });
    }
    decision.ranked.sort_by(|a, b| {
        b.expected_value_cents
            .total_cmp(&a.expected_value_cents)
            .then(b.p_ranked.total_cmp(&a.p_ranked))
            .then(a.coupon_id.cmp(&b.coupon_id))
    });
    // One coupon per campaign and per stacking group: the best of each.
    let mut campaigns = std::collections::HashSet::new();
    let mut groups = std::collections::HashSet::new();
    let group_of: HashMap<i64, Option<&str>> = book
        .offers
        .iter()
        .map(|o| (o.coupon_id, o.rule.stacking_group.as_deref()))
        .collect();
    decision.ranked.retain(|r| {
        let fresh_campaign = campaigns.insert(r.campaign_id);
        let group = group_of.get(&r.coupon_id).copied().flatten();
        fresh_campaign && group.is_none_or(|g| groups.insert(g))
    });
    decision.ranked.truncate(request.limit);
    decision
}

/// The strongest personal reason the model saw for this offer.
fn reason_for(
    model: &RedeemModel,
    signals: &super::features::Signals,
    offer: &Offer,
    member: &MemberFacts,
) -> Reason {
    let top = model
        .explain(signals)
        .into_iter()
        .find(|c| c.log_odds > 0.05);
    match top.map(|c| c.feature) {
        Some("affinity_lines") => Reason::Affinity {
            purchases: signals.affinity_lines,
        },
        Some("coupon_lines" | "redemptions") => Reason::CouponHabit {
            coupon_lines: signals.coupon_lines,
            redemptions: signals.redemptions,
        },
        _ if signals.affinity_lines > 0 => Reason::Affinity {
            purchases: signals.affinity_lines,
        },
        _ if offer.rule.targeted_only && member.targeted.contains(&offer.campaign_id) => {
            Reason::Targeted
        }
        _ => Reason::General,
    }
}

/// A draw from Beta(a, b) as the ratio of two Gamma draws.
fn beta(rng: &mut SplitMix64, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    if x + y > 0.0 { x / (x + y) } else { 0.5 }
}

/// Marsaglia and Tsang's Gamma(shape, 1) sampler, shape >= 1.
fn gamma(rng: &mut SplitMix64, shape: f64) -> f64 {
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        // A standard normal by Box-Muller.
        let u1 = rng.unit().max(f64::MIN_POSITIVE);
        let u2 = rng.unit();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let v = (1.0 + c * z).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.unit().max(f64::MIN_POSITIVE);
        if u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Everything [`decide`] needs, loaded from the replica for one member.
/// `now` is a store-local timestamp; `None` for an unknown member.
pub fn offers_for(
    conn: &Connection,
    book: &OfferBook,
    model: &RedeemModel,
    member_id: i64,
    now: Timestamp,
    request: &DecideRequest,
) -> rusqlite::Result<Option<Decision>> {
    let Some(member) = MemberFacts::load(conn, member_id, now)? else {
        return Ok(None);
    };
    let history = if consent::may_personalize(&member.consent) {
        MemberHistory::load(conn, member_id, now)?
    } else {
        MemberHistory::default()
    };
    let since = book
        .offers
        .iter()
        .map(|o| o.starts_on)
        .min()
        .unwrap_or(request.today);
    let usage = StoreUsage::load(conn, request.store_id, request.today, since)?;
    Ok(Some(decide(
        book, &member, &history, &usage, model, request,
    )))
}

#[cfg(test)]
mod tests {
    use crate::time::lit::day;
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::*;

    /// Odds rise with coupon use and affinity; no spend or redemption effect.
    fn model() -> RedeemModel {
        RedeemModel {
            format_version: super::super::model::FORMAT_VERSION,
            trained_until: "2026-01-01".into(),
            features: super::super::features::FEATURES
                .iter()
                .map(|f| (*f).to_owned())
                .collect(),
            mean: vec![1.0, 1.0, 0.0, 0.0],
            scale: vec![1.0; 4],
            weights: vec![0.8, 0.6, 0.0, 0.0],
            intercept: -2.0,
            type_offsets: BTreeMap::new(),
            examples: 100,
            positives: 10,
            campaigns: vec![1],
        }
    }

    fn offer(coupon_id: i64, campaign_id: i64, products: &[i64], rule: Rule) -> Offer {
        Offer {
            coupon_id,
            campaign_id,
            campaign_name: format!("campaign {campaign_id}"),
            campaign_type: None,
            starts_on: day("2026-03-01"),
            ends_on: day("2026-03-31"),
            description: Some(format!("coupon {coupon_id}")),
            discount_cents: Some(50),
            discount_percent: None,
            products: products.to_vec(),
            typical_price_cents: Some(400),
            rule,
        }
    }

    fn member(consent: bool) -> MemberFacts {
        MemberFacts {
            member_id: 9,
            tier: "standard".into(),
            consent: consent::Consents {
                personalization: consent,
                ..Default::default()
            },
            targeted: HashSet::from([1, 2, 3]),
            ..MemberFacts::default()
        }
    }

    fn history() -> MemberHistory {
        MemberHistory {
            coupon_lines: 4,
            redemptions: 1,
            spend_cents: 90_000,
            recent_spend_cents: 20_000,
            lines_by_product: HashMap::from([(100, 12), (200, 1)]),
        }
    }

    fn request() -> DecideRequest {
        DecideRequest {
            store_id: 1,
            channel: Channel::Kiosk,
            today: day("2026-03-10"),
            limit: 10,
            include_negative: false,
            exploration: Exploration::default(),
        }
    }

    fn open() -> Rule {
        Rule {
            targeted_only: false,
            ..Rule::default()
        }
    }

    /// Decides for the member (with or without consent) with the test model and history.
    fn rank(book: &OfferBook, consent: bool, request: &DecideRequest) -> Decision {
        decide(
            book,
            &member(consent),
            &history(),
            &StoreUsage::default(),
            &model(),
            request,
        )
    }

    fn book(offers: Vec<Offer>) -> OfferBook {
        OfferBook {
            store_id: 1,
            day: day("2026-03-10"),
            offers,
        }
    }

    #[test]
    fn offers_rank_by_expected_value_with_reasons() {
        let book = book(vec![
            offer(10, 1, &[200], Rule::default()),
            offer(11, 2, &[100], Rule::default()),
            offer(12, 3, &[999], Rule::default()),
            offer(13, 4, &[100], Rule::default()), // campaign 4 does not target the member
        ]);
        let decision = rank(&book, true, &request());
        let order: Vec<i64> = decision.ranked.iter().map(|r| r.coupon_id).collect();
        assert_eq!(order, [11, 10, 12], "most bought products first");
        assert_eq!(decision.refused, [(13, Ineligible::NotTargeted)]);
        let top = &decision.ranked[0];
        assert_eq!(top.reason, Reason::Affinity { purchases: 12 });
        assert!(top.reason_text.contains("12 times"), "{}", top.reason_text);
        // EV = p x (400 - 50) - 0.
        assert!((top.expected_value_cents - top.p_redeem * 350.0).abs() < 1e-9);
        assert_eq!(top.p_redeem, top.p_ranked, "no exploration by default");
        assert!(
            decision
                .ranked
                .windows(2)
                .all(|w| w[0].expected_value_cents >= w[1].expected_value_cents)
        );
        // The product nobody bought: the coupon habit explains it.
        assert!(matches!(
            decision.ranked[2].reason,
            Reason::CouponHabit {
                coupon_lines: 4,
                ..
            }
        ));
    }

    #[test]
    fn one_coupon_per_campaign_and_per_stacking_group() {
        let dairy = Rule {
            stacking_group: Some("dairy".into()),
            ..Rule::default()
        };
        let book = book(vec![
            offer(10, 1, &[100], Rule::default()),
            offer(11, 1, &[200], Rule::default()),
            offer(12, 2, &[100], dairy.clone()),
            offer(13, 3, &[200], dairy),
        ]);
        let decision = rank(&book, true, &request());
        let order: Vec<i64> = decision.ranked.iter().map(|r| r.coupon_id).collect();
        assert_eq!(
            order,
            [10, 12],
            "the better coupon of campaign 1, the better of the dairy group"
        );
    }

    #[test]
    fn without_consent_no_history_is_used_and_only_open_offers_remain() {
        let book = book(vec![
            offer(10, 1, &[100], Rule::default()),
            offer(11, 2, &[100], open()),
            offer(12, 3, &[999], open()),
        ]);
        let decision = rank(&book, false, &request());
        assert_eq!(decision.refused, [(10, Ineligible::NoConsent)]);
        assert_eq!(decision.ranked.len(), 2);
        for r in &decision.ranked {
            assert_eq!(r.reason, Reason::General);
        }
        // Same probability for both: the purchases of product 100 were not looked at.
        assert_eq!(decision.ranked[0].p_redeem, decision.ranked[1].p_redeem);
        let with = rank(&book, true, &request());
        assert!(with.ranked[0].p_redeem > decision.ranked[0].p_redeem);
    }

    #[test]
    fn offers_worth_less_than_they_cost_are_left_out_unless_asked() {
        let costly = Rule {
            cost_cents: 10_000,
            ..Rule::default()
        };
        let book = book(vec![
            offer(10, 1, &[100], costly),
            offer(11, 2, &[100], Rule::default()),
        ]);
        let decision = rank(&book, true, &request());
        assert_eq!(decision.negative, [10]);
        assert_eq!(decision.ranked.len(), 1);
        let all = DecideRequest {
            include_negative: true,
            ..request()
        };
        let decision = rank(&book, true, &all);
        assert_eq!(decision.ranked.len(), 2);
        assert!(decision.ranked[1].expected_value_cents < 0.0);
    }

    #[test]
    fn exploration_is_seeded_bounded_and_off_by_default() {
        let offers: Vec<Offer> = (0..40)
            .map(|i| offer(100 + i, 10 + i, &[100 + i], open()))
            .collect();
        let book = book(offers);
        let explore = |share: f64, seed: u64| {
            let request = DecideRequest {
                limit: 100,
                exploration: Exploration {
                    share,
                    seed,
                    ..Exploration::default()
                },
                ..request()
            };
            rank(&book, true, &request)
        };
        let off = explore(0.0, 1);
        assert!(
            off.ranked
                .iter()
                .all(|r| r.p_ranked == r.p_redeem && r.reason != Reason::Exploration)
        );
        let a = explore(0.5, 1);
        assert_eq!(a, explore(0.5, 1), "the same seed decides the same");
        assert_ne!(a, explore(0.5, 2));
        let explored = a
            .ranked
            .iter()
            .filter(|r| r.reason == Reason::Exploration)
            .count();
        assert!((8..=32).contains(&explored), "about half of 40: {explored}");
        assert!(a.ranked.iter().all(|r| (0.0..=1.0).contains(&r.p_ranked)));
        // Draws centre on the estimate.
        let all = explore(1.0, 3);
        let mean_gap: f64 = all
            .ranked
            .iter()
            .map(|r| r.p_ranked - r.p_redeem)
            .sum::<f64>()
            / 40.0;
        assert!(mean_gap.abs() < 0.05, "{mean_gap}");
    }

    /// The bulk signals (training, evaluation, batch scores) and the serving
    /// signals agree on a real replica.
    #[test]
    fn bulk_and_serving_signals_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        conn.execute_batch(
            "INSERT INTO stores (store_id, name) VALUES (1, 'One');
             INSERT INTO members (member_id, updated_at, consent_personalization) VALUES
                (1, '2026-01-01', 1), (2, '2026-01-01', 1), (3, '2026-01-01', 1);
             INSERT INTO products (product_id, name) VALUES (100, 'Oats'), (200, 'Milk'), (300, 'Tea');
             INSERT INTO campaigns (campaign_id, name, starts_on, ends_on) VALUES (1, 'Oats', '2026-03-01', '2026-03-31');
             INSERT INTO campaign_targets VALUES (1, 1), (1, 2), (1, 3);
             INSERT INTO coupons (coupon_id, code, campaign_id) VALUES (5, 'OATS', 1), (6, 'TEA', 1);
             INSERT INTO coupon_products VALUES (5, 100), (6, 300);
             INSERT INTO baskets (basket_id, member_id, store_id, purchased_at) VALUES
                (1, 1, 1, '2026-02-01 10:00:00'), (2, 1, 1, '2026-02-20 10:00:00'),
                (3, 2, 1, '2026-02-25 10:00:00'), (4, 1, 1, '2026-03-01 09:00:00');
             INSERT INTO purchase_lines (basket_id, line_no, product_id, quantity, sales_cents, coupon_disc_cents) VALUES
                (1, 1, 100, 1, 300, 50), (1, 2, 200, 1, 150, 0), (2, 1, 100, 2, 600, 0),
                (2, 2, 300, 1, 500, 0), (3, 1, 200, 1, 150, 25), (4, 1, 100, 1, 300, 50);
             INSERT INTO coupon_redemptions (coupon_id, member_id, redeemed_on) VALUES (5, 1, '2026-02-01'), (5, 1, '2026-03-02');",
        )
        .expect("rows");
        let bulk =
            super::super::features::for_campaign_targets(&conn, 1, "2026-03-01").expect("bulk");
        assert_eq!(bulk.len(), 3);
        for (member, signals) in &bulk {
            let one =
                MemberHistory::load(&conn, *member, day("2026-03-01").start()).expect("history");
            assert_eq!(*signals, one.signals(&[100, 300]), "member {member}");
        }
        assert_eq!(
            bulk[0].1,
            super::super::features::Signals {
                coupon_lines: 1,
                affinity_lines: 3,
                redemptions: 1,
                spend_cents: 1_550,
            },
            "only what happened before the start counts"
        );
        assert_eq!(bulk[2].1, Default::default(), "no history, zeros");
    }
}
