//! `cargo xtask demo`: the README's main job, the whole store on one machine.
//!
//! 1. The reference HQ (`aisle-hq`) is given the embedded demo data, a
//!    development certificate, both models (recommendations and P(redeem))
//!    and a registered kiosk device of the demo's showcase store, then
//!    serves HTTPS on a loopback port.
//! 2. A store replica is provisioned and bootstrapped from HQ with `aisle
//!    sync` (signed snapshot, models, the partition's members and their
//!    history), and `aisle sync --watch` keeps it synced in the background
//!    (the kiosk's outbox events reach HQ; stop HQ and the kiosk says offline).
//! 3. The kiosk opens on it (`--fullscreen` for a real kiosk); without a
//!    display, or with `--headless DIR`, it renders every screen to PNGs.
//!    With `--tablet`, the associate tablet opens instead (a display is
//!    needed; HQ's import gave the store its demo associates, staff 1001
//!    PIN 2468 and manager 1002 PIN 1357).
//!
//! Everything lives in one folder (`--dir`, default `<target>/demo`), rebuilt on every run;
//! HQ and the sync loop stop when the kiosk closes. `cargo xtask bench kiosk` is here too:
//! the kiosk on the same demo data, in release.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cargo, describe, flag, root, run};

/// The kiosk's clock starts here: a day inside the demo data's last
/// campaigns, so the showcase member has live coupons.
const DEMO_NOW: &str = "2017-10-20 12:00:00";

/// Children stopped (killed and reaped) when the demo ends, however it ends.
struct Background(Vec<(String, Child)>);

