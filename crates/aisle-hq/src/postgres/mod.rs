//! HQ on PostgreSQL ([`PgStorage`]): the chain's backend, for several HQ
//! instances on one database (`aisle-hq --database postgres://...`).
//!
//! - **Client**: the synchronous `postgres` crate (tokio-postgres
//!   underneath), a small pool of connections per instance. HQ's storage work
//!   already runs on blocking threads, a bounded number at once, so one
//!   synchronous seam serves both backends (ARCHITECTURE.md).
//! - **Writes** run SERIALIZABLE and are retried whole on a serialization
//!   failure or a deadlock (the operation is a function of the database and
//!   its arguments only), so concurrent instances give the same results as
//!   SQLite's single writer.
//! - **The feed**: a writing transaction collects its feed entries and
//!   numbers them as its last step, under a transaction-scoped advisory lock
//!   held through its commit: positions follow commit order,
//!   every snapshot holds positions 1..head with no hole, and no later commit
//!   lands behind a position a store has passed. Readers read the head and
//!   the rows in one REPEATABLE READ snapshot.
//! - **Reads** run REPEATABLE READ, READ ONLY: a snapshot is consistent with
//!   the cursor it names, and streams through portals (bounded memory).

mod mirror;
pub mod records;

use std::sync::Mutex;

use aisle_core::import::{ImportOptions, ImportReport, Source};
use aisle_core::time::Timestamp;
use aisle_proto::events::{QuarantineList, QuarantinedEvent, RawEvent, RejectCode, Rejection};
use aisle_proto::{
    AdminAuditEntry, AdminAuditList, AssociateRecord, CardRecord, Change, ChangeBatch,
    CodeKeyRecord, CouponReconciliation, DeviceKind, DeviceRegistration, Enrolment, EventAck,
    MemberRecord, ModelInfo, NeverIssued, OverRedemption, PROTOCOL_VERSION, Preference, StoreEvent,
    ThrottledDevice,
};
use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Row, Statement, Transaction};

use crate::checks::Outcome;
use crate::storage::{
    Device, Enrolled, HqError, Importer, LoggedEvent, Looked, LookupProof, NewAssociate, Scope,
    Showcase, SnapshotHead, SnapshotSink, Storage, check_device_id, new_secret, secret_matches,
    sha256_hex,
};

pub use mirror::{HQ_TABLES, MASTER_TABLES, export_to_sqlite};

/// HQ's schema on PostgreSQL, in order (`migrations/hq-postgres/`).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_hq.sql",
        include_str!("../../../../migrations/hq-postgres/0001_hq.sql"),
    ),
    (
        2,
        "0002_feed_sequence.sql",
        include_str!("../../../../migrations/hq-postgres/0002_feed_sequence.sql"),
    ),
];

/// The advisory lock numbering feed entries (and the one serializing
/// migrations): arbitrary constants, the same in every instance.
pub const FEED_LOCK: i64 = 0x4149_534c_4546_4545; // "AISLEFEE"
const MIGRATION_LOCK: i64 = 0x4149_534c_454d_4947; // "AISLEMIG"

/// Connections kept idle per instance.
const IDLE_CONNECTIONS: usize = 16;

/// Tries of a writing transaction that keeps meeting serialization failures.
const WRITE_TRIES: u32 = 20;

/// HQ's storage on PostgreSQL.
pub struct PgStorage {
    config: postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
    idle: Mutex<Vec<Conn>>,
}

/// A pooled connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// A transaction at `level` with this connection's statement cache.
    fn begin(&mut self, level: IsolationLevel, read_only: bool) -> Result<Tx<'_>, HqError> {
        let tx = self
            .client
            .build_transaction()
            .isolation_level(level)
            .read_only(read_only)
            .start()?;
        Ok(Tx {
            tx,
            statements: &mut self.statements,
            feed: Vec::new(),
        })
    }

    /// One read-only statement on its own (its own snapshot, no
    /// transaction around it: one round trip instead of three), prepared once.
    fn query_alone(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, HqError> {
        let statement = match self.statements.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self.client.prepare(sql)?;
                self.statements.insert(sql.to_owned(), statement.clone());
                statement
            }
        };
        Ok(self.client.query(&statement, params)?)
    }
}

impl std::fmt::Debug for PgStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStorage")
            .field("database", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStorage {
    /// A synchronous client closes its connection on a runtime of its own,
    /// which cannot start on an async worker thread (where the last handle
    /// to HQ may be dropped): idle connections are closed on a thread of
    /// their own.
    fn drop(&mut self) {
        let idle = std::mem::take(
            self.idle
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if !idle.is_empty() {
            std::thread::spawn(move || drop(idle));
        }
    }
}

/// A URL for messages and logs: the password, if any, left out.
pub fn shown_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl PgStorage {
    /// Connects to `url` (libpq style: `postgres://user@host/db`, or
    /// `postgres://user@localhost/db?host=/run/postgresql` for a Unix
    /// socket) and brings HQ's schema up to date.
    pub fn open(url: &str) -> Result<Self, HqError> {
        let shown = shown_url(url);
        let config: postgres::Config = url
            .parse()
            .map_err(|err| HqError::Invalid(format!("database URL {shown}: {err}")))?;
        let this = Self {
            config,
            shown,
            idle: Mutex::new(Vec::new()),
        };
        this.migrate()?;
        Ok(this)
    }

    fn connect(&self) -> Result<Conn, HqError> {
        let client = self.config.connect(NoTls).map_err(|err| {
            HqError::Unavailable(format!("connecting to PostgreSQL at {}: {err}", self.shown))
        })?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    /// Runs `work` with a pooled connection (a broken one is not returned).
    fn with_conn<T>(
        &self,
        work: impl FnOnce(&mut Conn) -> Result<T, HqError>,
    ) -> Result<T, HqError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => self.connect()?,
        };
        let result = work(&mut conn);
        if !conn.client.is_closed() {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(conn);
            }
        }
        result
    }

    fn with_client<T>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, HqError>,
    ) -> Result<T, HqError> {
        self.with_conn(|conn| work(&mut conn.client))
    }

    fn migrate(&self) -> Result<(), HqError> {
        self.with_client(|client| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS hq_migrations (
                     version bigint PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)",
            )?;
            let applied: i64 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM hq_migrations", &[])?
                .get(0);
            for (version, name, sql) in MIGRATIONS {
                if *version <= applied {
                    continue;
                }
                tx.batch_execute(sql).map_err(|err| {
                    HqError::Invalid(format!("migration {name} on {}: {err}", self.shown))
                })?;
                tx.execute(
                    "INSERT INTO hq_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    &[version, name, &crate::now().to_string()],
                )?;
                tracing::info!(migration = name, "HQ schema migrated on PostgreSQL");
            }
            // The feed's sequence never behind its rows (a restore, or a
            // failover to a logical replica, which copies rows but not
            // sequences): numbered from there, a writer would collide.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])?;
            let realigned = tx.execute(
                "SELECT setval('changes_seq', h.m)
                   FROM (SELECT max(seq) AS m FROM changes) h, changes_seq s
                  WHERE h.m >= CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END",
                &[],
            )?;
            if realigned > 0 {
                tracing::warn!("the feed's sequence was behind its rows: realigned");
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Runs `work` in a SERIALIZABLE transaction, committed with its feed
    /// entries numbered ([`Tx::commit`]); retried whole on a serialization
    /// failure or deadlock. `work` returns `Err` to roll back.
    fn write<T>(&self, work: impl FnMut(&mut Tx<'_>) -> Result<T, HqError>) -> Result<T, HqError> {
        Ok(self.write_numbered(work)?.0)
    }

    /// [`Self::write`], answering the feed's head once it committed: the
    /// position of its last entry (or, if it made none, the head it read).
    fn write_head(
        &self,
        mut work: impl FnMut(&mut Tx<'_>) -> Result<(), HqError>,
    ) -> Result<u64, HqError> {
        let (read, last) = self.write_numbered(|tx| {
            work(tx)?;
            if tx.feed.is_empty() {
                head(tx).map(Some)
            } else {
                Ok(None)
            }
        })?;
        Ok(last.or(read).unwrap_or(0))
    }

    fn write_numbered<T>(
        &self,
        mut work: impl FnMut(&mut Tx<'_>) -> Result<T, HqError>,
    ) -> Result<(T, Option<u64>), HqError> {
        self.with_conn(|conn| {
            let mut tries = 0;
            loop {
                tries += 1;
                let attempt = (|| {
                    let mut tx = conn.begin(IsolationLevel::Serializable, false)?;
                    let value = work(&mut tx)?;
                    let last = tx.commit()?;
                    Ok((value, last))
                })();
                match attempt {
                    Err(HqError::Postgres(err)) if retryable(&err) && tries < WRITE_TRIES => {
                        // Apart, so that two that collided do not collide again.
                        let mut byte = [0u8; 1];
                        getrandom::getrandom(&mut byte).ok();
                        let jitter = u64::from(byte[0] % 4);
                        std::thread::sleep(std::time::Duration::from_millis(
                            u64::from(tries) * 2 + jitter,
                        ));
                    }
                    other => return other,
                }
            }
        })
    }

    /// Runs `work` in one REPEATABLE READ, READ ONLY snapshot.
    fn read<T>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<T, HqError>) -> Result<T, HqError> {
        self.with_conn(|conn| {
            let mut tx = conn.begin(IsolationLevel::RepeatableRead, true)?;
            let value = work(&mut tx)?;
            tx.commit()?;
            Ok(value)
        })
    }
}

/// A serialization failure or a deadlock: the transaction is tried again.
fn retryable(err: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    err.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// A transaction, the statements prepared on its connection (each
/// statement is prepared once per connection: one round trip per use, not
/// two), and the feed entries it makes.
pub struct Tx<'a> {
    tx: Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
    feed: Vec<(Scope, String, String)>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("feed", &self.feed.len())
            .finish_non_exhaustive()
    }
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<'a> Tx<'a> {
    /// The transaction itself (bulk copies, portals).
    fn raw(&mut self) -> &mut Transaction<'a> {
        &mut self.tx
    }
}

impl Tx<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, HqError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, HqError> {
        let statement = self.statement(sql)?;
        Ok(self.tx.query(&statement, params)?)
    }

    pub fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, HqError> {
        let statement = self.statement(sql)?;
        Ok(self.tx.query_opt(&statement, params)?)
    }

    pub fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, HqError> {
        let statement = self.statement(sql)?;
        Ok(self.tx.query_one(&statement, params)?)
    }

    pub fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, HqError> {
        let statement = self.statement(sql)?;
        Ok(self.tx.execute(&statement, params)?)
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), HqError> {
        Ok(self.tx.batch_execute(sql)?)
    }

    /// Appends a change to the feed (numbered at commit).
    fn log(&mut self, scope: Scope, change: &Change, now: Timestamp) -> Result<(), HqError> {
        let body =
            serde_json::to_string(change).map_err(|err| HqError::Invalid(err.to_string()))?;
        self.feed.push((scope, body, now.to_string()));
        Ok(())
    }

    /// Numbers the transaction's feed entries after every committed one,
    /// under the feed lock (held until the commit is visible), and commits;
    /// the position of its last entry, if it made any.
    ///
    /// The numbers come from `changes_seq`, which is read outside the
    /// transaction's snapshot: a writer that waited for the lock numbers
    /// after the entries committed while it waited. (Reading `max(seq)`
    /// instead would see the snapshot's head: every writer that overlapped
    /// another would fail to serialize and start again, which under a
    /// chain's load exhausts the retries.) A number drawn by a transaction
    /// that then fails to commit is never used: the feed may have holes,
    /// never an entry behind one already visible.
    fn commit(mut self) -> Result<Option<u64>, HqError> {
        let feed = std::mem::take(&mut self.feed);
        let mut last = None;
        if !feed.is_empty() {
            self.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])?;
            let count = feed.len() as i64;
            let mut seqs: Vec<i64> = self
                .query(
                    "SELECT nextval('changes_seq') FROM generate_series(1, $1::bigint)",
                    &[&count],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            seqs.sort_unstable();
            let mut scopes = Vec::with_capacity(feed.len());
            let mut stores = Vec::with_capacity(feed.len());
            let mut members = Vec::with_capacity(feed.len());
            let mut bodies = Vec::with_capacity(feed.len());
            let mut ats = Vec::with_capacity(feed.len());
            for (scope, body, at) in feed {
                let (name, store_id, member_id) = match scope {
                    Scope::All => ("all", None, None),
                    Scope::Store(id) => ("store", Some(id), None),
                    Scope::Member(id) => ("member", None, Some(id)),
                };
                scopes.push(name);
                stores.push(store_id);
                members.push(member_id);
                bodies.push(body);
                ats.push(at);
            }
            self.execute(
                "INSERT INTO changes (seq, scope, store_id, member_id, body, at)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[],
                                      $5::text[], $6::text[])",
                &[&seqs, &scopes, &stores, &members, &bodies, &ats],
            )?;
            last = seqs.last().map(|seq| *seq as u64);
        }
        self.tx.commit()?;
        Ok(last)
    }

    fn savepoint(&mut self) -> Result<usize, HqError> {
        self.batch_execute("SAVEPOINT store_event")?;
        Ok(self.feed.len())
    }

    fn release(&mut self) -> Result<(), HqError> {
        self.batch_execute("RELEASE store_event")
    }

    /// Undoes everything since the savepoint, its feed entries too.
    fn rollback_to(&mut self, mark: usize) -> Result<(), HqError> {
        self.batch_execute("ROLLBACK TO store_event; RELEASE store_event")?;
        self.feed.truncate(mark);
        Ok(())
    }
}

