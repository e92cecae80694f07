//! The kiosk's decisions, free of any UI: what a confirmed scan leads to
//! (a member's private welcome with picks and coupons, a product, a coupon,
//! or a refusal people understand) and when a session ends. The Slint app
//! (`crates/aisle-kiosk`) only renders these and feeds them scans and the
//! clock.

use crate::time::Timestamp;
use rusqlite::Connection;
use serde::Serialize;

use crate::identify::member_code::CodePolicy;
use crate::identify::{self, Identified};
use crate::offers::engine::{self, DecideRequest, Exploration, OfferBook};
use crate::offers::issue::{self, OfferIssue};
use crate::offers::ledger;
use crate::offers::model::RedeemModel;
use crate::offers::rules::Channel;
use crate::recommend::serve::{Policy, Ranking};
use crate::welcome::{self, CouponStatus, ProductView, Welcome};

/// What a kiosk is and how it behaves.
#[derive(Debug, Clone)]
pub struct KioskConfig {
    pub store_id: i64,
    /// The device name, in audits and the outbox.
    pub device: String,
    /// Items per list on the welcome screen.
    pub picks: usize,
    /// New coupons issued at most per visit (the best eligible offers).
    pub issue_per_visit: usize,
    /// Seconds without a touch before the screen goes back to attract.
    pub idle_secs: u64,
    pub codes: CodePolicy,
    pub serve: Policy,
    /// When unknown cards in a burst make the kiosk stop taking cards.
    pub card_burst: CardBurst,
}

/// Card enumeration (a USB keystroke injector typing card numbers): after
/// `max_unknown` unknown cards within `window_secs`, the kiosk takes no card
/// for `cool_down_secs` (member app codes still work) and audits the burst
/// (`card_burst`). Every unknown card is audited (`unknown_card`, with the
/// number's last four digits only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardBurst {
    pub max_unknown: usize,
    pub window_secs: i64,
    pub cool_down_secs: i64,
}

impl Default for CardBurst {
    /// A shopper mistyping or trying two old cards never reaches it.
    fn default() -> Self {
        Self {
            max_unknown: 5,
            window_secs: 60,
            cool_down_secs: 300,
        }
    }
}

/// The audit action of an unknown card at a kiosk, and of a burst of them.
pub const UNKNOWN_CARD: &str = "unknown_card";
pub const CARD_BURST: &str = "card_burst";

impl CardBurst {
    /// Pure: whether the kiosk is cooling down at `now`, given when the last
    /// burst began.
    pub fn cooling_down(&self, last_burst: Option<Timestamp>, now: Timestamp) -> bool {
        last_burst.is_some_and(|at| now.secs_since(at) < self.cool_down_secs && now >= at)
    }

    /// Pure: whether unknown cards at these times (the newest included) make
    /// a burst at `now`.
    pub fn is_burst(&self, unknown_at: &[Timestamp], now: Timestamp) -> bool {
        unknown_at
            .iter()
            .filter(|at| now.secs_since(**at) < self.window_secs && now >= **at)
            .count()
            >= self.max_unknown
    }
}

impl KioskConfig {
    pub fn new(store_id: i64) -> Self {
        KioskConfig {
            store_id,
            device: format!("kiosk-{store_id}"),
            picks: 4,
            issue_per_visit: 2,
            idle_secs: 30,
            codes: CodePolicy::default(),
            serve: Policy::default(),
            card_burst: CardBurst::default(),
        }
    }
}

/// A coupon on the welcome screen: what it is, until when, and what the
/// till scans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KioskCoupon {
    pub serial: String,
    pub description: Option<String>,
    pub discount_cents: Option<i64>,
    pub discount_percent: Option<i64>,
    pub expires_at: String,
    /// The signed token for the QR code; `None` for an instance another
    /// store signed (the numeric code still works at this store's till).
    pub token: Option<String>,
    pub numeric_code: String,
}

/// The private welcome.
#[derive(Debug, Clone, Serialize)]
pub struct KioskWelcome {
    pub welcome: Welcome,
    pub coupons: Vec<KioskCoupon>,
    /// Coupons issued by this visit.
    pub issued: usize,
}

/// Where a confirmed scan leads.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum ScanOutcome {
    Welcome(Box<KioskWelcome>),
    Product(Box<ProductView>),
    Coupon(CouponStatus),
    /// A scan that leads nowhere: a stable code and a sentence for the shopper.
    Refused {
        code: String,
        message: String,
    },
}

/// Everything a scan needs that outlives one scan.
#[derive(Debug)]
pub struct KioskModels<'a> {
    /// The recommendation model, or (none yet) the store's bestsellers.
    pub ranking: Ranking<'a>,
    /// The offer model; `None`: no new coupons are issued (issued ones still show).
    pub offers: Option<&'a RedeemModel>,
    pub book: Option<&'a OfferBook>,
}

