//! HQ's storage seam: the operations HQ performs on its master data,
//! devices, change feed and event log, and nothing more ([`Storage`]). The
//! HTTP handlers, the `aisle-hq` commands and the benchmark reach storage only
//! through it. [`crate::sqlite::SqliteStorage`] is the embedded default (one
//! file in HQ's data folder).
//!
//! What every backend shares lives beside the trait, as plain functions of
//! their inputs: the conflict rules ([`crate::rules`]), what a device kind
//! receives of a change ([`for_kind`]), snapshot chunking ([`crate::snapshot`]).
//! Every method is synchronous and runs on one of HQ's blocking threads
//! (at most [`crate::ConnectionLimits::db_concurrency`] at once); each is one
//! transaction unless it says otherwise.

use aisle_core::import::{ImportOptions, ImportReport, Source};
use aisle_core::time::Timestamp;
use aisle_proto::events::{QuarantineList, RawEvent};
use aisle_proto::{
    AdminAuditList, AssociateRecord, Change, ChangeBatch, CouponReconciliation, DeviceKind,
    DeviceRegistration, Enrolment, EventAck, MemberRecord, ModelInfo, ThrottledDevice,
};

/// A device HQ authenticated: who it is, its store, what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: String,
    pub store_id: i64,
    pub kind: DeviceKind,
}

/// What PostgreSQL said: the server's code and message (the client's own
/// `Display` says only "db error"), or the client's error. Not the server's
/// detail: it can quote a row's values (a card number), and this goes to logs.
fn postgres_detail(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(err) {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HqError {
    #[error(transparent)]
    Replica(#[from] aisle_core::replica::ReplicaError),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", postgres_detail(.0))]
    Postgres(#[from] postgres::Error),
    #[error(transparent)]
    Import(#[from] aisle_core::import::ImportError),
    /// The database cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A device asked for what its kind, store or proof does not allow.
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "the store's cursor {cursor} is ahead of HQ's feed ({head}): HQ's data was restored from an older copy; the store must bootstrap again"
    )]
    CursorAhead { cursor: u64, head: u64 },
    #[error("snapshot folder {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Who receives a change in the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Store(i64),
    Member(i64),
}

/// What a device shows HQ to look a member up: proof that the member is at
/// the store. A bare member id proves nothing and is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupProof<'a> {
    /// A loyalty card number, as scanned.
    Card(&'a str),
    /// A member's app code (`AISLE1...`), verified with the member's public
    /// key HQ holds, within its time window by HQ's clock.
    AppCode(&'a str),
    /// A member id alone: refused (and audited).
    MemberId(i64),
    /// Nothing: refused.
    None,
}

impl LookupProof<'_> {
    /// The proof's name in `lookup_audit`.
    pub fn name(self) -> &'static str {
        match self {
            LookupProof::Card(_) => "card",
            LookupProof::AppCode(_) => "app_code",
            LookupProof::MemberId(_) => "member_id",
            LookupProof::None => "none",
        }
    }
}

/// A look-up's answer before it leaves HQ (the caller narrows the record to
/// the device's kind with [`for_kind`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Looked {
    pub member: Option<MemberRecord>,
    pub erased: bool,
}

/// An associate as HQ's staff admin enters them: the PIN in clear, once.
#[derive(Debug, Clone)]
pub struct NewAssociate<'a> {
    pub staff_id: i64,
    pub store_id: i64,
    pub display_name: &'a str,
    pub role: aisle_proto::Role,
    pub pin: &'a str,
}

impl NewAssociate<'_> {
    /// The record HQ keeps and sends: the name checked, the PIN hashed with
    /// Argon2id.
    pub fn record(&self, now: Timestamp) -> Result<AssociateRecord, HqError> {
        let name = self.display_name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(HqError::Invalid(
                "a display name is 1 to 80 characters".into(),
            ));
        }
        let pin_hash =
            aisle_core::staff::hash_pin(self.pin).map_err(|e| HqError::Invalid(e.to_string()))?;
        Ok(AssociateRecord {
            staff_id: self.staff_id,
            store_id: self.store_id,
            display_name: name.to_owned(),
            role: self.role,
            pin_hash,
            active: true,
            updated_at: now.to_string(),
        })
    }
}

/// A redeemed enrolment: the device HQ registered, and its secret.
#[derive(Debug)]
pub struct Enrolled {
    pub registration: DeviceRegistration,
    pub secret: String,
}

/// One store event in HQ's log, as the admin API lists it: idempotency
/// key, device, the device's sequence number, kind.
pub type LoggedEvent = (String, String, i64, String);

/// Which of the store's importers loads a source into HQ's master data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importer {
    /// A Complete Journey folder (or the embedded demo extract).
    CompleteJourney,
    /// Aisle's generic CSV layout (docs/IMPORT.md).
    Layout,
}

/// The demo's showcase member and their home store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Showcase {
    pub member_id: i64,
    pub store_id: Option<i64>,
}

