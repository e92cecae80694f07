//! Import into real replica files: correctness against independent counts,
//! idempotence, all-or-nothing on every kind of bad input, skip-invalid,
//! schema upgrades, privacy of erased members, and search.

use aisle_core::time::lit::ts;
use std::collections::HashSet;
use std::path::Path;

use aisle_core::import::{ImportError, ImportOptions};
use aisle_core::members::{self, MemberKey};
use aisle_core::replica;
use aisle_tests::*;
use rusqlite::Connection;

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |row| row.get(0)).expect(sql)
}

#[test]
fn demo_extract_imports_row_for_row() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    let report = import_cj(&mut conn, &demo_dir(), &options()).expect("import");
    assert!(report.rejects.is_empty());

    let dir = demo_dir();
    let products = gz_lines(&dir.join("products.csv.gz"));
    let transactions = gz_lines(&dir.join("transactions.csv.gz"));
    let demographics = gz_lines(&dir.join("demographics.csv.gz"));
    let targets = gz_lines(&dir.join("campaigns.csv.gz"));
    let coupons = gz_lines(&dir.join("coupons.csv.gz"));
    let redemptions = gz_lines(&dir.join("coupon_redemptions.csv.gz"));
    let descriptions = gz_lines(&dir.join("campaign_descriptions.csv.gz"));

    let households: HashSet<&str> = transactions
        .iter()
        .map(|r| r[0].as_str())
        .chain(demographics.iter().map(|r| r[0].as_str()))
        .chain(targets.iter().map(|r| r[1].as_str()))
        .chain(redemptions.iter().map(|r| r[0].as_str()))
        .collect();
    let baskets: HashSet<&str> = transactions.iter().map(|r| r[2].as_str()).collect();
    let stores: HashSet<&str> = transactions.iter().map(|r| r[1].as_str()).collect();
    let coupon_keys: HashSet<(&str, &str)> = coupons
        .iter()
        .map(|r| (r[0].as_str(), r[2].as_str()))
        .collect();
    let coupon_lines: HashSet<&Vec<String>> = coupons.iter().collect();
    // A shelf price is observed where a positive quantity was sold.
    let store_products: HashSet<(&str, &str)> = transactions
        .iter()
        .filter(|r| r[4] != "0")
        .map(|r| (r[1].as_str(), r[3].as_str()))
        .collect();

    let expect = [
        ("SELECT count(*) FROM members", households.len()),
        ("SELECT count(*) FROM member_cards", households.len()),
        // Each demo household gets its derived app-code key.
        ("SELECT count(*) FROM member_keys", households.len()),
        (
            "SELECT count(*) FROM member_demographics",
            demographics.len(),
        ),
        ("SELECT count(*) FROM products", products.len()),
        ("SELECT count(*) FROM stores", stores.len()),
        ("SELECT count(*) FROM baskets", baskets.len()),
        ("SELECT count(*) FROM purchase_lines", transactions.len()),
        ("SELECT count(*) FROM campaigns", descriptions.len()),
        ("SELECT count(*) FROM campaign_targets", targets.len()),
        ("SELECT count(*) FROM coupons", coupon_keys.len()),
        ("SELECT count(*) FROM coupon_products", coupon_lines.len()),
        ("SELECT count(*) FROM coupon_redemptions", redemptions.len()),
        ("SELECT count(*) FROM store_products", store_products.len()),
    ];
    for (sql, n) in expect {
        assert_eq!(count(&conn, sql), n as i64, "{sql}");
    }
    let (member_id, key): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT member_id, public_key FROM member_keys ORDER BY member_id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("a key");
    assert_eq!(
        key,
        aisle_core::keys::demo_member_key(member_id)
            .verifying_key()
            .as_bytes()
    );

    // Every transaction line, value for value.
    let mut stmt = conn
        .prepare(
            "SELECT b.member_id, b.store_id, b.purchased_at, l.quantity, l.sales_cents, l.retail_disc_cents,
                    l.coupon_disc_cents, l.coupon_match_disc_cents
             FROM purchase_lines AS l JOIN baskets AS b USING (basket_id)
             WHERE l.basket_id = ?1 AND l.product_id = ?2",
        )
        .expect("prepare");
    let cents = |text: &str| (text.parse::<f64>().expect("number") * 100.0).round() as i64;
    for row in &transactions {
        let got: (i64, i64, String, i64, i64, i64, i64, i64) = stmt
            .query_row(
                [
                    row[2].parse::<i64>().expect("basket"),
                    row[3].parse::<i64>().expect("product"),
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )
            .unwrap_or_else(|e| panic!("line {row:?} missing: {e}"));
        let want = (
            row[0].parse().expect("household"),
            row[1].parse().expect("store"),
            eastern_2017(&row[10]),
            row[4].parse().expect("quantity"),
            cents(&row[5]),
            cents(&row[6]),
            cents(&row[7]),
            cents(&row[8]),
        );
        assert_eq!(got, want, "transaction {row:?}");
    }
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );
}

