//! Expensive test fixtures built once per test process and copied.
//!
//! A fixture is a SQLite file made by a builder (the demo imported, models
//! fitted); each test gets its own copy, so tests stay independent while
//! the building is paid once per binary, not once per test. The template
//! lives in a folder of the process's own (removed with stale ones of
//! finished processes at the next run) and is fully checkpointed before it
//! is copied: the copy is the main file alone, with the template's
//! database key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

const PREFIX: &str = "aisle-test-fixtures-";

/// Copies the fixture `name` to `to` (a file that must not exist yet),
/// building it with `build(path)` the first time this process asks for it.
pub fn copy_of(name: &str, to: &Path, build: impl FnOnce(&Path)) {
    let template = template(name, build);
    std::fs::copy(&template, to)
        .unwrap_or_else(|err| panic!("copying {} to {}: {err}", template.display(), to.display()));
    move_key(&template, to, false);
}

/// Gives `to` the database key of `from` (an encrypted replica's copy
/// opens with its original's key), forgetting it for `from` if `forget`.
pub fn move_key(from: &Path, to: &Path, forget: bool) {
    use aisle_core::vault::{DATABASE_KEY, Vault};
    let source = Vault::for_replica(from).expect("vault");
    if let Some(key) = source.get(DATABASE_KEY).expect("read the key") {
        Vault::for_replica(to)
            .expect("vault")
            .put(DATABASE_KEY, &key)
            .expect("keep the key");
        if forget {
            source.remove(DATABASE_KEY).expect("forget the key");
        }
    }
}

fn template(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    static TEMPLATES: OnceLock<Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let mut templates = TEMPLATES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = templates.get(name) {
        return path.clone();
    }
    let dir = process_dir();
    let file: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = dir.join(format!("{file}.db"));
    let partial = dir.join(format!("{file}.building"));
    std::fs::remove_file(&partial).ok();
    build(&partial);
    checkpoint(&partial);
    std::fs::rename(&partial, &path).expect("template in place");
    move_key(&partial, &path, true);
    templates.insert(name.to_owned(), path.clone());
    path
}

/// Folds the WAL into the main file, so the main file alone is the database.
pub fn checkpoint(db: &Path) {
    let conn = aisle_core::replica::connect(db).expect("open template");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    })
    .expect("checkpoint");
    drop(conn);
    for suffix in ["-wal", "-shm"] {
        let mut side = db.as_os_str().to_owned();
        side.push(suffix);
        std::fs::remove_file(PathBuf::from(side)).ok();
    }
}

/// This process's folder of templates; folders of processes that have ended are removed.
fn process_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                continue;
            };
            if pid != std::process::id().to_string() && !Path::new("/proc").join(pid).exists() {
                std::fs::remove_dir_all(entry.path()).ok();
            }
        }
    }
    let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("fixture folder");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_is_built_once_and_every_copy_is_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut builds = 0;
        for copy in ["a.db", "b.db"] {
            copy_of("fixture-test", &dir.path().join(copy), |path| {
                builds += 1;
                let conn = rusqlite::Connection::open(path).expect("open");
                conn.pragma_update(None, "journal_mode", "WAL")
                    .expect("wal");
                conn.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);")
                    .expect("build");
            });
        }
        assert_eq!(builds, 1);
        // Rows written in WAL mode reached the copies, and a copy is independent.
        let a = rusqlite::Connection::open(dir.path().join("a.db")).expect("a");
        a.execute("INSERT INTO t VALUES (2)", []).expect("write a");
        let b = rusqlite::Connection::open(dir.path().join("b.db")).expect("b");
        let count: i64 = b
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 1);
    }
}
