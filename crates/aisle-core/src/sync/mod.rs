//! Store-side sync with HQ: bootstrap, signed deltas, the outbox, member
//! look-ups on demand, and the status a store team reads.
//!
//! The plan is pure ([`decide_batch`], [`backoff`]); [`run_once`] executes it:
//! 1. **Bootstrap** when the replica has no cursor: the signed manifest, then
//!    each chunk, verified by its SHA-256 and kept in a staging folder (so a
//!    killed bootstrap resumes where it stopped), then every record applied in
//!    ONE transaction with the cursor; nothing is replaced before all of it
//!    verified.
//! 2. **Upload** the outbox, oldest first, in batches; HQ records each
//!    idempotency key once; a row is deleted only once HQ acknowledged it
//!    (or rejected it: HQ quarantines an event it cannot apply, and the
//!    events behind it go on).
//! 3. **Deltas**: signed batches after the cursor, each applied in ONE
//!    transaction together with the cursor advance; a duplicated or replayed
//!    batch changes nothing, a gap is refused.
//!
//! Every failure is recorded in `sync_state` with a stable code and reason.

#[cfg(feature = "http")]
pub mod client;
pub mod records;
pub mod staging;

use crate::time::Timestamp;
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[cfg(feature = "http")]
use aisle_proto::EventUpload;
use aisle_proto::{Change, ChangeBatch, PROTOCOL_VERSION, SnapshotManifest};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::outbox::{self, OutboxError};

#[cfg(feature = "http")]
pub use client::Transport;

/// The one partition a store replicates (its store's).
const PARTITION: &str = "store";

/// What can go wrong, each with a stable [`SyncError::code`].
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("this replica is not provisioned for sync (run `aisle sync provision`)")]
    NotProvisioned,
    #[error("sync configuration: {what}")]
    Config { what: String },
    #[error("HQ unreachable while fetching {what}: {reason}")]
    Unreachable { what: String, reason: String },
    #[error("HQ refused {what}: {status} {code}: {message}")]
    Refused {
        what: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{what} is not valid: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{what} has a bad signature ({reason}); nothing from it was applied")]
    BadSignature { what: String, reason: String },
    #[error("{what} does not match its checksum; it will be fetched again")]
    Checksum { what: String },
    #[error("{what}")]
    Protocol { what: String },
    #[error("the replica holds something unreadable: {what}")]
    Corrupt { what: String },
    #[error("staging file {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no randomness from the operating system")]
    Random,
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl SyncError {
    /// A stable code for status displays and UIs.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::NotProvisioned => "not_provisioned",
            SyncError::Config { .. } => "config",
            SyncError::Unreachable { .. } => "unreachable",
            SyncError::Refused { status: 401, .. } => "unauthorized",
            SyncError::Refused { .. } => "refused",
            SyncError::Malformed { .. } => "malformed",
            SyncError::BadSignature { .. } => "bad_signature",
            SyncError::Checksum { .. } => "checksum",
            SyncError::Protocol { .. } => "protocol",
            SyncError::Corrupt { .. } => "corrupt",
            SyncError::Io { .. } => "io",
            SyncError::Random => "random",
            SyncError::Sqlite(_) => "sqlite",
        }
    }
}

impl From<staging::StagingError> for SyncError {
    fn from(error: staging::StagingError) -> Self {
        match error {
            staging::StagingError::Io { path, source } => SyncError::Io { path, source },
            staging::StagingError::Unsealed { path } => SyncError::Checksum { what: path },
            staging::StagingError::Random => SyncError::Random,
            staging::StagingError::Sqlite(error) => SyncError::Sqlite(error),
        }
    }
}

impl From<OutboxError> for SyncError {
    /// The outbox's faults keep the codes they had as sync's own.
    fn from(error: OutboxError) -> Self {
        match error {
            OutboxError::Corrupt { what } => SyncError::Corrupt { what },
            OutboxError::Random => SyncError::Random,
            OutboxError::Malformed { what, reason } => SyncError::Malformed { what, reason },
            OutboxError::Sqlite(error) => SyncError::Sqlite(error),
        }
    }
}

/// What a device needs to talk to HQ, kept in `replica_meta` (`sync.*`),
/// its secret in the replica's vault ([`crate::vault::HQ_SECRET`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub hq_url: String,
    pub device_id: String,
    pub store_id: i64,
    pub secret: String,
    /// HQ's Ed25519 verifying key, hex.
    pub hq_public_key: String,
    /// The certificate authority HQ's TLS certificate chains to (PEM).
    pub ca_pem: Option<String>,
    /// The device's own coupon issuing key, registered with HQ at
    /// enrolment ([`enrol`], [`crate::keys`]); saved apart from the other
    /// credentials (the vault's [`crate::vault::ISSUER_KEY`]), so [`Credentials::load`] leaves it
    /// `None`. Without one, the next sync makes and registers a key.
    pub coupon_issuer: Option<aisle_proto::CouponIssuerSecret>,
    /// The store's card key (hex) on a device that holds card numbers
    /// keyed ([`crate::card::keyed`]); saved in the vault, so
    /// [`Credentials::load`] leaves it `None` too.
    pub card_key: Option<String>,
}

