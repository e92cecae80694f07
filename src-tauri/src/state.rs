//! What the app works on: the store replica (one writer, as everywhere)
//! and the store's runtime (the store it serves, the clock, the models),
//! and the signed-in associate.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aisle_core::offers::model::RedeemModel;
use aisle_core::runtime::{Clock, Models, StoreRuntime};
use aisle_core::staff::{self, Associate, Session};

use anyhow::Context;
use rusqlite::Connection;

use crate::dto::ApiError;

/// The replica and the store; shared by every command.
#[derive(Debug)]
pub struct AppState {
    pub db: PathBuf,
    /// The store served, the clock, the models (decoded once per artifact,
    /// picked up when sync brings a newer one).
    pub runtime: StoreRuntime,
    /// The one writer of this process.
    writer: Mutex<Connection>,
    /// Lockout and idle rules.
    pub policy: staff::Policy,
    /// The signed-in associate, if any (and not locked by idleness).
    session: Mutex<Option<Session>>,
    /// Pictures to scan instead of the camera (`AISLE_CAMERA_SOURCE`: a
    /// picture, a folder or an animated GIF, played in a loop).
    pub camera_source: Option<PathBuf>,
    /// Bumped to stop the scan under way.
    pub scan_generation: std::sync::atomic::AtomicU64,
}

impl AppState {
    /// Opens `db` (which must exist: the tablet works on a synced replica)
    /// for the store the runtime's rule picks (`store` names one), on `clock`.
    pub fn open(
        db: PathBuf,
        store: Option<i64>,
        clock: Clock,
        policy: staff::Policy,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            db.is_file(),
            "no replica at {}: run `aisle demo` or `aisle sync` first",
            db.display()
        );
        let writer = aisle_core::replica::open_writer(&db)
            .with_context(|| format!("opening {}", db.display()))?;
        let runtime = StoreRuntime::open(&writer, store, clock).context("AISLE_STORE")?;
        Ok(AppState {
            db,
            runtime,
            writer: Mutex::new(writer),
            policy,
            session: Mutex::new(None),
            camera_source: None,
            scan_generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// `AISLE_DB` (required), `AISLE_STORE`, `AISLE_NOW` (the demo's day:
    /// the clock starts there), `AISLE_IDLE_LOCK_SECS`, `AISLE_CAMERA_SOURCE`.
    pub fn from_env() -> anyhow::Result<Self> {
        let db = std::env::var_os("AISLE_DB")
            .map(PathBuf::from)
            .context("set AISLE_DB to the store replica (`aisle demo` builds one)")?;
        let store = std::env::var("AISLE_STORE")
            .ok()
            .map(|s| s.parse::<i64>().context("AISLE_STORE is a store id"))
            .transpose()?;
        let mut policy = staff::Policy::default();
        if let Ok(secs) = std::env::var("AISLE_IDLE_LOCK_SECS") {
            policy.idle_lock_secs = secs
                .parse()
                .context("AISLE_IDLE_LOCK_SECS is a number of seconds")?;
        }
        let clock = Clock::pinned_or_wall(std::env::var("AISLE_NOW").ok().as_deref())
            .context("AISLE_NOW")?;
        let mut state = Self::open(db, store, clock, policy)?;
        state.camera_source = std::env::var_os("AISLE_CAMERA_SOURCE").map(PathBuf::from);
        Ok(state)
    }

    /// The store the tablet serves.
    pub fn store_id(&self) -> i64 {
        self.runtime.store_id()
    }

    /// Where a scan's frames come from: the pictures, or the first camera.
    pub fn frame_source(
        &self,
    ) -> Result<Box<dyn aisle_core::identify::frame::FrameSource>, ApiError> {
        use aisle_core::identify::frame::{ImageSource, Playback};
        match &self.camera_source {
            Some(path) => ImageSource::open(path, Playback::Loop)
                .map(|source| Box::new(source) as Box<_>)
                .map_err(|e| ApiError::new("no_camera", format!("No pictures to scan: {e}"))),
            None => Ok(Box::new(aisle_camera::Camera::open(
                aisle_camera::CameraConfig::default(),
            ))),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.runtime.clock().monotonic_ms()
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Option<Session>> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session for `associate` (replacing any other).
    pub fn begin(&self, associate: Associate) {
        *self.session() = Some(Session::new(associate, self.elapsed_ms()));
    }

    /// Ends the session.
    pub fn end(&self) {
        *self.session() = None;
    }

    /// The signed-in associate, the session kept alive; `signed_out` when
    /// nobody is signed in or the tablet has locked itself.
    pub fn associate(&self) -> Result<Associate, ApiError> {
        let now = self.elapsed_ms();
        let idle_ms = self.policy.idle_lock_secs.saturating_mul(1_000);
        let mut session = self.session();
        let resumed = session
            .as_mut()
            .and_then(|s| s.resume(now, idle_ms).cloned());
        match resumed {
            Some(associate) => Ok(associate),
            None => {
                let locked = session.take().is_some();
                Err(ApiError::new(
                    "signed_out",
                    if locked {
                        "The tablet locked itself after a while unused: sign in again"
                    } else {
                        "Sign in first"
                    },
                ))
            }
        }
    }

    /// The store's time.
    pub fn now(&self) -> aisle_core::time::Timestamp {
        self.runtime.now()
    }

    /// A read connection of its own (readers never wait on the writer: WAL).
    pub fn reader(&self) -> Result<Connection, ApiError> {
        aisle_core::replica::open_reader(&self.db).map_err(ApiError::internal)
    }

    /// The models to serve with, newer ones picked up from the replica.
    pub fn models(&self, conn: &Connection) -> Result<Models, ApiError> {
        self.runtime.models(conn).map_err(ApiError::internal)
    }

    /// The newest offer model; `no_model` while HQ has sent none.
    pub fn offer_model(&self, conn: &Connection) -> Result<Arc<RedeemModel>, ApiError> {
        self.models(conn)?
            .offers
            .map(|(_, model)| model)
            .ok_or_else(|| {
                ApiError::new("no_model", "No offers yet: HQ has not sent an offer model")
            })
    }

    /// The writer, for edits (each one transaction with its outbox event).
    pub fn write<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut conn = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&mut conn)
    }
}
