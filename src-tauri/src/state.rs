//! What the app works on: the store replica (one writer, as everywhere)
//! and the store it serves, and the clock.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aisle_core::offers::model::{self as offer_model, RedeemModel};
use aisle_core::recommend::artifact;
use aisle_core::recommend::serve::Served;
use aisle_core::staff::{self, Associate, Session};

use anyhow::Context;
use rusqlite::Connection;

use crate::dto::ApiError;

/// The wall clock, seconds since the epoch (the one place the app reads it).
pub fn wall_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The replica and the store; shared by every command.
#[derive(Debug)]
pub struct AppState {
    pub db: PathBuf,
    pub store_id: i64,
    /// The one writer of this process.
    writer: Mutex<Connection>,
    /// `YYYY-MM-DD HH:MM:SS` to use instead of the wall clock (the demo's day).
    pub now: Option<String>,
    /// The recommendation model, loaded once per artifact (not per client view).
    served: Mutex<Option<(i64, Arc<Served>)>>,
    /// The offer model, loaded once per model id.
    offers: Mutex<Option<(i64, Arc<RedeemModel>)>>,
    /// Lockout and idle rules.
    pub policy: staff::Policy,
    /// The signed-in associate, if any (and not locked by idleness).
    session: Mutex<Option<Session>>,
    /// The monotonic clock's origin for idleness.
    started: std::time::Instant,
    /// Pictures to scan instead of the camera (`AISLE_CAMERA_SOURCE`: a
    /// picture, a folder or an animated GIF, played in a loop).
    pub camera_source: Option<PathBuf>,
    /// Bumped to stop the scan under way.
    pub scan_generation: std::sync::atomic::AtomicU64,
}

impl AppState {
    /// Opens `db` (which must exist: the tablet works on a synced replica).
    pub fn open(
        db: PathBuf,
        store_id: Option<i64>,
        now: Option<String>,
        policy: staff::Policy,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            db.is_file(),
            "no replica at {}: run `aisle demo` or `aisle sync` first",
            db.display()
        );
        let writer = aisle_core::replica::open_writer(&db)
            .with_context(|| format!("opening {}", db.display()))?;
        let store_id = match store_id {
            Some(id) => id,
            None => {
                let showcase = aisle_core::demo::showcase_member(&writer)?;
                aisle_core::sync::store_or_home(&writer, showcase)?
                    .context("the replica is not provisioned: set AISLE_STORE")?
            }
        };
        Ok(AppState {
            db,
            store_id,
            writer: Mutex::new(writer),
            now,
            served: Mutex::new(None),
            offers: Mutex::new(None),
            policy,
            session: Mutex::new(None),
            started: std::time::Instant::now(),
            camera_source: None,
            scan_generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// `AISLE_DB` (required), `AISLE_STORE`, `AISLE_NOW`, `AISLE_IDLE_LOCK_SECS`,
    /// `AISLE_CAMERA_SOURCE`.
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
        let mut state = Self::open(db, store, std::env::var("AISLE_NOW").ok(), policy)?;
        state.camera_source = std::env::var_os("AISLE_CAMERA_SOURCE").map(PathBuf::from);
        Ok(state)
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
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
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

    /// Store-local now.
    pub fn now(&self) -> String {
        self.now
            .clone()
            .unwrap_or_else(|| aisle_core::dates::timestamp_string(wall_secs()))
    }

    /// A read connection of its own (readers never wait on the writer: WAL).
    pub fn reader(&self) -> Result<Connection, ApiError> {
        aisle_core::replica::open_reader(&self.db).map_err(ApiError::internal)
    }

    /// The newest recommendation model, decoded again only when sync has
    /// brought a newer artifact; `None` while the replica has no usable one.
    pub fn served(&self, conn: &Connection) -> Result<Option<Arc<Served>>, ApiError> {
        let newest: Option<i64> = conn.query_row(
            "SELECT max(artifact_id) FROM model_artifacts WHERE kind = 'recommend'",
            [],
            |row| row.get(0),
        )?;
        let mut cached = self
            .served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((id, served)) = cached.as_ref()
            && Some(*id) == newest
        {
            return Ok(Some(Arc::clone(served)));
        }
        if newest.is_none() {
            return Ok(None);
        }
        match artifact::load_newest(conn) {
            Ok(loaded) => {
                let served = Arc::new(Served::new(loaded.artifact.model));
                *cached = Some((loaded.artifact_id, Arc::clone(&served)));
                Ok(Some(served))
            }
            Err(error) => {
                tracing::warn!(%error, "no usable recommendation model");
                Ok(None)
            }
        }
    }

    /// The newest offer model, decoded again only when sync brings a newer one.
    pub fn offer_model(&self, conn: &Connection) -> Result<Arc<RedeemModel>, ApiError> {
        let newest: Option<i64> =
            conn.query_row("SELECT max(model_id) FROM offer_models", [], |row| {
                row.get(0)
            })?;
        let mut cached = self
            .offers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((id, model)) = cached.as_ref()
            && Some(*id) == newest
        {
            return Ok(Arc::clone(model));
        }
        let loaded = offer_model::load_newest(conn)
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::new("no_model", "No offers yet: HQ has not sent an offer model")
            })?;
        let model = Arc::new(loaded.model);
        *cached = Some((loaded.model_id, Arc::clone(&model)));
        Ok(model)
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
