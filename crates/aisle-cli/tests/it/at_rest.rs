//! Store devices at rest (issue 19): encrypted replicas, secrets with a key
//! provider, and nothing a member could be recognised by in any file a
//! device writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use aisle_core::replica::{FileState, file_state};
use aisle_core::time::Timestamp;
use aisle_proto::DeviceKind;
use aisle_tests::hq::TestHq;

use crate::{ok, text};

/// Every file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push((path, bytes));
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// `aisle` on `db` with its log (stderr, debug level) appended to `log`.
fn logged(db: &Path, log: &Path, args: &[&str]) -> std::process::Output {
    let output = crate::aisle_command(db, args)
        .env("RUST_LOG", "debug")
        .output()
        .expect("run aisle");
    let mut all = std::fs::read(log).unwrap_or_default();
    all.extend_from_slice(&output.stderr);
    std::fs::write(log, all).expect("log");
    output
}

/// What a member can be recognised by: names, phone, e-mail, card numbers.
fn identifiers(hq: &TestHq, member_id: i64) -> Vec<String> {
    let db = hq.db();
    let mut found: Vec<String> = db
        .query_row(
            "SELECT given_name, family_name, display_name, phone, email FROM members WHERE member_id = ?1",
            [member_id],
            |row| {
                Ok((0..5)
                    .filter_map(|i| row.get::<_, Option<String>>(i).ok().flatten())
                    .collect())
            },
        )
        .expect("member");
    let mut cards = db
        .prepare("SELECT card_number FROM member_cards WHERE member_id = ?1")
        .expect("prepare");
    found.extend(
        cards
            .query_map([member_id], |row| row.get::<_, String>(0))
            .expect("cards")
            .map(|card| card.expect("card")),
    );
    // Short fragments ("Al") would match by chance in any binary file.
    found.retain(|text| text.len() >= 5);
    found
}

/// Holds the replica's write lock until dropped: a bootstrap then stages
/// its chunks and cannot apply them, so they stay on disk to be read.
fn hold_write_lock(db: &Path) -> rusqlite::Connection {
    let conn = aisle_core::replica::connect(db).expect("replica");
    conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
    conn
}

