//! What an associate sees of a client, decided in one place: the tablet
//! only translates it.
//!
//! - Every view is audited: an `audit_log` row and a `profile_viewed`
//!   outbox event (HQ keeps the trail of who saw whom), in one transaction,
//!   before anything is returned.
//! - Consent decides what is shown: without consent to personalization the
//!   associate sees the profile, consents, preferences and notes, and what
//!   is popular at the store, but not the purchase history, the spend or
//!   history-based suggestions.
//! - An erased member is refused as such, never shown; a member whose
//!   erasure was requested here is shown with the request and takes no more
//!   edits or coupons until HQ's tombstone removes them.
//! - Edits ([`edit_client`]) are checked here (preference kinds and sizes,
//!   notes, a manager for erasure), audited, and written with their outbox
//!   event in one transaction (`edits`); coupons are issued under the offer's
//!   rules on the associate channel ([`issue_coupon`]).
//! - The store view's figures for the day ([`store_day`]) hold no personal data.

use crate::time::Timestamp;
use aisle_proto::Preference;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use crate::audit::{self, AuditEntry};
use crate::consent;
use crate::edits::{self, Consent, EditError};
use crate::members::{self, Basket, MonthSpend, Profile};
use crate::offers::engine::{self, DecideRequest, Exploration, OfferBook, Ranked};
use crate::offers::issue::{self, IssueError, OfferIssue};
use crate::offers::ledger::IssuedCoupon;
use crate::offers::model::RedeemModel;
use crate::offers::rules::Channel;
use crate::outbox::{self, OutboxError};
use crate::recommend::serve::{self, Lists, Ranking};
use crate::staff::Associate;
use crate::welcome::{self, WelcomeCoupon};

/// Why a client cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no client {0} on this replica")]
    NotFound(i64),
    #[error("client {0} asked to be forgotten")]
    Erased(i64),
    #[error("client {0}'s erasure has been requested: no more changes")]
    ErasurePending(i64),
    #[error("{0}")]
    Invalid(String),
    #[error("only a manager can do this")]
    Forbidden,
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Member(#[from] members::MemberError),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// One client as the associate's screen shows them.
#[derive(Debug, Clone)]
pub struct ClientView {
    pub profile: Profile,
    /// Newest first; empty without consent to personalization.
    pub history: Vec<Basket>,
    /// The last twelve months; empty without consent.
    pub spend: Vec<MonthSpend>,
    /// Buy again and Discover (popular at the store without consent).
    pub lists: Lists,
    /// False when history and spend are withheld for want of consent.
    pub history_shown: bool,
    /// When an erasure was requested here, waiting for HQ.
    pub erasure_requested_at: Option<String>,
}

/// An associate's search shows at most this many clients.
pub const SEARCH_CAP: usize = 20;

/// The audit action of an associate's search.
pub const MEMBER_SEARCH: &str = "member_search";

/// An associate's search: at most [`SEARCH_CAP`] hits, their card, phone
/// and e-mail masked (the client's screen, once opened and audited as a
/// view, shows them whole), and the search audited: who searched, what, how
/// many hits. `conn` is the replica's writer (the audit row).
pub fn search_clients(
    conn: &Connection,
    viewer: &Viewer<'_>,
    text: &str,
    limit: usize,
) -> Result<Vec<members::SearchHit>, ClientError> {
    let hits = members::search(conn, text, limit.clamp(1, SEARCH_CAP))?;
    audit::record(
        conn,
        &AuditEntry {
            at: viewer.now,
            actor: viewer.actor,
            action: MEMBER_SEARCH,
            member_id: None,
            detail: &json!({ "text": text, "hits": hits.len(), "store_id": viewer.store_id }),
        },
    )?;
    Ok(hits
        .into_iter()
        .map(|hit| members::SearchHit {
            card_number: hit.card_number.as_deref().map(mask_digits),
            phone: hit.phone.as_deref().map(mask_digits),
            email: hit.email.as_deref().map(mask_email),
            ..hit
        })
        .collect())
}

/// Pure: every digit but the last four hidden (`•••• 2233`).
pub fn mask_digits(text: &str) -> String {
    let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).collect();
    let shown: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("•••• {shown}")
}

