//! The real `aisle` binary: the demo on a machine without ../shared, JSON
//! output, clear errors, and an import killed with SIGKILL mid-write.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn aisle(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aisle"));
    // A fresh machine: nothing but the binary, an empty home, a cwd with no ../shared.
    cmd.current_dir(home)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("AISLE_DB")
        .env_remove("RUST_LOG");
    cmd
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf8")
}

fn demo_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo")
}

#[test]
fn demo_runs_from_the_embedded_data_alone() {
    let home = tempfile::tempdir().expect("tempdir");
    let text = ok(aisle(home.path()).arg("demo").output().expect("run"));
    assert!(text.contains("Aisle demo replica"), "{text}");
    assert!(text.contains("200 members"), "{text}");
    assert!(text.contains("basket "), "{text}");
    let replica = home.path().join(".local/share/aisle/demo/replica.db");
    assert!(replica.is_file(), "demo replica in the default data dir");

    // The demo's suggested commands work, in text and JSON.
    let json = ok(aisle(home.path())
        .arg("--db")
        .arg(&replica)
        .args(["--json", "stats"])
        .output()
        .expect("stats"));
    let stats: serde_json::Value = serde_json::from_str(&json).expect("json");
    let tables = stats["stats"]["tables"].as_array().expect("tables");
    assert!(
        tables
            .iter()
            .any(|t| t[0] == "purchase_lines" && t[1].as_i64() > Some(100_000)),
        "{json}"
    );

    let json = ok(aisle(home.path())
        .arg("--db")
        .arg(&replica)
        .args(["--json", "member", "search", "a"])
        .output()
        .expect("search"));
    let hits: Vec<serde_json::Value> = serde_json::from_str(&json).expect("json");
    assert!(!hits.is_empty());
    let card = hits[0]["card_number"].as_str().expect("card").to_owned();
    let text = ok(aisle(home.path())
        .arg("--db")
        .arg(&replica)
        .args(["member", "show", &card])
        .output()
        .expect("show"));
    assert!(text.contains(&card), "{text}");

    // Running the demo again rebuilds it from scratch.
    ok(aisle(home.path()).arg("demo").output().expect("again"));
}

#[test]
fn errors_are_specific_and_exit_nonzero() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = home.path().join("r.db");
    let out = aisle(home.path())
        .arg("--db")
        .arg(&db)
        .args(["member", "show", "42"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("aisle init"),
        "{out:?}"
    );

    ok(aisle(home.path())
        .arg("--db")
        .arg(&db)
        .arg("init")
        .output()
        .expect("init"));
    let out = aisle(home.path())
        .arg("--db")
        .arg(&db)
        .args(["member", "show", "2900000000019"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("check digit is 9, expected 8"), "{stderr}");

    let garbage = home.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a replica").expect("write");
    let out = aisle(home.path())
        .arg("--db")
        .arg(&garbage)
        .arg("stats")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open replica") && stderr.contains("not a database"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&garbage).expect("read"),
        b"this is not a replica",
        "left as it was"
    );

    let out = aisle(home.path())
        .arg("--db")
        .arg(&db)
        .args(["import", "csv"])
        .arg(home.path().join("nope"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no files to import"),
        "{out:?}"
    );
}

#[test]
fn skip_invalid_writes_the_rejects_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(
        data.join("stores.csv"),
        "store_id,name\n1,Main\nx,Bad\n2,Pier\n",
    )
    .expect("write");
    let db = home.path().join("r.db");
    let rejects = home.path().join("rejects.csv");
    let text = ok(aisle(home.path())
        .arg("--db")
        .arg(&db)
        .args(["import", "csv"])
        .arg(&data)
        .arg("--skip-invalid")
        .arg("--rejects")
        .arg(&rejects)
        .output()
        .expect("run"));
    assert!(text.contains("1 rows rejected"), "{text}");
    let written = std::fs::read_to_string(&rejects).expect("rejects");
    assert_eq!(
        written.lines().nth(1),
        Some("stores.csv,3,store_id,\"\"\"x\"\" is not a whole number\",\"x,Bad\"")
    );
}

/// SIGKILL during a large import, several times at seeded random moments: the
/// replica is intact and holds either nothing of the import or all of it.
#[test]
fn kill_9_mid_import_leaves_the_replica_as_it_was() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut state: u64 = 0x5eed_1234;
    let mut db = home.path().join("r.db");
    let mut killed_mid_import = 0;
    for attempt in 0..5 {
        db = home.path().join(format!("r{attempt}.db"));
        ok(aisle(home.path())
            .arg("--db")
            .arg(&db)
            .arg("init")
            .output()
            .expect("init"));
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis(30 + (state >> 33) % 300);
        let mut child = aisle(home.path())
            .arg("--db")
            .arg(&db)
            .args(["import", "completejourney"])
            .arg(demo_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        let finished = child.try_wait().expect("try_wait").is_some();
        child.kill().ok(); // SIGKILL on Unix
        child.wait().expect("wait");
        let conn = rusqlite::Connection::open(&db).expect("open after kill");
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(integrity, "ok", "attempt {attempt} after {delay:?}");
        let lines: i64 = conn
            .query_row("SELECT count(*) FROM purchase_lines", [], |r| r.get(0))
            .expect("count");
        let members: i64 = conn
            .query_row("SELECT count(*) FROM members", [], |r| r.get(0))
            .expect("count");
        if finished {
            assert!(lines > 100_000);
        } else {
            killed_mid_import += 1;
            assert_eq!(
                (lines, members),
                (0, 0),
                "attempt {attempt}: a killed import left rows behind (after {delay:?})"
            );
        }
    }
    assert!(
        killed_mid_import > 0,
        "no attempt was killed while importing: the test proved nothing"
    );
    // And the import still completes afterwards.
    ok(aisle(home.path())
        .arg("--db")
        .arg(&db)
        .args(["import", "completejourney"])
        .arg(demo_dir())
        .output()
        .expect("import"));
}