#[test]
fn no_member_data_is_in_any_file_a_kiosk_or_tablet_writes() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    // 100 random members, each moved to this store (so into its partition)
    // and given a phone and an e-mail at HQ (the demo extract has none), so
    // there is something to find.
    let mut members: Vec<i64> = hq
        .db()
        .prepare("SELECT member_id FROM members WHERE erased_at IS NULL ORDER BY member_id")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("members")
        .collect::<rusqlite::Result<_>>()
        .expect("ids");
    let mut rng = aisle_core::rng::SplitMix64::new(19);
    for i in (1..members.len()).rev() {
        members.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let chosen: Vec<i64> = members.into_iter().take(100).collect();
    assert_eq!(chosen.len(), 100);
    for &member_id in &chosen {
        let mut member = aisle_core::sync::records::read_member(&hq.db(), member_id)
            .expect("read")
            .expect("member");
        member.home_store_id = Some(store_id);
        member.phone = Some(format!(
            "+1 555 {:04} {:04}",
            member_id % 10_000,
            7_000 + member_id % 1_000
        ));
        member.email = Some(format!("shopper.{member_id}@example.org"));
        hq.admin(aisle_proto::paths::ADMIN_MEMBERS, &member);
    }

    for (device, kind) in [
        ("kiosk-1", DeviceKind::Kiosk),
        ("tablet-1", DeviceKind::Tablet),
    ] {
        let store = hq.provisioned_store(device, kind);
        let log = store.dir.path().join("logs").join("aisle.log");
        std::fs::create_dir_all(log.parent().expect("logs")).expect("logs");
        // 1. A bootstrap that stages its chunks and is kept from applying them.
        let lock = hold_write_lock(&store.db);
        let stuck = logged(&store.db, &log, &["sync"]);
        assert!(
            !stuck.status.success(),
            "{device}: the bootstrap applied under a held lock"
        );
        let staged: Vec<_> = files_under(store.dir.path())
            .into_iter()
            .filter(|(path, _)| path.to_string_lossy().contains(".sync/"))
            .collect();
        assert!(!staged.is_empty(), "{device}: no staged chunk to inspect");
        let staged_bytes: usize = staged.iter().map(|(_, b)| b.len()).sum();
        assert!(
            staged_bytes > 10_000,
            "{device}: the staged snapshot is {staged_bytes} bytes"
        );
        // The staged files, read now: the bootstrap below removes them.
        let mut seen = files_under(store.dir.path());
        drop(lock);
        // 2. The bootstrap completes from what it staged, edits are made, HQ
        // changes contacts, and a sync carries both ways.
        ok(logged(&store.db, &log, &["sync"]));
        {
            let mut conn = aisle_core::replica::open_writer(&store.db).expect("writer");
            let at = Timestamp::parse("2026-12-05 10:00:00").expect("time");
            for &member_id in chosen.iter().take(20) {
                aisle_core::edits::record_visit(&mut conn, member_id, Some(store_id), at)
                    .expect("visit");
            }
            if kind == DeviceKind::Tablet {
                aisle_core::edits::add_note(
                    &mut conn,
                    chosen[0],
                    "A-17",
                    "prefers the gluten-free aisle",
                    at,
                )
                .expect("note");
            }
        }
        let held: i64 = aisle_core::replica::connect(&store.db)
            .expect("replica")
            .query_row(
                &format!(
                    "SELECT count(*) FROM members WHERE member_id IN ({})",
                    chosen
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                [],
                |row| row.get(0),
            )
            .expect("count");
        assert_eq!(
            held,
            chosen.len() as i64,
            "{device}: the replica holds the chosen members"
        );
        for &member_id in chosen.iter().skip(50).take(10) {
            let mut member = aisle_core::sync::records::read_member(&hq.db(), member_id)
                .expect("read")
                .expect("member");
            member.phone = Some(format!(
                "+1 555 {:04} 9{:03}",
                member_id % 10_000,
                member_id % 1_000
            ));
            hq.admin(aisle_proto::paths::ADMIN_MEMBERS, &member);
        }
        ok(logged(&store.db, &log, &["sync"]));
        ok(logged(&store.db, &log, &["stats"]));
        seen.extend(files_under(store.dir.path()));
        let names: Vec<String> = seen
            .iter()
            .map(|(path, _)| {
                path.strip_prefix(store.dir.path())
                    .unwrap_or(path)
                    .display()
                    .to_string()
            })
            .collect();
        assert!(
            names.iter().any(|n| n.ends_with("replica.db-wal")),
            "{device}: {names:?}"
        );
        assert!(
            names.iter().any(|n| n.contains("logs/")),
            "{device}: {names:?}"
        );
        let log_text = std::fs::read_to_string(&log).expect("log");
        assert!(
            log_text.contains("DEBUG"),
            "{device}: the log is at debug level"
        );
        // Every identifier of every chosen member, searched in one pass per file.
        let wanted: Vec<(i64, String)> = chosen
            .iter()
            .flat_map(|&member_id| {
                identifiers(&hq, member_id)
                    .into_iter()
                    .map(move |i| (member_id, i))
            })
            .collect();
        assert!(
            wanted.len() >= 300,
            "names, phones, e-mails and cards: {}",
            wanted.len()
        );
        let searcher =
            aho_corasick::AhoCorasick::new(wanted.iter().map(|(_, text)| text)).expect("searcher");
        for (path, bytes) in &seen {
            if let Some(found) = searcher.find(bytes.as_slice()) {
                let (member_id, text) = &wanted[found.pattern().as_usize()];
                panic!(
                    "{device}: member {member_id}'s {text:?} is in {}",
                    path.display()
                );
            }
        }
        assert_eq!(file_state(&store.db).expect("state"), FileState::Encrypted);
    }
}

#[test]
fn a_replica_under_systemd_credentials_keeps_its_key_sealed_outside_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("store.db");
    let credstore = dir.path().join("credstore.encrypted");
    let credstore_text = credstore.display().to_string();
    let systemd = [
        ("AISLE_KEY_PROVIDER", "systemd"),
        ("AISLE_CREDSTORE", credstore_text.as_str()),
        // This machine has no TPM2: sealed to the host's credential secret.
        ("AISLE_CREDS_WITH_KEY", "host"),
    ];
    ok(crate::aisle_command(&db, &["init"])
        .envs(systemd)
        .output()
        .expect("init"));
    let status = ok(crate::aisle_command(&db, &["replica", "status"])
        .envs(systemd)
        .output()
        .expect("status"));
    assert!(
        status.contains("encrypted (SQLCipher)") && status.contains("systemd credentials"),
        "{status}"
    );
    assert_eq!(file_state(&db).expect("state"), FileState::Encrypted);
    assert!(
        !aisle_core::vault::key_dir(&db).exists(),
        "no key file beside the replica"
    );
    let sealed = credstore.join("aisle-db-key");
    let sealed_bytes = std::fs::read(&sealed).expect("a sealed credential");
    // What systemd gives the unit (LoadCredentialEncrypted=aisle-db-key):
    // the key decrypted into the unit's credentials folder.
    let runtime = dir.path().join("credentials");
    std::fs::create_dir(&runtime).expect("runtime");
    let decrypted = Command::new("systemd-creds")
        .args(["decrypt", "--name=aisle-db-key"])
        .arg(&sealed)
        .arg(runtime.join("aisle-db-key"))
        .output()
        .expect("systemd-creds");
    assert!(decrypted.status.success(), "{}", text(&decrypted));
    let key = std::fs::read_to_string(runtime.join("aisle-db-key")).expect("key");
    assert_eq!(key.len(), 64, "a raw 256-bit key");
    assert!(
        !contains(&sealed_bytes, &key),
        "the credential store holds the key in clear"
    );
    assert!(!contains(&std::fs::read(&db).expect("replica"), &key));
    // As the unit runs it: nothing configured but the credentials folder.
    let as_unit = crate::aisle_command(&db, &["replica", "status"])
        .env_remove("AISLE_KEY_PROVIDER")
        .env("AISLE_CREDSTORE", dir.path().join("elsewhere"))
        .env("CREDENTIALS_DIRECTORY", &runtime)
        .output()
        .expect("run");
    let shown = ok(as_unit);
    assert!(shown.contains("encrypted (SQLCipher)"), "{shown}");

    // The wrong provider: a clear error, and the replica untouched.
    let before = std::fs::read(&db).expect("replica");
    let wrong = crate::aisle_command(&db, &["stats"])
        .env("AISLE_KEY_PROVIDER", "file")
        .output()
        .expect("run");
    assert!(!wrong.status.success());
    let said = text(&wrong);
    assert!(
        said.contains("holds no key for it") && said.contains("AISLE_KEY_PROVIDER"),
        "{said}"
    );
    // A key that is not this replica's.
    std::fs::write(runtime.join("aisle-db-key"), "ab".repeat(32)).expect("wrong key");
    let wrong_key = crate::aisle_command(&db, &["stats"])
        .env_remove("AISLE_KEY_PROVIDER")
        .env("CREDENTIALS_DIRECTORY", &runtime)
        .output()
        .expect("run");
    assert!(!wrong_key.status.success());
    let said = text(&wrong_key);
    assert!(said.contains("the key is wrong"), "{said}");
    assert_eq!(
        std::fs::read(&db).expect("replica"),
        before,
        "a refused open changed the file"
    );
    // An unknown provider is named.
    let unknown = crate::aisle_command(&db, &["stats"])
        .env("AISLE_KEY_PROVIDER", "tpm")
        .output()
        .expect("run");
    assert!(
        text(&unknown).contains("\"tpm\" is not a key provider"),
        "{}",
        text(&unknown)
    );
}

