//! Manual look-up of a member by an associate: phone, e-mail, card number or
//! name, typed on the tablet or the command line.
//!
//! **Associates only.** The public kiosk never offers this: anyone standing
//! at a kiosk could otherwise find a stranger's profile by guessing a phone
//! number or a name. The kiosk identifies members by their card or their app
//! code only ([`super::identify`]).
//!
//! What was typed decides the kind of look-up ([`classify`]): an `@` means
//! an e-mail (exact, case-insensitive); 13 digits (spaces and dashes
//! allowed, not starting with the `00` international prefix) a card number,
//! whose check digit is verified before any look-up; other digits with phone
//! punctuation a phone number, read as E.164 ([`super::phone`]) and matched
//! exactly; anything else a name, through the associate search index.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::phone::{self, CallingCode, PhoneError};
use crate::card::{self, CardError};

/// What a look-up is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// E.164.
    Phone(String),
    Email(String),
    /// 13 digits, check digit verified.
    Card(String),
    Name(String),
}

/// Which field matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    Phone,
    Email,
    Card,
    Name,
}

impl MatchedBy {
    pub fn name(self) -> &'static str {
        match self {
            MatchedBy::Phone => "phone",
            MatchedBy::Email => "email",
            MatchedBy::Card => "card",
            MatchedBy::Name => "name",
        }
    }
}

/// One member found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberHit {
    pub member_id: i64,
    pub display_name: Option<String>,
    /// The member's first active card.
    pub card_number: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub matched_by: MatchedBy,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("nothing to look up")]
    Empty,
    #[error("{input:?} is not a valid card number: {reason}")]
    BadCard { input: String, reason: CardError },
    #[error(
        "{input:?} is not a phone number: {reason} (`aisle member search` finds partial numbers)"
    )]
    BadPhone { input: String, reason: PhoneError },
    #[error("{0:?} is not an e-mail address")]
    BadEmail(String),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

impl LookupError {
    /// A stable code for screens.
    pub fn code(&self) -> &'static str {
        match self {
            LookupError::Empty => "empty",
            LookupError::BadCard { .. } => "bad_card",
            LookupError::BadPhone { .. } => "bad_phone",
            LookupError::BadEmail(_) => "bad_email",
            LookupError::Db(_) => "db",
        }
    }
}

/// Reads what an associate typed (pure).
pub fn classify(text: &str, calling_code: &CallingCode) -> Result<Query, LookupError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(LookupError::Empty);
    }
    if text.contains('@') {
        let (local, domain) = text.rsplit_once('@').unwrap_or_default();
        if local.is_empty()
            || domain.is_empty()
            || !domain.contains('.')
            || text.chars().any(char::is_whitespace)
        {
            return Err(LookupError::BadEmail(text.to_owned()));
        }
        return Ok(Query::Email(text.to_owned()));
    }
    let phone_like = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    if !phone_like || !text.chars().any(|c| c.is_ascii_digit()) {
        return Ok(Query::Name(text.to_owned()));
    }
    let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if compact.len() == 13
        && !compact.starts_with("00")
        && compact.bytes().all(|b| b.is_ascii_digit())
    {
        return card::validate(&compact)
            .map(Query::Card)
            .map_err(|reason| LookupError::BadCard {
                input: text.to_owned(),
                reason,
            });
    }
    phone::normalize(text, calling_code)
        .map(Query::Phone)
        .map_err(|reason| LookupError::BadPhone {
            input: text.to_owned(),
            reason,
        })
}

const HIT_COLUMNS: &str = "m.member_id, m.display_name,
    (SELECT min(card_number) FROM member_cards AS c WHERE c.member_id = m.member_id AND c.status = 'active'),
    m.phone, m.email";

fn hit(row: &rusqlite::Row<'_>, matched_by: MatchedBy) -> rusqlite::Result<MemberHit> {
    Ok(MemberHit {
        member_id: row.get(0)?,
        display_name: row.get(1)?,
        card_number: row.get(2)?,
        phone: row.get(3)?,
        email: row.get(4)?,
        matched_by,
    })
}

