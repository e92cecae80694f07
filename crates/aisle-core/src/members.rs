//! Members: finding one by card, id or external id, reading the unified
//! profile and stated preferences, recent baskets, associate search over the
//! FTS index, and erasure ([`erase`]: every personal datum removed, a
//! tombstone left).
//!
//! Read functions over a `&Connection`; erased members are never returned
//! by search and their profile carries no personal data.

use crate::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::card::{self, CardError};
use crate::consent::Consents;

/// How a member was named by a person or a scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKey {
    Card(String),
    /// A member id, or a household id of an import source.
    Id(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("{input:?} looks like a card number but is not a valid one: {reason}")]
    BadCard { input: String, reason: CardError },
    #[error("{0:?} is neither a card number nor a member or household id")]
    Unrecognised(String),
    #[error("no member with {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

impl MemberKey {
    /// Reads a card number (13 digits with a valid check digit) or a numeric id.
    pub fn parse(input: &str) -> Result<Self, MemberError> {
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if compact.len() == 13 && compact.bytes().all(|b| b.is_ascii_digit()) {
            return card::validate(&compact)
                .map(MemberKey::Card)
                .map_err(|reason| MemberError::BadCard {
                    input: input.to_owned(),
                    reason,
                });
        }
        match compact.parse::<i64>() {
            Ok(id) if id > 0 && compact.len() < 13 => Ok(MemberKey::Id(id)),
            _ => Err(MemberError::Unrecognised(input.to_owned())),
        }
    }
}

/// Resolves a key to a member id: a card, else a member id, else an external (household) id.
pub fn find(conn: &Connection, key: &MemberKey) -> Result<Option<i64>, MemberError> {
    let found = match key {
        MemberKey::Card(number) => conn
            .query_row(
                "SELECT member_id FROM member_cards WHERE card_number = ?1 AND status = 'active'",
                [number],
                |row| row.get(0),
            )
            .optional()?,
        MemberKey::Id(id) => conn
            .query_row("SELECT member_id FROM members WHERE member_id = ?1", [id], |row| row.get(0))
            .optional()?
            .or(conn
                .query_row(
                    "SELECT member_id FROM member_external_ids WHERE external_id = ?1 ORDER BY source LIMIT 1",
                    [id.to_string()],
                    |row| row.get(0),
                )
                .optional()?),
    };
    Ok(found)
}

#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub card_number: String,
    pub status: String,
}

/// A stated preference (brand, category, size or dietary need): the wire type.
pub use aisle_proto::Preference;

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub author: String,
    pub body: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    pub granted: bool,
    pub at: Option<String>,
}

/// The unified profile of one member.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub member_id: i64,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub tier: String,
    pub home_store_id: Option<i64>,
    pub home_store_name: Option<String>,
    pub personalization: Consent,
    pub marketing: Consent,
    pub enrolled_on: Option<String>,
    pub erased_at: Option<String>,
    pub cards: Vec<Card>,
    pub external_ids: Vec<(String, String)>,
    pub preferences: Vec<Preference>,
    pub notes: Vec<Note>,
    pub demographics: Vec<(String, String)>,
}

impl Profile {
    /// The facts [`crate::consent`] decides on.
    pub fn consents(&self) -> Consents {
        Consents {
            personalization: self.personalization.granted,
            marketing: self.marketing.granted,
            erased: self.erased_at.is_some(),
        }
    }
}

