//! `aisle sync`: provisioning, one-shot and watch-mode sync with HQ, status,
//! and member look-ups at HQ. The engine is `aisle_core::sync`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aisle_core::sync::{self, Credentials, LookupKey, SyncOptions, Transport};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::output::{Out, now_utc};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    command: Option<SyncCommand>,
    /// Keep syncing: every --interval seconds, backing off (with jitter) after failures.
    #[arg(long)]
    watch: bool,
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// Give up on a request HQ does not answer within this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Store HQ's address and this device's credentials (from HQ's registration) in the replica.
    Provision {
        /// HQ's base URL, e.g. `https://hq.example:8443`
        #[arg(long)]
        hq: String,
        /// The JSON credentials HQ returned when the device was registered.
        #[arg(long, value_name = "FILE")]
        credentials: PathBuf,
        /// The certificate authority of HQ's TLS certificate (PEM).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Enrol this device at HQ with the one-time code the admin created
    /// (`aisle-hq enrol-device`): its credentials and its own coupon issuing
    /// key go straight into the replica, never into a file.
    Enrol {
        /// HQ's base URL, e.g. `https://hq.example:8443`
        #[arg(long)]
        hq: String,
        /// The one-time enrolment code.
        #[arg(long)]
        code: String,
        /// The certificate authority of HQ's TLS certificate (PEM).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Last successful sync, cursor, lag, pending outbox events, last error and its reason.
    Status,
    /// Fetch a member from HQ into the replica, on proof of presence: their card number or their app code.
    Lookup { key: String },
}

pub fn run(args: &SyncArgs, db: &Path, out: &mut Out) -> Result<()> {
    match &args.command {
        Some(SyncCommand::Provision {
            hq,
            credentials,
            ca,
        }) => provision(db, hq, credentials, ca.as_deref(), out),
        Some(SyncCommand::Enrol { hq, code, ca }) => enrol(db, hq, code, ca.as_deref(), out),
        Some(SyncCommand::Status) => status(db, out),
        Some(SyncCommand::Lookup { key }) => lookup(db, key, out),
        None if args.watch => watch(db, Duration::from_secs(args.interval), timeout(args), out),
        None => once(db, timeout(args), out).map(|_| ()),
    }
}

fn provision(
    db: &Path,
    hq: &str,
    credentials: &Path,
    ca: Option<&Path>,
    out: &mut Out,
) -> Result<()> {
    let text = std::fs::read_to_string(credentials)
        .with_context(|| format!("reading {}", credentials.display()))?;
    let given: aisle_proto::DeviceCredentials = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not device credentials from HQ",
            credentials.display()
        )
    })?;
    save(db, hq, given, read_ca(ca)?, out)
}

fn read_ca(ca: Option<&Path>) -> Result<Option<String>> {
    ca.map(|path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    })
    .transpose()
}

fn enrol(db: &Path, hq: &str, code: &str, ca: Option<&Path>, out: &mut Out) -> Result<()> {
    let ca_pem = read_ca(ca)?;
    let given = sync::enrol(hq, ca_pem.as_deref(), code)?;
    save(db, hq, given, ca_pem, out)
}

fn save(
    db: &Path,
    hq: &str,
    given: aisle_proto::DeviceCredentials,
    ca_pem: Option<String>,
    out: &mut Out,
) -> Result<()> {
    let mut conn = aisle_core::replica::open_writer(db)?;
    Credentials {
        hq_url: hq.to_owned(),
        device_id: given.device_id.clone(),
        store_id: given.store_id,
        secret: given.secret,
        hq_public_key: given.hq_public_key,
        ca_pem,
        coupon_issuer: given.coupon_issuer,
        card_key: given.card_key,
    }
    .save(&mut conn, now_utc())?;
    out.line(format_args!(
        "provisioned device {} of store {} for {hq}",
        given.device_id, given.store_id
    ))?;
    out.json(
        &serde_json::json!({ "device_id": given.device_id, "store_id": given.store_id, "hq": hq }),
    )
}

fn timeout(args: &SyncArgs) -> Duration {
    Duration::from_secs(args.timeout.max(1))
}

fn transport(conn: &rusqlite::Connection, timeout: Duration) -> Result<Transport> {
    let credentials = Credentials::load(conn)?.ok_or(sync::SyncError::NotProvisioned)?;
    Ok(Transport::with_timeout(&credentials, timeout)?)
}

