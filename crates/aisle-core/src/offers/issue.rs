//! Issuing an offer's coupon to a member: the offer's rules checked again
//! inside the issuing transaction (an immediate one: two kiosks issuing at
//! once are serialized, so neither can pass a limit the other just reached),
//! then the signed instance written with its outbox event by the ledger.

use crate::time::Timestamp;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::coupon;
use super::engine::OfferBook;
use super::features::MemberHistory;
use super::ledger::{self, CouponError, IssueRequest, IssuedCoupon};
use super::rules::{self, Channel, Ineligible, MemberFacts, OfferTerms, StoreUsage};
use crate::consent;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("coupon {0} is not in this replica")]
    UnknownCoupon(i64),
    #[error("member {0} is not in this replica")]
    UnknownMember(i64),
    #[error("coupon {coupon_id} cannot be issued to member {member_id}: {} ({})", .reason.message(), .reason.code())]
    Ineligible {
        coupon_id: i64,
        member_id: i64,
        reason: Ineligible,
    },
    #[error("{0:?} is not a time YYYY-MM-DD HH:MM:SS")]
    BadTime(String),
    #[error(transparent)]
    Coupon(#[from] CouponError),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl IssueError {
    /// A stable code: the refusing rule's, or the kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            IssueError::UnknownCoupon(_) => "unknown_coupon",
            IssueError::UnknownMember(_) => "unknown_member",
            IssueError::Ineligible { reason, .. } => reason.code(),
            IssueError::BadTime(_) => "invalid",
            IssueError::Coupon(error) => error.code(),
            IssueError::Sqlite(_) => "internal",
        }
    }
}

impl From<Channel> for coupon::Channel {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Kiosk => coupon::Channel::Kiosk,
            Channel::Associate => coupon::Channel::Associate,
        }
    }
}

/// What to issue, to whom, where and when (`now`: store-local
/// `YYYY-MM-DD HH:MM:SS`, the clock read by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferIssue {
    pub coupon_id: i64,
    pub member_id: i64,
    pub store_id: i64,
    pub channel: Channel,
    pub now: Timestamp,
}

/// Issues the coupon if the offer's rules allow it now, in one immediate
/// transaction on the replica's writer.
pub fn issue_offer(conn: &Connection, request: &OfferIssue) -> Result<IssuedCoupon, IssueError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let issued = issue_offer_in(&tx, request)?;
    tx.commit()?;
    Ok(issued)
}

/// [`issue_offer`] inside the caller's immediate transaction.
pub fn issue_offer_in(
    tx: &Transaction<'_>,
    request: &OfferIssue,
) -> Result<IssuedCoupon, IssueError> {
    let now_secs = Some(request.now.unix())
        .filter(|s| *s >= 0)
        .ok_or_else(|| IssueError::BadTime(request.now.to_string()))?;
    let today = request.now.day();
    let offer = OfferBook::load_coupon(tx, request.store_id, request.coupon_id)?
        .ok_or(IssueError::UnknownCoupon(request.coupon_id))?;
    let member = MemberFacts::load(tx, request.member_id, request.now)?
        .ok_or(IssueError::UnknownMember(request.member_id))?;
    let affinity = if offer.rule.min_affinity > 0 && consent::may_personalize(&member.consent) {
        MemberHistory::load(tx, request.member_id, request.now)?.affinity(&offer.products)
    } else {
        0
    };
    let usage = StoreUsage::load(tx, request.store_id, today, offer.starts_on)?;
    let terms = OfferTerms {
        campaign_id: offer.campaign_id,
        starts_on: offer.starts_on,
        ends_on: offer.ends_on,
        rule: &offer.rule,
    };
    rules::eligibility(terms, &member, &usage, request.channel, today, affinity).map_err(
        |reason| IssueError::Ineligible {
            coupon_id: request.coupon_id,
            member_id: request.member_id,
            reason,
        },
    )?;
    let campaign_end = offer.ends_on.end().unix();
    let expires = (now_secs + offer.rule.valid_days * 86_400).min(campaign_end);
    Ok(ledger::issue_in(
        tx,
        &IssueRequest {
            coupon_id: request.coupon_id,
            member_id: request.member_id,
            store_id: request.store_id,
            channel: request.channel.into(),
            issued_at: now_secs as u64,
            expires_at: expires.max(now_secs + 1) as u64,
        },
    )?)
}

#[cfg(test)]
mod tests {
    use crate::time::lit::ts;
    use std::sync::{Arc, Barrier};

    use super::*;