/// Pure: the first letter of the mailbox and the domain (`p•••@example.com`).
pub fn mask_email(text: &str) -> String {
    match text.split_once('@') {
        Some((mailbox, domain)) => {
            let first: String = mailbox.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".to_owned(),
    }
}

/// Who looks, from where, when.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    /// The signed-in associate (or the device, before sign-in exists).
    pub actor: &'a str,
    pub store_id: i64,
    /// Store-local `YYYY-MM-DD HH:MM:SS`.
    pub now: Timestamp,
}

/// Audits the view, then reads what the viewer may see of `member_id`,
/// with suggestions ranked by `ranking`: the model, or, in a store HQ has
/// not sent one yet, the store's bestsellers (not personal, with a notice),
/// as the kiosk does.
pub fn view_client<'a>(
    conn: &mut Connection,
    ranking: impl Into<Ranking<'a>>,
    member_id: i64,
    viewer: &Viewer<'_>,
) -> Result<ClientView, ClientError> {
    let profile = match members::profile(conn, member_id) {
        Ok(profile) => profile,
        Err(members::MemberError::NotFound(_)) => return Err(ClientError::NotFound(member_id)),
        Err(other) => return Err(other.into()),
    };
    if profile.erased_at.is_some() {
        return Err(ClientError::Erased(member_id));
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    audit::record(
        &tx,
        &AuditEntry {
            at: viewer.now,
            actor: viewer.actor,
            action: "profile_viewed",
            member_id: Some(member_id),
            detail: &json!({ "store_id": viewer.store_id }),
        },
    )?;
    outbox::append(
        &tx,
        aisle_proto::events::ProfileViewed {
            member_id,
            actor: viewer.actor.to_owned(),
            store_id: viewer.store_id,
            at: viewer.now.to_string(),
        },
        viewer.now,
    )?;
    tx.commit()?;

    let history_shown = consent::may_personalize(&profile.consents());
    let (history, spend) = if history_shown {
        (
            members::recent_baskets(conn, member_id, 20)?,
            members::spend_by_month(conn, member_id, viewer.now, 12)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let lists = ranking.into().lists(
        conn,
        &serve::Request {
            member_id: Some(member_id),
            store_id: viewer.store_id,
            now: viewer.now,
            k: 8,
            // Sensitive departments and categories only for a member who
            // consented to personalization; otherwise the tablet's picks
            // follow the public-screen exclusions, as a kiosk's do.
            public_screen: !history_shown,
            shown: Vec::new(),
        },
        &serve::Policy::default(),
    )?;
    Ok(ClientView {
        profile,
        history,
        spend,
        lists,
        history_shown,
        erasure_requested_at: erasure_requested(conn, member_id)?,
    })
}

impl ClientError {
    /// A stable code for the tablet.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::NotFound(_) => "not_found",
            ClientError::Erased(_) => "erased",
            ClientError::ErasurePending(_) => "erasure_pending",
            ClientError::Invalid(_) => "bad_request",
            ClientError::Forbidden => "forbidden",
            ClientError::Issue(error) => error.code(),
            ClientError::Member(_)
            | ClientError::Edit(_)
            | ClientError::Outbox(_)
            | ClientError::Db(_) => "internal",
        }
    }
}

fn erasure_requested(conn: &Connection, member_id: i64) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT requested_at FROM erasure_requests WHERE member_id = ?1")?
        .query_row([member_id], |row| row.get(0))
        .optional()
}

/// Refuses a member who cannot take changes: unknown, erased, or with an
/// erasure pending.
fn editable(conn: &Connection, member_id: i64) -> Result<(), ClientError> {
    let erased: Option<bool> = conn
        .prepare_cached("SELECT erased_at IS NOT NULL FROM members WHERE member_id = ?1")?
        .query_row([member_id], |row| row.get(0))
        .optional()?;
    match erased {
        None => Err(ClientError::NotFound(member_id)),
        Some(true) => Err(ClientError::Erased(member_id)),
        Some(false) if erasure_requested(conn, member_id)?.is_some() => {
            Err(ClientError::ErasurePending(member_id))
        }
        Some(false) => Ok(()),
    }
}

