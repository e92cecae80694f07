//! Shared helpers of Aisle's integration tests (`tests/tests/it`, and the
//! CLI's, the kiosk's and the tablet's).
//!
//! Every test works in its own temp dir on real SQLite files; nothing here
//! touches the network or `../shared`.

pub mod fixture;
pub mod hq;
pub mod postgres;
pub mod proxy;

use std::path::{Path, PathBuf};

use aisle_core::import::{self, DirSource, ImportError, ImportOptions, ImportReport, NoProgress};
use rusqlite::Connection;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed demo extract of Complete Journey.
pub fn demo_dir() -> PathBuf {
    repo_root().join("assets/demo")
}

/// Options with a fixed clock.
pub fn options() -> ImportOptions {
    ImportOptions {
        now: aisle_core::time::lit::ts("2026-01-01 00:00:00"),
        ..ImportOptions::default()
    }
}

/// The demo as a kiosk replica at `db` (see `build_kiosk_replica`): built
/// once per test process and `now`, then copied (importing the demo and
/// fitting both models costs seconds; a copy, milliseconds).
pub fn kiosk_replica(db: &Path, now: &str) {
    fixture::copy_of(&format!("kiosk-{now}"), db, |path| {
        build_kiosk_replica(path, now);
    });
}

/// Builds the demo kiosk replica: the demo extract, the recommendation
/// model fitted as of `now`, the offer model fitted on the campaigns before
/// 2017-10-01, and campaign 14 (running in late October 2017) open to every
/// member, so demo members get coupons.
fn build_kiosk_replica(db: &Path, now: &str) {
    use aisle_core::offers::model;
    use aisle_core::recommend::artifact;
    let mut conn = aisle_core::replica::open_writer(db).expect("replica");
    import_cj(&mut conn, &demo_dir(), &options()).expect("demo");
    let at = aisle_core::time::lit::ts(now);
    let fitted = artifact::fit_from(&conn, None, 1, at).expect("recommendation model");
    artifact::store(&conn, &fitted).expect("store");
    let offers = model::fit_from(&conn, "2017-10-01").expect("offer model");
    model::store(&conn, &offers, at).expect("store");
    conn.execute(
        "INSERT INTO offer_rules (campaign_id, targeted_only) VALUES (14, 0)",
        [],
    )
    .expect("open campaign");
    // The demo associates, at the store the demo replica serves.
    let store = aisle_core::runtime::choose_store(&conn, None).expect("the demo's store");
    let tx = conn.transaction().expect("tx");
    aisle_core::demo::add_associates(&tx, store, at).expect("associates");
    tx.commit().expect("commit");
}

/// Runs one Complete Journey import in its own transaction, committed only on success.
pub fn import_cj(
    conn: &mut Connection,
    dir: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    import::in_transaction(conn, |tx| {
        import::completejourney::import(tx, &DirSource(dir.to_owned()), options, &mut NoProgress)
    })
}

/// Runs one generic-layout import in its own transaction, committed only on success.
pub fn import_csv(
    conn: &mut Connection,
    dir: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    import::in_transaction(conn, |tx| {
        import::layout::import(tx, &DirSource(dir.to_owned()), options, &mut NoProgress)
    })
}

/// Writes `files` (name, contents) into `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("create dir");
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).expect("write fixture");
    }
}

