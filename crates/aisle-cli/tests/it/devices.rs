//! Store devices that give nothing away (issue 19): what HQ sends each kind
//! of device, checked in HQ's answers and in the replicas themselves.

use std::path::Path;

use aisle_proto::{DeviceKind, paths};
use aisle_tests::hq::TestHq;

use crate::{aisle, text};

fn sync(db: &Path) {
    let output = aisle(db, &["sync"]);
    assert!(output.status.success(), "sync: {}", text(&output));
}

fn count(db: &Path, sql: &str) -> i64 {
    aisle_core::replica::connect(db)
        .expect("replica")
        .query_row(sql, [], |row| row.get(0))
        .expect("count")
}

/// Gives member `id` a phone and an e-mail at HQ (the demo extract has none).
fn with_contacts(hq: &TestHq, id: i64, phone: &str, email: &str) {
    let mut member = aisle_core::sync::records::read_member(&hq.db(), id)
        .expect("read")
        .expect("member");
    member.phone = Some(phone.into());
    member.email = Some(email.into());
    hq.admin(paths::ADMIN_MEMBERS, &member);
}

#[test]
fn a_kiosk_receives_no_contacts_or_associates_and_a_tablet_does() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    hq.at_hq()
        .storage()
        .save_demo_associates(store_id, aisle_hq::now())
        .expect("associates");
    let (inside, outside) = crate::trust::members(&hq, store_id);
    with_contacts(&hq, inside, "+1 555 0100 2233", "pat.inside@example.com");
    with_contacts(
        &hq,
        outside.0,
        "+1 555 0100 4455",
        "sam.outside@example.com",
    );
    let kiosk = hq.provisioned_store("kiosk-1", DeviceKind::Kiosk);
    let tablet = hq.provisioned_store("tablet-1", DeviceKind::Tablet);
    sync(&kiosk.db);
    sync(&tablet.db);

    // The snapshot: the tablet holds contacts and associates, the kiosk neither.
    let contacts = "SELECT count(*) FROM members WHERE phone IS NOT NULL OR email IS NOT NULL";
    let associates = "SELECT count(*) FROM associates";
    assert!(count(&tablet.db, contacts) >= 1);
    assert!(count(&tablet.db, associates) >= 2, "the demo's associates");
    assert_eq!(count(&kiosk.db, contacts), 0);
    assert_eq!(
        count(&kiosk.db, associates),
        0,
        "no names, roles or PIN hashes"
    );
    // Both hold the member all the same.
    let held = format!("SELECT count(*) FROM members WHERE member_id = {inside}");
    assert_eq!((count(&kiosk.db, &held), count(&tablet.db, &held)), (1, 1));
    // The kiosk holds the member's card keyed, and still finds them by it.
    let card: String = hq
        .db()
        .query_row(
            "SELECT card_number FROM member_cards WHERE member_id = ?1 AND status = 'active' LIMIT 1",
            [inside],
            |row| row.get(0),
        )
        .expect("a card");
    let plain = format!("SELECT count(*) FROM member_cards WHERE card_number = '{card}'");
    assert_eq!(
        (count(&kiosk.db, &plain), count(&tablet.db, &plain)),
        (0, 1)
    );
    assert_eq!(
        count(
            &kiosk.db,
            "SELECT count(*) FROM member_cards WHERE card_number NOT LIKE 'k1:%'"
        ),
        0,
        "every card number on the kiosk is keyed"
    );
    let routed = aisle_core::identify::route::route(
        &aisle_core::replica::connect(&kiosk.db).expect("kiosk"),
        &card,
    )
    .expect("route");
    assert_eq!(
        routed,
        aisle_core::identify::route::Routed::Card { member_id: inside }
    );

    // The feed: a new phone reaches the tablet only.
    with_contacts(&hq, inside, "+1 555 0199 8877", "pat.new@example.com");
    sync(&kiosk.db);
    sync(&tablet.db);
    assert_eq!(count(&kiosk.db, contacts), 0);
    let phone: String = aisle_core::replica::connect(&tablet.db)
        .expect("tablet")
        .query_row(
            "SELECT phone FROM members WHERE member_id = ?1",
            [inside],
            |row| row.get(0),
        )
        .expect("phone");
    assert_eq!(phone, "+1 555 0199 8877");
    // Nor is it anywhere in what HQ answers the kiosk, or in its files.
    // A device's bearer, from its replica's credentials.
    let bearer = |db: &Path| {
        let conn = aisle_core::replica::connect(db).expect("replica");
        let credentials = aisle_core::sync::Credentials::load(&conn)
            .expect("credentials")
            .expect("provisioned");
        format!("{}.{}", credentials.device_id, credentials.secret)
    };
    let feed = hq
        .device_get(paths::CHANGES, &bearer(&kiosk.db))
        .query(&[("after", "0"), ("limit", "50000")])
        .send()
        .expect("feed")
        .text()
        .expect("body");
    for secret in [
        "555 0199",
        "555 0100",
        "pat.new@",
        "pat.inside@",
        "pin_hash",
        &card,
    ] {
        assert!(!feed.contains(secret), "the kiosk's feed holds {secret:?}");
    }
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(kiosk.dir.path()).expect("dir").flatten() {
        if entry.path().is_file() {
            raw.extend(std::fs::read(entry.path()).expect("read"));
        }
    }
    let raw = String::from_utf8_lossy(&raw);
    for secret in ["555 0199", "555 0100", "pat.new@", "pat.inside@", &card] {
        assert!(!raw.contains(secret), "the kiosk's files hold {secret:?}");
    }

    // A look-up answers the kiosk without contacts, the tablet with them.
    let lookup = |db: &Path| -> serde_json::Value {
        hq.device_get(paths::MEMBER_LOOKUP, &bearer(db))
            .query(&[("card", outside.1.as_str())])
            .send()
            .expect("look-up")
            .json()
            .expect("json")
    };
    let at_kiosk = lookup(&kiosk.db);
    assert_eq!(at_kiosk["member"]["member_id"], outside.0);
    assert!(at_kiosk["member"]["phone"].is_null() && at_kiosk["member"]["email"].is_null());
    let at_tablet = lookup(&tablet.db);
    assert_eq!(at_tablet["member"]["email"], "sam.outside@example.com");
}