/// Preference values are at most this many characters (HQ checks the same).
pub const MAX_PREFERENCE_CHARS: usize = aisle_proto::events::MAX_PREFERENCE_CHARS;
/// A member holds at most this many preferences.
pub const MAX_PREFERENCES: usize = aisle_proto::events::MAX_PREFERENCES;
/// Notes are at most this many characters.
pub const MAX_NOTE_CHARS: usize = aisle_proto::events::MAX_NOTE_CHARS;

/// A change an associate makes to a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// The client's whole preference set (kinds: brand, category, size, dietary).
    Preferences(Vec<Preference>),
    Consent {
        consent: Consent,
        granted: bool,
    },
    Note(String),
    /// The client asks to be forgotten (a manager confirms it).
    Erasure,
}

impl Edit {
    fn name(&self) -> &'static str {
        match self {
            Edit::Preferences(_) => "preferences",
            Edit::Consent { .. } => "consent",
            Edit::Note(_) => "note",
            Edit::Erasure => "erasure_request",
        }
    }
}

/// The preference set as stored: values trimmed, kinds checked, duplicates
/// dropped, sizes bounded.
pub fn clean_preferences(preferences: &[Preference]) -> Result<Vec<Preference>, ClientError> {
    let mut clean: Vec<Preference> = Vec::with_capacity(preferences.len());
    for preference in preferences {
        if !aisle_proto::events::PREFERENCE_KINDS.contains(&preference.kind.as_str()) {
            return Err(ClientError::Invalid(format!(
                "{:?} is not a kind of preference (brand, category, size, dietary)",
                preference.kind
            )));
        }
        let value = preference.value.trim();
        if value.is_empty() || value.chars().count() > MAX_PREFERENCE_CHARS {
            return Err(ClientError::Invalid(format!(
                "a {} preference is 1 to {MAX_PREFERENCE_CHARS} characters",
                preference.kind
            )));
        }
        let clean_one = Preference {
            kind: preference.kind.clone(),
            value: value.to_owned(),
        };
        if !clean.contains(&clean_one) {
            clean.push(clean_one);
        }
    }
    if clean.len() > MAX_PREFERENCES {
        return Err(ClientError::Invalid(format!(
            "at most {MAX_PREFERENCES} preferences per client"
        )));
    }
    Ok(clean)
}

/// Applies `edit` to `member_id` for the associate `by`: checked, audited
/// (an `audit_log` row) and written with its outbox event, in one
/// transaction. Returns the event's idempotency key.
pub fn edit_client(
    conn: &mut Connection,
    by: &Associate,
    member_id: i64,
    edit: &Edit,
    now: Timestamp,
) -> Result<String, ClientError> {
    // Checked, written, evented and audited in one immediate transaction.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    editable(&tx, member_id)?;
    let key = match edit {
        Edit::Preferences(preferences) => {
            let clean = clean_preferences(preferences)?;
            edits::set_preferences_in(&tx, member_id, &clean, now)?
        }
        Edit::Consent { consent, granted } => {
            let who = by.actor();
            let actor = edits::Actor {
                who: &who,
                role: by.role,
            };
            edits::set_consent_in(&tx, member_id, *consent, *granted, Some(actor), now)?
        }
        Edit::Note(body) => {
            let body = body.trim();
            if body.is_empty() || body.chars().count() > MAX_NOTE_CHARS {
                return Err(ClientError::Invalid(format!(
                    "a note is 1 to {MAX_NOTE_CHARS} characters"
                )));
            }
            edits::add_note_in(&tx, member_id, &by.display_name, body, now)?
        }
        Edit::Erasure => {
            by.require_manager().map_err(|_| ClientError::Forbidden)?;
            let who = by.actor();
            let actor = edits::Actor {
                who: &who,
                role: by.role,
            };
            edits::request_erasure_in(&tx, member_id, actor, now)?
        }
    };
    audit::record(
        &tx,
        &AuditEntry {
            at: now,
            actor: &by.actor(),
            action: "client_edited",
            member_id: Some(member_id),
            detail: &json!({ "edit": edit.name(), "event": key }),
        },
    )?;
    tx.commit()?;
    Ok(key)
}

