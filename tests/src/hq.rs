//! A real `aisle-hq` on loopback for tests: HTTPS with a CA generated for the
//! test, master data from the embedded demo extract, its own temp folder.

use std::net::SocketAddr;
use std::path::Path;

use aisle_proto::{DeviceCredentials, DeviceKind, DeviceRegistration};
use rusqlite::Connection;

/// The test HQ's admin token (64 bytes: HQ refuses tokens under 32).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789abcdef0123456789abcdef";

/// A running HQ; stopped when dropped.
#[derive(Debug)]
pub struct TestHq {
    pub data: tempfile::TempDir,
    /// HQ's PostgreSQL database (a test database of `AISLE_TEST_POSTGRES`'s
    /// cluster); `None`: SQLite in `data`.
    pub database: Option<String>,
    /// Copies of HQ's data read by [`TestHq::db`] on PostgreSQL.
    copies: std::sync::Mutex<Vec<tempfile::TempDir>>,
    /// The devices' listener.
    pub addr: SocketAddr,
    /// The admin plane's own listener.
    pub admin_addr: SocketAddr,
    pub ca_pem: String,
    pub admin_token: String,
    pub tls: aisle_hq::tls::TlsFiles,
    /// Serve plain HTTP (behind a test proxy that does the TLS).
    plain: bool,
    /// Per-device quotas from the next [`TestHq::start`] on (HQ's defaults when `None`).
    pub quotas: Option<aisle_hq::Quotas>,
    /// Connection limits from the next [`TestHq::start`] on.
    pub limits: Option<aisle_hq::ConnectionLimits>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// HQ's data folder `dir` with the demo extract as master data.
fn build_demo_hq(dir: &Path) {
    let config = aisle_hq::Config::new(dir.to_owned());
    let hq = aisle_hq::Hq::open(config).expect("open HQ");
    hq.storage()
        .import(
            aisle_hq::storage::Importer::CompleteJourney,
            &aisle_core::demo::source(),
            &aisle_core::import::ImportOptions::default(),
        )
        .expect("import demo at HQ");
    drop(hq);
}

impl TestHq {
    /// HQ with the demo extract as master data, over HTTPS.
    pub fn start_with_demo() -> Self {
        Self::with_demo(false)
    }

    /// The same over plain HTTP, for a TLS-terminating fault proxy in front.
    pub fn start_with_demo_plain() -> Self {
        Self::with_demo(true)
    }

    fn with_demo(plain: bool) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        // HQ's database with the demo imported is built once per test
        // process (on PostgreSQL, once per cluster: a template database);
        // each HQ gets a copy and its own signing key.
        let database =
            crate::postgres::cluster().map(|cluster| crate::postgres::demo_database(&cluster));
        let config = aisle_hq::Config::new(data.path().to_owned());
        if database.is_none() {
            crate::fixture::copy_of("hq-demo", &config.db_path(), |path| {
                let dir = path.parent().expect("fixture folder").join("hq-demo-build");
                std::fs::remove_dir_all(&dir).ok();
                build_demo_hq(&dir);
                let db = aisle_hq::Config::new(dir.clone()).db_path();
                crate::fixture::checkpoint(&db);
                std::fs::rename(&db, path).expect("hq.db to the template");
                crate::fixture::move_key(&db, path, true);
                std::fs::remove_dir_all(&dir).ok();
            });
        }
        let (ca_pem, tls) = aisle_hq::tls::dev_pki().expect("test certificates");
        let mut this = Self {
            data,
            database,
            copies: std::sync::Mutex::new(Vec::new()),
            addr: "127.0.0.1:0".parse().expect("addr"),
            admin_addr: "127.0.0.1:0".parse().expect("addr"),
            ca_pem,
            admin_token: ADMIN_TOKEN.into(),
            tls,
            plain,
            quotas: None,
            limits: None,
            runtime: None,
            shutdown: None,
        };
        this.start();
        this
    }

