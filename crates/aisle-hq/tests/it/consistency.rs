//! Two HQ instances on one PostgreSQL database, eight admin writers and 50
//! stores at once, checked the Jepsen way: every change a store received,
//! in order, against HQ's feed for that store afterwards (lost, duplicated,
//! reordered and phantom changes reported), and every store's replica
//! against its partition at HQ. One instance is killed (SIGKILL) in the
//! middle of some rounds and restarted. Runs where `AISLE_TEST_POSTGRES`
//! names a cluster (`cargo xtask test`'s second pass).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aisle_core::rng::SplitMix64;
use aisle_core::sync::{Credentials, SyncOptions, Transport};
use aisle_proto::{DeviceCredentials, DeviceKind, DeviceRegistration, paths};

const STORES: usize = 50;
const WRITERS: usize = 8;
const ROUNDS: u64 = 20;
const WRITES_PER_WRITER: u64 = 12;
const TOKEN: &str = "consistency-admin-0123456789abcdef0123456789abcdef";

/// What a checker found in one store's history.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// In HQ's feed for the store, never received.
    pub lost: Vec<String>,
    /// Received more often than HQ's feed holds it.
    pub duplicated: Vec<String>,
    /// Received in another order than HQ's feed holds them.
    pub reordered: Vec<(String, String)>,
    /// Received, yet nowhere in HQ's feed.
    pub phantom: Vec<String>,
}

