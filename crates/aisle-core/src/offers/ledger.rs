//! The coupon ledger: issuing signed instances and redeeming them exactly
//! once per replica, offline, with a bounded risk for coupons of other stores.
//!
//! - [`issue_in`] writes a `coupon_issues` row and its `CouponIssued` outbox
//!   event in the caller's transaction (the offer engine's); [`issue`] wraps
//!   it in its own immediate transaction.
//! - [`redeem`] judges a scanned token or a keyed-in numeric code and, in ONE
//!   immediate transaction, records either the redemption (`coupon_redemptions`,
//!   whose `issue_id` is UNIQUE) with its `CouponRedeemed` outbox event, or
//!   the refusal in `audit_log` (action `coupon_refused`, never the token's
//!   signature). Two tills redeeming one coupon at once are serialized by the
//!   immediate transaction: one redeems, the other gets `already_redeemed`.
//! - [`check`] is the same judgement, read-only (what the till shows first).
//!
//! A coupon this device did not sign (issued at another store, or by
//! another device of this store: each is a replica of its own) may already
//! have been redeemed elsewhere while this replica was offline; such a
//! redemption is accepted only under
//! the [`RedeemPolicy`]'s floor limit and daily budget (docs/OFFERS.md,
//! "Coupons: offline risk budget"), and HQ reconciles the rest.
//!
//! Each device signs with its own Ed25519 issuing key (in the replica's
//! vault, [`crate::vault::ISSUER_KEY`]: registered with HQ at enrolment, or made here on first issue
//! as key id 0 when the replica has no HQ); the public keys of every issuing
//! store are in `coupon_issuers`; both are kept by [`crate::keys`]. The
//! clock is always an input.

use crate::time::Timestamp;
use aisle_proto::{CouponInstanceRecord, CouponRedemptionRecord};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use serde_json::json;

use super::coupon::{self, Channel, CouponText, Instance, Refusal};
use crate::audit::{self, AuditEntry};
use crate::keys::{self, KeyError};
use crate::outbox::{self, OutboxError};
/// The audit action of a refused coupon.
pub const COUPON_REFUSED: &str = "coupon_refused";

/// Errors of the ledger: a refusal (with its reason) or a fault.
#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("invalid coupon request: {0}")]
    Invalid(String),
    #[error("no randomness from the operating system")]
    Random,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl CouponError {
    /// The refusal's reason, if this is one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            CouponError::Refused(reason) => Some(*reason),
            _ => None,
        }
    }

    /// A stable code: the refusal's, or `invalid` / `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            CouponError::Refused(reason) => reason.code(),
            CouponError::Invalid(_) => "invalid",
            CouponError::Random
            | CouponError::Key(_)
            | CouponError::Outbox(_)
            | CouponError::Sqlite(_) => "internal",
        }
    }
}

/// One instance to issue. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    pub coupon_id: i64,
    pub member_id: i64,
    /// The issuing store (this replica's).
    pub store_id: i64,
    pub channel: Channel,
    pub issued_at: u64,
    pub expires_at: u64,
}

/// An issued instance: what the member is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCoupon {
    pub issue_id: i64,
    pub serial: String,
    /// The signed token, for the QR code.
    pub token: String,
    /// The 17 digits a cashier keys in.
    pub numeric_code: String,
    pub coupon_id: i64,
    pub member_id: i64,
    pub store_id: i64,
    pub key_id: i64,
    /// Unix seconds.
    pub expires_at: u64,
    pub outbox_key: String,
}

/// The knobs of redemption (docs/OFFERS.md, "Coupons: offline risk budget").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedeemPolicy {
    /// Largest value of one coupon issued at another store accepted offline.
    pub floor_limit_cents: i64,
    /// Largest total value of such redemptions per store and (UTC) day.
    pub daily_budget_cents: i64,
    /// The value counted for a percentage coupon (its basket is not known here).
    pub percent_value_cents: i64,
    /// Refuse (`member_required`) when the member is not identified.
    pub require_member: bool,
}

impl Default for RedeemPolicy {
    fn default() -> Self {
        Self {
            floor_limit_cents: 500,
            daily_budget_cents: 5_000,
            percent_value_cents: 500,
            require_member: true,
        }
    }
}