impl Drop for Background {
    fn drop(&mut self) {
        for (name, child) in &mut self.0 {
            child.kill().ok();
            child.wait().ok();
            eprintln!("stopped {name}");
        }
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

/// Runs a command and returns its standard output (its errors pass through).
fn output(cmd: &mut Command) -> Result<String> {
    eprintln!("$ {}", describe(cmd));
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !out.status.success() {
        bail!("{} failed: {}", describe(cmd), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))
}

pub fn demo(args: &[&str]) -> Result<()> {
    crate::ensure_packages()?;
    let release = args.contains(&"--release");
    let tablet = args.contains(&"--tablet");
    if tablet {
        if !has_display() {
            bail!(
                "the associate tablet needs a display (DISPLAY / WAYLAND_DISPLAY): run `cargo xtask demo --tablet` on a desktop"
            );
        }
        crate::front_end(false)?;
    }
    let mut build = cargo();
    if args.contains(&"--test-build") {
        // After `cargo test --workspace` (xtask test): the binaries with the
        // features the tests resolved, so nothing is compiled a second time
        // with another feature set; only the binaries are linked.
        build.args(["build", "--quiet", "--workspace", "--tests", "--bins"]);
    } else {
        build.args([
            "build",
            "--quiet",
            "-p",
            "aisle-cli",
            "-p",
            "aisle-hq",
            "-p",
            "aisle-kiosk",
        ]);
    }
    if tablet {
        build.args(["-p", "aisle-associate"]);
    }
    if release {
        build.arg("--release");
    }
    run(&mut build)?;
    let bin = target_dir().join(if release { "release" } else { "debug" });
    let (aisle, hq_bin, kiosk) = (
        bin.join("aisle"),
        bin.join("aisle-hq"),
        bin.join("aisle-kiosk"),
    );

    let dir = flag(args, "--dir").map_or_else(|| target_dir().join("demo"), PathBuf::from);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the previous demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let hq_data = dir.join("hq");
    let hq = |args: &[&str]| {
        let mut cmd = Command::new(&hq_bin);
        cmd.arg("--data").arg(&hq_data).args(args);
        cmd.env("RUST_LOG", "warn");
        cmd
    };

    // 1. HQ: the demo data, a certificate, the models, the device (a kiosk,
    // or a tablet with --tablet: each kind may do only its own part at HQ).
    let showcase: serde_json::Value = serde_json::from_str(&output(&mut hq(&["import-demo"]))?)
        .context("aisle-hq import-demo printed no JSON")?;
    let store_id = showcase["store_id"]
        .as_i64()
        .context("the demo's showcase member has no home store")?;
    let tls = dir.join("tls");
    run(hq(&["dev-cert"]).arg(&tls))?;
    output(&mut hq(&["train"]))?;
    let (device_id, kind) = if tablet {
        ("demo-tablet-1", "tablet")
    } else {
        ("demo-kiosk-1", "kiosk")
    };
    // The admin's one-time enrolment code for the device (the device's
    // secret is made at HQ and goes to the device only, over TLS).
    let enrolment: serde_json::Value = serde_json::from_str(&output(&mut hq(&[
        "enrol-device",
        "--device-id",
        device_id,
        "--store-id",
        &store_id.to_string(),
        "--kind",
        kind,
    ]))?)
    .context("aisle-hq enrol-device printed no JSON")?;
    let code = enrolment["code"]
        .as_str()
        .context("no enrolment code")?
        .to_owned();
    // An admin token of HQ's own making, readable by its owner only.
    let token = dir.join("admin-tokens");
    let line = output(&mut hq(&["new-admin-token", "--name", "demo"]))?;
    write_private(&token, line.as_bytes())?;
    let address_file = dir.join("hq-address");
    let mut serve = hq(&["serve", "--listen", "127.0.0.1:0"]);
    serve
        .arg("--tls-cert")
        .arg(tls.join("hq.pem"))
        .arg("--tls-key")
        .arg(tls.join("hq.key"))
        .arg("--admin-token-file")
        .arg(&token)
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--admin-address-file")
        .arg(dir.join("hq-admin-address"))
        .arg("--address-file")
        .arg(&address_file)
        .stdout(Stdio::null())
        .stderr(log_file(&dir.join("hq.log"))?);
    eprintln!("$ {}", describe(&serve));
    let mut hq_process = Background(vec![(
        "HQ".into(),
        serve.spawn().context("starting aisle-hq")?,
    )]);
    let address = wait_for_address(&address_file, &mut hq_process.0[0].1)?;
    eprintln!(
        "HQ serves https://{address} (log: {})",
        dir.join("hq.log").display()
    );

    // 2. The store replica: provisioned, bootstrapped, then kept in sync.
    let replica = dir.join("store.db");
    let store = |args: &[&str]| {
        let mut cmd = Command::new(&aisle);
        cmd.arg("--db").arg(&replica).args(args);
        cmd
    };
    run(store(&[
        "sync",
        "enrol",
        "--hq",
        &format!("https://{address}"),
        "--code",
        &code,
    ])
    .arg("--ca")
    .arg(tls.join("ca.pem")))?;
    run(&mut store(&["sync"]))?;
    let mut watch = store(&["sync", "--watch", "--interval", "15"]);
    watch
        .stdout(log_file(&dir.join("sync.log"))?)
        .stderr(Stdio::null());
    let sync_loop = Background(vec![(
        "the sync loop".into(),
        watch.spawn().context("starting aisle sync --watch")?,
    )]);

    // 3. The tablet, or the kiosk.
    if tablet {
        eprintln!(
            "store {store_id}'s associate tablet on {}: sign in as staff 1001 (PIN 2468) or manager 1002 (PIN 1357)",
            replica.display()
        );
        run(Command::new(bin.join("aisle-associate"))
            .env("AISLE_DB", &replica)
            .env("AISLE_STORE", store_id.to_string())
            .env("AISLE_NOW", DEMO_NOW))?;
        drop(sync_loop);
        run(&mut store(&["sync"]))?;
        drop(hq_process);
        return Ok(());
    }
    let mut open = Command::new(&kiosk);
    open.arg("--db")
        .arg(&replica)
        .arg("--store")
        .arg(store_id.to_string())
        .arg("--brand")
        .arg(root().join("assets/brand"))
        .args(["--demo", "--now", DEMO_NOW]);
    for name in ["--lang", "--idle-secs"] {
        if let Some(value) = flag(args, name) {
            open.args([name, value]);
        }
    }
    if args.contains(&"--fullscreen") {
        open.arg("--fullscreen");
    }
    let headless = match flag(args, "--headless") {
        Some(path) => Some(PathBuf::from(path)),
        None if !has_display() => {
            eprintln!(
                "no display (DISPLAY / WAYLAND_DISPLAY): rendering the kiosk's screens instead"
            );
            Some(dir.join("screens"))
        }
        None => None,
    };
    if let Some(path) = &headless {
        open.arg("--headless").arg(path);
    }
    eprintln!(
        "store {store_id}'s kiosk on {} (tap a demo member on the attract screen)",
        replica.display()
    );
    run(&mut open)?;
    if let Some(path) = &headless {
        let mut shots: Vec<String> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .flatten()
            .map(|entry| entry.path().display().to_string())
            .collect();
        shots.sort();
        if shots.is_empty() {
            bail!("the kiosk rendered no screen into {}", path.display());
        }
        println!("The kiosk's screens:");
        for shot in shots {
            println!("  {shot}");
        }
    }
    // What the kiosk wrote (visits, coupons) reaches HQ through the outbox.
    drop(sync_loop);
    run(&mut store(&["sync"]))?;
    let status = output(&mut store(&["sync", "status"]))?;
    println!("{}", status.trim_end());
    drop(hq_process);
    Ok(())
}

/// Waits until HQ wrote the address it listens on (it exits on failure).
fn wait_for_address(path: &Path, hq: &mut Child) -> Result<String> {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.trim().parse::<std::net::SocketAddr>().is_ok()
        {
            return Ok(text.trim().to_owned());
        }
        if let Some(status) = hq.try_wait()? {
            bail!("aisle-hq stopped before listening ({status}): see its log");
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("aisle-hq did not listen within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `cargo xtask bench kiosk [--scans N --starts N]`: the kiosk in release
/// on the demo replica: scan to welcome frame (in-process, against one
/// attract frame), cold start to the first attract frame (spawn to exit,
/// against the same binary's `--version`), resident memory (the bench
/// process, and the real window under Xvfb when xvfb-run is installed).
pub fn bench_kiosk(args: &[&str]) -> Result<()> {
    let scans = flag(args, "--scans").unwrap_or("1000");
    let starts: usize = flag(args, "--starts").map_or(Ok(30), str::parse)?;
    run(cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "aisle-cli",
        "-p",
        "aisle-kiosk",
        "--features",
        "aisle-kiosk/bench",
    ]))?;
    let bin = target_dir().join("release");
    let (aisle, kiosk) = (bin.join("aisle"), bin.join("aisle-kiosk"));
    let work = std::env::temp_dir().join("aisle-bench-kiosk");
    std::fs::remove_dir_all(&work).ok();
    std::fs::create_dir_all(&work)?;
    let replica = work.join("demo.db");
    output(
        Command::new(&aisle)
            .arg("demo")
            .arg("--replica")
            .arg(&replica),
    )?;
    let on_replica = || {
        let mut cmd = Command::new(&kiosk);
        cmd.arg("--db")
            .arg(&replica)
            .arg("--brand")
            .arg(root().join("assets/brand"))
            .args(["--demo", "--now", DEMO_NOW]);
        cmd
    };
    print!("{}", output(on_replica().args(["--bench-scans", scans]))?);

    // Cold start: spawn -> the first attract frame rendered -> exit.
    let time_runs = |make: &dyn Fn() -> Command| -> Result<Vec<f64>> {
        let mut samples = Vec::with_capacity(starts);
        for _ in 0..starts {
            let mut cmd = make();
            cmd.stdout(Stdio::null());
            let started = Instant::now();
            let status = cmd.status().with_context(|| describe(&cmd))?;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
            if !status.success() {
                bail!("{} failed: {status}", describe(&cmd));
            }
        }
        samples.sort_by(f64::total_cmp);
        Ok(samples)
    };
    let cold = time_runs(&|| {
        let mut cmd = on_replica();
        cmd.arg("--bench-first-frame");
        cmd
    })?;
    let baseline = time_runs(&|| {
        let mut cmd = Command::new(&kiosk);
        cmd.arg("--version");
        cmd
    })?;
    let quantile = |samples: &[f64], q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    };
    println!(
        "cold start to the first attract frame: {starts} runs, p50 {:.0} ms, p99 {:.0} ms",
        quantile(&cold, 0.5),
        quantile(&cold, 0.99)
    );
    println!(
        "baseline, the same binary's --version: p50 {:.1} ms, p99 {:.1} ms; ratio of p50s {:.1}",
        quantile(&baseline, 0.5),
        quantile(&baseline, 0.99),
        quantile(&cold, 0.5) / quantile(&baseline, 0.5).max(1e-9)
    );

    // The real window (winit, software renderer) under Xvfb for five seconds.
    if Command::new("xvfb-run").arg("--help").output().is_ok() {
        let mut window = Command::new("xvfb-run");
        window
            .args(["-a", "-s", "-screen 0 1280x800x24"])
            .arg(&kiosk)
            .arg("--db")
            .arg(&replica)
            .arg("--brand")
            .arg(root().join("assets/brand"))
            .args(["--demo", "--now", DEMO_NOW, "--exit-after-ms", "5000"])
            .env("SLINT_BACKEND", "winit-software");
        eprintln!("$ {}", describe(&window));
        let out = window.output().context("xvfb-run")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        match stderr
            .lines()
            .find_map(|line| line.strip_prefix("peak resident memory: "))
        {
            Some(kb) => {
                println!("the real window under Xvfb, 5 s on attract: peak resident memory {kb}");
            }
            None => bail!("the kiosk under Xvfb reported no memory: {stderr}"),
        }
    }
    Ok(())
}

/// Writes `bytes` to a new file only its owner may read (mode 0600).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::remove_file(path).ok();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}
