//! The real `aisle` binary: the demo on a machine without ../shared, JSON
//! output, clear errors, and an import killed with SIGKILL mid-write.

use crate::ok;
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
        stderr.contains("garbage.db is encrypted (or not a database at all)")
            && stderr.contains("holds no key"),
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
        let conn = aisle_core::replica::connect(&db).expect("open after kill");
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

/// A small replica in the generic layout: member 1 a demo member (its key
/// derives from the public demo secret), member 2 with a key made on a
/// phone, member 3 without a key; phones written three ways; a UK store.
fn members_replica(home: &Path) -> std::path::PathBuf {
    let demo_key = hex::encode(
        aisle_core::keys::demo_member_key(1)
            .verifying_key()
            .as_bytes(),
    );
    let phone_key = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[5; 32])
            .verifying_key()
            .as_bytes(),
    );
    let layout = home.join("layout");
    std::fs::create_dir_all(&layout).expect("layout dir");
    std::fs::write(
        layout.join("members.csv"),
        format!(
            "member_id,card_number,given_name,family_name,phone,email,code_public_key\n\
             1,2900000000018,Zoe,Martinez,020 7946 0018,Zoe.Martinez@Example.com,{demo_key}\n\
             2,2900000000025,Ben,Okafor,+1 (614) 555-0142,ben@example.org,{phone_key}\n\
             3,2900000000032,Ana,Silva,0033 6 12 34 56 78,,\n"
        ),
    )
    .expect("members.csv");
    let db = home.join("r.db");
    let run = |args: &[&str]| {
        ok(aisle(home)
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .expect("run"))
    };
    let init = run(&["init", "--calling-code", "+44"]);
    assert!(init.contains("are +44"), "{init}");
    run(&["import", "csv", layout.to_str().expect("utf8 path")]);
    db
}