/// A redemption to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedeemRequest<'a> {
    /// The scanned token or the keyed-in numeric code.
    pub code: &'a str,
    /// The member identified at the till, if any.
    pub member_id: Option<i64>,
    /// This replica's store.
    pub store_id: i64,
    /// The till (the audit's actor).
    pub till_id: &'a str,
    /// Unix seconds.
    pub now_secs: u64,
}

/// The coupon as a till shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouponView {
    pub coupon_id: i64,
    pub campaign_id: i64,
    pub description: Option<String>,
    pub discount_cents: Option<i64>,
    pub discount_percent: Option<i64>,
}

/// A coupon that would be (check) or was (redeem) accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub serial: String,
    pub coupon: CouponView,
    pub member_id: i64,
    pub issuer_store_id: i64,
    /// Unix seconds.
    pub expires_at: u64,
    /// The value counted against the risk budget.
    pub value_cents: i64,
    /// Not signed by this device: counted in the daily offline budget.
    pub offline_risk: bool,
}

/// A recorded redemption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redeemed {
    pub redemption_id: i64,
    #[serde(flatten)]
    pub accepted: Accepted,
    pub outbox_key: String,
}

fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn day(secs: u64) -> String {
    crate::dates::date_string(sql_int(secs.min(253_402_300_799)) / 86_400)
}

fn new_serial(tx: &Transaction<'_>) -> Result<String, CouponError> {
    loop {
        let mut bytes = [0u8; 8];
        getrandom::getrandom(&mut bytes).map_err(|_| CouponError::Random)?;
        let serial = format!("{:016}", u64::from_le_bytes(bytes) % 10_000_000_000_000_000);
        let taken = tx
            .prepare_cached("SELECT 1 FROM coupon_issues WHERE serial = ?1")?
            .exists([&serial])?;
        if !taken {
            return Ok(serial);
        }
    }
}

/// Issues an instance inside the caller's (immediate) transaction: the
/// `coupon_issues` row and its `CouponIssued` outbox event.
#[tracing::instrument(skip_all, fields(coupon_id = req.coupon_id, member_id = req.member_id), err)]
pub fn issue_in(tx: &Transaction<'_>, req: &IssueRequest) -> Result<IssuedCoupon, CouponError> {
    if req.coupon_id < 0 || req.member_id < 0 || req.store_id < 0 {
        return Err(CouponError::Invalid(
            "coupon, member and store ids of an instance are not negative".into(),
        ));
    }
    if req.expires_at <= req.issued_at {
        return Err(CouponError::Invalid(format!(
            "expiry {} is not after issue {}",
            Timestamp::from_unix_u64(req.expires_at),
            Timestamp::from_unix_u64(req.issued_at)
        )));
    }
    if let Some(provisioned) = crate::replica::meta(tx, "sync.store_id")?
        && provisioned != req.store_id.to_string()
    {
        return Err(CouponError::Invalid(format!(
            "this replica is store {provisioned}'s: it cannot sign for store {}",
            req.store_id
        )));
    }
    let known = tx
        .prepare_cached("SELECT 1 FROM coupons WHERE coupon_id = ?1")?
        .exists([req.coupon_id])?;
    if !known {
        return Err(CouponError::Refused(Refusal::CouponWithdrawn));
    }
    let now = Timestamp::from_unix_u64(req.issued_at);
    tx.prepare_cached("INSERT OR IGNORE INTO stores (store_id, name) VALUES (?1, 'Store ' || ?1)")?
        .execute([req.store_id])?;
    let (key_id, key) = keys::issuing_key_or_make(tx, req.store_id, now)?;
    let serial = new_serial(tx)?;
    let max_value_cents = max_value(tx, req.coupon_id)?;
    let instance = Instance {
        serial: serial.clone(),
        coupon_id: req.coupon_id,
        member_id: req.member_id,
        store_id: req.store_id,
        key_id,
        channel: req.channel,
        expires_at: req.expires_at,
        max_value_cents: Some(max_value_cents),
    };
    let token = coupon::encode(&instance, &key);
    let expires = Timestamp::from_unix_u64(req.expires_at);
    tx.prepare_cached(
        "INSERT INTO coupon_issues (serial, coupon_id, member_id, store_id, channel, issued_at,
             expires_at, key_id, bound_member_id, max_value_cents)
         VALUES (?1, ?2, (SELECT member_id FROM members WHERE member_id = ?3), ?4, ?5, ?6, ?7, ?8, ?3, ?9)",
    )?
    .execute(params![
        serial,
        req.coupon_id,
        req.member_id,
        req.store_id,
        req.channel.name(),
        now,
        expires,
        key_id,
        max_value_cents
    ])?;
    let issue_id = tx.last_insert_rowid();
    let outbox_key = outbox::append(
        tx,
        aisle_proto::events::CouponIssued {
            serial: serial.clone(),
            coupon_id: req.coupon_id,
            member_id: req.member_id,
            store_id: req.store_id,
            key_id,
            channel: req.channel.name().to_owned(),
            issued_at: now.to_string(),
            expires_at: expires.to_string(),
        },
        now,
    )?;
    Ok(IssuedCoupon {
        issue_id,
        numeric_code: coupon::numeric_code(&serial),
        serial,
        token,
        coupon_id: req.coupon_id,
        member_id: req.member_id,
        store_id: req.store_id,
        key_id,
        expires_at: req.expires_at,
        outbox_key,
    })
}

