use std::sync::{Arc, Barrier};

use crate::time::lit::ts;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use ed25519_dalek::SigningKey;

use super::*;
use crate::identify::member_code::ALPHABET;
use crate::keys::{add_issuer, issuer as keys_issuer, issuing_key, revoke_issuer, set_issuing_key};

/// 2026-06-01 12:00:00 UTC.
const T0: u64 = 1_780_315_200;
const DAY: u64 = 86_400;
const HERE: i64 = 1;
const OTHER: i64 = 2;
/// 3.00 off, 8.00 off (over the floor), 20 % off, in an ended campaign.
const SMALL: i64 = 10;
const LARGE: i64 = 11;
const PERCENT: i64 = 12;
const ENDED: i64 = 13;

pub(crate) fn seeded_key(seed: u64) -> SigningKey {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    SigningKey::from_bytes(&bytes)
}

fn setup(conn: &Connection) {
    conn.execute_batch(
        "BEGIN;
         INSERT INTO stores (store_id, name) VALUES (1, 'Here'), (2, 'Other');
         INSERT INTO campaigns (campaign_id, name, starts_on, ends_on) VALUES
             (1, 'Summer', '2026-01-01', '2026-12-31'), (2, 'Spring', '2026-03-01', '2026-04-30'),
             (3, 'Autumn', '2026-09-01', '2026-11-30');
         INSERT INTO coupons (coupon_id, code, campaign_id, description, discount_cents, discount_percent) VALUES
             (10, 'C10', 1, '3.00 off coffee', 300, NULL),
             (11, 'C11', 1, '8.00 off wine', 800, NULL),
             (12, 'C12', 1, '20% off cheese', NULL, 20),
             (13, 'C13', 2, 'spring', 100, NULL),
             (14, 'C14', 3, 'autumn', 100, NULL);",
    )
    .expect("catalog");
    for member_id in 1..=50 {
        conn.execute(
            "INSERT INTO members (member_id, given_name, updated_at) VALUES (?1, 'M', '2026-01-01')",
            [member_id],
        )
        .expect("member");
    }
    set_issuing_key(conn, HERE, 1, &seeded_key(1), ts("2026-01-01 00:00:00")).expect("our key");
    add_issuer(
        conn,
        OTHER,
        1,
        &seeded_key(2).verifying_key(),
        ts("2026-01-01 00:00:00"),
    )
    .expect("their key");
    conn.execute_batch("COMMIT").expect("commit");
}

fn replica() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
    setup(&conn);
    (dir, conn)
}

fn request(coupon_id: i64, member_id: i64, issued_at: u64) -> IssueRequest {
    IssueRequest {
        coupon_id,
        member_id,
        store_id: HERE,
        channel: Channel::Kiosk,
        issued_at,
        expires_at: issued_at + 14 * DAY,
    }
}

fn redeem_at(
    conn: &Connection,
    code: &str,
    member_id: Option<i64>,
    now_secs: u64,
) -> Result<Redeemed, CouponError> {
    redeem(
        conn,
        &RedeemRequest {
            code,
            member_id,
            store_id: HERE,
            till_id: "till-1",
            now_secs,
        },
        &RedeemPolicy::default(),
    )
}

fn reason<T: std::fmt::Debug>(result: Result<T, CouponError>) -> Refusal {
    match result {
        Err(CouponError::Refused(reason)) => reason,
        other => panic!("not a refusal: {other:?}"),
    }
}

/// A token of another store's instance (signed with its key, or `signer`).
/// An `AISLEC1` token (no signed maximum) of another store.
fn foreign_token(coupon_id: i64, member_id: i64, serial: &str, signer: &SigningKey) -> String {
    coupon::encode(
        &Instance {
            serial: serial.to_owned(),
            coupon_id,
            member_id,
            store_id: OTHER,
            key_id: 1,
            channel: Channel::Associate,
            expires_at: T0 + 7 * DAY,
            max_value_cents: None,
        },
        signer,
    )
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |row| row.get(0)).expect(sql)
}

