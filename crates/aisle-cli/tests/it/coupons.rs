//! Coupons through the real `aisle` binary: issue (QR PNG, numeric code),
//! check, redeem with an exit status per refusal class, SIGKILL mid-loop,
//! and two stores redeeming one coupon offline, reconciled by a real HQ.

// The crash loop prints what its kills hit.
#![allow(clippy::print_stderr)]

use aisle_proto::DeviceKind;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{aisle, text};
use aisle_core::offers::coupon::{self, Channel};
use aisle_core::offers::ledger::{self, IssueRequest, IssuedCoupon, RedeemPolicy, RedeemRequest};
use aisle_tests::hq::{TestHq, provision};
use rusqlite::Connection;

/// 2026-06-01 12:00:00 UTC.
const T0: u64 = 1_780_315_200;

fn replica(path: &Path) -> Connection {
    let conn = aisle_core::replica::open_writer(path).expect("replica");
    conn.execute_batch(
        "INSERT INTO stores (store_id, name) VALUES (1, 'Here');
         INSERT INTO campaigns (campaign_id, name, starts_on, ends_on) VALUES (1, 'S', '2026-01-01', '2026-12-31');
         INSERT INTO coupons (coupon_id, code, campaign_id, description, discount_cents) VALUES (10, 'C10', 1, '3.00 off coffee', 300);
         INSERT INTO members (member_id, updated_at) VALUES (7, '2026-01-01'), (8, '2026-01-01');
         -- Open to every member, once each (the rules `aisle coupon issue` applies).
         INSERT INTO offer_rules (campaign_id, targeted_only) VALUES (1, 0);",
    )
    .expect("catalog");
    conn
}

