//! End to end: the real app in WebKitGTK under Xvfb, driven through
//! WebDriver (WebKitWebDriver, with Tauri's webview automation on), on a
//! store replica bootstrapped from a real `aisle-hq` on loopback: search as
//! you type, open a client, add a note, see the pending-events count rise,
//! sync, and find the note at HQ. A screenshot of every screen is saved
//! (target/tmp/associate-*.png) and the text on it asserted.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aisle_core::sync::{self, Credentials, SyncOptions, Transport};
use aisle_tests::hq::TestHq;
use serde_json::{Value, json};

const NOW: &str = "2017-10-20 12:00:00";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process killed and reaped when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

struct Driver {
    http: reqwest::blocking::Client,
    session: String,
}

impl Driver {
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/{path}", self.session);
        let request = self.http.request(method, &url);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let answer: Value = request.send().expect("webdriver").json().expect("json");
        answer["value"].clone()
    }

    /// The first element matching `css`, waiting up to 20 s for it.
    fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self.call(
                reqwest::Method::POST,
                "element",
                Some(json!({ "using": "css selector", "value": css })),
            );
            if let Some(id) = found[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no {css}: {found}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, element: &str) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("element/{element}/text"),
            None,
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits until the element's text satisfies `ok`.
    fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(&self.find(css));
            if ok(&text) {
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{css} says {text:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("element/{element}/click"),
            Some(json!({})),
        );
    }

    fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The window as PNG, after two frames (a fresh DOM change is painted).
    fn screenshot(&self, name: &str) -> Vec<u8> {
        self.call(
            reqwest::Method::POST,
            "execute/async",
            Some(json!({
                "script": "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done()));",
                "args": []
            })),
        );
        let encoded = self.call(reqwest::Method::GET, "screenshot", None);
        let png = base64_decode(encoded.as_str().expect("base64 PNG"));
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("associate-{name}.png"));
        std::fs::write(&path, &png).expect("save screenshot");
        assert_eq!(&png[1..4], b"PNG", "{name} is a PNG");
        png
    }
}

/// Standard base64 (the WebDriver screenshot encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= d << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn sync_once(db: &Path) -> sync::SyncReport {
    let mut conn = aisle_core::replica::open_writer(db).expect("writer");
    let credentials = Credentials::load(&conn)
        .expect("load")
        .expect("provisioned");
    let transport =
        Transport::with_timeout(&credentials, Duration::from_secs(30)).expect("transport");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    sync::run_once(
        &mut conn,
        &transport,
        &SyncOptions::for_replica(db),
        &aisle_core::dates::timestamp_string(now),
    )
    .expect("sync")
}