/// The newest feed position.
fn head(c: &mut Tx<'_>) -> Result<u64, HqError> {
    let head: i64 = c
        .query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])?
        .get(0);
    Ok(head as u64)
}

fn in_partition(c: &mut Tx<'_>, store_id: i64, member_id: i64) -> Result<bool, HqError> {
    Ok(c.query_opt(
        "SELECT 1 FROM store_members WHERE store_id = $1 AND member_id = $2",
        &[&store_id, &member_id],
    )?
    .is_some())
}

fn add_to_partition(c: &mut Tx<'_>, store_id: i64, member_id: i64) -> Result<(), HqError> {
    c.execute(
        "INSERT INTO store_members (store_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&store_id, &member_id],
    )?;
    Ok(())
}

/// Narrows a change to what one store may see (campaign targets outside its partition go).
fn for_store(c: &mut Tx<'_>, store_id: i64, change: Change) -> Result<Change, HqError> {
    Ok(match change {
        Change::Campaign(mut campaign) => {
            let kept: Vec<i64> = c
                .query(
                    "SELECT member_id FROM store_members
                     WHERE store_id = $1 AND member_id = ANY($2) ORDER BY member_id",
                    &[&store_id, &campaign.targets],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            campaign.targets.retain(|id| kept.binary_search(id).is_ok());
            Change::Campaign(campaign)
        }
        other => other,
    })
}

/// Whether this failure is the event's fault (its data refused by a rule
/// or a constraint), not HQ's.
fn refused_by_data(err: &HqError) -> bool {
    match err {
        HqError::Invalid(_) | HqError::NotFound(_) => true,
        HqError::Postgres(err) => err.code().is_some_and(|code| {
            // Class 23: integrity constraint violation; class 22: data exception.
            code.code().starts_with("23") || code.code().starts_with("22")
        }),
        _ => false,
    }
}

/// [`crate::checks::Facts`] read in the recording transaction.
struct Facts<'t, 'a>(&'t mut Tx<'a>);

impl crate::checks::Facts for Facts<'_, '_> {
    fn in_partition(&mut self, store_id: i64, member_id: i64) -> Result<bool, HqError> {
        in_partition(self.0, store_id, member_id)
    }

    fn associate(&mut self, staff_id: i64) -> Result<Option<AssociateRecord>, HqError> {
        records::read_associate(self.0, staff_id)
    }

    fn may_sign_with(&mut self, device: &Device, key_id: i64) -> Result<bool, HqError> {
        Ok(self
            .0
            .query_opt(
                "SELECT 1 FROM coupon_issuers WHERE store_id = $1 AND key_id = $2
                 AND (device_id = $3 OR device_id IS NULL)",
                &[&device.store_id, &key_id, &device.device_id],
            )?
            .is_some())
    }

    fn member_known(&mut self, member_id: i64) -> Result<bool, HqError> {
        Ok(records::member_state(self.0, member_id)?.is_some())
    }

    fn coupon_known(&mut self, coupon_id: i64) -> Result<bool, HqError> {
        Ok(self
            .0
            .query_opt("SELECT 1 FROM coupons WHERE coupon_id = $1", &[&coupon_id])?
            .is_some())
    }

    fn store_known(&mut self, store_id: i64) -> Result<bool, HqError> {
        records::store_known(self.0, store_id)
    }
}

fn check_registration(c: &mut Tx<'_>, device_id: &str, store_id: i64) -> Result<(), HqError> {
    check_device_id(device_id)?;
    if !records::store_known(c, store_id)? {
        return Err(HqError::NotFound(format!(
            "store {store_id} is not in HQ's master data"
        )));
    }
    if c.query_opt("SELECT 1 FROM devices WHERE device_id = $1", &[&device_id])?
        .is_some()
    {
        return Err(HqError::Invalid(format!(
            "device {device_id} is already registered"
        )));
    }
    Ok(())
}

fn register_device(
    c: &mut Tx<'_>,
    device_id: &str,
    store_id: i64,
    kind: DeviceKind,
    now: Timestamp,
) -> Result<String, HqError> {
    check_registration(c, device_id, store_id)?;
    let (secret, digest) = new_secret()?;
    let inserted = c.execute(
        "INSERT INTO devices (device_id, store_id, secret_sha256, created_at, kind) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (device_id) DO NOTHING",
        &[&device_id, &store_id, &digest, &now.to_string(), &kind.name()],
    )?;
    if inserted == 0 {
        return Err(HqError::Invalid(format!(
            "device {device_id} is already registered"
        )));
    }
    Ok(secret)
}

/// Sends the store's record, with its issuing keys, to every store.
fn publish_store_keys(tx: &mut Tx<'_>, store_id: i64, now: Timestamp) -> Result<(), HqError> {
    if let Some(store) = records::read_store(tx, store_id)? {
        tx.log(Scope::All, &Change::Store(store), now)?;
    }
    Ok(())
}

fn revoke_device_keys(
    c: &mut Tx<'_>,
    store_id: i64,
    device_id: &str,
    now: Timestamp,
) -> Result<u64, HqError> {
    c.execute(
        "UPDATE coupon_issuers SET revoked_at = $3
         WHERE store_id = $1 AND device_id = $2 AND revoked_at IS NULL",
        &[&store_id, &device_id, &now.to_string()],
    )
}

fn record_admin_call(
    c: &mut Tx<'_>,
    token_name: Option<&str>,
    action: &str,
    target: Option<&str>,
    outcome: &str,
    now: Timestamp,
) -> Result<(), HqError> {
    c.execute(
        "INSERT INTO admin_audit (at, token_name, action, target, outcome) VALUES ($1, $2, $3, $4, $5)",
        &[&now.to_string(), &token_name, &action, &target, &outcome],
    )?;
    Ok(())
}

/// Writes a member's master record and sends it to every store holding them.
fn save_member(tx: &mut Tx<'_>, member: &MemberRecord, now: Timestamp) -> Result<(), HqError> {
    for key in member.code_keys.iter().flatten() {
        aisle_core::keys::parse_strong_public(&key.public_key).map_err(|reason| {
            HqError::Invalid(format!(
                "member {} app-code key {}: {reason}",
                member.member_id, key.key_id
            ))
        })?;
    }
    if !records::write_member(tx, member)? {
        return Err(HqError::Invalid(format!(
            "member {} is erased",
            member.member_id
        )));
    }
    if let Some(store_id) = member.home_store_id {
        add_to_partition(tx, store_id, member.member_id)?;
    }
    let saved = records::read_member(tx, member.member_id)?
        .ok_or_else(|| HqError::NotFound(format!("member {}", member.member_id)))?;
    tx.log(Scope::Member(member.member_id), &Change::Member(saved), now)
}

/// Erases a member and sends the tombstone to every store holding them;
/// leaves nothing of them in HQ's own records ([`crate::sqlite`]'s
/// `scrub_member` does the same on SQLite).
fn erase(tx: &mut Tx<'_>, member_id: i64, now: Timestamp) -> Result<(), HqError> {
    let at = now.to_string();
    records::erase_member(tx, member_id, &at)?;
    let tombstone = Change::MemberErased {
        member_id,
        erased_at: at.clone(),
    };
    let body =
        serde_json::to_string(&tombstone).map_err(|err| HqError::Invalid(err.to_string()))?;
    tx.execute(
        "UPDATE changes SET body = $2
         WHERE member_id = $1
            OR (body::jsonb ->> 'type' = 'member' AND (body::jsonb ->> 'member_id')::bigint = $1)",
        &[&member_id, &body],
    )?;
    tx.execute(
        "UPDATE changes SET body = jsonb_set(body::jsonb, '{member_id}', 'null')::text
         WHERE body::jsonb ->> 'type' = 'basket' AND (body::jsonb ->> 'member_id')::bigint = $1",
        &[&member_id],
    )?;
    tx.execute(
        "UPDATE store_events SET payload = (payload::jsonb - 'author' - 'body' - 'preferences')::text
         WHERE jsonb_typeof(payload::jsonb) = 'object'
           AND (payload::jsonb ->> 'member_id') ~ '^-?[0-9]+$'
           AND (payload::jsonb ->> 'member_id')::bigint = $1",
        &[&member_id],
    )?;
    tx.execute(
        "UPDATE event_quarantine SET payload = jsonb_build_object('member_id', $1::bigint)::text
         WHERE jsonb_typeof(payload::jsonb) = 'object'
           AND (payload::jsonb ->> 'member_id') ~ '^-?[0-9]+$'
           AND (payload::jsonb ->> 'member_id')::bigint = $1",
        &[&member_id],
    )?;
    tx.execute(
        "INSERT INTO erasure_scrubs (member_id, erased_at) VALUES ($1, $2)
         ON CONFLICT (member_id) DO UPDATE SET scrubbed_at = NULL",
        &[&member_id, &at],
    )?;
    tx.log(Scope::Member(member_id), &tombstone, now)
}

/// The upload's keys HQ has recorded before, in one statement of its own:
/// `None` for an applied event, the code and reason for a quarantined one.
type Seen = HashMap<String, Option<(String, String)>>;

fn seen_keys(conn: &mut Conn, events: &[RawEvent]) -> Result<Seen, HqError> {
    let keys: Vec<&str> = events
        .iter()
        .map(|event| event.idempotency_key.as_str())
        .collect();
    Ok(conn
        .query_alone(
            "SELECT idempotency_key, NULL::text, NULL::text FROM store_events
              WHERE idempotency_key = ANY($1)
             UNION ALL
             SELECT idempotency_key, reason_code, reason FROM event_quarantine
              WHERE idempotency_key = ANY($1)",
            &[&keys],
        )?
        .iter()
        .map(|row| {
            let code: Option<String> = row.get(1);
            let before =
                code.map(|code| (code, row.get::<_, Option<String>>(2).unwrap_or_default()));
            (row.get(0), before)
        })
        .collect())
}

/// Records one event not seen before ([`seen_keys`]): applied, or
/// quarantined; or, if another upload of it committed since that read, a
/// duplicate (the inserts skip a key already there, and one still being
/// inserted elsewhere fails this transaction to serialize: retried, it
/// finds the key).
fn record_event(
    tx: &mut Tx<'_>,
    device: &Device,
    event: &RawEvent,
    now: Timestamp,
) -> Result<Outcome, HqError> {
    let key = event.idempotency_key.as_str();
    let typed = match StoreEvent::decode(&event.kind, &event.payload) {
        Ok(typed) => typed,
        Err(err) => return quarantine(tx, device, event, &err.rejection(), now),
    };
    if let Some(rejection) = crate::checks::unauthorized(&mut Facts(tx), device, &typed)? {
        return quarantine(tx, device, event, &rejection, now);
    }
    if let Some(rejection) = crate::checks::refusal(&mut Facts(tx), &typed)? {
        return quarantine(tx, device, event, &rejection, now);
    }
    let mark = tx.savepoint()?;
    let inserted = tx.execute(
        "INSERT INTO store_events (idempotency_key, device_id, store_id, seq, kind, payload, created_at, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (idempotency_key) DO NOTHING",
            &[
                &key,
                &device.device_id,
                &device.store_id,
                &event.seq,
                &typed.kind().name(),
                &event.payload.to_string(),
                &event.created_at,
                &now.to_string(),
            ],
    );
    let applied = match inserted {
        Ok(0) => {
            tx.rollback_to(mark)?;
            return Ok(Outcome::Duplicate);
        }
        Ok(_) => apply_event(tx, device.store_id, &typed, &event.created_at, now),
        Err(err) => Err(err),
    };
    match applied {
        Ok(()) => {
            tx.release()?;
            Ok(Outcome::Applied)
        }
        Err(err) if refused_by_data(&err) => {
            tx.rollback_to(mark)?;
            let rejection = Rejection::new(RejectCode::ApplyFailed, err.to_string());
            quarantine(tx, device, event, &rejection, now)
        }
        Err(err) => Err(err),
    }
}

/// Quarantines an event, unless another upload of it was recorded since
/// [`seen_keys`] read (then that upload's verdict stands).
fn quarantine(
    tx: &mut Tx<'_>,
    device: &Device,
    event: &RawEvent,
    rejection: &Rejection,
    now: Timestamp,
) -> Result<Outcome, HqError> {
    let inserted = tx.execute(
        "INSERT INTO event_quarantine (idempotency_key, device_id, store_id, seq, kind, payload,
             created_at, reason_code, reason, received_at)
         SELECT $1::text, $2::text, $3::bigint, $4::bigint, $5::text, $6::text, $7::text,
                $8::text, $9::text, $10::text
          WHERE NOT EXISTS (SELECT 1 FROM store_events WHERE idempotency_key = $1::text)
         ON CONFLICT (idempotency_key) DO NOTHING",
        &[
            &event.idempotency_key,
            &device.device_id,
            &device.store_id,
            &event.seq,
            &event.kind,
            &event.payload.to_string(),
            &event.created_at,
            &rejection.code.as_str(),
            &rejection.reason,
            &now.to_string(),
        ],
    )?;
    if inserted == 0 {
        let before = tx.query_opt(
            "SELECT reason_code, reason FROM event_quarantine WHERE idempotency_key = $1",
            &[&event.idempotency_key],
        )?;
        return Ok(match before {
            Some(row) => Outcome::Rejected {
                code: row.get(0),
                reason: row.get(1),
            },
            None => Outcome::Duplicate,
        });
    }
    tracing::warn!(
        key = %event.idempotency_key,
        device_id = %device.device_id,
        store_id = device.store_id,
        kind = %event.kind,
        code = rejection.code.as_str(),
        reason = %rejection.reason,
        "store event quarantined"
    );
    Ok(Outcome::Rejected {
        code: rejection.code.as_str().to_owned(),
        reason: rejection.reason.clone(),
    })
}