/// The data's UTC timestamps in US Eastern time, for 2017 only: written
/// independently of aisle-core's calendar code (daylight saving time from
/// 2017-03-12 07:00 UTC to 2017-11-05 06:00 UTC).
fn eastern_2017(utc: &str) -> String {
    assert!(utc.starts_with("2017-"), "{utc}");
    let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let number = |range: std::ops::Range<usize>| utc[range].parse::<i64>().expect("digits");
    let (month, day) = (number(5..7), number(8..10));
    let day_of_year = month_days[..(month - 1) as usize].iter().sum::<i64>() + day - 1;
    let hour_of_year = day_of_year * 24 + number(11..13);
    let (dst_start, dst_end) = ((31 + 28 + 11) * 24 + 7, (304 + 4) * 24 + 6);
    let local = hour_of_year
        - if (dst_start..dst_end).contains(&hour_of_year) {
            4
        } else {
            5
        };
    let (mut local_day, local_hour) = (local.div_euclid(24), local.rem_euclid(24));
    let mut local_month = 0;
    while local_day >= month_days[local_month] {
        local_day -= month_days[local_month];
        local_month += 1;
    }
    format!(
        "2017-{:02}-{:02} {local_hour:02}{}",
        local_month + 1,
        local_day + 1,
        &utc[13..]
    )
}

#[test]
fn reimport_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    let first = import_cj(&mut conn, &demo_dir(), &options()).expect("first import");
    assert!(first.written() > 100_000);
    let before = dump(&conn);
    let later = ImportOptions {
        now: ts("2027-06-01 00:00:00"),
        ..options()
    };
    let second = import_cj(&mut conn, &demo_dir(), &later).expect("second import");
    assert_eq!(second.written(), 0, "{:?}", second.tables);
    assert_eq!(dump(&conn), before);

    let layout = tmp.path().join("layout");
    write_files(&layout, &small_layout());
    import_csv(&mut conn, &layout, &options()).expect("csv import");
    let before = dump(&conn);
    let again = import_csv(&mut conn, &layout, &later).expect("csv again");
    assert_eq!(again.written(), 0, "{:?}", again.tables);
    assert_eq!(dump(&conn), before);
}

/// Runs an import that must fail on a replica that already holds the small
/// layout, and checks the replica file is byte-for-byte what it was.
fn assert_refused(files: &[(&str, &str)], cj: bool, check: impl Fn(&ImportError)) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("r.db");
    {
        let mut conn = replica::open_writer(&db).expect("open");
        let good = tmp.path().join("good");
        write_files(&good, &small_layout());
        import_csv(&mut conn, &good, &options()).expect("good import");
    }
    let before = file_bytes(&db);
    let bad = tmp.path().join("bad");
    write_files(&bad, files);
    {
        let mut conn = replica::open_writer(&db).expect("reopen");
        let result = if cj {
            import_cj(&mut conn, &bad, &options())
        } else {
            import_csv(&mut conn, &bad, &options())
        };
        let error = result.expect_err("bad input must be refused");
        check(&error);
    }
    assert!(file_bytes(&db) == before, "the replica changed");
}

