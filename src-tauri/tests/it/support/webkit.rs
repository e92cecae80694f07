//! The real app in WebKitGTK under Xvfb, driven through WebKitWebDriver
//! (with Tauri's webview automation on): shared by the end-to-end test and
//! the tablet benchmark (`examples/bench_tablet.rs`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C WebDriver key of an element reference.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process killed and reaped when dropped.
#[derive(Debug)]
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Fails with a clear message when a tool is missing.
pub fn require_tools() {
    for tool in ["Xvfb", "WebKitWebDriver"] {
        assert!(
            Command::new("which")
                .arg(tool)
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing: `cargo xtask test` installs xvfb and webkit2gtk-driver"
        );
    }
}

/// Xvfb on a free display and WebKitWebDriver on a free port, with the
/// app's environment; sessions launch the app.
#[derive(Debug)]
pub struct Browser {
    _xvfb: Kill,
    driver: Kill,
    pub base: String,
    pub http: reqwest::blocking::Client,
    binary: PathBuf,
}

impl Browser {
    pub fn start(binary: &Path, env: &[(&str, String)]) -> Browser {
        require_tools();
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
        let xvfb = Kill(xvfb);
        let display = format!(":{}", line.trim());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut command = Command::new("WebKitWebDriver");
        command
            .arg(format!("--port={port}"))
            .env("DISPLAY", &display)
            .env("TAURI_WEBVIEW_AUTOMATION", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let driver = Kill(command.spawn().expect("WebKitWebDriver"));
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
        Browser {
            _xvfb: xvfb,
            driver,
            base,
            http,
            binary: binary.to_owned(),
        }
    }

    /// Launches the app in a new session.
    pub fn session(&self) -> Driver {
        let session: Value = self
            .http
            .post(format!("{}/session", self.base))
            .json(
                &json!({ "capabilities": { "alwaysMatch": { "webkitgtk:browserOptions": {
                "binary": self.binary, "args": [] } } } }),
            )
            .send()
            .expect("session")
            .json()
            .expect("json");
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        Driver {
            http: self.http.clone(),
            session: format!("{}/session/{id}", self.base),
        }
    }

    /// WebKitWebDriver's process id (the app is its child).
    pub fn driver_pid(&self) -> u32 {
        self.driver.0.id()
    }
}

/// One WebDriver session: the app's window.
#[derive(Debug)]
pub struct Driver {
    pub http: reqwest::blocking::Client,
    pub session: String,
}

impl Driver {
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/{path}", self.session);
        let request = self.http.request(method, &url);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let answer: Value = request.send().expect("webdriver").json().expect("json");
        answer["value"].clone()
    }

    /// Ends the session (the app quits).
    pub fn quit(&self) {
        self.call(reqwest::Method::DELETE, "", None);
    }

    fn locate(&self, using: &str, value: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self.call(
                reqwest::Method::POST,
                "element",
                Some(json!({ "using": using, "value": value })),
            );
            if let Some(id) = found[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no {value}: {found}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first element matching `css`, waiting up to 20 s for it.
    pub fn find(&self, css: &str) -> String {
        self.locate("css selector", css)
    }

    /// The first element matching an XPath, waiting up to 20 s for it.
    pub fn find_xpath(&self, xpath: &str) -> String {
        self.locate("xpath", xpath)
    }

    /// Whether an element matching `css` is on the page now.
    pub fn exists(&self, css: &str) -> bool {
        let found = self.call(
            reqwest::Method::POST,
            "elements",
            Some(json!({ "using": "css selector", "value": css })),
        );
        found.as_array().is_some_and(|all| !all.is_empty())
    }

    pub fn text(&self, element: &str) -> String {
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
    pub fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
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

    pub fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("element/{element}/click"),
            Some(json!({})),
        );
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Runs an async script (`arguments[arguments.length - 1]` is its callback).
    pub fn execute_async(&self, script: &str, args: &Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The window as PNG after two frames (a fresh DOM change is painted),
    /// saved as `dir/associate-{name}.png`.
    ///
    /// WebKit answers a screenshot after the page's next paint. Without
    /// compositing (the app's choice where there is no GPU) a still page
    /// never paints again and the request would wait forever, so a pixel in
    /// the corner flips between transparent and 1 % grey until the picture
    /// is taken (invisible in it: at most one level of one pixel).
    pub fn screenshot(&self, dir: &Path, name: &str) -> Vec<u8> {
        self.execute_async(
            r"const done = arguments[arguments.length - 1];
            let dot = document.getElementById('screenshot-tick');
            if (!dot) {
              dot = document.createElement('div');
              dot.id = 'screenshot-tick';
              dot.style.cssText = 'position:fixed;right:0;bottom:0;width:1px;height:1px;pointer-events:none';
              document.body.appendChild(dot);
            }
            clearInterval(window.screenshotTick);
            window.screenshotTick = setInterval(() => {
              dot.style.background = dot.style.background ? '' : 'rgba(0,0,0,0.01)';
            }, 20);
            requestAnimationFrame(() => requestAnimationFrame(() => done()));",
            &json!([]),
        );
        let encoded = self.call(reqwest::Method::GET, "screenshot", None);
        self.execute_async(
            r"const done = arguments[arguments.length - 1];
            clearInterval(window.screenshotTick);
            document.getElementById('screenshot-tick')?.remove();
            done();",
            &json!([]),
        );
        let png = base64_decode(encoded.as_str().expect("base64 PNG"));
        let path = dir.join(format!("associate-{name}.png"));
        std::fs::write(&path, &png).expect("save screenshot");
        assert_eq!(&png[1..4], b"PNG", "{name} is a PNG");
        png
    }
}

/// Standard base64 (the WebDriver screenshot encoding).
pub fn base64_decode(text: &str) -> Vec<u8> {
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