/// The most a percentage coupon's instance is worth when its catalog row
/// sets no cap: signed into the token, so a till counts it at this value
/// and discounts no more (docs/OFFERS.md, "Coupons: offline risk budget").
pub const PERCENT_MAX_CENTS: i64 = 500;

/// What an instance of `coupon_id` is worth at most: a fixed coupon's
/// discount, a percentage coupon's cap ([`PERCENT_MAX_CENTS`]), 0 when the
/// catalog says neither.
fn max_value(tx: &Connection, coupon_id: i64) -> rusqlite::Result<i64> {
    let (cents, percent): (Option<i64>, Option<i64>) = tx
        .prepare_cached(
            "SELECT discount_cents, discount_percent FROM coupons WHERE coupon_id = ?1",
        )?
        .query_row([coupon_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(match (cents, percent) {
        (Some(cents), _) => cents,
        (None, Some(_)) => PERCENT_MAX_CENTS,
        (None, None) => 0,
    })
}

/// [`issue_in`] in its own immediate transaction (`conn`: the replica's writer).
pub fn issue(conn: &Connection, req: &IssueRequest) -> Result<IssuedCoupon, CouponError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let issued = issue_in(&tx, req)?;
    tx.commit()?;
    Ok(issued)
}

/// The instance as the ledger knows it.
struct LedgerIssue {
    issue_id: i64,
    instance: Instance,
    issued_at: Option<Timestamp>,
}

fn ledger_issue(conn: &Connection, serial: &str) -> rusqlite::Result<Option<LedgerIssue>> {
    conn.prepare_cached(
        "SELECT issue_id, coupon_id, coalesce(bound_member_id, member_id), store_id,
                coalesce(key_id, -1), channel, expires_at, issued_at, max_value_cents
         FROM coupon_issues WHERE serial = ?1",
    )?
    .query_row([serial], |row| {
        let expires: String = row.get(6)?;
        let channel: String = row.get(5)?;
        Ok(LedgerIssue {
            issued_at: row
                .get::<_, Option<String>>(7)?
                .and_then(|t| Timestamp::parse(&t).ok()),
            issue_id: row.get(0)?,
            instance: Instance {
                serial: serial.to_owned(),
                coupon_id: row.get(1)?,
                member_id: row.get::<_, Option<i64>>(2)?.unwrap_or(-1),
                store_id: row.get::<_, Option<i64>>(3)?.unwrap_or(-1),
                key_id: row.get(4)?,
                channel: Channel::parse(&channel).unwrap_or(Channel::Import),
                expires_at: crate::dates::seconds_of(&expires)
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0),
                max_value_cents: row.get(8)?,
            },
        })
    })
    .optional()
}

