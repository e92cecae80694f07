//! `cargo xtask bench fleet`: HQ for a chain (docs/BENCHMARKS.md). A
//! generated chain (1 M members, 2,000 stores, 100 k products, some 5,500
//! of them in each store) loaded into
//! HQ on a throwaway PostgreSQL cluster (durable: fsync on), served by two
//! HQ instances sharing the database and the data folder, driven by
//! `aisle-hq bench-fleet` (2,000 simulated stores, uploads, an admin
//! writer, one 1 M-member bootstrap); then the same run against one HQ on
//! SQLite, the baseline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::postgres::Cluster;

/// An `aisle-hq serve` process; killed when dropped.
struct Served {
    child: Child,
    url: String,
    admin_url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn serve(
    hq: &Path,
    data: &Path,
    database: Option<&str>,
    work: &Path,
    name: &str,
) -> Result<Served> {
    let address = work.join(format!("{name}.address"));
    let admin_address = work.join(format!("{name}.admin-address"));
    std::fs::remove_file(&address).ok();
    std::fs::remove_file(&admin_address).ok();
    let mut cmd = Command::new(hq);
    cmd.arg("--data").arg(data);
    if let Some(url) = database {
        cmd.arg("--database").arg(url);
    }
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .arg("--tls-cert")
    .arg(work.join("tls/hq.pem"))
    .arg("--tls-key")
    .arg(work.join("tls/hq.key"))
    .arg("--admin-token-file")
    .arg(work.join("tokens"))
    .arg("--address-file")
    .arg(&address)
    .arg("--admin-address-file")
    .arg(&admin_address)
    // Every simulated store calls from 127.0.0.1 (the per-device quotas still hold).
    .args([
        "--per-address-per-minute",
        "100000000",
        "--per-address-burst",
        "10000000",
    ])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("starting aisle-hq")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let read = |path: &Path, child: &mut Child| -> Result<String> {
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && !text.is_empty()
            {
                return Ok(text);
            }
            if child.try_wait()?.is_some() {
                bail!("aisle-hq {name} exited before listening");
            }
            if Instant::now() > deadline {
                bail!("aisle-hq {name} did not listen");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let url = format!("https://{}", read(&address, &mut child)?);
    let admin_url = format!("https://{}", read(&admin_address, &mut child)?);
    Ok(Served {
        child,
        url,
        admin_url,
    })
}

/// One `bench-fleet` run against `served`; its JSON report.
fn drive(
    hq: &Path,
    data: &Path,
    database: Option<&str>,
    work: &Path,
    served: &[&Served],
    options: &[&str],
    name: &str,
) -> Result<serde_json::Value> {
    let report = work.join(format!("{name}.json"));
    let join =
        |f: &dyn Fn(&Served) -> String| served.iter().map(|s| f(s)).collect::<Vec<_>>().join(",");
    let mut cmd = Command::new(hq);
    cmd.arg("--data").arg(data);
    if let Some(url) = database {
        cmd.arg("--database").arg(url);
    }
    cmd.arg("bench-fleet")
        .arg("--urls")
        .arg(join(&|s| s.url.clone()))
        .arg("--admin-urls")
        .arg(join(&|s| s.admin_url.clone()))
        .arg("--pids")
        .arg(join(&|s| s.child.id().to_string()))
        .arg("--ca")
        .arg(work.join("tls/ca.pem"))
        .arg("--admin-token-file")
        .arg(work.join("tokens"))
        .arg("--report")
        .arg(&report)
        .args(options)
        .env("RUST_LOG", "warn");
    crate::run(&mut cmd)?;
    Ok(serde_json::from_str(&std::fs::read_to_string(&report)?)?)
}

pub fn bench_fleet(args: &[&str]) -> Result<()> {
    let members = crate::flag(args, "--members").unwrap_or("1000000");
    let products = crate::flag(args, "--products").unwrap_or("100000");
    let stores = crate::flag(args, "--stores").unwrap_or("2000");
    let seconds = crate::flag(args, "--seconds").unwrap_or("300");
    // A store carries its 500 best sellers and about 5 % of the rest (some
    // 5,500 products, 11 M prices in all): at the default share, 100 M rows
    // would not fit this machine's disk twice over.
    let assortment = crate::flag(args, "--assortment").unwrap_or("0.1");
    let aisle = crate::release_aisle()?;
    let hq = crate::release_hq_bench(&aisle)?;
    let work = std::env::temp_dir().join("aisle-bench-fleet");
    std::fs::remove_dir_all(&work).ok();
    std::fs::create_dir_all(&work)?;
    let generated = work.join("generated");
    let started = Instant::now();
    let mut generate = crate::generate(&aisle, members, products, &generated);
    crate::run(generate.args(["--stores", stores, "--assortment", assortment]))?;
    println!(
        "chain generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    crate::run(Command::new(&hq).arg("dev-cert").arg(work.join("tls")))?;
    let tokens = work.join("tokens");
    std::fs::write(
        &tokens,
        "fleet fleet-admin-token-0123456789abcdef0123456789abcdef\n",
    )?;
    std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let chain = generated
        .to_str()
        .context("a temporary folder's path is not UTF-8")?;
    let options = [
        "--stores",
        stores,
        "--chain",
        chain,
        "--products",
        products,
        "--seconds",
        seconds,
        "--big-store",
        "1",
    ];

    // HQ on PostgreSQL, two instances.
    let cluster = Cluster::start_durable()?;
    let url = cluster.url("postgres");
    let pg_data = work.join("hq-pg");
    let started = Instant::now();
    crate::run(
        Command::new(&hq)
            .arg("--data")
            .arg(&pg_data)
            .arg("--database")
            .arg(&url)
            .arg("import-csv")
            .arg(&generated)
            .env("RUST_LOG", "warn"),
    )?;
    let pg_import = started.elapsed().as_secs_f64();
    let a = serve(&hq, &pg_data, Some(&url), &work, "pg-a")?;
    let b = serve(&hq, &pg_data, Some(&url), &work, "pg-b")?;
    let postgres = drive(
        &hq,
        &pg_data,
        Some(&url),
        &work,
        &[&a, &b],
        &options,
        "postgres",
    )?;
    drop((a, b));
    let size = database_size(&cluster)?;

    // The baseline: one HQ on SQLite.
    let lite_data = work.join("hq-sqlite");
    let started = Instant::now();
    crate::run(
        Command::new(&hq)
            .arg("--data")
            .arg(&lite_data)
            .arg("import-csv")
            .arg(&generated)
            .env("RUST_LOG", "warn"),
    )?;
    let lite_import = started.elapsed().as_secs_f64();
    let one = serve(&hq, &lite_data, None, &work, "sqlite")?;
    let sqlite = drive(&hq, &lite_data, None, &work, &[&one], &options, "sqlite")?;
    drop(one);
    let lite_size = file_size(&lite_data.join("hq.db"));

    println!(
        "\nHQ on PostgreSQL (2 instances): imported in {pg_import:.1} s, database {:.2} GB",
        size as f64 / 1e9
    );
    println!("{}", serde_json::to_string_pretty(&postgres)?);
    println!(
        "\nHQ on SQLite (1 instance, the baseline): imported in {lite_import:.1} s, database {:.2} GB",
        lite_size as f64 / 1e9
    );
    println!("{}", serde_json::to_string_pretty(&sqlite)?);
    println!("\np99 per request kind, PostgreSQL / SQLite:");
    if let Some(kinds) = postgres["kinds"].as_object() {
        for (kind, figures) in kinds {
            let pg = figures["p99_ms"].as_f64().unwrap_or(0.0);
            let lite = sqlite["kinds"][kind]["p99_ms"].as_f64().unwrap_or(0.0);
            println!(
                "  {kind:<14} {pg:>9.1} ms / {lite:>9.1} ms = {:.2}x",
                pg / lite.max(1e-9)
            );
        }
    }
    Ok(())
}

fn database_size(cluster: &Cluster) -> Result<u64> {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--", "psql", "-At", "-d"])
        .arg(cluster.url("postgres"))
        .args(["-c", "SELECT pg_database_size(current_database())"])
        .output()?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("the database's size")
}

fn file_size(path: &PathBuf) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
