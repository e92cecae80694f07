//! Where a store device keeps its secrets: never in the replica.
//!
//! Four secrets belong to a replica: the key its file is encrypted with
//! ([`DATABASE_KEY`], SQLCipher), the device's bearer secret at HQ
//! ([`HQ_SECRET`]), its coupon issuing key ([`ISSUER_KEY`]) and its store's
//! card key ([`CARD_KEY`]). A [`Vault`] keeps them with a key provider chosen
//! at provisioning through `AISLE_KEY_PROVIDER`:
//!
//! - `systemd`: systemd credentials. Written sealed by `systemd-creds
//!   encrypt` (to the TPM2 where the machine has one, else to the host's
//!   credential secret) into a credential store folder (`AISLE_CREDSTORE`,
//!   default `/etc/credstore.encrypted`) as `aisle-<name>`; read from
//!   `$CREDENTIALS_DIRECTORY`, where systemd puts them decrypted for the
//!   unit that names them (`LoadCredentialEncrypted=`), or decrypted by
//!   `systemd-creds` (root, at provisioning). One replica per machine.
//! - `secret-service`: the desktop's keyring (GNOME Keyring, KWallet)
//!   through libsecret's `secret-tool`, one item per replica and secret.
//! - `file`: 0600 files in a 0700 folder beside the replica
//!   (`<replica>.keys/`). For development: anyone who copies the disk
//!   copies the keys with it.
//!
//! With nothing configured, a process running under a unit that was given
//! the database key's credential uses `systemd`; otherwise the `file`
//! provider is chosen with a warning that says what a real device uses.
//! Secrets travel to and from the helpers on their standard input and
//! output, never on a command line, and are never logged.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The replica's SQLCipher key: 64 hex digits (a raw 256-bit key).
pub const DATABASE_KEY: &str = "db-key";
/// The device's bearer secret at HQ.
pub const HQ_SECRET: &str = "hq-secret";
/// The device's coupon issuing key: `<key id>:<secret, hex>`.
pub const ISSUER_KEY: &str = "coupon-issuer-key";
/// The store's card key (hex), on a device that holds card numbers keyed.
pub const CARD_KEY: &str = "card-key";

/// The environment variable that chooses the key provider.
pub const PROVIDER_VAR: &str = "AISLE_KEY_PROVIDER";
/// The systemd provider's credential store folder.
pub const CREDSTORE_VAR: &str = "AISLE_CREDSTORE";
/// What `systemd-creds encrypt --with-key=` seals to (default `auto`: the
/// TPM2 and the host's secret where there is a TPM2, else the host's).
pub const SEAL_VAR: &str = "AISLE_CREDS_WITH_KEY";

/// A secret's text; never printed (its `Debug` says only its length).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// A secret as a provider hands it back: surrounding white space (a
    /// newline an operator's editor added) is not part of it.
    fn read(text: String) -> Self {
        let trimmed = text.trim();
        if trimmed.len() == text.len() {
            Self(text)
        } else {
            let secret = Self(trimmed.to_owned());
            let mut text = text;
            zeroize::Zeroize::zeroize(&mut text);
            secret
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Where a vault keeps its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    Systemd {
        credstore: PathBuf,
        seal: String,
        /// `$CREDENTIALS_DIRECTORY` of the running unit, if any.
        runtime: Option<PathBuf>,
    },
    SecretService,
    KeyFile {
        dir: PathBuf,
    },
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provider::Systemd { credstore, .. } => {
                write!(f, "systemd credentials ({})", credstore.display())
            }
            Provider::SecretService => write!(f, "the Secret Service keyring"),
            Provider::KeyFile { dir } => write!(f, "the key file folder {}", dir.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{PROVIDER_VAR}={0:?} is not a key provider: use systemd, secret-service or file")]
    UnknownProvider(String),
    #[error("cannot read secret {name} from {provider}: {reason}")]
    Read {
        provider: String,
        name: String,
        reason: String,
    },
    #[error("cannot keep secret {name} in {provider}: {reason}")]
    Write {
        provider: String,
        name: String,
        reason: String,
    },
    #[error(
        "key file {path} can be read by others (mode {mode:o}): refused; make it the owner's alone (chmod 600)"
    )]
    Exposed { path: String, mode: u32 },
    #[error("an in-memory database has no vault")]
    NoFile,
}