/// The conflict rules ([`crate::rules`]) applied to the master record.
fn apply_event(
    tx: &mut Tx<'_>,
    store_id: i64,
    event: &StoreEvent,
    created_at: &str,
    now: Timestamp,
) -> Result<(), HqError> {
    if matches!(
        event,
        StoreEvent::CouponIssued(_) | StoreEvent::CouponRedeemed(_)
    ) {
        return record_coupon_event(tx, store_id, event, now);
    }
    let member_id = event.member_id();
    let erased = records::member_state(tx, member_id)?.unwrap_or(true);
    let member = if !erased && crate::rules::needs_record(event) {
        records::read_member(tx, member_id)?
    } else {
        None
    };
    match crate::rules::member_effect(!erased, member.as_ref(), event, now) {
        crate::rules::MemberEffect::Save(saved) => save_member(tx, &saved, now)?,
        crate::rules::MemberEffect::Erase => erase(tx, member_id, now)?,
        crate::rules::MemberEffect::AddNote => {
            if let StoreEvent::AssociateNote(note) = event {
                tx.execute(
                    "INSERT INTO member_notes (member_id, author, body, created_at) VALUES ($1, $2, $3, $4)",
                    &[&member_id, &note.author, &note.body, &created_at],
                )?;
            }
        }
        crate::rules::MemberEffect::Fact => {}
    }
    Ok(())
}

