//! The outbox: local events written in the same transaction as the local
//! change they describe, read oldest first, deleted only once HQ
//! acknowledges them.
//!
//! Every module that changes the replica locally appends its event here
//! ([`append`]); only `sync` reads and deletes ([`oldest`], [`acknowledge`],
//! [`note_failure`]). Each event's idempotency key is this replica's random
//! instance id and the event's sequence number, so a rebuilt replica (whose
//! sequence restarts) never reuses a key HQ has recorded.

use crate::time::Timestamp;
use aisle_proto::{Event, EventKind, StoreEvent};
use rusqlite::{Connection, Transaction, params};

/// `replica_meta` key of this replica's random instance id: part of every
/// idempotency key, so a replica rebuilt from scratch (whose outbox
/// sequence restarts) can never reuse a key HQ has already recorded.
const INSTANCE_KEY: &str = "sync.instance_id";

/// What can go wrong with the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the outbox holds something unreadable: {what}")]
    Corrupt { what: String },
    #[error("no randomness from the operating system")]
    Random,
    #[error("{what} cannot be recorded: {reason}")]
    Malformed { what: String, reason: String },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// This replica's instance id, created on first use (16 random bytes, hex).
pub fn instance_id(tx: &Transaction<'_>) -> Result<String, OutboxError> {
    if let Some(id) = crate::replica::meta(tx, INSTANCE_KEY)? {
        return Ok(id);
    }
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|_| OutboxError::Random)?;
    let id = hex::encode(bytes);
    crate::replica::set_meta(tx, INSTANCE_KEY, &id)?;
    Ok(id)
}

/// Records one typed store event (`aisle_proto::events`) inside the
/// caller's transaction (the one making the change it describes); its kind
/// is the event's own. Returns its idempotency key.
pub fn append(
    tx: &Transaction<'_>,
    event: impl Into<StoreEvent>,
    now: Timestamp,
) -> Result<String, OutboxError> {
    let event = event.into();
    let payload = event.payload().map_err(|err| OutboxError::Malformed {
        what: format!("a {} event", event.kind().name()),
        reason: err.to_string(),
    })?;
    record(tx, event.kind(), &payload, now)
}

/// Records one event with a payload as given (the tests' poison events, the
/// sync benchmark's bulk); the store's own events go through [`append`].
/// Returns its idempotency key.
pub fn record(
    tx: &Transaction<'_>,
    kind: EventKind,
    payload: &serde_json::Value,
    now: Timestamp,
) -> Result<String, OutboxError> {
    let instance = instance_id(tx)?;
    tx.prepare_cached(
        "INSERT INTO outbox (idempotency_key, kind, payload, created_at)
         VALUES ('pending', ?1, ?2, ?3)",
    )?
    .execute(params![kind.name(), payload.to_string(), now])?;
    let seq = tx.last_insert_rowid();
    let key = format!("{instance}-{seq}");
    tx.prepare_cached("UPDATE outbox SET idempotency_key = ?1 WHERE seq = ?2")?
        .execute(params![key, seq])?;
    Ok(key)
}

/// How many events wait for HQ.
pub fn pending(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT count(*) FROM outbox", [], |row| {
        row.get::<_, i64>(0).map(|n| n as u64)
    })
}

/// When the oldest waiting event was recorded; `None` for an empty outbox.
pub fn oldest_created_at(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT min(created_at) FROM outbox", [], |row| row.get(0))
}

/// The oldest `limit` events, in order.
pub fn oldest(conn: &Connection, limit: usize) -> Result<Vec<Event>, OutboxError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, idempotency_key, kind, payload, created_at FROM outbox ORDER BY seq LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
        ))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, key, kind, payload, created_at) = row?;
        let kind = EventKind::parse(&kind).ok_or_else(|| OutboxError::Corrupt {
            what: format!("outbox event {seq} has the unknown kind {kind:?}"),
        })?;
        let payload = serde_json::from_str(&payload).map_err(|err| OutboxError::Corrupt {
            what: format!("outbox event {seq}: {err}"),
        })?;
        events.push(Event {
            idempotency_key: key,
            seq,
            kind,
            payload,
            created_at,
        });
    }
    Ok(events)
}

/// Deletes the events HQ acknowledged (and only those).
pub fn acknowledge(conn: &mut Connection, keys: &[String]) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut deleted = 0;
    {
        let mut stmt = tx.prepare_cached("DELETE FROM outbox WHERE idempotency_key = ?1")?;
        for key in keys {
            deleted += stmt.execute([key])?;
        }
    }
    tx.commit()?;
    Ok(deleted)
}

