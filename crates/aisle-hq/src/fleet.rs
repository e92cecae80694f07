//! `aisle-hq bench-fleet`: a chain's worth of stores against running HQ
//! instances (docs/BENCHMARKS.md, "HQ for a chain"). Built with the `bench`
//! feature only; `cargo xtask bench fleet` starts the instances (two on
//! PostgreSQL, then one on SQLite as the baseline) and runs it against each.
//!
//! Simulated stores are async tasks, not processes: each polls the feed
//! every `--poll-seconds` from a random phase and follows its cursor; the
//! chain uploads `--events-per-second` events in aggregate (one event per
//! upload: a random member's visit, from the member's home store); an admin
//! writer changes prices, stock and members at `--admin-per-second`; once, a
//! store whose partition holds every member bootstraps (the snapshot and
//! every chunk). Requests go to the
//! instances in turn (a simple round-robin). The HQ processes' resident
//! memory is sampled throughout.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aisle_proto::{PROTOCOL_HEADER, PROTOCOL_VERSION, paths};
use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The devices' URLs of the HQ instances, comma-separated (requests go round-robin).
    #[arg(long, value_delimiter = ',', required = true)]
    pub urls: Vec<String>,
    /// Their admin URLs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub admin_urls: Vec<String>,
    /// The CA certificate (PEM) HQ's certificate chains to.
    #[arg(long)]
    pub ca: PathBuf,
    /// A file holding the admin token.
    #[arg(long)]
    pub admin_token_file: PathBuf,
    /// The HQ processes' ids, comma-separated (resident memory sampled).
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Stores 1..=N, a kiosk each.
    #[arg(long, default_value_t = 2_000)]
    pub stores: i64,
    #[arg(long, default_value_t = 30)]
    pub poll_seconds: u64,
    /// Events uploaded per second across the chain.
    #[arg(long, default_value_t = 200)]
    pub events_per_second: u64,
    /// Admin changes per second (prices, stock, members).
    #[arg(long, default_value_t = 10)]
    pub admin_per_second: u64,
    #[arg(long, default_value_t = 300)]
    pub seconds: u64,
    /// The generated chain (`aisle gen`'s folder): uploads come from a
    /// member's home store, so HQ applies them (an event about a member
    /// outside the store's partition is quarantined, a different path).
    #[arg(long)]
    pub chain: PathBuf,
    /// Product ids run 1..=N.
    #[arg(long, default_value_t = 100_000)]
    pub products: i64,
    /// A store that joins every member to its partition and bootstraps
    /// once, a third of the way in.
    #[arg(long)]
    pub big_store: Option<i64>,
    /// Where the report goes (JSON); it is printed too.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Latencies of one kind of request.