/// Records a coupon instance or redemption in HQ's ledger; the earliest
/// redemption of an instance counts ([`crate::rules::over_redemption`]).
fn record_coupon_event(
    tx: &mut Tx<'_>,
    store_id: i64,
    event: &StoreEvent,
    now: Timestamp,
) -> Result<(), HqError> {
    let (serial, coupon_id, member_id, key_id, channel, expires_at, issuer, issued_at, redemption) =
        match event {
            StoreEvent::CouponIssued(issued) => (
                issued.serial.as_str(),
                issued.coupon_id,
                issued.member_id,
                issued.key_id,
                issued.channel.as_str(),
                issued.expires_at.as_str(),
                store_id,
                issued.issued_at.as_str(),
                None,
            ),
            StoreEvent::CouponRedeemed(redeemed) => (
                redeemed.serial.as_str(),
                redeemed.coupon_id,
                redeemed.member_id,
                redeemed.key_id,
                redeemed.channel.as_str(),
                redeemed.expires_at.as_str(),
                redeemed.issuer_store_id,
                redeemed.redeemed_at.as_str(),
                Some(redeemed),
            ),
            _ => return Ok(()),
        };
    let issue_known = i64::from(redemption.is_none());
    tx.execute(
        "INSERT INTO coupon_issues (serial, coupon_id, member_id, store_id, channel, issued_at,
             expires_at, key_id, bound_member_id, issue_known)
         VALUES ($1, $2, (SELECT member_id FROM members WHERE member_id = $3), $4, $5, $6, $7, $8, $3, $9)
         ON CONFLICT (serial) DO UPDATE SET issued_at = excluded.issued_at, issue_known = 1
             WHERE $9 = 1",
        &[
            &serial,
            &coupon_id,
            &member_id,
            &issuer,
            &channel,
            &issued_at,
            &expires_at,
            &key_id,
            &issue_known,
        ],
    )?;
    if let Some(redemption) = redemption {
        let arriving = crate::rules::Redemption {
            store_id,
            at: redemption.redeemed_at.clone(),
            till_id: Some(redemption.till_id.clone()),
            value_cents: Some(redemption.value_cents),
        };
        let issue_id: i64 = tx
            .tx
            .query_one(
                "SELECT issue_id FROM coupon_issues WHERE serial = $1 FOR UPDATE",
                &[&serial],
            )?
            .get(0);
        let first = tx.query_opt(
            "SELECT redemption_id, store_id, coalesce(redeemed_at, redeemed_on), till_id, value_cents
             FROM coupon_redemptions WHERE issue_id = $1",
            &[&issue_id],
        )?;
        match first {
            None => {
                tx.execute(
                    "INSERT INTO coupon_redemptions (coupon_id, member_id, issue_id, store_id,
                         redeemed_on, redeemed_at, till_id, value_cents, offline_risk)
                     VALUES ($1, (SELECT member_id FROM members WHERE member_id = $2), $3, $4,
                         substr($5, 1, 10), $5, $6, $7, $8)",
                    &[
                        &coupon_id,
                        &member_id,
                        &issue_id,
                        &store_id,
                        &arriving.at,
                        &arriving.till_id,
                        &arriving.value_cents,
                        &i64::from(redemption.offline_risk),
                    ],
                )?;
            }
            Some(row) => {
                let redemption_id: i64 = row.get(0);
                let judged = crate::rules::over_redemption(
                    crate::rules::Redemption {
                        store_id: row.get::<_, Option<i64>>(1).unwrap_or_default(),
                        at: row.get(2),
                        till_id: row.get(3),
                        value_cents: row.get(4),
                    },
                    arriving,
                );
                if judged.arriving_wins {
                    let counted = &judged.counted;
                    tx.execute(
                        "UPDATE coupon_redemptions SET store_id = $2, redeemed_on = substr($3, 1, 10),
                             redeemed_at = $3, till_id = $4, value_cents = $5 WHERE redemption_id = $1",
                        &[
                            &redemption_id,
                            &counted.store_id,
                            &counted.at,
                            &counted.till_id,
                            &counted.value_cents,
                        ],
                    )?;
                }
                let (winner, loser) = (&judged.counted, &judged.over);
                tracing::warn!(
                    serial,
                    coupon_id,
                    first_store_id = winner.store_id,
                    first_redeemed_at = %winner.at,
                    later_store_id = loser.store_id,
                    later_redeemed_at = %loser.at,
                    value_cents = loser.value_cents,
                    "coupon over-redeemed: redeemed at two stores"
                );
                tx.execute(
                    "INSERT INTO coupon_over_redemptions (serial, coupon_id, member_id, issuer_store_id,
                         first_store_id, first_redeemed_at, later_store_id, later_redeemed_at,
                         later_till_id, value_cents, recorded_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    &[
                        &serial,
                        &coupon_id,
                        &member_id,
                        &issuer,
                        &winner.store_id,
                        &winner.at,
                        &loser.store_id,
                        &loser.at,
                        &loser.till_id,
                        &loser.value_cents,
                        &now.to_string(),
                    ],
                )?;
            }
        }
    }
    if let Some(member) = records::read_member(tx, member_id)? {
        tx.log(Scope::Member(member_id), &Change::Member(member), now)?;
    }
    Ok(())
}

fn send_associate(tx: &mut Tx<'_>, record: AssociateRecord, now: Timestamp) -> Result<(), HqError> {
    tx.log(
        Scope::Store(record.store_id),
        &Change::Associate(record),
        now,
    )
}

/// App-code windows HQ remembers for its replay check.
const REPLAY_WINDOWS_KEPT: i64 = 20;

fn lookup(
    tx: &mut Tx<'_>,
    device: &Device,
    proof: LookupProof<'_>,
    now: Timestamp,
) -> Result<Result<Looked, String>, HqError> {
    let audit = |tx: &mut Tx<'_>, member_id: Option<i64>, outcome: &str| -> Result<(), HqError> {
        tx.execute(
            "INSERT INTO lookup_audit (device_id, store_id, proof, member_id, outcome, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &device.device_id,
                &device.store_id,
                &proof.name(),
                &member_id,
                &outcome,
                &now.to_string(),
            ],
        )?;
        Ok(())
    };
    let refused = |tx: &mut Tx<'_>, member_id: Option<i64>, why: String| {
        audit(tx, member_id, "refused")?;
        Ok(Err(why))
    };
    if !device.kind.may_look_up() {
        let why = format!("a {} may not look members up", device.kind.name());
        return refused(tx, None, why);
    }
    let id: Option<i64> = match proof {
        LookupProof::Card(card) => tx
            .tx
            .query_opt(
                "SELECT member_id FROM member_cards WHERE card_number = $1 AND status = 'active'",
                &[&card],
            )?
            .map(|row| row.get(0)),
        LookupProof::AppCode(text) => {
            use aisle_core::identify::member_code;
            let code = match member_code::parse(text) {
                Ok(code) => code,
                Err(err) => return refused(tx, None, format!("the app code is refused: {err}")),
            };
            let key = tx
                .tx
                .query_opt(
                    "SELECT public_key FROM member_keys WHERE member_id = $1
                     ORDER BY key_id DESC LIMIT 1",
                    &[&code.member_id],
                )?
                .and_then(|row| {
                    aisle_core::keys::public_from_bytes(&row.get::<_, Vec<u8>>(0)).ok()
                });
            let verified = key.ok_or(member_code::CodeError::NoKey).and_then(|key| {
                member_code::verify(
                    &code,
                    &key,
                    u64::try_from(now.unix()).unwrap_or(0),
                    &member_code::CodePolicy::default(),
                )
            });
            if let Err(err) = verified {
                return refused(
                    tx,
                    Some(code.member_id),
                    format!("the app code is refused: {err}"),
                );
            }
            let window = i64::try_from(code.window).unwrap_or(i64::MAX);
            tx.execute(
                "DELETE FROM code_replays WHERE code_window < $1",
                &[&window.saturating_sub(REPLAY_WINDOWS_KEPT)],
            )?;
            let fresh = tx.execute(
                "INSERT INTO code_replays (member_id, code_window, seen_at, device)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    &code.member_id,
                    &window,
                    &now.to_string(),
                    &device.device_id,
                ],
            )?;
            if fresh == 0 {
                return refused(
                    tx,
                    Some(code.member_id),
                    "the app code is refused: it was already used for a look-up".into(),
                );
            }
            Some(code.member_id)
        }
        LookupProof::MemberId(id) => {
            let why = "a look-up needs proof that the member is here: their card or their app code, not a member id".to_owned();
            return refused(tx, Some(id), why);
        }
        LookupProof::None => {
            return refused(tx, None, "give a card number or an app code".into());
        }
    };
    let Some(id) = id else {
        audit(tx, None, "unknown")?;
        return Ok(Ok(Looked {
            member: None,
            erased: false,
        }));
    };
    let erased = records::member_state(tx, id)?.unwrap_or(false);
    let member = records::read_member(tx, id)?;
    if member.is_some() {
        add_to_partition(tx, device.store_id, id)?;
    }
    let outcome = if erased {
        "erased"
    } else if member.is_some() {
        "found"
    } else {
        "unknown"
    };
    audit(tx, Some(id), outcome)?;
    Ok(Ok(Looked { member, erased }))
}

