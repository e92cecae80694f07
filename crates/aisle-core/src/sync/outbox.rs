//! The outbox: local events written in the same transaction as the local
//! change they describe, uploaded in order, deleted only once HQ acknowledges.

use aisle_proto::{Event, EventKind};
use rusqlite::{Connection, Transaction, params};

/// `replica_meta` key of this replica's random instance id: part of every
/// idempotency key, so a replica rebuilt from scratch (whose outbox
/// sequence restarts) can never reuse a key HQ has already recorded.
const INSTANCE_KEY: &str = "sync.instance_id";

/// This replica's instance id, created on first use (16 random bytes, hex).
pub fn instance_id(tx: &Transaction<'_>) -> Result<String, super::SyncError> {
    if let Some(id) = crate::replica::meta(tx, INSTANCE_KEY)? {
        return Ok(id);
    }
    let id = hex::encode(super::random_bytes::<16>()?);
    crate::replica::set_meta(tx, INSTANCE_KEY, &id)?;
    Ok(id)
}

/// Records one local event inside the caller's transaction (the one making
/// the change it describes). Returns its idempotency key.
pub fn record(
    tx: &Transaction<'_>,
    kind: EventKind,
    payload: &serde_json::Value,
    now: &str,
) -> Result<String, super::SyncError> {
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

/// The oldest `limit` events, in order.
pub fn oldest(conn: &Connection, limit: usize) -> Result<Vec<Event>, super::SyncError> {
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
        let kind = EventKind::parse(&kind).ok_or_else(|| super::SyncError::Corrupt {
            what: format!("outbox event {seq} has the unknown kind {kind:?}"),
        })?;
        let payload = serde_json::from_str(&payload).map_err(|err| super::SyncError::Corrupt {
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
    now: &str,
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
