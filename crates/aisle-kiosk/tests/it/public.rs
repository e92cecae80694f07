//! A public screen never embarrasses (issue 19): over every member of the
//! demo replica, no product of a sensitive department or category is on any
//! list the kiosk renders, nor a coupon for one, nor on the attract screen.

use aisle_core::recommend::serve::Policy;
use aisle_kiosk::backend::{Backend, BackendConfig, Job, Reply};

const NOW: &str = "2017-10-20 12:00:00";

#[test]
fn no_sensitive_product_or_coupon_is_on_any_kiosk_screen_for_any_demo_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    aisle_tests::kiosk_replica(&db, NOW);
    let conn = aisle_core::replica::open_reader(&db).expect("reader");
    let policy = Policy::default();
    // The demo catalog has them, and members buy them: the test can fail.
    let sensitive_bought: i64 = conn
        .query_row(
            "SELECT count(DISTINCT l.product_id) FROM purchase_lines l JOIN products p USING (product_id)
             WHERE p.department = 'SPIRITS' OR p.category IN ('FAMILY PLANNING', 'ADULT INCONTINENCE', 'FEMININE HYGIENE', 'LAXATIVES', 'CIGARETTES', 'BEERS/ALES')",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert!(
        sensitive_bought > 0,
        "the demo members buy sensitive products"
    );
    let showcase = aisle_core::demo::showcase_member(&conn)
        .expect("sql")
        .expect("showcase");
    let store: i64 = conn
        .query_row(
            "SELECT home_store_id FROM members WHERE member_id = ?1",
            [showcase],
            |row| row.get(0),
        )
        .expect("store");
    let members: Vec<i64> = conn
        .prepare("SELECT member_id FROM members WHERE erased_at IS NULL ORDER BY member_id")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("members");
    let mut backend = Backend::open(BackendConfig {
        db: db.clone(),
        store: Some(store),
        clock: aisle_core::runtime::Clock::pinned_or_wall(Some(NOW)).expect("clock"),
        idle_secs: 30,
        demo: true,
        public_excluded: None,
    })
    .expect("backend");
    let check = |what: &str, product_id: i64| {
        let labels = aisle_tests::product_labels(&conn, product_id);
        assert!(
            policy.public(&labels),
            "{what}: product {product_id} ({labels}) on a public screen"
        );
    };
    let Reply::Refreshed { popular, .. } = backend.run(Job::Refresh) else {
        panic!("no attract screen");
    };
    assert!(!popular.is_empty());
    for pick in &popular {
        check("attract", pick.product_id);
    }
    let (mut picks, mut coupons) = (0, 0);
    for member in &members {
        let reply = backend.run(Job::DemoMember(*member));
        let Reply::Scanned(aisle_core::kiosk::ScanOutcome::Welcome(welcome)) = reply else {
            continue;
        };
        for pick in welcome
            .welcome
            .lists
            .buy_again
            .iter()
            .chain(&welcome.welcome.lists.discover)
        {
            picks += 1;
            check(&format!("member {member}'s welcome"), pick.product_id);
        }
        for coupon in &welcome.welcome.coupons {
            coupons += 1;
            let products: Vec<i64> = conn
                .prepare("SELECT product_id FROM coupon_products WHERE coupon_id = ?1")
                .expect("prepare")
                .query_map([coupon.coupon_id], |row| row.get(0))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("products");
            for product in products {
                check(
                    &format!("member {member}'s coupon {}", coupon.coupon_id),
                    product,
                );
            }
        }
    }
    assert!(picks > members.len(), "the welcomes showed picks: {picks}");
    assert!(coupons > 0, "the welcomes showed coupons");
}

#[test]
fn unknown_cards_typed_in_a_burst_cool_the_kiosk_down_and_are_audited() {
    use aisle_core::identify::wedge::{Input, Key, KeyEvent, WedgeConfig, WedgeParser};
    use aisle_core::kiosk::ScanOutcome;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    aisle_tests::kiosk_replica(&db, NOW);
    let conn = aisle_core::replica::open_reader(&db).expect("reader");
    let showcase = aisle_core::demo::showcase_member(&conn)
        .expect("sql")
        .expect("showcase");
    let (store, card): (i64, String) = conn
        .query_row(
            "SELECT m.home_store_id, c.card_number FROM members m JOIN member_cards c USING (member_id)
             WHERE m.member_id = ?1 AND c.status = 'active' LIMIT 1",
            [showcase],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the showcase member's card");
    let clock = aisle_core::runtime::Clock::stepped_at(NOW).expect("clock");
    let mut backend = Backend::open(BackendConfig {
        db: db.clone(),
        store: Some(store),
        clock: clock.clone(),
        idle_secs: 30,
        demo: true,
        public_excluded: None,
    })
    .expect("backend");
    let code_of = |reply: Reply| match reply {
        Reply::Scanned(ScanOutcome::Refused { code, .. }) => code,
        Reply::Scanned(ScanOutcome::Welcome(_)) => "welcome".into(),
        other => panic!("{other:?}"),
    };
    // A keystroke injector types card numbers at machine speed: 2 ms a key.
    let mut parser = WedgeParser::new(WedgeConfig::default());
    let mut at_ms = 0;
    let mut typed = |number: &str| {
        for c in number.chars() {
            at_ms += 2;
            assert_eq!(
                parser.feed(KeyEvent {
                    at_ms,
                    key: Key::Char(c)
                }),
                None
            );
        }
        at_ms += 2;
        match parser.feed(KeyEvent {
            at_ms,
            key: Key::Enter,
        }) {
            Some(Input::Scanned(text)) => text,
            other => panic!("the wedge parser read {other:?}"),
        }
    };
    let mut codes = Vec::new();
    for body in 0..12u64 {
        let number = aisle_core::card::card_number(29, 990_000_000 + body);
        let text = typed(&number);
        clock.advance(std::time::Duration::from_millis(40));
        codes.push(code_of(backend.run(Job::Scan(text))));
    }
    assert_eq!(codes[..5], ["unknown_card"; 5], "{codes:?}");
    assert_eq!(codes[5..], ["cooling_down"; 7], "{codes:?}");
    // A real member's card waits too; their app code does not.
    let text = typed(&card);
    assert_eq!(code_of(backend.run(Job::Scan(text))), "cooling_down");
    assert_eq!(code_of(backend.run(Job::DemoMember(showcase))), "welcome");
    // Audited: each unknown card (last four digits only) and one burst.
    let audited = |action: &str| -> Vec<String> {
        conn.prepare("SELECT detail FROM audit_log WHERE action = ?1 ORDER BY audit_id")
            .expect("prepare")
            .query_map([action], |row| row.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    };
    let unknown = audited("unknown_card");
    assert_eq!(unknown.len(), 5);
    assert!(
        unknown
            .iter()
            .all(|d| d.contains("last_four") && !d.contains("990000")),
        "{unknown:?}"
    );
    assert_eq!(audited("card_burst").len(), 1);
    // After the cool-down the kiosk takes cards again.
    clock.advance(std::time::Duration::from_secs(301));
    let text = typed(&card);
    assert_eq!(code_of(backend.run(Job::Scan(text))), "welcome");
}
