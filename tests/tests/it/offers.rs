//! The offer flow across the layers on the demo replica: purchase and
//! redemption history -> the fitted P(redeem) -> a member's ranked offers ->
//! a coupon issued under the offer's rules -> the kiosk's welcome screen ->
//! the QR code scanned at the till -> redeemed once, every step in the
//! outbox.

use aisle_core::identify::decode::{self, DecodeOptions};
use aisle_core::identify::frame::Frame;
use aisle_core::offers::engine::{self, DecideRequest, OfferBook};
use aisle_core::offers::issue::{self, OfferIssue};
use aisle_core::offers::ledger::{self, RedeemPolicy, RedeemRequest};
use aisle_core::offers::rules::{Channel, Ineligible};
use aisle_core::offers::{coupon::Refusal, model};
use aisle_core::recommend::{artifact, serve};
use aisle_core::time::lit::{day, ts};
use aisle_core::{replica, welcome};
use aisle_tests::*;

#[test]
fn a_ranked_offer_becomes_a_coupon_redeemed_once_at_the_till() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    import_cj(&mut conn, &demo_dir(), &options()).expect("import demo");
    let fitted = model::fit_from(&conn, "2017-08-01").expect("fit");
    assert!(fitted.campaigns.contains(&8) && !fitted.campaigns.contains(&13));
    model::store(&conn, &fitted, ts("2017-08-01 00:00:00")).expect("store");
    let loaded = model::load_newest(&conn).expect("load").expect("a model");

    // A consenting member campaign 13 targets, at their home store, while it runs.
    let now = "2017-08-20 10:00:00";
    let (member_id, store_id): (i64, i64) = conn
        .query_row(
            "SELECT m.member_id, m.home_store_id FROM campaign_targets t JOIN members m USING (member_id)
             WHERE t.campaign_id = 13 AND m.consent_personalization = 1 AND m.home_store_id IS NOT NULL
             ORDER BY m.member_id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("a target");
    let book = OfferBook::load(&conn, store_id, day("2017-08-20")).expect("book");
    let request = DecideRequest {
        store_id,
        channel: Channel::Kiosk,
        today: day("2017-08-20"),
        limit: 5,
        include_negative: true,
        exploration: Default::default(),
    };
    let decision = engine::offers_for(&conn, &book, &loaded.model, member_id, ts(now), &request)
        .expect("decide")
        .expect("known member");
    let best = decision
        .ranked
        .iter()
        .find(|r| r.campaign_id == 13)
        .expect("campaign 13's coupon is offered to its target")
        .clone();
    assert!(best.p_redeem > 0.0 && best.p_redeem < 1.0);

    // Issued under the rules: signed, bound to the member, in the outbox.
    let issued = issue::issue_offer(
        &conn,
        &OfferIssue {
            coupon_id: best.coupon_id,
            member_id,
            store_id,
            channel: Channel::Kiosk,
            now: ts(now),
        },
    )
    .expect("issued");
    assert!(issued.token.starts_with("AISLEC2:"));
    assert_eq!(issued.numeric_code.len(), 17);
    // Once per member: the engine now leaves the campaign out, and issuing again is refused.
    let after = engine::offers_for(&conn, &book, &loaded.model, member_id, ts(now), &request)
        .expect("decide")
        .expect("known member");
    assert!(after.ranked.iter().all(|r| r.campaign_id != 13));
    assert!(
        after
            .refused
            .contains(&(best.coupon_id, Ineligible::MemberLimit))
    );
    let again = issue::issue_offer(
        &conn,
        &OfferIssue {
            coupon_id: best.coupon_id,
            member_id,
            store_id,
            channel: Channel::Associate,
            now: ts(now),
        },
    );
    assert_eq!(again.expect_err("limit").code(), "member_limit");

    // The kiosk's welcome screen lists it.
    let served = serve::Served::new(
        artifact::fit_from(&conn, None, 1, ts(now))
            .expect("recommendation model")
            .model,
    );
    let screen = welcome::welcome(
        &conn,
        &served,
        member_id,
        store_id,
        ts(now),
        4,
        &serve::Policy::default(),
    )
    .expect("welcome");
    assert_eq!(
        screen
            .coupons
            .iter()
            .map(|c| c.serial.as_str())
            .collect::<Vec<_>>(),
        [issued.serial.as_str()]
    );

    // At the till: the QR code shown on the phone, scanned and redeemed once.
    let barcode = zxingcpp::create(zxingcpp::BarcodeFormat::QRCode)
        .from_str(&issued.token)
        .expect("qr");
    let image = barcode
        .to_image_with(&zxingcpp::write().scale(4))
        .expect("image");
    let frame = Frame::new(image.width() as u32, image.height() as u32, image.data())
        .expect("frame")
        .placed_on(1280, 720, 400, 150, 150);
    let decoded = decode::decode(&frame, &DecodeOptions::LIVE).expect("decode");
    assert_eq!(decoded.symbols.len(), 1);
    let scanned = decoded.symbols[0].text.clone();
    assert_eq!(scanned, issued.token);
    let at_till = |member: i64, secs: u64| RedeemRequest {
        code: &scanned,
        member_id: Some(member),
        store_id,
        till_id: "till-1",
        now_secs: secs,
    };
    let now_secs = aisle_core::dates::seconds_of(now).expect("now") as u64 + 3_600;
    let policy = RedeemPolicy::default();
    let wrong = ledger::redeem(&conn, &at_till(member_id + 1, now_secs), &policy);
    assert_eq!(
        wrong.expect_err("someone else").refusal(),
        Some(Refusal::WrongMember)
    );
    let redeemed = ledger::redeem(&conn, &at_till(member_id, now_secs), &policy).expect("redeemed");
    assert_eq!(redeemed.accepted.serial, issued.serial);
    let twice = ledger::redeem(&conn, &at_till(member_id, now_secs + 60), &policy);
    assert_eq!(
        twice.expect_err("once").refusal(),
        Some(Refusal::AlreadyRedeemed)
    );

    // Gone from the welcome screen; both facts wait in the outbox for HQ.
    let screen = welcome::welcome(
        &conn,
        &served,
        member_id,
        store_id,
        ts(now),
        4,
        &serve::Policy::default(),
    )
    .expect("welcome");
    assert!(screen.coupons.is_empty());
    let kinds: Vec<String> = conn
        .prepare("SELECT kind FROM outbox WHERE payload LIKE '%' || ?1 || '%' ORDER BY seq")
        .expect("sql")
        .query_map([&issued.serial], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("kinds");
    assert_eq!(kinds, ["coupon_issued", "coupon_redeemed"]);
}