#[derive(Debug, Default)]
struct Kind {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

#[derive(Debug, Default)]
struct Record(std::sync::Mutex<HashMap<&'static str, Kind>>);

impl Record {
    fn ok(&self, kind: &'static str, took: Duration) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(kind)
            .or_default()
            .latencies
            .push(took);
    }

    fn error(&self, kind: &'static str, why: String) {
        let mut all = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = all.entry(kind).or_default();
        entry.errors += 1;
        entry.first_error.get_or_insert(why);
    }
}

/// The instances, taken in turn.
#[derive(Debug)]
struct Targets {
    urls: Vec<String>,
    next: AtomicUsize,
}

impl Targets {
    fn next(&self) -> &str {
        let idx = self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len();
        &self.urls[idx]
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

/// Every member with its home store, `(member_id, home_store_id)` (the chain's `members.csv`).
fn home_stores(chain: &std::path::Path) -> anyhow::Result<Vec<(i64, i64)>> {
    let path = chain.join("members.csv");
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no {name} column", path.display()))
    };
    let (member, home) = (column("member_id")?, column("home_store_id")?);
    let mut homes = Vec::new();
    for row in reader.records() {
        let row = row?;
        let field = |i: usize| -> anyhow::Result<i64> {
            row.get(i).and_then(|v| v.parse().ok()).with_context(|| {
                format!("{}: a row without a number in column {i}", path.display())
            })
        };
        homes.push((field(member)?, field(home)?));
    }
    anyhow::ensure!(!homes.is_empty(), "{} holds no member", path.display());
    Ok(homes)
}

/// A process's resident memory in bytes (Linux).
fn resident(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn run(config: aisle_hq::Config, options: &Options) -> anyhow::Result<()> {
    let hq = aisle_hq::Hq::open(config)?;
    let now = aisle_hq::now();
    // The stores' kiosks, registered at HQ directly (as `register-device`).
    let stamp = std::process::id();
    let mut devices = Vec::new();
    for store_id in 1..=options.stores {
        let device_id = format!("fleet-{stamp}-{store_id}");
        let secret = hq
            .storage()
            .register_device(&device_id, store_id, aisle_proto::DeviceKind::Kiosk, now)
            .with_context(|| format!("registering a kiosk of store {store_id}"))?;
        devices.push((store_id, format!("Bearer {device_id}.{secret}")));
    }
    if let Some(store_id) = options.big_store {
        let joined = hq.storage().assign_all_members(store_id)?;
        tracing::info!(
            store_id,
            joined,
            "every member in the big store's partition"
        );
    }
    drop(hq);
    let ca = std::fs::read_to_string(&options.ca)
        .with_context(|| format!("reading {}", options.ca.display()))?;
    let token = std::fs::read_to_string(&options.admin_token_file)?
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .context("the admin token file holds `NAME TOKEN`")?;
    let homes = home_stores(&options.chain)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(drive(options, devices, homes, &ca, &token))?;
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &options.report {
        std::fs::write(path, &text)?;
    }
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

async fn drive(
    options: &Options,
    devices: Vec<(i64, String)>,
    homes: Vec<(i64, i64)>,
    ca: &str,
    token: &str,
) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?)
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(4_096)
        .build()?;
    let targets = Arc::new(Targets {
        urls: options.urls.clone(),
        next: AtomicUsize::new(0),
    });
    let admin_targets = Arc::new(Targets {
        urls: options.admin_urls.clone(),
        next: AtomicUsize::new(0),
    });
    // Members of the simulated stores only (an admin change keeps a member's home store).
    let homes: Arc<Vec<(i64, i64)>> = Arc::new(
        homes
            .into_iter()
            .filter(|(_, store_id)| (1..=options.stores).contains(store_id))
            .collect(),
    );
    anyhow::ensure!(
        !homes.is_empty(),
        "no member's home store is one of the stores"
    );
    let record = Arc::new(Record::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(options.seconds);
    let mut rng = aisle_core::rng::SplitMix64::new(20_261_205);
    let mut tasks = Vec::new();
    // Every store polls from a random phase.
    for (store_id, auth) in devices.clone() {
        let phase = Duration::from_millis(rng.next_u64() % (options.poll_seconds * 1_000).max(1));
        let (client, targets, record) = (client.clone(), targets.clone(), record.clone());
        let every = Duration::from_secs(options.poll_seconds.max(1));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            let mut cursor = 0u64;
            while Instant::now() < until {
                let tick = Instant::now();
                loop {
                    let url = format!(
                        "{}{}?after={cursor}&limit=5000",
                        targets.next(),
                        paths::CHANGES
                    );
                    let begun = Instant::now();
                    let answer = client
                        .get(&url)
                        .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                        .header(reqwest::header::AUTHORIZATION, &auth)
                        .send()
                        .await;
                    let batch = match answer {
                        Ok(response) if response.status().is_success() => response
                            .json::<aisle_proto::Signed>()
                            .await
                            .ok()
                            .and_then(|signed| {
                                serde_json::from_str::<aisle_proto::ChangeBatch>(&signed.payload)
                                    .ok()
                            }),
                        Ok(response) => {
                            record
                                .error("poll", format!("store {store_id}: {}", response.status()));
                            None
                        }
                        Err(err) => {
                            record.error("poll", format!("store {store_id}: {err}"));
                            None
                        }
                    };
                    let Some(batch) = batch else { break };
                    record.ok("poll", begun.elapsed());
                    cursor = batch.to_cursor;
                    if !batch.more {
                        break;
                    }
                }
                let wake = (tick + every).min(until);
                tokio::time::sleep_until(wake.into()).await;
            }
        }));
    }
    // Uploads: one event each (a random member's visit at the member's
    // home store), at the chain's rate.
    {
        let (client, targets, record) = (client.clone(), targets.clone(), record.clone());
        let auth_of: HashMap<i64, String> = devices.iter().cloned().collect();
        let homes = homes.clone();
        let per_second = options.events_per_second.max(1);
        let mut rng = aisle_core::rng::SplitMix64::new(rng.next_u64());
        tasks.push(tokio::spawn(async move {
            let gap = Duration::from_secs(1) / u32::try_from(per_second).unwrap_or(u32::MAX);
            // Keys as a store's outbox makes them: the replica's random
            // instance id, then its own sequence number.
            let instance: HashMap<i64, String> = auth_of
                .keys()
                .map(|store_id| (*store_id, format!("{:016x}", rng.next_u64())))
                .collect();
            let mut seqs: HashMap<i64, i64> = HashMap::new();
            let mut next = Instant::now();
            while Instant::now() < until {
                let (member_id, store_id) = homes[(rng.next_u64() % homes.len() as u64) as usize];
                let auth = auth_of[&store_id].clone();
                let seq = seqs.entry(store_id).or_insert(0);
                *seq += 1;
                let seq = *seq;
                let body = serde_json::json!({ "events": [{
                    "idempotency_key": format!("{}-{seq}", instance[&store_id]),
                    "seq": seq,
                    "kind": "kiosk_visit",
                    "payload": { "member_id": member_id, "store_id": store_id, "at": aisle_hq::now().to_string() },
                    "created_at": aisle_hq::now().to_string(),
                }]});
                let (client, targets, record) = (client.clone(), targets.clone(), record.clone());
                tokio::spawn(async move {
                    let begun = Instant::now();
                    let answer = client
                        .post(format!("{}{}", targets.next(), paths::EVENTS))
                        .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                        .header(reqwest::header::AUTHORIZATION, &auth)
                        .json(&body)
                        .send()
                        .await;
                    match answer {
                        Ok(response) if response.status().is_success() => {
                            record.ok("upload", begun.elapsed());
                        }
                        Ok(response) => record.error("upload", response.status().to_string()),
                        Err(err) => record.error("upload", err.to_string()),
                    }
                });
                next += gap;
                tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
            }
        }));
    }
    // The admin writer: prices and stock, and members.
    {
        let (client, targets, record) = (client.clone(), admin_targets.clone(), record.clone());
        let token = token.to_owned();
        let (stores, products) = (options.stores, options.products);
        let homes = homes.clone();
        let per_second = options.admin_per_second.max(1);
        let mut rng = aisle_core::rng::SplitMix64::new(rng.next_u64());
        tasks.push(tokio::spawn(async move {
            let gap = Duration::from_secs(1) / u32::try_from(per_second).unwrap_or(u32::MAX);
            let mut next = Instant::now();
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let (path, body, kind) = if n.is_multiple_of(4) {
                    let (member_id, store_id) = homes[(rng.next_u64() % homes.len() as u64) as usize];
                    let member = serde_json::json!({
                        "member_id": member_id, "given_name": format!("Fleet {n}"), "family_name": null,
                        "display_name": null, "phone": null, "email": null, "home_store_id": store_id,
                        "tier": "silver", "consent_personalization": true, "consent_personalization_at": null,
                        "consent_marketing": false, "consent_marketing_at": null, "enrolled_on": null,
                        "updated_at": aisle_hq::now().to_string(), "cards": [], "preferences": []
                    });
                    (paths::ADMIN_MEMBERS, member, "admin_member")
                } else {
                    let store_id = 1 + (rng.next_u64() % stores as u64) as i64;
                    let price = serde_json::json!({
                        "store_id": store_id,
                        "product_id": 1 + (rng.next_u64() % products as u64) as i64,
                        "price_cents": (rng.next_u64() % 10_000) as i64,
                        "stock_qty": (rng.next_u64() % 100) as i64,
                        "location": null,
                        "updated_at": aisle_hq::now().to_string(),
                    });
                    (paths::ADMIN_STORE_PRODUCTS, price, "admin_price")
                };
                let begun = Instant::now();
                let answer = client
                    .post(format!("{}{path}", targets.next()))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status().is_success() => record.ok(kind, begun.elapsed()),
                    // A price of a product the store does not stock is refused: not HQ's fault.
                    Ok(response) if response.status() == reqwest::StatusCode::NOT_FOUND => {
                        record.ok(kind, begun.elapsed());
                    }
                    Ok(response) => record.error(kind, response.status().to_string()),
                    Err(err) => record.error(kind, err.to_string()),
                }
                next += gap;
                tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
            }
        }));
    }
    // The big store's bootstrap, a third of the way in.
    if let Some(big) = options.big_store {
        let auth = {
            let hq = devices.iter().find(|(store_id, _)| *store_id == big);
            hq.map(|(_, auth)| auth.clone())
                .context("the big store is not one of the stores")?
        };
        let (client, targets, record) = (client.clone(), targets.clone(), record.clone());
        let at = Duration::from_secs(options.seconds / 3);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(at).await;
            let begun = Instant::now();
            let url = targets.next().to_owned();
            let result = async {
                let signed: aisle_proto::Signed = client
                    .get(format!("{url}{}", paths::SNAPSHOT))
                    .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                    .header(reqwest::header::AUTHORIZATION, &auth)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let manifest: aisle_proto::SnapshotManifest =
                    serde_json::from_str(&signed.payload).map_err(anyhow::Error::from)?;
                let mut bytes = 0u64;
                for chunk in &manifest.chunks {
                    let path = paths::SNAPSHOT_CHUNKS
                        .replace("{snapshot_id}", &manifest.snapshot_id)
                        .replace("{index}", &chunk.index.to_string());
                    bytes += client
                        .get(format!("{url}{path}"))
                        .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                        .header(reqwest::header::AUTHORIZATION, &auth)
                        .send()
                        .await?
                        .error_for_status()?
                        .bytes()
                        .await?
                        .len() as u64;
                }
                anyhow::Ok((manifest.total_records, bytes))
            }
            .await;
            match result {
                Ok((records, bytes)) => {
                    record.ok("bootstrap", begun.elapsed());
                    tracing::info!(records, bytes, "the big store bootstrapped");
                }
                Err(err) => record.error("bootstrap", err.to_string()),
            }
        }));
    }
    // HQ's resident memory, sampled.
    let pids = options.pids.clone();
    let sampler = tokio::spawn(async move {
        let mut peaks: Vec<u64> = vec![0; pids.len()];
        while Instant::now() < until + Duration::from_secs(5) {
            for (peak, pid) in peaks.iter_mut().zip(&pids) {
                *peak = (*peak).max(resident(*pid).unwrap_or(0));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        peaks
    });
    for task in tasks {
        task.await?;
    }
    // Uploads still in flight.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let peaks = sampler.await?;
    let elapsed = started.elapsed().as_secs_f64();
    let kinds = std::mem::take(
        &mut *record
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let mut requests = 0;
    let mut by_kind = serde_json::Map::new();
    for (name, mut kind) in kinds {
        kind.latencies.sort();
        requests += kind.latencies.len() as u64 + kind.errors;
        by_kind.insert(
            name.to_owned(),
            serde_json::json!({
                "count": kind.latencies.len(),
                "errors": kind.errors,
                "first_error": kind.first_error,
                "p50_ms": percentile(&kind.latencies, 0.5),
                "p99_ms": percentile(&kind.latencies, 0.99),
                "max_ms": percentile(&kind.latencies, 1.0),
            }),
        );
    }
    Ok(serde_json::json!({
        "instances": options.urls.len(),
        "stores": options.stores,
        "seconds": elapsed,
        "requests_per_second": requests as f64 / elapsed,
        "kinds": by_kind,
        "resident_peak_mb": peaks.iter().map(|b| *b as f64 / 1e6).collect::<Vec<_>>(),
    }))
}