fn once(db: &Path, timeout: Duration, out: &mut Out) -> Result<sync::SyncReport> {
    let mut conn = aisle_core::replica::open_writer(db)?;
    let transport = transport(&conn, timeout)?;
    let report = sync::run_once(
        &mut conn,
        &transport,
        &SyncOptions::for_replica(db),
        now_utc(),
    )?;
    if let Some(records) = report.bootstrapped_records {
        out.line(format_args!("bootstrapped {records} records"))?;
    }
    let rejected = match report.events_rejected_at_hq {
        0 => String::new(),
        n => format!(", {n} rejected and quarantined by HQ"),
    };
    out.line(format_args!(
        "uploaded {} events ({} already at HQ{rejected}); applied {} changes in {} batches ({} repeated batches ignored); cursor {}",
        report.events_uploaded,
        report.events_duplicate_at_hq,
        report.changes_applied,
        report.batches_applied,
        report.batches_ignored,
        report.cursor.map_or_else(|| "none".to_owned(), |c| c.to_string())
    ))?;
    out.json(&report)?;
    Ok(report)
}

fn watch(db: &Path, interval: Duration, timeout: Duration, out: &mut Out) -> Result<()> {
    let mut failures = 0u32;
    let mut seed =
        aisle_core::rng::fnv1a64(db.display().to_string().as_bytes()) ^ std::process::id() as u64;
    loop {
        let delay = match once(db, timeout, out) {
            Ok(_) => {
                failures = 0;
                interval
            }
            Err(err) => {
                out.line(format_args!("sync failed: {err:#}"))?;
                failures += 1;
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
                sync::backoff(
                    failures - 1,
                    Duration::from_secs(1),
                    interval.max(Duration::from_secs(60)),
                    unit,
                )
            }
        };
        std::thread::sleep(delay);
    }
}

fn status(db: &Path, out: &mut Out) -> Result<()> {
    let conn = aisle_core::replica::open_reader(db)?;
    let status = sync::status(&conn)?;
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "never".to_owned());
    if status.provisioned {
        out.line(format_args!(
            "device {} of store {} -> {}",
            status.device_id.clone().unwrap_or_default(),
            status.store_id.unwrap_or_default(),
            status.hq_url.clone().unwrap_or_default()
        ))?;
    } else {
        out.line(format_args!("not provisioned (run `aisle sync provision`)"))?;
    }
    out.line(format_args!(
        "last successful sync: {}",
        or_none(&status.last_success_at)
    ))?;
    out.line(format_args!(
        "cursor: {}; HQ head when last asked: {}; lag: {} changes",
        status
            .cursor
            .map_or_else(|| "none (not bootstrapped)".to_owned(), |c| c.to_string()),
        status
            .hq_head
            .map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
        status
            .lag
            .map_or_else(|| "unknown".to_owned(), |c| c.to_string())
    ))?;
    out.line(format_args!(
        "pending outbox events: {}{}",
        status.pending_events,
        status
            .oldest_pending_at
            .as_ref()
            .map(|at| format!(" (oldest {at})"))
            .unwrap_or_default()
    ))?;
    if let Some(error) = &status.last_error {
        out.line(format_args!(
            "last error ({}): {error}",
            or_none(&status.last_error_at)
        ))?;
    }
    out.json(&status)
}

fn lookup(db: &Path, key: &str, out: &mut Out) -> Result<()> {
    let mut conn = aisle_core::replica::open_writer(db)?;
    let transport = transport(&conn, Duration::from_secs(60))?;
    let key = if key.len() == 13 && key.bytes().all(|b| b.is_ascii_digit()) {
        aisle_core::card::validate(key)?;
        LookupKey::Card(key.to_owned())
    } else if key.starts_with(aisle_core::identify::member_code::PREFIX) {
        LookupKey::AppCode(key.to_owned())
    } else {
        anyhow::bail!(
            "{key:?} is neither a 13-digit card number nor a member's app code: HQ looks members up only on proof that they are here"
        );
    };
    match sync::lookup_member(&mut conn, &transport, &key)? {
        Some(member_id) => out.line(format_args!("member {member_id} fetched from HQ and kept"))?,
        None => out.line(format_args!("HQ knows no such member"))?,
    }
    Ok(())
}