#[test]
fn an_issued_coupon_redeems_once_by_token_or_numeric_code() {
    let (_dir, conn) = replica();
    let issued = issue(&conn, &request(SMALL, 7, T0)).expect("issue");
    assert_eq!(issued.serial.len(), 16);
    assert_eq!(issued.numeric_code.len(), 17);
    assert!(issued.numeric_code.starts_with(&issued.serial));
    assert_eq!(issued.key_id, 1);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE kind = 'coupon_issued'"
        ),
        1
    );
    let checked = check(
        &conn,
        &RedeemRequest {
            code: &issued.token,
            member_id: Some(7),
            store_id: HERE,
            till_id: "till-1",
            now_secs: T0 + 60,
        },
        &RedeemPolicy::default(),
    )
    .expect("check");
    assert_eq!(checked.coupon.discount_cents, Some(300));
    assert!(!checked.offline_risk);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM coupon_redemptions"),
        0,
        "check writes nothing"
    );
    let redeemed = redeem_at(&conn, &issued.numeric_code, Some(7), T0 + 60).expect("redeem");
    assert_eq!(redeemed.accepted, checked);
    assert_eq!(
        reason(redeem_at(&conn, &issued.token, Some(7), T0 + 61)),
        Refusal::AlreadyRedeemed
    );
    let (till, value, risk, at): (String, i64, bool, String) = conn
        .query_row(
            "SELECT till_id, value_cents, offline_risk, redeemed_at FROM coupon_redemptions",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .expect("row");
    assert_eq!(
        (till.as_str(), value, risk, at.as_str()),
        ("till-1", 300, false, "2026-06-01 12:01:00")
    );
    let payload: String = conn
        .query_row(
            "SELECT payload FROM outbox WHERE kind = 'coupon_redeemed'",
            [],
            |row| row.get(0),
        )
        .expect("event");
    let payload: serde_json::Value = serde_json::from_str(&payload).expect("json");
    assert_eq!(payload["serial"], issued.serial.as_str());
    assert_eq!(payload["store_id"], HERE);
    assert_eq!(payload["issuer_store_id"], HERE);
}

