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
//! [`serve`] takes a bound listener, so tests run HQ on `127.0.0.1:0`; the
//! `aisle-hq` binary is a thin shell over it. Database work runs on blocking
//! threads: one writer connection behind a mutex, read-only connections from
//! a small pool.

pub mod db;
mod http;
pub mod signing;
pub mod tls;

use std::future::Future;

use aisle_core::time::Timestamp;
use std::path::PathBuf;
use std::sync::Arc;

pub use http::router;

/// What HQ needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder of HQ's database, signing key and snapshots.
    pub data_dir: PathBuf,
    /// Bearer token of the admin API.
    pub admin_token: String,
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

/// What a connection may hold of HQ before it is closed: a client that
/// opens connections and never speaks, or speaks slowly, does not exhaust
/// HQ (docs/PROTOCOL.md, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The TLS handshake must finish within this.
    pub handshake_timeout: std::time::Duration,
    /// A request's headers must arrive within this (and between requests
    /// on a kept-alive connection).
    pub header_read_timeout: std::time::Duration,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: std::time::Duration::from_secs(10),
            header_read_timeout: std::time::Duration::from_secs(10),
            max_connections: 2_048,
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

type Limiter = governor::DefaultKeyedRateLimiter<String>;

fn limiter(per_minute: u32, burst: u32) -> Limiter {
    let one = std::num::NonZeroU32::MIN;
    let quota = governor::Quota::per_minute(std::num::NonZeroU32::new(per_minute).unwrap_or(one))
        .allow_burst(std::num::NonZeroU32::new(burst).unwrap_or(one));
    governor::RateLimiter::keyed(quota)
}

impl Config {
    pub fn new(data_dir: PathBuf, admin_token: String) -> Self {
        Self {
            data_dir,
            admin_token,
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
    writer: std::sync::Mutex<rusqlite::Connection>,
    readers: std::sync::Mutex<Vec<rusqlite::Connection>>,
    /// One snapshot build at a time.
    snapshot_lock: std::sync::Mutex<()>,
    lookups: Limiter,
    events: Limiter,
}

impl Hq {
    /// Opens HQ's database (migrating it) and signing key.
    pub fn open(config: Config) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let writer = db::open(&config.db_path())?;
        let signer = signing::Signer::load_or_create(&config.data_dir.join("signing.key"))?;
        let lookups = limiter(config.quotas.lookups_per_minute, config.quotas.lookup_burst);
        let events = limiter(config.quotas.events_per_minute, config.quotas.event_burst);
        Ok(Arc::new(Self {
            lookups,
            events,
            config,
            signer,
            writer: std::sync::Mutex::new(writer),
            readers: std::sync::Mutex::new(Vec::new()),
            snapshot_lock: std::sync::Mutex::new(()),
        }))
    }

    /// The store's coupon issuing key for its credentials; its public half is
    /// recorded and sent to every store (docs/PROTOCOL.md, "Coupon codes").
    pub fn coupon_issuer(
        &self,
        store_id: i64,
    ) -> Result<aisle_proto::CouponIssuerSecret, db::HqError> {
        let (key_id, key) = self.signer.coupon_issuer_key(store_id);
        self.write(|conn| {
            db::ensure_coupon_issuer(conn, store_id, key_id, &key.verifying_key(), now())
        })?;
        Ok(aisle_proto::CouponIssuerSecret {
            key_id,
            secret: hex::encode(key.to_bytes()),
        })
    }

    /// Admits `n` requests of `limit` for `device` under its quota; else
    /// counts the refusal (`device_throttles`) and says how long to wait.
    pub fn admit(
        &self,
        device: &db::Device,
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
        self.write(|conn| db::record_throttle(conn, device, limit.name(), now()))
            .unwrap_or_else(|err| tracing::error!(error = %err, "recording a throttle"));
        Err(wait)
    }

    /// Runs `work` with the writer connection; then, if `work` committed an
    /// erasure, removes its traces outside the database
    /// ([`db::scrub_outside`]: snapshots, the write-ahead log).
    pub fn write<T>(&self, work: impl FnOnce(&mut rusqlite::Connection) -> T) -> T {
        let mut conn = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = work(&mut conn);
        if conn.is_autocommit() && db::scrub_pending(&conn).unwrap_or(false) {
            // No snapshot is built (nor one read from the folder) meanwhile.
            let _building = self
                .snapshot_lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(err) = db::scrub_outside(&conn, &self.config.snapshot_dir(), now()) {
                tracing::error!(error = %err, "erasure scrub failed; retried at the next write");
            }
        }
        result
    }

    /// Runs `work` with a pooled read-only connection.
    pub fn read<T>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<T, db::HqError>,
    ) -> Result<T, db::HqError> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => db::open_reader(&self.config.db_path())?,
        };
        let result = work(&mut conn);
        let mut pool = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < 16 {
            pool.push(conn);
        }
        result
    }
}

/// Serves HQ on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = config.tls.clone();
    let limits = config.limits;
    let hq = tokio::task::spawn_blocking(move || Hq::open(config)).await??;
    let app = router(hq);
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Some(files) => tls::serve(listener, app, &files, limits, shutdown).await?,
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