/// Notes a failed upload attempt on the events that were in it.
pub fn note_failure(
    conn: &Connection,
    keys: &[String],
    now: Timestamp,
    error: &str,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?2, last_error = ?3
         WHERE idempotency_key = ?1",
    )?;
    for key in keys {
        stmt.execute(params![key, now, error])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::lit::ts;
    use serde_json::json;

    fn replica() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        (dir, conn)
    }

    fn append(conn: &mut Connection, kind: EventKind, n: i64, now: Timestamp) -> String {
        let tx = conn.transaction().expect("tx");
        let key = record(&tx, kind, &json!({ "n": n }), now).expect("record");
        tx.commit().expect("commit");
        key
    }

    #[test]
    fn events_come_back_oldest_first_with_keys_of_this_instance() {
        let (_dir, mut conn) = replica();
        assert_eq!(pending(&conn).expect("pending"), 0);
        assert_eq!(oldest_created_at(&conn).expect("oldest"), None);
        let first = append(
            &mut conn,
            EventKind::KioskVisit,
            1,
            ts("2026-03-01 10:00:00"),
        );
        let second = append(
            &mut conn,
            EventKind::AssociateNote,
            2,
            ts("2026-03-01 11:00:00"),
        );
        let instance = {
            let tx = conn.transaction().expect("tx");
            instance_id(&tx).expect("instance")
        };
        assert_eq!(instance.len(), 32, "16 bytes in hex");
        assert_eq!(first, format!("{instance}-1"));
        assert_eq!(second, format!("{instance}-2"));
        assert_eq!(pending(&conn).expect("pending"), 2);
        assert_eq!(
            oldest_created_at(&conn).expect("oldest").as_deref(),
            Some("2026-03-01 10:00:00")
        );
        let events = oldest(&conn, 10).expect("oldest");
        let seen: Vec<(&str, EventKind, &serde_json::Value)> = events
            .iter()
            .map(|e| (e.idempotency_key.as_str(), e.kind, &e.payload))
            .collect();
        assert_eq!(
            seen,
            [
                (first.as_str(), EventKind::KioskVisit, &json!({ "n": 1 })),
                (
                    second.as_str(),
                    EventKind::AssociateNote,
                    &json!({ "n": 2 })
                ),
            ]
        );
        assert_eq!(oldest(&conn, 1).expect("one").len(), 1, "the limit holds");
    }

    #[test]
    fn an_event_rolled_back_with_its_change_never_reaches_the_outbox() {
        let (_dir, mut conn) = replica();
        {
            let tx = conn.transaction().expect("tx");
            record(
                &tx,
                EventKind::KioskVisit,
                &json!({}),
                ts("2026-03-01 10:00:00"),
            )
            .expect("record");
            // Dropped without commit: rolled back.
        }
        assert_eq!(pending(&conn).expect("pending"), 0);
    }

    #[test]
    fn only_acknowledged_keys_are_deleted_and_failures_are_noted() {
        let (_dir, mut conn) = replica();
        let keys: Vec<String> = (1..=3)
            .map(|n| {
                append(
                    &mut conn,
                    EventKind::KioskVisit,
                    n,
                    ts("2026-03-01 10:00:00"),
                )
            })
            .collect();
        note_failure(&conn, &keys[..2], ts("2026-03-01 10:05:00"), "unreachable").expect("note");
        let noted: Vec<(i64, Option<String>)> = conn
            .prepare("SELECT attempts, last_error FROM outbox ORDER BY seq")
            .expect("prepare")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(
            noted,
            [
                (1, Some("unreachable".to_owned())),
                (1, Some("unreachable".to_owned())),
                (0, None)
            ]
        );
        let deleted = acknowledge(&mut conn, &[keys[1].clone(), "someone-else-9".to_owned()])
            .expect("acknowledge");
        assert_eq!(deleted, 1, "an unknown key deletes nothing");
        let left: Vec<String> = oldest(&conn, 10)
            .expect("oldest")
            .into_iter()
            .map(|e| e.idempotency_key)
            .collect();
        assert_eq!(left, [keys[0].clone(), keys[2].clone()]);
    }

    #[test]
    fn an_unknown_kind_is_reported_as_corrupt() {
        let (_dir, conn) = replica();
        conn.execute(
            "INSERT INTO outbox (idempotency_key, kind, payload, created_at)
             VALUES ('x-1', 'no_such_kind', '{}', '2026-03-01 10:00:00')",
            [],
        )
        .expect("row");
        match oldest(&conn, 10) {
            Err(OutboxError::Corrupt { what }) => assert!(what.contains("no_such_kind"), "{what}"),
            other => panic!("expected corrupt, got {other:?}"),
        }
    }
}