/// Where a store's snapshot records go, in order ([`crate::snapshot`]).
pub trait SnapshotSink {
    /// The feed position the snapshot is consistent with, before any
    /// record; `false`: a snapshot at this position is already built, send
    /// nothing.
    fn begin(&mut self, cursor: u64) -> Result<bool, HqError>;
    /// One record, as HQ holds it (the sink narrows it to the device kind).
    fn record(&mut self, change: Change) -> Result<(), HqError>;
}

/// What a snapshot's manifest says besides its chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotHead {
    pub cursor: u64,
    pub model: Option<ModelInfo>,
    pub offer_model: Option<ModelInfo>,
}

/// HQ's storage: every operation HQ performs on its data.
pub trait Storage: Send + Sync + std::fmt::Debug {
    // Devices.

    /// An active device whose secret matches.
    fn authenticate(&self, device_id: &str, secret: &str) -> Result<Option<Device>, HqError>;
    /// Registers a device for a store and returns its secret (shown once).
    fn register_device(
        &self,
        device_id: &str,
        store_id: i64,
        kind: DeviceKind,
        now: Timestamp,
    ) -> Result<String, HqError>;
    /// Revokes a device and its coupon issuing keys (in every store's feed).
    fn revoke_device(&self, device_id: &str, now: Timestamp) -> Result<(), HqError>;
    /// A one-time enrolment code for a device not registered yet (a pending
    /// code of the same device is replaced).
    fn create_enrolment(
        &self,
        registration: &DeviceRegistration,
        created_by: &str,
        valid_secs: i64,
        now: Timestamp,
    ) -> Result<Enrolment, HqError>;
    /// Redeems a one-time code: registers its device, answers its secret;
    /// `None` for an unknown, used or expired code.
    fn redeem_enrolment(&self, code: &str, now: Timestamp) -> Result<Option<Enrolled>, HqError>;
    /// Registers the public half of a device's own coupon issuing key (its
    /// earlier keys revoked), published with the store's record.
    fn register_coupon_key(
        &self,
        device: &Device,
        public_key: &str,
        now: Timestamp,
    ) -> Result<i64, HqError>;
    /// Retires the store-wide coupon keys of before device keys; how many.
    fn retire_store_keys(&self, now: Timestamp) -> Result<usize, HqError>;
    /// Counts a request refused for going over `device`'s quota of `what`.
    fn record_throttle(&self, device: &Device, what: &str, now: Timestamp) -> Result<(), HqError>;
    /// Devices HQ throttled, the most refused first.
    fn throttled(&self) -> Result<Vec<ThrottledDevice>, HqError>;

    // The feed and snapshots.

    /// The store's changes after `after`, at most `limit`, read in one
    /// snapshot of the database, narrowed to what the store may see (not yet
    /// to a device kind: [`for_kind`]). A cursor past the feed's head is
    /// [`HqError::CursorAhead`].
    fn changes_after(
        &self,
        store_id: i64,
        after: u64,
        limit: usize,
    ) -> Result<ChangeBatch, HqError>;
    /// Streams the store's bootstrap records into `sink`, all read in one
    /// snapshot of the database: stores, products, the store's prices and
    /// stock, its associates, its partition's members, their baskets of the
    /// last `history_days` days before HQ's newest, campaigns (targets in
    /// the partition only) and coupons. `None`: the sink declined.
    fn snapshot(
        &self,
        store_id: i64,
        history_days: u32,
        sink: &mut dyn SnapshotSink,
    ) -> Result<Option<SnapshotHead>, HqError>;
    /// A recommendation model artifact's bytes.
    fn model_bytes(&self, artifact_id: i64) -> Result<Option<Vec<u8>>, HqError>;
    /// An offer model's bytes.
    fn offer_model_bytes(&self, model_id: i64) -> Result<Option<Vec<u8>>, HqError>;

    // Store events and look-ups.

    /// Records uploaded events once each and applies them; an event HQ
    /// refuses is quarantined alone and never blocks the events behind it.
    fn record_events(
        &self,
        device: &Device,
        events: &[RawEvent],
        now: Timestamp,
    ) -> Result<EventAck, HqError>;
    /// The recorded store events, by device and sequence number.
    fn event_log(&self) -> Result<Vec<LoggedEvent>, HqError>;
    /// The quarantine after `after`, oldest first, at most `limit`.
    fn quarantined(&self, after: i64, limit: usize) -> Result<QuarantineList, HqError>;
    /// A member for a store that does not hold them yet, on proof of
    /// presence (added to the store's partition); every look-up, answered
    /// or refused, is audited.
    fn lookup(
        &self,
        device: &Device,
        proof: LookupProof<'_>,
        now: Timestamp,
    ) -> Result<Looked, HqError>;

    // Master data.