fn run_in(home: &Path, db: &Path, args: &[&str]) -> Output {
    aisle(home)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run")
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "succeeded: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn member_qr_shows_a_code_the_kiosk_accepts_once() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = members_replica(home.path());
    let at = "1764000000";

    let code = ok(run_in(
        home.path(),
        &db,
        &["member", "qr", "1", "--at", at, "--text"],
    ));
    let code = code.trim();
    assert!(code.starts_with("AISLE1:1:58800000:"), "{code}");

    // The PNG: a real PNG of the announced size, quiet zone and all, that reads back.
    let png = home.path().join("code.png");
    let json = ok(run_in(
        home.path(),
        &db,
        &[
            "--json",
            "member",
            "qr",
            "2900000000018",
            "--at",
            at,
            "--out",
            png.to_str().expect("utf8"),
        ],
    ));
    let info: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        info["code"], code,
        "the card names the same member and code"
    );
    let modules = info["modules"].as_u64().expect("modules") as u32;
    let bytes = std::fs::read(&png).expect("png written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .expect("decodes as PNG")
        .to_luma8();
    let side = (modules + 8) * 8;
    assert_eq!(
        image.dimensions(),
        (side, side),
        "4-module quiet zone, 8 px per module"
    );
    assert!(
        (0..32).all(|i| image.get_pixel(i, i)[0] == 255),
        "quiet zone is light"
    );
    assert_eq!(
        image.get_pixel(32, 32)[0],
        0,
        "finder pattern's corner is dark"
    );
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(side as usize, side as usize, |x, y| {
            image.get_pixel(x as u32, y as u32)[0]
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().expect("the QR code reads back");
    assert_eq!(content, code);

    // In the terminal: half blocks, and the code's text under them.
    let drawn = ok(run_in(home.path(), &db, &["member", "qr", "1", "--at", at]));
    assert!(drawn.contains('▀') && drawn.contains('█'), "{drawn}");
    assert!(drawn.contains(code), "{drawn}");

    // Only demo members' codes can be made here.
    let err = failed(&run_in(home.path(), &db, &["member", "qr", "2"]));
    assert!(
        err.contains("not a demo key") && err.contains("phone"),
        "{err}"
    );
    let err = failed(&run_in(home.path(), &db, &["member", "qr", "3"]));
    assert!(err.contains("no app-code key"), "{err}");
    let err = failed(&run_in(home.path(), &db, &["member", "qr", "99"]));
    assert!(err.contains("no member"), "{err}");

    // The kiosk accepts the code once; a second showing is a replay, audited.
    let judged = ok(run_in(
        home.path(),
        &db,
        &[
            "member",
            "identify",
            code,
            "--at",
            "1764000005",
            "--device",
            "kiosk-9",
        ],
    ));
    assert!(
        judged.contains("member 1 (app code, key 1, window 58800000)"),
        "{judged}"
    );
    let err = failed(&run_in(
        home.path(),
        &db,
        &[
            "member",
            "identify",
            code,
            "--at",
            "1764000010",
            "--device",
            "kiosk-9",
        ],
    ));
    assert!(err.contains("refused (replayed)"), "{err}");
    let err = failed(&run_in(
        home.path(),
        &db,
        &["member", "identify", code, "--at", "1764000600"],
    ));
    assert!(err.contains("refused (expired)"), "{err}");
    let conn = aisle_core::replica::connect(&db).expect("replica");
    let audit: Vec<(String, String)> = conn
        .prepare("SELECT actor, detail ->> 'reason' FROM audit_log WHERE action = 'code_refused' ORDER BY audit_id")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        audit,
        [
            ("kiosk-9".to_owned(), "replayed".to_owned()),
            ("cli".to_owned(), "expired".to_owned())
        ]
    );
    let card = ok(run_in(
        home.path(),
        &db,
        &["member", "identify", "2900000000025"],
    ));
    assert!(card.contains("member 2 (loyalty card)"), "{card}");
    let err = failed(&run_in(
        home.path(),
        &db,
        &["member", "identify", "2900000000026"],
    ));
    assert!(err.contains("refused (bad_check_digit)"), "{err}");
}

#[test]
fn member_lookup_by_phone_email_card_and_name() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = members_replica(home.path());
    let ids = |args: &[&str]| -> Vec<(i64, String)> {
        let mut all = vec!["--json", "member", "lookup"];
        all.extend_from_slice(args);
        let json = ok(run_in(home.path(), &db, &all));
        let hits: Vec<serde_json::Value> = serde_json::from_str(&json).expect("json");
        hits.iter()
            .map(|h| {
                (
                    h["member_id"].as_i64().expect("id"),
                    h["matched_by"].as_str().expect("by").to_owned(),
                )
            })
            .collect()
    };
    let by = |id: i64, field: &str| vec![(id, field.to_owned())];
    // National numbers are the store's country (+44, set at init).
    assert_eq!(ids(&["020-7946-0018"]), by(1, "phone"));
    assert_eq!(ids(&["+44 (20) 7946.0018"]), by(1, "phone"));
    assert_eq!(ids(&["00 1 614 555 0142"]), by(2, "phone"));
    assert_eq!(ids(&["+33 612345678"]), by(3, "phone"));
    assert_eq!(
        ids(&["614 555 0142"]),
        vec![],
        "a UK national number, not Ben's"
    );
    assert_eq!(
        ids(&["614 555 0142", "--calling-code", "+1"]),
        by(2, "phone")
    );
    assert_eq!(ids(&["ZOE.MARTINEZ@example.com"]), by(1, "email"));
    assert_eq!(ids(&["2900-0000-0002-5"]), by(2, "card"));
    assert_eq!(ids(&["okafor"]), by(2, "name"));
    for (query, expect) in [
        ("2900000000019", "not a valid card number"),
        ("0142", "too short"),
        ("zoe@", "not an e-mail address"),
    ] {
        let err = failed(&run_in(home.path(), &db, &["member", "lookup", query]));
        assert!(err.contains(expect), "{query}: {err}");
    }
}
