//! Aisle's reference HQ server.
//!
//! HQ holds the master data (the replica schema, loaded with the same
//! importers as a store), registers store devices, serves each store's
//! bootstrap snapshot and change feed (both signed with HQ's Ed25519 key),
//! records store events exactly once (each checked and applied in its own
//! savepoint; one HQ refuses is quarantined and never blocks the events
//! behind it), and offers a small admin API. The wire
//! types are `aisle-proto`'s; `docs/PROTOCOL.md` describes them.
//!
//! [`serve`] takes bound listeners, so tests run HQ on `127.0.0.1:0`: the
//! devices' listener and the admin plane's own ([`admin`]); the `aisle-hq`
//! binary is a thin shell over it. Every handler reaches HQ's data through
//! the storage seam ([`storage::Storage`]), on blocking threads, at most
//! [`ConnectionLimits::db_concurrency`] at once.

pub mod admin;
pub mod checks;
mod http;
pub mod postgres;
pub mod rules;
pub mod signing;
pub mod snapshot;
pub mod sqlite;
pub mod storage;
pub mod tls;

use std::future::Future;

use aisle_core::time::Timestamp;
use std::path::PathBuf;
use std::sync::Arc;

pub use http::{admin_router, device_router};

/// What HQ needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder of HQ's signing key and snapshots, and of its database when
    /// it is SQLite (every HQ instance of a chain shares it).
    pub data_dir: PathBuf,
    /// HQ's PostgreSQL database (`postgres://...`); `None`: SQLite in `data_dir`.
    pub database: Option<String>,
    /// The admin API's bearer tokens ([`admin::AdminTokens`]).
    pub admin_tokens: admin::AdminTokens,
    /// Records per snapshot chunk.
    pub chunk_records: usize,
    /// How long a built snapshot is offered before a newer one is built
    /// (stores catch up from its cursor through the feed).
    pub snapshot_max_age: std::time::Duration,
    /// A snapshot carries the partition members' baskets of this many days
    /// before HQ's newest basket (the history stores personalize with offline).
    pub history_days: u32,
    /// TLS certificate chain and key (PEM); `None` serves plain HTTP (tests of the HTTP layer only).
    pub tls: Option<tls::TlsFiles>,
    /// Per-device rate limits.
    pub quotas: Quotas,
    /// What one connection may hold of HQ (the TLS listener).
    pub limits: ConnectionLimits,
}

/// What a connection, a client address or a request may hold of HQ: a
/// client that opens connections and never speaks, speaks slowly, or floods
/// HQ from one address does not exhaust it (docs/PROTOCOL.md, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The TLS handshake must finish within this.
    pub handshake_timeout: std::time::Duration,
    /// A request's headers must arrive within this (and between requests
    /// on a kept-alive connection).
    pub header_read_timeout: std::time::Duration,
    /// Connections served at once (per listener); more are closed at once.
    pub max_connections: usize,
    /// A whole request (body, work, answer) must finish within this
    /// (`408`); building a large store's snapshot is the longest.
    pub request_timeout: std::time::Duration,
    /// Requests per minute from one client address, sustained, and at once
    /// (`429 throttled`): a store's devices share an address behind NAT.
    pub per_address_per_minute: u32,
    pub per_address_burst: u32,
    /// Requests working on HQ's database at once; more wait their turn.
    pub db_concurrency: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: std::time::Duration::from_secs(10),
            header_read_timeout: std::time::Duration::from_secs(10),
            max_connections: 2_048,
            request_timeout: std::time::Duration::from_secs(300),
            per_address_per_minute: 6_000,
            per_address_burst: 2_000,
            db_concurrency: 32,
        }
    }
}

/// Per-device rate limits (docs/PROTOCOL.md, "Limits"): a device over its
/// quota gets `429 throttled` and is reported at
/// `GET /admin/v1/devices/throttled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Member look-ups per minute, sustained, and at once.
    pub lookups_per_minute: u32,
    pub lookup_burst: u32,
    /// Store events per minute, sustained, and at once (the backlog of an
    /// outage is uploaded at once).
    pub events_per_minute: u32,
    pub event_burst: u32,
}