#[test]
fn each_refusal_has_its_reason_and_an_audit_row_without_the_signature() {
    let (_dir, conn) = replica();
    let live = issue(&conn, &request(SMALL, 7, T0)).expect("issue");
    let expired = issue(&conn, &request(SMALL, 7, T0 - 30 * DAY)).expect("issue");
    let spring = issue(&conn, &request(ENDED, 7, T0)).expect("issue");
    let autumn = issue(&conn, &request(14, 7, T0)).expect("issue");
    let used = issue(&conn, &request(SMALL, 8, T0)).expect("issue");
    redeem_at(&conn, &used.token, Some(8), T0).expect("first use");
    conn.execute("DELETE FROM coupons WHERE coupon_id = ?1", [PERCENT])
        .expect("withdraw");
    let withdrawn = foreign_token(PERCENT, 7, "5555555555555555", &seeded_key(2));
    // The other store's key 2, revoked before this token was shown.
    add_issuer(
        &conn,
        OTHER,
        2,
        &seeded_key(4).verifying_key(),
        ts("2026-01-01 00:00:00"),
    )
    .expect("key 2");
    revoke_issuer(&conn, OTHER, 2, ts("2026-05-01 00:00:00")).expect("revoke");
    let revoked = coupon::encode(
        &Instance {
            key_id: 2,
            ..coupon::parse(&foreign_token(SMALL, 7, "6666666666666666", &seeded_key(4)))
                .expect("token")
                .instance
        },
        &seeded_key(4),
    );
    let mut altered = live.token.clone();
    let at = altered.len() - 10;
    let c = if &altered[at..=at] == "A" { "B" } else { "A" };
    altered.replace_range(at..=at, c);
    let cases: Vec<(String, Option<i64>, Refusal)> = vec![
        ("hello".into(), Some(7), Refusal::Malformed),
        (altered, Some(7), Refusal::Altered),
        (
            foreign_token(SMALL, 7, "1111111111111111", &seeded_key(3)),
            Some(7),
            Refusal::Forged,
        ),
        (
            coupon::encode(
                &Instance {
                    store_id: 9,
                    ..coupon::parse(&live.token).expect("token").instance
                },
                &seeded_key(9),
            ),
            Some(7),
            Refusal::UnknownIssuer,
        ),
        (expired.token.clone(), Some(7), Refusal::Expired),
        (autumn.token.clone(), Some(7), Refusal::NotYetValid),
        (live.token.clone(), Some(8), Refusal::WrongMember),
        (live.token.clone(), None, Refusal::MemberRequired),
        (used.numeric_code.clone(), Some(8), Refusal::AlreadyRedeemed),
        (
            coupon::numeric_code("9999999999999999"),
            Some(7),
            Refusal::UnknownSerial,
        ),
        (
            foreign_token(LARGE, 7, "2222222222222222", &seeded_key(2)),
            Some(7),
            Refusal::OverFloorLimit,
        ),
        (spring.token.clone(), Some(7), Refusal::CampaignEnded),
        (withdrawn, Some(7), Refusal::CouponWithdrawn),
        (revoked, Some(7), Refusal::RevokedKey),
    ];
    for (code, member, expected) in &cases {
        assert_eq!(
            reason(redeem_at(&conn, code, *member, T0 + 60)),
            *expected,
            "{code}"
        );
    }
    let audits: Vec<(String, Option<i64>, String)> = conn
        .prepare("SELECT actor, member_id, detail FROM audit_log WHERE action = 'coupon_refused' ORDER BY audit_id")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(audits.len(), cases.len());
    for ((code, member, expected), (actor, audited_member, detail)) in cases.iter().zip(&audits) {
        assert_eq!(actor, "till-1");
        assert_eq!(audited_member, member);
        let detail: serde_json::Value = serde_json::from_str(detail).expect("json");
        assert_eq!(detail["reason"], expected.code());
        // The signature: the 103-character field, whatever the version.
        if let Some(signature) = code.split(':').find(|field| field.len() == 103) {
            assert!(
                !detail.to_string().contains(&signature[..12]),
                "{detail} holds the signature"
            );
        }
    }
    // Every reason but over_risk_budget (its own test) was exercised.
    let seen: std::collections::HashSet<Refusal> = cases.iter().map(|c| c.2).collect();
    assert_eq!(seen.len(), Refusal::ALL.len() - 1);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM coupon_redemptions"),
        1,
        "refusals redeem nothing"
    );
}