impl Credentials {
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, SyncError> {
        crate::keys::parse_public(&self.hq_public_key).map_err(|_| SyncError::Config {
            what: format!(
                "HQ's public key {:?} is not 32 bytes of hex",
                self.hq_public_key
            ),
        })
    }

    /// Stores the credentials (provisioning). Refuses to move a replica to another store.
    pub fn save(&self, conn: &mut Connection, now: Timestamp) -> Result<(), SyncError> {
        self.verifying_key()?;
        if let Some(existing) = Self::load(conn)?.filter(|e| e.store_id != self.store_id) {
            return Err(SyncError::Config {
                what: format!(
                    "this replica belongs to store {}, not {}",
                    existing.store_id, self.store_id
                ),
            });
        }
        let issuer = match &self.coupon_issuer {
            None => None,
            Some(issuer) => Some((
                issuer.key_id,
                crate::keys::parse_secret(&issuer.secret).map_err(|_| SyncError::Config {
                    what: "the coupon issuing key is not 32 bytes of hex".into(),
                })?,
            )),
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some((key_id, key)) = &issuer {
            crate::keys::set_issuing_key(&tx, self.store_id, *key_id, key, now)?;
            crate::replica::set_meta(&tx, crate::keys::ISSUER_REGISTERED, &self.device_id)?;
        }
        if let Some(card_key) = &self.card_key {
            crate::keys::decode_hex32(card_key).map_err(|_| SyncError::Config {
                what: "the card key is not 32 bytes of hex".into(),
            })?;
            crate::replica::set_secret(&tx, crate::card::CARD_KEY, card_key)?;
        }
        crate::replica::set_secret(&tx, crate::vault::HQ_SECRET, &self.secret)?;
        for (key, value) in [
            ("sync.hq_url", Some(self.hq_url.clone())),
            ("sync.device_id", Some(self.device_id.clone())),
            ("sync.store_id", Some(self.store_id.to_string())),
            ("sync.hq_public_key", Some(self.hq_public_key.clone())),
            ("sync.ca_pem", self.ca_pem.clone()),
        ] {
            match value {
                Some(value) => crate::replica::set_meta(&tx, key, &value)?,
                None => {
                    tx.execute("DELETE FROM replica_meta WHERE key = ?1", [key])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn load(conn: &Connection) -> Result<Option<Self>, SyncError> {
        let get = |key: &str| crate::replica::meta(conn, key);
        let (
            Some(Enrolment {
                hq_url,
                device_id,
                store_id,
            }),
            Some(hq_public_key),
        ) = (Enrolment::load(conn)?, get("sync.hq_public_key")?)
        else {
            return Ok(None);
        };
        let Some(secret) = crate::replica::secret(conn, crate::vault::HQ_SECRET)? else {
            return Err(SyncError::Config {
                what: format!(
                    "this replica is enrolled as device {device_id} but its key provider holds no HQ secret for it: \
                     was it provisioned with another {}?",
                    crate::vault::PROVIDER_VAR
                ),
            });
        };
        let secret = secret.expose().to_owned();
        Ok(Some(Self {
            hq_url,
            device_id,
            store_id,
            secret,
            hq_public_key,
            ca_pem: get("sync.ca_pem")?,
            coupon_issuer: None,
            card_key: None,
        }))
    }
}

/// Who a replica is at HQ, without its secret: what a status screen and
/// the choice of store read (a kiosk's process is not given the HQ secret,
/// only sync's is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub hq_url: String,
    pub device_id: String,
    pub store_id: i64,
}

impl Enrolment {
    pub fn load(conn: &Connection) -> Result<Option<Self>, SyncError> {
        let get = |key: &str| crate::replica::meta(conn, key);
        let (Some(hq_url), Some(device_id), Some(store_id)) = (
            get("sync.hq_url")?,
            get("sync.device_id")?,
            get("sync.store_id")?,
        ) else {
            return Ok(None);
        };
        let store_id = store_id.parse().map_err(|_| SyncError::Corrupt {
            what: format!("sync.store_id {store_id:?}"),
        })?;
        Ok(Some(Self {
            hq_url,
            device_id,
            store_id,
        }))
    }
}

/// How to look a member up at HQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupKey {
    /// A loyalty card number, as scanned.
    Card(String),
    /// A member's app code, as scanned: HQ verifies it with the member's key.
    AppCode(String),
}

/// What to do with a received batch, given the replica's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDecision {
    Apply,
    /// Already applied (a duplicate or a replay): change nothing.
    AlreadyApplied,
    /// It does not start at the cursor: refuse, ask again from the cursor.
    Gap,
}

/// Pure: a batch applies only when it starts exactly at the cursor.
pub fn decide_batch(cursor: u64, from: u64, to: u64) -> BatchDecision {
    if from == cursor && to >= from {
        BatchDecision::Apply
    } else if to <= cursor {
        BatchDecision::AlreadyApplied
    } else {
        BatchDecision::Gap
    }
}

/// Pure: the delay before retry `attempt` (0-based): "full jitter"
/// exponential backoff, `unit` in [0, 1) drawn by the caller.
pub fn backoff(
    attempt: u32,
    base: std::time::Duration,
    max: std::time::Duration,
    unit: f64,
) -> std::time::Duration {
    let ceiling = base
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(max);
    ceiling.mul_f64(unit.clamp(0.0, 1.0)).max(base / 4)
}

/// Knobs of one sync run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Changes per delta batch asked of HQ.
    pub batch_limit: usize,
    /// Events per upload.
    pub upload_batch: usize,
    /// Where snapshot chunks wait until all are verified.
    pub staging_dir: PathBuf,
}

impl SyncOptions {
    /// Defaults, staging beside the replica file.
    pub fn for_replica(path: &Path) -> Self {
        let mut staging = path.as_os_str().to_owned();
        staging.push(".sync");
        Self {
            batch_limit: 5_000,
            upload_batch: 1_000,
            staging_dir: PathBuf::from(staging),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub bootstrapped_records: Option<u64>,
    pub batches_applied: u64,
    pub changes_applied: u64,
    pub batches_ignored: u64,
    pub events_uploaded: u64,
    pub events_duplicate_at_hq: u64,
    /// Uploaded events HQ refused and quarantined (they left the outbox).
    pub events_rejected_at_hq: u64,
    pub cursor: Option<u64>,
}

/// The replica's sync status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub provisioned: bool,
    pub hq_url: Option<String>,
    pub device_id: Option<String>,
    pub store_id: Option<i64>,
    pub cursor: Option<u64>,
    /// HQ's newest feed position when last asked; lag = head - cursor.
    pub hq_head: Option<u64>,
    pub lag: Option<u64>,
    pub last_success_at: Option<String>,
    pub last_error_at: Option<String>,
    pub last_error: Option<String>,
    pub pending_events: u64,
    pub oldest_pending_at: Option<String>,
}

impl Status {
    /// Whether a store screen should say "offline": provisioned, and the
    /// last attempt failed or the last success is older than `stale_after`
    /// seconds at `wall_now` (Unix seconds; sync times are wall times).
    /// An unprovisioned replica (a demo) is never offline.
    pub fn offline(&self, wall_now: i64, stale_after: i64) -> bool {
        if !self.provisioned {
            return false;
        }
        let failed_since = match (&self.last_error_at, &self.last_success_at) {
            (Some(error), Some(success)) => error > success,
            (Some(_), None) => true,
            _ => false,
        };
        let fresh = self
            .last_success_at
            .as_deref()
            .and_then(crate::dates::seconds_of)
            .is_some_and(|at| (0..stale_after).contains(&(wall_now - at)));
        failed_since || !fresh
    }
}

pub fn cursor(conn: &Connection) -> rusqlite::Result<Option<u64>> {
    Ok(conn
        .query_row(
            "SELECT cursor FROM sync_state WHERE partition = ?1",
            [PARTITION],
            |row| row.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten()
        .and_then(|c| c.parse().ok()))
}

fn set_cursor(tx: &Connection, cursor: u64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO sync_state (partition, cursor) VALUES (?1, ?2)
         ON CONFLICT (partition) DO UPDATE SET cursor = excluded.cursor",
        params![PARTITION, cursor.to_string()],
    )?;
    Ok(())
}

pub fn status(conn: &Connection) -> Result<Status, SyncError> {
    let credentials = Enrolment::load(conn)?;
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .query_row(
            "SELECT cursor, last_success_at, last_error_at, last_error FROM sync_state WHERE partition = ?1",
            [PARTITION],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let (cursor, last_success_at, last_error_at, last_error) = row.unwrap_or_default();
    let cursor: Option<u64> = cursor.and_then(|c| c.parse().ok());
    let hq_head: Option<u64> =
        crate::replica::meta(conn, "sync.hq_head")?.and_then(|h| h.parse().ok());
    Ok(Status {
        provisioned: credentials.is_some(),
        hq_url: credentials.as_ref().map(|c| c.hq_url.clone()),
        device_id: credentials.as_ref().map(|c| c.device_id.clone()),
        store_id: credentials.as_ref().map(|c| c.store_id),
        cursor,
        hq_head,
        lag: hq_head.map(|head| head.saturating_sub(cursor.unwrap_or(0))),
        last_success_at,
        last_error_at,
        last_error,
        pending_events: outbox::pending(conn)?,
        oldest_pending_at: outbox::oldest_created_at(conn)?,
    })
}

#[cfg(feature = "http")]
fn record_outcome(
    conn: &Connection,
    now: Timestamp,
    error: Option<&SyncError>,
) -> rusqlite::Result<()> {
    match error {
        None => conn.execute(
            "INSERT INTO sync_state (partition, last_success_at) VALUES (?1, ?2)
             ON CONFLICT (partition) DO UPDATE SET last_success_at = excluded.last_success_at,
                 last_error = NULL, last_error_at = NULL",
            params![PARTITION, now],
        )?,
        Some(err) => conn.execute(
            "INSERT INTO sync_state (partition, last_error_at, last_error) VALUES (?1, ?2, ?3)
             ON CONFLICT (partition) DO UPDATE SET last_error_at = excluded.last_error_at,
                 last_error = excluded.last_error",
            params![PARTITION, now, format!("{}: {err}", err.code())],
        )?,
    };
    Ok(())
}

/// Enrols this device at HQ: redeems the one-time `code` over TLS, makes
/// the device's coupon issuing key and registers its public half. The
/// answer holds the device's secrets (its HQ secret, its issuing key): save
/// it in the replica ([`Credentials::save`]), never in a file.
#[cfg(feature = "http")]
pub fn enrol(
    hq_url: &str,
    ca_pem: Option<&str>,
    code: &str,
) -> Result<aisle_proto::DeviceCredentials, SyncError> {
    let mut answer = client::redeem_enrolment(hq_url, ca_pem, code)?;
    let credentials = Credentials {
        hq_url: hq_url.to_owned(),
        device_id: answer.device_id.clone(),
        store_id: answer.store_id,
        secret: answer.secret.clone(),
        hq_public_key: answer.hq_public_key.clone(),
        ca_pem: ca_pem.map(str::to_owned),
        coupon_issuer: None,
        card_key: None,
    };
    let (key_id, key) = new_issuing_key(&Transport::new(&credentials)?)?;
    answer.coupon_issuer = Some(aisle_proto::CouponIssuerSecret {
        key_id,
        secret: hex::encode(key.to_bytes()),
    });
    Ok(answer)
}

/// Makes a coupon issuing key and registers its public half with HQ: the
/// key id HQ gave it, and the key.
#[cfg(feature = "http")]
fn new_issuing_key(transport: &Transport) -> Result<(i64, ed25519_dalek::SigningKey), SyncError> {
    let key = crate::keys::random_secret().map_err(|_| SyncError::Random)?;
    let key_id = transport.register_coupon_key(&key.verifying_key())?;
    Ok((key_id, key))
}

/// Makes and registers this device's own coupon issuing key when it has
/// none registered yet (a replica provisioned from `aisle-hq
/// register-device`'s credentials, or one from before device keys). A
/// device HQ does not let issue coupons keeps none.
#[cfg(feature = "http")]
fn ensure_issuing_key(
    conn: &mut Connection,
    transport: &Transport,
    credentials: &Credentials,
    now: Timestamp,
) -> Result<(), SyncError> {
    let registered = crate::replica::meta(conn, crate::keys::ISSUER_REGISTERED)?;
    if registered.as_deref() == Some(credentials.device_id.as_str()) {
        return Ok(());
    }
    let (key_id, key) = match new_issuing_key(transport) {
        Ok(made) => made,
        Err(SyncError::Refused { status, code, .. }) if status == 403 || status == 404 => {
            tracing::info!(%code, "HQ registers no coupon issuing key for this device");
            return Ok(());
        }
        Err(other) => return Err(other),
    };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    crate::keys::set_issuing_key(&tx, credentials.store_id, key_id, &key, now)?;
    crate::replica::set_meta(&tx, crate::keys::ISSUER_REGISTERED, &credentials.device_id)?;
    tx.commit()?;
    tracing::info!(
        key_id,
        "registered this device's coupon issuing key with HQ"
    );
    Ok(())
}

/// One full sync (bootstrap if needed, upload, deltas), with its outcome
/// recorded in `sync_state` either way.
#[cfg(feature = "http")]
pub fn run_once(
    conn: &mut Connection,
    transport: &Transport,
    options: &SyncOptions,
    now: Timestamp,
) -> Result<SyncReport, SyncError> {
    let result = run_steps(conn, transport, options, now);
    if let Err(err) = &result {
        tracing::warn!(code = err.code(), error = %err, "sync failed");
    }
    record_outcome(conn, now, result.as_ref().err())?;
    result
}

#[cfg(feature = "http")]
fn run_steps(
    conn: &mut Connection,
    transport: &Transport,
    options: &SyncOptions,
    now: Timestamp,
) -> Result<SyncReport, SyncError> {
    let credentials = Credentials::load(conn)?.ok_or(SyncError::NotProvisioned)?;
    let mut report = SyncReport::default();
    if cursor(conn)?.is_none() {
        report.bootstrapped_records =
            Some(bootstrap(conn, transport, options, credentials.store_id)?);
    }
    ensure_issuing_key(conn, transport, &credentials, now)?;
    upload(conn, transport, options, now, &mut report)?;
    pull(conn, transport, options, credentials.store_id, &mut report)?;
    report.cursor = cursor(conn)?;
    Ok(report)
}

/// Uploads the whole outbox in order.
#[cfg(feature = "http")]
pub fn upload(
    conn: &mut Connection,
    transport: &Transport,
    options: &SyncOptions,
    now: Timestamp,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    loop {
        let events = outbox::oldest(conn, options.upload_batch)?;
        if events.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = events.iter().map(|e| e.idempotency_key.clone()).collect();
        let ack = match transport.upload(&EventUpload { events }) {
            Ok(ack) => ack,
            Err(err) => {
                outbox::note_failure(conn, &keys, now, &err.to_string())?;
                return Err(err);
            }
        };
        // HQ is done with acknowledged keys and with rejected ones (it keeps
        // those in its quarantine and never applies them): both leave the outbox.
        let mut acknowledged: std::collections::HashSet<&String> =
            ack.acknowledged.iter().collect();
        for rejected in &ack.rejected {
            if keys.contains(&rejected.key) {
                tracing::warn!(
                    key = %rejected.key,
                    code = %rejected.code,
                    reason = %rejected.reason,
                    "HQ rejected a store event; it is quarantined at HQ and leaves the outbox"
                );
                report.events_rejected_at_hq += 1;
            }
            acknowledged.insert(&rejected.key);
        }
        let sent_and_acked: Vec<String> = keys
            .iter()
            .filter(|k| acknowledged.contains(k))
            .cloned()
            .collect();
        let deleted = outbox::acknowledge(conn, &sent_and_acked)?;
        report.events_uploaded += deleted as u64;
        report.events_duplicate_at_hq += ack.duplicates;
        if sent_and_acked.len() < keys.len() {
            return Err(SyncError::Protocol {
                what: format!(
                    "HQ acknowledged {} of {} uploaded events; the rest stay queued",
                    sent_and_acked.len(),
                    keys.len()
                ),
            });
        }
    }
}

/// Applies delta batches until HQ has no more.
#[cfg(feature = "http")]
pub fn pull(
    conn: &mut Connection,
    transport: &Transport,
    options: &SyncOptions,
    store_id: i64,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let mut replays = 0;
    loop {
        let position = cursor(conn)?.unwrap_or(0);
        let batch = transport.changes(position, options.batch_limit)?;
        let more = batch.more;
        let models = fetch_models(transport, &batch.changes)?;
        match apply_batch_with(conn, &batch, store_id, &models)? {
            BatchDecision::Apply => {
                report.batches_applied += 1;
                report.changes_applied += batch.changes.len() as u64;
                if !more {
                    return Ok(());
                }
            }
            BatchDecision::AlreadyApplied => {
                // A duplicated or replayed answer: ignored; ask again from the cursor.
                report.batches_ignored += 1;
                replays += 1;
                if replays > 3 {
                    return Err(SyncError::Protocol {
                        what: format!(
                            "HQ keeps answering with batches already applied (up to {}); the replica stays at {position}",
                            batch.to_cursor
                        ),
                    });
                }
            }
            BatchDecision::Gap => unreachable_gap(position, &batch)?,
        }
    }
}

#[cfg(feature = "http")]
fn unreachable_gap(position: u64, batch: &ChangeBatch) -> Result<(), SyncError> {
    Err(SyncError::Protocol {
        what: format!(
            "HQ sent changes ({}, {}] but the replica is at {position}; nothing applied",
            batch.from_cursor, batch.to_cursor
        ),
    })
}

/// A model HQ published, with its bytes checked against the signed checksum.
pub type ReceivedModel = (aisle_proto::ModelInfo, Vec<u8>);

/// The bytes of every model a batch publishes (of the kinds this store
/// knows), each checked against its signed checksum.
#[cfg(feature = "http")]
fn fetch_models(
    transport: &Transport,
    changes: &[Change],
) -> Result<Vec<ReceivedModel>, SyncError> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::Model(info) if info.path().is_some() => {
                Some(transport.model(info).map(|bytes| (info.clone(), bytes)))
            }
            Change::Model(info) => {
                tracing::warn!(kind = %info.kind, "a model of an unknown kind is left alone");
                None
            }
            _ => None,
        })
        .collect()
}