fn model_info_recommend(c: &mut Tx<'_>) -> Result<Option<ModelInfo>, HqError> {
    Ok(c.query_opt(
        "SELECT artifact_id, format_version, created_at, trained_until, bytes FROM model_artifacts
         WHERE kind = 'recommend' ORDER BY artifact_id DESC LIMIT 1",
        &[],
    )?
    .map(|row| {
        let bytes: Vec<u8> = row.get(4);
        ModelInfo {
            artifact_id: row.get(0),
            kind: ModelInfo::RECOMMEND.into(),
            format_version: u32::try_from(row.get::<_, i64>(1)).unwrap_or_default(),
            trained_until: row.get(3),
            created_at: row.get(2),
            sha256: sha256_hex(&bytes),
            bytes: bytes.len() as u64,
        }
    }))
}

fn model_info_offers(c: &mut Tx<'_>) -> Result<Option<ModelInfo>, HqError> {
    Ok(c.query_opt(
        "SELECT model_id, format_version, created_at, trained_until, body FROM offer_models
         ORDER BY model_id DESC LIMIT 1",
        &[],
    )?
    .map(|row| {
        let body: String = row.get(4);
        ModelInfo {
            artifact_id: row.get(0),
            kind: ModelInfo::OFFERS.into(),
            format_version: u32::try_from(row.get::<_, i64>(1)).unwrap_or_default(),
            trained_until: row.get(3),
            created_at: row.get(2),
            sha256: sha256_hex(body.as_bytes()),
            bytes: body.len() as u64,
        }
    }))
}

impl Storage for PgStorage {
    fn authenticate(&self, device_id: &str, secret: &str) -> Result<Option<Device>, HqError> {
        // Every request: one statement, no transaction around it.
        self.with_conn(|conn| {
            let rows = conn.query_alone(
                "SELECT store_id, secret_sha256, kind FROM devices WHERE device_id = $1 AND revoked_at IS NULL",
                &[&device_id],
            )?;
            Ok(rows.into_iter().next().and_then(|row| {
                let expected: String = row.get(1);
                let kind = DeviceKind::parse(row.get(2))?;
                secret_matches(secret, &expected).then(|| Device {
                    device_id: device_id.to_owned(),
                    store_id: row.get(0),
                    kind,
                })
            }))
        })
    }

    fn register_device(
        &self,
        device_id: &str,
        store_id: i64,
        kind: DeviceKind,
        now: Timestamp,
    ) -> Result<String, HqError> {
        self.write(|tx| register_device(tx, device_id, store_id, kind, now))
    }

    fn revoke_device(&self, device_id: &str, now: Timestamp) -> Result<(), HqError> {
        self.write(|tx| {
            let store_id: Option<i64> = tx
                .tx
                .query_opt(
                    "UPDATE devices SET revoked_at = coalesce(revoked_at, $2) WHERE device_id = $1
                     RETURNING store_id",
                    &[&device_id, &now.to_string()],
                )?
                .map(|row| row.get(0));
            let Some(store_id) = store_id else {
                return Err(HqError::NotFound(format!(
                    "device {device_id} is not registered"
                )));
            };
            if revoke_device_keys(tx, store_id, device_id, now)? > 0 {
                publish_store_keys(tx, store_id, now)?;
            }
            Ok(())
        })
    }

