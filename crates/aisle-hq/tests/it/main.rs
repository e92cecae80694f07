//! The `aisle-hq` binary's admin plane as an operator starts it: the token
//! file's rules are checked at start, and the admin API answers on its own
//! listener only, by named tokens that expire.

mod consistency;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ALICE: &str = "alice-0123456789abcdef0123456789abcdef";
const EXPIRED: &str = "ci-bot-0123456789abcdef0123456789abcdef";

fn hq(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aisle-hq"));
    cmd.arg("--data").arg(data).env("RUST_LOG", "warn");
    cmd
}

fn token_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let path = dir.join("admin-tokens");
    std::fs::write(&path, text).expect("write tokens");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

fn serve(data: &Path, tokens: &Path, dir: &Path) -> Command {
    let mut cmd = hq(data);
    cmd.args(["serve", "--insecure-http", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--admin-token-file")
        .arg(tokens)
        .arg("--address-file")
        .arg(dir.join("address"))
        .arg("--admin-address-file")
        .arg(dir.join("admin-address"));
    cmd
}

/// Runs a `serve` that must refuse to start: its output.
fn refused_start(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start aisle-hq");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("aisle-hq started with a token file it must refuse");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn a_short_admin_token_stops_hq_at_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, name, bytes) in [
        ("admin-secret\n", "admin", 12),
        (
            &format!("alice {ALICE}\nbob 0123456789abcdef\n") as &str,
            "bob",
            16,
        ),
    ] {
        let tokens = token_file(dir.path(), text, 0o600);
        let output = refused_start(serve(&dir.path().join("data"), &tokens, dir.path()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(
            stderr.contains(&format!(
                "admin token \"{name}\" is {bytes} bytes; at least 32 are required"
            )),
            "{stderr}"
        );
        assert!(!dir.path().join("address").exists(), "nothing was served");
    }
}

#[test]
fn a_token_file_others_may_read_stops_hq_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = token_file(dir.path(), &format!("alice {ALICE}\n"), 0o644);
    let output = refused_start(serve(&dir.path().join("data"), &tokens, dir.path()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("readable by others"), "{stderr}");
}

/// Kills the server when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn address(path: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(child.try_wait().expect("wait").is_none(), "aisle-hq exited");
        assert!(Instant::now() < deadline, "aisle-hq did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 GET: (status, body).
fn get(address: &str, path: &str, token: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_admin_api_answers_named_tokens_on_its_own_listener_until_they_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = token_file(
        dir.path(),
        &format!("# HQ's admin tokens\nalice {ALICE}\nci-bot {EXPIRED} 2020-01-01T00:00:00\n"),
        0o600,
    );
    let mut server = Running(
        serve(&dir.path().join("data"), &tokens, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aisle-hq"),
    );
    let devices = address(&dir.path().join("address"), &mut server.0);
    let admin = address(&dir.path().join("admin-address"), &mut server.0);
    assert_ne!(devices, admin);
    const AUDIT: &str = "/admin/v1/audit";
    // Not on the devices' listener, whatever the token.
    let (status, body) = get(&devices, AUDIT, ALICE);
    assert_eq!(status, 404, "{body}");
    // On the admin listener: a valid token works, an expired one does not.
    let (status, body) = get(&admin, AUDIT, EXPIRED);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");
    let (status, body) = get(&admin, "/admin/v1/devices/throttled", ALICE);
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&admin, AUDIT, ALICE);
    assert_eq!(status, 200, "{body}");
    let audit: serde_json::Value = serde_json::from_str(&body).expect("json");
    let rows: Vec<(Option<&str>, &str, &str)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["token_name"].as_str(),
                e["action"].as_str().expect("action"),
                e["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (None, "read_audit", "unauthorized"),
            (Some("alice"), "read_throttled", "ok"),
        ]
    );
}