/// A replica's secrets, with the provider that keeps them.
#[derive(Debug, Clone)]
pub struct Vault {
    replica: PathBuf,
    provider: Provider,
}

/// Secrets read through a helper process, kept for the life of the process
/// (the kiosk reads the card key on every scan).
static CACHE: Mutex<Option<HashMap<(PathBuf, String), Secret>>> = Mutex::new(None);

fn cached(replica: &Path, name: &str) -> Option<Secret> {
    let cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .as_ref()
        .and_then(|map| map.get(&(replica.to_path_buf(), name.to_owned())).cloned())
}

fn remember(replica: &Path, name: &str, secret: Option<&Secret>) {
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let map = cache.get_or_insert_with(HashMap::new);
    let key = (replica.to_path_buf(), name.to_owned());
    match secret {
        Some(secret) => {
            map.insert(key, secret.clone());
        }
        None => {
            map.remove(&key);
        }
    }
}

impl Vault {
    /// The vault of the replica at `path`, its provider chosen from the
    /// environment (see the module's documentation).
    pub fn for_replica(path: &Path) -> Result<Self, VaultError> {
        let replica = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let chosen = std::env::var(PROVIDER_VAR).ok().filter(|v| !v.is_empty());
        let runtime = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let systemd = || Provider::Systemd {
            credstore: std::env::var_os(CREDSTORE_VAR)
                .map_or_else(|| PathBuf::from("/etc/credstore.encrypted"), PathBuf::from),
            seal: std::env::var(SEAL_VAR).unwrap_or_else(|_| "auto".into()),
            runtime: runtime.clone(),
        };
        let provider = match chosen.as_deref() {
            Some("systemd") => systemd(),
            Some("secret-service") => Provider::SecretService,
            Some("file") => Provider::KeyFile {
                dir: key_dir(&replica),
            },
            Some(other) => return Err(VaultError::UnknownProvider(other.to_owned())),
            None if runtime
                .as_ref()
                .is_some_and(|dir| dir.join(credential_name(DATABASE_KEY)).exists()) =>
            {
                systemd()
            }
            None => {
                warn_fallback(&replica);
                Provider::KeyFile {
                    dir: key_dir(&replica),
                }
            }
        };
        Ok(Self { replica, provider })
    }