/// Applies one verified batch in one transaction with the cursor advance,
/// when it starts at the cursor; otherwise changes nothing.
pub fn apply_batch(
    conn: &mut Connection,
    batch: &ChangeBatch,
    store_id: i64,
) -> Result<BatchDecision, SyncError> {
    apply_batch_with(conn, batch, store_id, &[])
}

/// [`apply_batch`] with the bytes of the models the batch publishes.
pub fn apply_batch_with(
    conn: &mut Connection,
    batch: &ChangeBatch,
    store_id: i64,
    models: &[ReceivedModel],
) -> Result<BatchDecision, SyncError> {
    if batch.protocol != PROTOCOL_VERSION || batch.store_id != store_id {
        return Err(SyncError::Protocol {
            what: format!(
                "a batch for store {} in protocol {} reached store {store_id} (protocol {PROTOCOL_VERSION})",
                batch.store_id, batch.protocol
            ),
        });
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let position = cursor(&tx)?.unwrap_or(0);
    let decision = decide_batch(position, batch.from_cursor, batch.to_cursor);
    if decision == BatchDecision::Apply {
        for change in &batch.changes {
            records::apply_change(&tx, change)?;
        }
        for (info, bytes) in models {
            keep_model(&tx, info, bytes)?;
        }
        set_cursor(&tx, batch.to_cursor)?;
        crate::replica::set_meta(&tx, "sync.hq_head", &batch.to_cursor.to_string())?;
        tx.commit()?;
    }
    Ok(decision)
}

/// Bootstraps an empty replica; returns the number of records applied.
#[cfg(feature = "http")]
pub fn bootstrap(
    conn: &mut Connection,
    transport: &Transport,
    options: &SyncOptions,
    store_id: i64,
) -> Result<u64, SyncError> {
    let manifest = transport.snapshot_manifest()?;
    if manifest.protocol != PROTOCOL_VERSION || manifest.store_id != store_id {
        return Err(SyncError::Protocol {
            what: format!(
                "HQ offered a snapshot of store {} (protocol {}) to store {store_id}",
                manifest.store_id, manifest.protocol
            ),
        });
    }
    let folder = options.staging_dir.join(sanitize(&manifest.snapshot_id));
    std::fs::create_dir_all(&folder).map_err(|source| io(&folder, source))?;
    // The staging folder holds the partition's members until applied: its
    // owner's alone.
    for dir in [&options.staging_dir, &folder] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|source| io(dir, source))?;
    }
    let staging = staging::StagingKey::for_replica(conn)?;
    let mut files = Vec::with_capacity(manifest.chunks.len());
    for chunk in &manifest.chunks {
        let path = folder.join(format!("chunk-{:05}.jsonl.gz.sealed", chunk.index));
        let have = staging
            .read(&path)
            .ok()
            .filter(|bytes| sha256_hex(bytes) == chunk.sha256);
        if have.is_none() {
            let bytes = transport.snapshot_chunk(&manifest.snapshot_id, chunk.index)?;
            if bytes.len() as u64 != chunk.bytes || sha256_hex(&bytes) != chunk.sha256 {
                return Err(SyncError::Checksum {
                    what: format!("snapshot chunk {}", chunk.index),
                });
            }
            staging.write(&path, &bytes)?;
        }
        files.push(path);
    }
    let mut models = Vec::new();
    for info in manifest.model.iter().chain(&manifest.offer_model) {
        if info.path().is_some() {
            models.push((info.clone(), transport.model(info)?));
        }
    }
    let applied = apply_snapshot(conn, &manifest, &files, &staging, &models)?;
    std::fs::remove_dir_all(&folder).ok();
    Ok(applied)
}