    /// Starts serving (on the same ports as before, if it ran before).
    pub fn start(&mut self) {
        let (runtime, listener) = loopback_runtime(self.addr);
        self.addr = listener.local_addr().expect("addr");
        let admin = runtime
            .block_on(tokio::net::TcpListener::bind(self.admin_addr))
            .expect("bind the admin listener");
        self.admin_addr = admin.local_addr().expect("admin addr");
        let mut config = self.config();
        config.admin_tokens =
            aisle_hq::admin::AdminTokens::single("test-admin", &self.admin_token).expect("token");
        config.tls = (!self.plain).then(|| self.tls.clone());
        config.chunk_records = 2_000;
        if let Some(quotas) = self.quotas {
            config.quotas = quotas;
        }
        if let Some(limits) = self.limits {
            config.limits = limits;
        }
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            let stopped = async {
                receiver.await.ok();
            };
            let listeners = aisle_hq::Listeners {
                devices: listener,
                admin: Some(admin),
            };
            if let Err(err) = aisle_hq::serve(listeners, config, stopped).await {
                tracing::error!(error = %err, "test HQ stopped");
            }
        });
        self.runtime = Some(runtime);
        self.shutdown = Some(sender);
    }

    /// Stops serving (in-flight connections are dropped, as in a crash).
    pub fn stop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            sender.send(()).ok();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }

    /// The devices' API.
    pub fn url(&self) -> String {
        let scheme = if self.plain { "http" } else { "https" };
        format!("{scheme}://{}", self.addr)
    }

    /// The admin API (its own listener).
    pub fn admin_url(&self) -> String {
        let scheme = if self.plain { "http" } else { "https" };
        format!("{scheme}://{}", self.admin_addr)
    }

    /// An HTTPS client trusting only the test CA.
    pub fn client(&self) -> reqwest::blocking::Client {
        self.client_builder().build().expect("client")
    }

    /// The same, calling from another loopback address (`127.0.0.2`, ...).
    pub fn client_from(&self, address: std::net::IpAddr) -> reqwest::blocking::Client {
        self.client_builder()
            .local_address(address)
            .build()
            .expect("client")
    }

    /// A device's GET of the devices' API, as the device makes it: its
    /// bearer (`DEVICE_ID.SECRET`) and the protocol header.
    pub fn device_get(&self, path: &str, bearer: &str) -> reqwest::blocking::RequestBuilder {
        self.device_request(reqwest::Method::GET, path, bearer)
    }

    /// The same, a POST.
    pub fn device_post(&self, path: &str, bearer: &str) -> reqwest::blocking::RequestBuilder {
        self.device_request(reqwest::Method::POST, path, bearer)
    }

    fn device_request(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
    ) -> reqwest::blocking::RequestBuilder {
        self.client()
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(bearer)
            .header(
                aisle_proto::PROTOCOL_HEADER,
                aisle_proto::PROTOCOL_VERSION.to_string(),
            )
    }

    fn client_builder(&self) -> reqwest::blocking::ClientBuilder {
        reqwest::blocking::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("ca"),
            )
    }

    /// Calls the admin API; panics on failure.
    pub fn admin<T: serde::Serialize + ?Sized>(&self, path: &str, body: &T) -> serde_json::Value {
        let response = self
            .client()
            .post(format!("{}{path}", self.admin_url()))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .expect("admin request");
        let status = response.status();
        let value: serde_json::Value = response.json().expect("admin json");
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    /// Enrols a device the way a store does: the admin creates a one-time
    /// code, the device redeems it over TLS and registers its own coupon
    /// issuing key ([`aisle_core::sync::enrol`]).
    pub fn register(&self, device_id: &str, store_id: i64, kind: DeviceKind) -> DeviceCredentials {
        let enrolment = self.enrolment(device_id, store_id, kind);
        aisle_core::sync::enrol(&self.url(), Some(&self.ca_pem), &enrolment.code)
            .expect("enrol the device")
    }

    /// The admin's half of an enrolment: a one-time code for `device_id`.
    pub fn enrolment(
        &self,
        device_id: &str,
        store_id: i64,
        kind: DeviceKind,
    ) -> aisle_proto::Enrolment {
        let value = self.admin(
            aisle_proto::paths::ADMIN_DEVICES,
            &DeviceRegistration {
                device_id: device_id.to_owned(),
                store_id,
                kind,
            },
        );
        serde_json::from_value(value).expect("enrolment")
    }

    /// HQ's own shell on the same data (what an `aisle-hq` command on HQ's
    /// machine opens), beside the running server.
    pub fn at_hq(&self) -> std::sync::Arc<aisle_hq::Hq> {
        aisle_hq::Hq::open(self.config()).expect("open HQ")
    }

    /// HQ's configuration: its folder and database.
    pub fn config(&self) -> aisle_hq::Config {
        let mut config = aisle_hq::Config::new(self.data.path().to_owned());
        config.database.clone_from(&self.database);
        config
    }

    /// Whether this HQ runs on PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        self.database.is_some()
    }

    /// A read-only look at HQ's database: the file itself on SQLite; on
    /// PostgreSQL, a SQLite copy of every table read in one snapshot now
    /// (the two schemas match column for column).
    pub fn db(&self) -> Connection {
        let Some(url) = &self.database else {
            return aisle_core::replica::connect(self.data.path().join("hq.db"))
                .expect("open HQ db");
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let tables: Vec<&str> = aisle_hq::postgres::MASTER_TABLES
            .iter()
            .chain(aisle_hq::postgres::HQ_TABLES)
            .copied()
            .collect();
        let conn = crate::postgres::sqlite_copy(url, &dir.path().join("hq-copy.db"), &tables);
        self.copies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(dir);
        conn
    }

    /// Appends a raw change to HQ's feed, as a faulty or lying HQ would
    /// (bypassing every check of HQ's own).
    pub fn inject_change(
        &self,
        scope: aisle_hq::storage::Scope,
        change: &aisle_proto::Change,
        at: &str,
    ) {
        let body = serde_json::to_string(change).expect("json");
        let (name, store_id) = match scope {
            aisle_hq::storage::Scope::All => ("all", None),
            aisle_hq::storage::Scope::Store(id) => ("store", Some(id)),
            aisle_hq::storage::Scope::Member(_) => {
                panic!("member-scoped injections are not needed")
            }
        };
        match &self.database {
            Some(url) => crate::postgres::inject_change(url, name, store_id, &body, at),
            None => {
                let mut conn = aisle_core::replica::connect(self.data.path().join("hq.db"))
                    .expect("open HQ db");
                let tx = conn.transaction().expect("tx");
                aisle_hq::sqlite::log_change(
                    &tx,
                    scope,
                    change,
                    aisle_core::time::Timestamp::parse(at).expect("time"),
                )
                .expect("log");
                tx.commit().expect("commit");
            }
        }
    }

    /// Idempotency keys HQ recorded, with how often each appears (always once: it is the key).
    pub fn event_keys(&self) -> Vec<String> {
        const SQL: &str = "SELECT idempotency_key FROM store_events ORDER BY idempotency_key";
        if let Some(url) = &self.database {
            return crate::postgres::query(url, SQL, |row| row.get(0));
        }
        let conn = self.db();
        let mut stmt = conn.prepare(SQL).expect("prepare");
        stmt.query_map([], |row| row.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    /// A store with members and stock at HQ (the demo's best-stocked store).
    pub fn busy_store(&self) -> i64 {
        const SQL: &str = "SELECT s.store_id FROM store_members AS s GROUP BY s.store_id ORDER BY count(*) DESC, s.store_id LIMIT 1";
        if let Some(url) = &self.database {
            return crate::postgres::query(url, SQL, |row| row.get(0))
                .into_iter()
                .next()
                .expect("a store");
        }
        self.db()
            .query_row(SQL, [], |row| row.get(0))
            .expect("a store")
    }
}

/// A small runtime and a listener bound on loopback at `addr` (port 0: any).
pub fn loopback_runtime(addr: SocketAddr) -> (tokio::runtime::Runtime, tokio::net::TcpListener) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .expect("bind loopback");
    (runtime, listener)
}

impl Drop for TestHq {
    fn drop(&mut self) {
        self.stop();
        if let (Some(cluster), Some(url)) = (crate::postgres::cluster(), &self.database) {
            crate::postgres::drop_database(&cluster, url);
        }
    }
}

/// A store replica in its own temp folder, provisioned for a device of `store_id`.
#[derive(Debug)]
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub db: std::path::PathBuf,
    pub store_id: i64,
}