/// Finds members by what an associate typed, at most `limit` of them, by
/// member id (a name: best matches first). Erased members are never found.
///
/// **Associates only; never offered on the public kiosk** (see the module doc).
pub fn lookup(
    conn: &Connection,
    text: &str,
    calling_code: &CallingCode,
    limit: usize,
) -> Result<Vec<MemberHit>, LookupError> {
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let hits = match classify(text, calling_code)? {
        Query::Card(number) => conn
            .prepare_cached(&format!(
                "SELECT {HIT_COLUMNS} FROM member_cards AS k JOIN members AS m ON m.member_id = k.member_id
                 WHERE k.card_number = ?1 AND k.status = 'active' AND m.erased_at IS NULL LIMIT ?2"
            ))?
            .query_map(params![number, limit_sql], |row| hit(row, MatchedBy::Card))?
            .collect::<rusqlite::Result<_>>()?,
        Query::Email(email) => conn
            .prepare_cached(&format!(
                "SELECT {HIT_COLUMNS} FROM members AS m
                 WHERE lower(m.email) = lower(?1) AND m.erased_at IS NULL
                 ORDER BY m.member_id LIMIT ?2"
            ))?
            .query_map(params![email, limit_sql], |row| hit(row, MatchedBy::Email))?
            .collect::<rusqlite::Result<_>>()?,
        Query::Phone(e164) => {
            // One index probe per stored form that can mean this number, then
            // the rules themselves decide (a stored form can be ambiguous).
            let keys = phone::stored_keys(&e164, calling_code);
            let key = |idx: usize| keys.get(idx).unwrap_or(&keys[0]).as_str();
            let candidates: Vec<MemberHit> = conn
                .prepare_cached(&format!(
                    "SELECT {HIT_COLUMNS} FROM members AS m
                     WHERE m.phone_key IN (?1, ?2, ?3) AND m.erased_at IS NULL
                     ORDER BY m.member_id"
                ))?
                .query_map(params![key(0), key(1), key(2)], |row| {
                    hit(row, MatchedBy::Phone)
                })?
                .collect::<rusqlite::Result<_>>()?;
            candidates
                .into_iter()
                .filter(|hit| {
                    hit.phone
                        .as_deref()
                        .is_some_and(|p| phone::normalize(p, calling_code).ok().as_ref() == Some(&e164))
                })
                .take(limit)
                .collect()
        }
        Query::Name(name) => crate::members::search(conn, &name, limit)?
            .into_iter()
            .map(|found| MemberHit {
                member_id: found.member_id,
                display_name: found.display_name,
                card_number: found.card_number,
                phone: found.phone,
                email: found.email,
                matched_by: MatchedBy::Name,
            })
            .collect(),
    };
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_typed_decides_the_kind() {
        let us = CallingCode::default();
        let check = |text: &str, expect: Query| {
            assert_eq!(classify(text, &us).expect(text), expect, "{text:?}");
        };
        check(
            "Zoe.Martinez@Example.com",
            Query::Email("Zoe.Martinez@Example.com".into()),
        );
        check("2900 0000 0001-8", Query::Card("2900000000018".into()));
        check("(614) 555-0142", Query::Phone("+16145550142".into()));
        check("0033 6 12 34 56 78", Query::Phone("+33612345678".into()));
        check("0033612345678", Query::Phone("+33612345678".into()));
        check("zoe mart", Query::Name("zoe mart".into()));
        check("O'Brien 2", Query::Name("O'Brien 2".into()));
        let code = |text: &str| classify(text, &us).map_err(|e| e.code());
        assert_eq!(code("2900000000017").err(), Some("bad_card"));
        assert_eq!(code("555-0142").err(), Some("bad_phone"));
        assert_eq!(code("zoe@").err(), Some("bad_email"));
        assert_eq!(code("a b@c.d").err(), Some("bad_email"));
        assert_eq!(code("   ").err(), Some("empty"));
    }

    fn replica(phones: &[&str]) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        for (idx, phone) in phones.iter().enumerate() {
            conn.execute(
                "INSERT INTO members (member_id, given_name, display_name, phone, updated_at)
                 VALUES (?1, 'P', 'P', ?2, '2026-01-01')",
                params![100 + idx as i64, phone],
            )
            .expect("member");
        }
        conn.execute_batch(
            "INSERT INTO members (member_id, given_name, family_name, display_name, phone, email, updated_at)
                 VALUES (1, 'Zoe', 'Martinez', 'Zoe Martinez', '+1 614-555-0142', 'Zoe.Martinez@Example.com', '2026-01-01'),
                        (2, 'Ben', 'Okafor', 'Ben Okafor', '(614) 555-0199', 'ben@example.org', '2026-01-01'),
                        (3, 'Ana', 'Silva', 'Ana Silva', '0044 20 7946 0018', NULL, '2026-01-01'),
                        (4, NULL, NULL, NULL, NULL, NULL, '2026-01-01');
             UPDATE members SET erased_at = '2026-02-01' WHERE member_id = 4;
             INSERT INTO member_cards (card_number, member_id, status) VALUES
                 ('2900000000018', 1, 'active'), ('2900000000025', 2, 'blocked'),
                 ('2912345678907', 2, 'active');",
        )
        .expect("rows");
        (dir, conn)
    }

    fn ids(conn: &Connection, text: &str, calling_code: &CallingCode) -> Vec<(i64, MatchedBy)> {
        lookup(conn, text, calling_code, 10)
            .unwrap_or_else(|err| panic!("{text:?}: {err}"))
            .into_iter()
            .map(|hit| (hit.member_id, hit.matched_by))
            .collect()
    }

    #[test]
    fn each_kind_finds_its_member() {
        let (_dir, conn) = replica(&[]);
        let us = CallingCode::of_store(&conn).expect("setting");
        assert_eq!(us, CallingCode::default());
        for (text, expect) in [
            ("614 555 0142", vec![(1, MatchedBy::Phone)]),
            ("+1 (614) 555-0142", vec![(1, MatchedBy::Phone)]),
            ("1.614.555.0199", vec![(2, MatchedBy::Phone)]),
            ("+44 20 7946 0018", vec![(3, MatchedBy::Phone)]),
            ("+1 614 555 0143", vec![]),
            ("zoe.martinez@example.COM", vec![(1, MatchedBy::Email)]),
            ("zoe.martinez@example.co", vec![]),
            ("2900 0000 0001 8", vec![(1, MatchedBy::Card)]),
            ("2900000000025", vec![]),
            ("okafor", vec![(2, MatchedBy::Name)]),
            ("zoe mart", vec![(1, MatchedBy::Name)]),
        ] {
            assert_eq!(ids(&conn, text, &us), expect, "{text:?}");
        }
        // The check digit comes first: a bad row holding that very number is never reached.
        assert!(matches!(
            lookup(&conn, "2912345678907", &us, 10),
            Err(LookupError::BadCard { .. })
        ));
        // A store in the UK reads national numbers as +44.
        crate::replica::set_meta(&conn, phone::CALLING_CODE_SETTING, "+44").expect("set");
        let uk = CallingCode::of_store(&conn).expect("setting");
        assert_eq!(
            ids(&conn, "020 7946 0018", &uk),
            vec![(3, MatchedBy::Phone)]
        );
        assert_eq!(ids(&conn, "614 555 0142", &uk), vec![]);
        assert_eq!(
            ids(&conn, "001 614 555 0142", &uk),
            vec![(1, MatchedBy::Phone)]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// A phone look-up finds exactly the members whose stored phone reads
        /// as the same number as the query (checked by brute force), however
        /// either was written.
        #[test]
        fn property_phone_lookup_is_exact(
            stored in proptest::collection::vec(phone_text(), 1..30),
            query in phone_text(),
            calling_code in proptest::sample::select(vec!["+1", "+44", "+33", "+353"]),
        ) {
            let (_dir, conn) = replica(&stored.iter().map(String::as_str).collect::<Vec<_>>());
            let code = CallingCode::parse(calling_code).expect("code");
            let Ok(e164) = phone::normalize(&query, &code) else {
                proptest::prop_assert!(lookup(&conn, &query, &code, 100).is_err() || classify(&query, &code).is_ok_and(|q| !matches!(q, Query::Phone(_))));
                return Ok(());
            };
            if !matches!(classify(&query, &code), Ok(Query::Phone(_))) {
                return Ok(()); // 13 digits: a card number
            }
            let mut expected: Vec<i64> = stored
                .iter()
                .enumerate()
                .filter(|(_, s)| phone::normalize(s, &code).ok().as_ref() == Some(&e164))
                .map(|(idx, _)| 100 + idx as i64)
                .collect();
            for (id, phone) in [(1, "+1 614-555-0142"), (2, "(614) 555-0199"), (3, "0044 20 7946 0018")] {
                if phone::normalize(phone, &code).ok().as_ref() == Some(&e164) {
                    expected.push(id);
                }
            }
            expected.sort_unstable();
            let mut found: Vec<i64> = lookup(&conn, &query, &code, 100).expect("lookup").iter().map(|h| h.member_id).collect();
            found.sort_unstable();
            proptest::prop_assert_eq!(found, expected);
        }
    }

    /// One number, written in the many ways people and systems write it.
    fn phone_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        (
            proptest::sample::select(vec!["+1", "+44", "+33", "001", "0044", "1", "0", "", "+"]),
            proptest::sample::select(vec![
                "6145550142",
                "2079460018",
                "612345678",
                "5550142",
                "61455501",
            ]),
            proptest::collection::vec(
                proptest::sample::select(vec!["", " ", "-", ".", "(", ")"]),
                12,
            ),
        )
            .prop_map(|(prefix, digits, seps)| {
                let mut text = prefix.to_owned();
                for (digit, sep) in digits.chars().zip(seps) {
                    text.push_str(sep);
                    text.push(digit);
                }
                text
            })
    }
}
