//! The store replica: one SQLite file per store, its schema and its connections.
//!
//! The schema lives in `migrations/` at the repository root as append-only SQL
//! files. They are embedded here at compile time; [`open_writer`] applies the
//! missing ones, each in its own transaction, and records its checksum in
//! `schema_migrations`. A replica whose applied migrations differ from the
//! embedded ones (an edited migration) or that is newer than this binary is
//! refused rather than guessed at.
//!
//! Connections: exactly one writer per replica (importers, sync, the apps'
//! edits), any number of read-only readers. Both get the same per-connection
//! settings (WAL, foreign keys, busy timeout); they are set in code, never
//! assumed from the file.

use std::path::Path;
use std::time::Duration;

use crate::vault::Secret;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1-based schema version this migration produces.
    pub version: u32,
    /// File name in `migrations/`.
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. A test checks this list against the folder.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_replica.sql",
        sql: include_str!("../../../migrations/0001_replica.sql"),
    },
    Migration {
        version: 2,
        name: "0002_member_search.sql",
        sql: include_str!("../../../migrations/0002_member_search.sql"),
    },
    Migration {
        version: 3,
        name: "0003_model_artifacts.sql",
        sql: include_str!("../../../migrations/0003_model_artifacts.sql"),
    },
    Migration {
        version: 4,
        name: "0004_member_keys.sql",
        sql: include_str!("../../../migrations/0004_member_keys.sql"),
    },
    Migration {
        version: 5,
        name: "0005_offers.sql",
        sql: include_str!("../../../migrations/0005_offers.sql"),
    },
    Migration {
        version: 6,
        name: "0006_coupon_ledger.sql",
        sql: include_str!("../../../migrations/0006_coupon_ledger.sql"),
    },
    Migration {
        version: 7,
        name: "0007_staff.sql",
        sql: include_str!("../../../migrations/0007_staff.sql"),
    },
    Migration {
        version: 8,
        name: "0008_device_issuing_keys.sql",
        sql: include_str!("../../../migrations/0008_device_issuing_keys.sql"),
    },
    Migration {
        version: 9,
        name: "0009_audit_actions.sql",
        sql: include_str!("../../../migrations/0009_audit_actions.sql"),
    },
    Migration {
        version: 10,
        name: "0010_coupon_max_value.sql",
        sql: include_str!("../../../migrations/0010_coupon_max_value.sql"),
    },
];

/// The schema version this binary writes.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// How long a connection waits for another connection's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("cannot open replica {path}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "replica {path} has schema version {found}, newer than this build of Aisle supports ({supported}); upgrade Aisle"
    )]
    TooNew {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error(
        "replica {path}: migration {name} was applied with a different text (checksum {found}, this build has {expected}); migrations are append-only"
    )]
    MigrationChanged {
        path: String,
        name: String,
        found: String,
        expected: String,
    },
    #[error("replica {path}: migration {name} failed")]
    Migrate {
        path: String,
        name: String,
        source: rusqlite::Error,
    },
    #[error("cannot create the folder of replica {path}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create replica {path}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not an Aisle replica (no schema); run `aisle init` first")]
    NotInitialized { path: String },
    #[error(
        "replica {path} is encrypted (or not a database at all) and {provider} holds no key for it: it was provisioned with another key provider (set {var}), or its key is lost",
        var = crate::vault::PROVIDER_VAR
    )]
    KeyMissing { path: String, provider: String },
    #[error(
        "replica {path} cannot be read with the key from {provider}: the key is wrong, or the file is not an Aisle replica"
    )]
    WrongKey { path: String, provider: String },
    #[error("replica {path}: {source}")]
    Vault {
        path: String,
        source: crate::vault::VaultError,
    },
    #[error("replica {path} is already encrypted")]
    AlreadyEncrypted { path: String },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// FNV-1a 64 of a migration's text: stable across builds and platforms.