    fn replica(path: &std::path::Path) -> Connection {
        let conn = crate::replica::open_writer(path).expect("replica");
        conn.execute_batch(
            "INSERT INTO stores (store_id, name) VALUES (1, 'Here');
             INSERT INTO members (member_id, updated_at, consent_personalization) VALUES
                (1, '2026-01-01', 1), (2, '2026-01-01', 1), (3, '2026-01-01', 0);
             INSERT INTO campaigns (campaign_id, name, starts_on, ends_on) VALUES
                (1, 'Limited', '2026-03-01', '2026-03-31'), (2, 'Open', '2026-03-01', '2026-03-20');
             INSERT INTO campaign_targets VALUES (1, 1), (1, 2), (1, 3);
             INSERT INTO offer_rules (campaign_id, per_store_daily_limit) VALUES (1, 1);
             INSERT INTO offer_rules (campaign_id, targeted_only, valid_days, per_member_limit) VALUES (2, 0, 30, 100);
             INSERT INTO coupons (coupon_id, code, campaign_id, description) VALUES
                (10, 'LIM', 1, 'limited'), (20, 'OPEN', 2, 'open');",
        )
        .expect("rows");
        conn
    }

    fn request(coupon_id: i64, member_id: i64, now: Timestamp) -> OfferIssue {
        OfferIssue {
            coupon_id,
            member_id,
            store_id: 1,
            channel: Channel::Kiosk,
            now,
        }
    }

    fn refusal(result: Result<IssuedCoupon, IssueError>) -> &'static str {
        match result {
            Ok(issued) => panic!("issued {}", issued.serial),
            Err(error) => error.code(),
        }
    }

    #[test]
    fn the_rules_decide_in_the_issuing_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = replica(&dir.path().join("r.db"));
        let now = "2026-03-10 09:00:00";
        assert_eq!(
            refusal(issue_offer(&conn, &request(99, 1, ts(now)))),
            "unknown_coupon"
        );
        assert_eq!(
            refusal(issue_offer(&conn, &request(10, 99, ts(now)))),
            "unknown_member"
        );
        assert_eq!(
            refusal(issue_offer(
                &conn,
                &request(10, 1, Timestamp::from_unix(-1))
            )),
            "invalid"
        );
        assert_eq!(
            refusal(issue_offer(&conn, &request(10, 3, ts(now)))),
            "no_consent"
        );
        assert_eq!(
            refusal(issue_offer(
                &conn,
                &request(10, 1, ts("2026-02-28 09:00:00"))
            )),
            "not_started"
        );
        let first = issue_offer(&conn, &request(10, 1, ts(now))).expect("issued");
        // Valid 14 days by default.
        assert_eq!(
            crate::dates::timestamp_string(first.expires_at as i64),
            "2026-03-24 09:00:00"
        );
        assert_eq!(
            refusal(issue_offer(&conn, &request(10, 1, ts(now)))),
            "member_limit"
        );
        assert_eq!(
            refusal(issue_offer(&conn, &request(10, 2, ts(now)))),
            "store_daily_limit"
        );
        // The next day the store may issue one more.
        issue_offer(&conn, &request(10, 2, ts("2026-03-11 09:00:00"))).expect("next day");
        // Never valid past the campaign's last day, and open to a member without consent.
        let open = issue_offer(&conn, &request(20, 3, ts(now))).expect("open offer");
        assert_eq!(
            crate::dates::timestamp_string(open.expires_at as i64),
            "2026-03-20 23:59:59"
        );
        // Each issue wrote its row and its outbox event; refusals wrote nothing.
        let count = |sql: &str| {
            conn.query_row(sql, [], |row| row.get::<_, i64>(0))
                .expect("count")
        };
        assert_eq!(count("SELECT count(*) FROM coupon_issues"), 3);
        assert_eq!(
            count("SELECT count(*) FROM outbox WHERE kind = 'coupon_issued'"),
            3
        );
    }

    /// Two kiosks issuing the store's last coupon of the day at the same
    /// instant: one gets it, every time.
    #[test]
    fn two_kiosks_at_once_never_pass_a_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        replica(&path)
            .execute(
                "UPDATE offer_rules SET per_member_limit = 100 WHERE campaign_id = 1",
                [],
            )
            .expect("members may come back every day");
        for day in 1..=25 {
            let now = format!("2026-03-{day:02} 12:00:00");
            let barrier = Arc::new(Barrier::new(2));
            let results: Vec<Result<IssuedCoupon, IssueError>> = [1, 2]
                .map(|member| {
                    let (path, barrier, now) = (path.clone(), barrier.clone(), now.clone());
                    std::thread::spawn(move || {
                        let conn = crate::replica::open_writer(&path).expect("writer");
                        barrier.wait();
                        issue_offer(&conn, &request(10, member, ts(&now)))
                    })
                })
                .into_iter()
                .map(|thread| thread.join().expect("thread"))
                .collect();
            let issued = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(issued, 1, "day {day}: {results:?}");
            let refused: Vec<&str> = results
                .iter()
                .filter_map(|r| r.as_ref().err().map(IssueError::code))
                .collect();
            assert_eq!(refused, ["store_daily_limit"], "day {day}");
        }
        let conn = crate::replica::open_reader(&path).expect("reader");
        let per_day: Vec<i64> = conn
            .prepare("SELECT count(*) FROM coupon_issues GROUP BY substr(issued_at, 1, 10)")
            .expect("sql")
            .query_map([], |row| row.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("counts");
        assert!(per_day.iter().all(|n| *n == 1), "{per_day:?}");
    }
}
