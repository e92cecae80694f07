//! Recommendation models on the real demo extract: fitted on earlier weeks,
//! evaluated on later ones, against the built-in baselines.

use aisle_core::recommend::baseline;
use aisle_core::recommend::eval::{self, Weeks};
use aisle_core::recommend::history::{History, day_of};
use aisle_core::recommend::model::{self, FitOptions, List};
use aisle_core::replica;
use aisle_tests::*;

#[test]
fn model_beats_the_baselines_on_held_out_weeks_and_is_deterministic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    import_cj(&mut conn, &demo_dir(), &options()).expect("import demo");
    let origin = eval::origin_day(&conn).expect("origin").expect("baskets");
    assert_eq!(
        aisle_core::dates::date_string(i64::from(origin)),
        "2016-12-26",
        "Monday of week 1"
    );
    let (from, until) = Weeks { first: 1, last: 34 }.bounds(origin);
    let (test_from, test_until) = Weeks {
        first: 35,
        last: 44,
    }
    .bounds(origin);
    let train = History::load(&conn, &from, &until).expect("history");
    let cases = eval::cases(&conn, &train, &test_from, &test_until).expect("cases");
    assert!(cases.len() > 150, "{} members to predict", cases.len());

    let kinds = model::kinds_of(&conn, &train.products).expect("kinds");
    let as_of = day_of(&until).expect("day");
    let fit = || model::fit(&train, &kinds, as_of, &FitOptions::default());
    let fitted = fit();
    let popular = baseline::popularity(&train);
    let k = 10;
    let as_ids = |items: Vec<u32>| {
        items
            .into_iter()
            .map(|i| train.products[i as usize])
            .collect::<Vec<i64>>()
    };
    let by_popularity = eval::evaluate(&cases, &train, k, |_| {
        as_ids(popular.iter().take(k).copied().collect())
    });
    let by_frequency = eval::evaluate(&cases, &train, k, |c| {
        as_ids(baseline::top_frequency(&train, c.member, &popular, k))
    });
    let predict = |m: &model::Model, c: &eval::Case, list| {
        m.predict(
            &train,
            c.member,
            model::home_store(&train.trips[c.member as usize]),
            list,
            k,
        )
    };
    let blended = eval::evaluate(&cases, &train, k, |c| predict(&fitted, c, List::Blended));
    assert!(
        blended.ndcg > by_popularity.ndcg * 1.5,
        "blended {blended:?} vs popularity {by_popularity:?}"
    );
    assert!(
        blended.ndcg > by_frequency.ndcg * 0.97,
        "blended {blended:?} vs top-frequency {by_frequency:?}"
    );

    // Lists have the asked length, no duplicates, and keep to their kind.
    for case in cases.iter().take(20) {
        let history: std::collections::HashSet<i64> = train.trips[case.member as usize]
            .iter()
            .flat_map(|t| t.items.iter().map(|i| train.products[*i as usize]))
            .collect();
        for list in [List::Blended, List::BuyAgain, List::Discover] {
            let items = predict(&fitted, case, list);
            let unique: std::collections::HashSet<i64> = items.iter().copied().collect();
            assert_eq!(unique.len(), items.len(), "{list:?} repeats an item");
            assert_eq!(items.len(), k);
            if list == List::Discover {
                assert!(
                    items.iter().all(|p| !history.contains(p)),
                    "discover lists only new items"
                );
            }
        }
    }
    let again = fit();
    for case in cases.iter().take(50) {
        let first = predict(&fitted, case, List::Blended);
        assert_eq!(first, predict(&again, case, List::Blended), "deterministic");
    }
}

mod serving {
    use aisle_core::recommend::artifact::{self, Artifact};
    use aisle_core::recommend::history::{History, day_of};
    use aisle_core::recommend::model::{self, FitOptions};
    use aisle_core::recommend::serve::{self, Policy, Reason, Request, Served};
    use aisle_core::replica;
    use aisle_tests::*;
    use rusqlite::Connection;

    const UNTIL: &str = "2017-09-25";

