//! Importer for Aisle's generic CSV layout (`docs/IMPORT.md`): a retailer's own
//! exports of stores, products, prices and stock, members, purchases,
//! campaigns and coupons.
//!
//! Every file is optional (`NAME.csv` or `NAME.csv.gz`), columns may come in
//! any order, unknown columns are refused (they are usually typos). References
//! are checked against the same import and the replica: a purchase of an
//! unknown product is an error, not a silent orphan. Within one file an id may
//! appear once.

use crate::rng::{IdMap as HashMap, IdSet as HashSet};

use rusqlite::Transaction;

use super::values::{
    Stamp, parse_cents, parse_date, parse_flag, parse_id, parse_int, parse_stamp, parse_timestamp,
};
use super::writer::{Line, Member, MemberWrite, Product, Store, StoreProduct, Writer};
use super::{
    ImportError, ImportOptions, ImportReport, Progress, Row, RowFault, Source, TableSpec, invalid,
    read_rows, read_table,
};
use crate::card;

/// One file of the layout.
#[derive(Debug, Clone, Copy)]
pub struct LayoutFile {
    pub stem: &'static str,
    pub spec: TableSpec,
}

pub const STORES: LayoutFile = LayoutFile {
    stem: "stores",
    spec: TableSpec {
        required: &["store_id", "name"],
        optional: &["region", "timezone"],
    },
};
pub const PRODUCTS: LayoutFile = LayoutFile {
    stem: "products",
    spec: TableSpec {
        required: &["product_id", "name"],
        optional: &[
            "gtin",
            "manufacturer_id",
            "department",
            "category",
            "product_type",
            "brand",
            "brand_type",
            "package_size",
            "active",
        ],
    },
};
pub const STORE_PRODUCTS: LayoutFile = LayoutFile {
    stem: "store_products",
    spec: TableSpec {
        required: &["store_id", "product_id", "price"],
        optional: &["stock_qty", "location", "updated_at"],
    },
};
pub const MEMBERS: LayoutFile = LayoutFile {
    stem: "members",
    spec: TableSpec {
        required: &["member_id"],
        optional: &[
            "card_number",
            "given_name",
            "family_name",
            "display_name",
            "phone",
            "email",
            "home_store_id",
            "tier",
            "consent_personalization",
            "consent_personalization_at",
            "consent_marketing",
            "consent_marketing_at",
            "enrolled_on",
            "code_public_key",
        ],
    },
};
pub const MEMBER_PREFERENCES: LayoutFile = LayoutFile {
    stem: "member_preferences",
    spec: TableSpec {
        required: &["member_id", "kind", "value"],
        optional: &[],
    },
};
pub const CAMPAIGNS: LayoutFile = LayoutFile {
    stem: "campaigns",
    spec: TableSpec {
        required: &["campaign_id", "name", "starts_on", "ends_on"],
        optional: &["campaign_type"],
    },
};
pub const CAMPAIGN_MEMBERS: LayoutFile = LayoutFile {
    stem: "campaign_members",
    spec: TableSpec {
        required: &["campaign_id", "member_id"],
        optional: &[],
    },
};
pub const OFFER_RULES: LayoutFile = LayoutFile {
    stem: "offer_rules",
    spec: TableSpec {
        required: &["campaign_id"],
        optional: &[
            "targeted_only",
            "segment",
            "min_tier",
            "min_affinity",
            "min_spend",
            "per_member_limit",
            "per_store_daily_limit",
            "per_store_limit",
            "stacking_group",
            "channels",
            "valid_days",
            "value",
            "cost",
        ],
    },
};
pub const COUPONS: LayoutFile = LayoutFile {
    stem: "coupons",
    spec: TableSpec {
        required: &["coupon_code", "campaign_id"],
        optional: &["description", "discount", "discount_percent"],
    },
};
pub const COUPON_PRODUCTS: LayoutFile = LayoutFile {
    stem: "coupon_products",
    spec: TableSpec {
        required: &["coupon_code", "campaign_id", "product_id"],
        optional: &[],
    },
};
pub const PURCHASES: LayoutFile = LayoutFile {
    stem: "purchases",
    spec: TableSpec {
        required: &[
            "basket_id",
            "store_id",
            "purchased_at",
            "line_no",
            "product_id",
            "quantity",
            "sales_value",
        ],
        optional: &[
            "member_id",
            "retail_disc",
            "coupon_disc",
            "coupon_match_disc",
        ],
    },
};
pub const COUPON_REDEMPTIONS: LayoutFile = LayoutFile {
    stem: "coupon_redemptions",
    spec: TableSpec {
        required: &["member_id", "coupon_code", "campaign_id", "redeemed_on"],
        optional: &["store_id"],
    },
};