/// Runs `script` in a fresh D-Bus session with GNOME Keyring's Secret
/// Service unlocked, `home` as the keyring's home.
fn in_keyring_session(home: &Path, script: &str) -> std::process::Output {
    Command::new("dbus-run-session")
        .arg("--")
        .arg("sh")
        .arg("-c")
        .arg(format!(
            "printf 'keyring-password' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && {script}"
        ))
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("AISLE_KEY_PROVIDER", "secret-service")
        .env("AISLE", env!("CARGO_BIN_EXE_aisle"))
        .stdin(Stdio::null())
        .output()
        .expect("dbus-run-session (apt-get install dbus-daemon gnome-keyring libsecret-tools)")
}

#[test]
fn a_replica_with_the_secret_service_keeps_its_key_in_the_keyring() {
    let home = tempfile::tempdir().expect("home");
    let db = home.path().join("store.db");
    let script = format!(
        "\"$AISLE\" --db '{}' init && \"$AISLE\" --db '{}' replica status",
        db.display(),
        db.display()
    );
    let first = in_keyring_session(home.path(), &script);
    let said = ok(first);
    assert!(
        said.contains("encrypted (SQLCipher)") && said.contains("Secret Service"),
        "{said}"
    );
    assert_eq!(file_state(&db).expect("state"), FileState::Encrypted);
    assert!(
        !aisle_core::vault::key_dir(&db).exists(),
        "no key file beside the replica"
    );
    // The keyring persists across sessions (a reboot): the replica opens again.
    let again = in_keyring_session(
        home.path(),
        &format!("\"$AISLE\" --db '{}' replica status", db.display()),
    );
    assert!(ok(again).contains("encrypted (SQLCipher)"));
    // Without a session bus there is no keyring: a clear error.
    let no_bus = crate::aisle_command(&db, &["stats"])
        .env("AISLE_KEY_PROVIDER", "secret-service")
        .env("HOME", home.path())
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .output()
        .expect("run");
    assert!(!no_bus.status.success());
    let said = text(&no_bus);
    assert!(
        said.contains("cannot read secret db-key from the Secret Service keyring"),
        "{said}"
    );
}

