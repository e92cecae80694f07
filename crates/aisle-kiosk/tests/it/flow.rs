//! The kiosk driven headless through Slint's testing backend (mock time,
//! the software renderer): attract -> a demo member's scan -> the private
//! welcome -> a coupon sent to the app -> the idle timeout -> attract with
//! nothing personal left; a keyboard-wedge scan of an unknown card; every
//! screen rendered and compared with its reference picture.

use aisle_core::time::lit::ts;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use aisle_core::kiosk::KioskConfig;
use aisle_core::runtime::Clock;
use aisle_kiosk::backend::{Backend, BackendConfig, Job};
use aisle_kiosk::camera::{self, CameraEvent};
use aisle_kiosk::controller::Controller;
use aisle_kiosk::{
    AttractAdapter, CameraStatus, KioskState, KioskWindow, ProductAdapter, Screen, WelcomeAdapter,
};
use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementRoot};
use slint::{ComponentHandle, Model};

const NOW: &str = "2017-10-20 12:00:00";

fn replica(dir: &Path) -> PathBuf {
    let db = dir.join("replica.db");
    aisle_tests::kiosk_replica(&db, NOW);
    db
}

struct Kiosk {
    ui: KioskWindow,
    controller: Controller,
    submit: Rc<dyn Fn(Job)>,
    db: PathBuf,
    store: i64,
    _dir: tempfile::TempDir,
}

impl Kiosk {
    /// A product with a barcode that this store sells.
    fn product_gtin(&self) -> String {
        aisle_core::replica::open_reader(&self.db)
            .expect("reader")
            .query_row(
                "SELECT p.gtin FROM products AS p JOIN store_products AS s USING (product_id)
                 WHERE s.store_id = ?1 AND p.gtin IS NOT NULL ORDER BY p.product_id LIMIT 1",
                [self.store],
                |row| row.get(0),
            )
            .expect("a product with a barcode")
    }
}

fn start(lang: &str) -> Kiosk {
    start_with(lang, |_, _| {})
}

/// The kiosk on the demo replica, once `prepare` had the replica and the store.
fn start_with(lang: &str, prepare: impl FnOnce(&Path, i64)) -> Kiosk {
    crate::testing_platform();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = replica(dir.path());
    let conn = aisle_core::replica::open_reader(&db).expect("reader");
    let member = aisle_core::demo::showcase_member(&conn)
        .expect("sql")
        .expect("showcase");
    let store: i64 = conn
        .query_row(
            "SELECT home_store_id FROM members WHERE member_id = ?1",
            [member],
            |r| r.get(0),
        )
        .expect("home store");
    drop(conn);
    prepare(&db, store);
    let config = BackendConfig {
        db: db.clone(),
        store: Some(store),
        clock: clock(),
        idle_secs: 30,
        demo: true,
        public_excluded: None,
    };
    let ui = crate::shown_window(lang);
    let backend = Backend::open(config).expect("backend");
    let runtime_clock = clock();
    let clock: aisle_kiosk::controller::Millis = Rc::new(move || runtime_clock.monotonic_ms());
    let (submit, shared) = aisle_kiosk::app::inline_submit(&ui, backend, clock.clone());
    let controller = Controller::new(&ui, 30, &submit, &clock);
    let _ = shared.set(controller.state.clone());
    submit(Job::Refresh);
    Kiosk {
        ui,
        controller,
        submit,
        db,
        store,
        _dir: dir,
    }
}

/// Taps the attract screen's first demo member (their app code is scanned).
fn tap_first_demo_member(ui: &KioskWindow) -> aisle_kiosk::DemoMember {
    let demo = ui
        .global::<AttractAdapter>()
        .get_demo_members()
        .row_data(0)
        .expect("a demo member");
    by_label(ui, demo.label.as_str())
        .expect("the demo member's button")
        .invoke_accessible_default_action();
    demo
}

fn by_label(ui: &KioskWindow, label: &str) -> Option<ElementHandle> {
    ElementHandle::find_by_accessible_label(ui, label).next()
}

