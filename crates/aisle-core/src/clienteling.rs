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
//! - An erased member is refused as such, never shown.

use aisle_proto::EventKind;
use rusqlite::Connection;
use serde_json::json;

use crate::members::{self, Basket, MonthSpend, Profile};
use crate::recommend::serve::{self, Lists, Served};

/// Why a client cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no client {0} on this replica")]
    NotFound(i64),
    #[error("client {0} asked to be forgotten")]
    Erased(i64),
    #[error(transparent)]
    Member(#[from] members::MemberError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
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
}

/// Who looks, from where, when.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    /// The signed-in associate (or the device, before sign-in exists).
    pub actor: &'a str,
    pub store_id: i64,
    /// Store-local `YYYY-MM-DD HH:MM:SS`.
    pub now: &'a str,
}

/// Audits the view, then reads what the viewer may see of `member_id`.
pub fn view_client(
    conn: &mut Connection,
    served: &Served,
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
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, member_id, detail) VALUES (?1, ?2, 'profile_viewed', ?3, ?4)",
        rusqlite::params![
            viewer.now,
            viewer.actor,
            member_id,
            json!({ "store_id": viewer.store_id }).to_string()
        ],
    )?;
    crate::sync::outbox::record(
        &tx,
        EventKind::ProfileViewed,
        &json!({ "member_id": member_id, "actor": viewer.actor, "store_id": viewer.store_id, "at": viewer.now }),
        viewer.now,
    )?;
    tx.commit()?;

    let history_shown = profile.personalization.granted;
    let (history, spend) = if history_shown {
        (
            members::recent_baskets(conn, member_id, 20)?,
            members::spend_by_month(conn, member_id, viewer.now, 12)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let lists = serve::recommend(
        conn,
        served,
        &serve::Request {
            member_id: Some(member_id),
            store_id: viewer.store_id,
            now: viewer.now.to_owned(),
            k: 8,
            public_screen: false,
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
    })
}
