//! The model artifact: a versioned, checksummed file format for a fitted
//! [`Model`], and its storage in the replica (`model_artifacts`).
//!
//! Layout (little-endian): magic `AISLEREC`, format version (u32), payload
//! length (u64), SHA-256 of the payload (32 bytes), payload (postcard encoding
//! of [`Artifact`]). A reader refuses anything that is short, of another
//! format, or whose bytes do not hash to the recorded checksum, with an error
//! that says which, and so is a payload that decodes but whose arrays do not
//! agree ([`Model::check`]); serving then falls back to the previous good
//! artifact.

use crate::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::Model;

pub const MAGIC: &[u8; 8] = b"AISLEREC";
/// Bumped whenever the payload's shape changes (3: neighbour lists in flat
/// arrays, checked on reading).
pub const FORMAT_VERSION: u32 = 3;
const HEADER: usize = 8 + 4 + 8 + 32;

/// What an artifact holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    /// Purchases strictly before this time were seen (`YYYY-MM-DD ...`).
    pub trained_until: String,
    pub created_at: String,
    pub seed: u64,
    pub model: Model,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("model artifact is truncated: {0} bytes, a header alone is {HEADER}")]
    Truncated(usize),
    #[error("not an Aisle recommendation artifact (bad magic bytes)")]
    BadMagic,
    #[error(
        "model artifact has format version {found}; this build reads version {FORMAT_VERSION}: refit or upgrade"
    )]
    Incompatible { found: u32 },
    #[error(
        "model artifact is corrupt: SHA-256 of its {len} payload bytes is {found}, the header says {expected}"
    )]
    Checksum {
        len: usize,
        expected: String,
        found: String,
    },
    #[error("model artifact does not decode: {0}")]
    Decode(String),
    #[error("model artifact decodes but does not hold together: {0}")]
    Inconsistent(String),
    #[error("no usable recommendation model in the replica; run `aisle train`{}", .0.as_deref().map(|e| format!(" (newest: {e})")).unwrap_or_default())]
    Missing(Option<String>),
    #[error("the replica has no purchases to learn from")]
    NoPurchases,
    #[error("{0:?} is not a date (YYYY-MM-DD)")]
    BadDate(String),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes an artifact to bytes.
