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
    create_private(path).map_err(|source| ReplicaError::Create {
        path: display.clone(),
        source,
    })?;
    let mut conn = Connection::open(path).map_err(|source| ReplicaError::Open {
        path: display.clone(),
        source,
    })?;
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
        let conn = Connection::open(&path).expect("raw open");
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
        let conn = Connection::open(&path).expect("raw open");
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
