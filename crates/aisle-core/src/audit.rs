//! The audit trail: who did what, to which member, when. One row shape
//! (`audit_log`: at, actor, action, member, detail as JSON) written by one
//! function, [`record`], inside the transaction of the act it records, so
//! an act is never without its row nor a row without its act.
//!
//! Writers: refused member codes (`identify`), refused coupons (`offers`),
//! associates' sign-ins and unlocks (`staff`), profile views, edits and
//! coupons issued by associates (`clienteling`). A detail never holds a
//! signature or a PIN.

use rusqlite::{Connection, params};

use crate::time::Timestamp;

/// One audit row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditEntry<'a> {
    /// Store-local or UTC `YYYY-MM-DD HH:MM:SS`, as the caller's clock reads.
    pub at: Timestamp,
    /// Who: `staff:<number>`, a device name, a till.
    pub actor: &'a str,
    /// What, a stable name (`profile_viewed`, `coupon_refused`, ...).
    pub action: &'a str,
    /// Whom, when the act concerns a member.
    pub member_id: Option<i64>,
    /// The rest, as a JSON object.
    pub detail: &'a serde_json::Value,
}

/// Writes `entry` (in the caller's transaction when `conn` is one).
pub fn record(conn: &Connection, entry: &AuditEntry<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, member_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        entry.at,
        entry.actor,
        entry.action,
        entry.member_id,
        entry.detail.to_string()
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::lit::ts;
    use serde_json::json;

    #[test]
    fn one_row_per_entry_with_every_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        let tx = conn.transaction().expect("tx");
        record(
            &tx,
            &AuditEntry {
                at: ts("2026-03-01 10:00:00"),
                actor: "staff:1001",
                action: "profile_viewed",
                member_id: Some(7),
                detail: &json!({ "store_id": 1 }),
            },
        )
        .expect("record");
        record(
            &tx,
            &AuditEntry {
                at: ts("2026-03-01 10:01:00"),
                actor: "staff:1002",
                action: "sign_in",
                member_id: None,
                detail: &json!({}),
            },
        )
        .expect("record");
        tx.commit().expect("commit");
        let rows: Vec<(String, String, String, Option<i64>, String)> = conn
            .prepare("SELECT at, actor, action, member_id, detail FROM audit_log ORDER BY audit_id")
            .expect("prepare")
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(
            rows,
            [
                (
                    "2026-03-01 10:00:00".to_owned(),
                    "staff:1001".to_owned(),
                    "profile_viewed".to_owned(),
                    Some(7),
                    r#"{"store_id":1}"#.to_owned()
                ),
                (
                    "2026-03-01 10:01:00".to_owned(),
                    "staff:1002".to_owned(),
                    "sign_in".to_owned(),
                    None,
                    "{}".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_row_goes_with_its_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        {
            let tx = conn.transaction().expect("tx");
            record(
                &tx,
                &AuditEntry {
                    at: ts("2026-03-01 10:00:00"),
                    actor: "kiosk-1",
                    action: "code_refused",
                    member_id: Some(7),
                    detail: &json!({ "reason": "forged" }),
                },
            )
            .expect("record");
        }
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM audit_log", [], |row| row.get(0))
            .expect("count");
        assert_eq!(rows, 0, "rolled back with the act it recorded");
    }
}