/// What the associate can offer a client now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientOffers {
    /// The offers the rules allow on the associate channel, best first.
    pub eligible: Vec<Ranked>,
    /// Coupons the client holds and can still redeem.
    pub live: Vec<WelcomeCoupon>,
}

/// At most this many offers are suggested.
pub const MAX_OFFERS: usize = 6;

/// Ranks the offers the client may be given here now (the decision engine
/// on the associate channel) and lists the coupons they hold.
pub fn client_offers(
    conn: &Connection,
    book: &OfferBook,
    model: &RedeemModel,
    member_id: i64,
    now: Timestamp,
) -> Result<ClientOffers, ClientError> {
    editable(conn, member_id)?;
    let request = DecideRequest {
        store_id: book.store_id,
        channel: Channel::Associate,
        today: now.day(),
        limit: MAX_OFFERS,
        include_negative: false,
        exploration: Exploration::default(),
    };
    let decision = engine::offers_for(conn, book, model, member_id, now, &request)?
        .ok_or(ClientError::NotFound(member_id))?;
    Ok(ClientOffers {
        eligible: decision.ranked,
        live: welcome::live_coupons(conn, member_id, now, 20)?,
    })
}

/// Issues `coupon_id` to the client on the associate channel at `by`'s
/// store, under the offer's rules (checked again in the issuing transaction).
pub fn issue_coupon(
    conn: &mut Connection,
    by: &Associate,
    member_id: i64,
    coupon_id: i64,
    now: Timestamp,
) -> Result<IssuedCoupon, ClientError> {
    // The offer's rules, the instance, its event and the audit row: one
    // immediate transaction.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    editable(&tx, member_id)?;
    let issued = issue::issue_offer_in(
        &tx,
        &OfferIssue {
            coupon_id,
            member_id,
            store_id: by.store_id,
            channel: Channel::Associate,
            now,
        },
    )?;
    audit::record(
        &tx,
        &AuditEntry {
            at: now,
            actor: &by.actor(),
            action: "coupon_issued",
            member_id: Some(member_id),
            detail: &json!({ "serial": issued.serial, "coupon_id": coupon_id }),
        },
    )?;
    tx.commit()?;
    Ok(issued)
}

/// The store's day so far, for the store view (counts only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreDay {
    pub kiosk_visits: u32,
    /// Different members among those visits.
    pub kiosk_members: u32,
    pub coupons_issued_kiosk: u32,
    pub coupons_issued_associate: u32,
    pub redemptions: u32,
    pub redeemed_cents: i64,
}

/// `store_id`'s figures for the day of `now` (store-local), up to `now`.
pub fn store_day(conn: &Connection, store_id: i64, now: Timestamp) -> rusqlite::Result<StoreDay> {
    let start = now.day().start();
    let (kiosk_visits, kiosk_members) = conn
        .prepare_cached(
            "SELECT count(*), count(DISTINCT member_id) FROM store_visits
             WHERE store_id = ?1 AND at BETWEEN ?2 AND ?3",
        )?
        .query_row(params![store_id, start, now], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let (coupons_issued_kiosk, coupons_issued_associate) = conn
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE channel = 'kiosk'), count(*) FILTER (WHERE channel = 'associate')
             FROM coupon_issues WHERE store_id = ?1 AND issued_at BETWEEN ?2 AND ?3",
        )?
        .query_row(params![store_id, start, now], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let (redemptions, redeemed_cents) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(value_cents), 0) FROM coupon_redemptions
             WHERE store_id = ?1
               AND coalesce(redeemed_at, redeemed_on || ' 00:00:00') BETWEEN ?2 AND ?3",
        )?
        .query_row(params![store_id, start, now], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(StoreDay {
        kiosk_visits,
        kiosk_members,
        coupons_issued_kiosk,
        coupons_issued_associate,
        redemptions,
        redeemed_cents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_results_show_the_last_four_digits_and_the_mailbox_initial_only() {
        assert_eq!(mask_digits("+1 614-555-0142"), "•••• 0142");
        assert_eq!(mask_digits("2900000000018"), "•••• 0018");
        assert_eq!(mask_digits("12"), "•••• 12");
        assert_eq!(mask_email("oliver.martin@example.com"), "o•••@example.com");
        assert_eq!(mask_email("not an address"), "•••");
    }
}