    fn create_enrolment(
        &self,
        registration: &DeviceRegistration,
        created_by: &str,
        valid_secs: i64,
        now: Timestamp,
    ) -> Result<Enrolment, HqError> {
        let (code, digest) = crate::admin::new_enrolment_code()?;
        let expires_at = crate::admin::enrolment_expiry(now, valid_secs);
        self.write(|tx| {
            check_registration(tx, &registration.device_id, registration.store_id)?;
            tx.execute(
                "DELETE FROM enrolments WHERE device_id = $1 AND redeemed_at IS NULL",
                &[&registration.device_id],
            )?;
            tx.execute(
                "INSERT INTO enrolments (code_sha256, device_id, store_id, kind, created_at, created_by, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &digest,
                    &registration.device_id,
                    &registration.store_id,
                    &registration.kind.name(),
                    &now.to_string(),
                    &created_by,
                    &expires_at.to_string(),
                ],
            )?;
            Ok(())
        })?;
        Ok(Enrolment {
            device_id: registration.device_id.clone(),
            store_id: registration.store_id,
            kind: registration.kind,
            code,
            expires_at: expires_at.to_string(),
        })
    }

    fn redeem_enrolment(&self, code: &str, now: Timestamp) -> Result<Option<Enrolled>, HqError> {
        let digest = crate::admin::code_digest(code);
        self.write(|tx| {
            let Some(row) = tx.query_opt(
                "SELECT device_id, store_id, kind, expires_at FROM enrolments
                 WHERE code_sha256 = $1 AND redeemed_at IS NULL FOR UPDATE",
                &[&digest],
            )?
            else {
                return Ok(None);
            };
            let (device_id, store_id, kind): (String, i64, String) =
                (row.get(0), row.get(1), row.get(2));
            let expires_at = Timestamp::parse(row.get(3))
                .map_err(|err| HqError::Invalid(format!("enrolment expiry: {err}")))?;
            if now >= expires_at {
                return Ok(None);
            }
            let kind = DeviceKind::parse(&kind).ok_or_else(|| {
                HqError::Invalid(format!("enrolment of {device_id}: kind {kind:?}"))
            })?;
            let secret = register_device(tx, &device_id, store_id, kind, now)?;
            tx.execute(
                "UPDATE enrolments SET redeemed_at = $2 WHERE code_sha256 = $1",
                &[&digest, &now.to_string()],
            )?;
            record_admin_call(tx, None, "enrol", Some(&device_id), "ok", now)?;
            Ok(Some(Enrolled {
                registration: DeviceRegistration {
                    device_id,
                    store_id,
                    kind,
                },
                secret,
            }))
        })
    }

    fn register_coupon_key(
        &self,
        device: &Device,
        public_key: &str,
        now: Timestamp,
    ) -> Result<i64, HqError> {
        if !device.kind.may_send(aisle_proto::EventKind::CouponIssued) {
            return Err(HqError::Forbidden(format!(
                "a {} does not issue coupons",
                device.kind.name()
            )));
        }
        let public = aisle_core::keys::parse_strong_public(public_key)
            .map_err(|err| HqError::Invalid(format!("coupon key: {err}")))?;
        let public = public.as_bytes().as_slice();
        self.write(|tx| {
            let existing = tx.query_opt(
                "SELECT key_id FROM coupon_issuers
                 WHERE store_id = $1 AND device_id = $2 AND public_key = $3 AND revoked_at IS NULL",
                &[&device.store_id, &device.device_id, &public],
            )?;
            if let Some(row) = existing {
                return Ok(row.get(0));
            }
            // Key 1 was the store-wide key of before device keys.
            let key_id: i64 = tx
                .tx
                .query_one(
                    "SELECT greatest(coalesce(max(key_id), 0), 1) + 1 FROM coupon_issuers WHERE store_id = $1",
                    &[&device.store_id],
                )?
                .get(0);
            revoke_device_keys(tx, device.store_id, &device.device_id, now)?;
            records::add_issuer(tx, device.store_id, key_id, public, &now.to_string())?;
            tx.execute(
                "UPDATE coupon_issuers SET device_id = $3 WHERE store_id = $1 AND key_id = $2",
                &[&device.store_id, &key_id, &device.device_id],
            )?;
            publish_store_keys(tx, device.store_id, now)?;
            Ok(key_id)
        })
    }

    fn retire_store_keys(&self, now: Timestamp) -> Result<usize, HqError> {
        self.write(|tx| {
            let stores: Vec<i64> = tx
                .tx
                .query(
                    "UPDATE coupon_issuers SET revoked_at = $1
                     WHERE device_id IS NULL AND revoked_at IS NULL RETURNING store_id",
                    &[&now.to_string()],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let mut distinct = stores.clone();
            distinct.sort_unstable();
            distinct.dedup();
            for store_id in distinct {
                publish_store_keys(tx, store_id, now)?;
            }
            Ok(stores.len())
        })
    }

    fn record_throttle(&self, device: &Device, what: &str, now: Timestamp) -> Result<(), HqError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO device_throttles (device_id, store_id, what, refused, first_at, last_at)
                 VALUES ($1, $2, $3, 1, $4, $4)
                 ON CONFLICT (device_id, what) DO UPDATE SET refused = device_throttles.refused + 1,
                     last_at = excluded.last_at",
                &[&device.device_id, &device.store_id, &what, &now.to_string()],
            )?;
            Ok(())
        })
    }

    fn throttled(&self) -> Result<Vec<ThrottledDevice>, HqError> {
        self.read(|tx| {
            Ok(tx
                .query(
                    "SELECT device_id, store_id, what, refused, first_at, last_at FROM device_throttles
                     ORDER BY refused DESC, device_id, what",
                    &[],
                )?
                .iter()
                .map(|row| ThrottledDevice {
                    device_id: row.get(0),
                    store_id: row.get(1),
                    what: row.get(2),
                    refused: row.get(3),
                    first_at: row.get(4),
                    last_at: row.get(5),
                })
                .collect())
        })
    }

    fn changes_after(
        &self,
        store_id: i64,
        after: u64,
        limit: usize,
    ) -> Result<ChangeBatch, HqError> {
        self.read(|tx| {
            let head = head(tx)?;
            if after > head {
                return Err(HqError::CursorAhead {
                    cursor: after,
                    head,
                });
            }
            let rows = tx.query(
                "SELECT seq, body FROM changes AS c
                 WHERE seq > $1 AND (scope = 'all'
                    OR (scope = 'store' AND store_id = $2)
                    OR (scope = 'member' AND EXISTS (SELECT 1 FROM store_members AS s
                         WHERE s.store_id = $2 AND s.member_id = c.member_id)))
                 ORDER BY seq LIMIT $3",
                &[&(after as i64), &store_id, &(limit as i64 + 1)],
            )?;
            let more = rows.len() > limit;
            let mut changes = Vec::with_capacity(rows.len().min(limit));
            let mut last = after;
            for row in rows.iter().take(limit) {
                let seq: i64 = row.get(0);
                let body: &str = row.get(1);
                let change: Change = serde_json::from_str(body).map_err(|err| {
                    HqError::Invalid(format!("feed entry {seq} is unreadable: {err}"))
                })?;
                changes.push(for_store(tx, store_id, change)?);
                last = seq as u64;
            }
            Ok(ChangeBatch {
                protocol: PROTOCOL_VERSION,
                store_id,
                from_cursor: after,
                to_cursor: if more { last } else { head },
                more,
                changes,
            })
        })
    }

    fn snapshot(
        &self,
        store_id: i64,
        history_days: u32,
        sink: &mut dyn SnapshotSink,
    ) -> Result<Option<SnapshotHead>, HqError> {
        self.read(|tx| snapshot(tx, store_id, history_days, sink))
    }

    fn model_bytes(&self, artifact_id: i64) -> Result<Option<Vec<u8>>, HqError> {
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    "SELECT bytes FROM model_artifacts WHERE artifact_id = $1 AND kind = 'recommend'",
                    &[&artifact_id],
                )?
                .map(|row| row.get(0)))
        })
    }

    fn offer_model_bytes(&self, model_id: i64) -> Result<Option<Vec<u8>>, HqError> {
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    "SELECT body FROM offer_models WHERE model_id = $1",
                    &[&model_id],
                )?
                .map(|row| row.get::<_, String>(0).into_bytes()))
        })
    }

    fn record_events(
        &self,
        device: &Device,
        events: &[RawEvent],
        now: Timestamp,
    ) -> Result<EventAck, HqError> {
        // Which keys HQ has recorded, read before the transaction: inside a
        // SERIALIZABLE one, the read would lock the index pages where other
        // stores' keys are being inserted, and concurrent uploads would fail
        // each other (the fleet benchmark ran out of retries). A key recorded
        // after this read is caught by the insert itself (`record_event`).
        let before = self.with_conn(|conn| seen_keys(conn, events))?;
        self.write(|tx| {
            let mut seen = before.clone();
            crate::checks::acknowledge(events, |event| {
                let key = event.idempotency_key.as_str();
                if let Some(before) = seen.get(key) {
                    return Ok(match before {
                        Some((code, reason)) => Outcome::Rejected {
                            code: code.clone(),
                            reason: reason.clone(),
                        },
                        None => Outcome::Duplicate,
                    });
                }
                let outcome = record_event(tx, device, event, now)?;
                // A key twice in one upload: the second is the first's duplicate.
                match &outcome {
                    Outcome::Applied => {
                        seen.insert(key.to_owned(), None);
                    }
                    Outcome::Rejected { code, reason } => {
                        seen.insert(key.to_owned(), Some((code.clone(), reason.clone())));
                    }
                    Outcome::Duplicate => {}
                }
                Ok(outcome)
            })
        })
    }

    fn event_log(&self) -> Result<Vec<LoggedEvent>, HqError> {
        self.read(|tx| {
            Ok(tx
                .query(
                    "SELECT idempotency_key, device_id, seq, kind FROM store_events ORDER BY device_id, seq",
                    &[],
                )?
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
                .collect())
        })
    }

    fn quarantined(&self, after: i64, limit: usize) -> Result<QuarantineList, HqError> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT quarantine_id, idempotency_key, device_id, store_id, seq, kind, reason_code,
                        reason, created_at, received_at, payload
                 FROM event_quarantine WHERE quarantine_id > $1 ORDER BY quarantine_id LIMIT $2",
                &[&after, &(limit as i64 + 1)],
            )?;
            let more = rows.len() > limit;
            let mut events = Vec::with_capacity(rows.len().min(limit));
            for row in rows.iter().take(limit) {
                let quarantine_id: i64 = row.get(0);
                let payload: &str = row.get(10);
                events.push(QuarantinedEvent {
                    quarantine_id,
                    idempotency_key: row.get(1),
                    device_id: row.get(2),
                    store_id: row.get(3),
                    seq: row.get(4),
                    kind: row.get(5),
                    code: row.get(6),
                    reason: row.get(7),
                    created_at: row.get(8),
                    received_at: row.get(9),
                    payload: serde_json::from_str(payload).map_err(|err| {
                        HqError::Invalid(format!(
                            "quarantined event {quarantine_id} is unreadable: {err}"
                        ))
                    })?,
                });
            }
            let next_after = if more {
                events.last().map(|event| event.quarantine_id)
            } else {
                None
            };
            Ok(QuarantineList { events, next_after })
        })
    }

    fn lookup(
        &self,
        device: &Device,
        proof: LookupProof<'_>,
        now: Timestamp,
    ) -> Result<Looked, HqError> {
        // A refusal is audited (committed) and answered as an error.
        match self.write(|tx| lookup(tx, device, proof, now))? {
            Ok(looked) => Ok(looked),
            Err(why) => {
                tracing::warn!(device_id = %device.device_id, proof = proof.name(), reason = %why, "member look-up refused");
                Err(HqError::Forbidden(why))
            }
        }
    }

    fn admin_change(&self, change: &Change, now: Timestamp) -> Result<u64, HqError> {
        self.write_head(|tx| {
            match change {
                Change::Member(member) => save_member(tx, member, now)?,
                Change::MemberErased { member_id, .. } => erase(tx, *member_id, now)?,
                Change::StoreProduct(row) => {
                    records::apply_change(tx, change)?;
                    if records::read_store_product(tx, row.store_id, row.product_id)?.is_none() {
                        return Err(HqError::NotFound(format!("product {}", row.product_id)));
                    }
                    tx.log(Scope::Store(row.store_id), change, now)?;
                }
                Change::Basket(basket) => {
                    if records::member_state(tx, basket.member_id)? != Some(false) {
                        return Err(HqError::NotFound(format!("member {}", basket.member_id)));
                    }
                    records::apply_change(tx, change)?;
                    add_to_partition(tx, basket.store_id, basket.member_id)?;
                    tx.log(Scope::Member(basket.member_id), change, now)?;
                }
                Change::Model(_) => {
                    return Err(HqError::Invalid(
                        "models are published with `aisle-hq train`".into(),
                    ));
                }
                Change::Associate(_) => {
                    return Err(HqError::Invalid(
                        "associates are added with `aisle-hq associate` (HQ hashes the PIN)".into(),
                    ));
                }
                Change::Campaign(_) | Change::Coupon(_) | Change::Product(_) | Change::Store(_) => {
                    records::apply_change(tx, change)?;
                    tx.log(Scope::All, change, now)?;
                }
            }
            Ok(())
        })
    }

    fn save_associate(&self, associate: &NewAssociate<'_>, now: Timestamp) -> Result<u64, HqError> {
        let record = associate.record(now)?;
        self.write_head(|tx| {
            if !records::store_known(tx, associate.store_id)? {
                return Err(HqError::NotFound(format!("store {}", associate.store_id)));
            }
            let previous = records::read_associate(tx, associate.staff_id)?;
            records::write_associate(tx, &record)?;
            if let Some(previous) = previous.filter(|p| p.store_id != record.store_id) {
                let left = AssociateRecord {
                    active: false,
                    updated_at: now.to_string(),
                    ..previous
                };
                send_associate(tx, left, now)?;
            }
            send_associate(tx, record.clone(), now)?;
            Ok(())
        })
    }

    fn deactivate_associate(&self, staff_id: i64, now: Timestamp) -> Result<u64, HqError> {
        self.write_head(|tx| {
            let record = records::read_associate(tx, staff_id)?
                .ok_or_else(|| HqError::NotFound(format!("associate {staff_id}")))?;
            let record = AssociateRecord {
                active: false,
                updated_at: now.to_string(),
                ..record
            };
            records::write_associate(tx, &record)?;
            send_associate(tx, record, now)?;
            Ok(())
        })
    }

    fn import(
        &self,
        importer: Importer,
        source: &dyn Source,
        options: &ImportOptions,
    ) -> Result<ImportReport, HqError> {
        mirror::import(self, importer, source, options)
    }

    fn showcase(&self) -> Result<Option<Showcase>, HqError> {
        self.read(|tx| {
            let row = tx.query_opt(
                &format!(
                    "WITH stock AS (SELECT store_id, count(*) AS n FROM store_products WHERE stock_qty > 0 GROUP BY store_id)
                     SELECT m.member_id, m.home_store_id FROM members AS m
                     JOIN baskets AS b ON b.member_id = m.member_id
                     LEFT JOIN stock AS s ON s.store_id = m.home_store_id
                     WHERE {}
                     GROUP BY m.member_id ORDER BY coalesce(max(s.n), 0) DESC, count(*) DESC, m.member_id LIMIT 1",
                    aisle_core::consent::MAY_PERSONALIZE_SQL
                ),
                &[],
            )?;
            Ok(row.map(|row| Showcase {
                member_id: row.get(0),
                store_id: row.get(1),
            }))
        })
    }

    fn train(&self, until: Option<&str>, seed: u64, now: Timestamp) -> Result<ModelInfo, HqError> {
        mirror::train(self, |scratch| {
            let artifact = aisle_core::recommend::artifact::fit_from(scratch, until, seed, now)
                .map_err(|err| HqError::Invalid(err.to_string()))?;
            let tx = scratch.transaction()?;
            aisle_core::recommend::artifact::store(&tx, &artifact)
                .map_err(|err| HqError::Invalid(err.to_string()))?;
            tx.commit()?;
            Ok(())
        })?;
        self.publish_newest(model_info_recommend, now)
    }

    fn train_offers(&self, until: Option<&str>, now: Timestamp) -> Result<ModelInfo, HqError> {
        mirror::train(self, |scratch| {
            let until = match until {
                Some(day) => day.to_owned(),
                None => aisle_core::offers::model::day_after_data(scratch)?.ok_or_else(|| {
                    HqError::Invalid("HQ holds no purchases to learn from".into())
                })?,
            };
            let fitted = aisle_core::offers::model::fit_from(scratch, &until)
                .map_err(|err| HqError::Invalid(err.to_string()))?;
            let tx = scratch.transaction()?;
            aisle_core::offers::model::store(&tx, &fitted, now)
                .map_err(|err| HqError::Invalid(err.to_string()))?;
            tx.commit()?;
            Ok(())
        })?;
        self.publish_newest(model_info_offers, now)
    }

    fn coupon_reconciliation(&self) -> Result<CouponReconciliation, HqError> {
        self.read(|tx| {
            let issued: i64 = tx
                .query_one(
                    "SELECT count(*) FROM coupon_issues WHERE key_id IS NOT NULL",
                    &[],
                )?
                .get(0);
            let redeemed: i64 = tx
                .query_one(
                    "SELECT count(*) FROM coupon_redemptions r JOIN coupon_issues i ON i.issue_id = r.issue_id
                     WHERE i.key_id IS NOT NULL",
                    &[],
                )?
                .get(0);
            let over_redemptions: Vec<OverRedemption> = tx
                .query(
                    "SELECT serial, coupon_id, member_id, issuer_store_id, first_store_id, first_redeemed_at,
                            later_store_id, later_redeemed_at, later_till_id, value_cents, recorded_at
                     FROM coupon_over_redemptions ORDER BY over_id",
                    &[],
                )?
                .iter()
                .map(|row| OverRedemption {
                    serial: row.get(0),
                    coupon_id: row.get(1),
                    member_id: row.get(2),
                    issuer_store_id: row.get(3),
                    first_store_id: row.get(4),
                    first_redeemed_at: row.get(5),
                    later_store_id: row.get(6),
                    later_redeemed_at: row.get(7),
                    later_till_id: row.get(8),
                    value_cents: row.get(9),
                    recorded_at: row.get(10),
                })
                .collect();
            let never_issued: Vec<NeverIssued> = tx
                .query(
                    "SELECT i.serial, i.coupon_id, i.store_id, r.store_id, r.redeemed_at, r.till_id, r.value_cents
                     FROM coupon_redemptions r JOIN coupon_issues i ON i.issue_id = r.issue_id
                     WHERE i.issue_known = 0 ORDER BY r.redemption_id",
                    &[],
                )?
                .iter()
                .map(|row| NeverIssued {
                    serial: row.get(0),
                    coupon_id: row.get(1),
                    issuer_store_id: row.get(2),
                    store_id: row.get(3),
                    redeemed_at: row.get(4),
                    till_id: row.get(5),
                    value_cents: row.get(6),
                })
                .collect();
            for never in &never_issued {
                tracing::warn!(serial = %never.serial, store_id = ?never.store_id, till_id = ?never.till_id, "redeemed coupon HQ never saw issued");
            }
            Ok(CouponReconciliation {
                issued: issued as u64,
                redeemed: redeemed as u64,
                over_redeemed_cents: over_redemptions.iter().filter_map(|o| o.value_cents).sum(),
                over_redemptions,
                never_issued,
            })
        })
    }

    fn record_admin_call(
        &self,
        token_name: Option<&str>,
        action: &str,
        target: Option<&str>,
        outcome: &str,
        now: Timestamp,
    ) -> Result<(), HqError> {
        self.write(|tx| record_admin_call(tx, token_name, action, target, outcome, now))
    }

    fn admin_audit(&self, after: i64, limit: usize) -> Result<AdminAuditList, HqError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|tx| {
            let entries = tx
                .query(
                    "SELECT audit_id, at, token_name, action, target, outcome FROM admin_audit
                     WHERE audit_id > $1 ORDER BY audit_id LIMIT $2",
                    &[&after, &limit],
                )?
                .iter()
                .map(|row| AdminAuditEntry {
                    audit_id: row.get(0),
                    at: row.get(1),
                    token_name: row.get(2),
                    action: row.get(3),
                    target: row.get(4),
                    outcome: row.get(5),
                })
                .collect();
            Ok(AdminAuditList { entries })
        })
    }

    /// Asked after every upload and admin change: one statement, no transaction.
    fn scrub_pending(&self) -> Result<bool, HqError> {
        self.with_conn(|conn| {
            Ok(!conn
                .query_alone(
                    "SELECT 1 FROM erasure_scrubs WHERE scrubbed_at IS NULL LIMIT 1",
                    &[],
                )?
                .is_empty())
        })
    }

    /// PostgreSQL's own traces (dead row versions, its write-ahead log and
    /// backups) are the database's operators' to expire (docs/DEPLOY.md);
    /// HQ's part here is the snapshot files, already deleted.
    fn scrub_storage(&self, now: Timestamp) -> Result<bool, HqError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE erasure_scrubs SET scrubbed_at = $1 WHERE scrubbed_at IS NULL",
                &[&now.to_string()],
            )?;
            Ok(true)
        })
    }

    #[cfg(feature = "bench")]
    fn assign_all_members(&self, store_id: i64) -> Result<usize, HqError> {
        self.write(|tx| {
            Ok(tx.execute(
                "INSERT INTO store_members (store_id, member_id)
                 SELECT $1, member_id FROM members WHERE erased_at IS NULL
                 ON CONFLICT DO NOTHING",
                &[&store_id],
            )? as usize)
        })
    }
}