pub fn checksum(sql: &str) -> String {
    format!("{:016x}", crate::rng::fnv1a64(sql.as_bytes()))
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Negative: KiB. 64 MiB of page cache per connection.
    conn.pragma_update(None, "cache_size", -65_536)?;
    // rusqlite keeps 16 prepared statements by default; one store event at
    // HQ alone runs more than that (look-ups, the insert, its rules, the
    // feed), and a statement pushed out is parsed and planned again.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Prepared statements kept per connection (rusqlite keeps 16 by default).
pub const STATEMENT_CACHE: usize = 256;

/// Opens (creating if needed) the replica's single writer connection and brings
/// the schema up to date.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub fn open_writer(path: &Path) -> Result<Connection, ReplicaError> {
    open_writer_at_version(path, latest_version())
}

/// Like [`open_writer`] but migrates only up to `target` (tests build replicas
/// of every earlier schema with it).
pub fn open_writer_at_version(path: &Path, target: u32) -> Result<Connection, ReplicaError> {
    let display = path.display().to_string();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ReplicaError::CreateDir {
            path: display.clone(),
            source,
        })?;
    }
    // A new replica is its owner's alone (0600): it holds members' data and
    // the device's secrets. SQLite gives its WAL and shared-memory files the
    // database file's mode.
    let key = database_key(path, true)?;
    create_private(path).map_err(|source| ReplicaError::Create {
        path: display.clone(),
        source,
    })?;
    let mut conn = Connection::open(path).map_err(|source| ReplicaError::Open {
        path: display.clone(),
        source,
    })?;
    unlock(&conn, path, key.as_ref())?;
    let not_a_replica = |source| ReplicaError::Open {
        path: display.clone(),
        source,
    };
    let journal: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(not_a_replica)?;
    debug_assert!(journal.eq_ignore_ascii_case("wal") || journal.eq_ignore_ascii_case("memory"));
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(not_a_replica)?;
    configure(&conn).map_err(not_a_replica)?;
    migrate(&mut conn, &display, target)?;
    move_secrets_to_vault(&conn, path)?;
    Ok(conn)
}

/// Creates `path` empty with mode 0600 if it does not exist (an existing
/// file keeps its mode).
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// Opens a read-only connection to an existing, up-to-date replica.
pub fn open_reader(path: &Path) -> Result<Connection, ReplicaError> {
    let display = path.display().to_string();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|source| ReplicaError::Open {
        path: display.clone(),
        source,
    })?;
    unlock(&conn, path, database_key(path, false)?.as_ref())?;
    let not_a_replica = |source| ReplicaError::Open {
        path: display.clone(),
        source,
    };
    configure(&conn).map_err(not_a_replica)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(not_a_replica)?;
    let version = schema_version(&conn).map_err(not_a_replica)?;
    if version == 0 {
        return Err(ReplicaError::NotInitialized { path: display });
    }
    if version > latest_version() {
        return Err(ReplicaError::TooNew {
            path: display,
            found: version,
            supported: latest_version(),
        });
    }
    Ok(conn)
}

/// The schema version recorded in the file (0 for an empty file).
pub fn schema_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

fn migrate(conn: &mut Connection, path: &str, target: u32) -> Result<(), ReplicaError> {
    let current = schema_version(conn)?;
    if current > latest_version() {
        return Err(ReplicaError::TooNew {
            path: path.to_owned(),
            found: current,
            supported: latest_version(),
        });
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             checksum   TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (datetime('now'))
         ) STRICT;",
    )?;
    // Applied migrations must be exactly the embedded ones.
    for migration in MIGRATIONS.iter().filter(|m| m.version <= current) {
        let found: Option<String> = conn
            .query_row(
                "SELECT checksum FROM schema_migrations WHERE version = ?1",
                [migration.version],
                |row| row.get(0),
            )
            .optional()?;
        let expected = checksum(migration.sql);
        if let Some(found) = found.filter(|found| *found != expected) {
            return Err(ReplicaError::MigrationChanged {
                path: path.to_owned(),
                name: migration.name.to_owned(),
                found,
                expected,
            });
        }
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target)
    {
        let tx = conn.transaction()?;
        let applied = tx.execute_batch(migration.sql).and_then(|()| {
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (?1, ?2, ?3)",
                params![migration.version, migration.name, checksum(migration.sql)],
            )?;
            tx.pragma_update(None, "user_version", migration.version)
        });
        applied.map_err(|source| ReplicaError::Migrate {
            path: path.to_owned(),
            name: migration.name.to_owned(),
            source,
        })?;
        tx.commit()?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    Ok(())
}