/// Every file, in import order (referenced tables first).
pub const FILES: [LayoutFile; 12] = [
    STORES,
    PRODUCTS,
    STORE_PRODUCTS,
    MEMBERS,
    MEMBER_PREFERENCES,
    CAMPAIGNS,
    CAMPAIGN_MEMBERS,
    OFFER_RULES,
    COUPONS,
    COUPON_PRODUCTS,
    PURCHASES,
    COUPON_REDEMPTIONS,
];

/// The name under which `file` is present in `source` (`.csv` or `.csv.gz`).
fn present(source: &dyn Source, file: &LayoutFile) -> Option<String> {
    [
        format!("{}.csv", file.stem),
        format!("{}.csv.gz", file.stem),
    ]
    .into_iter()
    .find(|name| source.contains(name))
}

/// Ids of one table: what the replica had plus what this import added.
struct Known {
    ids: HashSet<i64>,
}

impl Known {
    fn load(tx: &Transaction<'_>, table: &str, column: &str) -> rusqlite::Result<Self> {
        let mut stmt = tx.prepare(&format!("SELECT {column} FROM {table}"))?;
        let ids = stmt
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(Self { ids })
    }

    fn check(&self, column: &str, what: &str, id: i64) -> Result<(), RowFault> {
        if self.ids.contains(&id) {
            Ok(())
        } else {
            Err(invalid(column, format!("unknown {what} {id}")))
        }
    }
}

/// Refuses an id seen earlier in the same file.
fn once(
    seen: &mut HashMap<i64, u64>,
    column: &str,
    what: &str,
    id: i64,
    line: u64,
) -> Result<(), RowFault> {
    match seen.insert(id, line) {
        Some(first) => {
            seen.insert(id, first);
            Err(invalid(
                column,
                format!("duplicate {what} {id} (first on line {first})"),
            ))
        }
        None => Ok(()),
    }
}

fn coupon_id(writer: &mut Writer<'_>, code: &str, campaign_id: i64) -> Result<i64, RowFault> {
    writer.coupon_id(code, campaign_id)?.ok_or_else(|| {
        invalid(
            "coupon_code",
            format!("unknown coupon {code} in campaign {campaign_id}"),
        )
    })
}

/// One parsed line of `purchases.csv`.
struct Purchase {
    member_id: Option<i64>,
    store_id: i64,
    purchased_at: Stamp,
    line: Line,
}

/// Text to values, with no replica access: runs on the reading thread.
fn parse_purchase(row: &Row<'_>) -> Result<Purchase, RowFault> {
    Ok(Purchase {
        member_id: row.parse_opt("member_id", parse_id)?,
        store_id: row.parse("store_id", parse_id)?,
        purchased_at: row.parse("purchased_at", parse_stamp)?,
        line: Line {
            basket_id: row.parse("basket_id", parse_id)?,
            line_no: row.parse("line_no", parse_id)?,
            product_id: row.parse("product_id", parse_id)?,
            quantity: row.parse("quantity", parse_int)?,
            sales_cents: row.parse("sales_value", parse_cents)?,
            retail_disc_cents: row.parse_opt("retail_disc", parse_cents)?.unwrap_or(0),
            coupon_disc_cents: row.parse_opt("coupon_disc", parse_cents)?.unwrap_or(0),
            coupon_match_disc_cents: row
                .parse_opt("coupon_match_disc", parse_cents)?
                .unwrap_or(0),
        },
    })
}

