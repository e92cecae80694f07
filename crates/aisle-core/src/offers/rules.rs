//! An offer's rules (`offer_rules`) and the pure eligibility check that both
//! ranking and issuing apply: the same function decides what the kiosk shows
//! and what the issuing transaction accepts.

use crate::time::{Day, Timestamp};
use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::consent::{self, Consents};

/// Who asks for the offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Kiosk,
    Associate,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Kiosk => "kiosk",
            Channel::Associate => "associate",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "kiosk" => Some(Channel::Kiosk),
            "associate" => Some(Channel::Associate),
            _ => None,
        }
    }
}

/// Loyalty tiers, lowest first.
pub const TIERS: [&str; 4] = ["standard", "silver", "gold", "platinum"];

fn tier_rank(tier: &str) -> usize {
    TIERS.iter().position(|t| *t == tier).unwrap_or(0)
}

/// Demographic columns a segment may name.
pub const SEGMENT_COLUMNS: [&str; 7] = [
    "age_band",
    "income_band",
    "home_ownership",
    "marital_status",
    "household_size",
    "household_comp",
    "kids_count",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub targeted_only: bool,
    /// `(column, value)` over the member's demographics.
    pub segment: Option<(String, String)>,
    pub min_tier: Option<String>,
    pub min_affinity: u32,
    pub min_spend_cents: i64,
    pub per_member_limit: i64,
    pub per_store_daily_limit: Option<i64>,
    pub per_store_limit: Option<i64>,
    pub stacking_group: Option<String>,
    pub channels: Vec<Channel>,
    pub valid_days: i64,
    pub value_cents: Option<i64>,
    pub cost_cents: i64,
}

impl Default for Rule {
    /// A campaign without a row in `offer_rules` (the migration's defaults).
    fn default() -> Self {
        Rule {
            targeted_only: true,
            segment: None,
            min_tier: None,
            min_affinity: 0,
            min_spend_cents: 0,
            per_member_limit: 1,
            per_store_daily_limit: None,
            per_store_limit: None,
            stacking_group: None,
            channels: vec![Channel::Kiosk, Channel::Associate],
            valid_days: 14,
            value_cents: None,
            cost_cents: 0,
        }
    }
}

/// Columns of `offer_rules` in the order [`Rule::from_row`] reads them, from `offset`.
pub const RULE_COLUMNS: &str =
    "r.targeted_only, r.segment, r.min_tier, r.min_affinity, r.min_spend_cents,
     r.per_member_limit, r.per_store_daily_limit, r.per_store_limit, r.stacking_group, r.channels,
     r.valid_days, r.value_cents, r.cost_cents";

impl Rule {
    /// Reads [`RULE_COLUMNS`] starting at column `offset` of a row that
    /// LEFT JOINed `offer_rules r` (a NULL `targeted_only`: no row, defaults).
    pub fn from_row(row: &Row<'_>, offset: usize) -> rusqlite::Result<Self> {
        let Some(targeted_only) = row.get::<_, Option<bool>>(offset)? else {
            return Ok(Rule::default());
        };
        let segment: Option<String> = row.get(offset + 1)?;
        let channels: String = row.get(offset + 9)?;
        Ok(Rule {
            targeted_only,
            segment: segment.and_then(|s| {
                s.split_once('=')
                    .map(|(c, v)| (c.trim().to_owned(), v.trim().to_owned()))
            }),
            min_tier: row.get(offset + 2)?,
            min_affinity: row.get(offset + 3)?,
            min_spend_cents: row.get(offset + 4)?,
            per_member_limit: row.get(offset + 5)?,
            per_store_daily_limit: row.get(offset + 6)?,
            per_store_limit: row.get(offset + 7)?,
            stacking_group: row.get(offset + 8)?,
            channels: channels.split(',').filter_map(Channel::parse).collect(),
            valid_days: row.get(offset + 10)?,
            value_cents: row.get(offset + 11)?,
            cost_cents: row.get(offset + 12)?,
        })
    }