/// Applies verified chunk files (sealed with `staging`) and the snapshot's
/// cursor in one transaction.
pub fn apply_snapshot(
    conn: &mut Connection,
    manifest: &SnapshotManifest,
    files: &[PathBuf],
    staging: &staging::StagingKey,
    models: &[ReceivedModel],
) -> Result<u64, SyncError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if cursor(&tx)?.is_some() {
        return Err(SyncError::Protocol {
            what: "the replica already has a cursor; a snapshot only fills an empty replica".into(),
        });
    }
    // The partition's own rows reference each other in chunk order; checks at commit.
    tx.pragma_update(None, "defer_foreign_keys", true)?;
    // Keeping the member search index row by row is most of a large
    // bootstrap's time: its triggers are set aside and the index is rebuilt
    // once at the end, all inside this transaction.
    let search_triggers = suspend_search_triggers(&tx)?;
    // Chunks are decompressed and parsed on a reading thread while this one
    // applies: the two halves of the work overlap.
    let mut applied = 0u64;
    std::thread::scope(|scope| -> Result<(), SyncError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<Vec<Change>, SyncError>>(4);
        scope.spawn(move || {
            for (chunk, path) in manifest.chunks.iter().zip(files) {
                if let Err(err) = read_chunk(chunk, path, staging, &sender) {
                    sender.send(Err(err)).ok();
                    return;
                }
            }
        });
        for batch in receiver {
            for change in batch? {
                records::apply_change(&tx, &change)?;
                applied += 1;
            }
        }
        Ok(())
    })?;
    if applied != manifest.chunks.iter().map(|c| c.records).sum::<u64>() {
        return Err(SyncError::Malformed {
            what: "the snapshot".into(),
            reason: format!("{applied} records arrived, fewer than the manifest lists"),
        });
    }
    rebuild_search(&tx, &search_triggers)?;
    for (info, bytes) in models {
        keep_model(&tx, info, bytes)?;
    }
    set_cursor(&tx, manifest.cursor)?;
    crate::replica::set_meta(&tx, "sync.hq_head", &manifest.cursor.to_string())?;
    tx.commit()?;
    Ok(applied)
}