/// 10,000 generated cases: every valid coupon accepted (QR token or numeric
/// code); forged, altered, expired, foreign-member and already-redeemed
/// coupons each refused with their own reason.
#[test]
fn ten_thousand_generated_coupons_each_judged_right() {
    let (_dir, conn) = replica();
    let mut runner = TestRunner::new(Config {
        cases: 10_000,
        failure_persistence: None,
        ..Config::default()
    });
    let counts = std::cell::RefCell::new([0usize; 7]);
    let strategy = (
        0..7usize,
        1..=50i64,
        1..=49i64,
        0..(100 * DAY),
        any::<u64>(),
    );
    runner
        .run(&strategy, |(kind, member, other, offset, noise)| {
            counts.borrow_mut()[kind] += 1;
            let now = T0 - 100 * DAY + offset;
            let coupon_id = [SMALL, LARGE, PERCENT][(noise % 3) as usize];
            let issued = issue(&conn, &request(coupon_id, member, now)).expect("issue");
            let later = now + noise % (14 * DAY);
            let foreign_member = (member + other - 1) % 50 + 1;
            match kind {
                0 => {
                    let redeemed =
                        redeem_at(&conn, &issued.token, Some(member), later).expect("valid token");
                    prop_assert_eq!(redeemed.accepted.coupon.coupon_id, coupon_id);
                }
                1 => {
                    redeem_at(&conn, &issued.numeric_code, Some(member), later)
                        .expect("valid numeric code");
                }
                2 => {
                    // Forged: well formed, signed with a key that is not the store's.
                    let token = coupon::parse(&issued.token).expect("token");
                    let forged = coupon::encode(&token.instance, &seeded_key(100 + noise % 50));
                    prop_assert_eq!(
                        reason(redeem_at(&conn, &forged, Some(member), later)),
                        Refusal::Forged
                    );
                }
                3 => {
                    // Altered: one character of the token, or one digit of the numeric code.
                    if noise % 2 == 0 {
                        let mut bytes = issued.numeric_code.clone().into_bytes();
                        let at = (noise / 2 % 17) as usize;
                        bytes[at] = b'0' + (bytes[at] - b'0' + 1 + (noise / 64 % 9) as u8) % 10;
                        let typo = String::from_utf8(bytes).expect("ascii");
                        prop_assert_eq!(
                            reason(redeem_at(&conn, &typo, Some(member), later)),
                            Refusal::Altered
                        );
                    } else {
                        let mut bytes = issued.token.clone().into_bytes();
                        // Anywhere after the prefix.
                        let mut at = 8 + (noise / 2 % (bytes.len() as u64 - 8)) as usize;
                        if bytes[at] == b':' {
                            at -= 1;
                        }
                        let old = bytes[at];
                        let pool: &[u8] = if old.is_ascii_digit() {
                            b"0123456789"
                        } else {
                            ALPHABET
                        };
                        let mut pick = noise / 64;
                        bytes[at] = loop {
                            let c = pool[(pick % pool.len() as u64) as usize];
                            if c != old && c != b':' {
                                break c;
                            }
                            pick += 1;
                        };
                        let text = String::from_utf8(bytes).expect("ascii");
                        let got = reason(redeem_at(&conn, &text, Some(member), later));
                        // The 10-bit check misses 1 change in 1,024: the
                        // signature then refuses it as forged.
                        prop_assert!(
                            got == Refusal::Altered || got == Refusal::Forged,
                            "{}: {:?}",
                            text,
                            got
                        );
                        if got == Refusal::Forged {
                            counts.borrow_mut()[kind] -= 1;
                        }
                    }
                }
                4 => {
                    let after = issued.expires_at + 1 + noise % (30 * DAY);
                    prop_assert_eq!(
                        reason(redeem_at(&conn, &issued.token, Some(member), after)),
                        Refusal::Expired
                    );
                }
                5 => {
                    prop_assert_eq!(
                        reason(redeem_at(&conn, &issued.token, Some(foreign_member), later)),
                        Refusal::WrongMember
                    );
                }
                _ => {
                    redeem_at(&conn, &issued.token, Some(member), later).expect("first use");
                    let again = if noise % 2 == 0 {
                        &issued.token
                    } else {
                        &issued.numeric_code
                    };
                    prop_assert_eq!(
                        // A moment later, still before the expiry (an expired
                        // instance is refused as expired first).
                        reason(redeem_at(
                            &conn,
                            again,
                            Some(member),
                            (later + noise % 100).min(issued.expires_at)
                        )),
                        Refusal::AlreadyRedeemed
                    );
                }
            }
            Ok(())
        })
        .expect("every case judged right");
    let counts = counts.into_inner();
    assert!(counts.iter().sum::<usize>() > 9_900, "{counts:?}");
    assert!(counts.iter().all(|n| *n > 1_000), "{counts:?}");
    let accepted = (counts[0] + counts[1] + counts[6]) as i64;
    assert_eq!(
        count(&conn, "SELECT count(*) FROM coupon_redemptions"),
        accepted
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE kind = 'coupon_redeemed'"
        ),
        accepted
    );
}