impl TestHq {
    /// The card key HQ gives the devices of `store_id`.
    pub fn card_key(&self, store_id: i64) -> [u8; 32] {
        aisle_hq::signing::Signer::load_or_create(&self.data.path().join("signing.key"))
            .expect("HQ's signing key")
            .card_key(store_id)
    }

    /// Registers `device_id` as a `kind` of the busiest store and provisions a fresh replica for it.
    pub fn provisioned_store(&self, device_id: &str, kind: DeviceKind) -> TestStore {
        let store_id = self.busy_store();
        let credentials = self.register(device_id, store_id, kind);
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("replica.db");
        provision(&db, self, &credentials);
        TestStore { dir, db, store_id }
    }
}

/// Provisions a store replica for `credentials` at `hq`.
pub fn provision(db: &Path, hq: &TestHq, credentials: &DeviceCredentials) {
    provision_at(db, &hq.url(), hq, credentials);
}

/// Provisions a store replica to reach HQ at `url` (e.g. through a proxy).
pub fn provision_at(db: &Path, url: &str, hq: &TestHq, credentials: &DeviceCredentials) {
    let mut conn = aisle_core::replica::open_writer(db).expect("replica");
    aisle_core::sync::Credentials {
        hq_url: url.to_owned(),
        device_id: credentials.device_id.clone(),
        store_id: credentials.store_id,
        secret: credentials.secret.clone(),
        hq_public_key: credentials.hq_public_key.clone(),
        ca_pem: Some(hq.ca_pem.clone()),
        coupon_issuer: credentials.coupon_issuer.clone(),
        card_key: credentials.card_key.clone(),
    }
    .save(&mut conn, aisle_hq::now())
    .expect("provision");
}