fn with(name: &'static str, contents: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut files: Vec<_> = small_layout()
        .into_iter()
        .filter(|(n, _)| *n != name)
        .collect();
    files.push((name, contents));
    files
}

#[test]
fn wrong_header_is_refused_with_the_columns() {
    assert_refused(
        &with("products.csv", "prodct_id,name\n10,Yogurt\n"),
        false,
        |e| {
            let text = e.to_string();
            assert!(
                matches!(e, ImportError::Header { file, .. } if file == "products.csv"),
                "{text}"
            );
            assert!(text.contains("missing column(s) product_id"), "{text}");
            assert!(text.contains("unknown column(s) prodct_id"), "{text}");
        },
    );
}

#[test]
fn non_numeric_id_names_line_and_column() {
    let members = "member_id,given_name\n1,Zoë\nabc,Ben\n";
    assert_refused(&with("members.csv", members), false, |e| {
        assert!(
            matches!(e, ImportError::Row { file, line: 3, column, reason }
                if file == "members.csv" && column == "member_id" && reason.contains("\"abc\" is not a whole number")),
            "{e}"
        );
    });
}

#[test]
fn unknown_product_in_a_purchase_is_refused() {
    let purchases = "basket_id,member_id,store_id,purchased_at,line_no,product_id,quantity,sales_value\n\
                     200,1,1,2026-03-05 09:00:00,1,10,1,3.49\n\
                     200,1,1,2026-03-05 09:00:00,2,999,1,1.00\n";
    assert_refused(&with("purchases.csv", purchases), false, |e| {
        assert!(
            matches!(e, ImportError::Row { line: 3, column, reason, .. }
                if column == "product_id" && reason == "unknown product 999"),
            "{e}"
        );
    });
}

#[test]
fn duplicate_member_is_refused() {
    let members = "member_id,given_name\n5,Ana\n6,Bo\n5,Ana again\n";
    assert_refused(&with("members.csv", members), false, |e| {
        assert!(
            matches!(e, ImportError::Row { line: 4, column, reason, .. }
                if column == "member_id" && reason == "duplicate member 5 (first on line 2)"),
            "{e}"
        );
    });
}

#[test]
fn empty_file_is_refused() {
    assert_refused(&with("members.csv", ""), false, |e| {
        assert!(
            matches!(e, ImportError::Empty { file, .. } if file == "members.csv"),
            "{e}"
        );
    });
}

/// Offer rules load whole and checked; each bad value is named.
#[test]
fn offer_rules_import_checked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    let layout = tmp.path().join("layout");
    write_files(&layout, &small_layout());
    import_csv(&mut conn, &layout, &options()).expect("csv import");
    use aisle_core::offers::rules::{Channel, Rule};
    let rule = Rule::load(&conn, 1).expect("rule");
    assert_eq!(
        rule,
        Rule {
            targeted_only: true,
            segment: None,
            min_tier: Some("silver".into()),
            min_affinity: 1,
            min_spend_cents: 1_000,
            per_member_limit: 2,
            per_store_daily_limit: Some(50),
            per_store_limit: None,
            stacking_group: Some("dairy".into()),
            channels: vec![Channel::Kiosk],
            valid_days: 7,
            value_cents: Some(120),
            cost_cents: 5,
        }
    );
    let header = "campaign_id,segment,min_tier,channels,valid_days,per_member_limit\n";
    for (row, column, needle) in [
        ("1,income=high,,,,", "segment", "not column=value"),
        ("1,,diamond,,,", "min_tier", "not a tier"),
        ("1,,,kiosk;till,,", "channels", "not a channel"),
        ("1,,,,400,", "valid_days", "between 1 and 366"),
        ("1,,,,,0", "per_member_limit", "below 1"),
        ("9,,,,,", "campaign_id", "unknown campaign"),
    ] {
        let body: &'static str = Box::leak(format!("{header}{row}\n").into_boxed_str());
        assert_refused(&with("offer_rules.csv", body), false, |e| {
            assert!(
                matches!(e, ImportError::Row { column: c, reason, .. } if c == column && reason.contains(needle)),
                "{row}: {e}"
            );
        });
    }
}