/// Applies an add-on schema (e.g. HQ's own tables) on top of a replica:
/// its migrations are tracked, checksummed and refused when edited exactly
/// like the replica's, in their own table `table` (the replica's
/// `user_version` stays the replica schema's).
pub fn migrate_addon(
    conn: &mut Connection,
    path: &Path,
    table: &str,
    migrations: &[Migration],
) -> Result<(), ReplicaError> {
    let display = path.display().to_string();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             checksum   TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (datetime('now'))
         ) STRICT;"
    ))?;
    let applied: Vec<(u32, String, String)> = {
        let mut stmt = conn.prepare(&format!(
            "SELECT version, name, checksum FROM {table} ORDER BY version"
        ))?;
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    if let Some((found, _, _)) = applied
        .iter()
        .find(|(v, _, _)| *v as usize > migrations.len())
    {
        return Err(ReplicaError::TooNew {
            path: display,
            found: *found,
            supported: migrations.len() as u32,
        });
    }
    for (version, name, found) in &applied {
        let expected = migrations
            .iter()
            .find(|m| m.version == *version)
            .map(|m| checksum(m.sql))
            .unwrap_or_default();
        if *found != expected {
            return Err(ReplicaError::MigrationChanged {
                path: display,
                name: name.clone(),
                found: found.clone(),
                expected,
            });
        }
    }
    for migration in migrations
        .iter()
        .filter(|m| m.version as usize > applied.len())
    {
        let tx = conn.transaction()?;
        let result = tx.execute_batch(migration.sql).and_then(|()| {
            tx.execute(
                &format!("INSERT INTO {table} (version, name, checksum) VALUES (?1, ?2, ?3)"),
                params![migration.version, migration.name, checksum(migration.sql)],
            )
            .map(|_| ())
        });
        result.map_err(|source| ReplicaError::Migrate {
            path: display.clone(),
            name: migration.name.to_owned(),
            source,
        })?;
        tx.commit()?;
        tracing::info!(
            table,
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    Ok(())
}

// Encryption at rest.

/// The environment variable that, set to `off`, makes new replicas plain:
/// only for measuring what encryption costs (`aisle bench`); a device never
/// sets it.
pub const ENCRYPTION_VAR: &str = "AISLE_ENCRYPTION";

/// What a replica file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Absent or empty: a new replica.
    New,
    /// A plain SQLite file.
    Plain,
    /// Anything else: an encrypted file (or not a database at all).
    Encrypted,
}

/// Looks at a replica file's header.
pub fn file_state(path: &Path) -> std::io::Result<FileState> {
    use std::io::Read;
    let mut header = [0u8; 16];
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::New),
        Err(err) => return Err(err),
    };
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(match read {
        0 => FileState::New,
        _ if header[..read] == b"SQLite format 3\0"[..read] => FileState::Plain,
        _ => FileState::Encrypted,
    })
}

fn vault_error(path: &Path) -> impl FnOnce(crate::vault::VaultError) -> ReplicaError {
    let path = path.display().to_string();
    move |source| ReplicaError::Vault { path, source }
}