/// What a store must hold of its partition, as comparable text rows:
/// members (with cards and preferences, as a device of `kind` receives
/// them: keyed cards with `card_key`), this store's prices and stock,
/// products. `kind` `None`: as they are (a device's own replica).
pub fn partition_rows(
    conn: &Connection,
    store_id: i64,
    members_sql: &str,
    kind: Option<(DeviceKind, [u8; 32])>,
) -> Vec<String> {
    let mut rows = Vec::new();
    let mut stmt = conn.prepare(members_sql).expect("members sql");
    let ids: Vec<i64> = stmt
        .query_map([store_id], |row| row.get(0))
        .expect("ids")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    for id in ids {
        let Some(member) = aisle_core::sync::records::read_member(conn, id).expect("member") else {
            continue;
        };
        let member = match kind {
            Some((kind, card_key)) => {
                aisle_hq::storage::for_kind(kind, &card_key, aisle_proto::Change::Member(member))
            }
            None => Some(aisle_proto::Change::Member(member)),
        };
        if let Some(member) = member {
            rows.push(serde_json::to_string(&member).expect("json"));
        }
    }
    let mut stmt = conn
        .prepare("SELECT product_id, price_cents, stock_qty, coalesce(location, '') FROM store_products WHERE store_id = ?1 ORDER BY product_id")
        .expect("prices");
    let prices = stmt
        .query_map([store_id], |row| {
            Ok(format!(
                "price {} {} {} {}",
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?
            ))
        })
        .expect("query")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("rows");
    rows.extend(prices);
    let products: i64 = conn
        .query_row("SELECT count(*) FROM products", [], |row| row.get(0))
        .expect("products");
    rows.push(format!("products {products}"));
    rows
}

/// The partition's members at HQ.
pub const HQ_MEMBERS: &str =
    "SELECT s.member_id FROM store_members AS s JOIN members AS m USING (member_id)
     WHERE s.store_id = ?1 AND m.erased_at IS NULL ORDER BY s.member_id";
/// The members a store replica holds.
pub const STORE_MEMBERS: &str =
    "SELECT member_id FROM members WHERE erased_at IS NULL AND ?1 IS NOT NULL ORDER BY member_id";