/// A sentence for a shopper at a public screen for each refusal code (no
/// detail that helps someone probe the system).
pub fn shopper_message(code: &str) -> &'static str {
    match code {
        "expired" | "not_yet_valid" => {
            "This code has expired. Please refresh the code in your app and scan again."
        }
        "replayed" => "This code was already used. Please show the new code in your app.",
        "forged" | "altered" | "malformed" | "no_key" => {
            "We could not read a valid member code. Please try again or ask a member of staff."
        }
        "unknown_card" | "card_not_active" | "bad_check_digit" => {
            "We do not recognise this card. Please ask a member of staff."
        }
        "cooling_down" => {
            "This kiosk is not taking cards just now. Please use your app's code or ask a member of staff."
        }
        "unknown_product" => "We do not sell this product here.",
        _ => "We could not use this code. Please try again or ask a member of staff.",
    }
}

/// Judges a confirmed scan at `now` (store-local `YYYY-MM-DD HH:MM:SS`;
/// `now_secs` the same instant as Unix seconds for code windows): a member
/// gets their visit recorded, up to `issue_per_visit` new coupons (the best
/// eligible offers, under their rules; none without consent to
/// personalization, as the welcome shows them none) and their welcome; anything else its
/// screen. Writes (visit, replay cache, coupons) go through `conn`, the
/// replica's writer.
pub fn on_scan(
    conn: &mut Connection,
    models: &KioskModels<'_>,
    config: &KioskConfig,
    text: &str,
    now: Timestamp,
    now_secs: u64,
) -> Result<ScanOutcome, KioskError> {
    let card_like = looks_like_card(text);
    if card_like
        && config
            .card_burst
            .cooling_down(last_burst(conn, config)?, now)
    {
        return Ok(refused("cooling_down"));
    }
    let identified = identify::identify(conn, text, &config.device, now_secs, &config.codes)?;
    if card_like && identified.refusal_code() == Some("unknown_card") {
        note_unknown_card(conn, config, text.trim(), now)?;
    }
    match identified {
        Identified::Member { member_id, .. } => {
            crate::edits::record_visit(conn, member_id, Some(config.store_id), now)?;
            let issued = issue_best(conn, models, config, member_id, now)?;
            let welcome = welcome::welcome(
                conn,
                models.ranking,
                member_id,
                config.store_id,
                now,
                config.picks,
                &config.serve,
            )?;
            let coupons = welcome
                .coupons
                .iter()
                .map(|c| {
                    Ok(KioskCoupon {
                        serial: c.serial.clone(),
                        description: c.description.clone(),
                        discount_cents: c.discount_cents,
                        discount_percent: c.discount_percent,
                        expires_at: c.expires_at.clone(),
                        token: ledger::token_for(conn, &c.serial)?,
                        numeric_code: crate::offers::coupon::numeric_code(&c.serial),
                    })
                })
                .collect::<Result<_, KioskError>>()?;
            Ok(ScanOutcome::Welcome(Box::new(KioskWelcome {
                welcome,
                coupons,
                issued,
            })))
        }
        Identified::Product { product_id } => {
            match welcome::product_view(
                conn,
                models.ranking,
                product_id,
                config.store_id,
                now,
                config.picks,
                &config.serve,
            )? {
                Some(view) => Ok(ScanOutcome::Product(Box::new(view))),
                None => Ok(refused("unknown_product")),
            }
        }
        Identified::Coupon { coupon_id } => {
            match welcome::coupon_status(conn, coupon_id, now.day())? {
                Some(status) => Ok(ScanOutcome::Coupon(status)),
                None => Ok(refused("unknown_coupon")),
            }
        }
        refusal => Ok(refused(refusal.refusal_code().unwrap_or("unrecognised"))),
    }
}

/// A scan that is a card number (13 digits), as a keystroke injector types.
fn looks_like_card(text: &str) -> bool {
    let text = text.trim();
    text.len() == 13 && text.bytes().all(|b| b.is_ascii_digit())
}

/// When this kiosk's last card burst began.
fn last_burst(conn: &Connection, config: &KioskConfig) -> rusqlite::Result<Option<Timestamp>> {
    conn.prepare_cached("SELECT max(at) FROM audit_log WHERE action = ?1 AND actor = ?2")?
        .query_row([CARD_BURST, config.device.as_str()], |row| row.get(0))
}

/// Audits an unknown card and, when it completes a burst, the burst.
fn note_unknown_card(
    conn: &Connection,
    config: &KioskConfig,
    card: &str,
    now: Timestamp,
) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    let audit = |action: &str, detail: serde_json::Value| {
        crate::audit::record(
            &tx,
            &crate::audit::AuditEntry {
                at: now,
                actor: &config.device,
                action,
                member_id: None,
                detail: &detail,
            },
        )
    };
    let last_four = card.get(card.len().saturating_sub(4)..).unwrap_or_default();
    audit(UNKNOWN_CARD, serde_json::json!({ "last_four": last_four }))?;
    let since = now.plus_secs(-config.card_burst.window_secs);
    let recent: Vec<Timestamp> = tx
        .prepare_cached("SELECT at FROM audit_log WHERE action = ?1 AND actor = ?2 AND at > ?3")?
        .query_map(
            rusqlite::params![UNKNOWN_CARD, config.device, since],
            |row| row.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    if config.card_burst.is_burst(&recent, now) {
        tracing::warn!(device = %config.device, unknown = recent.len(), "unknown cards in a burst: the kiosk takes no card for a while");
        audit(
            CARD_BURST,
            serde_json::json!({
                "unknown_cards": recent.len(),
                "window_secs": config.card_burst.window_secs,
                "cool_down_secs": config.card_burst.cool_down_secs,
            }),
        )?;
    }
    tx.commit()
}

