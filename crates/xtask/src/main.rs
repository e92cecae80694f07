#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask reports to the developer on the terminal"
)]

//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask demo [--fullscreen] [--headless DIR] [--lang fr] [--release]`: the README's
//!   main job: HQ with the embedded demo data, a synced store replica, the kiosk on it.
//! - `cargo xtask test`: system packages, fmt, clippy, the dependency rule, the core's
//!   layers, docs, every test.
//! - `cargo xtask layers`: no cycle between aisle-core's top-level modules (`layers.rs`).
//! - `cargo xtask bench import [--data DIR]`: import throughput against sqlite3's `.import`.
//! - `cargo xtask bench encryption [--data DIR] [--members N] [--runs N]`: what encrypting
//!   replicas costs (import, card look-up p99, 1 M bootstrap), beside plain replicas.
//! - `cargo xtask bench replica [--members N --products M --purchases P]`: the 1 M-member replica.
//! - `cargo xtask bench scan [--manifest FILE]`: decode rates and decode time per frame.
//! - `cargo xtask bench kiosk [--scans N --starts N]`: scan to welcome, cold start, memory.
//! - `cargo xtask bench fuzz [--inputs N]`: a million inputs per parser of untrusted input, no panic.

mod demo;
mod fleet;
mod layers;
mod postgres;
mod supply;
mod units;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Debian packages the workspace needs to build and test: cmake and g++ for
/// zxing-cpp (the barcode decoder, built from its bundled C++ sources);
/// libclang-dev for bindgen, for nokhwa's Video4Linux bindings (aisle-camera);
/// fontconfig for Slint's text (the kiosk; its own font is compiled in);
/// Xvfb, xauth and xwd for the kiosk's smoke test of the real window;
/// WebKitGTK (and its WebDriver) for the associate tablet (Tauri);
/// OpenSSL's libcrypto headers for SQLCipher (encrypted replicas); the key
/// providers' tools: systemd-creds (systemd), secret-tool with GNOME
/// Keyring and a D-Bus session for the Secret Service test.
const DEBIAN_PACKAGES: &[&str] = &[
    "build-essential",
    "cmake",
    "pkg-config",
    "libssl-dev",
    "systemd",
    "libsecret-tools",
    "gnome-keyring",
    "dbus-daemon",
    "sqlite3",
    "postgresql",
    "libclang-dev",
    "libfontconfig1-dev",
    "xvfb",
    "xauth",
    "x11-apps",
    "libwebkit2gtk-4.1-dev",
    "webkit2gtk-driver",
];

/// The test modules that run HQ, by package: run again with HQ on
/// PostgreSQL (`cargo xtask test`'s second pass).
const POSTGRES_SUITES: &[(&str, &[&str])] = &[
    (
        "aisle-cli",
        &["at_rest::", "coupons::", "devices::", "sync::", "trust::"],
    ),
    ("aisle-tests", &["hq_storage::"]),
    ("aisle-kiosk", &["models::"]),
    ("aisle-associate", &["commands::", "e2e_webkit::"]),
    ("aisle-hq", &["consistency::"]),
];

/// Crates the core must never depend on (UI, camera, server).
const FORBIDDEN_IN_CORE: &[&str] = &["slint", "tauri", "wry", "nokhwa", "axum"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["demo", rest @ ..] => demo::demo(rest),
        ["test", rest @ ..] => test(rest),
        ["layers"] => layers::check(&root()),
        ["deny"] => supply::check(),
        ["units"] => units::check(),
        ["bench", "import", rest @ ..] => bench_import(rest),
        ["bench", "replica", rest @ ..] => bench_replica(rest),
        ["bench", "sync", rest @ ..] => bench_sync(rest),
        ["bench", "sync-crash", rest @ ..] => bench_sync_crash(rest),
        ["bench", "fleet", rest @ ..] => fleet::bench_fleet(rest),
        ["bench", "encryption", rest @ ..] => bench_encryption(rest),
        ["bench", "scan", rest @ ..] => bench_scan(rest),
        ["bench", "kiosk", rest @ ..] => demo::bench_kiosk(rest),
        ["bench", "tablet", rest @ ..] => bench_tablet(rest),
        ["bench", "fuzz", rest @ ..] => bench_fuzz(rest),
        _ => {
            bail!(
                "usage: cargo xtask <demo | test | layers | deny | units | bench import [--data DIR] | bench replica [--members N --products M --purchases P] \
                 | bench sync [--members N --products M] | bench fleet [--members N --products M --stores S --assortment A --seconds T] | bench tablet [--db REPLICA --queries N --starts K] | bench sync-crash [--runs N --seed S] \
                 | bench scan [--manifest FILE] | bench kiosk [--scans N --starts N] | bench fuzz [--inputs N --seed S]>"
            )
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(root());
    cmd
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed: {status}", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1])
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn missing_packages() -> Vec<&'static str> {
    DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|pkg| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", pkg])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect()
}

fn ensure_packages() -> Result<()> {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "not a Debian/Ubuntu system: make sure these are installed: {}",
            DEBIAN_PACKAGES.join(" ")
        );
        return Ok(());
    }
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    let line = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        bail!("missing system packages; run as root:\n  sudo apt-get update && sudo {line}");
    }
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("sh")
        .arg("-c")
        .arg(format!("DEBIAN_FRONTEND=noninteractive {line}")))
}

