//! kill -9 during kiosk sessions loses no event: the real binary runs under
//! Xvfb with a camera that keeps showing members' cards (QR pictures), so
//! sessions follow one another (identify, visit, coupons issued, welcome);
//! it is killed with SIGKILL at a random moment, several times over one
//! replica. Every welcome the kiosk logged as committed has its visit event
//! and its coupons' events in the outbox, no coupon exists without its
//! event, the replica stays intact, and the kiosk starts again on it.

// Each run prints its seed and when it killed, for replaying a failure.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

const NOW: &str = "2017-10-20 12:00:00";
const RUNS: u64 = 5;

/// Cards of members who consent to personalization (they get coupons).
fn cards(db: &Path) -> Vec<String> {
    aisle_core::replica::connect(db)
        .expect("replica")
        .prepare(
            "SELECT c.card_number FROM member_cards AS c JOIN members AS m USING (member_id)
             WHERE c.status = 'active' AND m.consent_personalization = 1
             ORDER BY c.member_id LIMIT 6",
        )
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// The camera's pictures, played in a loop: each card's QR code in two
/// frames (the kiosk wants a code in two frames in a row), then two blank
/// frames (the next code counts as new).
fn camera_frames(dir: &Path, cards: &[String]) {
    std::fs::create_dir_all(dir).expect("frames dir");
    let blank = image::GrayImage::from_pixel(480, 480, image::Luma([255u8]));
    for (i, card) in cards.iter().enumerate() {
        let code = qrcode::QrCode::new(card.as_bytes()).expect("qr");
        let picture = code
            .render::<image::Luma<u8>>()
            .module_dimensions(8, 8)
            .quiet_zone(true)
            .build();
        for (suffix, frame) in [
            ("a", &picture),
            ("b", &picture),
            ("c", &blank),
            ("d", &blank),
        ] {
            frame
                .save(dir.join(format!("{i:02}{suffix}.png")))
                .expect("save frame");
        }
    }
}

/// `(member_id, coupon serials)` of every "welcome committed" line.
fn committed(log: &str) -> Vec<(i64, Vec<String>)> {
    let field = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        let rest = &line[start..];
        let end = rest.find(' ').unwrap_or(rest.len());
        Some(rest[..end].trim_matches('"').to_owned())
    };
    log.lines()
        .filter(|line| line.contains("welcome committed"))
        .map(|line| {
            let member: i64 = field(line, "member_id")
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(|| panic!("no member_id in {line:?}"));
            let coupons = field(line, "coupons")
                .map(|c| {
                    c.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            (member, coupons)
        })
        .collect()
}

fn count(conn: &Connection, sql: &str, param: &dyn rusqlite::ToSql) -> i64 {
    conn.query_row(sql, [param], |row| row.get(0))
        .expect("count")
}

/// Runs the kiosk under Xvfb until it logged `after` committed welcomes,
/// waits `extra`, kills it with SIGKILL; returns its log.
fn run_and_kill(db: &Path, frames: &Path, work: &Path, extra: Duration) -> String {
    let log = work.join("kiosk.log");
    let pid_file = work.join("kiosk.pid");
    std::fs::remove_file(&pid_file).ok();
    std::fs::remove_file(&log).ok();
    let brand = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/brand");
    let script = "\"$KIOSK\" --db \"$DB\" --brand \"$BRAND\" --now \"$NOW\" --camera-source \"$FRAMES\" \
                  --exit-after-ms 120000 2> \"$LOG\" & echo $! > \"$PID\"; wait";
    let mut xvfb = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24", "sh", "-c", script])
        .env("KIOSK", env!("CARGO_BIN_EXE_aisle-kiosk"))
        .env("DB", db)
        .env("BRAND", &brand)
        .env("NOW", NOW)
        .env("FRAMES", frames)
        .env("LOG", &log)
        .env("PID", &pid_file)
        .env("SLINT_BACKEND", "winit-software")
        .env("RUST_LOG", "aisle_kiosk=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xvfb-run");
    let started = Instant::now();
    let kiosk_log = || std::fs::read_to_string(&log).unwrap_or_default();
    while committed(&kiosk_log()).is_empty() || !pid_file.is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no session within 60 s; the kiosk said: {}",
            kiosk_log()
        );
        assert!(
            xvfb.try_wait().expect("wait").is_none(),
            "the kiosk stopped: {}",
            kiosk_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(extra);
    let pid = std::fs::read_to_string(&pid_file).expect("the kiosk's pid");
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -9 {pid}");
    xvfb.wait().expect("xvfb-run ends with its client");
    kiosk_log()
}

#[test]
fn kill_9_during_sessions_loses_no_event() {
    assert!(
        Command::new("xvfb-run").arg("--help").output().is_ok(),
        "xvfb-run is missing: `cargo xtask test` installs xvfb and xauth"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    aisle_tests::kiosk_replica(&db, NOW);
    let cards = cards(&db);
    assert_eq!(cards.len(), 6);
    let frames = dir.path().join("camera");
    camera_frames(&frames, &cards);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut rng = aisle_core::rng::SplitMix64::new(seed);
    let mut welcomes: Vec<(i64, Vec<String>)> = Vec::new();
    for run in 0..RUNS {
        let extra = Duration::from_millis(rng.below(2500));
        let log = run_and_kill(&db, &frames, dir.path(), extra);
        let these = committed(&log);
        eprintln!(
            "run {run} (seed {seed}): killed {} ms after the first welcome, {} welcomes committed",
            extra.as_millis(),
            these.len()
        );
        welcomes.extend(these);

        let conn = aisle_core::replica::connect(&db).expect("the replica opens after SIGKILL");
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity");
        assert_eq!(integrity, "ok", "run {run}, seed {seed}");
        // Every welcome the kiosk committed has its visit event...
        let mut per_member: BTreeMap<i64, i64> = BTreeMap::new();
        for (member, _) in &welcomes {
            *per_member.entry(*member).or_default() += 1;
        }
        for (member, logged) in &per_member {
            let visits = count(
                &conn,
                "SELECT count(*) FROM outbox WHERE kind = 'kiosk_visit'
                 AND json_extract(payload, '$.member_id') = ?1",
                member,
            );
            assert!(
                visits >= *logged,
                "member {member}: {logged} welcomes committed, {visits} visit events (seed {seed})"
            );
        }
        // ...and each coupon it showed is issued, with its event.
        for serial in welcomes.iter().flat_map(|(_, coupons)| coupons) {
            assert_eq!(
                count(
                    &conn,
                    "SELECT count(*) FROM coupon_issues WHERE serial = ?1",
                    serial
                ),
                1,
                "coupon {serial} (seed {seed})"
            );
        }
        // No coupon without its event, nor an event without its coupon.
        let orphans: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM coupon_issues AS i WHERE NOT EXISTS
                     (SELECT 1 FROM outbox AS o WHERE o.kind = 'coupon_issued'
                        AND json_extract(o.payload, '$.serial') = i.serial))
                  + (SELECT count(*) FROM outbox AS o WHERE o.kind = 'coupon_issued' AND NOT EXISTS
                     (SELECT 1 FROM coupon_issues AS i WHERE i.serial = json_extract(o.payload, '$.serial')))",
                [],
                |row| row.get(0),
            )
            .expect("orphans");
        assert_eq!(orphans, 0, "run {run}, seed {seed}");
    }
    let issued: i64 = aisle_core::replica::connect(&db)
        .expect("replica")
        .query_row("SELECT count(*) FROM coupon_issues", [], |row| row.get(0))
        .expect("count");
    assert!(
        welcomes.len() as u64 >= RUNS && issued > 0,
        "{} welcomes, {issued} coupons: the runs did real sessions",
        welcomes.len()
    );
    // The kiosk starts again on the replica it was killed over.
    let shots = dir.path().join("after");
    let output = Command::new(env!("CARGO_BIN_EXE_aisle-kiosk"))
        .arg("--db")
        .arg(&db)
        .arg("--brand")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/brand"))
        .args(["--demo", "--now", NOW, "--headless"])
        .arg(&shots)
        .output()
        .expect("kiosk");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(shots.join("welcome.png").is_file());
}
