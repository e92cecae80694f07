//! HQ on PostgreSQL in tests: with `AISLE_TEST_POSTGRES` set to a cluster's
//! maintenance database (`cargo xtask test` starts a throwaway cluster and
//! sets it), every [`crate::hq::TestHq`] runs on a database of its own,
//! cloned from a template holding the demo extract (built once per cluster).

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the test cluster (`postgres://postgres@localhost/postgres?host=DIR`).
pub const VAR: &str = "AISLE_TEST_POSTGRES";

/// The template database holding HQ's schema and the demo extract.
const DEMO_TEMPLATE: &str = "aisle_demo_template";

/// The cluster's maintenance URL, when tests run on PostgreSQL.
pub fn cluster() -> Option<String> {
    std::env::var(VAR).ok().filter(|url| !url.is_empty())
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let host_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[host_end..]
        .find('/')
        .map_or(base.len(), |i| host_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn admin(cluster: &str) -> postgres::Client {
    postgres::Client::connect(cluster, postgres::NoTls).expect("connect to the test cluster")
}

/// A new database for one test, cloned from the demo template (built first
/// if this cluster has none); its URL.
pub fn demo_database(cluster: &str) -> String {
    let mut client = admin(cluster);
    // One builder at a time across test processes.
    client
        .execute("SELECT pg_advisory_lock(4242)", &[])
        .expect("template lock");
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&DEMO_TEMPLATE],
        )
        .expect("pg_database")
        .is_some();
    if !exists {
        let building = format!("{DEMO_TEMPLATE}_building");
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {building}"))
            .expect("drop a half-built template");
        client
            .batch_execute(&format!("CREATE DATABASE {building}"))
            .expect("create the template");
        {
            let storage = aisle_hq::postgres::PgStorage::open(&with_database(cluster, &building))
                .expect("HQ schema on the template");
            use aisle_hq::storage::Storage;
            storage
                .import(
                    aisle_hq::storage::Importer::CompleteJourney,
                    &aisle_core::demo::source(),
                    &aisle_core::import::ImportOptions::default(),
                )
                .expect("import demo at HQ");
        }
        client
            .batch_execute(&format!(
                "ALTER DATABASE {building} RENAME TO {DEMO_TEMPLATE}"
            ))
            .expect("the template ready");
    }
    let name = new_name();
    client
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {DEMO_TEMPLATE}"))
        .expect("a test database");
    client
        .execute("SELECT pg_advisory_unlock(4242)", &[])
        .expect("template unlock");
    with_database(cluster, &name)
}

/// An empty database for one test; its URL.
pub fn empty_database(cluster: &str) -> String {
    let name = new_name();
    admin(cluster)
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("a test database");
    with_database(cluster, &name)
}

fn new_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops a test's database (its connections closed first).
pub fn drop_database(cluster: &str, url: &str) {
    let Some(name) = url
        .split('?')
        .next()
        .and_then(|base| base.rsplit('/').next())
    else {
        return;
    };
    let mut client = admin(cluster);
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .ok();
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .ok();
}

/// Appends a raw change to HQ's feed on PostgreSQL, as a faulty or lying
/// HQ would (tests of a store's defences).
pub fn inject_change(url: &str, scope: &str, store_id: Option<i64>, body: &str, at: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let mut tx = client.transaction().expect("tx");
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&aisle_hq::postgres::FEED_LOCK],
    )
    .expect("feed lock");
    tx.execute(
        "INSERT INTO changes (seq, scope, store_id, member_id, body, at)
         VALUES (nextval('changes_seq'), $1, $2, NULL, $3, $4)",
        &[&scope, &store_id, &body, &at],
    )
    .expect("insert");
    tx.commit().expect("commit");
}

/// Rows of a query on a test database (for what a test reads often).
pub fn query<T>(url: &str, sql: &str, each: impl Fn(&postgres::Row) -> T) -> Vec<T> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .query(sql, &[])
        .expect("query")
        .iter()
        .map(each)
        .collect()
}

/// A SQLite file at `path` (HQ's schema) holding `tables` of a test
/// database, read in one snapshot; a connection to it.
pub fn sqlite_copy(url: &str, path: &std::path::Path, tables: &[&str]) -> rusqlite::Connection {
    drop(aisle_hq::sqlite::open(path).expect("a SQLite copy"));
    let conn = aisle_core::replica::connect(path).expect("open the copy");
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("HQ's database");
    let mut pg = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .expect("a snapshot");
    let tx = conn.unchecked_transaction().expect("tx");
    aisle_hq::postgres::export_to_sqlite(&mut pg, &tx, tables).expect("copy HQ's data");
    tx.commit().expect("commit");
    conn
}
