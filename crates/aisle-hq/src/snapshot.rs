//! Bootstrap snapshots as files: a store's records, read by the storage in
//! one consistent snapshot of the database ([`Storage::snapshot`]), narrowed
//! to the device kind and written as gzip'd JSON-lines chunks with a
//! manifest, chunk by chunk (one chunk in memory at a time). Every backend
//! shares this code; the folder is HQ's `snapshots/` (shared by every HQ
//! instance of one data folder).

use std::io::Write;
use std::path::{Path, PathBuf};

use aisle_core::time::Timestamp;
use aisle_proto::{Change, ChunkInfo, DeviceKind, PROTOCOL_VERSION, SnapshotManifest};

use crate::storage::{HqError, SnapshotSink, Storage, for_kind, sha256_hex};

/// How snapshots are cut.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotOptions {
    /// Records per chunk file.
    pub chunk_records: usize,
    /// How long a built snapshot is offered before a newer one is built.
    pub max_age: std::time::Duration,
    /// Baskets of the partition's members from this many days before HQ's
    /// newest basket.
    pub history_days: u32,
}

/// The folder-name prefix of a store's snapshots for one device kind.
pub fn snapshot_prefix(store_id: i64, kind: DeviceKind) -> String {
    format!("{store_id}-{}-", kind.name())
}

pub fn chunk_name(index: u32) -> String {
    format!("chunk-{index:05}.jsonl.gz")
}

/// Builds (or reuses) the store's bootstrap snapshot under `folder`: chunk
/// files of at most `chunk_records` records and the manifest, consistent
/// with the feed position it names.
#[allow(clippy::too_many_arguments)]
pub fn build(
    storage: &dyn Storage,
    store_id: i64,
    kind: DeviceKind,
    card_key: &[u8; 32],
    folder: &Path,
    options: &SnapshotOptions,
    now: Timestamp,
) -> Result<(SnapshotManifest, PathBuf), HqError> {
    let prefix = snapshot_prefix(store_id, kind);
    if let Some(reused) = recent_snapshot(folder, &prefix, options.max_age) {
        return Ok(reused);
    }
    let mut writer = ChunkWriter {
        kind,
        card_key: *card_key,
        folder: folder.to_owned(),
        prefix: prefix.clone(),
        chunk_records: options.chunk_records,
        started: None,
        chunks: Vec::new(),
        current: None,
        records: 0,
        total: 0,
    };
    let head = storage.snapshot(store_id, options.history_days, &mut writer)?;
    let Some(Started {
        snapshot_id,
        building,
        ..
    }) = writer.started.clone()
    else {
        return Err(HqError::Invalid("the storage read no snapshot".into()));
    };
    let dir = folder.join(&snapshot_id);
    let Some(head) = head else {
        // Built before at this position.
        let text = std::fs::read_to_string(dir.join("manifest.json")).map_err(|e| io(&dir, e))?;
        let manifest =
            serde_json::from_str(&text).map_err(|err| HqError::Invalid(err.to_string()))?;
        return Ok((manifest, dir));
    };
    writer.flush()?;
    let manifest = SnapshotManifest {
        protocol: PROTOCOL_VERSION,
        snapshot_id: snapshot_id.clone(),
        store_id,
        cursor: head.cursor,
        created_at: now.to_string(),
        total_records: writer.total,
        chunks: std::mem::take(&mut writer.chunks),
        model: head.model,
        offer_model: head.offer_model,
    };
    let text = serde_json::to_string(&manifest).map_err(|err| HqError::Invalid(err.to_string()))?;
    std::fs::write(building.join("manifest.json"), text).map_err(|e| io(&building, e))?;
    // Another HQ instance sharing the folder may have finished the same
    // snapshot meanwhile: its copy stands, this one goes.
    if let Err(err) = std::fs::rename(&building, &dir) {
        std::fs::remove_dir_all(&building).ok();
        if !dir.join("manifest.json").is_file() {
            return Err(io(&dir, err));
        }
    }
    // Older snapshots of this store are no longer offered; a build left
    // behind by a crashed builder goes after an hour (one under way stays).
    if let Ok(entries) = std::fs::read_dir(folder) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let older = name != snapshot_id && rest.bytes().all(|b| b.is_ascii_digit());
            let abandoned = rest.contains(".building-")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|at| at.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(3600));
            if older || abandoned {
                std::fs::remove_dir_all(entry.path()).ok();
            }
        }
    }
    Ok((manifest, dir))
}