pub fn encode(artifact: &Artifact) -> Result<Vec<u8>, ArtifactError> {
    let payload =
        postcard::to_allocvec(artifact).map_err(|e| ArtifactError::Decode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Verifies and decodes artifact bytes.
pub fn decode(bytes: &[u8]) -> Result<Artifact, ArtifactError> {
    if bytes.len() < HEADER {
        return Err(ArtifactError::Truncated(bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err(ArtifactError::BadMagic);
    }
    let version = u32::from_le_bytes(
        bytes[8..12]
            .try_into()
            .map_err(|_| ArtifactError::BadMagic)?,
    );
    if version != FORMAT_VERSION {
        return Err(ArtifactError::Incompatible { found: version });
    }
    let len = u64::from_le_bytes(
        bytes[12..20]
            .try_into()
            .map_err(|_| ArtifactError::BadMagic)?,
    ) as usize;
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(ArtifactError::Truncated(bytes.len()));
    }
    let found = Sha256::digest(payload);
    if found.as_slice() != &bytes[20..52] {
        return Err(ArtifactError::Checksum {
            len,
            expected: hex(&bytes[20..52]),
            found: hex(&found),
        });
    }
    let artifact: Artifact =
        postcard::from_bytes(payload).map_err(|e| ArtifactError::Decode(e.to_string()))?;
    artifact
        .model
        .check()
        .map_err(ArtifactError::Inconsistent)?;
    Ok(artifact)
}

/// Stores an artifact in the replica; returns its id.
pub fn store(conn: &Connection, artifact: &Artifact) -> Result<i64, ArtifactError> {
    insert(conn, artifact, &encode(artifact)?, "local")
}

/// One row of `model_artifacts` for an encoded artifact.
fn insert(
    conn: &Connection,
    artifact: &Artifact,
    bytes: &[u8],
    source: &str,
) -> Result<i64, ArtifactError> {
    conn.execute(
        "INSERT INTO model_artifacts (kind, format_version, created_at, trained_until, sha256, size_bytes, source, bytes)
         VALUES ('recommend', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            FORMAT_VERSION,
            artifact.created_at,
            artifact.trained_until,
            hex(&bytes[20..52]),
            bytes.len() as i64,
            source,
            bytes
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A usable artifact and what was skipped to find it.
#[derive(Debug)]
pub struct Loaded {
    pub artifact_id: i64,
    pub artifact: Artifact,
    /// Newer artifacts that were refused, with why.
    pub refused: Vec<(i64, ArtifactError)>,
}

/// The newest artifact that verifies; newer broken ones are reported in `refused`.
pub fn load_newest(conn: &Connection) -> Result<Loaded, ArtifactError> {
    load_newest_above(conn, None)
}

/// The newest artifact with an id above `floor` that verifies (a server
/// holding artifact `floor` decodes only newer ones); `Missing` when none
/// does, with the newest refusal.
pub fn load_newest_above(conn: &Connection, floor: Option<i64>) -> Result<Loaded, ArtifactError> {
    let mut stmt = conn.prepare(
        "SELECT artifact_id, bytes FROM model_artifacts
         WHERE kind = 'recommend' AND artifact_id > ?1 ORDER BY artifact_id DESC",
    )?;
    let mut rows = stmt.query([floor.unwrap_or(i64::MIN)])?;
    let mut refused = Vec::new();
    while let Some(row) = rows.next()? {
        let artifact_id: i64 = row.get(0)?;
        // Decoded from SQLite's own buffer: no second copy of the bytes.
        let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        match decode(bytes) {
            Ok(artifact) => {
                for (id, error) in &refused {
                    tracing::warn!(artifact_id = id, %error, "model artifact refused; serving an older one");
                }
                return Ok(Loaded {
                    artifact_id,
                    artifact,
                    refused,
                });
            }
            Err(error) => refused.push((artifact_id, error)),
        }
    }
    Err(ArtifactError::Missing(
        refused.first().map(|(_, e)| e.to_string()),
    ))
}

/// The newest stored artifact's id, valid or not (one look-up in the
/// `(kind, artifact_id)` index): what a server compares with the one it holds.
pub fn newest_id(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT max(artifact_id) FROM model_artifacts WHERE kind = 'recommend'")?
        .query_row([], |row| row.get(0))
}

/// Size in bytes of the newest stored artifact, if any.
pub fn newest_size(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT size_bytes FROM model_artifacts WHERE kind = 'recommend' ORDER BY artifact_id DESC LIMIT 1",
        [],
        |row| row.get(0),
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::model::Neighbors;

    fn sample() -> Artifact {
        Artifact {
            trained_until: "2017-09-25".into(),
            created_at: "2026-01-01 00:00:00".into(),
            seed: 1,
            model: Model {
                products: vec![10, 20, 30],
                item_kind: vec![0; 3],
                kinds: vec!["BREAD".into()],
                kind_top: vec![vec![2, 0]],
                kind_share: vec![0.2, 0.3, 0.5],
                popularity: vec![1.0; 3],
                recent_popularity: vec![1.0; 3],
                popular: vec![2, 0, 1],
                neighbors: Neighbors::from_lists(&[
                    vec![(2, 0.5), (1, 0.25)],
                    vec![],
                    vec![(0, 0.5)],
                ]),
                shopper_neighbors: Neighbors::from_lists(&[vec![], vec![], vec![]]),
                repeat_rate: vec![0.5; 3],
                repeat_interval: vec![7.0; 3],
                new_buyers: vec![0.0; 3],
                ..Model::default()
            },
        }
    }

    #[test]
    fn neighbour_lists_read_back_per_item() {
        let back = decode(&encode(&sample()).expect("encode")).expect("decode");
        let of = |item| back.model.neighbors.of(item).collect::<Vec<_>>();
        assert_eq!(of(0), vec![(2, 0.5), (1, 0.25)]);
        assert_eq!(of(1), vec![]);
        assert_eq!(of(2), vec![(0, 0.5)]);
        assert_eq!(of(3), vec![], "an item past the lists has none");
        assert_eq!(back.model.neighbors.n_items(), 3);
        assert_eq!(back.model.neighbors.n_entries(), 3);
        assert_eq!(
            back.model.shopper_neighbors.of(1).count(),
            0,
            "empty lists stay empty"
        );
        // No lists at all (nobody bought two things together) is a model too.
        let mut none = sample();
        none.model.neighbors = Neighbors::default();
        let back = decode(&encode(&none).expect("encode")).expect("no lists is fine");
        assert_eq!(back.model.neighbors.of(0).count(), 0);
    }

    #[test]
    fn an_artifact_that_does_not_hold_together_is_refused() {
        // Well formed and checksummed (HQ signed what it sent), but naming a
        // product the model does not have: serving would index past the end.
        let mut lying = sample();
        lying.model.neighbors = Neighbors::from_lists(&[vec![(7, 0.5)], vec![], vec![]]);
        let error = decode(&encode(&lying).expect("encode")).expect_err("refused");
        assert!(matches!(error, ArtifactError::Inconsistent(_)), "{error}");
        assert!(
            error.to_string().contains("neighbour 7 of 3 items"),
            "{error}"
        );

        let mut short = sample();
        short.model.popularity.pop();
        let error = decode(&encode(&short).expect("encode")).expect_err("refused");
        assert!(
            error.to_string().contains("2 popularity for 3 products"),
            "{error}"
        );

        let mut lists = sample();
        lists.model.shopper_neighbors = Neighbors::from_lists(&[vec![]]);
        let error = decode(&encode(&lists).expect("encode")).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("shoppers' neighbours: 2 list starts for 3 items"),
            "{error}"
        );

        let mut kinds = sample();
        kinds.model.item_kind[1] = 4;
        let error = decode(&encode(&kinds).expect("encode")).expect_err("refused");
        assert!(error.to_string().contains("beyond the 1 kinds"), "{error}");
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&sample()).expect("encode");
        let back = decode(&bytes).expect("decode");
        assert_eq!(back.model.products, vec![10, 20, 30]);
        assert_eq!(back.model.popular, vec![2, 0, 1]);
        assert_eq!(back.trained_until, "2017-09-25");
    }

    #[test]
    fn every_kind_of_damage_is_named() {
        let bytes = encode(&sample()).expect("encode");
        assert!(matches!(
            decode(&bytes[..10]),
            Err(ArtifactError::Truncated(10))
        ));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(matches!(decode(&magic), Err(ArtifactError::BadMagic)));
        let mut version = bytes.clone();
        version[8] = 99;
        assert!(matches!(
            decode(&version),
            Err(ArtifactError::Incompatible { found: 99 })
        ));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let error = decode(&flipped).expect_err("corrupt");
        assert!(matches!(error, ArtifactError::Checksum { .. }), "{error}");
        assert!(error.to_string().contains("corrupt"));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(ArtifactError::Truncated(_))
        ));
    }

    #[test]
    fn a_corrupt_newest_artifact_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("open");
        assert!(matches!(
            load_newest(&conn),
            Err(ArtifactError::Missing(None))
        ));
        let first = store(&conn, &sample()).expect("store");
        let mut newer = sample();
        newer.trained_until = "2017-10-02".into();
        let second = store(&conn, &newer).expect("store");
        assert_eq!(load_newest(&conn).expect("load").artifact_id, second);
        // Damage the newest in place.
        let mut bytes: Vec<u8> = conn
            .query_row(
                "SELECT bytes FROM model_artifacts WHERE artifact_id = ?1",
                [second],
                |r| r.get(0),
            )
            .expect("read");
        bytes[60] ^= 0xff;
        conn.execute(
            "UPDATE model_artifacts SET bytes = ?2 WHERE artifact_id = ?1",
            params![second, bytes],
        )
        .expect("damage");
        let loaded = load_newest(&conn).expect("falls back");
        assert_eq!(loaded.artifact_id, first);
        assert_eq!(loaded.artifact.trained_until, "2017-09-25");
        assert_eq!(loaded.refused.len(), 1);
        assert!(matches!(
            loaded.refused[0].1,
            ArtifactError::Checksum { .. }
        ));
    }
}

/// An artifact's row as shipped by sync: metadata and the exact bytes.
#[derive(Debug, Clone)]
pub struct Shipped {
    pub artifact_id: i64,
    pub format_version: u32,
    pub created_at: String,
    pub trained_until: String,
    pub bytes: Vec<u8>,
}

/// The newest recommendation artifact's row, whatever it holds.
pub fn newest_shipped(conn: &Connection) -> rusqlite::Result<Option<Shipped>> {
    conn.query_row(
        "SELECT artifact_id, format_version, created_at, trained_until, bytes FROM model_artifacts
         WHERE kind = 'recommend' ORDER BY artifact_id DESC LIMIT 1",
        [],
        |row| {
            Ok(Shipped {
                artifact_id: row.get(0)?,
                format_version: row.get(1)?,
                created_at: row.get(2)?,
                trained_until: row.get(3)?,
                bytes: row.get(4)?,
            })
        },
    )
    .optional()
}

/// One artifact's bytes.
pub fn bytes_of(conn: &Connection, artifact_id: i64) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT bytes FROM model_artifacts WHERE artifact_id = ?1 AND kind = 'recommend'",
        [artifact_id],
        |row| row.get(0),
    )
    .optional()
}