/// Crates a package must not depend on (normal dependencies, features as
/// the package itself enables them): the core stays free of UI, camera and
/// server crates; HQ and the till build neither the C++ decoder nor an HTTP
/// client they do not use.
const DEPENDENCY_RULES: &[(&str, &[&str], &str)] = &[
    (
        "aisle-core",
        FORBIDDEN_IN_CORE,
        "UI, camera or server crates",
    ),
    (
        "aisle-hq",
        &["zxing-cpp", "reqwest"],
        "the decoder or an HTTP client",
    ),
    (
        "aisle-till",
        &["zxing-cpp", "reqwest"],
        "the decoder or an HTTP client",
    ),
];

fn check_core_dependencies() -> Result<()> {
    for (package, forbidden, what) in DEPENDENCY_RULES {
        let output = cargo()
            .args([
                "tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}",
            ])
            .output()
            .context("cargo tree")?;
        if !output.status.success() {
            bail!(
                "cargo tree failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let tree = String::from_utf8_lossy(&output.stdout);
        let offenders = offenders(&tree, forbidden);
        if !offenders.is_empty() {
            bail!(
                "{package} must not depend on {what}; found: {}",
                offenders.join(", ")
            );
        }
        eprintln!(
            "dependency rule: {package} depends on none of {}",
            forbidden.join(", ")
        );
    }
    Ok(())
}

/// The lines of a `cargo tree` listing that name a forbidden crate (or one
/// of its family, `slint-...`).
fn offenders<'a>(tree: &'a str, forbidden: &[&str]) -> Vec<&'a str> {
    tree.lines()
        .filter(|line| {
            let name = line.split_whitespace().next().unwrap_or_default();
            forbidden
                .iter()
                .any(|f| name == *f || name.starts_with(&format!("{f}-")))
        })
        .collect()
}

/// The associate tablet's web front end (`ui/associate`): installed from
/// its lock file, type-checked against the generated bindings, unit-tested
/// with the Tauri IPC mocked, and built into `dist/`, which the Tauri crate
/// embeds (so this runs before any cargo step compiles it).
pub(crate) fn front_end(test: bool) -> Result<()> {
    let dir = root().join("ui/associate");
    let npm =
        |args: &[&str]| -> Result<()> { run(Command::new("npm").args(args).current_dir(&dir)) };
    let version = Command::new("node").arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let major: u32 = text
                .trim()
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            if major < 20 {
                bail!(
                    "Node.js {} is too old for the associate app's build (Vite): install Node.js 20 or newer",
                    text.trim()
                );
            }
        }
        _ => bail!(
            "Node.js and npm are needed to build the associate app's front end: install Node.js 20 or newer"
        ),
    }
    npm(&["ci", "--no-audit", "--no-fund", "--loglevel=error"])?;
    if test {
        npm(&["run", "check"])?;
        npm(&["test"])?;
    }
    npm(&["run", "build"])
}