#[test]
fn issue_check_and_redeem_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    drop(replica(&db));
    let png = dir.path().join("coupon.png");
    let at = T0.to_string();
    let output = aisle(
        &db,
        &[
            "--json",
            "coupon",
            "issue",
            "--coupon",
            "10",
            "--member",
            "7",
            "--store",
            "1",
            "--channel",
            "associate",
            "--qr",
        ]
        .iter()
        .copied()
        .chain([png.to_str().expect("utf-8"), "--at", &at])
        .collect::<Vec<_>>(),
    );
    assert!(output.status.success(), "{}", text(&output));
    let issued: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("issue prints JSON");
    let token = issued["token"].as_str().expect("token").to_owned();
    // The offer's rules: one coupon of the campaign per member.
    let again = aisle(
        &db,
        &[
            "coupon", "issue", "--coupon", "10", "--member", "7", "--store", "1", "--at", &at,
        ],
    );
    assert_eq!(again.status.code(), Some(17), "{}", text(&again));
    assert!(text(&again).contains("member_limit"), "{}", text(&again));
    // Said in words: what it is for and what it is worth.
    let other = aisle(
        &db,
        &[
            "coupon", "issue", "--coupon", "10", "--member", "8", "--store", "1", "--at", &at,
        ],
    );
    assert!(other.status.success(), "{}", text(&other));
    assert!(
        text(&other).contains("issued coupon 10 (3.00 off coffee, 3.00 off) to member 8"),
        "{}",
        text(&other)
    );

    let numeric = issued["numeric_code"].as_str().expect("numeric").to_owned();
    assert_eq!(numeric.len(), 17);
    assert!(token.starts_with(&format!(
        "AISLEC2:{}:10:7:1:",
        issued["serial"].as_str().expect("serial")
    )));
    // The PNG holds exactly the token.
    let image = image::open(&png).expect("png").to_luma8();
    let (width, height) = image.dimensions();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(width as usize, height as usize, |x, y| {
            image.get_pixel(x as u32, y as u32).0[0]
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().expect("decode");
    assert_eq!(content, token);

    let later = (T0 + 60).to_string();
    let judged = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--store", "1", "--at", &later]);
        aisle(&db, &all)
    };
    let check = judged(&["coupon", "check", &token, "--member", "7"]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("3.00 off coffee"), "{}", text(&check));

    let unknown = coupon::numeric_code("1234567890123456");
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["coupon", "redeem", "hello", "--member", "7"],
            10,
            "malformed",
        ),
        (
            &["coupon", "redeem", &numeric, "--member", "8"],
            13,
            "wrong_member",
        ),
        (
            &["coupon", "redeem", &unknown, "--member", "7"],
            15,
            "unknown_serial",
        ),
        (
            &["coupon", "check", &token[..40], "--member", "7"],
            10,
            "malformed",
        ),
    ];
    for (args, status, code) in cases {
        let output = judged(args);
        assert_eq!(
            output.status.code(),
            Some(status),
            "{args:?}: {}",
            text(&output)
        );
        assert!(text(&output).contains(code), "{}", text(&output));
    }
    let redeemed = judged(&[
        "coupon", "redeem", &numeric, "--member", "7", "--till", "pos-1",
    ]);
    assert!(redeemed.status.success(), "{}", text(&redeemed));
    assert!(
        text(&redeemed).starts_with("redeemed coupon 10"),
        "{}",
        text(&redeemed)
    );
    let again = judged(&["coupon", "redeem", &token, "--member", "7"]);
    assert_eq!(again.status.code(), Some(14), "{}", text(&again));
    assert!(text(&again).contains("already_redeemed"));
    let expired = aisle(
        &db,
        &[
            "coupon",
            "check",
            &token,
            "--store",
            "1",
            "--at",
            &(T0 + 30 * 86_400).to_string(),
        ],
    );
    // Judged in order: expiry before the ledger.
    assert_eq!(expired.status.code(), Some(12), "{}", text(&expired));
    let unprovisioned = aisle(&db, &["coupon", "redeem", &token, "--member", "7"]);
    assert_eq!(unprovisioned.status.code(), Some(1));
    assert!(
        text(&unprovisioned).contains("--store"),
        "{}",
        text(&unprovisioned)
    );

    let conn = aisle_core::replica::connect(&db).expect("replica");
    let (redemptions, events, audits): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM coupon_redemptions WHERE till_id = 'pos-1'),
                    (SELECT count(*) FROM outbox WHERE kind = 'coupon_redeemed'),
                    (SELECT count(*) FROM audit_log WHERE action = 'coupon_refused')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("counts");
    // Refused redemptions are audited; refused checks (read-only) are not.
    assert_eq!((redemptions, events, audits), (1, 1, 4));
}

/// `aisle coupon redeem` killed with SIGKILL at random moments: each
/// redemption either happened whole (ledger row and outbox event) or not
/// at all, and redeeming again then gives the right answer.
#[test]
fn kill_9_mid_redemption_leaves_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    let conn = replica(&db);
    let coupons: Vec<IssuedCoupon> = (0..40)
        .map(|_| {
            ledger::issue(
                &conn,
                &IssueRequest {
                    coupon_id: 10,
                    member_id: 7,
                    store_id: 1,
                    channel: Channel::Kiosk,
                    issued_at: T0,
                    expires_at: T0 + 86_400,
                },
            )
            .expect("issue")
        })
        .collect();
    drop(conn);
    let seed = 20_261_125u64;
    let mut rng = aisle_core::rng::SplitMix64::new(seed);
    let at = (T0 + 60).to_string();
    let mut killed = 0;
    for coupon in &coupons {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aisle"))
            .arg("--db")
            .arg(&db)
            .args([
                "coupon",
                "redeem",
                &coupon.token,
                "--member",
                "7",
                "--store",
                "1",
                "--at",
                &at,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(rng.next_u64() % 30_000));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
        child.wait().expect("reap");
    }
    let conn = aisle_core::replica::open_writer(&db).expect("replica after kills");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
    let mut redeemed_before = 0;
    for coupon in &coupons {
        let (rows, events): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM coupon_redemptions WHERE issue_id = ?1),
                        (SELECT count(*) FROM outbox WHERE kind = 'coupon_redeemed'
                             AND json_extract(payload, '$.serial') = ?2)",
                rusqlite::params![coupon.issue_id, coupon.serial],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("counts");
        assert_eq!(
            rows, events,
            "serial {}: ledger and outbox agree",
            coupon.serial
        );
        assert!(rows <= 1);
        redeemed_before += rows;
        let again = ledger::redeem(
            &conn,
            &RedeemRequest {
                code: &coupon.numeric_code,
                member_id: Some(7),
                store_id: 1,
                till_id: "after",
                now_secs: T0 + 120,
            },
            &RedeemPolicy::default(),
        );
        match (rows, again) {
            (1, Err(err)) => assert_eq!(err.refusal(), Some(coupon::Refusal::AlreadyRedeemed)),
            (0, Ok(_)) => {}
            (rows, other) => panic!("{rows} row(s), then {other:?}"),
        }
    }
    eprintln!(
        "seed {seed}: {killed} of {} runs killed, {redeemed_before} redeemed before the check",
        coupons.len()
    );
}