/// Keeps an artifact received from HQ (after checking it decodes: magic,
/// format version, payload checksum). Returns its local id.
pub fn store_received(conn: &Connection, bytes: &[u8]) -> Result<i64, ArtifactError> {
    insert(conn, &decode(bytes)?, bytes, "hq")
}

/// Fits the model on every purchase before `until` (default: the day after
/// the newest purchase) and returns the artifact: what `aisle train` and
/// HQ's `aisle-hq train` both store.
pub fn fit_from(
    conn: &Connection,
    until: Option<&str>,
    seed: u64,
    now: Timestamp,
) -> Result<Artifact, ArtifactError> {
    use super::history::{History, day_of};
    let until = match until {
        Some(until) => until.to_owned(),
        None => {
            let last: Option<String> =
                conn.query_row("SELECT max(purchased_at) FROM baskets", [], |r| r.get(0))?;
            let day = last
                .as_deref()
                .and_then(day_of)
                .ok_or(ArtifactError::NoPurchases)?;
            crate::dates::date_string(i64::from(day) + 1)
        }
    };
    let as_of = day_of(&until).ok_or_else(|| ArtifactError::BadDate(until.clone()))?;
    let history = History::load(conn, "0000", &until)?;
    let kinds = super::model::kinds_of(conn, &history.products)?;
    let options = super::model::FitOptions {
        seed,
        ..super::model::FitOptions::default()
    };
    Ok(Artifact {
        trained_until: until,
        created_at: now.to_string(),
        seed,
        model: super::model::fit(&history, &kinds, as_of, &options),
    })
}
