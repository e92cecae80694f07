//! The kiosk's scan path end to end on the real demo replica: a member's
//! rotating code drawn as a QR code, placed in camera-sized frames, read by
//! the decoder, confirmed over two frames, identified offline (signature,
//! window, replay cache), then the welcome screen's data.

use aisle_core::time::lit::ts;
use std::time::Duration;

use aisle_core::identify::accept::Confirmer;
use aisle_core::identify::decode::{self, DecodeOptions, Symbology};
use aisle_core::identify::frame::{Frame, FrameSource, ImageSource, Playback};
use aisle_core::identify::member_code::{self, CodeError, CodePolicy};
use aisle_core::identify::{Identified, identify};
use aisle_core::keys;
use aisle_core::recommend::{artifact, serve};
use aisle_core::{replica, welcome};
use aisle_tests::*;

/// A QR code of `text` on a 1280x720 grey frame, as a camera would see it.
fn camera_frame(text: &str) -> Frame {
    let barcode = zxingcpp::create(zxingcpp::BarcodeFormat::QRCode)
        .from_str(text)
        .expect("qr");
    let image = barcode
        .to_image_with(&zxingcpp::write().scale(3))
        .expect("image");
    let code =
        Frame::new(image.width() as u32, image.height() as u32, image.data()).expect("frame");
    code.placed_on(1280, 720, 480, 200, 150)
}

#[test]
fn a_members_phone_code_on_camera_becomes_their_welcome_screen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    import_cj(&mut conn, &demo_dir(), &options()).expect("import demo");
    let artifact = artifact::fit_from(&conn, None, 1, ts("2026-11-25 12:00:00")).expect("fit");
    let served = serve::Served::new(artifact.model);
    let (member_id, store_id, given, family): (i64, i64, String, String) = conn
        .query_row(
            "SELECT m.member_id, b.store_id, m.given_name, m.family_name
             FROM members m JOIN baskets b ON b.member_id = m.member_id
             WHERE m.consent_personalization = 1
             GROUP BY m.member_id ORDER BY count(*) DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .expect("a member with baskets");
    let key = keys::demo_signing_key(&conn, member_id)
        .expect("key")
        .expect("demo members have demo keys");
    let policy = CodePolicy::default();
    let now_secs = 1_795_000_000;
    let text = member_code::encode(member_id, &key, now_secs, &policy);

    // An issued coupon shows on the welcome screen.
    conn.execute_batch(&format!(
        "INSERT INTO campaigns (campaign_id, name, starts_on, ends_on) VALUES (9001, 'Kiosk', '2026-01-01', '2026-12-31');
         INSERT INTO coupons (coupon_id, code, campaign_id, description, discount_cents) VALUES (9001, 'K-OAT', 9001, 'Oat milk 50c off', 50);
         INSERT INTO coupon_issues (serial, coupon_id, member_id, store_id, channel, issued_at, expires_at)
           VALUES ('S-1', 9001, {member_id}, {store_id}, 'kiosk', '2026-11-01 09:00:00', '2026-12-01 00:00:00'),
                  ('S-OLD', 9001, {member_id}, {store_id}, 'kiosk', '2026-01-01 09:00:00', '2026-02-01 00:00:00');"
    ))
    .expect("coupon");

    // The camera: a blank frame, then the phone held up for three frames.
    let frames = vec![
        Frame::new(1280, 720, vec![150; 1280 * 720]).expect("blank"),
        camera_frame(&text),
        camera_frame(&text),
        camera_frame(&text),
    ];
    let mut camera = ImageSource::from_frames("test camera", frames, Playback::Once);
    let mut confirmer = Confirmer::default();
    let mut accepted = Vec::new();
    let mut frames_seen = 0;
    while let Ok(frame) = camera.next_frame(Duration::from_millis(10)) {
        frames_seen += 1;
        let decoded = decode::decode(&frame, &DecodeOptions::LIVE).expect("decode");
        for symbol in confirmer.observe(&decoded.symbols) {
            accepted.push((frames_seen, symbol));
        }
    }
    assert_eq!(
        accepted.len(),
        1,
        "accepted once, on the second frame showing it"
    );
    assert_eq!(accepted[0].0, 3);
    assert_eq!(accepted[0].1.symbology, Symbology::Qr);
    assert_eq!(accepted[0].1.text, text);

    let identified =
        identify(&conn, &accepted[0].1.text, "kiosk-1", now_secs, &policy).expect("identify");
    assert!(
        matches!(identified, Identified::Member { member_id: m, .. } if m == member_id),
        "{identified:?}"
    );
    let welcome_screen = |conn: &rusqlite::Connection| {
        welcome::welcome(
            conn,
            &served,
            member_id,
            store_id,
            ts("2026-11-25 12:00:00"),
            6,
            &serve::Policy::default(),
        )
        .expect("welcome")
    };
    let screen = welcome_screen(&conn);
    assert_eq!(screen.first_name.as_deref(), Some(given.as_str()));
    let json = serde_json::to_string(&screen).expect("json");
    assert!(!json.contains(&family), "no family name on a public screen");
    assert!(screen.lists.personal && !screen.lists.buy_again.is_empty());
    assert_eq!(
        screen
            .coupons
            .iter()
            .map(|c| c.serial.as_str())
            .collect::<Vec<_>>(),
        ["S-1"],
        "the live coupon, not the expired one"
    );

    // The same code shown again within its window (a screenshot passed on):
    // refused as a replay, and audited.
    let again = identify(&conn, &text, "kiosk-2", now_secs + 5, &policy).expect("identify");
    assert!(
        matches!(
            again,
            Identified::CodeRefused {
                reason: CodeError::Replayed,
                ..
            }
        ),
        "{again:?}"
    );

    // Without personalization consent: no coupons, non-personal lists.
    conn.execute(
        "UPDATE members SET consent_personalization = 0 WHERE member_id = ?1",
        [member_id],
    )
    .expect("withdraw");
    let screen = welcome_screen(&conn);
    assert!(screen.coupons.is_empty());
    assert!(!screen.lists.personal && screen.lists.notice.is_some());

    // A product scanned at the kiosk: its view with what goes with it.
    let (product_id, name): (i64, String) = conn
        .query_row(
            "SELECT p.product_id, p.name FROM purchase_lines l JOIN products p USING (product_id)
             GROUP BY p.product_id ORDER BY count(*) DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("a popular product");
    let view = welcome::product_view(
        &conn,
        &served,
        product_id,
        store_id,
        ts("2026-11-25 12:00:00"),
        6,
        &serve::Policy::default(),
    )
    .expect("view")
    .expect("known product");
    assert_eq!(view.name, name);
    assert!(!view.bought_together.is_empty());
    assert!(
        view.bought_together
            .iter()
            .all(|p| p.product_id != product_id)
    );
    assert!(
        welcome::product_view(
            &conn,
            &served,
            -1,
            store_id,
            ts("2026-11-25 12:00:00"),
            6,
            &serve::Policy::default()
        )
        .expect("view")
        .is_none()
    );
}