/// The key to open `path` with: `None` for a plain file; for a new file
/// (`creating`), the vault's key, made when it has none, unless encryption
/// is off. Touches no file but the vault's.
fn database_key(path: &Path, creating: bool) -> Result<Option<Secret>, ReplicaError> {
    use crate::vault::{DATABASE_KEY, Vault};
    let display = path.display().to_string();
    let state = file_state(path).map_err(|source| ReplicaError::Create {
        path: display.clone(),
        source,
    })?;
    match state {
        FileState::Plain => {
            warn_plain(path);
            Ok(None)
        }
        FileState::New if !creating => Err(ReplicaError::NotInitialized { path: display }),
        FileState::New if encryption_off() => {
            tracing::warn!(path = %path.display(), "{ENCRYPTION_VAR}=off: this new replica is NOT encrypted (for measuring encryption's cost only)");
            Ok(None)
        }
        FileState::New => Vault::for_replica(path)
            .and_then(|vault| vault.key_or_make(DATABASE_KEY))
            .map(Some)
            .map_err(vault_error(path)),
        FileState::Encrypted => {
            let vault = Vault::for_replica(path).map_err(vault_error(path))?;
            vault
                .get(DATABASE_KEY)
                .map_err(vault_error(path))?
                .map(Some)
                .ok_or_else(|| ReplicaError::KeyMissing {
                    path: display,
                    provider: vault.provider().to_string(),
                })
        }
    }
}

fn encryption_off() -> bool {
    std::env::var(ENCRYPTION_VAR).is_ok_and(|v| v.eq_ignore_ascii_case("off"))
}

fn warn_plain(path: &Path) {
    static WARNED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    if crate::vault::first_time(&WARNED, path) && !encryption_off() {
        tracing::warn!(path = %path.display(), "this replica is not encrypted: convert it with `aisle replica encrypt --db {}`", path.display());
    }
}

/// Gives a fresh connection its key (SQLCipher: the first statement on
/// it) and proves the key opens the file, before anything else reads or
/// writes it.
fn unlock(conn: &Connection, path: &Path, key: Option<&Secret>) -> Result<(), ReplicaError> {
    let Some(key) = key else {
        return Ok(());
    };
    let display = path.display().to_string();
    apply_key(conn, key).map_err(|source| ReplicaError::Open {
        path: display.clone(),
        source,
    })?;
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())) {
        Ok(()) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == rusqlite::ErrorCode::NotADatabase =>
        {
            let provider = crate::vault::Vault::for_replica(path)
                .map(|v| v.provider().to_string())
                .unwrap_or_default();
            Err(ReplicaError::WrongKey {
                path: display,
                provider,
            })
        }
        Err(source) => Err(ReplicaError::Open {
            path: display,
            source,
        }),
    }
}

/// `PRAGMA key` with a raw 256-bit key (no key derivation), after
/// [`CIPHER_SETTINGS`].
fn apply_key(conn: &Connection, key: &Secret) -> rusqlite::Result<()> {
    conn.execute_batch(CIPHER_SETTINGS)?;
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", checked_hex(key)?))?;
    // SQLCipher writes its own complaints (a wrong key's failed page
    // checks) to stderr; Aisle reports them as errors of its own instead.
    conn.execute_batch("PRAGMA cipher_log_level = NONE")
}

/// How every Aisle database is encrypted, set before each key (SQLCipher
/// keeps none of it in the file, so a file opens only with the same): 4 KiB
/// pages of AES-256-CBC, each authenticated by HMAC-SHA256. SQLCipher's
/// default page MAC is HMAC-SHA512; SHA-256 is as sound for it and runs in
/// the CPU's SHA extensions, and the MAC of every page read from disk is
/// most of what encryption costs a look-up (docs/BENCHMARKS.md).
/// `cipher_default_*` also governs a database attached to export into.
const CIPHER_SETTINGS: &str = "PRAGMA cipher_default_hmac_algorithm = HMAC_SHA256;
     PRAGMA cipher_default_page_size = 4096;";

/// A database key's 64 hex digits (checked: they go into SQL text).
fn checked_hex(key: &Secret) -> rusqlite::Result<&str> {
    let hex = key.expose().trim();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(rusqlite::Error::InvalidParameterName(
            "the database key is not 64 hex digits".into(),
        ))
    }
}