    /// Applies an admin change and logs it for the stores; the feed's head after it.
    fn admin_change(&self, change: &Change, now: Timestamp) -> Result<u64, HqError>;
    /// Adds or replaces an associate and sends them to their store (a store
    /// they leave receives them inactive); the feed's head after it.
    fn save_associate(&self, associate: &NewAssociate<'_>, now: Timestamp) -> Result<u64, HqError>;
    /// An associate leaves: they can no longer sign in anywhere.
    fn deactivate_associate(&self, staff_id: i64, now: Timestamp) -> Result<u64, HqError>;
    /// Loads a source with one of the store's importers, then refreshes the
    /// store partitions (each member belongs to their home store and every
    /// store they shopped at).
    fn import(
        &self,
        importer: Importer,
        source: &dyn Source,
        options: &ImportOptions,
    ) -> Result<ImportReport, HqError>;
    /// The demo's showcase member (the consenting member with the most
    /// baskets at the best-stocked home store).
    fn showcase(&self) -> Result<Option<Showcase>, HqError>;
    /// Fits a recommendation model on purchases before `until`, stores it
    /// and publishes it to every store.
    fn train(&self, until: Option<&str>, seed: u64, now: Timestamp) -> Result<ModelInfo, HqError>;
    /// Fits the offer model, stores it and publishes it to every store.
    fn train_offers(&self, until: Option<&str>, now: Timestamp) -> Result<ModelInfo, HqError>;
    /// The coupon reconciliation report.
    fn coupon_reconciliation(&self) -> Result<CouponReconciliation, HqError>;

    // The admin audit.

    /// Records one admin call (or admin command).
    fn record_admin_call(
        &self,
        token_name: Option<&str>,
        action: &str,
        target: Option<&str>,
        outcome: &str,
        now: Timestamp,
    ) -> Result<(), HqError>;
    /// The admin audit after `after`, oldest first.
    fn admin_audit(&self, after: i64, limit: usize) -> Result<AdminAuditList, HqError>;

    // Erasure.

    /// Whether a committed erasure still has traces outside its
    /// transaction (snapshot files, the storage's own logs).
    fn scrub_pending(&self) -> Result<bool, HqError>;
    /// Removes the storage's own traces of committed erasures (with
    /// snapshot files already deleted and none built meanwhile) and marks
    /// them scrubbed; `false`: not yet possible, tried again later.
    fn scrub_storage(&self, now: Timestamp) -> Result<bool, HqError>;

    /// Benchmarks only: every member joins `store_id`'s partition.
    #[cfg(feature = "bench")]
    fn assign_all_members(&self, store_id: i64) -> Result<usize, HqError>;

    /// The demo's associates (`aisle_core::demo::ASSOCIATES`, public PINs)
    /// at `store_id`.
    fn save_demo_associates(&self, store_id: i64, now: Timestamp) -> Result<u64, HqError> {
        let mut seq = 0;
        for (staff_id, display_name, role, pin) in aisle_core::demo::ASSOCIATES {
            let associate = NewAssociate {
                staff_id,
                store_id,
                display_name,
                role,
                pin,
            };
            seq = self.save_associate(&associate, now)?;
        }
        Ok(seq)
    }
}

/// What a device of `kind` receives of `change` (docs/PROTOCOL.md, "Least
/// data per device kind"): but on a tablet, members without contacts, their
/// card numbers keyed with the store's `card_key`, and no associates.
/// `None`: nothing of it.
pub fn for_kind(kind: DeviceKind, card_key: &[u8; 32], change: Change) -> Option<Change> {
    match change {
        Change::Member(mut member) => {
            if !kind.receives_contacts() {
                member.phone = None;
                member.email = None;
            }
            if !kind.receives_card_numbers() {
                for card in &mut member.cards {
                    card.card_number = aisle_core::card::keyed(card_key, &card.card_number);
                }
            }
            Some(Change::Member(member))
        }
        Change::Associate(_) if !kind.receives_associates() => None,
        other => Some(other),
    }
}

/// Whether `device_id` is well formed: 1-64 letters, digits, '-' or '_'.
pub fn check_device_id(device_id: &str) -> Result<(), HqError> {
    if device_id.is_empty()
        || device_id.len() > 64
        || !device_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(HqError::Invalid(format!(
            "device id {device_id:?}: use 1-64 letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

/// A new device secret (256 bits, hex) and the SHA-256 HQ keeps of it.
pub fn new_secret() -> Result<(String, String), HqError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|_| HqError::Invalid("no randomness".into()))?;
    let secret = hex::encode(secret);
    let digest = sha256_hex(secret.as_bytes());
    Ok((secret, digest))
}

/// Whether `secret` is the one whose SHA-256 (hex) HQ keeps, compared in
/// constant time.
pub fn secret_matches(secret: &str, expected_sha256: &str) -> bool {
    let given = sha256_hex(secret.as_bytes());
    given.len() == expected_sha256.len()
        && given
            .bytes()
            .zip(expected_sha256.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
