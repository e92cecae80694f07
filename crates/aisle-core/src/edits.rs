//! Local changes made in a store: each writes the replica and its outbox
//! event in ONE transaction, so a change never exists without the event
//! that carries it to HQ, nor an event without its change.

use crate::time::Timestamp;
use aisle_proto::Preference;
use aisle_proto::events::{
    AssociateNote, ConsentChanged, ConsentName, CouponSentToApp, ErasureRequested, KioskVisit,
    PreferencesSet,
};
use rusqlite::{Connection, Transaction, params};

use crate::outbox::{self, OutboxError};

/// What can go wrong with a local change (never a sync error: a change is
/// made here whether HQ is reachable or not).
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// A member identified at the kiosk. HQ keeps the visit as a fact for a
/// member of the store's partition and refuses it (`outside_partition`) for
/// anyone else: a visit never brings a member into the partition (a
/// look-up with their card or app code does).
pub fn record_visit(
    conn: &mut Connection,
    member_id: i64,
    store_id: Option<i64>,
    now: Timestamp,
) -> Result<String, EditError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.prepare_cached("INSERT INTO store_visits (store_id, member_id, at) VALUES (?1, ?2, ?3)")?
        .execute(params![store_id, member_id, now])?;
    let key = outbox::append(
        &tx,
        KioskVisit {
            member_id,
            store_id,
            at: now.to_string(),
        },
        now,
    )?;
    tx.commit()?;
    Ok(key)
}

/// A shopper asked the kiosk to send a coupon of theirs to their app: the
/// event goes to HQ through the outbox. Refused (`Ok(None)`) for a serial
/// that is not an instance bound to this member.
pub fn coupon_sent_to_app(
    conn: &mut Connection,
    serial: &str,
    member_id: i64,
    now: Timestamp,
) -> Result<Option<String>, EditError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let theirs = tx
        .prepare_cached(
            "SELECT 1 FROM coupon_issues WHERE serial = ?1 AND coalesce(bound_member_id, member_id) = ?2",
        )?
        .exists(params![serial, member_id])?;
    if !theirs {
        return Ok(None);
    }
    let key = outbox::append(
        &tx,
        CouponSentToApp {
            serial: serial.to_owned(),
            member_id,
            at: now.to_string(),
        },
        now,
    )?;
    tx.commit()?;
    Ok(Some(key))
}

/// An associate's note on a member.
pub fn add_note(
    conn: &mut Connection,
    member_id: i64,
    author: &str,
    body: &str,
    now: Timestamp,
) -> Result<String, EditError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let key = add_note_in(&tx, member_id, author, body, now)?;
    tx.commit()?;
    Ok(key)
}

/// [`add_note`] inside the caller's (immediate) transaction.
pub fn add_note_in(
    tx: &Transaction<'_>,
    member_id: i64,
    author: &str,
    body: &str,
    now: Timestamp,
) -> Result<String, EditError> {
    tx.execute(
        "INSERT INTO member_notes (member_id, author, body, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![member_id, author, body, now],
    )?;
    let key = outbox::append(
        tx,
        AssociateNote {
            member_id,
            author: author.to_owned(),
            body: body.to_owned(),
        },
        now,
    )?;
    Ok(key)
}

/// Replaces a member's stated preferences.
pub fn set_preferences(
    conn: &mut Connection,
    member_id: i64,
    preferences: &[Preference],
    now: Timestamp,
) -> Result<String, EditError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let key = set_preferences_in(&tx, member_id, preferences, now)?;
    tx.commit()?;
    Ok(key)
}

/// [`set_preferences`] inside the caller's (immediate) transaction.
pub fn set_preferences_in(
    tx: &Transaction<'_>,
    member_id: i64,
    preferences: &[Preference],
    now: Timestamp,
) -> Result<String, EditError> {
    tx.execute(
        "DELETE FROM member_preferences WHERE member_id = ?1",
        [member_id],
    )?;
    for preference in preferences {
        tx.execute(
            "INSERT OR IGNORE INTO member_preferences (member_id, kind, value) VALUES (?1, ?2, ?3)",
            params![member_id, preference.kind, preference.value],
        )?;
    }
    tx.execute(
        "UPDATE members SET updated_at = ?2 WHERE member_id = ?1",
        params![member_id, now],
    )?;
    let key = outbox::append(
        tx,
        PreferencesSet {
            member_id,
            preferences: preferences.to_vec(),
        },
        now,
    )?;
    Ok(key)
}

/// Who made a change in the store, as HQ checks it against its own records
/// of the store's associates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    /// `staff:N`.
    pub who: &'a str,
    pub role: aisle_proto::Role,
}

/// Which consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Personalization,
    Marketing,
}