    /// The vault of the file `conn` is connected to.
    pub fn of(conn: &rusqlite::Connection) -> Result<Self, VaultError> {
        match conn.path().filter(|p| !p.is_empty()) {
            Some(path) => Self::for_replica(Path::new(path)),
            None => Err(VaultError::NoFile),
        }
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// A new random key kept under `name` (replacing any).
    pub fn make_key(&self, name: &str) -> Result<Secret, VaultError> {
        let key = random_key()?;
        self.put(name, &key)?;
        Ok(key)
    }

    /// The key kept under `name`, made (random) when there is none.
    pub fn key_or_make(&self, name: &str) -> Result<Secret, VaultError> {
        match self.get(name)? {
            Some(key) => Ok(key),
            None => self.make_key(name),
        }
    }

    /// A secret, `None` when the provider has none by that name.
    pub fn get(&self, name: &str) -> Result<Option<Secret>, VaultError> {
        match &self.provider {
            Provider::KeyFile { dir } => read_key_file(&dir.join(name), &self.provider, name),
            Provider::Systemd {
                credstore, runtime, ..
            } => {
                if let Some(found) = runtime
                    .as_ref()
                    .map(|dir| dir.join(credential_name(name)))
                    .filter(|path| path.exists())
                {
                    let text = std::fs::read_to_string(&found)
                        .map_err(|err| self.read_error(name, err.to_string()))?;
                    return Ok(Some(Secret::read(text)));
                }
                if let Some(secret) = cached(&self.replica, name) {
                    return Ok(Some(secret));
                }
                let sealed = credstore.join(credential_name(name));
                if !sealed.exists() {
                    return Ok(None);
                }
                let text = helper(
                    Command::new("systemd-creds")
                        .arg("decrypt")
                        .arg(format!("--name={}", credential_name(name)))
                        .arg(&sealed)
                        .arg("-"),
                    None,
                )
                .map_err(|reason| self.read_error(name, reason))?;
                let secret = Secret::read(text);
                remember(&self.replica, name, Some(&secret));
                Ok(Some(secret))
            }
            Provider::SecretService => {
                if let Some(secret) = cached(&self.replica, name) {
                    return Ok(Some(secret));
                }
                let mut lookup = Command::new("secret-tool");
                lookup.arg("lookup").args(self.attributes(name));
                match helper(&mut lookup, None) {
                    Ok(text) => {
                        let secret = Secret::read(text);
                        remember(&self.replica, name, Some(&secret));
                        Ok(Some(secret))
                    }
                    // `secret-tool lookup` fails quietly when there is no such item.
                    Err(reason) if reason.is_empty() => Ok(None),
                    Err(reason) => Err(self.read_error(name, reason)),
                }
            }
        }
    }

    /// Keeps a secret (replacing any of that name).
    pub fn put(&self, name: &str, secret: &Secret) -> Result<(), VaultError> {
        let written = match &self.provider {
            Provider::KeyFile { dir } => write_key_file(dir, name, secret.expose()),
            Provider::Systemd {
                credstore, seal, ..
            } => private_dir(credstore).and_then(|()| {
                let sealed = credstore.join(credential_name(name));
                let partial = sealed.with_extension("partial");
                helper(
                    Command::new("systemd-creds")
                        .arg("encrypt")
                        .arg(format!("--name={}", credential_name(name)))
                        .arg(format!("--with-key={seal}"))
                        .arg("-")
                        .arg(&partial),
                    Some(secret.expose()),
                )?;
                std::fs::rename(&partial, &sealed).map_err(|err| err.to_string())
            }),
            Provider::SecretService => {
                let label = format!("Aisle {name} of {}", self.replica.display());
                helper(
                    Command::new("secret-tool")
                        .arg("store")
                        .arg(format!("--label={label}"))
                        .args(self.attributes(name)),
                    Some(secret.expose()),
                )
                .map(drop)
            }
        };
        written.map_err(|reason| VaultError::Write {
            provider: self.provider.to_string(),
            name: name.to_owned(),
            reason,
        })?;
        if !matches!(self.provider, Provider::KeyFile { .. }) {
            remember(&self.replica, name, Some(secret));
        }
        Ok(())
    }

    /// Forgets a secret (absent already is fine).
    pub fn remove(&self, name: &str) -> Result<(), VaultError> {
        remember(&self.replica, name, None);
        let removed = match &self.provider {
            Provider::KeyFile { dir } => remove_file(&dir.join(name)),
            Provider::Systemd { credstore, .. } => {
                remove_file(&credstore.join(credential_name(name)))
            }
            Provider::SecretService => helper(
                Command::new("secret-tool")
                    .arg("clear")
                    .args(self.attributes(name)),
                None,
            )
            .map(drop)
            .or_else(|reason| {
                if reason.is_empty() {
                    Ok(())
                } else {
                    Err(reason)
                }
            }),
        };
        removed.map_err(|reason| VaultError::Write {
            provider: self.provider.to_string(),
            name: name.to_owned(),
            reason,
        })
    }

    fn attributes(&self, name: &str) -> [String; 6] {
        [
            "application".into(),
            "aisle".into(),
            "replica".into(),
            self.replica.display().to_string(),
            "secret".into(),
            name.to_owned(),
        ]
    }

    fn read_error(&self, name: &str, reason: String) -> VaultError {
        VaultError::Read {
            provider: self.provider.to_string(),
            name: name.to_owned(),
            reason,
        }
    }
}

/// A new random 256-bit key as 64 hex digits.
pub fn random_key() -> Result<Secret, VaultError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|err| VaultError::Write {
        provider: "the operating system".into(),
        name: DATABASE_KEY.into(),
        reason: format!("no randomness: {err}"),
    })?;
    let secret = Secret::new(hex::encode(bytes));
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(secret)
}

