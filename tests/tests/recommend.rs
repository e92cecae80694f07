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