#[test]
fn search_open_a_client_add_a_note_and_find_it_at_hq() {
    for tool in ["Xvfb", "WebKitWebDriver"] {
        assert!(
            Command::new("which")
                .arg(tool)
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing: `cargo xtask test` installs xvfb and webkit2gtk-driver"
        );
    }
    // HQ with the demo and both models; a store replica bootstrapped from it.
    let hq = TestHq::start_with_demo();
    {
        let at_hq = aisle_hq::Hq::open(aisle_hq::Config::new(
            hq.data.path().to_owned(),
            String::new(),
        ))
        .expect("open HQ");
        at_hq
            .write(|conn| aisle_hq::db::train_and_publish(conn, None, 1, "2026-11-26 06:00:00"))
            .expect("train");
    }
    let store = hq.provisioned_store("tablet-1");
    sync_once(&store.db);
    let (member, name, family): (i64, String, String) = rusqlite::Connection::open(&store.db)
        .expect("replica")
        .query_row(
            "SELECT m.member_id, m.display_name, m.family_name FROM members m
             WHERE m.family_name IS NOT NULL AND m.erased_at IS NULL
               AND EXISTS (SELECT 1 FROM baskets b WHERE b.member_id = m.member_id)
             ORDER BY m.member_id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("a member with history");

    // Xvfb on a free display, WebKitWebDriver on a free port.
    let mut xvfb = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb");
    let mut line = String::new();
    BufReader::new(xvfb.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("display number");
    let _xvfb = Kill(xvfb);
    let display = format!(":{}", line.trim());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let _driver = Kill(
        Command::new("WebKitWebDriver")
            .arg(format!("--port={port}"))
            .env("DISPLAY", &display)
            .env("TAURI_WEBVIEW_AUTOMATION", "true")
            .env("AISLE_DB", &store.db)
            .env("AISLE_NOW", NOW)
            .env("AISLE_STORE", store.store_id.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("WebKitWebDriver"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http");
    let started = Instant::now();
    while http.get(format!("{base}/status")).send().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "WebKitWebDriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let session: Value = http
        .post(format!("{base}/session"))
        .json(
            &json!({ "capabilities": { "alwaysMatch": { "webkitgtk:browserOptions": {
            "binary": env!("CARGO_BIN_EXE_aisle-associate"), "args": [] } } } }),
        )
        .send()
        .expect("session")
        .json()
        .expect("json");
    let id = session["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {session}"))
        .to_owned();
    let driver = Driver {
        http: http.clone(),
        session: format!("{base}/session/{id}"),
    };

    // The start screen: the sync bar, nothing pending, synced just now (online).
    assert_eq!(
        driver.wait_text("[data-testid=pending]", |t| !t.is_empty()),
        "0"
    );
    let bar = driver.text(&driver.find("[data-testid=sync]"));
    assert!(
        bar.contains("Last sync: 20") && !bar.contains("Offline"),
        "{bar}"
    );
    driver.screenshot("start");

    // Search as you type, open the client.
    let search = driver.find("#q");
    driver.type_into(&search, &family[..3.min(family.len())]);
    let hits = driver.wait_text("[data-testid=hits]", |t| t.contains(&name));
    assert!(hits.contains(&name), "{hits}");
    driver.screenshot("search");
    let button = driver.call(
        reqwest::Method::POST,
        "element",
        Some(json!({ "using": "xpath", "value": format!("//button[contains(., \"{name}\")]") })),
    );
    driver.click(button[ELEMENT].as_str().expect("the client's button"));
    let client = driver.wait_text("[data-testid=client]", |t| t.contains("Buy again"));
    assert!(
        client.contains(&name) && client.contains("Recent baskets"),
        "{client}"
    );
    driver.screenshot("client");
    // Opening the profile was audited: an event waits for HQ.
    let viewed: u32 = driver
        .wait_text("[data-testid=pending]", |t| t != "0")
        .parse()
        .expect("a count");

    // A note: kept, shown, and waiting in the outbox.
    let note = format!("Asked about gluten-free bread ({member})");
    driver.type_into(&driver.find("input[aria-label='New note']"), &note);
    let save = driver.call(
        reqwest::Method::POST,
        "element",
        Some(json!({ "using": "xpath", "value": "//button[.='Save note']" })),
    );
    driver.click(save[ELEMENT].as_str().expect("Save note"));
    driver.wait_text("[data-testid=notes]", |t| t.contains(&note));
    // The note, and the profile shown again with it, wait for HQ.
    let expected = (viewed + 2).to_string();
    driver.wait_text("[data-testid=pending]", |t| t == expected);
    driver.screenshot("note");
    driver.call(reqwest::Method::DELETE, "", None);

    // Synced: the note and the audit trail are at HQ.
    let report = sync_once(&store.db);
    assert_eq!(report.events_uploaded, u64::from(viewed) + 2, "{report:?}");
    let views: i64 = hq
        .db()
        .query_row(
            "SELECT count(*) FROM store_events WHERE kind = 'profile_viewed'",
            [],
            |row| row.get(0),
        )
        .expect("views at HQ");
    assert_eq!(views, i64::from(viewed) + 1);
    let at_hq: String = hq
        .db()
        .query_row(
            "SELECT body FROM member_notes WHERE member_id = ?1 ORDER BY rowid DESC LIMIT 1",
            [member],
            |row| row.get(0),
        )
        .expect("the note at HQ");
    assert_eq!(at_hq, note);
}