/// Eight tills on their own connections to one replica file, each redeeming
/// the same coupon at the same instant, 200 times: exactly one redemption
/// each time, the others refused as already redeemed.
#[test]
fn eight_tills_at_once_redeem_each_coupon_exactly_once() {
    const TILLS: usize = 8;
    const COUPONS: usize = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.db");
    let conn = crate::replica::open_writer(&path).expect("replica");
    setup(&conn);
    let issued: Vec<IssuedCoupon> = (0..COUPONS)
        .map(|idx| issue(&conn, &request(SMALL, 1 + (idx % 50) as i64, T0)).expect("issue"))
        .collect();
    let issued = Arc::new(issued);
    let barrier = Arc::new(Barrier::new(TILLS));
    let handles: Vec<_> = (0..TILLS)
        .map(|till| {
            let (path, issued, barrier) = (path.clone(), issued.clone(), barrier.clone());
            std::thread::spawn(move || {
                let conn = crate::replica::open_writer(&path).expect("till connection");
                let till_id = format!("till-{till}");
                let mut outcomes = Vec::with_capacity(COUPONS);
                for coupon in issued.iter() {
                    // Half the tills scan the QR code, half key the number in.
                    let code = if till % 2 == 0 {
                        &coupon.token
                    } else {
                        &coupon.numeric_code
                    };
                    barrier.wait();
                    let outcome = redeem(
                        &conn,
                        &RedeemRequest {
                            code,
                            member_id: Some(coupon.member_id),
                            store_id: HERE,
                            till_id: &till_id,
                            now_secs: T0 + 60,
                        },
                        &RedeemPolicy::default(),
                    );
                    outcomes.push(match outcome {
                        Ok(_) => None,
                        Err(err) => Some(err.refusal().expect("a refusal, not a fault")),
                    });
                }
                outcomes
            })
        })
        .collect();
    let outcomes: Vec<Vec<Option<Refusal>>> = handles
        .into_iter()
        .map(|h| h.join().expect("till thread"))
        .collect();
    for idx in 0..COUPONS {
        let successes = outcomes.iter().filter(|o| o[idx].is_none()).count();
        assert_eq!(successes, 1, "coupon {idx}");
        assert!(
            outcomes
                .iter()
                .filter_map(|o| o[idx])
                .all(|r| r == Refusal::AlreadyRedeemed)
        );
    }
    assert_eq!(
        count(&conn, "SELECT count(*) FROM coupon_redemptions"),
        COUPONS as i64
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(DISTINCT json_extract(payload, '$.serial')) FROM outbox WHERE kind = 'coupon_redeemed'"
        ),
        COUPONS as i64
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE kind = 'coupon_redeemed'"
        ),
        COUPONS as i64
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM audit_log WHERE action = 'coupon_refused'"
        ),
        (COUPONS * (TILLS - 1)) as i64
    );
}

#[test]
fn coupons_of_other_stores_are_bounded_by_the_floor_limit_and_the_daily_budget() {
    let (_dir, conn) = replica();
    let policy = RedeemPolicy::default();
    let their = seeded_key(2);
    // Over the floor: refused offline; the same value issued here is fine.
    let large = foreign_token(LARGE, 7, "3000000000000000", &their);
    assert_eq!(
        reason(redeem_at(&conn, &large, Some(7), T0)),
        Refusal::OverFloorLimit
    );
    let ours = issue(&conn, &request(LARGE, 7, T0)).expect("issue");
    assert!(
        !redeem_at(&conn, &ours.token, Some(7), T0)
            .expect("our own")
            .accepted
            .offline_risk
    );
    // 3.00 each under a 50.00 budget: 16 pass, the 17th does not.
    let affordable = policy.daily_budget_cents / 300;
    for idx in 0..affordable {
        let token = foreign_token(SMALL, 7, &format!("40000000000000{idx:02}"), &their);
        let redeemed = redeem_at(&conn, &token, Some(7), T0 + idx as u64).expect("in budget");
        assert!(redeemed.accepted.offline_risk);
        assert_eq!(redeemed.accepted.issuer_store_id, OTHER);
    }
    let over = foreign_token(SMALL, 7, "4100000000000000", &their);
    assert_eq!(
        reason(redeem_at(&conn, &over, Some(7), T0 + 100)),
        Refusal::OverRiskBudget
    );
    // A percentage coupon counts at its assumed value; the budget is per day.
    let percent = foreign_token(PERCENT, 7, "4200000000000000", &their);
    assert_eq!(
        reason(redeem_at(&conn, &percent, Some(7), T0 + 100)),
        Refusal::OverRiskBudget
    );
    let next_day = redeem_at(&conn, &over, Some(7), T0 + DAY).expect("a new day");
    assert_eq!(next_day.accepted.value_cents, 300);
    // The foreign instance entered the ledger: its numeric code now works
    // here, and it cannot be redeemed again.
    assert_eq!(
        reason(redeem_at(
            &conn,
            &coupon::numeric_code("4100000000000000"),
            Some(7),
            T0 + DAY
        )),
        Refusal::AlreadyRedeemed
    );
    let spent: i64 = count(
        &conn,
        "SELECT sum(value_cents) FROM coupon_redemptions WHERE offline_risk = 1 AND redeemed_on = '2026-06-01'",
    );
    assert!(spent <= policy.daily_budget_cents, "{spent}");
}

