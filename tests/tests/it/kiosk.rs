//! The kiosk's core path on the demo replica: a member's app code -> visit,
//! new coupons under the offer rules, the private welcome with QR tokens the
//! till accepts; replays, unknown cards and products get their screens.

use aisle_core::identify::member_code;
use aisle_core::keys;
use aisle_core::kiosk::{self, KioskConfig, KioskModels, ScanOutcome};
use aisle_core::offers::engine::OfferBook;
use aisle_core::offers::ledger::{self, RedeemPolicy, RedeemRequest};
use aisle_core::offers::model;
use aisle_core::recommend::{artifact, serve};
use aisle_core::replica;
use aisle_core::time::lit::{day, ts};
use aisle_tests::*;

#[test]
fn a_scan_becomes_a_private_welcome_with_coupons_the_till_accepts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    import_cj(&mut conn, &demo_dir(), &options()).expect("import demo");
    let now = "2017-08-20 10:00:00";
    let now_secs = aisle_core::dates::seconds_of(now).expect("now") as u64;
    let served = serve::Served::new(
        artifact::fit_from(&conn, None, 1, ts(now))
            .expect("fit")
            .model,
    );
    let offers = model::fit_from(&conn, "2017-08-01").expect("offer model");
    // A consenting member campaign 13 targets, at their home store.
    let (member_id, store_id, family): (i64, i64, String) = conn
        .query_row(
            "SELECT m.member_id, m.home_store_id, m.family_name FROM campaign_targets t JOIN members m USING (member_id)
             WHERE t.campaign_id = 13 AND m.consent_personalization = 1 AND m.home_store_id IS NOT NULL
             ORDER BY m.member_id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("a target");
    let book = OfferBook::load(&conn, store_id, day(&now[..10])).expect("book");
    let config = KioskConfig::new(store_id);
    let models = KioskModels {
        ranking: (&served).into(),
        offers: Some(&offers),
        book: Some(&book),
    };
    let key = keys::demo_signing_key(&conn, member_id)
        .expect("key")
        .expect("demo key");
    let code = member_code::encode(member_id, &key, now_secs, &config.codes);

    let outcome =
        kiosk::on_scan(&mut conn, &models, &config, &code, ts(now), now_secs).expect("scan");
    let ScanOutcome::Welcome(screen) = outcome else {
        panic!("not a welcome: {outcome:?}");
    };
    assert_eq!(screen.welcome.member_id, member_id);
    assert!(screen.issued >= 1, "the best offer is issued at the visit");
    assert_eq!(screen.coupons.len(), screen.issued);
    let json = serde_json::to_string(&screen).expect("json");
    assert!(
        !json.contains(&family),
        "first name only on a public screen"
    );
    // The QR token on the screen redeems at this store's till, once.
    let coupon = &screen.coupons[0];
    let token = coupon
        .token
        .clone()
        .expect("a token for a coupon issued here");
    let redeem = |code: &str| {
        ledger::redeem(
            &conn,
            &RedeemRequest {
                code,
                member_id: Some(member_id),
                store_id,
                till_id: "till-1",
                now_secs: now_secs + 600,
            },
            &RedeemPolicy::default(),
        )
    };
    redeem(&token).expect("redeemed");
    assert!(
        redeem(&coupon.numeric_code).is_err(),
        "the numeric code names the same instance"
    );
    let kinds: Vec<String> = conn
        .prepare("SELECT kind FROM outbox ORDER BY seq")
        .expect("sql")
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("kinds");
    assert_eq!(kinds[0], "kiosk_visit");
    assert!(kinds.iter().filter(|k| *k == "coupon_issued").count() >= 1);

    // The same code again: a replay, with a sentence for the shopper.
    match kiosk::on_scan(&mut conn, &models, &config, &code, ts(now), now_secs + 5).expect("scan") {
        ScanOutcome::Refused { code, message } => {
            assert_eq!(code, "replayed");
            assert!(message.contains("new code"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A second visit issues nothing new (one per member per campaign).
    let later = member_code::encode(member_id, &key, now_secs + 120, &config.codes);
    let ScanOutcome::Welcome(again) =
        kiosk::on_scan(&mut conn, &models, &config, &later, ts(now), now_secs + 120).expect("scan")
    else {
        panic!("not a welcome");
    };
    assert_eq!(again.issued, 0);
    // An unknown loyalty card and a product barcode.
    match kiosk::on_scan(
        &mut conn,
        &models,
        &config,
        "2900000000018",
        ts(now),
        now_secs,
    )
    .expect("scan")
    {
        ScanOutcome::Refused { code, .. } => assert_eq!(code, "unknown_card"),
        other => panic!("{other:?}"),
    }
    // A product sold here, given a barcode (the demo catalog has none).
    let gtin = "4006381333931";
    conn.execute(
        "UPDATE products SET gtin = ?2 WHERE product_id =
            (SELECT product_id FROM store_products WHERE store_id = ?1 ORDER BY product_id LIMIT 1)",
        rusqlite::params![store_id, gtin],
    )
    .expect("gtin");
    assert!(matches!(
        kiosk::on_scan(&mut conn, &models, &config, gtin, ts(now), now_secs).expect("scan"),
        ScanOutcome::Product(_)
    ));
}