impl Default for Quotas {
    /// Sized for a busy store: a kiosk identifies a shopper every few
    /// seconds at its busiest, and a day offline leaves tens of thousands of
    /// events to upload.
    fn default() -> Self {
        Self {
            lookups_per_minute: 30,
            lookup_burst: 60,
            events_per_minute: 20_000,
            event_burst: 200_000,
        }
    }
}

/// What a device's quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Lookups,
    Events,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Lookups => "lookups",
            Limit::Events => "events",
        }
    }
}

type Limiter<K> = governor::DefaultKeyedRateLimiter<K>;

fn limiter<K: Clone + std::hash::Hash + Eq>(per_minute: u32, burst: u32) -> Limiter<K> {
    let one = std::num::NonZeroU32::MIN;
    let quota = governor::Quota::per_minute(std::num::NonZeroU32::new(per_minute).unwrap_or(one))
        .allow_burst(std::num::NonZeroU32::new(burst).unwrap_or(one));
    governor::RateLimiter::keyed(quota)
}

impl Config {
    /// HQ's defaults on `data_dir`, with no admin token (the admin API then
    /// refuses every call; `aisle-hq serve` requires a token file).
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            database: None,
            admin_tokens: admin::AdminTokens::none(),
            chunk_records: 50_000,
            snapshot_max_age: std::time::Duration::from_secs(3600),
            history_days: 400,
            tls: None,
            quotas: Quotas::default(),
            limits: ConnectionLimits::default(),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("hq.db")
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.data_dir.join("snapshots")
    }
}

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct Hq {
    pub config: Config,
    pub signer: signing::Signer,
    storage: Box<dyn storage::Storage>,
    /// One snapshot build at a time.
    snapshot_lock: std::sync::Mutex<()>,
    lookups: Limiter<String>,
    events: Limiter<String>,
    addresses: Limiter<std::net::IpAddr>,
    /// Address checks since the limiter last forgot idle addresses.
    address_checks: std::sync::atomic::AtomicU32,
    /// Requests working on the database at once.
    db_slots: Arc<tokio::sync::Semaphore>,
}