#[test]
fn a_replica_without_hq_makes_its_own_issuing_key_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
    conn.execute_batch(
        "INSERT INTO campaigns (campaign_id, name, starts_on, ends_on) VALUES (1, 'S', '2026-01-01', '2026-12-31');
         INSERT INTO coupons (coupon_id, code, campaign_id, discount_cents) VALUES (10, 'C', 1, 100);
         INSERT INTO members (member_id, updated_at) VALUES (7, '2026-01-01');",
    )
    .expect("catalog");
    let first = issue(
        &conn,
        &IssueRequest {
            store_id: 5,
            ..request(SMALL, 7, T0)
        },
    )
    .expect("issue");
    let second = issue(
        &conn,
        &IssueRequest {
            store_id: 5,
            ..request(SMALL, 7, T0)
        },
    )
    .expect("issue");
    assert_eq!((first.key_id, second.key_id), (0, 0));
    assert_ne!(first.serial, second.serial);
    assert_eq!(count(&conn, "SELECT count(*) FROM coupon_issuers"), 1);
    let ok = redeem(
        &conn,
        &RedeemRequest {
            code: &second.token,
            member_id: Some(7),
            store_id: 5,
            till_id: "t",
            now_secs: T0,
        },
        &RedeemPolicy::default(),
    )
    .expect("redeem");
    assert!(!ok.accepted.offline_risk);
    // An expiry before the issue, and an unknown coupon, are refused.
    assert!(matches!(
        issue(
            &conn,
            &IssueRequest {
                expires_at: T0,
                ..request(SMALL, 7, T0)
            }
        ),
        Err(CouponError::Invalid(_))
    ));
    assert!(matches!(
        issue(&conn, &request(-1, 7, T0)),
        Err(CouponError::Invalid(_))
    ));
    assert_eq!(
        reason(issue(&conn, &request(99, 7, T0))),
        Refusal::CouponWithdrawn
    );
}

/// What HQ sends with a member's record enters the ledger (and never
/// replaces a redemption known here).
#[test]
fn instances_from_hq_make_numeric_codes_work_and_redeemed_ones_refuse() {
    let (_dir, conn) = replica();
    let record = |serial: &str, redeemed: Option<i64>| CouponInstanceRecord {
        serial: serial.into(),
        coupon_id: SMALL,
        issuer_store_id: OTHER,
        key_id: Some(1),
        channel: "kiosk".into(),
        issued_at: "2026-05-30 10:00:00".into(),
        expires_at: "2026-06-30 10:00:00".into(),
        redemption: redeemed.map(|store_id| CouponRedemptionRecord {
            store_id,
            redeemed_at: "2026-05-31 09:00:00".into(),
        }),
    };
    let tx = conn.unchecked_transaction().expect("tx");
    apply_instances(
        &tx,
        7,
        &[
            record("6000000000000001", None),
            record("6000000000000002", Some(OTHER)),
            record("not a serial", None),
        ],
    )
    .expect("apply");
    tx.commit().expect("commit");
    redeem_at(
        &conn,
        &coupon::numeric_code("6000000000000001"),
        Some(7),
        T0,
    )
    .expect("known from HQ");
    assert_eq!(
        reason(redeem_at(
            &conn,
            &foreign_token(SMALL, 7, "6000000000000002", &seeded_key(2)),
            Some(7),
            T0
        )),
        Refusal::AlreadyRedeemed
    );
    // HQ later says another store redeemed the first: ours stays.
    let tx = conn.unchecked_transaction().expect("tx");
    apply_instances(&tx, 7, &[record("6000000000000001", Some(OTHER))]).expect("apply");
    tx.commit().expect("commit");
    assert_eq!(
        count(
            &conn,
            "SELECT r.store_id FROM coupon_redemptions r JOIN coupon_issues i USING (issue_id) WHERE serial = '6000000000000001'"
        ),
        HERE
    );
    let read = read_instances(&conn, 7).expect("read");
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].redemption.as_ref().map(|r| r.store_id), Some(HERE));
}