fn io(path: &Path, source: std::io::Error) -> HqError {
    HqError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Deletes every snapshot (after an erasure: any may hold the member's
/// record; stores ask for a new one).
pub fn remove_all(folder: &Path) -> Result<(), HqError> {
    match std::fs::read_dir(folder) {
        Ok(entries) => {
            for entry in entries {
                let path = entry.map_err(|e| io(folder, e))?.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).map_err(|e| io(&path, e))?;
                } else {
                    std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                }
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io(folder, err)),
    }
}

/// The store's newest snapshot if it was built less than `max_age` ago. A
/// store bootstraps from it and then catches up through the feed, so a slow
/// or interrupted bootstrap resumes on the same chunks while HQ keeps changing.
fn recent_snapshot(
    folder: &Path,
    prefix: &str,
    max_age: std::time::Duration,
) -> Option<(SnapshotManifest, PathBuf)> {
    std::fs::read_dir(folder)
        .ok()?
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_prefix(prefix)
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|entry| {
            let manifest_path = entry.path().join("manifest.json");
            let age = std::fs::metadata(&manifest_path)
                .ok()?
                .modified()
                .ok()?
                .elapsed()
                .ok()?;
            if age > max_age {
                return None;
            }
            let text = std::fs::read_to_string(&manifest_path).ok()?;
            let manifest: SnapshotManifest = serde_json::from_str(&text).ok()?;
            Some((manifest, entry.path()))
        })
        .max_by_key(|(manifest, _)| manifest.cursor)
}

#[derive(Debug, Clone)]
struct Started {
    snapshot_id: String,
    building: PathBuf,
}

/// A [`SnapshotSink`] writing chunk files into `<folder>/<id>.building`.
struct ChunkWriter {
    /// Whom the snapshot is for ([`for_kind`]).
    kind: DeviceKind,
    card_key: [u8; 32],
    folder: PathBuf,
    prefix: String,
    chunk_records: usize,
    started: Option<Started>,
    chunks: Vec<ChunkInfo>,
    /// Buffered: flate2 zeroes its 32 KiB output buffer on every write call,
    /// which cost three quarters of a snapshot build with one write per record.
    current: Option<std::io::BufWriter<flate2::write::GzEncoder<Vec<u8>>>>,
    records: u64,
    total: u64,
}

impl SnapshotSink for ChunkWriter {
    fn begin(&mut self, cursor: u64) -> Result<bool, HqError> {
        let snapshot_id = format!("{}{cursor}", self.prefix);
        // Each builder (process and thread) writes a folder of its own.
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce).map_err(|_| HqError::Invalid("no randomness".into()))?;
        let building = self.folder.join(format!(
            "{snapshot_id}.building-{}-{}",
            std::process::id(),
            hex::encode(nonce)
        ));
        let built = self.folder.join(&snapshot_id).join("manifest.json");
        let reuse = std::fs::read_to_string(built)
            .ok()
            .and_then(|text| serde_json::from_str::<SnapshotManifest>(&text).ok())
            .is_some();
        self.started = Some(Started {
            snapshot_id,
            building: building.clone(),
        });
        if reuse {
            return Ok(false);
        }
        std::fs::remove_dir_all(&building).ok();
        std::fs::create_dir_all(&building).map_err(|e| io(&building, e))?;
        Ok(true)
    }

    fn record(&mut self, change: Change) -> Result<(), HqError> {
        let Some(change) = for_kind(self.kind, &self.card_key, change) else {
            return Ok(());
        };
        let encoder = self.current.get_or_insert_with(|| {
            std::io::BufWriter::with_capacity(
                1 << 20,
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
            )
        });
        serde_json::to_writer(&mut *encoder, &change)
            .map_err(|err| HqError::Invalid(err.to_string()))?;
        encoder
            .write_all(b"\n")
            .map_err(|source| io(&self.folder, source))?;
        self.records += 1;
        self.total += 1;
        if self.records as usize >= self.chunk_records {
            self.flush()?;
        }
        Ok(())
    }
}

impl ChunkWriter {
    fn flush(&mut self) -> Result<(), HqError> {
        let Some(encoder) = self.current.take() else {
            return Ok(());
        };
        let dir = match &self.started {
            Some(started) => started.building.clone(),
            None => {
                return Err(HqError::Invalid(
                    "a record before the snapshot began".into(),
                ));
            }
        };
        let bytes = encoder
            .into_inner()
            .map_err(|err| io(&dir, err.into_error()))?
            .finish()
            .map_err(|e| io(&dir, e))?;
        let index = self.chunks.len() as u32;
        std::fs::write(dir.join(chunk_name(index)), &bytes).map_err(|e| io(&dir, e))?;
        self.chunks.push(ChunkInfo {
            index,
            sha256: sha256_hex(&bytes),
            bytes: bytes.len() as u64,
            records: self.records,
        });
        self.records = 0;
        Ok(())
    }
}