#[test]
fn ragged_row_and_bad_values_are_refused() {
    assert_refused(
        &with("stores.csv", "store_id,name\n3,Pier\n4\n"),
        false,
        |e| {
            assert!(
                matches!(e, ImportError::Row { line: 3, reason, .. } if reason.contains("1 fields, the header has 2")),
                "{e}"
            );
        },
    );
    let bad_card = "member_id,card_number\n7,2900000000019\n";
    assert_refused(&with("members.csv", bad_card), false, |e| {
        assert!(
            matches!(e, ImportError::Row { column, reason, .. } if column == "card_number" && reason.contains("check digit")),
            "{e}"
        );
    });
    for bad_key in ["abcd", &"00".repeat(32), &"zz".repeat(32)] {
        let members = format!("member_id,code_public_key\n7,{bad_key}\n");
        let members: &'static str = Box::leak(members.into_boxed_str());
        assert_refused(&with("members.csv", members), false, |e| {
            assert!(
                matches!(e, ImportError::Row { column, .. } if column == "code_public_key"),
                "{e}"
            );
        });
    }
}

#[test]
fn truncated_gzip_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cj");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for entry in std::fs::read_dir(demo_dir()).expect("demo") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
    }
    let path = dir.join("transactions.csv.gz");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let db = tmp.path().join("r.db");
    drop(replica::open_writer(&db).expect("create"));
    let before = file_bytes(&db);
    {
        let mut conn = replica::open_writer(&db).expect("open");
        let error = import_cj(&mut conn, &dir, &options()).expect_err("truncated");
        assert!(
            matches!(&error, ImportError::Compressed { file, line, .. } if file == "transactions.csv.gz" && *line > 1000),
            "{error}"
        );
    }
    assert!(file_bytes(&db) == before);
    let missing = tmp.path().join("nothing");
    std::fs::create_dir_all(&missing).expect("mkdir");
    let mut conn = replica::open_writer(&db).expect("open");
    assert!(matches!(
        import_cj(&mut conn, &missing, &options()),
        Err(ImportError::MissingFile { .. })
    ));
    assert!(matches!(
        import_csv(&mut conn, &missing, &options()),
        Err(ImportError::NothingToImport { .. })
    ));
}

#[test]
fn skip_invalid_sets_rows_aside_and_keeps_the_rest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("layout");
    let purchases = "basket_id,member_id,store_id,purchased_at,line_no,product_id,quantity,sales_value\n\
                     300,1,1,2026-03-06 09:00:00,1,10,1,3.49\n\
                     300,1,1,2026-03-06 09:00:00,2,999,1,1.00\n\
                     301,2,2,2026-03-06 10:00:00,1,10,one,3.29\n\
                     302,2,2,2026-03-07 10:00:00,1,11,1,4.99\n";
    write_files(&dir, &with("purchases.csv", purchases));
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    let strict = import_csv(&mut conn, &dir, &options());
    assert!(strict.is_err());
    let lenient = ImportOptions {
        skip_invalid: true,
        ..options()
    };
    let report = import_csv(&mut conn, &dir, &lenient).expect("lenient import");
    let rejected: Vec<(u64, &str)> = report
        .rejects
        .iter()
        .map(|r| (r.line, r.column.as_str()))
        .collect();
    assert_eq!(rejected, vec![(3, "product_id"), (4, "quantity")]);
    assert!(report.rejects[1].raw.contains("one"));
    assert_eq!(count(&conn, "SELECT count(*) FROM purchase_lines"), 2);
    let mut out = Vec::new();
    aisle_core::import::write_rejects(&report.rejects, &mut out).expect("write");
    let text = String::from_utf8(out).expect("utf8");
    assert!(
        text.starts_with(
            "file,line,column,reason,raw\npurchases.csv,3,product_id,unknown product 999,"
        ),
        "{text}"
    );
}