fn test(args: &[&str]) -> Result<()> {
    let mut steps = Steps::default();
    steps.time("system packages", ensure_packages)?;
    steps.time("front end", || front_end(true))?;
    steps.time("fmt", || run(cargo().args(["fmt", "--all", "--check"])))?;
    steps.time("clippy", || {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        // The benchmark harnesses are left out of the shipped HQ and kiosk: lint them too.
        run(cargo().args([
            "clippy",
            "-p",
            "aisle-hq",
            "-p",
            "aisle-kiosk",
            "--features",
            "aisle-hq/bench,aisle-kiosk/bench",
            "--",
            "-D",
            "warnings",
        ]))?;
        // The core as HQ and the till build it: no decoder, no HTTP client.
        run(cargo().args([
            "clippy",
            "-p",
            "aisle-core",
            "--lib",
            "--no-default-features",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    steps.time("dependency rule", check_core_dependencies)?;
    steps.time("module layers", || layers::check(&root()))?;
    steps.time("supply chain", supply::check)?;
    steps.time("unit files", units::check)?;
    steps.time("doc", || {
        run(cargo()
            .args(["doc", "--workspace", "--no-deps", "--quiet"])
            .env("RUSTDOCFLAGS", "-D warnings"))
    })?;
    let mut counts = (0, 0);
    steps.time("tests", || {
        counts = run_tests(
            cargo()
                .args(["test", "--workspace"])
                .args(args)
                .env_remove("AISLE_TEST_POSTGRES"),
        )?;
        Ok(())
    })?;
    // HQ's suites again, with HQ on PostgreSQL: the sync, coupon, device,
    // trust and at-rest tests (the CLI's), the tablet's, the kiosk's model
    // delivery, the storage contract, and the consistency test of two HQ
    // instances (which runs only here). The first pass's test binaries
    // themselves run again: `cargo test -p` would unify features per
    // package and rebuild them.
    steps.time("tests on PostgreSQL", || {
        let binaries = test_binaries(args)?;
        let cluster = postgres::Cluster::start()?;
        for (package, filters) in POSTGRES_SUITES {
            let (binary, dir) = binaries
                .get(*package)
                .with_context(|| format!("cargo built no `it` test binary for {package}"))?;
            let (passed, failed) = run_tests(
                Command::new(binary)
                    .args(*filters)
                    .current_dir(dir)
                    .env("AISLE_TEST_POSTGRES", cluster.url("postgres")),
            )?;
            counts = (counts.0 + passed, counts.1 + failed);
        }
        Ok(())
    })?;
    // The README's main job, end to end, where there is no display: HQ, sync, the kiosk's screens.
    steps.time("demo", || {
        let shots = std::env::temp_dir().join("aisle-demo-check");
        std::fs::remove_dir_all(&shots).ok();
        demo::demo(&["--headless", &shots.to_string_lossy(), "--test-build"])?;
        for screen in ["attract", "welcome", "product", "message"] {
            let path = shots.join(format!("{screen}.png"));
            if !path.is_file() {
                bail!(
                    "the demo's kiosk rendered no {screen} screen ({})",
                    path.display()
                );
            }
        }
        eprintln!("demo: HQ, sync and every kiosk screen ok");
        Ok(())
    })?;
    steps.report();
    // The closing line CI reads: every test of both passes.
    println!("\n{} passed, {} failed", counts.0, counts.1);
    Ok(())
}

/// Wall time of each step of `cargo xtask test`, reported at the end (the
/// CI budget is read off this table; docs/BENCHMARKS.md).
#[derive(Default)]
struct Steps(Vec<(&'static str, f64)>);

impl Steps {
    fn time(&mut self, name: &'static str, step: impl FnOnce() -> Result<()>) -> Result<()> {
        let started = Instant::now();
        let result = step();
        self.0.push((name, started.elapsed().as_secs_f64()));
        if result.is_err() {
            self.report();
        }
        result
    }

    fn report(&self) {
        let total: f64 = self.0.iter().map(|(_, s)| s).sum();
        eprintln!("xtask test, wall time per step:");
        for (name, seconds) in &self.0 {
            eprintln!("  {name:<16} {seconds:>7.0} s");
        }
        eprintln!("  {:<16} {total:>7.0} s", "total");
    }
}

/// Each package's `it` test binary as `cargo test --workspace` built it
/// (`args` as given to it), with the package's folder (where cargo runs its
/// tests); nothing is rebuilt.
fn test_binaries(args: &[&str]) -> Result<std::collections::HashMap<String, (PathBuf, PathBuf)>> {
    let metadata = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("cargo metadata")?;
    if !metadata.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&metadata.stderr)
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)?;
    let package_of: std::collections::HashMap<String, String> = metadata["packages"]
        .as_array()
        .context("cargo metadata lists no packages")?
        .iter()
        .filter_map(|p| {
            Some((
                p["manifest_path"].as_str()?.to_owned(),
                p["name"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let built = cargo()
        .args([
            "test",
            "--workspace",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .args(args)
        .env_remove("AISLE_TEST_POSTGRES")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cargo test --no-run")?;
    if !built.status.success() {
        bail!("cargo test --workspace --no-run failed");
    }
    let mut binaries = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&built.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_it = message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "it"
            && message["profile"]["test"] == true;
        if let (true, Some(executable), Some(manifest)) = (
            is_it,
            message["executable"].as_str(),
            message["manifest_path"].as_str(),
        ) && let Some(package) = package_of.get(manifest)
        {
            let dir = Path::new(manifest)
                .parent()
                .context("a manifest without a folder")?
                .to_owned();
            binaries.insert(package.clone(), (PathBuf::from(executable), dir));
        }
    }
    Ok(binaries)
}

/// Runs the test command, passing its output through, and ends with one line
/// that sums every test binary's results: (passed, failed).
fn run_tests(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    eprintln!("$ {}", describe(cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| describe(cmd))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    // Each test binary and how long its tests took, for the slowest-first summary.
    let mut binaries: Vec<(String, f64)> = Vec::new();
    // Named by cargo's `Running` line, or the binary run directly.
    let mut current = describe(cmd);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            if let Some(name) = line.trim().strip_prefix("Running ") {
                current = name.to_owned();
            }
            if let Some(rest) = line.strip_prefix("test result: ") {
                if let Some(seconds) = rest
                    .rsplit("finished in ")
                    .next()
                    .and_then(|t| t.trim().trim_end_matches('s').parse::<f64>().ok())
                {
                    binaries.push((std::mem::take(&mut current), seconds));
                }
                let count = |word: &str| {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim().strip_suffix(word).map(|n| {
                                n.trim()
                                    .trim_start_matches("ok. ")
                                    .trim_start_matches("FAILED. ")
                                    .to_owned()
                            })
                        })
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                passed += count("passed");
                failed += count("failed");
            }
        }
    }
    let status = child.wait()?;
    binaries.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("\nslowest test binaries:");
    for (name, seconds) in binaries.iter().take(8) {
        println!("  {seconds:>7.1} s  {name}");
    }
    println!("\n{passed} passed, {failed} failed");
    if !status.success() {
        bail!("{} failed: {status}", describe(cmd));
    }
    Ok((passed, failed))
}

fn release_aisle() -> Result<PathBuf> {
    built_aisle(true)
}

/// The `aisle` binary, built in release or in the dev profile (debug
/// assertions on: undefined behaviour a dependency commits, such as an
/// invalid enum value, aborts there instead of passing silently).
fn built_aisle(release: bool) -> Result<PathBuf> {
    let mut build = cargo();
    build.args(["build", "-p", "aisle-cli", "--bin", "aisle"]);
    if release {
        build.arg("--release");
    }
    run(&mut build)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    Ok(target
        .join(if release { "release" } else { "debug" })
        .join("aisle"))
}

/// `cargo xtask bench scan`: decode rates on a labelled scan corpus, then
/// decode time on 1280x720 frames made from it (docs/BENCHMARKS.md); every
/// picture is decoded by a debug build too, which must not abort.
fn bench_scan(args: &[&str]) -> Result<()> {
    let manifest = flag(args, "--manifest").unwrap_or("../shared/data/scans/dev/manifest.csv");
    let debug = built_aisle(false)?;
    run(Command::new(&debug).args(["eval", "scan", "--manifest", manifest]))
        .context("the debug build over every picture")?;
    eprintln!("debug build: every picture of {manifest} decoded without a crash");
    let aisle = release_aisle()?;
    run(Command::new(&aisle).args(["eval", "scan", "--manifest", manifest]))?;
    run(Command::new(&aisle).args(["bench", "decode", "--manifest", manifest]))
}

/// `cargo xtask bench fuzz`: at least a million random and mutated inputs
/// through each parser of untrusted input (member codes, wedge, decoder,
/// picture files), in release, then `--debug-inputs` (100,000) of them in
/// a debug build, whose checks abort on undefined behaviour in a
/// dependency; fails on any panic or abort.
fn bench_fuzz(args: &[&str]) -> Result<()> {
    let inputs = flag(args, "--inputs").unwrap_or("1000000");
    let debug_inputs = flag(args, "--debug-inputs").unwrap_or("100000");
    let seed = flag(args, "--seed").unwrap_or("1");
    let photos = root().join("assets/scans");
    for (aisle, inputs) in [
        (release_aisle()?, inputs),
        (built_aisle(false)?, debug_inputs),
    ] {
        run(Command::new(&aisle)
            .args([
                "bench", "fuzz", "--inputs", inputs, "--seed", seed, "--photos",
            ])
            .arg(&photos))?;
    }
    Ok(())
}

/// `cargo xtask bench tablet`: the associate app (release) in WebKitGTK
/// under Xvfb on the 1 M-member replica of `bench replica` (built first if
/// missing): search round trip, cold start, memory against a blank Tauri
/// window's (docs/BENCHMARKS.md).
fn bench_tablet(args: &[&str]) -> Result<()> {
    let queries = flag(args, "--queries").unwrap_or("1000");
    let starts = flag(args, "--starts").unwrap_or("10");
    let db = PathBuf::from(flag(args, "--db").map_or_else(
        || {
            std::env::temp_dir()
                .join("aisle-bench-replica/replica.db")
                .display()
                .to_string()
        },
        str::to_owned,
    ));
    if !db.is_file() {
        bench_replica(&[])?;
    }
    front_end(false)?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "aisle-associate",
        "--bin",
        "aisle-associate",
    ]))?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "aisle-associate",
        "--example",
        "bench_tablet",
        "--example",
        "blank_window",
    ]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    run(Command::new(target.join("release/examples/bench_tablet"))
        .arg("--binary")
        .arg(target.join("release/aisle-associate"))
        .arg("--blank")
        .arg(target.join("release/examples/blank_window"))
        .arg("--db")
        .arg(&db)
        .args(["--queries", queries, "--starts", starts]))
}

/// `cargo xtask bench sync`: a generated HQ (1 M members, 100 k products by
/// default) whose store partition holds every member, then `aisle-hq bench-sync`.
fn bench_sync(args: &[&str]) -> Result<()> {
    let members = flag(args, "--members").unwrap_or("1000000");
    let products = flag(args, "--products").unwrap_or("100000");
    let aisle = release_aisle()?;
    let hq_bin = release_hq_bench(&aisle)?;
    let work = std::env::temp_dir().join("aisle-bench-sync");
    std::fs::remove_dir_all(&work).ok();
    let data = work.join("data");
    let hq = work.join("hq");
    let gen_seconds = timed(&mut generate(&aisle, members, products, &data))?;
    let import_seconds = timed(&mut hq_import_csv(&hq_bin, &hq, &data))?;
    println!(
        "HQ master data: {members} members, {products} products generated in {gen_seconds:.1} s, imported in {import_seconds:.1} s"
    );
    run(Command::new(&hq_bin)
        .env("RUST_LOG", "warn")
        .arg("--data")
        .arg(&hq)
        .args(["bench-sync", "--whole-partition"]))
}

/// `cargo xtask bench encryption`: what encrypting replicas at rest costs,
/// each figure beside the same work on a plain replica in the same run
/// (`AISLE_ENCRYPTION=off`, which only decides how new replicas are made):
/// the Complete Journey import, the card look-up p99 on a 1 M-member
/// replica, and the bootstrap of a 1 M-member partition.
fn bench_encryption(args: &[&str]) -> Result<()> {
    let data = PathBuf::from(flag(args, "--data").unwrap_or("../shared/data/completejourney"));
    let data = data
        .canonicalize()
        .with_context(|| format!("no Complete Journey data at {}", data.display()))?;
    let members = flag(args, "--members").unwrap_or("1000000");
    let runs: usize = flag(args, "--runs").map_or(Ok(3), str::parse)?;
    let bootstrap_runs: usize = flag(args, "--bootstrap-runs").map_or(Ok(1), str::parse)?;
    let aisle = release_aisle()?;
    let hq_bin = release_hq_bench(&aisle)?;
    let work = std::env::temp_dir().join("aisle-bench-encryption");
    std::fs::remove_dir_all(&work).ok();
    std::fs::create_dir_all(&work)?;
    let modes = [("encrypted", false), ("plain", true)];
    let with_mode = |cmd: &mut Command, plain: bool| {
        if plain {
            cmd.env("AISLE_ENCRYPTION", "off");
        } else {
            cmd.env_remove("AISLE_ENCRYPTION");
        }
    };
    // Each figure: its name and the median of the encrypted and plain runs.
    let mut figures: Vec<(&str, f64, f64)> = Vec::new();

    // 1. The Complete Journey import, interleaved.
    let mut import = [Vec::new(), Vec::new()];
    for run_idx in 0..runs {
        for (side, (label, plain)) in modes.iter().enumerate() {
            let db = work.join(format!("cj-{label}-{run_idx}.db"));
            let mut cmd = cj_import(&aisle, &data, &db, &work);
            with_mode(&mut cmd, *plain);
            let seconds = timed(&mut cmd)?;
            eprintln!("import, {label}, run {run_idx}: {seconds:.2} s");
            import[side].push(seconds);
        }
    }
    figures.push((
        "Complete Journey import (s)",
        median(import[0].clone()),
        median(import[1].clone()),
    ));

    // 2. Card look-up p99 on a 1 M-member replica.
    let generated = work.join("gen");
    run(&mut generate(&aisle, members, "100000", &generated))?;
    let mut lookup = [Vec::new(), Vec::new()];
    for (label, plain) in &modes {
        let db = work.join(format!("lookup-{label}.db"));
        let mut cmd = Command::new(&aisle);
        cmd.arg("--db")
            .arg(&db)
            .args(["import", "csv"])
            .arg(&generated);
        with_mode(&mut cmd, *plain);
        run(&mut cmd)?;
    }
    for run_idx in 0..runs {
        for (side, (label, _)) in modes.iter().enumerate() {
            let db = work.join(format!("lookup-{label}.db"));
            let output = Command::new(&aisle)
                .arg("--db")
                .arg(&db)
                .args(["--json", "bench", "lookup", "--queries", "20000"])
                .arg("--seed")
                .arg((run_idx + 1).to_string())
                .output()?;
            if !output.status.success() {
                bail!("bench lookup: {}", String::from_utf8_lossy(&output.stderr));
            }
            let results: serde_json::Value = serde_json::from_slice(&output.stdout)?;
            let p99 = results
                .as_array()
                .and_then(|all| {
                    all.iter().find(|r| {
                        r["name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("member by card"))
                    })
                })
                .and_then(|r| r["p99_us"].as_f64())
                .context("no card look-up figure in `aisle bench lookup`")?;
            eprintln!("card look-up p99, {label}, run {run_idx}: {p99:.1} us");
            lookup[side].push(p99);
        }
    }
    figures.push((
        "card look-up p99, 1 M members (us)",
        median(lookup[0].clone()),
        median(lookup[1].clone()),
    ));

    // 3. The bootstrap of a 1 M-member partition (HQ's own database is the
    // same encrypted one for both sides).
    let hq = work.join("hq");
    run(&mut hq_import_csv(&hq_bin, &hq, &generated))?;
    let mut bootstrap = [Vec::new(), Vec::new()];
    for run_idx in 0..bootstrap_runs {
        for (side, (label, plain)) in modes.iter().enumerate() {
            let mut cmd = Command::new(&hq_bin);
            cmd.env("RUST_LOG", "warn").arg("--data").arg(&hq).args([
                "bench-sync",
                "--whole-partition",
                "--bootstrap-only",
            ]);
            with_mode(&mut cmd, *plain);
            let output = cmd.output()?;
            if !output.status.success() {
                bail!("bench-sync: {}", String::from_utf8_lossy(&output.stderr));
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            let line = stdout
                .lines()
                .find(|l| l.starts_with("bootstrap_seconds"))
                .context("no bootstrap figure")?;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let seconds: f64 = fields.get(1).context("bootstrap figure")?.parse()?;
            let encrypted = fields.get(3) == Some(&"true");
            if encrypted == *plain {
                bail!("the {label} bootstrap made a replica with encrypted={encrypted}");
            }
            eprintln!("bootstrap, {label}, run {run_idx}: {seconds:.1} s");
            bootstrap[side].push(seconds);
        }
    }
    figures.push((
        "bootstrap, 1 M-member partition (s)",
        median(bootstrap[0].clone()),
        median(bootstrap[1].clone()),
    ));

    println!(
        "What encryption at rest costs ({runs} runs; bootstrap {bootstrap_runs}), encrypted vs plain in the same run:"
    );
    for (name, encrypted, plain) in &figures {
        println!(
            "  {name:<40} encrypted {encrypted:>10.2}  plain {plain:>10.2}  ratio {:.2}x (medians)",
            encrypted / plain
        );
    }
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

/// Builds `aisle-hq` with its benchmarks (release), beside `aisle`.
fn release_hq_bench(aisle: &Path) -> Result<PathBuf> {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "aisle-hq",
        "--bin",
        "aisle-hq",
        "--features",
        "bench",
    ]))?;
    Ok(aisle.with_file_name("aisle-hq"))
}

/// `aisle gen`: `members` members (and as many purchase lines), `products` products.
fn generate(aisle: &Path, members: &str, products: &str, out: &Path) -> Command {
    let mut cmd = Command::new(aisle);
    cmd.args([
        "gen",
        "--members",
        members,
        "--products",
        products,
        "--purchases",
    ])
    .arg(members)
    .arg("--out")
    .arg(out);
    cmd
}

/// `aisle-hq import-csv` of generated data into the HQ folder `hq`.
fn hq_import_csv(hq_bin: &Path, hq: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(hq_bin);
    cmd.arg("--data").arg(hq).arg("import-csv").arg(data);
    cmd
}

/// `cargo xtask bench sync-crash`: the SIGKILL loop of the sync tests, 1,000 times.
fn bench_sync_crash(args: &[&str]) -> Result<()> {
    let runs = flag(args, "--runs").unwrap_or("1000");
    let seed = flag(args, "--seed").unwrap_or("20261125");
    run(cargo()
        .env("AISLE_CRASH_RUNS", runs)
        .env("AISLE_CRASH_SEED", seed)
        .args([
            "test",
            "--release",
            "-p",
            "aisle-cli",
            "--test",
            "it",
            "sync::kill_9",
            "--",
            "--nocapture",
        ]))
}

fn timed(cmd: &mut Command) -> Result<f64> {
    let started = Instant::now();
    let output = cmd.output().with_context(|| describe(cmd))?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            describe(cmd),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(seconds)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn sqlite(db: &Path, sql: &str) -> Result<String> {
    let output = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .context("running sqlite3 (apt-get install sqlite3)")?;
    if !output.status.success() {
        bail!("sqlite3 {sql}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Import throughput of the whole Complete Journey folder against sqlite3's
/// `.import` of the same purchase lines into the same table, in the same run.
fn bench_import(args: &[&str]) -> Result<()> {
    let data = PathBuf::from(flag(args, "--data").unwrap_or("../shared/data/completejourney"));
    let runs: usize = flag(args, "--runs").map_or(Ok(5), str::parse)?;
    let data = data
        .canonicalize()
        .with_context(|| format!("no Complete Journey data at {}", data.display()))?;
    let aisle = release_aisle()?;
    let work = std::env::temp_dir().join(format!("aisle-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    // One full import first: its purchase lines, exported as CSV, are the baseline's input.
    // Plain, so that sqlite3 can read it.
    let first = work.join("first.db");
    run(cj_import(&aisle, &data, &first, &work).env("AISLE_ENCRYPTION", "off"))?;
    let lines: f64 = sqlite(&first, "SELECT count(*) FROM purchase_lines")?.parse()?;
    let rejects = std::fs::read_to_string(work.join("rejects.csv"))
        .map_or(0, |t| t.lines().count().saturating_sub(1));
    let csv = work.join("purchase_lines.csv");
    let output = Command::new("sqlite3")
        .arg("-csv")
        .arg(&first)
        .arg("SELECT * FROM purchase_lines")
        .output()?;
    std::fs::write(&csv, &output.stdout)?;
    let schema = sqlite(&first, ".schema purchase_lines")?;

    // Interleaved, so both sides see the same machine load.
    let mut ours = Vec::new();
    let mut baseline = Vec::new();
    for run_idx in 0..runs {
        let db = work.join(format!("ours-{run_idx}.db"));
        let seconds = import_once(&aisle, &data, &db, &work)?;
        eprintln!("aisle import run {run_idx}: {seconds:.2} s");
        ours.push(seconds);

        let base = work.join(format!("baseline-{run_idx}.db"));
        sqlite(&base, "PRAGMA journal_mode=WAL")?;
        sqlite(&base, &schema)?;
        let seconds = timed(
            Command::new("sqlite3")
                .arg(&base)
                .arg("PRAGMA synchronous=NORMAL")
                .arg(format!(".import --csv {} purchase_lines", csv.display())),
        )?;
        eprintln!("sqlite3 .import run {run_idx}: {seconds:.2} s");
        baseline.push(seconds);
    }
    let (ours, baseline) = (median(ours), median(baseline));
    println!(
        "Complete Journey import ({} purchase lines, {rejects} rows rejected), median of {runs} runs:",
        lines as u64
    );
    println!(
        "  aisle import completejourney (all 7 files): {ours:.2} s = {:.0} purchase rows/s",
        lines / ours
    );
    println!(
        "  sqlite3 .import of the same lines into the same table: {baseline:.2} s = {:.0} rows/s",
        lines / baseline
    );
    println!("  ratio aisle / sqlite3 = {:.2}x", ours / baseline);
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

fn import_once(aisle: &Path, data: &Path, db: &Path, work: &Path) -> Result<f64> {
    timed(&mut cj_import(aisle, data, db, work))
}

/// `aisle import completejourney` of the whole folder into `db`.
fn cj_import(aisle: &Path, data: &Path, db: &Path, work: &Path) -> Command {
    let mut cmd = Command::new(aisle);
    cmd.arg("--db")
        .arg(db)
        .args(["import", "completejourney"])
        .arg(data)
        .args(["--skip-invalid", "--rejects"])
        .arg(work.join("rejects.csv"));
    cmd
}

/// Builds the large generated replica and measures look-ups and search on it.
fn bench_replica(args: &[&str]) -> Result<()> {
    let members = flag(args, "--members").unwrap_or("1000000");
    let products = flag(args, "--products").unwrap_or("100000");
    let purchases = flag(args, "--purchases").unwrap_or("20000000");
    let aisle = release_aisle()?;
    let work = PathBuf::from(flag(args, "--work").map_or_else(
        || {
            std::env::temp_dir()
                .join("aisle-bench-replica")
                .display()
                .to_string()
        },
        str::to_owned,
    ));
    let data = work.join("data");
    let db = work.join("replica.db");
    std::fs::create_dir_all(&work)?;
    let gen_seconds = timed(
        Command::new(&aisle)
            .args([
                "gen",
                "--members",
                members,
                "--products",
                products,
                "--purchases",
                purchases,
                "--out",
            ])
            .arg(&data),
    )?;
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", db.display())).ok();
    }
    let import_seconds = timed(
        Command::new(&aisle)
            .arg("--db")
            .arg(&db)
            .args(["import", "csv"])
            .arg(&data),
    )?;
    let bytes = std::fs::metadata(&db)?.len();
    println!(
        "generated {members} members, {products} products, {purchases} purchase lines in {gen_seconds:.1} s"
    );
    println!(
        "replica built in {import_seconds:.1} s; file size {:.2} GB",
        bytes as f64 / 1e9
    );
    run(Command::new(&aisle)
        .arg("--db")
        .arg(&db)
        .args(["bench", "lookup", "--queries", "10000"]))
}

#[cfg(test)]
mod tests {
    use super::offenders;

    #[test]
    fn a_forbidden_crate_and_its_family_are_found_and_others_are_not() {
        let tree = "aisle-core v0.0.0 (/x)\nreqwest v0.12.9\nzxing-cpp v0.4.0\nnokhwa-core v0.1.5\nserde v1.0.0\nreqwestish v1.0.0\n";
        assert_eq!(
            offenders(tree, &["reqwest", "zxing-cpp", "nokhwa"]),
            ["reqwest v0.12.9", "zxing-cpp v0.4.0", "nokhwa-core v0.1.5"]
        );
        assert!(offenders(tree, &["slint", "axum"]).is_empty());
    }
}