    /// A campaign's rule (the defaults when it has no row).
    pub fn load(conn: &Connection, campaign_id: i64) -> rusqlite::Result<Rule> {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {RULE_COLUMNS} FROM campaigns c
                 LEFT JOIN offer_rules r ON r.campaign_id = c.campaign_id WHERE c.campaign_id = ?1"
            ))?
            .query_row([campaign_id], |row| Rule::from_row(row, 0))
            .optional()?
            .unwrap_or_default())
    }
}

/// What the rules look at about the member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberFacts {
    pub member_id: i64,
    pub tier: String,
    /// Consents and erasure, as [`crate::consent`] decides on them.
    pub consent: Consents,
    pub demographics: BTreeMap<String, String>,
    /// Campaigns that target the member.
    pub targeted: HashSet<i64>,
    /// Coupons of each campaign issued to the member, ever.
    pub issued_by_campaign: HashMap<i64, i64>,
    /// Stacking groups in which the member holds a live coupon.
    pub live_groups: HashSet<String>,
    /// Spend in the last 90 days, cents.
    pub recent_spend_cents: i64,
}

/// Coupons this store issued per campaign: today and ever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreUsage {
    pub today: HashMap<i64, i64>,
    pub total: HashMap<i64, i64>,
}

/// Why an offer is not for this member here and now: each a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ineligible {
    /// The member asked to be forgotten.
    Erased,
    /// Targeted or profiled offers need personalization consent.
    NoConsent,
    NotStarted,
    Ended,
    /// Not offered through this channel.
    Channel,
    NotTargeted,
    Segment,
    Tier,
    /// Too few purchases of the coupon's products.
    Affinity,
    MinSpend,
    /// The member already holds as many coupons of the campaign as allowed.
    MemberLimit,
    /// The store issued its allowance of the campaign for today / in total.
    StoreDailyLimit,
    StoreLimit,
    /// The member holds a live coupon of the same stacking group.
    Stacking,
}

impl Ineligible {
    pub fn code(self) -> &'static str {
        match self {
            Ineligible::Erased => "erased",
            Ineligible::NoConsent => "no_consent",
            Ineligible::NotStarted => "not_started",
            Ineligible::Ended => "ended",
            Ineligible::Channel => "channel",
            Ineligible::NotTargeted => "not_targeted",
            Ineligible::Segment => "segment",
            Ineligible::Tier => "tier",
            Ineligible::Affinity => "affinity",
            Ineligible::MinSpend => "min_spend",
            Ineligible::MemberLimit => "member_limit",
            Ineligible::StoreDailyLimit => "store_daily_limit",
            Ineligible::StoreLimit => "store_limit",
            Ineligible::Stacking => "stacking",
        }
    }

    /// For people (an associate asking "why not?").
    pub fn message(self) -> &'static str {
        match self {
            Ineligible::Erased => "the member's data was erased",
            Ineligible::NoConsent => "the member has not consented to personalized offers",
            Ineligible::NotStarted => "the campaign has not started",
            Ineligible::Ended => "the campaign has ended",
            Ineligible::Channel => "not offered through this channel",
            Ineligible::NotTargeted => "the campaign does not target this member",
            Ineligible::Segment => "the member is not in the campaign's segment",
            Ineligible::Tier => "the member's tier is below the campaign's",
            Ineligible::Affinity => "too few purchases of the coupon's products",
            Ineligible::MinSpend => "recent spend is below the campaign's minimum",
            Ineligible::MemberLimit => "the member already has this campaign's coupon",
            Ineligible::StoreDailyLimit => "this store has issued today's allowance",
            Ineligible::StoreLimit => "this store has issued its allowance",
            Ineligible::Stacking => "the member holds a coupon that does not stack with this one",
        }
    }
}

/// The offer as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct OfferTerms<'a> {
    pub campaign_id: i64,
    pub starts_on: Day,
    pub ends_on: Day,
    pub rule: &'a Rule,
}

