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
}

impl Hq {
    /// Opens HQ's database (migrating it) and signing key.
    pub fn open(config: Config) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let writer = db::open(&config.db_path())?;
        let signer = signing::Signer::load_or_create(&config.data_dir.join("signing.key"))?;
        Ok(Arc::new(Self {
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
    let hq = tokio::task::spawn_blocking(move || Hq::open(config)).await??;
    let app = router(hq);
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Some(files) => tls::serve(listener, app, &files, shutdown).await?,
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