/// The token of an instance this store issued, signed again (Ed25519 is
/// deterministic: the same text the member was first shown), so a screen
/// can show the QR code of a coupon issued earlier. `None` for an unknown
/// serial or an instance signed by another store or another key.
pub fn token_for(conn: &Connection, serial: &str) -> Result<Option<String>, CouponError> {
    let Some(issue) = ledger_issue(conn, serial)? else {
        return Ok(None);
    };
    let (key_id, key) = match keys::issuing_key(conn) {
        Ok(Some(found)) => found,
        Ok(None) | Err(KeyError::Unreadable) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    if key_id != issue.instance.key_id {
        return Ok(None);
    }
    let ours = keys::issuer_public_key(conn, issue.instance.store_id, issue.instance.key_id)?
        .is_some_and(|public| public == key.verifying_key());
    Ok(ours.then(|| coupon::encode(&issue.instance, &key)))
}

/// A refusal with what the audit keeps.
struct Refused {
    reason: Refusal,
    detail: serde_json::Value,
}

/// The judgement: the accepted coupon and its ledger row (if any yet), or a refusal.
struct Judged {
    accepted: Accepted,
    issue_id: Option<i64>,
    instance: Instance,
}

fn judge(
    conn: &Connection,
    req: &RedeemRequest<'_>,
    policy: &RedeemPolicy,
) -> rusqlite::Result<Result<Judged, Refused>> {
    let read = match coupon::read(req.code) {
        Ok(read) => read,
        Err(reason) => {
            return Ok(Err(Refused {
                reason,
                detail: json!({ "length": req.code.trim().chars().count() }),
            }));
        }
    };
    let (instance, issue_id) = match read {
        CouponText::Serial(serial) => match ledger_issue(conn, &serial)? {
            None => {
                return Ok(Err(Refused {
                    reason: Refusal::UnknownSerial,
                    detail: json!({ "serial": serial }),
                }));
            }
            Some(issue) => (issue.instance, Some(issue.issue_id)),
        },
        CouponText::Token(token) => {
            let instance = &token.instance;
            let Some(issuer) = keys::issuer(conn, instance.store_id, instance.key_id)? else {
                return Ok(Err(Refused {
                    reason: Refusal::UnknownIssuer,
                    detail: json!({ "serial": instance.serial, "issuer_store_id": instance.store_id, "key_id": instance.key_id }),
                }));
            };
            if let Err(reason) = coupon::verify(&token, &issuer.public_key) {
                return Ok(Err(Refused {
                    reason,
                    detail: json!({ "serial": instance.serial, "issuer_store_id": instance.store_id, "key_id": instance.key_id }),
                }));
            }
            let known = ledger_issue(conn, &instance.serial)?;
            // A revoked key (a stolen device's) signs whatever its holder
            // likes, a backdated issue time included: only an instance the
            // ledger already holds (issued here, or reported to HQ by the
            // device before it was revoked) is still good.
            if let Some(revoked_at) = issuer.revoked_at {
                let issued_before = known
                    .as_ref()
                    .and_then(|issue| issue.issued_at)
                    .is_some_and(|issued_at| issued_at <= revoked_at);
                if !issued_before {
                    return Ok(Err(Refused {
                        reason: Refusal::RevokedKey,
                        detail: json!({ "serial": instance.serial, "issuer_store_id": instance.store_id, "key_id": instance.key_id, "revoked_at": revoked_at }),
                    }));
                }
            }
            match known {
                Some(issue)
                    if issue.instance.coupon_id != instance.coupon_id
                        || issue.instance.store_id != instance.store_id
                        || (issue.instance.member_id != instance.member_id
                            && issue.instance.member_id != -1) =>
                {
                    // A genuine signature over fields the ledger holds
                    // otherwise for this serial: never a real instance.
                    return Ok(Err(Refused {
                        reason: Refusal::Forged,
                        detail: json!({ "serial": instance.serial, "ledger_differs": true }),
                    }));
                }
                Some(issue) => (token.instance, Some(issue.issue_id)),
                None => (token.instance, None),
            }
        }
    };
    let with = |reason: Refusal, extra: serde_json::Value| {
        let mut detail = json!({
            "serial": instance.serial,
            "coupon_id": instance.coupon_id,
            "issuer_store_id": instance.store_id,
        });
        if let (Some(d), Some(e)) = (detail.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        Ok(Err(Refused { reason, detail }))
    };
    match req.member_id {
        Some(member_id) if member_id != instance.member_id => {
            return with(
                Refusal::WrongMember,
                json!({ "bound_member_id": instance.member_id }),
            );
        }
        None if policy.require_member => return with(Refusal::MemberRequired, json!({})),
        _ => {}
    }
    if req.now_secs > instance.expires_at {
        return with(
            Refusal::Expired,
            json!({ "expires_at": Timestamp::from_unix_u64(instance.expires_at) }),
        );
    }
    let coupon: Option<(CouponView, String, String)> = conn
        .prepare_cached(
            "SELECT c.coupon_id, c.campaign_id, c.description, c.discount_cents, c.discount_percent,
                    g.starts_on, g.ends_on
             FROM coupons AS c JOIN campaigns AS g ON g.campaign_id = c.campaign_id
             WHERE c.coupon_id = ?1",
        )?
        .query_row([instance.coupon_id], |row| {
            Ok((
                CouponView {
                    coupon_id: row.get(0)?,
                    campaign_id: row.get(1)?,
                    description: row.get(2)?,
                    discount_cents: row.get(3)?,
                    discount_percent: row.get(4)?,
                },
                row.get(5)?,
                row.get(6)?,
            ))
        })
        .optional()?;
    let Some((coupon, starts_on, ends_on)) = coupon else {
        return with(Refusal::CouponWithdrawn, json!({}));
    };
    let today = day(req.now_secs);
    if today.as_str() < starts_on.get(..10).unwrap_or(&starts_on) {
        return with(Refusal::NotYetValid, json!({ "starts_on": starts_on }));
    }
    if today.as_str() > ends_on.get(..10).unwrap_or(&ends_on) {
        return with(Refusal::CampaignEnded, json!({ "ends_on": ends_on }));
    }
    if let Some(issue_id) = issue_id {
        let earlier: Option<(Option<i64>, String, Option<String>)> = conn
            .prepare_cached(
                "SELECT store_id, redeemed_on, redeemed_at FROM coupon_redemptions WHERE issue_id = ?1",
            )?
            .query_row([issue_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        if let Some((store_id, on, at)) = earlier {
            return with(
                Refusal::AlreadyRedeemed,
                json!({ "redeemed_store_id": store_id, "redeemed_at": at.unwrap_or(on) }),
            );
        }
    }
    // A signed maximum is what a percentage coupon counts at; a fixed
    // coupon never counts below its catalog discount.
    let value_cents = match (
        coupon.discount_cents,
        coupon.discount_percent,
        instance.max_value_cents,
    ) {
        (Some(cents), _, signed) => cents.max(signed.unwrap_or(0)),
        (None, Some(_), Some(signed)) => signed,
        (None, Some(_), None) => policy.percent_value_cents,
        (None, None, signed) => signed.unwrap_or(0),
    };
    // Only an instance this device signed is judged by its ledger alone: a
    // store's kiosk, tablet and tills are separate replicas, and one of them
    // cannot know offline what another redeemed.
    let issued_here = match keys::issuing_key(conn) {
        Ok(Some((_, own))) => keys::issuer_public_key(conn, instance.store_id, instance.key_id)?
            .is_some_and(|public| public == own.verifying_key()),
        Ok(None) | Err(KeyError::Unreadable) => false,
        Err(KeyError::Sqlite(err)) => return Err(err),
        Err(_) => false,
    };
    let offline_risk = !issued_here;
    if offline_risk {
        if value_cents > policy.floor_limit_cents {
            return with(
                Refusal::OverFloorLimit,
                json!({ "value_cents": value_cents, "floor_limit_cents": policy.floor_limit_cents }),
            );
        }
        let spent: i64 = conn
            .prepare_cached(
                "SELECT coalesce(sum(value_cents), 0) FROM coupon_redemptions
                 WHERE store_id = ?1 AND redeemed_on = ?2 AND offline_risk = 1",
            )?
            .query_row(params![req.store_id, today], |row| row.get(0))?;
        if spent + value_cents > policy.daily_budget_cents {
            return with(
                Refusal::OverRiskBudget,
                json!({ "value_cents": value_cents, "spent_cents": spent, "daily_budget_cents": policy.daily_budget_cents }),
            );
        }
    }
    Ok(Ok(Judged {
        accepted: Accepted {
            serial: instance.serial.clone(),
            coupon,
            member_id: instance.member_id,
            issuer_store_id: instance.store_id,
            expires_at: instance.expires_at,
            value_cents,
            offline_risk,
        },
        issue_id,
        instance,
    }))
}

/// What the till shows before committing: the judgement, read-only (no
/// audit row; any connection, readers included).
pub fn check(
    conn: &Connection,
    req: &RedeemRequest<'_>,
    policy: &RedeemPolicy,
) -> Result<Accepted, CouponError> {
    let tx = conn.unchecked_transaction()?;
    let judged = judge(&tx, req, policy)?;
    tx.finish()?;
    judged
        .map(|j| j.accepted)
        .map_err(|refused| CouponError::Refused(refused.reason))
}

/// Redeems a coupon: judges it and records the redemption (and its outbox
/// event) or the refusal (an audit row), in one immediate transaction.
/// `conn` must be the replica's writer (or a writer connection of its own).
#[tracing::instrument(skip_all, fields(store_id = req.store_id, till_id = req.till_id))]
pub fn redeem(
    conn: &Connection,
    req: &RedeemRequest<'_>,
    policy: &RedeemPolicy,
) -> Result<Redeemed, CouponError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let judged = match judge(&tx, req, policy)? {
        Ok(judged) => judged,
        Err(refused) => {
            audit_refusal(&tx, req, &refused)?;
            tx.commit()?;
            return Err(CouponError::Refused(refused.reason));
        }
    };
    let now = Timestamp::from_unix_u64(req.now_secs);
    let instance = &judged.instance;
    let issue_id = match judged.issue_id {
        Some(id) => id,
        None => {
            // A token of another store not yet known here: the instance
            // enters the ledger now (issued_at: first seen here).
            tx.prepare_cached(
                "INSERT OR IGNORE INTO stores (store_id, name) VALUES (?1, 'Store ' || ?1)",
            )?
            .execute([instance.store_id])?;
            tx.prepare_cached(
                "INSERT INTO coupon_issues (serial, coupon_id, member_id, store_id, channel,
                     issued_at, expires_at, key_id, bound_member_id, max_value_cents)
                 VALUES (?1, ?2, (SELECT member_id FROM members WHERE member_id = ?3), ?4, ?5,
                     ?6, ?7, ?8, ?3, ?9)",
            )?
            .execute(params![
                instance.serial,
                instance.coupon_id,
                instance.member_id,
                instance.store_id,
                instance.channel.name(),
                now,
                Timestamp::from_unix_u64(instance.expires_at),
                instance.key_id,
                instance.max_value_cents
            ])?;
            tx.last_insert_rowid()
        }
    };
    let accepted = judged.accepted;
    tx.prepare_cached(
        "INSERT INTO coupon_redemptions (coupon_id, member_id, issue_id, store_id, redeemed_on,
             redeemed_at, till_id, value_cents, offline_risk)
         VALUES (?1, (SELECT member_id FROM members WHERE member_id = ?2), ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        accepted.coupon.coupon_id,
        accepted.member_id,
        issue_id,
        req.store_id,
        day(req.now_secs),
        now,
        req.till_id,
        accepted.value_cents,
        accepted.offline_risk
    ])?;
    let redemption_id = tx.last_insert_rowid();
    let outbox_key = outbox::append(
        &tx,
        aisle_proto::events::CouponRedeemed {
            serial: accepted.serial.clone(),
            coupon_id: accepted.coupon.coupon_id,
            member_id: accepted.member_id,
            issuer_store_id: instance.store_id,
            key_id: instance.key_id,
            channel: instance.channel.name().to_owned(),
            expires_at: Timestamp::from_unix_u64(instance.expires_at).to_string(),
            store_id: req.store_id,
            redeemed_at: now.to_string(),
            till_id: req.till_id.to_owned(),
            value_cents: accepted.value_cents,
            offline_risk: accepted.offline_risk,
        },
        now,
    )?;
    tx.commit()?;
    tracing::info!(serial = %accepted.serial, value_cents = accepted.value_cents, offline_risk = accepted.offline_risk, "coupon redeemed");
    Ok(Redeemed {
        redemption_id,
        accepted,
        outbox_key,
    })
}

fn audit_refusal(
    tx: &Transaction<'_>,
    req: &RedeemRequest<'_>,
    refused: &Refused,
) -> rusqlite::Result<()> {
    let mut detail = refused.detail.clone();
    detail["reason"] = json!(refused.reason.code());
    tracing::info!(
        till_id = req.till_id,
        member_id = req.member_id,
        reason = refused.reason.code(),
        "coupon refused"
    );
    audit::record(
        tx,
        &AuditEntry {
            at: Timestamp::from_unix_u64(req.now_secs),
            actor: req.till_id,
            action: COUPON_REFUSED,
            member_id: req.member_id,
            detail: &detail,
        },
    )
}

/// The instances issued to a member, with their redemption if known (what
/// HQ sends with the member's record; imported history is left out).
pub fn read_instances(
    conn: &Connection,
    member_id: i64,
) -> rusqlite::Result<Vec<CouponInstanceRecord>> {
    conn.prepare_cached(
        "SELECT i.serial, i.coupon_id, i.store_id, i.key_id, i.channel, i.issued_at, i.expires_at,
                r.store_id, coalesce(r.redeemed_at, r.redeemed_on)
         FROM coupon_issues AS i LEFT JOIN coupon_redemptions AS r ON r.issue_id = i.issue_id
         WHERE i.bound_member_id = ?1 AND i.store_id IS NOT NULL ORDER BY i.issue_id",
    )?
    .query_map([member_id], |row| {
        let redeemed_at: Option<String> = row.get(8)?;
        Ok(CouponInstanceRecord {
            serial: row.get(0)?,
            coupon_id: row.get(1)?,
            issuer_store_id: row.get(2)?,
            key_id: row.get(3)?,
            channel: row.get(4)?,
            issued_at: row.get(5)?,
            expires_at: row.get(6)?,
            redemption: match redeemed_at {
                Some(redeemed_at) => Some(CouponRedemptionRecord {
                    store_id: row.get(7)?,
                    redeemed_at,
                }),
                None => None,
            },
        })
    })?
    .collect()
}

/// Adds instances (and redemptions) HQ sent with a member's record. The
/// ledger only grows: a redemption known here is never removed or replaced.
/// Instances of coupons not in this replica's catalog are skipped.
pub fn apply_instances(
    tx: &Transaction<'_>,
    member_id: i64,
    instances: &[CouponInstanceRecord],
) -> rusqlite::Result<()> {
    for record in instances {
        if !coupon::is_serial(&record.serial) || Channel::parse(&record.channel).is_none() {
            continue;
        }
        let known = tx
            .prepare_cached("SELECT 1 FROM coupons WHERE coupon_id = ?1")?
            .exists([record.coupon_id])?;
        if !known {
            continue;
        }
        tx.prepare_cached(
            "INSERT OR IGNORE INTO stores (store_id, name) VALUES (?1, 'Store ' || ?1)",
        )?
        .execute([record.issuer_store_id])?;
        tx.prepare_cached(
            "INSERT INTO coupon_issues (serial, coupon_id, member_id, store_id, channel, issued_at,
                 expires_at, key_id, bound_member_id)
             VALUES (?1, ?2, (SELECT member_id FROM members WHERE member_id = ?3), ?4, ?5, ?6, ?7, ?8, ?3)
             ON CONFLICT (serial) DO NOTHING",
        )?
        .execute(params![
            record.serial,
            record.coupon_id,
            member_id,
            record.issuer_store_id,
            record.channel,
            record.issued_at,
            record.expires_at,
            record.key_id
        ])?;
        if let Some(redemption) = &record.redemption {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO stores (store_id, name) VALUES (?1, 'Store ' || ?1)",
            )?
            .execute([redemption.store_id])?;
            tx.prepare_cached(
                "INSERT INTO coupon_redemptions (coupon_id, member_id, issue_id, store_id,
                     redeemed_on, redeemed_at)
                 SELECT i.coupon_id, i.member_id, i.issue_id, ?2, substr(?3, 1, 10), ?3
                 FROM coupon_issues AS i WHERE i.serial = ?1
                 ON CONFLICT (issue_id) DO NOTHING",
            )?
            .execute(params![
                record.serial,
                redemption.store_id,
                redemption.redeemed_at
            ])?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