/// Keeps a model artifact from HQ; one that does not decode is refused
/// (and with it the batch or snapshot bringing it).
fn keep_model(
    tx: &Connection,
    info: &aisle_proto::ModelInfo,
    bytes: &[u8],
) -> Result<(), SyncError> {
    let malformed = |reason: String| SyncError::Malformed {
        what: format!("a {} model artifact from HQ", info.kind),
        reason,
    };
    match info.kind.as_str() {
        aisle_proto::ModelInfo::OFFERS => {
            let created_at = Timestamp::parse(&info.created_at)
                .map_err(|err| malformed(format!("the model's creation time: {err}")))?;
            crate::offers::model::store_received(tx, bytes, created_at)
                .map_err(|err| malformed(err.to_string()))?;
        }
        _ => {
            crate::recommend::artifact::store_received(tx, bytes)
                .map_err(|err| malformed(err.to_string()))?;
        }
    }
    Ok(())
}

/// Decompresses and parses one verified chunk, sending its records in
/// batches; checks the record count against the manifest.
fn read_chunk(
    chunk: &aisle_proto::ChunkInfo,
    path: &Path,
    staging: &staging::StagingKey,
    sender: &std::sync::mpsc::SyncSender<Result<Vec<Change>, SyncError>>,
) -> Result<(), SyncError> {
    let compressed = staging.read(path)?;
    let reader = std::io::BufReader::with_capacity(
        1 << 20,
        flate2::read::GzDecoder::new(compressed.as_slice()),
    );
    let mut records = 0u64;
    let mut batch = Vec::with_capacity(4096);
    for line in reader.lines() {
        let line = line.map_err(|err| SyncError::Malformed {
            what: format!("snapshot chunk {}", chunk.index),
            reason: err.to_string(),
        })?;
        if line.is_empty() {
            continue;
        }
        let change: Change = serde_json::from_str(&line).map_err(|err| SyncError::Malformed {
            what: format!("snapshot chunk {} record {}", chunk.index, records + 1),
            reason: err.to_string(),
        })?;
        records += 1;
        batch.push(change);
        if batch.len() == 4096 && sender.send(Ok(std::mem::take(&mut batch))).is_err() {
            return Ok(());
        }
    }
    if records != chunk.records {
        return Err(SyncError::Malformed {
            what: format!("snapshot chunk {}", chunk.index),
            reason: format!("{records} records, the manifest says {}", chunk.records),
        });
    }
    if !batch.is_empty() {
        sender.send(Ok(batch)).ok();
    }
    Ok(())
}