/// Two tills of one store are two replicas: a coupon of their own store's
/// kiosk is foreign to both, so offline each holds it to the floor limit and
/// its daily budget (docs/OFFERS.md, "Coupons: offline risk budget").
#[test]
fn two_tills_of_one_store_hold_a_kiosk_coupon_to_the_offline_bound() {
    use aisle_core::offers::coupon::{Channel, Refusal};
    use aisle_core::offers::ledger::{self, IssueRequest, RedeemPolicy, RedeemRequest};
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let member_id: i64 = hq
        .db()
        .query_row(
            "SELECT member_id FROM store_members WHERE store_id = ?1 ORDER BY member_id LIMIT 1",
            [store_id],
            |row| row.get(0),
        )
        .expect("a member");
    hq.admin(
        paths::ADMIN_CAMPAIGNS,
        &aisle_proto::CampaignRecord {
            campaign_id: 900_201,
            name: "Two tills".into(),
            campaign_type: None,
            starts_on: "2026-01-01".into(),
            ends_on: "2026-12-31".into(),
            targets: vec![member_id],
        },
    );
    for (coupon_id, cents) in [(900_201, 300), (900_202, 800)] {
        hq.admin(
            paths::ADMIN_COUPONS,
            &aisle_proto::CouponRecord {
                coupon_id,
                code: format!("T{coupon_id}"),
                campaign_id: 900_201,
                description: Some(format!("{cents} off")),
                discount_cents: Some(cents),
                discount_percent: None,
                product_ids: Vec::new(),
            },
        );
    }
    let kiosk = hq.provisioned_store("kiosk-1", DeviceKind::Kiosk);
    let tills = [
        hq.provisioned_store("till-1", DeviceKind::Till),
        hq.provisioned_store("till-2", DeviceKind::Till),
    ];
    for device in [&kiosk, &tills[0], &tills[1]] {
        sync(&device.db);
    }
    let t0 = aisle_core::time::lit::ts("2026-06-01 10:00:00")
        .unix()
        .unsigned_abs();
    let at_kiosk = aisle_core::replica::open_writer(&kiosk.db).expect("kiosk");
    let issue = |coupon_id| {
        ledger::issue(
            &at_kiosk,
            &IssueRequest {
                coupon_id,
                member_id,
                store_id,
                channel: Channel::Kiosk,
                issued_at: t0,
                expires_at: t0 + 14 * 86_400,
            },
        )
        .expect("issue")
    };
    let small = issue(900_201);
    let large = issue(900_202);
    // Both tills offline from here on.
    let policy = RedeemPolicy::default();
    let mut accepted = 0;
    for (n, till) in tills.iter().enumerate() {
        let conn = aisle_core::replica::open_writer(&till.db).expect("till");
        let redeem = |code: &str| {
            ledger::redeem(
                &conn,
                &RedeemRequest {
                    code,
                    member_id: Some(member_id),
                    store_id,
                    till_id: if n == 0 { "till-1" } else { "till-2" },
                    now_secs: t0 + 60,
                },
                &policy,
            )
        };
        // Over the floor: neither till takes it without HQ.
        assert_eq!(
            redeem(&large.token).expect_err("over the floor").refusal(),
            Some(Refusal::OverFloorLimit)
        );
        // Under it: taken, and counted as a risk against the till's budget.
        let redeemed = redeem(&small.token).expect("under the floor");
        assert!(
            redeemed.accepted.offline_risk,
            "a kiosk's coupon is foreign to a till"
        );
        accepted += redeemed.accepted.value_cents;
    }
    // The exposure: one 3.00 coupon redeemed twice, (D - 1) * v with D = 2.
    assert_eq!(accepted - 300, 300);
    assert!(accepted - 300 <= policy.floor_limit_cents);
    // The kiosk itself judges its own coupons by its ledger alone.
    let own = ledger::check(
        &at_kiosk,
        &RedeemRequest {
            code: &large.token,
            member_id: Some(member_id),
            store_id,
            till_id: "kiosk-1",
            now_secs: t0 + 60,
        },
        &policy,
    )
    .expect("its own coupon");
    assert!(!own.offline_risk);
}