thread_local! {
    /// The kiosk's clock in a test (one per test thread): the runtime's
    /// stepped clock at `NOW`, advanced with Slint's mock time.
    static CLOCK: Clock = Clock::stepped_at(NOW).expect("now");
}

/// This test's clock (clones share its steps).
fn clock() -> Clock {
    CLOCK.with(Clock::clone)
}

fn advance(ms: u64) {
    clock().advance(std::time::Duration::from_millis(ms));
    i_slint_backend_testing::mock_elapsed_time(std::time::Duration::from_millis(ms));
}

#[test]
fn attract_scan_welcome_coupon_timeout_attract() {
    let kiosk = start("en");
    let ui = &kiosk.ui;
    let state = ui.global::<KioskState>();
    assert_eq!(state.get_screen(), Screen::Attract);
    assert!(by_label(ui, "Scan your card or app").is_some());
    let attract = ui.global::<AttractAdapter>();
    assert!(
        attract.get_popular().row_count() > 0,
        "popular in this store"
    );
    assert!(attract.get_demo_mode());
    let demo = attract
        .get_demo_members()
        .row_data(0)
        .expect("a demo member");
    // The strip rotates on its own.
    let first = attract.get_popular().row_data(0).expect("pick").name;
    advance(5_100);
    let rotated = attract.get_popular().row_data(0).expect("pick").name;
    assert!(
        attract.get_popular().row_count() < 2 || rotated != first,
        "{first} stays"
    );

    // Tap the demo member's button: their app code is scanned.
    let button = by_label(ui, demo.label.as_str()).expect("the demo member's button");
    button.invoke_accessible_default_action();
    assert_eq!(state.get_screen(), Screen::Welcome);
    let welcome = ui.global::<WelcomeAdapter>();
    let name = welcome.get_first_name().to_string();
    assert_eq!(name, demo.label.as_str(), "the first name, nothing more");
    assert!(welcome.get_personal());
    assert!(welcome.get_buy_again().row_count() > 0);
    let coupons = welcome.get_coupons();
    assert!(coupons.row_count() >= 1, "a coupon issued at the visit");
    let coupon = coupons.row_data(0).expect("coupon");
    assert!(coupon.qr.size().width > 100, "its QR code");
    assert!(!coupon.sent);
    let title = format!("Welcome back, {name}!");
    assert!(by_label(ui, &title).is_some(), "{title}");

    // "Send to my app": an outbox event, and the card says so.
    let send = by_label(ui, "Send to my app").expect("send button");
    send.invoke_accessible_default_action();
    assert!(welcome.get_coupons().row_data(0).expect("coupon").sent);
    let conn = aisle_core::replica::open_reader(&kiosk.db).expect("reader");
    let sent: i64 = conn
        .query_row(
            "SELECT count(*) FROM outbox WHERE kind = 'coupon_sent_to_app' AND payload LIKE '%' || ?1 || '%'",
            [coupon.serial.as_str()],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(sent, 1);

    // 29 s idle: still there, counting down; a touch restarts the clock.
    advance(29_000);
    assert_eq!(state.get_screen(), Screen::Welcome);
    assert!(
        state.get_seconds_left() <= 2,
        "{}",
        state.get_seconds_left()
    );
    state.invoke_touched();
    advance(29_000);
    assert_eq!(state.get_screen(), Screen::Welcome);
    // Then 30 s untouched: back to attract, nothing personal anywhere.
    advance(1_500);
    assert_eq!(state.get_screen(), Screen::Attract);
    assert_eq!(welcome.get_first_name(), "");
    assert_eq!(welcome.get_buy_again().row_count(), 0);
    assert_eq!(welcome.get_discover().row_count(), 0);
    assert_eq!(welcome.get_coupons().row_count(), 0);
    assert_eq!(welcome.get_notice_code(), "");
    assert!(by_label(ui, &title).is_none());
    let lock = kiosk.controller.state.lock().expect("state");
    assert!(lock.member_id.is_none());
    drop(lock);
    // And the screen shows no trace of the name.
    let texts: Vec<String> = ElementHandle::find_by_element_type_name(ui, "Text")
        .filter_map(|t| t.accessible_label().map(|v| v.to_string()))
        .collect();
    assert!(
        texts.iter().any(|t| t == "Scan your card or app"),
        "{texts:?}"
    );
    // Demo mode names its demo members on buttons; nothing else may.
    let demo_labels: Vec<String> = (0..attract.get_demo_members().row_count())
        .filter_map(|i| attract.get_demo_members().row_data(i))
        .map(|m| m.label.to_string())
        .collect();
    assert!(
        texts
            .iter()
            .all(|t| !t.contains(&name) || demo_labels.contains(t)),
        "{texts:?}"
    );
}

/// A keyboard-wedge scanner types fast and ends with Enter; a person typing
/// slowly is not a scan.
#[test]
fn a_wedge_scan_of_an_unknown_card_gets_its_screen_and_done_returns() {
    let kiosk = start("en");
    let ui = &kiosk.ui;
    let state = ui.global::<KioskState>();
    for c in "2900000000018".chars() {
        state.invoke_key(c.to_string().into());
        advance(4);
    }
    state.invoke_key("\n".into());
    assert_eq!(state.get_screen(), Screen::Message);
    assert_eq!(state.get_message_code(), "unknown_card");
    assert!(by_label(ui, "Card not recognised").is_some());
    assert!(
        by_label(
            ui,
            "We do not recognise this card. Please ask a member of staff."
        )
        .is_some()
    );
    by_label(ui, "OK")
        .expect("OK")
        .invoke_accessible_default_action();
    assert_eq!(state.get_screen(), Screen::Attract);
    // Typed by a person (200 ms between keys): nothing happens.
    for c in "2900000000018".chars() {
        state.invoke_key(c.to_string().into());
        advance(200);
    }
    state.invoke_key("\n".into());
    advance(500);
    assert_eq!(state.get_screen(), Screen::Attract);
    // A product view is cleared by Done as well.
    (kiosk.submit)(Job::Scan("not a code".into()));
    assert_eq!(state.get_screen(), Screen::Message);
    state.invoke_done();
    assert_eq!(ui.global::<ProductAdapter>().get_name(), "");
}

/// Every screen, rendered by the software renderer with the pinned font,
/// against its reference picture (`AISLE_UPDATE_SNAPSHOTS=1` rewrites them).
/// The coupon's QR code is random (its serial), so a share of pixels may
/// differ; the rest must match.
#[test]
fn screens_match_their_reference_pictures() {
    let kiosk = start("en");
    let ui = &kiosk.ui;
    let snapshot = |name: &str| snapshot(ui, name);
    snapshot("attract");
    tap_first_demo_member(ui);
    snapshot("welcome");
    ui.global::<KioskState>().invoke_done();
    (kiosk.submit)(Job::Scan(kiosk.product_gtin()));
    assert_eq!(ui.global::<KioskState>().get_screen(), Screen::Product);
    snapshot("product");
    ui.global::<KioskState>().invoke_done();
    (kiosk.submit)(Job::Scan("2900000000018".into()));
    snapshot("message");
    ui.global::<KioskState>().invoke_done();
    ui.global::<KioskState>().set_offline(true);
    snapshot("attract-offline");
}

/// Checks the screen on show: every touch area lies inside an element
/// announced to assistive technology as a button, with a label, at least
/// a touch target high; returns how many touch areas there are.
fn audit(ui: &KioskWindow, screen: &str) -> usize {
    let buttons = ElementHandle::query_descendants(&ui.root_element())
        .match_accessible_role(AccessibleRole::Button)
        .find_all();
    let touch_areas: Vec<ElementHandle> =
        ElementHandle::find_by_element_type_name(ui, "TouchArea").collect();
    let contains = |outer: &ElementHandle, inner: &ElementHandle| {
        let (o, i) = (outer.absolute_position(), inner.absolute_position());
        let (os, is) = (outer.size(), inner.size());
        o.x <= i.x + 0.5
            && o.y <= i.y + 0.5
            && i.x + is.width <= o.x + os.width + 0.5
            && i.y + is.height <= o.y + os.height + 0.5
    };
    for area in &touch_areas {
        let button = buttons
            .iter()
            .find(|b| contains(b, area))
            .unwrap_or_else(|| {
                panic!(
                    "{screen}: a touch area at {:?} is in no element with accessible-role button",
                    area.absolute_position()
                )
            });
        let label = button.accessible_label().unwrap_or_default();
        assert!(
            !label.trim().is_empty(),
            "{screen}: a button without a label"
        );
        let size = button.size();
        assert!(
            size.height >= 72.0 && size.width >= 72.0,
            "{screen}: {label:?} is {}x{} px, under the 72 px touch target",
            size.width,
            size.height
        );
    }
    touch_areas.len()
}

/// Every element a shopper can act on, on every screen, is a labelled
/// button at least a touch target large.
#[test]
fn every_actionable_element_is_a_labelled_large_button() {
    let kiosk = start("en");
    let ui = &kiosk.ui;
    let state = ui.global::<KioskState>();
    let demo_members = ui.global::<AttractAdapter>().get_demo_members().row_count();
    assert!(audit(ui, "attract") >= demo_members, "one per demo member");
    tap_first_demo_member(ui);
    assert_eq!(state.get_screen(), Screen::Welcome);
    let coupons = ui.global::<WelcomeAdapter>().get_coupons().row_count();
    assert!(
        audit(ui, "welcome") > coupons,
        "Done and one Send to my app per coupon"
    );
    state.invoke_done();
    (kiosk.submit)(Job::Scan(kiosk.product_gtin()));
    assert_eq!(state.get_screen(), Screen::Product);
    assert!(audit(ui, "product") >= 1, "Done");
    state.invoke_done();
    (kiosk.submit)(Job::Scan("2900000000018".into()));
    assert_eq!(state.get_screen(), Screen::Message);
    assert!(audit(ui, "message") >= 1, "OK");
}

/// The attract screen's camera panel: nothing without a camera configured;
/// the live view with its framing guide; "no camera" and "reconnecting"
/// with the scanner as the way in, and no stale picture.
#[test]
fn the_camera_panel_shows_the_live_view_or_why_not() {
    let kiosk = start("en");
    let ui = &kiosk.ui;
    let state = ui.global::<KioskState>();
    let no_camera = "No camera: use the scanner";
    assert!(
        by_label(ui, no_camera).is_none(),
        "no camera configured, no panel"
    );
    camera::apply(ui, CameraEvent::Status(CameraStatus::Missing));
    assert!(by_label(ui, no_camera).is_some());
    // A preview arriving while the camera is not live is not shown.
    let code = qrcode::QrCode::new(b"2947003289668").expect("qr");
    let picture = code
        .render::<image::Luma<u8>>()
        .module_dimensions(8, 8)
        .build();
    let frame =
        aisle_core::identify::frame::Frame::from_image(&image::DynamicImage::ImageLuma8(picture))
            .expect("frame")
            .placed_on(640, 480, 200, 60, 200);
    camera::apply(
        ui,
        CameraEvent::Preview(camera::preview(&frame, camera::PREVIEW_WIDTH)),
    );
    assert_eq!(state.get_camera_preview().size().width, 0);
    camera::apply(ui, CameraEvent::Status(CameraStatus::Live));
    camera::apply(
        ui,
        CameraEvent::Preview(camera::preview(&frame, camera::PREVIEW_WIDTH)),
    );
    assert_eq!(
        state.get_camera_preview().size().width,
        camera::PREVIEW_WIDTH
    );
    assert!(by_label(ui, "Camera ready: hold your code in the frame").is_some());
    assert!(by_label(ui, no_camera).is_none());
    snapshot(ui, "attract-camera");
    camera::apply(ui, CameraEvent::Status(CameraStatus::Reconnecting));
    assert!(by_label(ui, "Camera reconnecting: use the scanner").is_some());
    assert_eq!(
        state.get_camera_preview().size().width,
        0,
        "the last picture does not stay up"
    );
}

/// A member code that expired, one signed with another key, and one shown
/// a second time each get their own screen; none leads to a welcome.
#[test]
fn expired_forged_and_replayed_codes_get_honest_screens() {
    use aisle_core::identify::member_code;
    use aisle_core::keys::demo_member_key;
    let kiosk = start("en");
    let ui = &kiosk.ui;
    let state = ui.global::<KioskState>();
    let member = aisle_core::demo::showcase_member(
        &aisle_core::replica::open_reader(&kiosk.db).expect("reader"),
    )
    .expect("sql")
    .expect("showcase");
    let policy = KioskConfig::new(kiosk.store).codes;
    let now = aisle_core::dates::seconds_of(NOW).expect("now") as u64;
    let expect = |code: String, screen: Screen, message: &str, title: &str| {
        (kiosk.submit)(Job::Scan(code));
        assert_eq!(state.get_screen(), screen, "{message}");
        assert_eq!(state.get_message_code(), message);
        if !title.is_empty() {
            assert!(by_label(ui, title).is_some(), "{title}");
        }
        state.invoke_done();
    };
    let key = demo_member_key(member);
    expect(
        member_code::encode(member, &key, now - 3600, &policy),
        Screen::Message,
        "expired",
        "Code expired",
    );
    expect(
        member_code::encode(member, &demo_member_key(member + 1), now, &policy),
        Screen::Message,
        "forged",
        "Code not valid",
    );
    let valid = member_code::encode(member, &key, now, &policy);
    expect(valid.clone(), Screen::Welcome, "", "");
    expect(valid, Screen::Message, "replayed", "Code already used");
    assert_eq!(ui.global::<WelcomeAdapter>().get_first_name(), "");
}

/// Offline: the replica is provisioned but HQ cannot be reached (its last
/// sync failed): the banner says so, and a scan still gets its welcome and
/// coupons, the events waiting in the outbox for HQ.
#[test]
fn offline_the_banner_shows_and_the_kiosk_still_works() {
    use aisle_core::sync::{self, Credentials, SyncOptions, Transport};
    let kiosk = start_with("en", |db, store| {
        let hq_key: String = aisle_core::keys::demo_member_key(1)
            .verifying_key()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let credentials = Credentials {
            // Nothing listens on the discard port.
            hq_url: "https://127.0.0.1:9".into(),
            device_id: "kiosk-offline".into(),
            store_id: store,
            secret: "ab".repeat(32),
            hq_public_key: hq_key,
            ca_pem: None,
            coupon_issuer: None,
            card_key: None,
        };
        let mut conn = aisle_core::replica::open_writer(db).expect("writer");
        credentials
            .save(&mut conn, ts("2026-11-26 10:00:00"))
            .expect("provision");
        let transport = Transport::with_timeout(&credentials, std::time::Duration::from_secs(2))
            .expect("transport");
        sync::run_once(
            &mut conn,
            &transport,
            &SyncOptions::for_replica(db),
            ts("2026-11-26 10:00:00"),
        )
        .expect_err("HQ is down");
    });
    let ui = &kiosk.ui;
    let state = ui.global::<KioskState>();
    assert!(state.get_offline());
    assert!(by_label(ui, "Offline: everything still works").is_some());
    let pending = |kiosk: &Kiosk| -> i64 {
        aisle_core::replica::open_reader(&kiosk.db)
            .expect("reader")
            .query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))
            .expect("count")
    };
    let before = pending(&kiosk);
    tap_first_demo_member(ui);
    assert_eq!(state.get_screen(), Screen::Welcome);
    assert!(ui.global::<WelcomeAdapter>().get_coupons().row_count() >= 1);
    assert!(
        pending(&kiosk) >= before + 2,
        "the visit and the coupon wait in the outbox"
    );
}