impl PgStorage {
    /// Publishes the newest model of a kind to every store.
    fn publish_newest(
        &self,
        newest: impl Fn(&mut Tx<'_>) -> Result<Option<ModelInfo>, HqError>,
        now: Timestamp,
    ) -> Result<ModelInfo, HqError> {
        self.write(|tx| {
            let info = newest(tx)?.ok_or_else(|| HqError::NotFound("the stored model".into()))?;
            tx.log(Scope::All, &Change::Model(info.clone()), now)?;
            Ok(info)
        })
    }

    /// Fills store partitions from the master data (each member belongs to
    /// their home store and to every store they shopped at).
    fn refresh_partitions(&self) -> Result<(), HqError> {
        self.write(|tx| {
            tx.batch_execute(
                "INSERT INTO store_members (store_id, member_id)
                 SELECT home_store_id, member_id FROM members
                 WHERE home_store_id IS NOT NULL AND erased_at IS NULL
                 ON CONFLICT DO NOTHING;
                 INSERT INTO store_members (store_id, member_id)
                 SELECT DISTINCT b.store_id, b.member_id FROM baskets AS b JOIN members AS m USING (member_id)
                 WHERE m.erased_at IS NULL
                 ON CONFLICT DO NOTHING",
            )?;
            Ok(())
        })
    }
}

/// Rows fetched from a portal at a time while streaming a snapshot.
const PORTAL_ROWS: i32 = 5_000;

/// A query streamed through a portal, `PORTAL_ROWS` rows at a time.
struct Portal {
    portal: postgres::Portal,
    buffered: std::collections::VecDeque<Row>,
    done: bool,
}

impl Portal {
    fn open(tx: &mut Tx<'_>, sql: &str, params: Params<'_>) -> Result<Self, HqError> {
        Ok(Self {
            portal: tx.raw().bind(sql, params)?,
            buffered: std::collections::VecDeque::new(),
            done: false,
        })
    }