fn refused(code: &str) -> ScanOutcome {
    ScanOutcome::Refused {
        code: code.to_owned(),
        message: shopper_message(code).to_owned(),
    }
}

/// Issues the member's best eligible offers, up to the configured number;
/// an offer the rules refuse at the last moment (another kiosk took the
/// day's last one) is skipped.
fn issue_best(
    conn: &Connection,
    models: &KioskModels<'_>,
    config: &KioskConfig,
    member_id: i64,
    now: Timestamp,
) -> Result<usize, KioskError> {
    let (Some(model), Some(book)) = (models.offers, models.book) else {
        return Ok(0);
    };
    if config.issue_per_visit == 0 {
        return Ok(0);
    }
    // The welcome shows coupons only to members who consent to
    // personalization; a coupon it could not show is not issued.
    let consents = crate::consent::load(conn, member_id)?;
    if !consents.is_some_and(|facts| crate::consent::may_personalize(&facts)) {
        return Ok(0);
    }
    let request = DecideRequest {
        store_id: config.store_id,
        channel: Channel::Kiosk,
        today: now.day(),
        // More than needed: an offer the public screen cannot show is passed over.
        limit: config.issue_per_visit.saturating_mul(4),
        include_negative: false,
        exploration: Exploration::default(),
    };
    let Some(decision) = engine::offers_for(conn, book, model, member_id, now, &request)? else {
        return Ok(0);
    };
    let mut issued = 0;
    for ranked in &decision.ranked {
        if issued == config.issue_per_visit {
            break;
        }
        if !welcome::coupon_is_public(conn, ranked.coupon_id, &config.serve)? {
            continue;
        }
        let result = issue::issue_offer(
            conn,
            &OfferIssue {
                coupon_id: ranked.coupon_id,
                member_id,
                store_id: config.store_id,
                channel: Channel::Kiosk,
                now,
            },
        );
        match result {
            Ok(_) => issued += 1,
            Err(issue::IssueError::Ineligible { reason, .. }) => {
                tracing::info!(
                    coupon_id = ranked.coupon_id,
                    reason = reason.code(),
                    "offer not issued"
                );
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(issued)
}

#[derive(Debug, thiserror::Error)]
pub enum KioskError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Edit(#[from] crate::edits::EditError),
    #[error(transparent)]
    Issue(#[from] issue::IssueError),
    #[error(transparent)]
    Coupon(#[from] ledger::CouponError),
}

/// A kiosk session's clock: the screen returns to attract after
/// `idle_ms` without a touch. Pure: the caller passes the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub idle_ms: u64,
    last_touch_ms: Option<u64>,
}

impl Session {
    pub fn new(idle_secs: u64) -> Self {
        Session {
            idle_ms: idle_secs.saturating_mul(1000),
            last_touch_ms: None,
        }
    }

    /// A personal screen is showing.
    pub fn is_open(&self) -> bool {
        self.last_touch_ms.is_some()
    }

    /// A scan or a touch at `now_ms`: the session (re)starts its idle clock.
    pub fn touch(&mut self, now_ms: u64) {
        self.last_touch_ms = Some(now_ms);
    }

    /// "Done", or the idle timeout: back to attract.
    pub fn end(&mut self) {
        self.last_touch_ms = None;
    }

    /// Whether the session has been idle too long at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.last_touch_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= self.idle_ms)
    }

    /// Milliseconds left before the timeout (for a countdown), if open.
    pub fn remaining_ms(&self, now_ms: u64) -> Option<u64> {
        self.last_touch_ms
            .map(|t| self.idle_ms.saturating_sub(now_ms.saturating_sub(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_times_out_after_the_idle_time_and_touches_extend_it() {
        let mut session = Session::new(30);
        assert!(!session.is_open() && !session.expired(1_000_000));
        session.touch(1_000);
        assert!(!session.expired(30_999));
        assert_eq!(session.remaining_ms(11_000), Some(20_000));
        assert!(session.expired(31_000));
        session.touch(20_000);
        assert!(!session.expired(31_000), "a touch restarts the clock");
        assert!(session.expired(50_000));
        session.end();
        assert!(!session.is_open() && session.remaining_ms(50_000).is_none());
    }

    #[test]
    fn every_refusal_has_a_sentence_without_detail() {
        for code in [
            "expired",
            "replayed",
            "forged",
            "unknown_card",
            "unknown_product",
            "nope",
        ] {
            let message = shopper_message(code);
            // A sentence, never an internal code.
            assert!(
                message.ends_with('.') && !message.contains('_'),
                "{code}: {message}"
            );
        }
        assert_ne!(shopper_message("expired"), shopper_message("unknown_card"));
    }
}
