//! End to end: the real app in WebKitGTK under Xvfb, driven through
//! WebDriver (WebKitWebDriver, with Tauri's webview automation on), on a
//! store replica bootstrapped from a real `aisle-hq` on loopback: sign in
//! (a wrong PIN first), a card shown to the camera (pictures in its place),
//! search as you type, open a client, edit a
//! preference, issue a coupon, add a note, see the pending-events count
//! rise, look at a product and the store view, sign out; then sync and find
//! the preference, the coupon, the note and the audit trail at HQ. A
//! screenshot of every screen is saved (target/tmp/associate-*.png) and the
//! text on it asserted.
//!
//! On this machine (no GPU) the app draws without compositing, as it would
//! on such a tablet (`webview`); a second test forces compositing, the path
//! of a tablet with a GPU, and opens a client's screen through it.

use crate::support;
use aisle_core::time::lit::ts;
use aisle_proto::DeviceKind;

use std::path::Path;

use aisle_tests::hq::TestHq;
use support::sync_once;
use support::webkit::{Browser, Driver};

const NOW: &str = "2017-10-20 12:00:00";

#[test]
fn sign_in_search_edit_issue_a_coupon_and_find_it_all_at_hq() {
    support::webkit::require_tools();
    // HQ with the demo, both models and the demo associates at the store; a
    // store replica bootstrapped from it.
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    {
        let at_hq = hq.at_hq();
        let now = "2026-11-26 06:00:00";
        at_hq.storage().train(None, 1, ts(now)).expect("train");
        at_hq
            .storage()
            .train_offers(Some("2017-10-01"), ts(now))
            .expect("train offers");
        at_hq
            .storage()
            .save_demo_associates(store_id, ts(now))
            .expect("associates");
    }
    let store = hq.provisioned_store("tablet-1", DeviceKind::Tablet);
    assert_eq!(store.store_id, store_id);
    sync_once(&store.db);
    // The store's own offer rules (not carried by HQ's feed): campaign 14,
    // running on the demo's day, open to every member.
    aisle_core::replica::connect(&store.db)
        .expect("replica")
        .execute(
            "INSERT INTO offer_rules (campaign_id, targeted_only) VALUES (14, 0)",
            [],
        )
        .expect("offer rule");
    let (member, name, family) = member_with_history(&store.db);

    // The tablet's camera sees the client's card.
    let card: String = aisle_core::replica::connect(&store.db)
        .expect("replica")
        .query_row(
            "SELECT card_number FROM member_cards WHERE member_id = ?1",
            [member],
            |row| row.get(0),
        )
        .expect("the client's card");
    let camera = store.dir.path().join("camera");
    std::fs::create_dir(&camera).expect("camera folder");
    support::qr_picture(&camera, "card.png", &card);

    let browser = Browser::start(
        Path::new(env!("CARGO_BIN_EXE_aisle-associate")),
        &[
            ("AISLE_CAMERA_SOURCE", camera.display().to_string()),
            ("AISLE_DB", store.db.display().to_string()),
            ("AISLE_NOW", NOW.to_owned()),
            ("AISLE_STORE", store.store_id.to_string()),
        ],
    );
    let driver = browser.session();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));

    // Sign-in: the sync bar (nothing pending, synced just now), a wrong PIN.
    assert_eq!(
        driver.wait_text("[data-testid=pending]", |t| !t.is_empty()),
        "0"
    );
    let bar = driver.text(&driver.find("[data-testid=sync]"));
    assert!(
        bar.contains("Last sync: 20") && !bar.contains("Offline"),
        "{bar}"
    );
    let form = driver.text(&driver.find("[data-testid=signin]"));
    assert!(
        form.contains("Staff number") && form.contains("PIN"),
        "{form}"
    );
    driver.screenshot(shots, "signin");
    sign_in(&driver, "1001", "1111");
    let error = driver.wait_text("[data-testid=error]", |t| !t.is_empty());
    assert!(error.contains("4 attempts left"), "{error}");
    driver.screenshot(shots, "signin-wrong");
    sign_in(&driver, "1001", "2468");
    let who = driver.wait_text("[data-testid=who]", |t| t.contains("Alex"));
    assert!(
        who.contains("Alex Moreau") && who.contains("associate"),
        "{who}"
    );
    assert!(!driver.exists("[data-testid=signin]"));

    // The card shown to the camera opens the client.
    driver.click(&driver.find("[data-testid=scan]"));
    let scanned = driver.wait_text("[data-testid=client]", |t| t.contains(&name));
    assert!(scanned.contains(&card), "{scanned}");

    // Search as you type, open the client.
    driver.type_into(&driver.find("#q"), &family[..3.min(family.len())]);
    let hits = driver.wait_text("[data-testid=hits]", |t| t.contains(&name));
    assert!(hits.contains(&name), "{hits}");
    driver.screenshot(shots, "search");
    driver.click(&driver.find_xpath(&format!("//button[contains(., \"{name}\")]")));
    let client = driver.wait_text("[data-testid=client]", |t| t.contains("Buy again"));
    assert!(
        client.contains(&name) && client.contains("Recent baskets"),
        "{client}"
    );
    driver.screenshot(shots, "client");
    // Opening the profile was audited: an event waits for HQ.
    let viewed: u32 = driver
        .wait_text("[data-testid=pending]", |t| t != "0")
        .parse()
        .expect("a count");

    // A preference: added, shown, queued.
    driver.click(&driver.find("#pref-kind option[value=dietary]"));
    driver.type_into(&driver.find("#pref-value"), "gluten-free");
    driver.click(&driver.find("[data-testid=pref-add]"));
    driver.wait_text("[data-testid=preferences]", |t| t.contains("gluten-free"));
    driver.screenshot(shots, "preference");

    // A coupon from the eligible offers.
    let offers = driver.wait_text("[data-testid=offers]", |t| t.contains("Issue coupon"));
    assert!(
        offers.contains('%'),
        "the chance of redemption is shown: {offers}"
    );
    driver.click(&driver.find("[data-testid^=issue-]"));
    let issued = driver.wait_text("[data-testid=issued]", |t| !t.is_empty());
    let serial: String = aisle_core::replica::connect(&store.db)
        .expect("replica")
        .query_row(
            "SELECT serial FROM coupon_issues WHERE member_id = ?1 AND channel = 'associate'",
            [member],
            |row| row.get(0),
        )
        .expect("the coupon in the replica");
    assert!(issued.contains(&serial), "{issued} shows {serial}");
    driver.wait_text("[data-testid=held]", |t| t.contains(&serial));
    driver.screenshot(shots, "coupon");

    // A note: kept, shown.
    let note = format!("Asked about gluten-free bread ({member})");
    driver.type_into(&driver.find("input[aria-label='New note']"), &note);
    driver.click(&driver.find_xpath("//button[.='Save note']"));
    driver.wait_text("[data-testid=notes]", |t| t.contains(&note));

    // Preference, coupon, note and the views that reloaded the profile wait for HQ.
    let pending: u32 = driver
        .wait_text("[data-testid=pending]", |t| {
            t.parse::<u32>().is_ok_and(|n| n >= viewed + 3)
        })
        .parse()
        .expect("a count");
    driver.screenshot(shots, "note");

    // A product and what is bought with it.
    driver.click(&driver.find("[data-testid=client] .pick"));
    let product = driver.wait_text("[data-testid=product]", |t| {
        t.contains("Often bought together")
    });
    assert!(product.contains('$'), "{product}");
    driver.screenshot(shots, "product");

    // The store view: today's coupon by an associate.
    driver.click(&driver.find("[data-testid=tab-store]"));
    let day = driver.wait_text("[data-testid=store-issued]", |t| t.contains('1'));
    assert!(!day.is_empty());
    let view = driver.text(&driver.find("[data-testid=store]"));
    assert!(view.contains("2017-10-20"), "{view}");
    driver.screenshot(shots, "store");

    // Signing out leaves nothing of the client on screen.
    driver.click(&driver.find("[data-testid=signout]"));
    driver.find("[data-testid=signin]");
    assert!(!driver.exists("[data-testid=client]"));
    driver.quit();

    // Synced: everything is at HQ.
    let report = sync_once(&store.db);
    assert!(
        report.events_uploaded >= u64::from(pending),
        "{report:?} after {pending} pending"
    );
    let at_hq = hq.db();
    let preference: i64 = at_hq
        .query_row(
            "SELECT count(*) FROM member_preferences WHERE member_id = ?1 AND kind = 'dietary' AND value = 'gluten-free'",
            [member],
            |row| row.get(0),
        )
        .expect("preferences at HQ");
    assert_eq!(preference, 1, "the preference is at HQ");
    let channel: String = at_hq
        .query_row(
            "SELECT channel FROM coupon_issues WHERE serial = ?1",
            [&serial],
            |row| row.get(0),
        )
        .expect("the coupon at HQ");
    assert_eq!(channel, "associate");
    let body: String = at_hq
        .query_row(
            "SELECT body FROM member_notes WHERE member_id = ?1 ORDER BY rowid DESC LIMIT 1",
            [member],
            |row| row.get(0),
        )
        .expect("the note at HQ");
    assert_eq!(body, note);
    let views: i64 = at_hq
        .query_row(
            "SELECT count(*) FROM store_events WHERE kind = 'profile_viewed'
             AND json_extract(payload, '$.actor') = 'staff:1001'",
            [],
            |row| row.get(0),
        )
        .expect("views at HQ");
    assert!(views >= 1, "the audit trail names the associate");
}

