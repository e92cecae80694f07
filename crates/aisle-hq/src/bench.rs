//! `aisle-hq bench-sync`: the sync figures of docs/BENCHMARKS.md, each
//! beside a baseline measured in the same run. HQ runs in this process on
//! loopback over TLS (a CA generated for the run); the store side is
//! aisle-core's real sync engine.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aisle_core::sync::{self, Credentials, SyncOptions, SyncReport, Transport};
use aisle_proto::{Change, EventKind, StoreProductRecord};
use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Options {
    #[arg(long, default_value_t = 1)]
    pub store_id: i64,
    /// Put every member in the store's partition (the 1 M-member bootstrap).
    #[arg(long)]
    pub whole_partition: bool,
    /// Price changes for the delta-apply figure.
    #[arg(long, default_value_t = 100_000)]
    pub changes: usize,
    /// Outbox events for the upload figure.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Stores polling at once.
    #[arg(long, default_value_t = 200)]
    pub pollers: usize,
    #[arg(long, default_value_t = 10)]
    pub poll_seconds: u64,
    /// Stop after the bootstrap (what encryption costs: `cargo xtask bench
    /// encryption` runs it with the store's replica encrypted and plain).
    #[arg(long)]
    pub bootstrap_only: bool,
}

fn say(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(data_dir: &Path, options: &Options) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let (ca_pem, tls) = aisle_hq::tls::dev_pki()?;
    let mut config = aisle_hq::Config::new(data_dir.to_owned());
    config.tls = Some(tls);
    // Every simulated store calls from the one loopback address: the
    // per-address limit is still checked on every request, at a rate no
    // single address of a real chain reaches.
    config.limits.per_address_per_minute = 100_000_000;
    config.limits.per_address_burst = 10_000_000;
    let hq = aisle_hq::Hq::open(config.clone())?;
    // Measure a snapshot built now, not one kept from an earlier run.
    std::fs::remove_dir_all(config.snapshot_dir()).ok();
    let store_id = options.store_id;
    let now = aisle_hq::now();
    // Devices, and the partition.
    let mut devices = Vec::new();
    if options.whole_partition {
        hq.storage().assign_all_members(store_id)?;
    }
    let stamp = std::process::id();
    for idx in 0..=options.pollers {
        let device_id = format!("bench-{stamp}-{idx}");
        let secret = hq.storage().register_device(
            &device_id,
            store_id,
            aisle_proto::DeviceKind::Kiosk,
            now,
        )?;
        devices.push(Credentials {
            hq_url: String::new(),
            device_id,
            store_id,
            secret,
            hq_public_key: hq.signer.public_hex(),
            ca_pem: Some(ca_pem.clone()),
            coupon_issuer: None,
            card_key: None,
        });
    }
    drop(hq);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("https://{}", listener.local_addr()?);
    for device in &mut devices {
        device.hq_url = url.clone();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listeners = aisle_hq::Listeners {
        devices: listener,
        admin: None,
    };
    runtime.spawn(aisle_hq::serve(listeners, config, async {
        stopped.await.ok();
    }));
    std::thread::sleep(Duration::from_millis(200));

    // 1. Bootstrap into an empty replica, and the floor: copying the resulting file.
    let replica = work.path().join("store.db");
    let mut conn = aisle_core::replica::open_writer(&replica)?;
    devices[0].save(&mut conn, now)?;
    let transport = Transport::new(&devices[0])?;
    let started = Instant::now();
    let manifest = transport.snapshot_manifest().context("snapshot manifest")?;
    let build = started.elapsed();
    let sync_options = SyncOptions::for_replica(&replica);
    let started = Instant::now();
    let records = sync::bootstrap(&mut conn, &transport, &sync_options, store_id)?;
    let bootstrap = started.elapsed();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    let bytes = std::fs::metadata(&replica)?.len();
    let copy_to = work.path().join("copy.db");
    let started = Instant::now();
    std::fs::copy(&replica, &copy_to)?;
    std::fs::File::open(&copy_to)?.sync_all()?;
    let copy = started.elapsed();
    // The copy opens with the same key (the file provider's folder beside it).
    let keys = aisle_core::vault::key_dir(&replica);
    if keys.is_dir() {
        let copied_keys = aisle_core::vault::key_dir(&copy_to);
        std::fs::create_dir_all(&copied_keys)?;
        for entry in std::fs::read_dir(&keys)? {
            let entry = entry?;
            std::fs::copy(entry.path(), copied_keys.join(entry.file_name()))?;
        }
    }
    let members: i64 = conn.query_row("SELECT count(*) FROM members", [], |row| row.get(0))?;
    let products: i64 = conn.query_row("SELECT count(*) FROM products", [], |row| row.get(0))?;
    say(&format!(
        "bootstrap: {records} records ({members} members, {products} products) in {} chunks, {:.1} MB compressed; \
         HQ built the snapshot in {:.1} s; download + verify + apply {:.1} s; total {:.1} s; replica {:.2} GB; \
         copying that file {:.2} s; ratio {:.1}x the copy",
        manifest.chunks.len(),
        manifest.chunks.iter().map(|c| c.bytes).sum::<u64>() as f64 / 1e6,
        build.as_secs_f64(),
        bootstrap.as_secs_f64(),
        (build + bootstrap).as_secs_f64(),
        bytes as f64 / 1e9,
        copy.as_secs_f64(),
        (build + bootstrap).as_secs_f64() / copy.as_secs_f64().max(1e-9)
    ))?;

    if options.bootstrap_only {
        say(&format!(
            "bootstrap_seconds {:.3} encrypted {}",
            bootstrap.as_secs_f64(),
            aisle_core::replica::file_state(&replica)? == aisle_core::replica::FileState::Encrypted
        ))?;
        drop(conn);
        stop.send(()).ok();
        runtime.shutdown_timeout(Duration::from_secs(2));
        return Ok(());
    }

    // 2. Delta apply: HQ changes prices; the store pulls them.
    let hq = aisle_hq::Hq::open(aisle_hq::Config::new(data_dir.to_owned()))?;
    // The store's own prices (as HQ's, just bootstrapped).
    let rows: Vec<StoreProductRecord> = conn
        .prepare(
            "SELECT store_id, product_id, price_cents, stock_qty, location, updated_at
             FROM store_products WHERE store_id = ?1 ORDER BY product_id LIMIT ?2",
        )?
        .query_map(
            rusqlite::params![store_id, options.changes as i64],
            sync::records::store_product_from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    let changes: Vec<Change> = rows
        .into_iter()
        .map(|mut row| {
            row.price_cents += 1;
            row.updated_at = now.to_string();
            Change::StoreProduct(row)
        })
        .collect();
    for change in &changes {
        hq.storage().admin_change(change, now)?;
    }
    let mut report = SyncReport::default();
    let started = Instant::now();
    sync::pull(&mut conn, &transport, &sync_options, store_id, &mut report)?;
    let pulled = started.elapsed();
    // Baseline: the same rows upserted straight into a copy of the replica, one transaction.
    let mut baseline_conn = aisle_core::replica::open_writer(&copy_to)?;
    let started = Instant::now();
    let tx = baseline_conn.transaction()?;
    for change in &changes {
        sync::records::apply_change(&tx, change)?;
    }
    tx.commit()?;
    let local = started.elapsed();
    let rate = report.changes_applied as f64 / pulled.as_secs_f64();
    say(&format!(
        "delta apply: {} changes in {} batches in {:.2} s = {:.0} changes/s (fetch, verify, apply); \
         the same upserts locally in one transaction {:.2} s; ratio {:.1}x",
        report.changes_applied,
        report.batches_applied,
        pulled.as_secs_f64(),
        rate,
        local.as_secs_f64(),
        pulled.as_secs_f64() / local.as_secs_f64().max(1e-9)
    ))?;

    // 3. Outbox upload after an outage.
    {
        let tx = conn.transaction()?;
        for idx in 0..options.events {
            let at = aisle_core::time::Timestamp::from_unix(1_795_564_800 + (idx as i64) % 86_400);
            aisle_core::outbox::record(
                &tx,
                EventKind::KioskVisit,
                &serde_json::json!({ "member_id": idx as i64 + 1, "store_id": store_id, "at": at }),
                at,
            )?;
        }
        tx.commit()?;
    }
    let events = aisle_core::outbox::oldest(&conn, options.events)?;
    let mut report = SyncReport::default();
    let started = Instant::now();
    sync::upload(&mut conn, &transport, &sync_options, now, &mut report)?;
    let uploaded = started.elapsed();
    // Baseline: HQ's storage recording the same events itself, in one call
    // (no HTTP, TLS or JSON), as a device of the same store.
    let baseline = aisle_hq::storage::Device {
        device_id: format!("bench-{stamp}-baseline"),
        store_id,
        kind: aisle_proto::DeviceKind::Kiosk,
    };
    let raw: Vec<aisle_proto::events::RawEvent> = events
        .iter()
        .map(|event| aisle_proto::events::RawEvent {
            idempotency_key: format!("{}-baseline", event.idempotency_key),
            seq: event.seq,
            kind: event.kind.name().to_owned(),
            payload: event.payload.clone(),
            created_at: event.created_at.to_string(),
        })
        .collect();
    let started = Instant::now();
    hq.storage().record_events(&baseline, &raw, now)?;
    let direct = started.elapsed();
    say(&format!(
        "outbox upload: {} events in {:.2} s = {:.0} events/s, exactly once (HQ applies each in its log); \
         HQ's storage recording them without HTTP {:.2} s; ratio {:.1}x",
        report.events_uploaded,
        uploaded.as_secs_f64(),
        report.events_uploaded as f64 / uploaded.as_secs_f64(),
        direct.as_secs_f64(),
        uploaded.as_secs_f64() / direct.as_secs_f64().max(1e-9)
    ))?;

    // 4. Many stores polling for deltas at once: p99 beside one store alone.
    let head = sync::cursor(&conn)?.unwrap_or(0);
    let alone = runtime.block_on(poll(&devices[..1], head, Duration::from_secs(3)))?;
    let crowd = runtime.block_on(poll(
        &devices[1..],
        head,
        Duration::from_secs(options.poll_seconds),
    ))?;
    say(&format!(
        "polling: 1 store alone p50 {:.1} ms p99 {:.1} ms ({} requests); {} stores at once p50 {:.1} ms p99 {:.1} ms \
         ({} requests, {:.0}/s); p99 ratio {:.1}x",
        ms(percentile(&alone, 0.5)),
        ms(percentile(&alone, 0.99)),
        alone.len(),
        devices.len() - 1,
        ms(percentile(&crowd, 0.5)),
        ms(percentile(&crowd, 0.99)),
        crowd.len(),
        crowd.len() as f64 / options.poll_seconds as f64,
        ms(percentile(&crowd, 0.99)) / ms(percentile(&alone, 0.99)).max(1e-9)
    ))?;
    stop.send(()).ok();
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Each device polls `/v1/changes?after=head` back to back for `length`; every latency, sorted.
async fn poll(
    devices: &[Credentials],
    head: u64,
    length: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let until = Instant::now() + length;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for device in devices {
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(
                device.ca_pem.clone().unwrap_or_default().as_bytes(),
            )?)
            .build()?;
        let url = format!(
            "{}{}?after={head}&limit=1000",
            device.hq_url,
            aisle_proto::paths::CHANGES
        );
        let auth = format!("Bearer {}.{}", device.device_id, device.secret);
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                let response = client
                    .get(&url)
                    .header(
                        aisle_proto::PROTOCOL_HEADER,
                        aisle_proto::PROTOCOL_VERSION.to_string(),
                    )
                    .header(reqwest::header::AUTHORIZATION, &auth)
                    .send()
                    .await;
                if let Ok(response) = response
                    && response.status().is_success()
                    && response.bytes().await.is_ok()
                {
                    mine.push(started.elapsed());
                }
            }
            latencies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(mine);
        }));
    }
    for task in tasks {
        task.await?;
    }
    let mut all = std::mem::take(
        &mut *latencies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    all.sort();
    Ok(all)
}
