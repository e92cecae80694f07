//! Consent: whether we may personalize for a member, and whether we may
//! market to them, decided in one place.
//!
//! A member's [`Consents`] are what the replica holds (`members`:
//! `consent_personalization`, `consent_marketing`, `erased_at`). The
//! predicates [`may_personalize`] and [`may_market`] are pure; [`load`]
//! reads the facts of one member, [`COLUMNS`] / [`from_row`] read them in a
//! caller's own query, and [`MAY_PERSONALIZE_SQL`] is the same rule as an
//! SQL condition for queries over many members. An erased member consents
//! to nothing, whatever the flags say.

use rusqlite::{Connection, OptionalExtension};

/// What the replica holds about a member's consents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consents {
    /// Consent to personalization (history-based picks, offers and coupons).
    pub personalization: bool,
    /// Consent to marketing.
    pub marketing: bool,
    /// The member asked to be forgotten.
    pub erased: bool,
}

/// Whether the member's history and profile may shape what they are
/// shown or given (picks, offers, coupons, the associate's history view).
pub fn may_personalize(consents: &Consents) -> bool {
    consents.personalization && !consents.erased
}

/// Whether the member may be sent marketing.
pub fn may_market(consents: &Consents) -> bool {
    consents.marketing && !consents.erased
}

/// The columns of `members` that [`from_row`] reads, in order.
pub const COLUMNS: &str = "consent_personalization, consent_marketing, erased_at IS NOT NULL";

/// [`may_personalize`] as an SQL condition over a `members` row.
pub const MAY_PERSONALIZE_SQL: &str = "(consent_personalization = 1 AND erased_at IS NULL)";

/// The consents of a row selected with [`COLUMNS`] from column `first` on.
pub fn from_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Consents> {
    Ok(Consents {
        personalization: row.get(first)?,
        marketing: row.get(first + 1)?,
        erased: row.get(first + 2)?,
    })
}

/// The consents of `member_id`; `None` for a member the replica does not hold.
pub fn load(conn: &Connection, member_id: i64) -> rusqlite::Result<Option<Consents>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM members WHERE member_id = ?1"
    ))?
    .query_row([member_id], |row| from_row(row, 0))
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consents(personalization: bool, marketing: bool, erased: bool) -> Consents {
        Consents {
            personalization,
            marketing,
            erased,
        }
    }

    #[test]
    fn each_consent_counts_for_itself_and_erasure_withdraws_both() {
        for (facts, personalize, market) in [
            (consents(false, false, false), false, false),
            (consents(true, false, false), true, false),
            (consents(false, true, false), false, true),
            (consents(true, true, false), true, true),
            (consents(true, true, true), false, false),
            (consents(true, false, true), false, false),
        ] {
            assert_eq!(may_personalize(&facts), personalize, "{facts:?}");
            assert_eq!(may_market(&facts), market, "{facts:?}");
        }
    }

    #[test]
    fn the_replica_the_predicates_and_the_sql_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        conn.execute_batch(
            "INSERT INTO members (member_id, updated_at, consent_personalization, consent_marketing, erased_at) VALUES
                (1, '2026-01-01', 1, 0, NULL),
                (2, '2026-01-01', 0, 1, NULL),
                (3, '2026-01-01', 1, 1, '2026-02-01 00:00:00'),
                (4, '2026-01-01', 0, 0, NULL);",
        )
        .expect("members");
        assert_eq!(
            load(&conn, 1).expect("load"),
            Some(consents(true, false, false))
        );
        assert_eq!(
            load(&conn, 2).expect("load"),
            Some(consents(false, true, false))
        );
        assert_eq!(
            load(&conn, 3).expect("load"),
            Some(consents(true, true, true))
        );
        assert_eq!(load(&conn, 99).expect("load"), None, "unknown");
        let by_sql: Vec<i64> = conn
            .prepare(&format!(
                "SELECT member_id FROM members WHERE {MAY_PERSONALIZE_SQL} ORDER BY member_id"
            ))
            .expect("prepare")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        let by_rule: Vec<i64> = (1..=4)
            .filter(|id| {
                load(&conn, *id)
                    .expect("load")
                    .is_some_and(|facts| may_personalize(&facts))
            })
            .collect();
        assert_eq!(by_sql, [1]);
        assert_eq!(by_sql, by_rule);
    }
}