#[test]
fn the_composited_webview_draws_a_client_screen_too() {
    support::webkit::require_tools();
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("replica.db");
    aisle_tests::kiosk_replica(&db, NOW);
    let (_, name, family) = member_with_history(&db);
    let browser = Browser::start(
        Path::new(env!("CARGO_BIN_EXE_aisle-associate")),
        &[
            ("AISLE_DB", db.display().to_string()),
            ("AISLE_NOW", NOW.to_owned()),
            ("AISLE_WEBVIEW_COMPOSITING", "on".to_owned()),
        ],
    );
    let driver = browser.session();
    sign_in(&driver, "1001", "2468");
    driver.wait_text("[data-testid=who]", |t| t.contains("Alex Moreau"));
    driver.type_into(&driver.find("#q"), &family);
    driver.click(&driver.find_xpath(&format!("//button[contains(., \"{name}\")]")));
    let client = driver.wait_text("[data-testid=client]", |t| t.contains("Buy again"));
    assert!(
        client.contains(&name) && client.contains("Spend by month"),
        "{client}"
    );
    let png = driver.screenshot(Path::new(env!("CARGO_TARGET_TMPDIR")), "composited-client");
    let picture = image::load_from_memory(&png).expect("a picture").to_rgb8();
    let colours: std::collections::HashSet<[u8; 3]> =
        picture.pixels().step_by(7).map(|p| p.0).collect();
    assert!(
        colours.len() > 50,
        "the composited screen is drawn (text, chart), not blank: {} colours",
        colours.len()
    );
    driver.quit();
}

/// The first member (by id) with a family name, consent to personalization
/// and purchases: id, display name, family name.
fn member_with_history(db: &Path) -> (i64, String, String) {
    aisle_core::replica::connect(db)
        .expect("replica")
        .query_row(
            "SELECT m.member_id, m.display_name, m.family_name FROM members m
             WHERE m.family_name IS NOT NULL AND m.erased_at IS NULL AND m.consent_personalization = 1
               AND EXISTS (SELECT 1 FROM baskets b WHERE b.member_id = m.member_id)
             ORDER BY m.member_id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("a member with history")
}

fn sign_in(driver: &Driver, staff: &str, pin: &str) {
    let field = driver.find("#staff");
    driver.call(
        reqwest::Method::POST,
        &format!("element/{field}/clear"),
        Some(serde_json::json!({})),
    );
    driver.type_into(&field, staff);
    driver.type_into(&driver.find("#pin"), pin);
    driver.click(&driver.find("[data-testid=signin-submit]"));
}