/// The folder of the `file` provider for a replica.
pub fn key_dir(replica: &Path) -> PathBuf {
    let mut dir = replica.as_os_str().to_owned();
    dir.push(".keys");
    PathBuf::from(dir)
}

/// The systemd credential name of a secret.
pub fn credential_name(name: &str) -> String {
    format!("aisle-{name}")
}

/// True the first time this process asks about `path` in `seen`: a
/// warning about a replica is logged once, not at every connection.
pub(crate) fn first_time(seen: &Mutex<Vec<PathBuf>>, path: &Path) -> bool {
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let first = !seen.iter().any(|p| p == path);
    if first {
        seen.push(path.to_path_buf());
    }
    first
}

fn warn_fallback(replica: &Path) {
    static WARNED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    if first_time(&WARNED, replica) {
        tracing::warn!(
            keys = %key_dir(replica).display(),
            "no key provider configured ({PROVIDER_VAR}): this replica's keys are kept in 0600 files beside it, \
             which protects nothing if the disk is copied; a real device uses a TPM-sealed systemd credential \
             ({PROVIDER_VAR}=systemd) or the OS keyring ({PROVIDER_VAR}=secret-service): see docs/DEPLOY.md"
        );
    }
}

/// Runs a helper, feeding `input` on its standard input; its standard
/// output on success, else its standard error (empty when it said nothing).
fn helper(command: &mut Command, input: Option<&str>) -> Result<String, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run {program}: {err}"))?;
    // The child's stdin closes when dropped here, after the secret (if any).
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        stdin
            .write_all(input.as_bytes())
            .map_err(|err| format!("{program}: {err}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|err| format!("{program}: {err}"))?;
    if output.status.success() {
        String::from_utf8(output.stdout).map_err(|_| format!("{program} answered non-UTF-8"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|err| format!("{}: {err}", dir.display()))
}

fn read_key_file(
    path: &Path,
    provider: &Provider,
    name: &str,
) -> Result<Option<Secret>, VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(VaultError::Read {
                provider: provider.to_string(),
                name: name.to_owned(),
                reason: err.to_string(),
            });
        }
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    std::fs::read_to_string(path)
        .map(|text| Some(Secret::read(text)))
        .map_err(|err| VaultError::Read {
            provider: provider.to_string(),
            name: name.to_owned(),
            reason: err.to_string(),
        })
}

/// Writes a key file whole or not at all, its owner's alone.
fn write_key_file(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    private_dir(dir)?;
    let path = dir.join(name);
    write_private(&path, text.as_bytes()).map_err(|err| format!("{}: {err}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|err| format!("{}: {err}", dir.display()))
}

/// Writes `bytes` to `path` whole or not at all (a `.partial` beside it,
/// synced, then renamed), mode 0600: key files and staged chunks.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

fn remove_file(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(format!("{}: {err}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file_vault(dir: &Path) -> Vault {
        Vault {
            replica: dir.join("store.db"),
            provider: Provider::KeyFile {
                dir: key_dir(&dir.join("store.db")),
            },
        }
    }

    #[test]
    fn a_key_file_is_its_owners_alone_and_written_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = file_vault(dir.path());
        assert_eq!(vault.get(HQ_SECRET).expect("read"), None);
        vault.put(HQ_SECRET, &Secret::new("s3cret")).expect("put");
        let path = key_dir(&dir.path().join("store.db")).join(HQ_SECRET);
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        assert_eq!(
            vault
                .get(HQ_SECRET)
                .expect("read")
                .map(|s| s.expose().to_owned()),
            Some("s3cret".to_owned())
        );
        vault.remove(HQ_SECRET).expect("remove");
        assert_eq!(vault.get(HQ_SECRET).expect("read"), None);
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = file_vault(dir.path());
        vault.put(CARD_KEY, &Secret::new("k")).expect("put");
        let path = key_dir(&dir.path().join("store.db")).join(CARD_KEY);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = vault.get(CARD_KEY).expect_err("refused");
        assert!(
            matches!(err, VaultError::Exposed { mode: 0o644, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("do-not-print");
        assert_eq!(format!("{secret:?}"), "Secret(12 bytes)");
    }
}