    fn peek(&mut self, tx: &mut Tx<'_>) -> Result<Option<&Row>, HqError> {
        if self.buffered.is_empty() && !self.done {
            let rows = tx.raw().query_portal(&self.portal, PORTAL_ROWS)?;
            self.done = rows.len() < PORTAL_ROWS as usize;
            self.buffered.extend(rows);
        }
        Ok(self.buffered.front())
    }

    fn next(&mut self, tx: &mut Tx<'_>) -> Result<Option<Row>, HqError> {
        self.peek(tx)?;
        Ok(self.buffered.pop_front())
    }

    /// The next rows whose first column is `id` (the query orders by it).
    fn rows_of(&mut self, tx: &mut Tx<'_>, id: i64) -> Result<Vec<Row>, HqError> {
        let mut rows = Vec::new();
        loop {
            let next = match self.peek(tx)? {
                Some(row) => row.get::<_, i64>(0),
                None => return Ok(rows),
            };
            if next > id {
                return Ok(rows);
            }
            if let Some(row) = self.buffered.pop_front()
                && next == id
            {
                rows.push(row);
            }
        }
    }
}

/// Streams the store's bootstrap records ([`Storage::snapshot`]) through
/// portals: members merged with their cards, preferences and keys in
/// member order, baskets folded as their lines arrive. Memory holds one
/// portal page per table and one chunk, whatever the partition's size.
fn snapshot(
    tx: &mut Tx<'_>,
    store_id: i64,
    history_days: u32,
    sink: &mut dyn SnapshotSink,
) -> Result<Option<SnapshotHead>, HqError> {
    let cursor = head(tx)?;
    if !sink.begin(cursor)? {
        return Ok(None);
    }
    let ids: Vec<i64> = tx
        .query("SELECT store_id FROM stores ORDER BY store_id", &[])?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for id in ids {
        if let Some(store) = records::read_store(tx, id)? {
            sink.record(Change::Store(store))?;
        }
    }
    let mut products = Portal::open(
        tx,
        &format!(
            "SELECT {} FROM products ORDER BY product_id",
            records::PRODUCT_COLUMNS
        ),
        &[],
    )?;
    while let Some(row) = products.next(tx)? {
        sink.record(Change::Product(records::product_from_row(&row)?))?;
    }
    let mut prices = Portal::open(
        tx,
        &format!(
            "SELECT {} FROM store_products WHERE store_id = $1 ORDER BY product_id",
            records::STORE_PRODUCT_COLUMNS
        ),
        &[&store_id],
    )?;
    while let Some(row) = prices.next(tx)? {
        sink.record(Change::StoreProduct(records::store_product_from_row(&row)?))?;
    }
    for row in tx.query(
        &format!(
            "SELECT {} FROM associates WHERE store_id = $1 ORDER BY staff_id",
            records::ASSOCIATE_COLUMNS
        ),
        &[&store_id],
    )? {
        sink.record(Change::Associate(records::associate_from_row(&row)?))?;
    }
    stream_members(tx, store_id, sink)?;
    // The partition's members' recent baskets, wherever they shopped.
    // From the start of the day `history_days` before the newest basket's.
    let since: Option<String> = tx
        .query_one(
            "SELECT to_char(left(max(purchased_at), 10)::date - $1::int, 'YYYY-MM-DD') FROM baskets",
            &[&i32::try_from(history_days).unwrap_or(i32::MAX)],
        )?
        .get(0);
    if let Some(since) = since {
        let mut baskets = Portal::open(
            tx,
            &format!(
                "SELECT {} FROM store_members AS s
                 JOIN members AS m ON m.member_id = s.member_id AND m.erased_at IS NULL
                 JOIN baskets AS b ON b.member_id = s.member_id
                 JOIN purchase_lines AS l ON l.basket_id = b.basket_id
                 WHERE s.store_id = $1 AND b.purchased_at >= $2
                 ORDER BY b.basket_id, l.line_no",
                records::BASKET_LINE_COLUMNS
            ),
            &[&store_id, &since],
        )?;
        let mut current = None;
        while let Some(row) = baskets.next(tx)? {
            if let Some(done) = records::fold_basket_row(&row, &mut current)? {
                sink.record(Change::Basket(done))?;
            }
        }
        if let Some(done) = current {
            sink.record(Change::Basket(done))?;
        }
    }
    let ids: Vec<i64> = tx
        .query(
            "SELECT campaign_id FROM campaigns ORDER BY campaign_id",
            &[],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for id in ids {
        if let Some(campaign) = records::read_campaign(tx, id)? {
            sink.record(for_store(tx, store_id, Change::Campaign(campaign))?)?;
        }
    }
    let ids: Vec<i64> = tx
        .query("SELECT coupon_id FROM coupons ORDER BY coupon_id", &[])?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for id in ids {
        if let Some(coupon) = records::read_coupon(tx, id)? {
            sink.record(Change::Coupon(coupon))?;
        }
    }
    Ok(Some(SnapshotHead {
        cursor,
        model: model_info_recommend(tx)?,
        offer_model: model_info_offers(tx)?,
    }))
}

/// The partition's members, each with cards, preferences, app-code keys and
/// coupon instances: four ordered scans merged.
fn stream_members(
    tx: &mut Tx<'_>,
    store_id: i64,
    sink: &mut dyn SnapshotSink,
) -> Result<(), HqError> {
    let columns = records::MEMBER_COLUMNS
        .split(", ")
        .map(|c| format!("m.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut members = Portal::open(
        tx,
        &format!(
            "SELECT {columns} FROM store_members AS s JOIN members AS m ON m.member_id = s.member_id
             WHERE s.store_id = $1 AND m.erased_at IS NULL ORDER BY m.member_id"
        ),
        &[&store_id],
    )?;
    let mut cards = Portal::open(
        tx,
        "SELECT c.member_id, card_number, status, issued_on
         FROM store_members AS s JOIN member_cards AS c ON c.member_id = s.member_id
         WHERE s.store_id = $1 ORDER BY c.member_id, card_number",
        &[&store_id],
    )?;
    let mut preferences = Portal::open(
        tx,
        "SELECT p.member_id, kind, value
         FROM store_members AS s JOIN member_preferences AS p ON p.member_id = s.member_id
         WHERE s.store_id = $1 ORDER BY p.member_id, kind, value",
        &[&store_id],
    )?;
    let mut keys = Portal::open(
        tx,
        "SELECT k.member_id, key_id, public_key, created_at
         FROM store_members AS s JOIN member_keys AS k ON k.member_id = s.member_id
         WHERE s.store_id = $1 ORDER BY k.member_id, key_id",
        &[&store_id],
    )?;
    let mut holders: Vec<i64> = tx
        .query(
            "SELECT DISTINCT i.bound_member_id FROM store_members AS s
             JOIN coupon_issues AS i ON i.bound_member_id = s.member_id WHERE s.store_id = $1",
            &[&store_id],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    holders.sort_unstable();
    while let Some(row) = members.next(tx)? {
        let mut member = records::member_from_row(&row)?;
        let id = member.member_id;
        member.cards = cards
            .rows_of(tx, id)?
            .iter()
            .map(|row| records::card_from_row(row, 1))
            .collect::<Result<Vec<CardRecord>, _>>()?;
        member.preferences = preferences
            .rows_of(tx, id)?
            .iter()
            .map(|row| Preference {
                kind: row.get(1),
                value: row.get(2),
            })
            .collect();
        member.code_keys = Some(
            keys.rows_of(tx, id)?
                .iter()
                .map(|row| records::code_key_from_row(row, 1))
                .collect::<Result<Vec<CodeKeyRecord>, _>>()?,
        );
        if holders.binary_search(&id).is_ok() {
            let coupons = records::read_instances(tx, id)?;
            member.coupons = (!coupons.is_empty()).then_some(coupons);
        }
        sink.record(Change::Member(member))?;
    }
    Ok(())
}
