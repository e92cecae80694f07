//! A running kiosk serves the model sync brings: started on a freshly
//! provisioned replica whose HQ has published no model, a member's scan
//! gets the store's popular picks and no personal coupons; HQ then
//! publishes a model, the store syncs with the real engine against a real
//! HQ on loopback, and the next scan on the same running kiosk gets picks
//! only the model explains.

use aisle_core::time::lit::ts;
use aisle_proto::DeviceKind;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use aisle_core::runtime::Clock;
use aisle_kiosk::backend::{Backend, BackendConfig, Job};
use aisle_kiosk::controller::Controller;
use aisle_kiosk::{KioskState, KioskWindow, Screen, WelcomeAdapter};
use aisle_tests::hq::TestHq;
use slint::{ComponentHandle, Model};

/// The demo data's last days: the members' history lies before it.
const NOW: &str = "2017-10-20 12:00:00";

/// One sync pass of the provisioned replica at `db` with HQ.
fn sync_once(db: &Path) -> aisle_core::sync::SyncReport {
    use aisle_core::sync::{Credentials, SyncOptions, Transport};
    let mut conn = aisle_core::replica::open_writer(db).expect("writer");
    let credentials = Credentials::load(&conn)
        .expect("load")
        .expect("provisioned");
    let transport = Transport::with_timeout(&credentials, std::time::Duration::from_secs(30))
        .expect("transport");
    let wall = Clock::wall();
    aisle_core::sync::run_once(
        &mut conn,
        &transport,
        &SyncOptions::for_replica(db),
        wall.now(),
    )
    .expect("sync")
}

fn artifacts(db: &Path) -> i64 {
    aisle_core::replica::open_reader(db)
        .expect("reader")
        .query_row("SELECT count(*) FROM model_artifacts", [], |row| row.get(0))
        .expect("count")
}

/// A member of the store's partition who consents to personalization, with
/// the most baskets, and their card number as printed (HQ's: the kiosk
/// holds it keyed).
fn regular(db: &Path, hq: &TestHq) -> (i64, String) {
    let member: i64 = aisle_core::replica::open_reader(db)
        .expect("reader")
        .query_row(
            "SELECT m.member_id FROM members AS m
             JOIN member_cards AS c ON c.member_id = m.member_id AND c.status = 'active'
             JOIN baskets AS b ON b.member_id = m.member_id
             WHERE m.consent_personalization = 1 AND m.erased_at IS NULL
             GROUP BY m.member_id ORDER BY count(DISTINCT b.basket_id) DESC, m.member_id LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("a regular with a card");
    let card = hq
        .db()
        .query_row(
            "SELECT card_number FROM member_cards WHERE member_id = ?1 AND status = 'active'
             ORDER BY card_number LIMIT 1",
            [member],
            |row| row.get(0),
        )
        .expect("the card");
    (member, card)
}

struct Kiosk {
    ui: KioskWindow,
    submit: Rc<dyn Fn(Job)>,
    _controller: Controller,
}

/// The kiosk on `db`, headless, on a stepped clock at `NOW`.
fn start(db: PathBuf) -> Kiosk {
    crate::testing_platform();
    let clock = Clock::stepped_at(NOW).expect("now");
    let config = BackendConfig {
        db,
        store: None,
        clock: clock.clone(),
        idle_secs: 30,
        demo: false,
        public_excluded: None,
    };
    let ui = crate::shown_window("en");
    let backend = Backend::open(config).expect("the kiosk starts without a model");
    let millis: aisle_kiosk::controller::Millis = Rc::new(move || clock.monotonic_ms());
    let (submit, shared) = aisle_kiosk::app::inline_submit(&ui, backend, millis.clone());
    let controller = Controller::new(&ui, 30, &submit, &millis);
    let _ = shared.set(controller.state.clone());
    submit(Job::Refresh);
    Kiosk {
        ui,
        submit,
        _controller: controller,
    }
}

/// The reason kinds of the welcome's picks, both lists.
fn reasons(ui: &KioskWindow) -> Vec<String> {
    let welcome = ui.global::<WelcomeAdapter>();
    welcome
        .get_buy_again()
        .iter()
        .chain(welcome.get_discover().iter())
        .map(|pick| pick.reason_kind.to_string())
        .collect()
}

#[test]
fn a_running_kiosk_starts_without_a_model_and_serves_the_one_sync_brings() {
    let hq = TestHq::start_with_demo();
    let store = hq.provisioned_store("kiosk-models", DeviceKind::Kiosk);
    sync_once(&store.db);
    assert_eq!(artifacts(&store.db), 0, "HQ has published no model yet");
    let (member, card) = regular(&store.db, &hq);

    let kiosk = start(store.db.clone());
    let ui = &kiosk.ui;
    let state = ui.global::<KioskState>();
    let welcome = ui.global::<WelcomeAdapter>();
    assert!(
        ui.global::<aisle_kiosk::AttractAdapter>()
            .get_popular()
            .row_count()
            > 0,
        "the attract strip shows the store's bestsellers"
    );

    // Before any model: popular picks, nothing personal, no coupon.
    (kiosk.submit)(Job::Scan(card.clone()));
    assert_eq!(state.get_screen(), Screen::Welcome);
    assert!(!welcome.get_personal());
    assert_eq!(welcome.get_notice_code(), "no_model");
    assert_eq!(welcome.get_buy_again().row_count(), 0);
    let before = reasons(ui);
    assert!(!before.is_empty(), "the store's bestsellers");
    assert!(
        before.iter().all(|r| r.starts_with("popular")),
        "{before:?}"
    );
    assert_eq!(welcome.get_coupons().row_count(), 0);
    state.invoke_done();

    // HQ fits and publishes a model; the store's next sync brings it.
    hq.at_hq()
        .storage()
        .train(None, 1, ts("2026-11-25 06:00:00"))
        .expect("train at HQ");
    sync_once(&store.db);
    assert_eq!(artifacts(&store.db), 1, "the model came through the feed");

    // The same running kiosk: the member's own picks, with their reasons.
    (kiosk.submit)(Job::Scan(card));
    assert_eq!(state.get_screen(), Screen::Welcome);
    assert!(welcome.get_personal(), "member {member}: personal picks");
    assert_eq!(welcome.get_notice_code(), "");
    assert!(welcome.get_buy_again().row_count() > 0);
    let after = reasons(ui);
    assert!(
        after
            .iter()
            .any(|r| matches!(r.as_str(), "cycle" | "bought" | "bought_with")),
        "reasons from the member's history: {after:?}"
    );
}