/// Grants or withdraws a consent here and now (a withdrawal is effective
/// locally at once, whatever HQ says later), `by` an associate: HQ accepts
/// a grant only from an associate it knows at the store.
pub fn set_consent(
    conn: &mut Connection,
    member_id: i64,
    consent: Consent,
    granted: bool,
    by: Option<Actor<'_>>,
    now: Timestamp,
) -> Result<String, EditError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let key = set_consent_in(&tx, member_id, consent, granted, by, now)?;
    tx.commit()?;
    Ok(key)
}

/// [`set_consent`] inside the caller's (immediate) transaction.
pub fn set_consent_in(
    tx: &Transaction<'_>,
    member_id: i64,
    consent: Consent,
    granted: bool,
    by: Option<Actor<'_>>,
    now: Timestamp,
) -> Result<String, EditError> {
    let (name, sql) = match consent {
        Consent::Personalization => (
            ConsentName::Personalization,
            "UPDATE members SET consent_personalization = ?2, consent_personalization_at = ?3, updated_at = ?3 WHERE member_id = ?1",
        ),
        Consent::Marketing => (
            ConsentName::Marketing,
            "UPDATE members SET consent_marketing = ?2, consent_marketing_at = ?3, updated_at = ?3 WHERE member_id = ?1",
        ),
    };
    tx.execute(sql, params![member_id, granted, now])?;
    let key = outbox::append(
        tx,
        ConsentChanged {
            member_id,
            consent: name,
            granted,
            at: now.to_string(),
            by: by.map(|actor| actor.who.to_owned()),
            role: by.map(|actor| actor.role.as_str().to_owned()),
        },
        now,
    )?;
    Ok(key)
}

/// Queues an erasure request for HQ; the profile leaves the replica when
/// HQ's tombstone arrives (HQ erases everywhere, not only here). Until then
/// the request is kept in `erasure_requests` (the tablet shows it).
pub fn request_erasure(
    conn: &mut Connection,
    member_id: i64,
    by: Actor<'_>,
    now: Timestamp,
) -> Result<String, EditError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let key = request_erasure_in(&tx, member_id, by, now)?;
    tx.commit()?;
    Ok(key)
}

/// [`request_erasure`] inside the caller's (immediate) transaction.
pub fn request_erasure_in(
    tx: &Transaction<'_>,
    member_id: i64,
    by: Actor<'_>,
    now: Timestamp,
) -> Result<String, EditError> {
    tx.execute(
        "INSERT OR IGNORE INTO erasure_requests (member_id, requested_at, requested_by) VALUES (?1, ?2, ?3)",
        params![member_id, now, by.who],
    )?;
    let key = outbox::append(
        tx,
        ErasureRequested {
            member_id,
            requested_by: by.who.to_owned(),
            role: Some(by.role.as_str().to_owned()),
        },
        now,
    )?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::lit::ts;
    use serde_json::json;

    const NOW: &str = "2026-03-01 10:00:00";

    fn replica() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        conn.execute(
            "INSERT INTO members (member_id, updated_at) VALUES (7, '2026-01-01')",
            [],
        )
        .expect("member");
        (dir, conn)
    }

    fn events(conn: &Connection) -> Vec<(String, String, serde_json::Value)> {
        conn.prepare("SELECT idempotency_key, kind, payload FROM outbox ORDER BY seq")
            .expect("prepare")
            .query_map([], |row| {
                let payload: String = row.get(2)?;
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    serde_json::from_str(&payload).unwrap_or_default(),
                ))
            })
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    #[test]
    fn a_change_is_written_with_its_event() {
        let (_dir, mut conn) = replica();
        let by = Actor {
            who: "staff:1001",
            role: aisle_proto::Role::Associate,
        };
        let key = set_consent(&mut conn, 7, Consent::Marketing, true, Some(by), ts(NOW))
            .expect("consent");
        let marketing: bool = conn
            .query_row(
                "SELECT consent_marketing FROM members WHERE member_id = 7",
                [],
                |row| row.get(0),
            )
            .expect("member");
        assert!(marketing);
        assert_eq!(
            events(&conn),
            [(
                key,
                "consent_changed".to_owned(),
                json!({ "member_id": 7, "consent": "marketing", "granted": true, "at": NOW,
                    "by": "staff:1001", "role": "associate" })
            )]
        );
    }

    #[test]
    fn a_change_refused_leaves_no_event() {
        let (_dir, mut conn) = replica();
        // No such member: the note breaks a foreign key, and its event goes with it.
        let refused = add_note(&mut conn, 99, "Alex", "likes oat milk", ts(NOW));
        assert!(matches!(refused, Err(EditError::Sqlite(_))), "{refused:?}");
        // Not an instance of this member: nothing sent.
        assert_eq!(
            coupon_sent_to_app(&mut conn, "1234567890123456", 7, ts(NOW)).expect("checked"),
            None
        );
        assert!(events(&conn).is_empty());
    }
}
