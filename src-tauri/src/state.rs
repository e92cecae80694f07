//! What the app works on: the store replica (one writer, as everywhere)
//! and the store it serves, and the clock.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aisle_core::recommend::artifact;
use aisle_core::recommend::serve::Served;

use anyhow::Context;
use rusqlite::Connection;

use crate::dto::ApiError;

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
}

impl AppState {
    /// Opens `db` (which must exist: the tablet works on a synced replica).
    pub fn open(db: PathBuf, store_id: Option<i64>, now: Option<String>) -> anyhow::Result<Self> {
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
        })
    }

    /// `AISLE_DB` (required), `AISLE_STORE`, `AISLE_NOW`.
    pub fn from_env() -> anyhow::Result<Self> {
        let db = std::env::var_os("AISLE_DB")
            .map(PathBuf::from)
            .context("set AISLE_DB to the store replica (`aisle demo` builds one)")?;
        let store = std::env::var("AISLE_STORE")
            .ok()
            .map(|s| s.parse::<i64>().context("AISLE_STORE is a store id"))
            .transpose()?;
        Self::open(db, store, std::env::var("AISLE_NOW").ok())
    }

    /// Store-local now.
    pub fn now(&self) -> String {
        self.now.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            aisle_core::dates::timestamp_string(secs)
        })
    }

    /// A read connection of its own (readers never wait on the writer: WAL).
    pub fn reader(&self) -> Result<Connection, ApiError> {
        aisle_core::replica::open_reader(&self.db).map_err(ApiError::internal)
    }

    /// The newest recommendation model, decoded again only when sync has
    /// brought a newer artifact.
    pub fn served(&self, conn: &Connection) -> Result<Arc<Served>, ApiError> {
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
            return Ok(Arc::clone(served));
        }
        let loaded = artifact::load_newest(conn)
            .map_err(|e| ApiError::new("no_model", format!("No suggestions yet: {e}")))?;
        let served = Arc::new(Served::new(loaded.artifact.model));
        *cached = Some((loaded.artifact_id, Arc::clone(&served)));
        Ok(served)
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