#[test]
fn erased_member_is_not_resurrected_by_import() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("layout");
    write_files(&dir, &small_layout());
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    import_csv(&mut conn, &dir, &options()).expect("import");
    assert_eq!(members::search(&conn, "zoe", 10).expect("search").len(), 1);
    conn.execute_batch(
        "UPDATE members SET given_name = NULL, family_name = NULL, display_name = NULL, phone = NULL,
                email = NULL, erased_at = '2026-05-01 00:00:00' WHERE member_id = 1;
         DELETE FROM member_cards WHERE member_id = 1;",
    )
    .expect("erase");
    import_csv(&mut conn, &dir, &options()).expect("re-import");
    let profile = members::profile(&conn, 1).expect("profile");
    assert_eq!(profile.display_name, None);
    assert!(profile.cards.is_empty());
    assert!(
        members::search(&conn, "zoe", 10)
            .expect("search")
            .is_empty()
    );
    assert!(
        members::search(&conn, "2900000000018", 10)
            .expect("search")
            .is_empty()
    );
}

fn search_ids(conn: &Connection, text: &str) -> Vec<i64> {
    members::search(conn, text, 10)
        .expect("search")
        .into_iter()
        .map(|h| h.member_id)
        .collect()
}

#[test]
fn search_finds_members_by_partial_name_card_phone_and_email() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("layout");
    write_files(&dir, &small_layout());
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    import_csv(&mut conn, &dir, &options()).expect("import");
    for (text, expect) in [
        ("zo", vec![1]),
        ("Zoe mart", vec![1]),
        ("MARTÍNEZ", vec![1]),
        ("okaf", vec![2]),
        ("29000000000", vec![1, 2]),
        ("2900000000025", vec![2]),
        ("555-0142", vec![1]),
        ("6145550142", vec![1]),
        ("0199", vec![2]),
        ("ben.okafor@", vec![2]),
        ("zoe.martinez@example.com", vec![1]),
        ("nobody", vec![]),
        ("", vec![]),
    ] {
        let mut got = search_ids(&conn, text);
        got.sort_unstable();
        assert_eq!(got, expect, "search {text:?}");
    }
    // Look-up by card validates before it reads.
    assert_eq!(
        members::find(&conn, &MemberKey::parse("2900000000018").expect("card")).expect("find"),
        Some(1)
    );
    assert!(MemberKey::parse("2900000000017").is_err());
}

#[test]
fn replicas_of_every_earlier_schema_upgrade() {
    for version in 0..replica::latest_version() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let db = tmp.path().join("old.db");
        {
            let conn = replica::open_writer_at_version(&db, version).expect("old replica");
            assert_eq!(replica::schema_version(&conn).expect("version"), version);
            if version >= 1 {
                conn.execute_batch(
                    "INSERT INTO stores (store_id, name) VALUES (1, 'Main Street');
                     INSERT INTO members (member_id, given_name, family_name, phone, email, home_store_id, updated_at)
                     VALUES (1, 'Ada', 'Lovelace', '+1 212-555-0100', 'ada@example.com', 1, '2020-01-01 00:00:00');
                     INSERT INTO member_cards (card_number, member_id) VALUES ('2900000000018', 1);",
                )
                .expect("old data");
            }
        }
        let conn = replica::open_writer(&db).expect("upgrade");
        assert_eq!(
            replica::schema_version(&conn).expect("version"),
            replica::latest_version()
        );
        if version >= 1 {
            assert_eq!(
                search_ids(&conn, "ada lov"),
                vec![1],
                "from version {version}"
            );
            assert_eq!(search_ids(&conn, "2900000000018"), vec![1]);
            // Phones stored before the look-up column existed are found by it.
            let us = aisle_core::identify::phone::CallingCode::default();
            let found = aisle_core::identify::lookup::lookup(&conn, "(212) 555 0100", &us, 10)
                .expect("lookup");
            assert_eq!(
                found.iter().map(|h| h.member_id).collect::<Vec<_>>(),
                vec![1],
                "from version {version}"
            );
        }
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(integrity, "ok");
    }
}

