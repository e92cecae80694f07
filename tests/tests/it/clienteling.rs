//! The associate's tablet shows sensitive departments and categories
//! (alcohol, tobacco, health items) only for a member who consented to
//! personalization (issue 19): without consent its suggestions follow the
//! public-screen exclusions, as a kiosk's do.

use aisle_core::clienteling::{self, Viewer};
use aisle_core::recommend::artifact;
use aisle_core::recommend::serve::{Bestsellers, Policy, Ranking, Served};
use aisle_core::time::lit::ts;

const NOW: &str = "2017-10-20 12:00:00";

#[test]
fn the_tablet_shows_sensitive_products_only_with_consent_to_personalization() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    aisle_tests::kiosk_replica(&db, NOW);
    let mut conn = aisle_core::replica::open_writer(&db).expect("writer");
    let store = aisle_core::runtime::choose_store(&conn, None).expect("store");
    let policy = Policy::default();
    let served = Served::new(artifact::load_newest(&conn).expect("model").artifact.model);
    // Beer becomes the store's bestseller: a line of it in every recent
    // basket. Without the exclusion a member without consent would be shown
    // it: the test can fail.
    let beer: i64 = conn
        .query_row(
            "SELECT product_id FROM products WHERE category = 'BEERS/ALES' ORDER BY product_id LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("a beer");
    conn.execute(
        "INSERT INTO purchase_lines (basket_id, line_no, product_id, quantity, sales_cents)
         SELECT b.basket_id, 1 + (SELECT max(line_no) FROM purchase_lines l WHERE l.basket_id = b.basket_id), ?1, 1, 899
         FROM baskets b WHERE b.store_id = ?2 AND b.purchased_at < ?3",
        rusqlite::params![beer, store, NOW],
    )
    .expect("beer in every basket");
    conn.execute(
        "INSERT INTO store_products (store_id, product_id, price_cents, stock_qty, updated_at)
         VALUES (?1, ?2, 899, 40, ?3)
         ON CONFLICT (store_id, product_id) DO UPDATE SET stock_qty = 40",
        rusqlite::params![store, beer, NOW],
    )
    .expect("in stock");
    let bestsellers = Bestsellers::load(&conn, store, ts(NOW)).expect("bestsellers");
    assert_eq!(bestsellers.here.first().map(|b| b.0), Some(beer));
    assert!(!policy.public(&aisle_tests::product_labels(&conn, beer)));
    let members: Vec<(i64, bool)> = conn
        .prepare("SELECT member_id, consent_personalization FROM members WHERE erased_at IS NULL ORDER BY member_id")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("members");
    let without: Vec<i64> = members.iter().filter(|m| !m.1).map(|m| m.0).collect();
    assert!(
        without.len() >= 5,
        "members without consent: {}",
        without.len()
    );
    let viewer = Viewer {
        actor: "A-17",
        store_id: store,
        now: ts(NOW),
    };
    let mut sensitive_with_consent = 0;
    for &(member_id, consented) in &members {
        for ranking in [Ranking::Model(&served), Ranking::Bestsellers(&bestsellers)] {
            let view =
                clienteling::view_client(&mut conn, ranking, member_id, &viewer).expect("view");
            let picks = view.lists.buy_again.iter().chain(&view.lists.discover);
            for pick in picks {
                let public = policy.public(&aisle_tests::product_labels(&conn, pick.product_id));
                if consented {
                    sensitive_with_consent += usize::from(!public);
                } else {
                    assert!(
                        public,
                        "member {member_id} (no consent): product {} ({}) on the tablet",
                        pick.product_id,
                        aisle_tests::product_labels(&conn, pick.product_id)
                    );
                }
            }
        }
    }
    assert!(
        sensitive_with_consent > 0,
        "a consenting member's tablet lists may show the store's bestselling beer"
    );
}