/// A small, valid dataset in the generic layout.
pub fn small_layout() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "stores.csv",
            "store_id,name,region,timezone\n1,Main Street,North,America/New_York\n2,Harbor,South,America/New_York\n",
        ),
        (
            "products.csv",
            "product_id,name,gtin,department,category,brand,brand_type,package_size\n\
             10,Greek yogurt,4006381333931,DAIRY,YOGURT,Sunvale,national,500 G\n\
             11,Granola,,GROCERY,CEREAL,Store brand,private,1 LB\n\
             12,Blueberries,,PRODUCE,BERRIES,,,\"6 OZ\"\n",
        ),
        (
            "store_products.csv",
            "store_id,product_id,price,stock_qty,location\n1,10,3.49,12,Aisle 4\n1,11,4.99,0,Aisle 7\n2,10,3.29,5,Dairy wall\n",
        ),
        (
            "members.csv",
            "member_id,card_number,given_name,family_name,phone,email,home_store_id,tier,consent_personalization,consent_marketing,enrolled_on\n\
             1,2900000000018,Zoë,Martínez,+1 614-555-0142,zoe.martinez@example.com,1,gold,1,0,2020-03-01\n\
             2,2900000000025,Ben,Okafor,+1 212-555-0199,ben.okafor@example.com,2,standard,0,0,2021-07-15\n",
        ),
        (
            "member_preferences.csv",
            "member_id,kind,value\n1,dietary,vegetarian\n1,brand,Sunvale\n",
        ),
        (
            "campaigns.csv",
            "campaign_id,name,campaign_type,starts_on,ends_on\n1,Spring dairy,Type A,2026-03-01,2026-04-30\n",
        ),
        ("campaign_members.csv", "campaign_id,member_id\n1,1\n"),
        (
            "offer_rules.csv",
            "campaign_id,targeted_only,segment,min_tier,min_affinity,min_spend,per_member_limit,per_store_daily_limit,stacking_group,channels,valid_days,value,cost\n\
             1,1,,silver,1,10.00,2,50,dairy,kiosk,7,1.20,0.05\n",
        ),
        (
            "coupons.csv",
            "coupon_code,campaign_id,description,discount\nC-YOG-1,1,50c off yogurt,0.50\n",
        ),
        (
            "coupon_products.csv",
            "coupon_code,campaign_id,product_id\nC-YOG-1,1,10\n",
        ),
        (
            "purchases.csv",
            "basket_id,member_id,store_id,purchased_at,line_no,product_id,quantity,sales_value,retail_disc\n\
             100,1,1,2026-03-02 10:00:00,1,10,2,6.98,0\n\
             100,1,1,2026-03-02 10:00:00,2,11,1,4.99,0.50\n\
             101,2,2,2026-03-03 18:30:00,1,10,1,3.29,0\n\
             102,,1,2026-03-04 12:00:00,1,12,1,2.50,0\n",
        ),
        (
            "coupon_redemptions.csv",
            "member_id,coupon_code,campaign_id,redeemed_on,store_id\n1,C-YOG-1,1,2026-03-02,1\n",
        ),
    ]
}

/// Every row of every replica table, as text, for before/after comparisons.
pub fn dump(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    for table in aisle_core::stats::TABLES {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .expect("prepare dump");
        let n_columns = stmt.column_count();
        let rows = stmt
            .query_map([], |row| {
                let values: Vec<String> = (0..n_columns)
                    .map(|idx| {
                        format!("{:?}", row.get_ref(idx).map(|v| v.data_type()).ok())
                            + &value_text(row, idx)
                    })
                    .collect();
                Ok(format!("{table}: {}", values.join("|")))
            })
            .expect("query dump");
        for row in rows {
            out.push(row.expect("row"));
        }
    }
    out
}

fn value_text(row: &rusqlite::Row<'_>, idx: usize) -> String {
    use rusqlite::types::ValueRef;
    match row.get_ref(idx) {
        Ok(ValueRef::Null) => "NULL".to_owned(),
        Ok(ValueRef::Integer(i)) => i.to_string(),
        Ok(ValueRef::Real(f)) => f.to_string(),
        Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
        Ok(ValueRef::Blob(b)) => format!("{b:?}"),
        Err(e) => format!("error {e}"),
    }
}

/// The replica file's bytes after every connection is closed (WAL checkpointed away).
pub fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read replica file")
}

/// Reads a gzip CSV file's data lines (header dropped) with a naive comma split:
/// deliberately independent of the importer's CSV reader.
pub fn gz_lines(path: &Path) -> Vec<Vec<String>> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open gz"))
        .read_to_string(&mut text)
        .expect("gunzip");
    text.lines()
        .skip(1)
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}

/// A product's department, category and type in upper case: what the
/// public-screen policy reads (`serve::Policy::public`).
pub fn product_labels(conn: &Connection, product_id: i64) -> String {
    conn.query_row(
        "SELECT upper(coalesce(department, '') || ' ' || coalesce(category, '') || ' ' || coalesce(product_type, ''))
         FROM products WHERE product_id = ?1",
        [product_id],
        |row| row.get(0),
    )
    .expect("product")
}
