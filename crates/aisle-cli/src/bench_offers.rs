//! `aisle bench offers`: a member's ranked offers with many active offers,
//! beside a baseline measured in the same run. The synthetic offers are
//! written inside a transaction that is rolled back: the replica is left as
//! it was.

use std::path::Path;
use std::time::Instant;

use aisle_core::offers::engine::{self, DecideRequest, OfferBook};
use aisle_core::offers::features::MemberHistory;
use aisle_core::offers::model;
use aisle_core::offers::rules::{Channel, MemberFacts, StoreUsage};
use aisle_core::rng::SplitMix64;
use aisle_core::time::Day;
use anyhow::{Context, Result, ensure};
use rusqlite::params;

use crate::bench::{Summary, print_summaries, summarize};
use crate::output::Out;

pub fn offers(db: &Path, offers: usize, queries: usize, seed: u64, out: &mut Out) -> Result<()> {
    let mut conn = aisle_core::replica::open_writer(db)?;
    let day =
        aisle_core::offers::eval::data_until(&conn)?.context("the replica has no purchases")?;
    let fitted = match model::load_newest(&conn)? {
        Some(loaded) => loaded.model,
        None => model::fit_from(&conn, &day).context(
            "no stored offer model and none can be fitted here: run `aisle offers train`",
        )?,
    };
    let tx = conn.transaction()?;
    let mut rng = SplitMix64::new(seed);
    let products: Vec<i64> = tx
        .prepare("SELECT product_id FROM products ORDER BY product_id")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let members: Vec<i64> = tx
        .prepare(
            "SELECT member_id FROM members m WHERE erased_at IS NULL
               AND EXISTS (SELECT 1 FROM baskets b WHERE b.member_id = m.member_id)
             ORDER BY member_id",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    ensure!(
        !products.is_empty() && !members.is_empty(),
        "the replica has no products or shoppers"
    );
    let store_id: i64 = tx.query_row("SELECT min(store_id) FROM stores", [], |r| r.get(0))?;
    let sample: Vec<i64> = (0..queries.min(2_000))
        .map(|_| *rng.pick(&members))
        .collect();
    let campaigns = offers.div_ceil(25);
    let base_campaign: i64 = tx.query_row(
        "SELECT coalesce(max(campaign_id), 0) + 1 FROM campaigns",
        [],
        |r| r.get(0),
    )?;
    let base_coupon: i64 = tx.query_row(
        "SELECT coalesce(max(coupon_id), 0) + 1 FROM coupons",
        [],
        |r| r.get(0),
    )?;
    let (starts, ends) = (shift(&day, -7)?, shift(&day, 30)?);
    for c in 0..campaigns as i64 {
        let campaign = base_campaign + c;
        tx.execute(
            "INSERT INTO campaigns (campaign_id, name, campaign_type, starts_on, ends_on) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![campaign, format!("bench {c}"), ["Type A", "Type B", "Type C"][c as usize % 3], starts, ends],
        )?;
        // Rules vary: open or targeted, stacking groups, affinity floors.
        tx.execute(
            "INSERT INTO offer_rules (campaign_id, targeted_only, min_affinity, stacking_group, per_store_daily_limit)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![campaign, c % 2, c % 3, (c % 4 == 0).then(|| format!("group {}", c % 8)), 500],
        )?;
        let mut target = tx.prepare_cached(
            "INSERT OR IGNORE INTO campaign_targets (campaign_id, member_id) VALUES (?1, ?2)",
        )?;
        for member in &sample {
            if rng.below(3) == 0 {
                target.execute(params![campaign, member])?;
            }
        }
    }
    let mut coupon_insert = tx.prepare_cached(
        "INSERT INTO coupons (coupon_id, code, campaign_id, description, discount_cents) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut product_insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO coupon_products (coupon_id, product_id) VALUES (?1, ?2)",
    )?;
    for i in 0..offers as i64 {
        let coupon = base_coupon + i;
        coupon_insert.execute(params![
            coupon,
            format!("BENCH{coupon}"),
            base_campaign + i % campaigns as i64,
            format!("bench coupon {i}"),
            25 * (1 + rng.below(8) as i64)
        ])?;
        for _ in 0..1 + rng.below(30) {
            product_insert.execute(params![coupon, rng.pick(&products)])?;
        }
    }
    drop((coupon_insert, product_insert));

    let today = Day::parse(&day)?;
    let now = today.start().plus_secs(12 * 3600);
    let started = Instant::now();
    let book = OfferBook::load(&tx, store_id, today)?;
    let book_load = started.elapsed();
    ensure!(
        book.offers.len() >= offers,
        "{} active offers, wanted {offers}",
        book.offers.len()
    );
    let request = DecideRequest {
        store_id,
        channel: Channel::Kiosk,
        today,
        limit: 5,
        include_negative: false,
        exploration: Default::default(),
    };
    let mut baseline = Vec::with_capacity(queries);
    let mut whole = Vec::with_capacity(queries);
    let mut pure = Vec::with_capacity(queries);
    let mut ranked = 0usize;
    let mut by_id = tx.prepare("SELECT given_name FROM members WHERE member_id = ?1")?;
    for i in 0..queries {
        let member = sample[i % sample.len()];
        let t = Instant::now();
        let _: Option<String> = by_id.query_row([member], |row| row.get(0))?;
        baseline.push(t.elapsed());

        let t = Instant::now();
        let decision = engine::offers_for(&tx, &book, &fitted, member, now, &request)?
            .context("a sampled member vanished")?;
        whole.push(t.elapsed());
        ranked += decision.ranked.len();

        let facts = MemberFacts::load(&tx, member, now)?.context("member")?;
        let history = MemberHistory::load(&tx, member, now)?;
        let usage = StoreUsage::load(&tx, store_id, today, starts)?;
        let t = Instant::now();
        let again = engine::decide(&book, &facts, &history, &usage, &fitted, &request);
        pure.push(t.elapsed());
        ensure!(
            again == decision,
            "the pure decision differs from the loaded one"
        );
    }
    drop(by_id);
    tx.rollback()?;
    let results: [Summary; 3] = [
        summarize("baseline: member's first name by id", baseline),
        summarize("decide (pure, inputs loaded)", pure),
        summarize("ranked offers (load member + decide)", whole),
    ];
    out.line(format_args!(
        "{queries} queries over {} members, {} active offers in {campaigns} campaigns (book loaded once in {:.1} ms), {:.1} offers ranked per member, {}",
        sample.len(),
        book.offers.len(),
        book_load.as_secs_f64() * 1e3,
        ranked as f64 / queries.max(1) as f64,
        db.display()
    ))?;
    print_summaries(out, &results)?;
    out.line(format_args!(
        "  ranked offers p99 / baseline p99 = {:.1}x",
        results[2].p99_us / results[0].p99_us
    ))?;
    out.json(&results)
}

fn shift(day: &str, days: i64) -> Result<Day> {
    Ok(Day::parse(day)?.plus_days(days))
}