impl Hq {
    /// Opens HQ's database (migrating it) and signing key.
    pub fn open(config: Config) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let storage: Box<dyn storage::Storage> = match &config.database {
            Some(url) => Box::new(postgres::PgStorage::open(url)?),
            None => Box::new(sqlite::SqliteStorage::open(&config.db_path())?),
        };
        let signer = signing::Signer::load_or_create(&config.data_dir.join("signing.key"))?;
        let lookups = limiter(config.quotas.lookups_per_minute, config.quotas.lookup_burst);
        let events = limiter(config.quotas.events_per_minute, config.quotas.event_burst);
        let addresses = limiter(
            config.limits.per_address_per_minute,
            config.limits.per_address_burst,
        );
        let db_slots = Arc::new(tokio::sync::Semaphore::new(
            config.limits.db_concurrency.max(1),
        ));
        let retired = storage.retire_store_keys(now())?;
        if retired > 0 {
            tracing::warn!(
                retired,
                "retired the store-wide coupon keys of before device keys; devices register their own at their next sync"
            );
        }
        let hq = Arc::new(Self {
            lookups,
            events,
            addresses,
            address_checks: std::sync::atomic::AtomicU32::new(0),
            db_slots,
            config,
            signer,
            storage,
            snapshot_lock: std::sync::Mutex::new(()),
        });
        // An erasure whose scrub failed before HQ stopped.
        hq.scrub_erasures();
        Ok(hq)
    }

    /// Admits `n` requests of `limit` for `device` under its quota; else
    /// counts the refusal (`device_throttles`) and says how long to wait.
    pub fn admit(
        &self,
        device: &storage::Device,
        limit: Limit,
        n: u32,
    ) -> Result<(), std::time::Duration> {
        let limiter = match limit {
            Limit::Lookups => &self.lookups,
            Limit::Events => &self.events,
        };
        let Some(n) = std::num::NonZeroU32::new(n) else {
            return Ok(());
        };
        let wait = match limiter.check_key_n(&device.device_id, n) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(not_until)) => not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            )),
            // More at once than the burst allows: never admitted as one request.
            Err(_) => std::time::Duration::from_secs(60),
        };
        tracing::warn!(device_id = %device.device_id, limit = limit.name(), n = n.get(), "device over its quota: throttled");
        self.storage
            .record_throttle(device, limit.name(), now())
            .unwrap_or_else(|err| tracing::error!(error = %err, "recording a throttle"));
        Err(wait)
    }

    /// The card key a device of `kind` at `store_id` is given (hex): kiosks
    /// and tills hold card numbers keyed with it; tablets get none.
    pub fn card_key_for(&self, kind: aisle_proto::DeviceKind, store_id: i64) -> Option<String> {
        (!kind.receives_card_numbers()).then(|| hex::encode(self.signer.card_key(store_id)))
    }

    /// Admits one request from `address`, or says how long to wait.
    pub fn admit_address(&self, address: std::net::IpAddr) -> Result<(), std::time::Duration> {
        use std::sync::atomic::Ordering;
        if self.address_checks.fetch_add(1, Ordering::Relaxed) >= 100_000 {
            // Forget addresses whose buckets are full again (bounded memory).
            self.address_checks.store(0, Ordering::Relaxed);
            self.addresses.retain_recent();
            self.addresses.shrink_to_fit();
        }
        self.addresses.check_key(&address).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }

    /// HQ's storage.
    pub fn storage(&self) -> &dyn storage::Storage {
        &*self.storage
    }

    /// After a write that may have committed an erasure: removes its traces
    /// outside the database transaction (every snapshot file, and the
    /// storage's own: [`storage::Storage::scrub_storage`]). A failure is
    /// logged and retried after the next such write.
    pub fn scrub_erasures(&self) {
        let pending = match self.storage.scrub_pending() {
            Ok(pending) => pending,
            Err(err) => {
                tracing::error!(error = %err, "checking for erasures to scrub");
                return;
            }
        };
        if !pending {
            return;
        }
        // No snapshot is built (nor one read from the folder) meanwhile.
        let _building = self
            .snapshot_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let scrubbed = snapshot::remove_all(&self.config.snapshot_dir())
            .and_then(|()| self.storage.scrub_storage(now()));
        if let Err(err) = scrubbed {
            tracing::error!(error = %err, "erasure scrub failed; retried at the next write");
        }
    }
}

/// Where HQ listens: the devices' API, and the admin plane on a listener
/// of its own (loopback by default: `aisle-hq serve --admin-listen`).
#[derive(Debug)]
pub struct Listeners {
    pub devices: tokio::net::TcpListener,
    /// `None`: no admin API at all.
    pub admin: Option<tokio::net::TcpListener>,
}

/// Serves HQ on `listeners` until `shutdown` completes.
pub async fn serve(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if listeners.admin.is_some() && config.admin_tokens.is_empty() {
        anyhow::bail!("the admin listener needs at least one admin token");
    }
    let tls = config.tls.clone();
    let limits = config.limits;
    let hq = tokio::task::spawn_blocking(move || Hq::open(config)).await??;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop.send(true).ok();
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            stopped.wait_for(|stop| *stop).await.ok();
        }
    };
    let devices = serve_one(
        listeners.devices,
        device_router(Arc::clone(&hq)),
        tls.as_ref(),
        limits,
        until_stopped(),
    );
    let admin = async {
        match listeners.admin {
            Some(listener) => {
                serve_one(
                    listener,
                    admin_router(Arc::clone(&hq)),
                    tls.as_ref(),
                    limits,
                    until_stopped(),
                )
                .await
            }
            None => Ok(()),
        }
    };
    tokio::try_join!(devices, admin)?;
    Ok(())
}

async fn serve_one(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<&tls::TlsFiles>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match tls {
        None => {
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Some(files) => tls::serve(listener, app, files, limits, shutdown).await?,
    }
    Ok(())
}

/// The current time as HQ records it (its own clock, UTC).
pub fn now() -> Timestamp {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Timestamp::from_unix(seconds)
}