/// Two stores redeem one coupon while offline; a third coupon's redemption
/// reaches the other store through HQ; HQ's reconciliation lists the double.
#[test]
fn offline_double_redemption_is_bounded_and_reconciled_at_hq() {
    let hq = TestHq::start_with_demo();
    // Two stores sharing a member.
    let (store_a, store_b, member_id): (i64, i64, i64) = hq
        .db()
        .query_row(
            "SELECT a.store_id, b.store_id, a.member_id FROM store_members a
             JOIN store_members b ON b.member_id = a.member_id AND b.store_id <> a.store_id
             ORDER BY a.member_id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("a member of two stores");
    hq.admin(
        aisle_proto::paths::ADMIN_CAMPAIGNS,
        &aisle_proto::CampaignRecord {
            campaign_id: 900_001,
            name: "Coupons test".into(),
            campaign_type: None,
            starts_on: "2026-01-01".into(),
            ends_on: "2026-12-31".into(),
            targets: vec![member_id],
        },
    );
    for (coupon_id, cents) in [(900_001, 300), (900_002, 800)] {
        hq.admin(
            aisle_proto::paths::ADMIN_COUPONS,
            &aisle_proto::CouponRecord {
                coupon_id,
                code: format!("T{coupon_id}"),
                campaign_id: 900_001,
                description: Some(format!("{cents} off")),
                discount_cents: Some(cents),
                discount_percent: None,
                product_ids: Vec::new(),
            },
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut replicas = Vec::new();
    for (store_id, name) in [(store_a, "a"), (store_b, "b")] {
        let credentials = hq.register(&format!("till-{name}"), store_id, DeviceKind::Till);
        assert!(
            credentials
                .coupon_issuer
                .as_ref()
                .is_some_and(|k| k.key_id >= 2),
            "the till made its own issuing key and HQ numbered it: {:?}",
            credentials.coupon_issuer.as_ref().map(|k| k.key_id)
        );
        let db = dir.path().join(format!("{name}.db"));
        provision(&db, &hq, &credentials);
        replicas.push(db);
    }
    let sync = |db: &Path| {
        let output = aisle(db, &["sync"]);
        assert!(output.status.success(), "sync: {}", text(&output));
    };
    for db in &replicas {
        sync(db);
    }
    let (db_a, db_b) = (&replicas[0], &replicas[1]);
    let a = aisle_core::replica::open_writer(db_a).expect("a");
    let b = aisle_core::replica::open_writer(db_b).expect("b");
    let policy = RedeemPolicy::default();
    let issue_at_a = |coupon_id| {
        ledger::issue(
            &a,
            &IssueRequest {
                coupon_id,
                member_id,
                store_id: store_a,
                channel: Channel::Kiosk,
                issued_at: T0,
                expires_at: T0 + 14 * 86_400,
            },
        )
        .expect("issue at A")
    };
    let redeem_at = |conn: &Connection, store_id, code: &str, now_secs| {
        ledger::redeem(
            conn,
            &RedeemRequest {
                code,
                member_id: Some(member_id),
                store_id,
                till_id: "pos",
                now_secs,
            },
            &policy,
        )
    };
    let double = issue_at_a(900_001);
    let later = issue_at_a(900_001);
    let large = issue_at_a(900_002);
    // B knows A's key from HQ (with A's store record): it verifies offline.
    // Over the floor: refused; under it: accepted, at risk.
    assert_eq!(
        redeem_at(&b, store_b, &large.token, T0 + 5)
            .expect_err("over the floor")
            .refusal(),
        Some(coupon::Refusal::OverFloorLimit)
    );
    // B does not know A's numeric codes before syncing.
    assert_eq!(
        redeem_at(&b, store_b, &later.numeric_code, T0 + 6)
            .expect_err("unknown here")
            .refusal(),
        Some(coupon::Refusal::UnknownSerial)
    );
    let at_b = redeem_at(&b, store_b, &double.token, T0 + 10).expect("B, offline");
    assert!(at_b.accepted.offline_risk);
    // A, unaware, redeems the same instance later: the over-redemption the
    // budget bounds.
    let at_a = redeem_at(&a, store_a, &double.numeric_code, T0 + 20).expect("A, offline");
    assert!(!at_a.accepted.offline_risk);
    // A redeems another instance and syncs; B syncs and learns of both.
    redeem_at(&a, store_a, &later.token, T0 + 30).expect("A");
    sync(db_a);
    sync(db_b);
    sync(db_a);
    for code in [&double.token, &later.token, &later.numeric_code] {
        assert_eq!(
            redeem_at(&b, store_b, code, T0 + 40)
                .expect_err("redeemed at A")
                .refusal(),
            Some(coupon::Refusal::AlreadyRedeemed),
            "{code}"
        );
    }
    // The large coupon's numeric code is now known at B (still over the floor).
    assert_eq!(
        redeem_at(&b, store_b, &large.numeric_code, T0 + 41)
            .expect_err("over the floor")
            .refusal(),
        Some(coupon::Refusal::OverFloorLimit)
    );
    // HQ: the earliest redemption (B's) counts, A's is flagged.
    let report: aisle_proto::CouponReconciliation = hq
        .client()
        .get(format!(
            "{}{}",
            hq.admin_url(),
            aisle_proto::paths::ADMIN_COUPON_RECONCILIATION
        ))
        .bearer_auth(&hq.admin_token)
        .send()
        .expect("report")
        .json()
        .expect("json");
    assert_eq!(report.issued, 3);
    assert_eq!(report.redeemed, 2);
    assert_eq!(report.over_redemptions.len(), 1, "{report:?}");
    let over = &report.over_redemptions[0];
    assert_eq!(over.serial, double.serial);
    assert_eq!(
        (over.first_store_id, over.later_store_id),
        (store_b, store_a)
    );
    assert_eq!(over.first_redeemed_at, "2026-06-01 12:00:10");
    assert_eq!(over.later_redeemed_at, "2026-06-01 12:00:20");
    assert_eq!(over.value_cents, Some(300));
    assert_eq!(report.over_redeemed_cents, 300);
    // Without the admin token: refused.
    let status = hq
        .client()
        .get(format!(
            "{}{}",
            hq.admin_url(),
            aisle_proto::paths::ADMIN_COUPON_RECONCILIATION
        ))
        .send()
        .expect("request")
        .status();
    assert_eq!(status.as_u16(), 401);
    // Both stores' ledgers agree with HQ on who redeemed the later coupon.
    for conn in [&a, &b] {
        let store: i64 = conn
            .query_row(
                "SELECT r.store_id FROM coupon_redemptions r JOIN coupon_issues i USING (issue_id)
                 WHERE i.serial = ?1",
                [&later.serial],
                |row| row.get(0),
            )
            .expect("redemption");
        assert_eq!(store, store_a);
    }
}