/// A keyed, configured connection to an existing replica, without
/// migrating it (tools and tests that read or damage the file itself).
pub fn connect(path: impl AsRef<Path>) -> Result<Connection, ReplicaError> {
    let path = path.as_ref();
    let key = database_key(path, false)?;
    let conn = Connection::open(path).map_err(|source| ReplicaError::Open {
        path: path.display().to_string(),
        source,
    })?;
    unlock(&conn, path, key.as_ref())?;
    configure(&conn)?;
    Ok(conn)
}

/// Converts a plain replica into an encrypted one in place, all or
/// nothing: the encrypted copy is written beside it, made durable, and
/// renamed over it; until that rename the plain file is untouched and
/// usable (a kill at any point leaves one whole replica). The device's
/// processes must be stopped first.
pub fn encrypt_in_place(path: &Path) -> Result<(), ReplicaError> {
    use crate::vault::{DATABASE_KEY, Vault};
    let display = path.display().to_string();
    match file_state(path).map_err(|source| ReplicaError::Create {
        path: display.clone(),
        source,
    })? {
        FileState::New => return Err(ReplicaError::NotInitialized { path: display }),
        FileState::Encrypted => return Err(ReplicaError::AlreadyEncrypted { path: display }),
        FileState::Plain => {}
    }
    // Bring the plain file up to date and its secrets out of it first.
    let conn = open_writer(path)?;
    let key = Vault::for_replica(path)
        .and_then(|vault| vault.key_or_make(DATABASE_KEY))
        .map_err(vault_error(path))?;
    let mut target = path.as_os_str().to_owned();
    target.push(".encrypting");
    let target = std::path::PathBuf::from(target);
    // Every committed page in the main file first.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    export(&conn, &target, Some(&key), true)?;
    drop(conn);
    std::fs::rename(&target, path).map_err(|source| ReplicaError::Create {
        path: display.clone(),
        source,
    })?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|f| f.sync_all())
            .map_err(|source| ReplicaError::Create {
                path: parent.display().to_string(),
                source,
            })?;
    }
    // The plain file's shared-memory index describes no WAL of the new one.
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        std::fs::remove_file(std::path::PathBuf::from(side)).ok();
    }
    // Prove the result opens with the vault's key.
    drop(open_reader(path)?);
    Ok(())
}

/// A consistent copy of the replica `from` at `to` (a new file), encrypted
/// under a key of its own in `to`'s vault (plain if `from` is plain).
pub fn copy(from: &Path, to: &Path) -> Result<(), ReplicaError> {
    use crate::vault::{DATABASE_KEY, Vault};
    let conn = connect(from)?;
    let key = match file_state(from).map_err(|source| ReplicaError::Create {
        path: from.display().to_string(),
        source,
    })? {
        FileState::Plain => None,
        _ => Some(
            Vault::for_replica(to)
                .and_then(|vault| vault.make_key(DATABASE_KEY))
                .map_err(vault_error(to))?,
        ),
    };
    export(&conn, to, key.as_ref(), false)
}