    /// A demo replica with a model fitted before `UNTIL`, stored and loaded back as a store would.
    fn setup() -> (tempfile::TempDir, Connection, Served) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
        import_cj(&mut conn, &demo_dir(), &options()).expect("import demo");
        let history = History::load(&conn, "0000", UNTIL).expect("history");
        let kinds = model::kinds_of(&conn, &history.products).expect("kinds");
        let fitted = model::fit(
            &history,
            &kinds,
            day_of(UNTIL).expect("day"),
            &FitOptions::default(),
        );
        let artifact = Artifact {
            trained_until: UNTIL.into(),
            created_at: "2026-01-01 00:00:00".into(),
            seed: 1,
            model: fitted,
        };
        artifact::store(&conn, &artifact).expect("store");
        let loaded = artifact::load_newest(&conn).expect("load");
        (tmp, conn, Served::new(loaded.artifact.model))
    }

    /// The member with the most baskets who consents to personalization.
    fn regular(conn: &Connection) -> (i64, i64) {
        let member_id = aisle_core::demo::showcase_member(conn)
            .expect("query")
            .expect("member");
        let store_id: i64 = conn
            .query_row(
                "SELECT home_store_id FROM members WHERE member_id = ?1",
                [member_id],
                |r| r.get(0),
            )
            .expect("home");
        (member_id, store_id)
    }

    use aisle_core::time::lit::ts;

    fn request(member_id: Option<i64>, store_id: i64) -> Request {
        Request {
            member_id,
            store_id,
            now: ts(&format!("{UNTIL} 10:00:00")),
            k: 8,
            public_screen: false,
            shown: Vec::new(),
        }
    }

    #[test]
    fn a_regular_gets_personal_lists_with_true_reasons() {
        let (_tmp, conn, served) = setup();
        let (member_id, store_id) = regular(&conn);
        let lists = serve::recommend(
            &conn,
            &served,
            &request(Some(member_id), store_id),
            &Policy::default(),
        )
        .expect("serve");
        assert!(lists.personal && lists.notice.is_none());
        assert_eq!(lists.buy_again.len(), 8);
        // The demo stores stock only what 200 households bought there, and this is the
        // member who bought most of it: Discover may come out short, never empty.
        assert!(
            (1..=8).contains(&lists.discover.len()),
            "{}",
            lists.discover.len()
        );
        let bought = |product_id: i64| -> i64 {
            conn.query_row(
                "SELECT count(DISTINCT b.basket_id) FROM baskets AS b JOIN purchase_lines AS l USING (basket_id)
                 WHERE b.member_id = ?1 AND l.product_id = ?2 AND b.purchased_at < ?3",
                rusqlite::params![member_id, product_id, UNTIL],
                |r| r.get(0),
            )
            .expect("count")
        };
        for pick in &lists.buy_again {
            let times = bought(pick.product_id);
            assert!(times >= 1, "{} was never bought", pick.name);
            match &pick.reason {
                Reason::Cycle { .. } => {
                    assert!(times >= 3, "a cycle needs three purchases: {}", pick.name);
                }
                Reason::Bought { times: said } => assert_eq!(i64::from(*said), times),
                other => panic!("buy-again reason {other:?}"),
            }
            let stock: i64 = conn
                .query_row(
                    "SELECT stock_qty FROM store_products WHERE store_id = ?1 AND product_id = ?2",
                    [store_id, pick.product_id],
                    |r| r.get(0),
                )
                .expect("stocked");
            assert!(stock > 0);
        }
        for pick in &lists.discover {
            assert_eq!(
                bought(pick.product_id),
                0,
                "{} is not new to the member",
                pick.name
            );
            if let Reason::BoughtWith { product_id, .. } = &pick.reason {
                assert!(
                    bought(*product_id) >= 2,
                    "the reason names an item the member really buys"
                );
                let together: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM purchase_lines AS a JOIN purchase_lines AS b USING (basket_id)
                         WHERE a.product_id = ?1 AND b.product_id = ?2",
                        [*product_id, pick.product_id],
                        |r| r.get(0),
                    )
                    .expect("co-purchases");
                assert!(
                    together >= 2,
                    "{} is really bought with {product_id}",
                    pick.name
                );
            }
        }
        // Diversity: at most two of a kind.
        let mut kinds = std::collections::HashMap::new();
        for pick in lists.buy_again.iter() {
            let kind: String = conn
                .query_row(
                    "SELECT coalesce(product_type, category, department, '') FROM products WHERE product_id = ?1",
                    [pick.product_id],
                    |r| r.get(0),
                )
                .expect("kind");
            *kinds.entry(kind).or_insert(0) += 1;
        }
        assert!(kinds.values().all(|n| *n <= 2), "{kinds:?}");
    }

    #[test]
    fn filters_remove_what_must_not_be_shown() {
        let (_tmp, conn, served) = setup();
        let (member_id, store_id) = regular(&conn);
        let policy = Policy::default();
        let first = serve::recommend(&conn, &served, &request(Some(member_id), store_id), &policy)
            .expect("serve");
        let top = first.buy_again[0].product_id;
        let second = first.buy_again[1].product_id;

        // Out of stock at this store.
        conn.execute(
            "UPDATE store_products SET stock_qty = 0 WHERE store_id = ?1 AND product_id = ?2",
            [store_id, top],
        )
        .expect("stock");
        // An excluded category, on a public screen only.
        conn.execute(
            "UPDATE products SET department = 'SPIRITS' WHERE product_id = ?1",
            [second],
        )
        .expect("dept");
        let private =
            serve::recommend(&conn, &served, &request(Some(member_id), store_id), &policy)
                .expect("serve");
        assert!(
            private.buy_again.iter().all(|p| p.product_id != top),
            "out of stock"
        );
        assert!(
            private.buy_again.iter().any(|p| p.product_id == second),
            "allowed off public screens"
        );
        let public = Request {
            public_screen: true,
            ..request(Some(member_id), store_id)
        };
        let public = serve::recommend(&conn, &served, &public, &policy).expect("serve");
        assert!(
            public.buy_again.iter().all(|p| p.product_id != second),
            "excluded on a public screen"
        );

        // Already shown in this session.
        let shown_ids: Vec<i64> = public
            .buy_again
            .iter()
            .take(3)
            .map(|p| p.product_id)
            .collect();
        let again = Request {
            public_screen: true,
            shown: shown_ids.clone(),
            ..request(Some(member_id), store_id)
        };
        let again = serve::recommend(&conn, &served, &again, &policy).expect("serve");
        assert!(
            again
                .buy_again
                .iter()
                .chain(&again.discover)
                .all(|p| !shown_ids.contains(&p.product_id))
        );

        // An inactive product is never shown.
        let third = again.buy_again[0].product_id;
        conn.execute(
            "UPDATE products SET active = 0 WHERE product_id = ?1",
            [third],
        )
        .expect("inactive");
        let later = serve::recommend(&conn, &served, &request(Some(member_id), store_id), &policy)
            .expect("serve");
        assert!(
            later
                .buy_again
                .iter()
                .chain(&later.discover)
                .all(|p| p.product_id != third)
        );
    }

    #[test]
    fn without_consent_or_history_only_popular_picks() {
        let (_tmp, conn, served) = setup();
        let (member_id, store_id) = regular(&conn);
        let policy = Policy::default();
        let check = |lists: &serve::Lists, notice: &str| {
            assert!(!lists.personal);
            assert!(
                lists.notice.as_deref().is_some_and(|n| n.contains(notice)),
                "{:?}",
                lists.notice
            );
            assert!(lists.buy_again.is_empty(), "no personal list");
            assert_eq!(lists.discover.len(), 8, "bestsellers fill the screen");
            assert!(
                lists
                    .discover
                    .iter()
                    .all(|p| matches!(p.reason, Reason::PopularHere | Reason::Popular))
            );
        };
        let anonymous =
            serve::recommend(&conn, &served, &request(None, store_id), &policy).expect("serve");
        check(&anonymous, "Popular");
        let unknown = serve::recommend(&conn, &served, &request(Some(987_654), store_id), &policy)
            .expect("serve");
        check(&unknown, "don't know");
        conn.execute(
            "UPDATE members SET consent_personalization = 0 WHERE member_id = ?1",
            [member_id],
        )
        .expect("consent");
        let refused =
            serve::recommend(&conn, &served, &request(Some(member_id), store_id), &policy)
                .expect("serve");
        check(&refused, "off");
        conn.execute(
            "INSERT INTO members (member_id, given_name, consent_personalization, updated_at) VALUES (5, 'New', 1, '2017-09-01 00:00:00')",
            [],
        )
        .expect("new member");
        let new =
            serve::recommend(&conn, &served, &request(Some(5), store_id), &policy).expect("serve");
        check(&new, "Welcome");
    }

    #[test]
    fn a_tiny_catalog_gives_short_lists_not_errors() {
        let (_tmp, conn, served) = setup();
        let (member_id, store_id) = regular(&conn);
        conn.execute(
            "UPDATE store_products SET stock_qty = 0 WHERE store_id = ?1 AND product_id NOT IN
             (SELECT product_id FROM store_products WHERE store_id = ?1 ORDER BY product_id LIMIT 3)",
            [store_id],
        )
        .expect("empty the shelves");
        let lists = serve::recommend(
            &conn,
            &served,
            &request(Some(member_id), store_id),
            &Policy::default(),
        )
        .expect("serve");
        assert!(lists.buy_again.len() + lists.discover.len() <= 3);
        let companions = serve::bought_together(
            &conn,
            &served,
            1,
            &request(None, store_id),
            &Policy::default(),
        )
        .expect("serve");
        assert!(companions.len() <= 3);
    }
}