/// Whether `member` may get the offer at a store with `usage` through
/// `channel` on `today` (`YYYY-MM-DD`), given `affinity` purchase lines of
/// its products. The first failing rule, in the order of [`Ineligible`].
pub fn eligibility(
    offer: OfferTerms<'_>,
    member: &MemberFacts,
    usage: &StoreUsage,
    channel: Channel,
    today: Day,
    affinity: u32,
) -> Result<(), Ineligible> {
    let rule = offer.rule;
    let profiled = rule.targeted_only
        || rule.segment.is_some()
        || rule.min_affinity > 0
        || rule.min_spend_cents > 0;
    if member.consent.erased {
        return Err(Ineligible::Erased);
    }
    if profiled && !consent::may_personalize(&member.consent) {
        return Err(Ineligible::NoConsent);
    }
    if today < offer.starts_on {
        return Err(Ineligible::NotStarted);
    }
    if today > offer.ends_on {
        return Err(Ineligible::Ended);
    }
    if !rule.channels.contains(&channel) {
        return Err(Ineligible::Channel);
    }
    if rule.targeted_only && !member.targeted.contains(&offer.campaign_id) {
        return Err(Ineligible::NotTargeted);
    }
    if let Some((column, value)) = &rule.segment
        && member.demographics.get(column) != Some(value)
    {
        return Err(Ineligible::Segment);
    }
    if let Some(min) = &rule.min_tier
        && tier_rank(&member.tier) < tier_rank(min)
    {
        return Err(Ineligible::Tier);
    }
    if affinity < rule.min_affinity {
        return Err(Ineligible::Affinity);
    }
    if member.recent_spend_cents < rule.min_spend_cents {
        return Err(Ineligible::MinSpend);
    }
    let count = |map: &HashMap<i64, i64>| map.get(&offer.campaign_id).copied().unwrap_or(0);
    if count(&member.issued_by_campaign) >= rule.per_member_limit {
        return Err(Ineligible::MemberLimit);
    }
    if rule
        .per_store_daily_limit
        .is_some_and(|limit| count(&usage.today) >= limit)
    {
        return Err(Ineligible::StoreDailyLimit);
    }
    if rule
        .per_store_limit
        .is_some_and(|limit| count(&usage.total) >= limit)
    {
        return Err(Ineligible::StoreLimit);
    }
    if let Some(group) = &rule.stacking_group
        && member.live_groups.contains(group)
    {
        return Err(Ineligible::Stacking);
    }
    Ok(())
}

