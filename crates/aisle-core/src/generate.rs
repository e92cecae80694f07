//! Synthetic retailer exports in Aisle's generic CSV layout, at any scale.
//!
//! The shape follows what grocery loyalty data looks like (and what the
//! Complete Journey data shows): product popularity is Zipf-skewed; stores
//! differ in size; each member has a home store, a personal set of staples
//! bought on their own cycles (weekly milk, monthly detergent) and occasional
//! items drawn from overall popularity; trip frequency varies a lot between
//! members. Everything is a function of the seed: the same arguments write the
//! same bytes.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::dates;
use crate::identity;
use crate::rng::SplitMix64;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenSpec {
    pub members: u64,
    pub products: u64,
    /// Purchase lines, in total.
    pub purchases: u64,
    pub stores: u64,
    pub seed: u64,
    /// How much of the catalog beyond its 500 best sellers a store carries,
    /// as a share of the default (1.0: half of it in a large store, more in
    /// a small one; 0.1 for a chain with a wide catalog and narrow stores).
    pub assortment: f64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenReport {
    pub stores: u64,
    pub products: u64,
    pub store_products: u64,
    pub members: u64,
    pub baskets: u64,
    pub purchase_lines: u64,
    pub campaigns: u64,
    pub coupons: u64,
}

const DEPARTMENTS: &[(&str, &[&str])] = &[
    (
        "PRODUCE",
        &[
            "APPLES",
            "BANANAS",
            "SALAD MIX",
            "TOMATOES",
            "BERRIES",
            "POTATOES",
            "ONIONS",
        ],
    ),
    (
        "GROCERY",
        &[
            "CEREAL",
            "PASTA",
            "SOUP",
            "COFFEE",
            "SOFT DRINKS",
            "SNACKS",
            "BAKING",
        ],
    ),
    ("DAIRY", &["MILK", "YOGURT", "CHEESE", "BUTTER", "EGGS"]),
    ("MEAT", &["BEEF", "CHICKEN", "PORK", "SAUSAGE"]),
    ("PASTRY", &["BREAD", "ROLLS", "CAKES"]),
    ("FROZEN", &["PIZZA", "ICE CREAM", "VEGETABLES", "MEALS"]),
    ("DRUG GM", &["VITAMINS", "SHAMPOO", "TOOTHPASTE", "DIAPERS"]),
    ("HOUSEHOLD", &["DETERGENT", "PAPER TOWELS", "CLEANERS"]),
];
const SIZES: &[&str] = &[
    "8 OZ", "12 OZ", "16 OZ", "1 LB", "32 OZ", "1 GA", "6 PK", "12 CT",
];
const BRANDS: &[&str] = &[
    "Northfield",
    "Sunvale",
    "Harbor & Co",
    "Greenleaf",
    "Bluebird",
    "Oakridge",
    "Store brand",
];

/// Start of the generated year: Monday 2025-01-06.
fn epoch_day() -> i64 {
    dates::days_from_civil(2025, 1, 6)
}

/// Cumulative weights of a Zipf(s) law over `n` ranks.
fn zipf_cdf(n: u64, s: f64) -> Vec<f64> {
    let mut total = 0.0;
    let mut cdf = Vec::with_capacity(n as usize);
    for rank in 1..=n {
        total += 1.0 / (rank as f64).powf(s);
        cdf.push(total);
    }
    for value in &mut cdf {
        *value /= total;
    }
    cdf
}

fn draw(cdf: &[f64], rng: &mut SplitMix64) -> usize {
    let u = rng.unit();
    cdf.partition_point(|c| *c < u).min(cdf.len() - 1)
}

fn io_context(path: &Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn create(out: &Path, name: &str) -> std::io::Result<BufWriter<std::fs::File>> {
    let path = out.join(name);
    Ok(BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&path).map_err(io_context(&path))?,
    ))
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Writes the layout's files into `out`. Product ids are 1..=products (rank 1 is the most popular
/// before shuffling); member ids 1..=members; store ids 1..=stores.
pub fn generate(spec: &GenSpec, out: &Path) -> std::io::Result<GenReport> {
    std::fs::create_dir_all(out)?;
    let mut report = GenReport::default();
    let n_products = spec.products.max(1);
    let n_stores = spec.stores.max(1);
    let seed = spec.seed;

    let mut stores = create(out, "stores.csv")?;
    writeln!(stores, "store_id,name,region,timezone")?;
    for store_id in 1..=n_stores {
        let region = ["North", "South", "East", "West"][(store_id % 4) as usize];
        writeln!(
            stores,
            "{store_id},Store {store_id},{region},America/New_York"
        )?;
        report.stores += 1;
    }
    stores.flush()?;

    // Popularity rank r -> product id, shuffled so ids carry no popularity signal.
    let mut by_rank: Vec<u64> = (1..=n_products).collect();
    let mut shuffle = SplitMix64::new(seed ^ 0x5eed);
    for idx in (1..by_rank.len()).rev() {
        by_rank.swap(idx, shuffle.below(idx as u64 + 1) as usize);
    }
    let mut base_price = vec![0i64; n_products as usize + 1];
    let mut products = create(out, "products.csv")?;
    writeln!(
        products,
        "product_id,name,gtin,department,category,product_type,brand,brand_type,package_size,active"
    )?;
    for product_id in 1..=n_products {
        let mut rng = SplitMix64::for_key(seed, "product", product_id);
        let (department, categories) = rng.pick(DEPARTMENTS);
        let category = rng.pick(categories);
        let brand = rng.pick(BRANDS);
        let brand_type = if *brand == "Store brand" {
            "private"
        } else {
            "national"
        };
        let size = rng.pick(SIZES);
        base_price[product_id as usize] = 49 + rng.below(1200) as i64;
        let gtin = crate::card::card_number(20, product_id);
        let name = format!(
            "{brand} {} {}",
            crate::import::completejourney::title_case(category),
            size.to_lowercase()
        );
        let active = u8::from(rng.below(100) >= 2);
        writeln!(
            products,
            "{product_id},{name},{gtin},{department},{category},{category},{brand},{brand_type},{size},{active}"
        )?;
        report.products += 1;
    }
    products.flush()?;

    // Each store carries a share of the catalog that grows with its size; the
    // top of the popularity list is everywhere.
    let mut store_products = create(out, "store_products.csv")?;
    writeln!(
        store_products,
        "store_id,product_id,price,stock_qty,location"
    )?;
    let mut carried: Vec<Vec<bool>> = Vec::with_capacity(n_stores as usize);
    for store_id in 1..=n_stores {
        let share = spec.assortment * (0.5 + 0.5 / (store_id as f64).sqrt());
        let mut flags = vec![false; n_products as usize + 1];
        for (rank, product_id) in by_rank.iter().enumerate() {
            let mut rng = SplitMix64::for_key(seed, "carry", store_id << 32 ^ product_id);
            if rank < 500 || rng.unit() < share {
                flags[*product_id as usize] = true;
                let price = base_price[*product_id as usize] + rng.below(40) as i64 - 20;
                let stock = if rng.below(100) < 4 { 0 } else { rng.below(60) };
                writeln!(
                    store_products,
                    "{store_id},{product_id},{},{stock},Aisle {}",
                    money(price.max(19)),
                    1 + rng.below(20)
                )?;
                report.store_products += 1;
            }
        }
        carried.push(flags);
    }
    store_products.flush()?;

    let store_cdf = zipf_cdf(n_stores, 0.8);
    let product_cdf = zipf_cdf(n_products, 1.0);
    let mut members = create(out, "members.csv")?;
    writeln!(
        members,
        "member_id,card_number,given_name,family_name,phone,email,home_store_id,tier,consent_personalization,consent_personalization_at,consent_marketing,consent_marketing_at,enrolled_on,code_public_key"
    )?;
    // Activity weights: log-normal-ish, so a few members shop a lot.
    let weights: Vec<f64> = (1..=spec.members)
        .map(|member_id| {
            let mut rng = SplitMix64::for_key(seed, "activity", member_id);
            let normal: f64 = (0..6).map(|_| rng.unit()).sum::<f64>() - 3.0;
            (normal * 0.9).exp()
        })
        .collect();
    let total_weight: f64 = weights.iter().sum();
    let mut purchases = create(out, "purchases.csv")?;
    writeln!(
        purchases,
        "basket_id,member_id,store_id,purchased_at,line_no,product_id,quantity,sales_value,retail_disc"
    )?;
    let mut basket_id = 0u64;
    let mut lines_left = spec.purchases;
    for member_id in 1..=spec.members {
        let derived = identity::derive(seed, member_id);
        let mut rng = SplitMix64::for_key(seed, "member", member_id);
        let home_store = by_store(draw(&store_cdf, &mut rng));
        let consent_p = u8::from(derived.consent_personalization);
        let consent_m = u8::from(derived.consent_marketing);
        let enrolled = &derived.enrolled_on;
        writeln!(
            members,
            "{member_id},{},{},{},{},{},{home_store},{},{consent_p},{enrolled} 09:00:00,{consent_m},{enrolled} 09:00:00,{enrolled},{}",
            derived.card_number,
            derived.given_name,
            csv_text(&derived.family_name),
            derived.phone,
            derived.email,
            derived.tier,
            // Synthetic members are demo members: their app-code keys derive
            // from the public demo secret (crate::keys).
            hex::encode(
                crate::keys::demo_member_key(member_id as i64)
                    .verifying_key()
                    .as_bytes()
            )
        )?;
        report.members += 1;

        let remaining_members = spec.members - member_id + 1;
        let target = if remaining_members == 1 {
            lines_left
        } else {
            ((spec.purchases as f64) * weights[member_id as usize - 1] / total_weight).round()
                as u64
        }
        .min(lines_left);
        lines_left -= target;
        if target == 0 {
            continue;
        }
        // Staples: (product, cycle in days, next due day).
        let n_staples = 4 + rng.below(20) as usize;
        let mut staples: Vec<(u64, i64, i64)> = (0..n_staples)
            .map(|_| {
                let product_id = by_rank[draw(&product_cdf, &mut rng)];
                let cycle = 5 + rng.below(40) as i64;
                (product_id, cycle, rng.below(cycle as u64) as i64)
            })
            .collect();
        let gap_days = 2 + rng.below(12) as i64;
        let mut day = rng.below(gap_days as u64) as i64;
        let mut written = 0u64;
        while written < target {
            basket_id += 1;
            report.baskets += 1;
            let store_id = if rng.below(100) < 85 {
                home_store
            } else {
                by_store(draw(&store_cdf, &mut rng))
            };
            let seconds =
                (epoch_day() + day % 364) * 86_400 + 8 * 3600 + rng.below(13 * 3600) as i64;
            let at = dates::timestamp_string(seconds);
            let mut line_no = 0u64;
            let mut basket_items: Vec<u64> = Vec::new();
            for staple in &mut staples {
                if staple.2 <= day {
                    basket_items.push(staple.0);
                    staple.2 = day + staple.1 + rng.below(5) as i64 - 2;
                }
            }
            let extras = 1 + rng.below(8);
            for _ in 0..extras {
                basket_items.push(by_rank[draw(&product_cdf, &mut rng)]);
            }
            basket_items.sort_unstable();
            basket_items.dedup();
            for product_id in basket_items {
                if written == target {
                    break;
                }
                let carried_here = carried[store_id as usize - 1][product_id as usize];
                if !carried_here {
                    continue;
                }
                line_no += 1;
                written += 1;
                let quantity = 1 + i64::from(rng.below(10) == 0);
                let price = base_price[product_id as usize];
                let discount = if rng.below(5) == 0 { price / 10 } else { 0 };
                writeln!(
                    purchases,
                    "{basket_id},{member_id},{store_id},{at},{line_no},{product_id},{quantity},{},{}",
                    money(price * quantity - discount),
                    money(discount)
                )?;
            }
            if line_no == 0 {
                // Nothing this store carries: drop the empty trip.
                basket_id -= 1;
                report.baskets -= 1;
            }
            day += 1 + rng.below(2 * gap_days as u64) as i64;
        }
        report.purchase_lines += written;
    }
    members.flush()?;
    purchases.flush()?;

    let mut campaigns = create(out, "campaigns.csv")?;
    let mut campaign_members = create(out, "campaign_members.csv")?;
    let mut coupons = create(out, "coupons.csv")?;
    let mut coupon_products = create(out, "coupon_products.csv")?;
    writeln!(
        campaigns,
        "campaign_id,name,campaign_type,starts_on,ends_on"
    )?;
    writeln!(campaign_members, "campaign_id,member_id")?;
    writeln!(coupons, "coupon_code,campaign_id,description,discount")?;
    writeln!(coupon_products, "coupon_code,campaign_id,product_id")?;
    let n_campaigns = 12u64;
    for campaign_id in 1..=n_campaigns {
        let mut rng = SplitMix64::for_key(seed, "campaign", campaign_id);
        let start = epoch_day() + (campaign_id as i64 - 1) * 28;
        writeln!(
            campaigns,
            "{campaign_id},Campaign {campaign_id},Type {},{},{}",
            ["A", "B", "C"][(campaign_id % 3) as usize],
            dates::date_string(start),
            dates::date_string(start + 41)
        )?;
        report.campaigns += 1;
        let share = 0.02 + rng.unit() * 0.08;
        for member_id in 1..=spec.members {
            if SplitMix64::for_key(seed ^ campaign_id, "target", member_id).unit() < share {
                writeln!(campaign_members, "{campaign_id},{member_id}")?;
            }
        }
        for coupon_idx in 0..20 {
            let code = format!("{}", 50_000_000_000u64 + campaign_id * 1000 + coupon_idx);
            let discount = 50 + rng.below(300) as i64;
            writeln!(
                coupons,
                "{code},{campaign_id},{} off,{}",
                money(discount),
                money(discount)
            )?;
            report.coupons += 1;
            for _ in 0..(1 + rng.below(5)) {
                writeln!(
                    coupon_products,
                    "{code},{campaign_id},{}",
                    by_rank[draw(&product_cdf, &mut rng)]
                )?;
            }
        }
    }
    for mut file in [campaigns, campaign_members, coupons, coupon_products] {
        file.flush()?;
    }
    // Duplicate coupon products (same product drawn twice) are legitimate repeats; the importer
    // treats them as one fact.
    Ok(report)
}

fn by_store(rank: usize) -> u64 {
    rank as u64 + 1
}

/// Quotes a field that contains a comma or a quote.
fn csv_text(text: &str) -> String {
    if text.contains([',', '"']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_is_skewed_and_normalised() {
        let cdf = zipf_cdf(1000, 1.0);
        assert!((cdf[999] - 1.0).abs() < 1e-12);
        // The top 1% of products takes a large share of draws.
        let mut rng = SplitMix64::new(3);
        let top = (0..10_000).filter(|_| draw(&cdf, &mut rng) < 10).count();
        assert!(top > 3000, "{top}");
    }

    #[test]
    fn same_seed_same_bytes_and_exact_line_count() {
        let spec = GenSpec {
            members: 40,
            products: 300,
            purchases: 2_000,
            stores: 3,
            seed: 9,
            assortment: 1.0,
        };
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let report = generate(&spec, a.path()).expect("gen a");
        generate(&spec, b.path()).expect("gen b");
        assert_eq!(report.purchase_lines, 2_000);
        for file in [
            "members.csv",
            "purchases.csv",
            "products.csv",
            "store_products.csv",
            "coupons.csv",
        ] {
            let left = std::fs::read(a.path().join(file)).expect("read");
            let right = std::fs::read(b.path().join(file)).expect("read");
            assert_eq!(left, right, "{file} differs between runs");
        }
        let purchases = std::fs::read_to_string(a.path().join("purchases.csv")).expect("read");
        assert_eq!(purchases.lines().count(), 2_001);
    }

    #[test]
    fn a_narrow_assortment_carries_less_but_always_the_best_sellers() {
        let spec = |assortment| GenSpec {
            members: 40,
            products: 2_000,
            purchases: 500,
            stores: 4,
            seed: 9,
            assortment,
        };
        let wide = tempfile::tempdir().expect("tempdir");
        let narrow = tempfile::tempdir().expect("tempdir");
        let wide = generate(&spec(1.0), wide.path()).expect("wide");
        let report = generate(&spec(0.1), narrow.path()).expect("narrow");
        // 500 best sellers everywhere, about a tenth of the rest.
        assert!(
            report.store_products >= 4 * 500
                && report.store_products < 4 * 500 + wide.store_products / 5,
            "{} of {}",
            report.store_products,
            wide.store_products
        );
    }
}