#[test]
fn a_plain_replica_is_encrypted_all_or_nothing_through_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("plain.db");
    let imported = crate::aisle_command(&template, &["import", "completejourney"])
        .arg(aisle_tests::demo_dir())
        .env("AISLE_ENCRYPTION", "off")
        .output()
        .expect("import");
    ok(imported);
    assert_eq!(file_state(&template).expect("state"), FileState::Plain);
    let stats = |db: &Path| {
        let output = crate::aisle(db, &["--json", "stats"]);
        let value: serde_json::Value = serde_json::from_str(&ok(output)).expect("json");
        value["stats"].clone()
    };
    let expected = stats(&template);
    let name: String = aisle_core::replica::connect(&template)
        .expect("plain")
        .query_row(
            "SELECT display_name FROM members WHERE length(display_name) >= 8 LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("a name");
    assert!(contains(&std::fs::read(&template).expect("plain"), &name));

    // One whole conversion, timed: the window kills are spread over.
    let timed = dir.path().join("timed.db");
    std::fs::copy(&template, &timed).expect("copy");
    let started = std::time::Instant::now();
    ok(crate::aisle(&timed, &["replica", "encrypt"]));
    let window = started.elapsed().max(Duration::from_millis(50));

    let mut rng = aisle_core::rng::SplitMix64::new(1919);
    let mut killed_midway = 0;
    for run in 0..24 {
        let db = dir.path().join(format!("run-{run}.db"));
        std::fs::copy(&template, &db).expect("copy");
        let mut child = crate::aisle_command(&db, &["replica", "encrypt"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(window.mul_f64((rng.next_u64() % 1000) as f64 / 1000.0));
        let running = child.try_wait().expect("wait").is_none();
        child.kill().ok();
        child.wait().expect("reap");
        let state = file_state(&db).expect("state");
        if running && state == FileState::Plain {
            killed_midway += 1;
        }
        // Whatever the moment, one whole replica that opens with what it has.
        assert_eq!(
            stats(&db),
            expected,
            "run {run}: the replica after a kill ({state:?})"
        );
        if state == FileState::Plain {
            ok(crate::aisle(&db, &["replica", "encrypt"]));
        }
        assert_eq!(file_state(&db).expect("state"), FileState::Encrypted);
        assert_eq!(stats(&db), expected, "run {run}: after the conversion");
        let raw: Vec<u8> = files_under(dir.path())
            .into_iter()
            .filter(|(path, _)| path.to_string_lossy().contains(&format!("run-{run}.db")))
            .flat_map(|(_, bytes)| bytes)
            .collect();
        assert!(
            !contains(&raw, &name),
            "run {run}: a member's name in clear"
        );
    }
    assert!(
        killed_midway > 0,
        "no kill landed during a conversion: the test proved little"
    );
    let again = crate::aisle(&timed, &["replica", "encrypt"]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already encrypted"),
        "{}",
        text(&again)
    );
}