/// Drops the triggers that keep `member_search` current; returns their SQL.
fn suspend_search_triggers(
    tx: &rusqlite::Transaction<'_>,
) -> rusqlite::Result<Vec<(String, String)>> {
    let triggers: Vec<(String, String)> = tx
        .prepare(
            "SELECT name, sql FROM sqlite_master
             WHERE type = 'trigger' AND name GLOB 'member_search_*' ORDER BY name",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, _) in &triggers {
        tx.execute_batch(&format!("DROP TRIGGER \"{name}\""))?;
    }
    Ok(triggers)
}

/// Rebuilds the whole member search index from the profiles and restores its triggers.
fn rebuild_search(
    tx: &rusqlite::Transaction<'_>,
    triggers: &[(String, String)],
) -> rusqlite::Result<()> {
    // One large in-memory hash and no merging while it fills: the index is
    // written in few large segments (the defaults come back after).
    tx.execute_batch(
        "INSERT INTO member_search (member_search) VALUES ('delete-all');
         INSERT INTO member_search (member_search, rank) VALUES ('hashsize', 268435456);
         INSERT INTO member_search (member_search, rank) VALUES ('automerge', 0);
         INSERT INTO member_search (rowid, name, cards, phone, email)
             SELECT member_id, name, cards, phone, email FROM member_search_source;
         INSERT INTO member_search (member_search, rank) VALUES ('hashsize', 1048576);
         INSERT INTO member_search (member_search, rank) VALUES ('automerge', 4);",
    )?;
    for (_, sql) in triggers {
        tx.execute_batch(sql)?;
    }
    Ok(())
}