#[test]
fn demo_source_embeds_the_committed_files() {
    for (name, bytes) in aisle_core::demo::FILES {
        let on_disk = std::fs::read(demo_dir().join(name)).expect("demo file");
        assert!(on_disk == *bytes, "{name} differs from the embedded copy");
    }
    let total: usize = std::fs::read_dir(demo_dir())
        .expect("demo dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "gz"))
        .map(|e| e.metadata().map_or(0, |m| m.len() as usize))
        .sum();
    assert!(total < 3 * 1024 * 1024, "demo data is {total} bytes");
    let _ = Path::new("");
}

/// What a coupon is for and what it is worth, derived at import
/// (docs/IMPORT.md), checked against the raw files for every coupon.
#[test]
fn every_coupon_says_what_it_is_for_and_what_it_is_worth() {
    use std::collections::HashMap;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut conn = replica::open_writer(&tmp.path().join("r.db")).expect("open");
    import_cj(&mut conn, &demo_dir(), &options()).expect("import");
    let dir = demo_dir();
    // products: product_id, manufacturer_id, department, brand, product_category, product_type, package_size
    let mut label: HashMap<i64, String> = HashMap::new();
    for row in gz_lines(&dir.join("products.csv.gz")) {
        let text = [&row[5], &row[4], &row[2]]
            .into_iter()
            .find(|t| !t.is_empty())
            .cloned()
            .unwrap_or_default();
        label.insert(row[0].parse().expect("id"), text);
    }
    // transactions: ..., product_id (3), ..., coupon_disc (7), ...
    let mut bought: HashMap<i64, u64> = HashMap::new();
    let mut discounts: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in gz_lines(&dir.join("transactions.csv.gz")) {
        let product: i64 = row[3].parse().expect("product");
        *bought.entry(product).or_default() += 1;
        let cents = (row[7].parse::<f64>().expect("coupon_disc") * 100.0).round() as i64;
        if cents > 0 {
            discounts.entry(product).or_default().push(cents);
        }
    }
    // coupons: coupon_upc, product_id, campaign_id
    let mut products: HashMap<(String, i64), Vec<i64>> = HashMap::new();
    for row in gz_lines(&dir.join("coupons.csv.gz")) {
        let product: i64 = row[1].parse().expect("product");
        if label.contains_key(&product) {
            let list = products
                .entry((row[0].clone(), row[2].parse().expect("campaign")))
                .or_default();
            if !list.contains(&product) {
                list.push(product);
            }
        }
    }
    let rows: Vec<(String, i64, Option<String>, Option<i64>)> = conn
        .prepare("SELECT code, campaign_id, description, discount_cents FROM coupons")
        .expect("prepare")
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    assert!(rows.len() > 100);
    let mut valued = 0;
    for (code, campaign, description, value) in rows {
        let list = &products[&(code.clone(), campaign)];
        let top = list
            .iter()
            .max_by_key(|p| (bought.get(p).copied().unwrap_or(0), -**p))
            .expect("a product");
        let name = aisle_core::import::completejourney::title_case(&label[top]);
        let expected = match list.len() {
            1 => format!("Save on {name}"),
            n => format!("Save on {name} and {} more", n - 1),
        };
        assert_eq!(
            description.as_deref(),
            Some(expected.as_str()),
            "coupon {code}"
        );
        let mut seen: Vec<i64> = list
            .iter()
            .flat_map(|p| discounts.get(p).into_iter().flatten().copied())
            .collect();
        seen.sort_unstable();
        let median = (!seen.is_empty()).then(|| seen[seen.len() / 2]);
        assert_eq!(value, median, "coupon {code}");
        valued += usize::from(value.is_some());
    }
    assert!(valued > 100, "most coupons get a value: {valued}");
}