impl Anomalies {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Compares what a store received (every batch's changes, concatenated) with
/// HQ's feed for the store read whole afterwards.
pub fn check(received: &[String], feed: &[String]) -> Anomalies {
    fn count(list: &[String]) -> HashMap<&str, usize> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for item in list {
            *counts.entry(item.as_str()).or_default() += 1;
        }
        counts
    }
    let mut anomalies = Anomalies::default();
    let (got, want) = (count(received), count(feed));
    for (item, n) in &want {
        let have = got.get(item).copied().unwrap_or(0);
        if have < *n {
            anomalies.lost.push((*item).to_owned());
        }
    }
    for (item, n) in &got {
        match want.get(item) {
            None => anomalies.phantom.push((*item).to_owned()),
            Some(m) if n > m => anomalies.duplicated.push((*item).to_owned()),
            Some(_) => {}
        }
    }
    // Order: the received items HQ holds, first occurrences, against HQ's order.
    let mut seen = HashMap::new();
    let ordered: Vec<&str> = received
        .iter()
        .filter(|item| want.contains_key(item.as_str()))
        .filter(|item| seen.insert(item.as_str(), ()).is_none())
        .map(String::as_str)
        .collect();
    let position: HashMap<&str, usize> = feed
        .iter()
        .enumerate()
        .rev()
        .map(|(idx, item)| (item.as_str(), idx))
        .collect();
    for pair in ordered.windows(2) {
        if position[pair[0]] > position[pair[1]] {
            anomalies
                .reordered
                .push((pair[0].to_owned(), pair[1].to_owned()));
        }
    }
    anomalies.lost.sort();
    anomalies.phantom.sort();
    anomalies.duplicated.sort();
    anomalies
}

#[test]
fn the_checker_reports_each_kind_of_anomaly() {
    let feed: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(check(&feed, &feed).is_empty());
    let lost = check(&list(&["a", "c", "d"]), &feed);
    assert_eq!(lost.lost, ["b"]);
    let duplicated = check(&list(&["a", "b", "b", "c", "d"]), &feed);
    assert_eq!(duplicated.duplicated, ["b"]);
    let reordered = check(&list(&["a", "c", "b", "d"]), &feed);
    assert_eq!(reordered.reordered, [("c".to_owned(), "b".to_owned())]);
    let phantom = check(&list(&["a", "b", "x", "c", "d"]), &feed);
    assert_eq!(phantom.phantom, ["x"]);
    assert!(lost.duplicated.is_empty() && lost.phantom.is_empty() && lost.reordered.is_empty());
}

/// One `aisle-hq serve` on the shared database and folder.
struct Instance {
    child: Child,
    url: String,
    admin_url: String,
    dir: PathBuf,
}

impl Instance {
    fn start(data: &Path, database: &str, name: &str) -> Self {
        let dir = data.parent().expect("work folder").join(name);
        std::fs::create_dir_all(&dir).expect("instance folder");
        let files = |n: &str| dir.join(n);
        std::fs::remove_file(files("address")).ok();
        std::fs::remove_file(files("admin-address")).ok();
        let tls = data.parent().expect("work folder").join("tls");
        let mut child = Command::new(env!("CARGO_BIN_EXE_aisle-hq"))
            .arg("--data")
            .arg(data)
            .arg("--database")
            .arg(database)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--tls-cert")
            .arg(tls.join("hq.pem"))
            .arg("--tls-key")
            .arg(tls.join("hq.key"))
            .arg("--admin-token-file")
            .arg(data.parent().expect("work folder").join("tokens"))
            .arg("--address-file")
            .arg(files("address"))
            .arg("--admin-address-file")
            .arg(files("admin-address"))
            .args([
                "--per-address-per-minute",
                "1000000",
                "--per-address-burst",
                "100000",
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aisle-hq");
        let read = |path: PathBuf, child: &mut Child| {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if let Ok(text) = std::fs::read_to_string(&path)
                    && !text.is_empty()
                {
                    return text;
                }
                assert!(child.try_wait().expect("wait").is_none(), "aisle-hq exited");
                assert!(Instant::now() < deadline, "aisle-hq did not listen");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let url = format!("https://{}", read(files("address"), &mut child));
        let admin_url = format!("https://{}", read(files("admin-address"), &mut child));
        Self {
            child,
            url,
            admin_url,
            dir,
        }
    }

    /// SIGKILL: no shutdown, transactions cut mid-way.
    fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn hq_command(data: &Path, database: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aisle-hq"));
    cmd.arg("--data")
        .arg(data)
        .arg("--database")
        .arg(database)
        .env("RUST_LOG", "error");
    cmd
}

fn client(ca: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca"))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Posts an admin change to the first instance of `urls` that answers.
fn admin_post(
    client: &reqwest::blocking::Client,
    urls: &[String],
    path: &str,
    body: &impl serde::Serialize,
) -> serde_json::Value {
    for _ in 0..200 {
        for url in urls {
            let Ok(response) = client
                .post(format!("{url}{path}"))
                .bearer_auth(TOKEN)
                .json(body)
                .send()
            else {
                continue;
            };
            let status = response.status();
            let value: serde_json::Value = response.json().unwrap_or_default();
            assert!(
                status.is_success() || status.is_server_error(),
                "{path}: {status} {value}"
            );
            if status.is_success() {
                return value;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no HQ instance took {path}");
}

/// A simulated store: its replica, credentials, and every change received.
struct Store {
    store_id: i64,
    db: PathBuf,
    credentials: Credentials,
    /// The feed position its bootstrap snapshot was consistent with.
    start: Option<u64>,
    received: Vec<String>,
}

impl Store {
    /// Pulls until HQ has no more, from `url`, recording what it applies.
    fn pull(&mut self, url: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut credentials = self.credentials.clone();
        credentials.hq_url = url.to_owned();
        let transport = Transport::with_timeout(&credentials, Duration::from_secs(30))?;
        let mut conn = aisle_core::replica::open_writer(&self.db)?;
        if aisle_core::sync::cursor(&conn)?.is_none() {
            let options = SyncOptions::for_replica(&self.db);
            aisle_core::sync::bootstrap(&mut conn, &transport, &options, self.store_id)?;
            // The snapshot's records are the store's starting point, not feed entries.
            self.start = aisle_core::sync::cursor(&conn)?;
        }
        loop {
            let position = aisle_core::sync::cursor(&conn)?.unwrap_or(0);
            let batch = transport.changes(position, 200)?;
            match aisle_core::sync::apply_batch(&mut conn, &batch, self.store_id)? {
                aisle_core::sync::BatchDecision::Apply => {
                    for change in &batch.changes {
                        self.received
                            .push(serde_json::to_string(change).expect("json"));
                    }
                    if !batch.more {
                        return Ok(());
                    }
                }
                other => panic!(
                    "store {}: batch ({}, {}] at {position}: {other:?}",
                    self.store_id, batch.from_cursor, batch.to_cursor
                ),
            }
        }
    }

    /// HQ's feed for this store from where its bootstrap began, read whole.
    fn feed_since(&self, url: &str, from: u64) -> Vec<String> {
        let mut credentials = self.credentials.clone();
        credentials.hq_url = url.to_owned();
        let transport = Transport::new(&credentials).expect("transport");
        let mut out = Vec::new();
        let mut after = from;
        loop {
            let batch = transport.changes(after, 5_000).expect("feed");
            out.extend(
                batch
                    .changes
                    .iter()
                    .map(|c| serde_json::to_string(c).expect("json")),
            );
            after = batch.to_cursor;
            if !batch.more {
                return out;
            }
        }
    }
}

#[test]
fn two_hq_instances_eight_writers_and_fifty_stores_converge_with_nothing_skipped() {
    let Some(cluster) = aisle_tests::postgres::cluster() else {
        return;
    };
    let seed: u64 = std::env::var("AISLE_CONSISTENCY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_205);
    let database = aisle_tests::postgres::empty_database(&cluster);
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("hq-data");
    // HQ's master data through the CLI, on PostgreSQL.
    let output = hq_command(&data, &database)
        .arg("import-demo")
        .output()
        .expect("import-demo");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = hq_command(&data, &database)
        .arg("dev-cert")
        .arg(work.path().join("tls"))
        .output()
        .expect("dev-cert");
    assert!(output.status.success());
    let tokens = work.path().join("tokens");
    std::fs::write(&tokens, format!("admin {TOKEN}\n")).expect("tokens");
    std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let ca = std::fs::read_to_string(work.path().join("tls/ca.pem")).expect("ca");
    let a = Instance::start(&data, &database, "a");
    let mut b = Instance::start(&data, &database, "b");
    let http = client(&ca);

    // The 50 stores with the most members, a kiosk each, enrolled through
    // either instance.
    let store_ids: Vec<i64> = aisle_tests::postgres::query(
        &database,
        &format!(
            "SELECT store_id FROM store_members GROUP BY store_id ORDER BY count(*) DESC, store_id LIMIT {STORES}"
        ),
        |row| row.get(0),
    );
    assert_eq!(store_ids.len(), STORES);
    let mut stores: Vec<Store> = Vec::new();
    for (idx, store_id) in store_ids.iter().enumerate() {
        let (url, admin_url) = if idx % 2 == 0 {
            (&a.url, &a.admin_url)
        } else {
            (&b.url, &b.admin_url)
        };
        let enrolment: aisle_proto::Enrolment = serde_json::from_value(admin_post(
            &http,
            std::slice::from_ref(admin_url),
            paths::ADMIN_DEVICES,
            &DeviceRegistration {
                device_id: format!("kiosk-{store_id}"),
                store_id: *store_id,
                kind: DeviceKind::Kiosk,
            },
        ))
        .expect("enrolment");
        let answer: DeviceCredentials =
            aisle_core::sync::enrol(url, Some(&ca), &enrolment.code).expect("enrol");
        let dir = work.path().join(format!("store-{store_id}"));
        std::fs::create_dir_all(&dir).expect("store folder");
        let db = dir.join("replica.db");
        let credentials = Credentials {
            hq_url: url.clone(),
            device_id: answer.device_id,
            store_id: *store_id,
            secret: answer.secret,
            hq_public_key: answer.hq_public_key,
            ca_pem: Some(ca.clone()),
            coupon_issuer: answer.coupon_issuer,
            card_key: answer.card_key,
        };
        let mut conn = aisle_core::replica::open_writer(&db).expect("replica");
        credentials
            .save(&mut conn, aisle_hq::now())
            .expect("provision");
        stores.push(Store {
            store_id: *store_id,
            db,
            credentials,
            start: None,
            received: Vec::new(),
        });
    }
    // What the writers change: prices and stock in these stores, members of
    // their partitions, products everyone holds.
    let prices: Vec<(i64, i64)> = aisle_tests::postgres::query(
        &database,
        &format!(
            "SELECT store_id, product_id FROM (SELECT store_id, product_id,
                 row_number() OVER (PARTITION BY store_id ORDER BY product_id) AS n
             FROM store_products WHERE store_id IN ({})) AS p WHERE n <= 20",
            store_ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        |row| (row.get(0), row.get(1)),
    );
    let members: Vec<i64> = aisle_tests::postgres::query(
        &database,
        &format!(
            "SELECT DISTINCT member_id FROM store_members WHERE store_id IN ({}) ORDER BY member_id",
            store_ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        |row| row.get(0),
    );
    let products: Vec<i64> = aisle_tests::postgres::query(
        &database,
        "SELECT product_id FROM products ORDER BY product_id LIMIT 50",
        |row| row.get(0),
    );
    // Their records as HQ holds them now (writers change a field or two).
    let copy = hq_copy(&database, work.path());
    let members: Vec<aisle_proto::MemberRecord> = members
        .iter()
        .map(|id| {
            aisle_core::sync::records::read_member(&copy, *id)
                .expect("read")
                .expect("the member")
        })
        .collect();
    let products: Vec<aisle_proto::ProductRecord> = products
        .iter()
        .map(|id| {
            aisle_core::sync::records::read_product(&copy, *id)
                .expect("read")
                .expect("the product")
        })
        .collect();
    drop(copy);
    let stores: Arc<Vec<Mutex<Store>>> = Arc::new(stores.into_iter().map(Mutex::new).collect());
    let mut kills = 0;
    for round in 0..ROUNDS {
        let mut rng = SplitMix64::new(seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let urls = vec![a.admin_url.clone(), b.admin_url.clone()];
        let device_urls = Arc::new(Mutex::new(vec![a.url.clone(), b.url.clone()]));
        let writing = Arc::new(AtomicBool::new(true));
        // Stores pull through either instance while the writers write.
        let pullers: Vec<_> = (0..4)
            .map(|worker| {
                let stores = Arc::clone(&stores);
                let device_urls = Arc::clone(&device_urls);
                let writing = Arc::clone(&writing);
                let mut rng = SplitMix64::new(rng.next_u64());
                std::thread::spawn(move || {
                    while writing.load(Ordering::Relaxed) {
                        for store in stores.iter().skip(worker).step_by(4) {
                            let urls = device_urls.lock().expect("urls").clone();
                            let url = &urls[(rng.next_u64() % urls.len() as u64) as usize];
                            // An instance killed mid-pull: the next pull goes on.
                            store.lock().expect("store").pull(url).ok();
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let urls = urls.clone();
                let http = http.clone();
                let prices = prices.clone();
                let members = members.clone();
                let products = products.clone();
                let mut rng = SplitMix64::new(rng.next_u64());
                std::thread::spawn(move || {
                    for op in 0..WRITES_PER_WRITER {
                        let mut order = urls.clone();
                        order.rotate_left((writer + op as usize) % 2);
                        match rng.next_u64() % 3 {
                            0 => {
                                let (store_id, product_id) =
                                    prices[(rng.next_u64() % prices.len() as u64) as usize];
                                admin_post(
                                    &http,
                                    &order,
                                    paths::ADMIN_STORE_PRODUCTS,
                                    &aisle_proto::StoreProductRecord {
                                        store_id,
                                        product_id,
                                        price_cents: (rng.next_u64() % 10_000) as i64,
                                        stock_qty: (rng.next_u64() % 100) as i64,
                                        location: None,
                                        updated_at: aisle_hq::now().to_string(),
                                    },
                                );
                            }
                            1 => {
                                let mut record = members
                                    [(rng.next_u64() % members.len() as u64) as usize]
                                    .clone();
                                record.given_name = Some(format!("W{writer}-{round}-{op}"));
                                record.tier = ["standard", "silver", "gold"]
                                    [(rng.next_u64() % 3) as usize]
                                    .into();
                                admin_post(&http, &order, paths::ADMIN_MEMBERS, &record);
                            }
                            _ => {
                                let mut record = products
                                    [(rng.next_u64() % products.len() as u64) as usize]
                                    .clone();
                                record.package_size = Some(format!("{writer}-{round}-{op}"));
                                admin_post(&http, &order, paths::ADMIN_PRODUCTS, &record);
                            }
                        }
                    }
                })
            })
            .collect();
        // Every fourth round, instance b dies mid-round (SIGKILL) and comes back.
        if round % 4 == 1 {
            std::thread::sleep(Duration::from_millis(rng.next_u64() % 1_500));
            b.kill();
            kills += 1;
            device_urls.lock().expect("urls").retain(|u| *u != b.url);
        }
        for writer in writers {
            writer.join().expect("writer");
        }
        writing.store(false, Ordering::Relaxed);
        for puller in pullers {
            puller.join().expect("puller");
        }
        if round % 4 == 1 {
            b = Instance::start(&data, &database, "b");
        }
        // Catch up, then check every store.
        let mut compared = 0;
        let hq_copy = hq_copy(&database, work.path());
        let catalog = product_rows(&hq_copy);
        for (idx, store) in stores.iter().enumerate() {
            let mut store = store.lock().expect("store");
            let url = if idx % 2 == 0 { &a.url } else { &b.url };
            store.pull(url).expect("catch up");
            let start = store.start.expect("bootstrapped");
            let feed = store.feed_since(url, start);
            let anomalies = check(&store.received, &feed);
            assert!(
                anomalies.is_empty(),
                "round {round} (seed {seed}), store {}: {anomalies:#?}",
                store.store_id
            );
            let replica = aisle_core::replica::connect(&store.db).expect("replica");
            let card_key = aisle_hq::signing::Signer::load_or_create(&data.join("signing.key"))
                .expect("signing key")
                .card_key(store.store_id);
            assert_eq!(
                aisle_tests::hq::partition_rows(
                    &replica,
                    store.store_id,
                    aisle_tests::hq::STORE_MEMBERS,
                    None
                ),
                aisle_tests::hq::partition_rows(
                    &hq_copy,
                    store.store_id,
                    aisle_tests::hq::HQ_MEMBERS,
                    Some((DeviceKind::Kiosk, card_key))
                ),
                "round {round} (seed {seed}): store {}'s replica differs from its partition at HQ",
                store.store_id
            );
            assert!(
                product_rows(&replica) == catalog,
                "round {round} (seed {seed}): store {}'s catalog differs from HQ's",
                store.store_id
            );
            compared += 1;
        }
        assert_eq!(compared, STORES);
    }
    assert!(kills >= 4, "instance b was killed {kills} times");
    drop(a);
    drop(b);
    aisle_tests::postgres::drop_database(&cluster, &database);
}

/// The whole catalog as one text (every column of every product, in
/// order), built by SQLite itself: cheap to compare for 50 replicas.
fn product_rows(conn: &rusqlite::Connection) -> String {
    let columns = aisle_core::sync::records::PRODUCT_COLUMNS
        .split(',')
        .map(|c| format!("coalesce({}, '')", c.trim()))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    conn.query_row(
        &format!(
            "SELECT coalesce(group_concat(line, char(10)), '') FROM
             (SELECT {columns} AS line FROM products ORDER BY product_id)"
        ),
        [],
        |row| row.get(0),
    )
    .expect("catalog")
}

/// HQ's data as a SQLite copy, read in one snapshot.
fn hq_copy(database: &str, work: &Path) -> rusqlite::Connection {
    let dir = work.join("hq-copy");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("copy folder");
    let tables = [
        "stores",
        "products",
        "members",
        "member_cards",
        "member_preferences",
        "member_keys",
        "store_products",
        "campaigns",
        "coupons",
        "coupon_issues",
        "coupon_redemptions",
        "store_members",
    ];
    aisle_tests::postgres::sqlite_copy(database, &dir.join("hq.db"), &tables)
}