#[test]
fn a_revoked_keys_token_is_good_only_for_an_instance_known_as_issued_before() {
    let (_dir, conn) = replica();
    let before = issue(&conn, &request(SMALL, 7, T0)).expect("issue");
    let (key_id, _) = issuing_key(&conn).expect("key").expect("an issuing key");
    let revoked_at = Timestamp::from_unix_u64(T0 + 10);
    revoke_issuer(&conn, HERE, key_id, revoked_at).expect("revoke");
    // A later revocation does not move the first.
    revoke_issuer(&conn, HERE, key_id, revoked_at.plus_secs(99)).expect("again");
    let issuer = keys_issuer(&conn, HERE, key_id)
        .expect("read")
        .expect("issuer");
    assert_eq!(issuer.revoked_at, Some(revoked_at));
    // Issued (and in the ledger) after the revocation: refused.
    let after = issue(&conn, &request(SMALL, 8, T0 + 20)).expect("issue");
    assert_eq!(
        reason(redeem_at(&conn, &after.token, Some(8), T0 + 60)),
        Refusal::RevokedKey
    );
    // A token of this key the ledger does not hold: refused.
    let unknown = coupon::encode(
        &Instance {
            serial: "7777777777777777".into(),
            ..coupon::parse(&before.token).expect("token").instance
        },
        &issuing_key(&conn).expect("key").expect("key").1,
    );
    assert_eq!(
        reason(redeem_at(&conn, &unknown, Some(7), T0 + 60)),
        Refusal::RevokedKey
    );
    // Issued and known before the revocation: still good.
    redeem_at(&conn, &before.token, Some(7), T0 + 60).expect("issued before");
}

#[test]
fn a_percentage_coupon_counts_at_the_maximum_its_token_signs() {
    let (_dir, conn) = replica();
    let their = seeded_key(2);
    let policy = RedeemPolicy::default();
    let with_max = |serial: &str, max: i64| {
        coupon::encode(
            &Instance {
                max_value_cents: Some(max),
                ..coupon::parse(&foreign_token(PERCENT, 7, serial, &their))
                    .expect("token")
                    .instance
            },
            &their,
        )
    };
    // Under the floor limit: accepted offline, counted at its signed maximum.
    let small = with_max("4300000000000000", 300);
    let redeemed = redeem_at(&conn, &small, Some(7), T0).expect("under the floor limit");
    assert_eq!(redeemed.accepted.value_cents, 300);
    assert!(redeemed.accepted.offline_risk);
    // Over it: refused offline, whatever the store's assumed value.
    let large = with_max("4300000000000001", policy.floor_limit_cents + 400);
    assert_eq!(
        reason(redeem_at(&conn, &large, Some(7), T0 + 1)),
        Refusal::OverFloorLimit
    );
    // An older token without a maximum counts at the assumed value.
    let older = foreign_token(PERCENT, 7, "4300000000000002", &their);
    let redeemed = redeem_at(&conn, &older, Some(7), T0 + 2).expect("assumed value");
    assert_eq!(redeemed.accepted.value_cents, policy.percent_value_cents);
    // Issued here: the maximum is signed into the token and kept in the ledger.
    let issued = issue(&conn, &request(PERCENT, 7, T0)).expect("issue");
    let token = coupon::parse(&issued.token).expect("token");
    assert_eq!(token.instance.max_value_cents, Some(PERCENT_MAX_CENTS));
    assert_eq!(
        token_for(&conn, &issued.serial).expect("token").as_deref(),
        Some(issued.token.as_str()),
        "the ledger re-signs the same token"
    );
}