/// Writes everything `conn`'s main database holds into a new file `target`
/// (0600, a stale one replaced) under `key` (plain without one), in one
/// transaction (`block_writers`: an immediate one), and makes it durable.
fn export(
    conn: &Connection,
    target: &Path,
    key: Option<&Secret>,
    block_writers: bool,
) -> Result<(), ReplicaError> {
    let failed = |source| ReplicaError::Open {
        path: target.display().to_string(),
        source,
    };
    let io_failed = |source| ReplicaError::Create {
        path: target.display().to_string(),
        source,
    };
    match std::fs::remove_file(target) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_failed(source)),
    }
    create_private(target).map_err(io_failed)?;
    let version = schema_version(conn)?;
    let raw = match key {
        Some(key) => format!("x'{}'", checked_hex(key)?),
        None => String::new(),
    };
    let copied = (|| -> rusqlite::Result<()> {
        // `conn` may be a plain file's: the copy's cipher settings are set
        // here, not inherited from whatever this process opened before.
        conn.execute_batch(CIPHER_SETTINGS)?;
        conn.execute(
            "ATTACH DATABASE ?1 AS exported KEY ?2",
            params![target.display().to_string(), raw],
        )?;
        conn.execute_batch(if block_writers {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        })?;
        let exported = conn
            .query_row("SELECT sqlcipher_export('exported')", [], |_| Ok(()))
            .and_then(|()| conn.pragma_update(Some("exported"), "user_version", version));
        match exported {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(err) => {
                conn.execute_batch("ROLLBACK").ok();
                conn.execute_batch("DETACH DATABASE exported").ok();
                return Err(err);
            }
        }
        conn.execute_batch("DETACH DATABASE exported")
    })();
    copied.map_err(failed)?;
    std::fs::File::open(target)
        .and_then(|f| f.sync_all())
        .map_err(io_failed)
}

/// Secrets an older Aisle kept in `replica_meta`, and the vault names they
/// move to.
const SECRETS_IN_META: &[(&str, &str)] = &[
    ("sync.secret", crate::vault::HQ_SECRET),
    ("coupons.issuer_key", crate::vault::ISSUER_KEY),
    ("cards.key", crate::vault::CARD_KEY),
];

/// Moves secrets an older Aisle kept in the file into the vault, and
/// overwrites them where they were (secure delete).
fn move_secrets_to_vault(conn: &Connection, path: &Path) -> Result<(), ReplicaError> {
    let has_meta = conn
        .prepare_cached(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'replica_meta'",
        )?
        .exists([])?;
    if !has_meta {
        return Ok(());
    }
    let mut found = Vec::new();
    for (meta_key, name) in SECRETS_IN_META {
        if let Some(value) = meta(conn, meta_key)? {
            found.push((*meta_key, *name, Secret::new(value)));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let vault = crate::vault::Vault::for_replica(path).map_err(vault_error(path))?;
    for (_, name, secret) in &found {
        vault.put(name, secret).map_err(vault_error(path))?;
    }
    conn.pragma_update(None, "secure_delete", true)?;
    for (meta_key, _, _) in &found {
        conn.execute("DELETE FROM replica_meta WHERE key = ?1", [meta_key])?;
    }
    conn.pragma_update(None, "secure_delete", false)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    tracing::info!(path = %path.display(), moved = found.len(), "moved the device's secrets out of the replica into its key provider");
    Ok(())
}

/// A device secret from the vault of the replica `conn` is connected to.
/// (A vault fault comes back as a rusqlite error carrying it, so that the
/// many callers that speak rusqlite need no new error type.)
pub fn secret(conn: &Connection, name: &str) -> rusqlite::Result<Option<Secret>> {
    crate::vault::Vault::of(conn)
        .and_then(|vault| vault.get(name))
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))
}

/// Keeps a device secret in the vault of the replica `conn` is connected to.
pub fn set_secret(conn: &Connection, name: &str, value: &str) -> rusqlite::Result<()> {
    crate::vault::Vault::of(conn)
        .and_then(|vault| vault.put(name, &Secret::new(value)))
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))
}

/// A value from `replica_meta`.
pub fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT value FROM replica_meta WHERE key = ?1",
        [key],
        |row| row.get(0),
    )
    .optional()
}

