//! HQ's Ed25519 signing key: created once, kept in the data folder, and the
//! signing of what stores apply.

use std::path::Path;

use aisle_proto::Signed;
use anyhow::Context;
use ed25519_dalek::{Signer as _, SigningKey};

pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public", &self.public_hex())
            .finish()
    }
}

impl Signer {
    /// Loads the key from `path` (hex seed), creating it (mode 0600) on first run.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if let Ok(text) = std::fs::read_to_string(path) {
            let key = aisle_core::keys::parse_secret(text.trim())
                .with_context(|| format!("{} is not a 32-byte hex key", path.display()))?;
            return Ok(Self { key });
        }
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
        let partial = path.with_extension("partial");
        std::fs::write(&partial, hex::encode(seed))
            .with_context(|| format!("writing {}", partial.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::rename(&partial, path)?;
        Ok(Self::from_seed(seed))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// HQ's verifying key, hex: what a store is given at provisioning.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// A store's card key (docs/PROTOCOL.md, "Least data per device kind"):
    /// SHA-256 of a domain label, HQ's seed and the store id, so HQ keeps no
    /// further secret. Kiosks and tills of the store hold card numbers keyed
    /// with it (`aisle_core::card::keyed`).
    pub fn card_key(&self, store_id: i64) -> [u8; 32] {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"aisle card key v1\0");
        hasher.update(self.key.to_bytes());
        hasher.update(store_id.to_le_bytes());
        hasher.finalize().into()
    }

    /// Serializes `value` and signs the exact bytes.
    pub fn sign<T: serde::Serialize>(&self, value: &T) -> Signed {
        let payload = serde_json::to_string(value).unwrap_or_default();
        let signature = self.key.sign(payload.as_bytes());
        Signed {
            payload,
            signature: hex::encode(signature.to_bytes()),
        }
    }
}