pub fn profile(conn: &Connection, member_id: i64) -> Result<Profile, MemberError> {
    let mut profile = conn
        .query_row(
            "SELECT m.member_id, m.display_name, m.given_name, m.family_name, m.phone, m.email, m.tier,
                    m.home_store_id, s.name, m.consent_personalization, m.consent_personalization_at,
                    m.consent_marketing, m.consent_marketing_at, m.enrolled_on, m.erased_at
             FROM members AS m LEFT JOIN stores AS s ON s.store_id = m.home_store_id
             WHERE m.member_id = ?1",
            [member_id],
            |row| {
                Ok(Profile {
                    member_id: row.get(0)?,
                    display_name: row.get(1)?,
                    given_name: row.get(2)?,
                    family_name: row.get(3)?,
                    phone: row.get(4)?,
                    email: row.get(5)?,
                    tier: row.get(6)?,
                    home_store_id: row.get(7)?,
                    home_store_name: row.get(8)?,
                    personalization: Consent { granted: row.get(9)?, at: row.get(10)? },
                    marketing: Consent { granted: row.get(11)?, at: row.get(12)? },
                    enrolled_on: row.get(13)?,
                    erased_at: row.get(14)?,
                    cards: Vec::new(),
                    external_ids: Vec::new(),
                    preferences: Vec::new(),
                    notes: Vec::new(),
                    demographics: Vec::new(),
                })
            },
        )
        .optional()?
        .ok_or_else(|| MemberError::NotFound(format!("member id {member_id}")))?;
    profile.cards = conn
        .prepare("SELECT card_number, status FROM member_cards WHERE member_id = ?1 ORDER BY card_number")?
        .query_map([member_id], |row| Ok(Card { card_number: row.get(0)?, status: row.get(1)? }))?
        .collect::<Result<_, _>>()?;
    profile.external_ids = conn
        .prepare("SELECT source, external_id FROM member_external_ids WHERE member_id = ?1 ORDER BY source")?
        .query_map([member_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    profile.preferences = read_preferences(conn, member_id)?;
    profile.notes = conn
        .prepare("SELECT author, body, created_at FROM member_notes WHERE member_id = ?1 ORDER BY created_at DESC")?
        .query_map([member_id], |row| Ok(Note { author: row.get(0)?, body: row.get(1)?, created_at: row.get(2)? }))?
        .collect::<Result<_, _>>()?;
    let demographics = conn
        .query_row(
            "SELECT age_band, income_band, home_ownership, marital_status, household_size, household_comp, kids_count
             FROM member_demographics WHERE member_id = ?1",
            [member_id],
            |row| (0..7).map(|idx| row.get::<_, Option<String>>(idx)).collect::<Result<Vec<_>, _>>(),
        )
        .optional()?;
    if let Some(values) = demographics {
        let names = [
            "age",
            "income",
            "home ownership",
            "marital status",
            "household size",
            "household",
            "kids",
        ];
        profile.demographics = names
            .iter()
            .zip(values)
            .filter_map(|(name, value)| value.map(|v| ((*name).to_owned(), v)))
            .collect();
    }
    Ok(profile)
}

/// A member's stated preferences, by kind then value.
pub fn read_preferences(conn: &Connection, member_id: i64) -> rusqlite::Result<Vec<Preference>> {
    conn.prepare_cached(
        "SELECT kind, value FROM member_preferences WHERE member_id = ?1 ORDER BY kind, value",
    )?
    .query_map([member_id], |row| {
        Ok(Preference {
            kind: row.get(0)?,
            value: row.get(1)?,
        })
    })?
    .collect()
}

/// Removes every personal datum of a member: names, contacts, consents,
/// cards, preferences, notes, demographics, external ids, campaign
/// targeting, app-code keys and the replay cache's sightings of their codes;
/// baskets stay as anonymous sales. The row remains as a
/// tombstone (`erased_at`), so nothing later can bring the member back.
pub fn erase(tx: &Transaction<'_>, member_id: i64, erased_at: Timestamp) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM member_cards WHERE member_id = ?1",
        "DELETE FROM member_preferences WHERE member_id = ?1",
        "DELETE FROM member_notes WHERE member_id = ?1",
        "DELETE FROM member_demographics WHERE member_id = ?1",
        "DELETE FROM member_external_ids WHERE member_id = ?1",
        "DELETE FROM campaign_targets WHERE member_id = ?1",
        "DELETE FROM member_keys WHERE member_id = ?1",
        "DELETE FROM code_replays WHERE member_id = ?1",
        "UPDATE baskets SET member_id = NULL WHERE member_id = ?1",
        "UPDATE coupon_issues SET member_id = NULL WHERE member_id = ?1",
        "UPDATE coupon_issues SET bound_member_id = NULL WHERE bound_member_id = ?1",
        "UPDATE coupon_redemptions SET member_id = NULL WHERE member_id = ?1",
        "UPDATE store_visits SET member_id = NULL WHERE member_id = ?1",
        "DELETE FROM erasure_requests WHERE member_id = ?1",
    ] {
        tx.prepare_cached(sql)?.execute([member_id])?;
    }
    tx.prepare_cached(
        "INSERT INTO members (member_id, updated_at, erased_at) VALUES (?1, ?2, ?2)
         ON CONFLICT (member_id) DO UPDATE SET
             given_name = NULL, family_name = NULL, display_name = NULL, phone = NULL,
             email = NULL, home_store_id = NULL, tier = 'standard',
             consent_personalization = 0, consent_personalization_at = NULL,
             consent_marketing = 0, consent_marketing_at = NULL, enrolled_on = NULL,
             erased_at = coalesce(members.erased_at, excluded.erased_at),
             updated_at = excluded.updated_at",
    )?
    .execute(params![member_id, erased_at])?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct BasketLine {
    pub product_id: i64,
    pub name: String,
    pub quantity: i64,
    pub sales_cents: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Basket {
    pub basket_id: i64,
    pub store_id: i64,
    pub store_name: String,
    pub purchased_at: String,
    pub total_cents: i64,
    pub lines: Vec<BasketLine>,
}

/// What a member spent in one month in one department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthSpend {
    /// `YYYY-MM`.
    pub month: String,
    pub department: String,
    pub cents: i64,
}

/// A member's spend per month and department over the `months` months up
/// to `now`'s (store-local `YYYY-MM-DD ...`), oldest first; products
/// without a department count as "other".
pub fn spend_by_month(
    conn: &Connection,
    member_id: i64,
    now: Timestamp,
    months: u32,
) -> rusqlite::Result<Vec<MonthSpend>> {
    let month_start = format!("{}-01", &now.to_string()[..7]);
    conn.prepare(
        "SELECT substr(b.purchased_at, 1, 7) AS month, coalesce(p.department, 'other'),
                sum(l.sales_cents)
         FROM baskets AS b JOIN purchase_lines AS l USING (basket_id)
         JOIN products AS p ON p.product_id = l.product_id
         WHERE b.member_id = ?1 AND b.purchased_at >= date(?2, ?3) AND b.purchased_at < date(?2, '+1 month')
         GROUP BY 1, 2 ORDER BY 1, 3 DESC",
    )?
    .query_map(
        params![
            member_id,
            month_start,
            format!("-{} months", months.saturating_sub(1))
        ],
        |row| {
            Ok(MonthSpend {
                month: row.get(0)?,
                department: row.get(1)?,
                cents: row.get(2)?,
            })
        },
    )?
    .collect()
}

/// A member's most recent baskets, newest first, with their lines.
pub fn recent_baskets(
    conn: &Connection,
    member_id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Basket>> {
    let mut baskets: Vec<Basket> = conn
        .prepare(
            "SELECT b.basket_id, b.store_id, s.name, b.purchased_at FROM baskets AS b
             JOIN stores AS s ON s.store_id = b.store_id
             WHERE b.member_id = ?1 ORDER BY b.purchased_at DESC, b.basket_id DESC LIMIT ?2",
        )?
        .query_map(params![member_id, limit as i64], |row| {
            Ok(Basket {
                basket_id: row.get(0)?,
                store_id: row.get(1)?,
                store_name: row.get(2)?,
                purchased_at: row.get(3)?,
                total_cents: 0,
                lines: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut lines = conn.prepare(
        "SELECT l.product_id, p.name, l.quantity, l.sales_cents FROM purchase_lines AS l
         JOIN products AS p ON p.product_id = l.product_id
         WHERE l.basket_id = ?1 ORDER BY l.line_no",
    )?;
    for basket in &mut baskets {
        basket.lines = lines
            .query_map([basket.basket_id], |row| {
                Ok(BasketLine {
                    product_id: row.get(0)?,
                    name: row.get(1)?,
                    quantity: row.get(2)?,
                    sales_cents: row.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        basket.total_cents = basket.lines.iter().map(|l| l.sales_cents).sum();
    }
    Ok(baskets)
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub member_id: i64,
    pub display_name: Option<String>,
    pub card_number: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// The FTS5 query for what a person typed: every word must match as a prefix.
/// Returns `None` when there is nothing to search for.
pub fn search_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| format!("\"{}\"*", word.to_lowercase()))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Above this many matches, results are not ranked: the first ones by member id
/// are shown (ranking thousands of "victor"s costs tens of milliseconds on a
/// million members and tells the associate nothing; typing one more letter does).
pub const RANKED_MATCHES: usize = 256;

/// As-you-type search by name, card number, phone or e-mail.
///
/// When the text matches at most [`RANKED_MATCHES`] members, the best matches
/// (bm25) come first; otherwise the first `limit` matches by member id. Either
/// way the cost is bounded, whatever the size of the replica.
pub fn search(conn: &Connection, text: &str, limit: usize) -> rusqlite::Result<Vec<SearchHit>> {
    let Some(query) = search_query(text) else {
        return Ok(Vec::new());
    };
    let n_matches: usize = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT rowid FROM member_search WHERE member_search MATCH ?1 LIMIT ?2)",
        )?
        .query_row(params![query, (RANKED_MATCHES + 1) as i64], |row| row.get::<_, i64>(0))? as usize;
    let order = if n_matches <= RANKED_MATCHES {
        "f.rank, m.member_id"
    } else {
        "f.rowid"
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT m.member_id, m.display_name,
                (SELECT min(card_number) FROM member_cards AS c WHERE c.member_id = m.member_id AND c.status = 'active'),
                m.phone, m.email
         FROM member_search AS f JOIN members AS m ON m.member_id = f.rowid
         WHERE member_search MATCH ?1 AND m.erased_at IS NULL
         ORDER BY {order} LIMIT ?2"
    ))?;
    stmt.query_map(params![query, limit as i64], |row| {
        Ok(SearchHit {
            member_id: row.get(0)?,
            display_name: row.get(1)?,
            card_number: row.get(2)?,
            phone: row.get(3)?,
            email: row.get(4)?,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(MemberKey::parse("42").expect("id"), MemberKey::Id(42));
        assert_eq!(
            MemberKey::parse("4006381333931").expect("card"),
            MemberKey::Card("4006381333931".into())
        );
        assert!(matches!(
            MemberKey::parse("4006381333932"),
            Err(MemberError::BadCard { .. })
        ));
        assert!(matches!(
            MemberKey::parse("anna"),
            Err(MemberError::Unrecognised(_))
        ));
        assert!(matches!(
            MemberKey::parse("0"),
            Err(MemberError::Unrecognised(_))
        ));
    }

    #[test]
    fn queries() {
        assert_eq!(search_query("  "), None);
        assert_eq!(search_query("Ann Sm").as_deref(), Some("\"ann\"* \"sm\"*"));
        assert_eq!(
            search_query("555-0142").as_deref(),
            Some("\"555\"* \"0142\"*")
        );
        assert_eq!(
            search_query("a\"b OR c").as_deref(),
            Some("\"a\"* \"b\"* \"or\"* \"c\"*")
        );
    }
}