/// A member without consent to personalization is welcomed with what is
/// popular at the store and a short explanation: no history used, no coupon
/// chosen for them.
#[test]
fn a_member_without_consent_gets_popular_picks_and_a_reason() {
    let kiosk = start("en");
    let ui = &kiosk.ui;
    let conn = aisle_core::replica::open_reader(&kiosk.db).expect("reader");
    let members = ui.global::<AttractAdapter>().get_demo_members();
    let member = (0..members.row_count())
        .filter_map(|row| members.row_data(row))
        .find(|m| {
            conn.query_row(
                "SELECT consent_personalization = 0 FROM members WHERE member_id = ?1",
                [m.member_id],
                |row| row.get::<_, bool>(0),
            )
            .expect("consent")
        })
        .expect("the demo offers a member without consent");
    by_label(ui, member.label.as_str())
        .expect("button")
        .invoke_accessible_default_action();
    let welcome = ui.global::<WelcomeAdapter>();
    assert_eq!(ui.global::<KioskState>().get_screen(), Screen::Welcome);
    assert!(!welcome.get_personal());
    assert_eq!(welcome.get_notice_code(), "personalization_off");
    assert!(
        by_label(
            ui,
            "Personal picks are off for your account: here is what's popular at this store"
        )
        .is_some()
    );
    assert_eq!(welcome.get_coupons().row_count(), 0);
    let reasons: Vec<String> = welcome
        .get_buy_again()
        .iter()
        .chain(welcome.get_discover().iter())
        .map(|pick| pick.reason_kind.to_string())
        .collect();
    assert!(!reasons.is_empty());
    assert!(
        reasons.iter().all(|r| r.starts_with("popular")),
        "nothing from their history: {reasons:?}"
    );
    let issued: i64 = conn
        .query_row(
            "SELECT count(*) FROM coupon_issues WHERE member_id = ?1",
            [member.member_id],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(issued, 0);
}

#[test]
fn french_is_bundled() {
    let kiosk = start("fr");
    let ui = &kiosk.ui;
    assert!(by_label(ui, "Scannez votre carte ou votre appli").is_some());
    assert!(by_label(ui, "Scan your card or app").is_none());
    // Reasons and missing details come from the core as kinds: in French too.
    assert!(
        by_label(ui, "Populaire dans ce magasin").is_some(),
        "the popular strip's reason"
    );
    assert!(by_label(ui, "Popular at this store").is_none());
}

/// The window now against its reference picture.
fn snapshot(ui: &KioskWindow, name: &str) {
    let buffer = ui.window().take_snapshot().expect("snapshot");
    let image =
        image::RgbaImage::from_raw(buffer.width(), buffer.height(), buffer.as_bytes().to_vec())
            .expect("image");
    compare(name, &image);
}

fn compare(name: &str, actual: &image::RgbaImage) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference");
    let path = dir.join(format!("{name}.png"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kiosk-{name}.png"));
    actual.save(&out).expect("save the rendering");
    if std::env::var_os("AISLE_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(&dir).expect("dir");
        actual.save(&path).expect("save reference");
        return;
    }
    let expected = image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (AISLE_UPDATE_SNAPSHOTS=1 writes it)",
                path.display()
            )
        })
        .to_rgba8();
    assert_eq!(expected.dimensions(), actual.dimensions(), "{name}");
    let differing = expected
        .pixels()
        .zip(actual.pixels())
        .filter(|(a, b)| a.0.iter().zip(b.0.iter()).any(|(x, y)| x.abs_diff(*y) > 24))
        .count();
    let share = differing as f64 / f64::from(actual.width() * actual.height());
    assert!(
        share < 0.05,
        "{name}: {:.2}% of pixels differ from {} (rendering in {})",
        share * 100.0,
        path.display(),
        out.display()
    );
}