/// Imports every layout file present in `source` inside `tx`. The caller commits.
#[tracing::instrument(skip_all, fields(source = %source.describe()))]
pub fn import(
    tx: &Transaction<'_>,
    source: &dyn Source,
    options: &ImportOptions,
    progress: &mut dyn Progress,
) -> Result<ImportReport, ImportError> {
    let files: Vec<(LayoutFile, String)> = FILES
        .iter()
        .filter_map(|file| present(source, file).map(|name| (*file, name)))
        .collect();
    if files.is_empty() {
        let expected = FILES
            .iter()
            .map(|f| format!("{}.csv", f.stem))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ImportError::NothingToImport {
            place: source.describe(),
            expected,
        });
    }
    let mut writer = Writer::new(tx)?;
    let mut io = ImportReport::default();
    let mut stores = Known::load(tx, "stores", "store_id")?;
    let mut products = Known::load(tx, "products", "product_id")?;
    let mut members = Known::load(tx, "members", "member_id")?;
    let mut campaigns = Known::load(tx, "campaigns", "campaign_id")?;
    let now = options.now;
    let now_text = now.to_string();
    let mut baskets: HashMap<i64, (Option<i64>, i64, Stamp)> = HashMap::default();

    for (file, name) in &files {
        let mut seen: HashMap<i64, u64> = HashMap::default();
        let name = name.as_str();
        let writer = &mut writer;
        if file.stem == PURCHASES.stem {
            read_table(
                source,
                name,
                &file.spec,
                options,
                progress,
                &mut io,
                parse_purchase,
                |_, purchase| {
                    let Purchase {
                        member_id,
                        store_id,
                        purchased_at,
                        line,
                    } = purchase;
                    let basket_id = line.basket_id;
                    products.check("product_id", "product", line.product_id)?;
                    match baskets.get(&basket_id) {
                        Some(seen) if *seen != (member_id, store_id, purchased_at) => {
                            return Err(invalid(
                                "basket_id",
                                format!(
                                    "basket {basket_id} appears with another member, store or time; one basket is one trip"
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            stores.check("store_id", "store", store_id)?;
                            if let Some(member_id) = member_id {
                                members.check("member_id", "member", member_id)?;
                            }
                            writer.basket(basket_id, member_id, store_id, purchased_at.as_str())?;
                            baskets.insert(basket_id, (member_id, store_id, purchased_at));
                        }
                    }
                    writer.line(&line)?;
                    Ok(())
                },
            )?;
            continue;
        }
        read_rows(
            source,
            name,
            &file.spec,
            options,
            progress,
            &mut io,
            |row| {
                let line = row.line();
                match file.stem {
                    "stores" => {
                        let store_id = row.parse("store_id", parse_id)?;
                        once(&mut seen, "store_id", "store", store_id, line)?;
                        let store = Store {
                            store_id,
                            name: row.required("name")?,
                            region: row.text("region")?,
                            timezone: row.text("timezone")?.unwrap_or("UTC"),
                        };
                        writer.store(&store)?;
                        stores.ids.insert(store_id);
                    }
                    "products" => {
                        let product_id = row.parse("product_id", parse_id)?;
                        once(&mut seen, "product_id", "product", product_id, line)?;
                        let brand_type = match row
                            .text("brand_type")?
                            .map(str::to_ascii_lowercase)
                            .as_deref()
                        {
                            None => None,
                            Some("national") => Some("national"),
                            Some("private") => Some("private"),
                            Some(other) => {
                                return Err(invalid(
                                    "brand_type",
                                    format!("{other:?} is neither national nor private"),
                                ));
                            }
                        };
                        let gtin = row.text("gtin")?;
                        row.parse_opt("gtin", |text| {
                            if (8..=14).contains(&text.len())
                                && text.bytes().all(|b| b.is_ascii_digit())
                            {
                                Ok(())
                            } else {
                                Err(format!("{text:?} is not a GTIN (8 to 14 digits)"))
                            }
                        })?;
                        let product = Product {
                            product_id,
                            name: row.required("name")?,
                            gtin,
                            manufacturer_id: row.parse_opt("manufacturer_id", parse_id)?,
                            department: row.text("department")?,
                            category: row.text("category")?,
                            product_type: row.text("product_type")?,
                            brand: row.text("brand")?,
                            brand_type,
                            package_size: row.text("package_size")?,
                            active: row.parse_opt("active", parse_flag)?.unwrap_or(true),
                        };
                        writer.product(&product)?;
                        products.ids.insert(product_id);
                    }
                    "store_products" => {
                        let store_id = row.parse("store_id", parse_id)?;
                        let product_id = row.parse("product_id", parse_id)?;
                        stores.check("store_id", "store", store_id)?;
                        products.check("product_id", "product", product_id)?;
                        let price_cents = row.parse("price", parse_cents)?;
                        if price_cents < 0 {
                            return Err(invalid("price", "a price cannot be negative"));
                        }
                        let updated_at = row.parse_opt("updated_at", parse_timestamp)?;
                        writer.store_product(&StoreProduct {
                            store_id,
                            product_id,
                            price_cents,
                            stock_qty: row.parse_opt("stock_qty", parse_int)?.unwrap_or(0),
                            location: row.text("location")?,
                            updated_at: updated_at.as_deref().unwrap_or(&now_text),
                        })?;
                    }
                    "members" => {
                        let member_id = row.parse("member_id", parse_id)?;
                        once(&mut seen, "member_id", "member", member_id, line)?;
                        let home_store_id = row.parse_opt("home_store_id", parse_id)?;
                        if let Some(store_id) = home_store_id {
                            stores.check("home_store_id", "store", store_id)?;
                        }
                        let tier = row.text("tier")?.unwrap_or("standard");
                        if !["standard", "silver", "gold", "platinum"].contains(&tier) {
                            return Err(invalid(
                                "tier",
                                format!("{tier:?} is not standard, silver, gold or platinum"),
                            ));
                        }
                        let card_number = row.parse_opt("card_number", |text| {
                            card::validate(text).map_err(|e| e.to_string())
                        })?;
                        let consent_personalization_at =
                            row.parse_opt("consent_personalization_at", parse_timestamp)?;
                        let consent_marketing_at =
                            row.parse_opt("consent_marketing_at", parse_timestamp)?;
                        let enrolled_on = row.parse_opt("enrolled_on", parse_date)?;
                        let given_name = row.text("given_name")?;
                        let family_name = row.text("family_name")?;
                        let joined = match (given_name, family_name) {
                            (Some(g), Some(f)) => Some(format!("{g} {f}")),
                            (g, f) => g.or(f).map(str::to_owned),
                        };
                        let member = Member {
                            member_id,
                            given_name,
                            family_name,
                            display_name: row.text("display_name")?.or(joined.as_deref()),
                            phone: row.text("phone")?,
                            email: row.text("email")?,
                            home_store_id,
                            tier,
                            consent_personalization: row
                                .parse_opt("consent_personalization", parse_flag)?
                                .unwrap_or(false),
                            consent_personalization_at: consent_personalization_at.as_deref(),
                            consent_marketing: row
                                .parse_opt("consent_marketing", parse_flag)?
                                .unwrap_or(false),
                            consent_marketing_at: consent_marketing_at.as_deref(),
                            enrolled_on: enrolled_on.as_deref(),
                        };
                        let code_public_key = row.parse_opt("code_public_key", |text| {
                            crate::keys::parse_strong_public(text)
                                .map(|key| key.to_bytes())
                                .map_err(|err| err.to_string())
                        })?;
                        let write = writer.member(&member, now, false)?;
                        members.ids.insert(member_id);
                        if let (Some(key), false) = (code_public_key, write == MemberWrite::Erased)
                        {
                            writer.member_key(member_id, 1, &key, now, false)?;
                        }
                        if let (Some(card), false) = (card_number, write == MemberWrite::Erased)
                            && let Err(owner) =
                                writer.card(&card, member_id, enrolled_on.as_deref())?
                        {
                            return Err(invalid(
                                "card_number",
                                format!("card {card} already belongs to member {owner}"),
                            ));
                        }
                    }
                    "member_preferences" => {
                        let member_id = row.parse("member_id", parse_id)?;
                        members.check("member_id", "member", member_id)?;
                        let kind = row.required("kind")?;
                        if !["brand", "category", "size", "dietary"].contains(&kind) {
                            return Err(invalid(
                                "kind",
                                format!("{kind:?} is not brand, category, size or dietary"),
                            ));
                        }
                        writer.preference(member_id, kind, row.required("value")?)?;
                    }
                    "campaigns" => {
                        let campaign_id = row.parse("campaign_id", parse_id)?;
                        once(&mut seen, "campaign_id", "campaign", campaign_id, line)?;
                        let starts_on = row.parse("starts_on", parse_date)?;
                        let ends_on = row.parse("ends_on", parse_date)?;
                        if ends_on < starts_on {
                            return Err(invalid(
                                "ends_on",
                                format!("{ends_on} is before starts_on {starts_on}"),
                            ));
                        }
                        let name = row.required("name")?;
                        writer.campaign(
                            campaign_id,
                            name,
                            row.text("campaign_type")?,
                            &starts_on,
                            &ends_on,
                        )?;
                        campaigns.ids.insert(campaign_id);
                    }
                    "offer_rules" => {
                        let campaign_id = row.parse("campaign_id", parse_id)?;
                        once(
                            &mut seen,
                            "campaign_id",
                            "campaign's rules",
                            campaign_id,
                            line,
                        )?;
                        campaigns.check("campaign_id", "campaign", campaign_id)?;
                        writer.offer_rule(campaign_id, &parse_rule(row)?)?;
                    }
                    "campaign_members" => {
                        let campaign_id = row.parse("campaign_id", parse_id)?;
                        let member_id = row.parse("member_id", parse_id)?;
                        campaigns.check("campaign_id", "campaign", campaign_id)?;
                        members.check("member_id", "member", member_id)?;
                        writer.campaign_target(campaign_id, member_id)?;
                    }
                    "coupons" => {
                        let code = row.required("coupon_code")?;
                        let campaign_id = row.parse("campaign_id", parse_id)?;
                        campaigns.check("campaign_id", "campaign", campaign_id)?;
                        let discount_cents = row.parse_opt("discount", parse_cents)?;
                        let discount_percent = row.parse_opt("discount_percent", parse_int)?;
                        if discount_cents.is_some_and(|d| d < 0) {
                            return Err(invalid("discount", "a discount cannot be negative"));
                        }
                        if discount_percent.is_some_and(|p| !(0..=100).contains(&p)) {
                            return Err(invalid(
                                "discount_percent",
                                "a percentage is between 0 and 100",
                            ));
                        }
                        writer.coupon(
                            code,
                            campaign_id,
                            row.text("description")?,
                            discount_cents,
                            discount_percent,
                        )?;
                    }
                    "coupon_products" => {
                        let code = row.required("coupon_code")?;
                        let campaign_id = row.parse("campaign_id", parse_id)?;
                        let product_id = row.parse("product_id", parse_id)?;
                        products.check("product_id", "product", product_id)?;
                        let coupon_id = coupon_id(writer, code, campaign_id)?;
                        writer.coupon_product(coupon_id, product_id)?;
                    }
                    "coupon_redemptions" => {
                        let member_id = row.parse("member_id", parse_id)?;
                        let code = row.required("coupon_code")?;
                        let campaign_id = row.parse("campaign_id", parse_id)?;
                        let redeemed_on = row.parse("redeemed_on", parse_date)?;
                        let store_id = row.parse_opt("store_id", parse_id)?;
                        members.check("member_id", "member", member_id)?;
                        if let Some(store_id) = store_id {
                            stores.check("store_id", "store", store_id)?;
                        }
                        let coupon_id = coupon_id(writer, code, campaign_id)?;
                        let source_key =
                            format!("csv:{member_id}:{code}:{campaign_id}:{redeemed_on}");
                        writer.redemption(
                            &source_key,
                            coupon_id,
                            member_id,
                            store_id,
                            &redeemed_on,
                        )?;
                    }
                    other => unreachable!("layout file {other} has no reader"),
                }
                Ok(())
            },
        )?;
    }
    let mut report = io;
    writer.add_counts(&mut report);
    Ok(report)
}

/// An `offer_rules` row: every column checked, absent ones the defaults.
fn parse_rule(row: &Row<'_>) -> Result<crate::offers::rules::Rule, RowFault> {
    use crate::offers::rules::{Channel, Rule, SEGMENT_COLUMNS, TIERS};
    let defaults = Rule::default();
    let at_least = |column: &'static str, min: i64| {
        row.parse_opt(column, |text| {
            let n = parse_int(text)?;
            if n < min {
                Err(format!("{n} is below {min}"))
            } else {
                Ok(n)
            }
        })
    };
    let money = |column: &'static str| {
        row.parse_opt(column, |text| {
            let cents = parse_cents(text)?;
            if cents < 0 {
                Err("cannot be negative".to_owned())
            } else {
                Ok(cents)
            }
        })
    };
    let segment = row.parse_opt("segment", |text| match text.split_once('=') {
        Some((column, value))
            if SEGMENT_COLUMNS.contains(&column.trim()) && !value.trim().is_empty() =>
        {
            Ok((column.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!(
            "{text:?} is not column=value over {}",
            SEGMENT_COLUMNS.join(", ")
        )),
    })?;
    let min_tier = row.parse_opt("min_tier", |text| {
        TIERS
            .iter()
            .find(|t| t.eq_ignore_ascii_case(text))
            .map(|t| (*t).to_owned())
            .ok_or_else(|| format!("{text:?} is not a tier ({})", TIERS.join(", ")))
    })?;
    let channels = row
        .parse_opt("channels", |text| {
            let mut channels = Vec::new();
            for part in text.split([',', ' ']).filter(|p| !p.is_empty()) {
                let channel = Channel::parse(part)
                    .ok_or_else(|| format!("{part:?} is not a channel (kiosk, associate)"))?;
                if !channels.contains(&channel) {
                    channels.push(channel);
                }
            }
            if channels.is_empty() {
                Err("no channel: an offer nobody can issue".to_owned())
            } else {
                Ok(channels)
            }
        })?
        .unwrap_or(defaults.channels);
    let valid_days = row.parse_opt("valid_days", |text| {
        let n = parse_int(text)?;
        if (1..=366).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} is not between 1 and 366"))
        }
    })?;
    Ok(Rule {
        targeted_only: row
            .parse_opt("targeted_only", parse_flag)?
            .unwrap_or(defaults.targeted_only),
        segment,
        min_tier,
        min_affinity: at_least("min_affinity", 0)?.map_or(0, |n| n.min(i64::from(u32::MAX)) as u32),
        min_spend_cents: money("min_spend")?.unwrap_or(0),
        per_member_limit: at_least("per_member_limit", 1)?.unwrap_or(defaults.per_member_limit),
        per_store_daily_limit: at_least("per_store_daily_limit", 0)?,
        per_store_limit: at_least("per_store_limit", 0)?,
        stacking_group: row.text("stacking_group")?.map(str::to_owned),
        channels,
        valid_days: valid_days.unwrap_or(defaults.valid_days),
        value_cents: money("value")?,
        cost_cents: money("cost")?.unwrap_or(0),
    })
}
