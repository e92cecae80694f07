//! The bootstrap's staging files, sealed: a snapshot's chunks wait on disk
//! until every one is verified (so a killed bootstrap resumes), and they
//! hold the partition's members, so each is written encrypted and
//! authenticated (AES-256-GCM, a random nonce per file) under a key derived
//! from the replica's database key. A plain replica (encryption off) seals
//! under a key of this process alone: its chunks are fetched again after a
//! restart.

use std::path::Path;

use hmac::Mac;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The key a replica's staging files are sealed with.
pub struct StagingKey(LessSafeKey);

impl std::fmt::Debug for StagingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StagingKey")
    }
}

/// Why a staging file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("staging file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "staging file {path} does not open with this replica's key (damaged, or from another replica)"
    )]
    Unsealed { path: String },
    #[error("no randomness from the operating system")]
    Random,
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl StagingKey {
    /// The staging key of the replica `conn` is connected to.
    pub fn for_replica(conn: &rusqlite::Connection) -> Result<Self, StagingError> {
        let mut material = [0u8; 32];
        match crate::replica::secret(conn, crate::vault::DATABASE_KEY)? {
            Some(db_key)
                if crate::replica::file_state(Path::new(conn.path().unwrap_or_default()))
                    .is_ok_and(|state| state == crate::replica::FileState::Encrypted) =>
            {
                let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(
                    db_key.expose().trim().as_bytes(),
                )
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
                mac.update(b"aisle bootstrap staging v1");
                material.copy_from_slice(&mac.finalize().into_bytes());
            }
            _ => getrandom::getrandom(&mut material).map_err(|_| StagingError::Random)?,
        }
        let key = UnboundKey::new(&AES_256_GCM, &material)
            .unwrap_or_else(|_| unreachable!("32 bytes is an AES-256 key"));
        zeroize::Zeroize::zeroize(&mut material);
        Ok(Self(LessSafeKey::new(key)))
    }

    /// Writes `plain` sealed to `path`, whole or not at all, 0600.
    pub fn write(&self, path: &Path, plain: &[u8]) -> Result<(), StagingError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|_| StagingError::Random)?;
        let mut body = plain.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
            .map_err(|_| StagingError::Random)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + body.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        crate::vault::write_private(path, &sealed).map_err(|source| StagingError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The plain bytes of a sealed staging file.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, StagingError> {
        let mut bytes = std::fs::read(path).map_err(|source| StagingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let unsealed = || StagingError::Unsealed {
            path: path.display().to_string(),
        };
        if bytes.len() < NONCE_LEN {
            return Err(unsealed());
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| unsealed())?;
        let plain_len = self
            .0
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .map_err(|_| unsealed())?
            .len();
        sealed.truncate(plain_len);
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StagingKey {
        StagingKey(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &[9u8; 32]).expect("key"),
        ))
    }

    #[test]
    fn a_sealed_file_reads_back_and_hides_its_text() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chunk-00000.jsonl.gz");
        key()
            .write(&path, b"Ada Lovelace, 555-0100")
            .expect("write");
        let raw = std::fs::read(&path).expect("raw");
        assert!(!raw.windows(4).any(|w| w == b"Love"), "plain text on disk");
        let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join("chunk-00000.jsonl.gz.partial").exists());
        assert_eq!(key().read(&path).expect("read"), b"Ada Lovelace, 555-0100");
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chunk-00000.jsonl.gz");
        key().write(&path, b"members").expect("write");
        let other = StagingKey(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &[8u8; 32]).expect("key"),
        ));
        assert!(matches!(
            other.read(&path),
            Err(StagingError::Unsealed { .. })
        ));
        let mut raw = std::fs::read(&path).expect("raw");
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&path, raw).expect("damage");
        assert!(matches!(
            key().read(&path),
            Err(StagingError::Unsealed { .. })
        ));
    }
}