/// Sets a value in `replica_meta`.
pub fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO replica_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_replica_and_its_write_ahead_log_are_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("replica.db");
        let conn = open_writer(&path).expect("replica");
        set_meta(&conn, "probe", "1").expect("a write");
        let mode = |p: &Path| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("replica.db-wal")), 0o600);
        drop(conn);
        // An existing file keeps the mode its owner gave it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        drop(open_writer(&path).expect("reopen"));
        assert_eq!(mode(&path), 0o640);
    }

    #[test]
    fn embedded_migrations_match_the_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("migrations folder")
            .map(|entry| {
                entry
                    .expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(
            files, embedded,
            "every file in migrations/ is embedded, in order"
        );
        for (idx, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                migration.version as usize,
                idx + 1,
                "versions are contiguous"
            );
            let prefix: u32 = migration.name[..4].parse().expect("NNNN_ prefix");
            assert_eq!(
                prefix, migration.version,
                "{} has the wrong number",
                migration.name
            );
            let on_disk = std::fs::read_to_string(dir.join(migration.name)).expect("read");
            assert_eq!(on_disk, migration.sql);
        }
    }

    #[test]
    fn fresh_replica_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_writer(&dir.path().join("r.db")).expect("open");
        assert_eq!(schema_version(&conn).expect("version"), latest_version());
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity");
        assert_eq!(integrity, "ok");
        let fk_violations: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
                row.get(0)
            })
            .expect("fk check");
        assert_eq!(fk_violations, 0);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("journal");
        assert_eq!(mode, "wal");
        let fks: i64 = conn
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .expect("fk");
        assert_eq!(fks, 1);
    }

    #[test]
    fn edited_migration_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        drop(open_writer(&path).expect("open"));
        let conn = connect(&path).expect("raw open");
        conn.execute(
            "UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 1",
            [],
        )
        .expect("tamper");
        drop(conn);
        let err = open_writer(&path).expect_err("must refuse");
        assert!(
            matches!(err, ReplicaError::MigrationChanged { ref name, .. } if name == "0001_replica.sql"),
            "{err}"
        );
    }

    #[test]
    fn newer_replica_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        drop(open_writer(&path).expect("open"));
        let conn = connect(&path).expect("raw open");
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .expect("bump");
        drop(conn);
        assert!(matches!(
            open_writer(&path),
            Err(ReplicaError::TooNew { .. })
        ));
        assert!(matches!(
            open_reader(&path),
            Err(ReplicaError::TooNew { .. })
        ));
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    }

    /// Every file of a replica: the database, its WAL and shared memory.
    fn replica_bytes(path: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            all.extend(std::fs::read(std::path::PathBuf::from(file)).unwrap_or_default());
        }
        all
    }

    /// The member `add_member` stored, read through a new reader.
    fn stored_member(path: &Path) -> Option<String> {
        meta(&open_reader(path).expect("reader"), "test.member").expect("read")
    }

    fn add_member(conn: &Connection, name: &str) {
        conn.execute(
            "INSERT INTO replica_meta (key, value) VALUES ('test.member', ?1)",
            [name],
        )
        .expect("row");
    }

    #[test]
    fn a_new_replica_is_encrypted_with_a_key_from_its_vault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        let conn = open_writer(&path).expect("open");
        add_member(&conn, "Philippa Quokkaworth");
        assert_eq!(file_state(&path).expect("state"), FileState::Encrypted);
        let raw = replica_bytes(&path);
        assert!(
            !contains(&raw, "Philippa Quokkaworth"),
            "plain text in the replica or its WAL"
        );
        assert!(!contains(&raw, "SQLite format 3"));
        let key = crate::vault::Vault::for_replica(&path)
            .expect("vault")
            .get(crate::vault::DATABASE_KEY)
            .expect("read")
            .expect("a key");
        assert!(!contains(&raw, key.expose()), "the key is in the file");
        let hmac: String = conn
            .query_row("PRAGMA cipher_hmac_algorithm", [], |row| row.get(0))
            .expect("cipher settings");
        assert_eq!(hmac, "HMAC_SHA256");
        drop(conn);
        assert_eq!(
            stored_member(&path).as_deref(),
            Some("Philippa Quokkaworth"),
            "a reader with the vault's key"
        );
    }

    #[test]
    fn a_wrong_or_missing_key_is_a_clear_error_and_touches_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        let conn = open_writer(&path).expect("open");
        add_member(&conn, "Philippa Quokkaworth");
        drop(conn);
        let before = std::fs::read(&path).expect("bytes");
        let listing = || {
            let mut names: Vec<_> = std::fs::read_dir(dir.path())
                .expect("dir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            names
        };
        let files = listing();
        let vault = crate::vault::Vault::for_replica(&path).expect("vault");
        let right = vault
            .get(crate::vault::DATABASE_KEY)
            .expect("read")
            .expect("key");
        vault
            .put(
                crate::vault::DATABASE_KEY,
                &crate::vault::random_key().expect("key"),
            )
            .expect("put");
        for err in [
            open_writer(&path).expect_err("wrong key"),
            open_reader(&path).expect_err("wrong key"),
        ] {
            assert!(matches!(err, ReplicaError::WrongKey { .. }), "{err}");
            assert!(err.to_string().contains("key is wrong"), "{err}");
        }
        vault.remove(crate::vault::DATABASE_KEY).expect("remove");
        for err in [
            open_writer(&path).expect_err("no key"),
            open_reader(&path).expect_err("no key"),
            connect(&path).expect_err("no key"),
        ] {
            assert!(matches!(err, ReplicaError::KeyMissing { .. }), "{err}");
            assert!(err.to_string().contains("holds no key"), "{err}");
        }
        assert_eq!(
            std::fs::read(&path).expect("bytes"),
            before,
            "the file changed"
        );
        assert_eq!(listing(), files, "files appeared or vanished");
        vault
            .put(crate::vault::DATABASE_KEY, &right)
            .expect("put back");
        assert_eq!(
            stored_member(&path).as_deref(),
            Some("Philippa Quokkaworth"),
            "the right key opens it"
        );
    }

    #[test]
    fn a_plain_replica_is_encrypted_in_place_and_its_secrets_leave_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        {
            // A replica of an older Aisle: plain, its secrets in replica_meta.
            let mut plain = Connection::open(&path).expect("plain");
            plain
                .pragma_update(None, "journal_mode", "WAL")
                .expect("wal");
            migrate(&mut plain, "r.db", latest_version()).expect("schema");
            add_member(&plain, "Philippa Quokkaworth");
            set_meta(
                &plain,
                "sync.secret",
                "hq-secret-of-the-old-kind-0123456789",
            )
            .expect("secret");
        }
        assert_eq!(file_state(&path).expect("state"), FileState::Plain);
        encrypt_in_place(&path).expect("encrypt");
        assert_eq!(file_state(&path).expect("state"), FileState::Encrypted);
        let raw = replica_bytes(&path);
        assert!(!contains(&raw, "Philippa Quokkaworth"));
        assert!(!contains(&raw, "hq-secret-of-the-old-kind"));
        assert!(!dir.path().join("r.db.encrypting").exists());
        let reader = open_reader(&path).expect("reader");
        assert_eq!(
            meta(&reader, "test.member").expect("read").as_deref(),
            Some("Philippa Quokkaworth")
        );
        assert_eq!(
            meta(&reader, "sync.secret").expect("read"),
            None,
            "the secret is still in the file"
        );
        assert_eq!(schema_version(&reader).expect("version"), latest_version());
        assert_eq!(
            secret(&reader, crate::vault::HQ_SECRET)
                .expect("vault")
                .map(|s| s.expose().to_owned()),
            Some("hq-secret-of-the-old-kind-0123456789".to_owned())
        );
        let again = encrypt_in_place(&path).expect_err("twice");
        assert!(
            matches!(again, ReplicaError::AlreadyEncrypted { .. }),
            "{again}"
        );
    }

    #[test]
    fn reader_refuses_writes_and_empty_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        drop(open_writer(&path).expect("open"));
        let reader = open_reader(&path).expect("reader");
        assert!(
            reader
                .execute("INSERT INTO stores (store_id, name) VALUES (1, 'x')", [])
                .is_err()
        );
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").expect("touch");
        assert!(matches!(
            open_reader(&empty),
            Err(ReplicaError::NotInitialized { .. })
        ));
    }
}