/// Looks a member up at HQ and keeps the profile (HQ adds the member to
/// this store's partition, so later changes follow). `Ok(None)`: unknown or erased.
#[cfg(feature = "http")]
pub fn lookup_member(
    conn: &mut Connection,
    transport: &Transport,
    key: &LookupKey,
) -> Result<Option<i64>, SyncError> {
    let found = transport.lookup(key)?;
    let Some(member) = found.member else {
        return Ok(None);
    };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let kept = records::write_member(&tx, &member)?;
    tx.commit()?;
    Ok(kept.then_some(member.member_id))
}

#[cfg(feature = "http")]
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(feature = "http")]
fn io(path: &Path, source: std::io::Error) -> SyncError {
    SyncError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn offline_when_the_last_attempt_failed_or_the_last_success_is_stale() {
        let at = |text: &str| crate::dates::seconds_of(text).expect("time");
        let status = |success: Option<&str>, error: Option<&str>| Status {
            provisioned: true,
            hq_url: None,
            device_id: None,
            store_id: None,
            cursor: None,
            hq_head: None,
            lag: None,
            last_success_at: success.map(str::to_owned),
            last_error_at: error.map(str::to_owned),
            last_error: None,
            pending_events: 0,
            oldest_pending_at: None,
        };
        let now = at("2026-11-26 10:00:00");
        let fresh = status(Some("2026-11-26 09:59:00"), None);
        assert!(!fresh.offline(now, 600));
        assert!(
            fresh.offline(now + 600, 600),
            "ten minutes later it is stale"
        );
        assert!(
            status(Some("2026-11-26 09:59:00"), Some("2026-11-26 09:59:30")).offline(now, 600),
            "the attempt after the success failed"
        );
        assert!(
            !status(Some("2026-11-26 09:59:40"), Some("2026-11-26 09:59:30")).offline(now, 600)
        );
        assert!(status(None, Some("2026-11-26 09:59:30")).offline(now, 600));
        assert!(status(None, None).offline(now, 600), "never synced");
        assert!(
            fresh.offline(at("2017-10-20 12:00:00"), 600),
            "a success in the future of the clock is no proof of being online"
        );
        let demo = Status {
            provisioned: false,
            ..status(None, None)
        };
        assert!(
            !demo.offline(now, 600),
            "an unprovisioned replica has nothing to reach"
        );
    }

    use super::*;
    use std::time::Duration;

    #[test]
    fn batches_apply_only_at_the_cursor() {
        assert_eq!(decide_batch(10, 10, 15), BatchDecision::Apply);
        assert_eq!(
            decide_batch(10, 10, 10),
            BatchDecision::Apply,
            "an empty batch moves nothing"
        );
        assert_eq!(
            decide_batch(15, 10, 15),
            BatchDecision::AlreadyApplied,
            "a duplicate"
        );
        assert_eq!(
            decide_batch(20, 10, 15),
            BatchDecision::AlreadyApplied,
            "a replay"
        );
        assert_eq!(decide_batch(10, 12, 15), BatchDecision::Gap, "a gap");
        assert_eq!(decide_batch(12, 10, 15), BatchDecision::Gap, "an overlap");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(0, base, max, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, base, max, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(30, base, max, 1.0), max);
        assert_eq!(backoff(3, base, max, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(3, base, max, 0.0), base / 4, "never a busy loop");
    }
}