impl MemberFacts {
    /// Loads what the rules need about `member_id` at `now` (a timestamp);
    /// `None` for an unknown member.
    pub fn load(
        conn: &Connection,
        member_id: i64,
        now: Timestamp,
    ) -> rusqlite::Result<Option<Self>> {
        let Some((tier, consent)) = conn
            .prepare_cached(&format!(
                "SELECT tier, {} FROM members WHERE member_id = ?1",
                consent::COLUMNS
            ))?
            .query_row([member_id], |row| {
                Ok((row.get(0)?, consent::from_row(row, 1)?))
            })
            .optional()?
        else {
            return Ok(None);
        };
        let mut facts = MemberFacts {
            member_id,
            tier,
            consent,
            ..MemberFacts::default()
        };
        if let Some(values) = conn
            .prepare_cached(
                "SELECT age_band, income_band, home_ownership, marital_status, household_size,
                        household_comp, kids_count
                 FROM member_demographics WHERE member_id = ?1",
            )?
            .query_row([member_id], |row| {
                (0..SEGMENT_COLUMNS.len())
                    .map(|i| row.get::<_, Option<String>>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .optional()?
        {
            for (column, value) in SEGMENT_COLUMNS.iter().zip(values) {
                if let Some(value) = value {
                    facts.demographics.insert((*column).to_owned(), value);
                }
            }
        }
        facts.targeted = conn
            .prepare_cached("SELECT campaign_id FROM campaign_targets WHERE member_id = ?1")?
            .query_map([member_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut statement = conn.prepare_cached(
            "SELECT c.campaign_id, r.stacking_group,
                    i.expires_at > ?2 AND NOT EXISTS
                        (SELECT 1 FROM coupon_redemptions x WHERE x.issue_id = i.issue_id)
             FROM coupon_issues i
             JOIN coupons c ON c.coupon_id = i.coupon_id
             LEFT JOIN offer_rules r ON r.campaign_id = c.campaign_id
             WHERE i.member_id = ?1",
        )?;
        let mut rows = statement.query(rusqlite::params![member_id, now])?;
        while let Some(row) = rows.next()? {
            *facts.issued_by_campaign.entry(row.get(0)?).or_default() += 1;
            if let (Some(group), true) = (row.get::<_, Option<String>>(1)?, row.get::<_, bool>(2)?)
            {
                facts.live_groups.insert(group);
            }
        }
        facts.recent_spend_cents = conn
            .prepare_cached(
                "SELECT coalesce(sum(l.sales_cents), 0) FROM baskets b
                 JOIN purchase_lines l ON l.basket_id = b.basket_id
                 WHERE b.member_id = ?1 AND b.purchased_at >= date(?2, '-90 days') AND b.purchased_at < ?2",
            )?
            .query_row(rusqlite::params![member_id, now], |row| row.get(0))?;
        Ok(Some(facts))
    }
}

impl StoreUsage {
    /// Coupons `store_id` issued per campaign on `today` and ever, counting
    /// issues from `since` on (the earliest start of the campaigns that
    /// matter: nothing of theirs was issued before it).
    pub fn load(
        conn: &Connection,
        store_id: i64,
        today: Day,
        since: Day,
    ) -> rusqlite::Result<Self> {
        let mut usage = StoreUsage::default();
        let mut statement = conn.prepare_cached(
            "SELECT c.campaign_id, count(*), count(*) FILTER (WHERE substr(i.issued_at, 1, 10) = ?2)
             FROM coupon_issues i JOIN coupons c ON c.coupon_id = i.coupon_id
             WHERE i.store_id = ?1 AND i.issued_at >= ?3 GROUP BY c.campaign_id",
        )?;
        let mut rows = statement.query(rusqlite::params![store_id, today, since])?;
        while let Some(row) = rows.next()? {
            let campaign: i64 = row.get(0)?;
            usage.total.insert(campaign, row.get(1)?);
            usage.today.insert(campaign, row.get(2)?);
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::lit::day;

    fn member() -> MemberFacts {
        MemberFacts {
            member_id: 7,
            tier: "silver".into(),
            consent: Consents {
                personalization: true,
                ..Consents::default()
            },
            targeted: HashSet::from([1]),
            recent_spend_cents: 5_000,
            demographics: BTreeMap::from([("income_band".into(), "50-74K".into())]),
            ..MemberFacts::default()
        }
    }

    fn check(
        rule: &Rule,
        member: &MemberFacts,
        usage: &StoreUsage,
        today: Day,
    ) -> Result<(), Ineligible> {
        let offer = OfferTerms {
            campaign_id: 1,
            starts_on: day("2026-03-01"),
            ends_on: day("2026-03-31"),
            rule,
        };
        eligibility(offer, member, usage, Channel::Kiosk, today, 3)
    }

    /// Each rule refuses with its own code, and passes at its boundary.
    #[test]
    fn every_rule_refuses_with_its_own_reason() {
        let usage = StoreUsage::default();
        let base = Rule::default();
        let ok = |rule: &Rule, m: &MemberFacts| check(rule, m, &usage, day("2026-03-10"));
        assert_eq!(ok(&base, &member()), Ok(()));
        assert_eq!(
            check(&base, &member(), &usage, day("2026-03-01")),
            Ok(()),
            "first day"
        );
        assert_eq!(
            check(&base, &member(), &usage, day("2026-03-31")),
            Ok(()),
            "last day"
        );
        assert_eq!(
            check(&base, &member(), &usage, day("2026-02-28")),
            Err(Ineligible::NotStarted)
        );
        assert_eq!(
            check(&base, &member(), &usage, day("2026-04-01")),
            Err(Ineligible::Ended)
        );
        let m = MemberFacts {
            consent: Consents {
                erased: true,
                ..member().consent
            },
            ..member()
        };
        assert_eq!(ok(&base, &m), Err(Ineligible::Erased));
        let m = MemberFacts {
            consent: Consents::default(),
            ..member()
        };
        assert_eq!(ok(&base, &m), Err(Ineligible::NoConsent));
        let open = Rule {
            targeted_only: false,
            ..Rule::default()
        };
        assert_eq!(
            ok(&open, &m),
            Ok(()),
            "an offer open to all needs no profiling consent"
        );
        let m = MemberFacts {
            targeted: HashSet::new(),
            ..member()
        };
        assert_eq!(ok(&base, &m), Err(Ineligible::NotTargeted));
        assert_eq!(ok(&open, &m), Ok(()));
        let rule = Rule {
            channels: vec![Channel::Associate],
            ..Rule::default()
        };
        assert_eq!(ok(&rule, &member()), Err(Ineligible::Channel));
        let rule = Rule {
            segment: Some(("income_band".into(), "75-99K".into())),
            ..Rule::default()
        };
        assert_eq!(ok(&rule, &member()), Err(Ineligible::Segment));
        let rule = Rule {
            segment: Some(("income_band".into(), "50-74K".into())),
            ..Rule::default()
        };
        assert_eq!(ok(&rule, &member()), Ok(()));
        let rule = Rule {
            min_tier: Some("gold".into()),
            ..Rule::default()
        };
        assert_eq!(ok(&rule, &member()), Err(Ineligible::Tier));
        let rule = Rule {
            min_tier: Some("silver".into()),
            ..Rule::default()
        };
        assert_eq!(ok(&rule, &member()), Ok(()));
        let rule = Rule {
            min_affinity: 4,
            ..Rule::default()
        };
        assert_eq!(ok(&rule, &member()), Err(Ineligible::Affinity));
        let rule = Rule {
            min_affinity: 3,
            ..Rule::default()
        };
        assert_eq!(ok(&rule, &member()), Ok(()));
        let rule = Rule {
            min_spend_cents: 5_001,
            ..Rule::default()
        };
        assert_eq!(ok(&rule, &member()), Err(Ineligible::MinSpend));
        let m = MemberFacts {
            issued_by_campaign: HashMap::from([(1, 1)]),
            ..member()
        };
        assert_eq!(ok(&base, &m), Err(Ineligible::MemberLimit));
        let twice = Rule {
            per_member_limit: 2,
            ..Rule::default()
        };
        assert_eq!(ok(&twice, &m), Ok(()));
        let used = StoreUsage {
            today: HashMap::from([(1, 5)]),
            total: HashMap::from([(1, 9)]),
        };
        let rule = Rule {
            per_store_daily_limit: Some(5),
            ..Rule::default()
        };
        assert_eq!(
            check(&rule, &member(), &used, day("2026-03-10")),
            Err(Ineligible::StoreDailyLimit)
        );
        let rule = Rule {
            per_store_daily_limit: Some(6),
            per_store_limit: Some(9),
            ..Rule::default()
        };
        assert_eq!(
            check(&rule, &member(), &used, day("2026-03-10")),
            Err(Ineligible::StoreLimit)
        );
        let rule = Rule {
            stacking_group: Some("dairy".into()),
            ..Rule::default()
        };
        let m = MemberFacts {
            live_groups: HashSet::from(["dairy".to_owned()]),
            ..member()
        };
        assert_eq!(ok(&rule, &m), Err(Ineligible::Stacking));
        let m = MemberFacts {
            live_groups: HashSet::from(["bakery".to_owned()]),
            ..member()
        };
        assert_eq!(ok(&rule, &m), Ok(()));
        // Codes are distinct.
        let all = [
            Ineligible::Erased,
            Ineligible::NoConsent,
            Ineligible::NotStarted,
            Ineligible::Ended,
            Ineligible::Channel,
            Ineligible::NotTargeted,
            Ineligible::Segment,
            Ineligible::Tier,
            Ineligible::Affinity,
            Ineligible::MinSpend,
            Ineligible::MemberLimit,
            Ineligible::StoreDailyLimit,
            Ineligible::StoreLimit,
            Ineligible::Stacking,
        ];
        let codes: HashSet<&str> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
