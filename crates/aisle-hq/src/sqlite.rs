//! HQ's embedded storage ([`SqliteStorage`]): one SQLCipher file in HQ's
//! data folder holding the master data (the replica schema, loaded with the
//! same importers as a store) plus HQ's own tables (`migrations/hq/`):
//! devices, store partitions, the change feed, the store event log and the
//! quarantine of events HQ refused. One writer connection behind a mutex
//! (SQLite's single writer: feed positions are numbered in commit order),
//! read-only connections from a small pool.

use aisle_core::time::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aisle_core::import::{ImportOptions, ImportReport, Source};
use aisle_core::replica::Migration;
use aisle_core::sync::records;
use aisle_proto::events::{QuarantineList, QuarantinedEvent, RawEvent, RejectCode, Rejection};
use aisle_proto::{
    AdminAuditEntry, AdminAuditList, AssociateRecord, CampaignRecord, CardRecord, Change,
    ChangeBatch, CouponRecord, DeviceKind, DeviceRegistration, Enrolment, EventAck, MemberRecord,
    PROTOCOL_VERSION, Preference, StoreEvent,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::checks::Outcome;
use crate::storage::{
    Device, Enrolled, HqError, Importer, LoggedEvent, Looked, LookupProof, NewAssociate, Scope,
    Showcase, SnapshotHead, SnapshotSink, Storage, check_device_id, new_secret, secret_matches,
    sha256_hex,
};

/// HQ's own migrations, applied on top of the replica schema.
pub const HQ_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_hq.sql",
        sql: include_str!("../../../migrations/hq/0001_hq.sql"),
    },
    Migration {
        version: 2,
        name: "0002_coupons.sql",
        sql: include_str!("../../../migrations/hq/0002_coupons.sql"),
    },
    Migration {
        version: 3,
        name: "0003_quarantine.sql",
        sql: include_str!("../../../migrations/hq/0003_quarantine.sql"),
    },
    Migration {
        version: 4,
        name: "0004_device_trust.sql",
        sql: include_str!("../../../migrations/hq/0004_device_trust.sql"),
    },
    Migration {
        version: 5,
        name: "0005_erasure.sql",
        sql: include_str!("../../../migrations/hq/0005_erasure.sql"),
    },
    Migration {
        version: 6,
        name: "0006_throttles.sql",
        sql: include_str!("../../../migrations/hq/0006_throttles.sql"),
    },
    Migration {
        version: 7,
        name: "0007_never_issued.sql",
        sql: include_str!("../../../migrations/hq/0007_never_issued.sql"),
    },
    Migration {
        version: 8,
        name: "0008_admin_plane.sql",
        sql: include_str!("../../../migrations/hq/0008_admin_plane.sql"),
    },
];

/// Opens (creating and migrating) HQ's database: the writer connection.
pub fn open(path: &Path) -> Result<Connection, HqError> {
    let mut conn = aisle_core::replica::open_writer(path)?;
    // What a transaction deletes is overwritten, not left in free space:
    // an erased member's record must not stay readable in the file.
    conn.pragma_update(None, "secure_delete", true)?;
    aisle_core::replica::migrate_addon(&mut conn, path, "hq_migrations", HQ_MIGRATIONS)?;
    Ok(conn)
}

/// A read-only connection (after [`open`] has migrated the file).
fn open_reader(path: &Path) -> Result<Connection, HqError> {
    Ok(aisle_core::replica::open_reader(path)?)
}

/// Registers a device for a store and returns its secret (shown once).
fn register_device(
    conn: &Connection,
    device_id: &str,
    store_id: i64,
    kind: DeviceKind,
    now: Timestamp,
) -> Result<String, HqError> {
    check_registration(conn, device_id, store_id)?;
    let (secret, digest) = new_secret()?;
    let inserted = conn.execute(
        "INSERT INTO devices (device_id, store_id, secret_sha256, created_at, kind) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (device_id) DO NOTHING",
        params![device_id, store_id, digest, now, kind.name()],
    )?;
    if inserted == 0 {
        return Err(HqError::Invalid(format!(
            "device {device_id} is already registered"
        )));
    }
    Ok(secret)
}

/// Whether a device `device_id` of `store_id` may be registered: a
/// well-formed id not registered yet, a store HQ knows.
fn check_registration(conn: &Connection, device_id: &str, store_id: i64) -> Result<(), HqError> {
    check_device_id(device_id)?;
    if records::read_store(conn, store_id)?.is_none() {
        return Err(HqError::NotFound(format!(
            "store {store_id} is not in HQ's master data"
        )));
    }
    let known = conn
        .prepare_cached("SELECT 1 FROM devices WHERE device_id = ?1")?
        .exists([device_id])?;
    if known {
        return Err(HqError::Invalid(format!(
            "device {device_id} is already registered"
        )));
    }
    Ok(())
}

/// Revokes a device: every later request of it is refused, and its coupon
/// issuing keys are revoked in every store's feed (a stolen device's key
/// signs nothing new that a store accepts).
fn revoke_device(conn: &mut Connection, device_id: &str, now: Timestamp) -> Result<(), HqError> {
    let tx = conn.transaction()?;
    let store_id: Option<i64> = tx
        .query_row(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, ?2) WHERE device_id = ?1
             RETURNING store_id",
            params![device_id, now],
            |row| row.get(0),
        )
        .optional()?;
    let Some(store_id) = store_id else {
        return Err(HqError::NotFound(format!(
            "device {device_id} is not registered"
        )));
    };
    if revoke_device_keys(&tx, store_id, device_id, now)? > 0 {
        publish_store_keys(&tx, store_id, now)?;
    }
    tx.commit()?;
    Ok(())
}

/// Revokes a device's issuing keys not revoked yet, from `now`: how many.
fn revoke_device_keys(
    tx: &Transaction<'_>,
    store_id: i64,
    device_id: &str,
    now: Timestamp,
) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE coupon_issuers SET revoked_at = ?3
         WHERE store_id = ?1 AND device_id = ?2 AND revoked_at IS NULL",
        params![store_id, device_id, now],
    )
}

/// Sends the store's record, with its issuing keys, to every store.
fn publish_store_keys(tx: &Transaction<'_>, store_id: i64, now: Timestamp) -> Result<(), HqError> {
    if let Some(store) = records::read_store(tx, store_id)? {
        log_change(tx, Scope::All, &Change::Store(store), now)?;
    }
    Ok(())
}

/// Registers the public half of a device's own coupon issuing key: numbered
/// after the store's keys, published to every store; the device's earlier
/// keys are revoked from now on (a rotation). Registering the same key
/// again answers its key id.
fn register_coupon_key(
    conn: &mut Connection,
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
    let tx = conn.transaction()?;
    let existing: Option<i64> = tx
        .query_row(
            "SELECT key_id FROM coupon_issuers
             WHERE store_id = ?1 AND device_id = ?2 AND public_key = ?3 AND revoked_at IS NULL",
            params![
                device.store_id,
                device.device_id,
                public.as_bytes().as_slice()
            ],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(key_id) = existing {
        return Ok(key_id);
    }
    // Key 1 was the store-wide key of before device keys.
    let key_id: i64 = tx.query_row(
        "SELECT max(coalesce(max(key_id), 0), 1) + 1 FROM coupon_issuers WHERE store_id = ?1",
        [device.store_id],
        |row| row.get(0),
    )?;
    revoke_device_keys(&tx, device.store_id, &device.device_id, now)?;
    aisle_core::keys::add_issuer(&tx, device.store_id, key_id, &public, now)?;
    tx.execute(
        "UPDATE coupon_issuers SET device_id = ?3 WHERE store_id = ?1 AND key_id = ?2",
        params![device.store_id, key_id, device.device_id],
    )?;
    publish_store_keys(&tx, device.store_id, now)?;
    tx.commit()?;
    Ok(key_id)
}

/// Retires the store-wide coupon keys of before device keys (derived from
/// HQ's seed and handed to every device of a store, kiosks included): from
/// now on their tokens are good only for instances stores already hold.
/// Idempotent; run when HQ opens its database.
fn retire_store_keys(conn: &mut Connection, now: Timestamp) -> Result<usize, HqError> {
    let tx = conn.transaction()?;
    let stores: Vec<i64> = tx
        .prepare(
            "UPDATE coupon_issuers SET revoked_at = ?1
             WHERE device_id IS NULL AND revoked_at IS NULL RETURNING store_id",
        )?
        .query_map([now], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut distinct = stores.clone();
    distinct.sort_unstable();
    distinct.dedup();
    for store_id in &distinct {
        publish_store_keys(&tx, *store_id, now)?;
    }
    tx.commit()?;
    Ok(stores.len())
}

/// An active device whose secret matches.
fn authenticate(
    conn: &Connection,
    device_id: &str,
    secret: &str,
) -> rusqlite::Result<Option<Device>> {
    let row: Option<(i64, String, String)> = conn
        .prepare_cached("SELECT store_id, secret_sha256, kind FROM devices WHERE device_id = ?1 AND revoked_at IS NULL")?
        .query_row([device_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    Ok(row.and_then(|(store_id, expected, kind)| {
        // A kind the CHECK constraint allows always parses.
        let kind = DeviceKind::parse(&kind)?;
        secret_matches(secret, &expected).then(|| Device {
            device_id: device_id.to_owned(),
            store_id,
            kind,
        })
    }))
}

/// Fills store partitions from the master data: each member belongs to their
/// home store and to every store they shopped at. Idempotent.
fn refresh_partitions(conn: &Connection) -> rusqlite::Result<usize> {
    let home = conn.execute(
        "INSERT OR IGNORE INTO store_members (store_id, member_id)
         SELECT home_store_id, member_id FROM members
         WHERE home_store_id IS NOT NULL AND erased_at IS NULL",
        [],
    )?;
    let seen = conn.execute(
        "INSERT OR IGNORE INTO store_members (store_id, member_id)
         SELECT DISTINCT b.store_id, b.member_id FROM baskets AS b JOIN members AS m USING (member_id)
         WHERE m.erased_at IS NULL",
        [],
    )?;
    Ok(home + seen)
}

/// Appends a change to the feed (inside the transaction making it).
pub fn log_change(
    tx: &Transaction<'_>,
    scope: Scope,
    change: &Change,
    now: Timestamp,
) -> Result<i64, HqError> {
    let (name, store_id, member_id) = match scope {
        Scope::All => ("all", None, None),
        Scope::Store(id) => ("store", Some(id), None),
        Scope::Member(id) => ("member", None, Some(id)),
    };
    let body = serde_json::to_string(change).map_err(|err| HqError::Invalid(err.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO changes (scope, store_id, member_id, body, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![name, store_id, member_id, body, now])?;
    Ok(tx.last_insert_rowid())
}

/// The newest feed position.
fn head(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|h| h as u64)
}

fn in_partition(conn: &Connection, store_id: i64, member_id: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM store_members WHERE store_id = ?1 AND member_id = ?2")?
        .exists([store_id, member_id])
}

/// Narrows a change to what one store may see (campaign targets outside its partition go).
fn for_store(conn: &Connection, store_id: i64, change: Change) -> rusqlite::Result<Change> {
    Ok(match change {
        Change::Campaign(mut campaign) => {
            let mut kept = Vec::with_capacity(campaign.targets.len());
            for member_id in campaign.targets {
                if in_partition(conn, store_id, member_id)? {
                    kept.push(member_id);
                }
            }
            campaign.targets = kept;
            Change::Campaign(campaign)
        }
        other => other,
    })
}

/// The store's changes after `after`, at most `limit`, read in one snapshot.
fn changes_after(
    conn: &mut Connection,
    store_id: i64,
    after: u64,
    limit: usize,
) -> Result<ChangeBatch, HqError> {
    let tx = conn.transaction()?;
    let head = head(&tx)?;
    if after > head {
        return Err(HqError::CursorAhead {
            cursor: after,
            head,
        });
    }
    let mut rows: Vec<(i64, String)> = tx
        .prepare_cached(
            "SELECT seq, body FROM changes
             WHERE seq > ?1 AND (scope = 'all'
                OR (scope = 'store' AND store_id = ?2)
                OR (scope = 'member' AND EXISTS (SELECT 1 FROM store_members AS s
                     WHERE s.store_id = ?2 AND s.member_id = changes.member_id)))
             ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![after as i64, store_id, limit as i64 + 1], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let to_cursor = if more {
        rows.last().map_or(after, |(seq, _)| *seq as u64)
    } else {
        head
    };
    let mut changes = Vec::with_capacity(rows.len());
    for (seq, body) in rows {
        let change: Change = serde_json::from_str(&body)
            .map_err(|err| HqError::Invalid(format!("feed entry {seq} is unreadable: {err}")))?;
        changes.push(for_store(&tx, store_id, change)?);
    }
    Ok(ChangeBatch {
        protocol: PROTOCOL_VERSION,
        store_id,
        from_cursor: after,
        to_cursor,
        more,
        changes,
    })
}

/// Streams the store's bootstrap records into `sink` ([`Storage::snapshot`]),
/// everything read in one read transaction, consistent with the cursor it names.
fn snapshot(
    conn: &mut Connection,
    store_id: i64,
    history_days: u32,
    sink: &mut dyn SnapshotSink,
) -> Result<Option<SnapshotHead>, HqError> {
    let tx = conn.transaction()?;
    let cursor = head(&tx)?;
    if !sink.begin(cursor)? {
        return Ok(None);
    }
    let mut stmt = tx.prepare("SELECT store_id FROM stores ORDER BY store_id")?;
    let ids: Vec<i64> = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        if let Some(store) = records::read_store(&tx, id)? {
            sink.record(Change::Store(store))?;
        }
    }
    let mut stmt = tx.prepare(&format!(
        "SELECT {} FROM products ORDER BY product_id",
        records::PRODUCT_COLUMNS
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        sink.record(Change::Product(records::product_from_row(row)?))?;
    }
    let mut stmt = tx.prepare(
        "SELECT store_id, product_id, price_cents, stock_qty, location, updated_at
         FROM store_products WHERE store_id = ?1 ORDER BY product_id",
    )?;
    let mut rows = stmt.query([store_id])?;
    while let Some(row) = rows.next()? {
        sink.record(Change::StoreProduct(records::store_product_from_row(row)?))?;
    }
    let mut stmt = tx.prepare(&format!(
        "SELECT {} FROM associates WHERE store_id = ?1 ORDER BY staff_id",
        records::ASSOCIATE_COLUMNS
    ))?;
    let mut rows = stmt.query([store_id])?;
    while let Some(row) = rows.next()? {
        sink.record(Change::Associate(records::associate_from_row(row)?))?;
    }
    stream_members(&tx, store_id, sink)?;
    // The partition's members' recent baskets, wherever they shopped.
    let mut stmt = tx.prepare(&format!(
        "SELECT {} FROM store_members AS s
         JOIN members AS m ON m.member_id = s.member_id AND m.erased_at IS NULL
         JOIN baskets AS b ON b.member_id = s.member_id
         JOIN purchase_lines AS l ON l.basket_id = b.basket_id
         WHERE s.store_id = ?1 AND b.purchased_at >= (SELECT date(max(purchased_at), ?2) FROM baskets)
         ORDER BY b.basket_id, l.line_no",
        records::BASKET_LINE_COLUMNS
    ))?;
    let mut rows = stmt.query(params![store_id, format!("-{history_days} days")])?;
    records::fold_baskets(&mut rows, |basket| sink.record(Change::Basket(basket)))?;
    let ids: Vec<i64> = tx
        .prepare("SELECT campaign_id FROM campaigns ORDER BY campaign_id")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        if let Some(campaign) = records::read_campaign(&tx, id)? {
            sink.record(for_store(&tx, store_id, Change::Campaign(campaign))?)?;
        }
    }
    let ids: Vec<i64> = tx
        .prepare("SELECT coupon_id FROM coupons ORDER BY coupon_id")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        if let Some(coupon) = records::read_coupon(&tx, id)? {
            sink.record(Change::Coupon(coupon))?;
        }
    }
    Ok(Some(SnapshotHead {
        cursor,
        model: newest_model(&tx)?,
        offer_model: newest_offer_model(&tx)?,
    }))
}

/// HQ's newest recommendation model, described for stores.
fn newest_model(conn: &Connection) -> rusqlite::Result<Option<aisle_proto::ModelInfo>> {
    Ok(
        aisle_core::recommend::artifact::newest_shipped(conn)?.map(|shipped| {
            aisle_proto::ModelInfo {
                artifact_id: shipped.artifact_id,
                kind: aisle_proto::ModelInfo::RECOMMEND.into(),
                format_version: shipped.format_version,
                trained_until: shipped.trained_until,
                created_at: shipped.created_at,
                sha256: sha256_hex(&shipped.bytes),
                bytes: shipped.bytes.len() as u64,
            }
        }),
    )
}

/// HQ's newest offer model, described for stores.
fn newest_offer_model(conn: &Connection) -> rusqlite::Result<Option<aisle_proto::ModelInfo>> {
    Ok(
        aisle_core::offers::model::shipped(conn, None)?.map(|shipped| aisle_proto::ModelInfo {
            artifact_id: shipped.model_id,
            kind: aisle_proto::ModelInfo::OFFERS.into(),
            format_version: shipped.format_version as u32,
            trained_until: shipped.trained_until,
            created_at: shipped.created_at,
            sha256: sha256_hex(&shipped.bytes),
            bytes: shipped.bytes.len() as u64,
        }),
    )
}

/// Fits the offer model, P(redeem), on every store's campaigns and
/// purchases before `until` [default: the day after the newest purchase],
/// stores it, and publishes it to every store through the feed.
fn train_offers_and_publish(
    conn: &mut Connection,
    until: Option<&str>,
    now: Timestamp,
) -> Result<aisle_proto::ModelInfo, HqError> {
    let until = match until {
        Some(day) => day.to_owned(),
        None => aisle_core::offers::model::day_after_data(conn)?
            .ok_or_else(|| HqError::Invalid("HQ holds no purchases to learn from".into()))?,
    };
    let fitted = aisle_core::offers::model::fit_from(conn, &until)
        .map_err(|err| HqError::Invalid(err.to_string()))?;
    let tx = conn.transaction()?;
    aisle_core::offers::model::store(&tx, &fitted, now)
        .map_err(|err| HqError::Invalid(err.to_string()))?;
    let info =
        newest_offer_model(&tx)?.ok_or_else(|| HqError::NotFound("the stored model".into()))?;
    log_change(&tx, Scope::All, &Change::Model(info.clone()), now)?;
    tx.commit()?;
    Ok(info)
}

/// Fits a recommendation model on HQ's purchases (all stores), stores it,
/// and publishes it to every store through the feed.
fn train_and_publish(
    conn: &mut Connection,
    until: Option<&str>,
    seed: u64,
    now: Timestamp,
) -> Result<aisle_proto::ModelInfo, HqError> {
    let artifact = aisle_core::recommend::artifact::fit_from(conn, until, seed, now)
        .map_err(|err| HqError::Invalid(err.to_string()))?;
    let tx = conn.transaction()?;
    aisle_core::recommend::artifact::store(&tx, &artifact)
        .map_err(|err| HqError::Invalid(err.to_string()))?;
    let info = newest_model(&tx)?.ok_or_else(|| HqError::NotFound("the stored model".into()))?;
    log_change(&tx, Scope::All, &Change::Model(info.clone()), now)?;
    tx.commit()?;
    Ok(info)
}

/// Streams every member of a store's partition with cards, preferences,
/// app-code keys and coupon instances into `sink`: four scans in member
/// order stepped side by side (one member in memory at a time, not the
/// partition).
fn stream_members(
    conn: &Connection,
    store_id: i64,
    sink: &mut dyn SnapshotSink,
) -> Result<(), HqError> {
    /// One side scan in member order: each row's member id and record.
    struct Side<'s, T> {
        rows: rusqlite::Rows<'s>,
        read: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        /// The row read ahead of the member it belongs to.
        ahead: Option<(i64, T)>,
        done: bool,
    }
    impl<T> Side<'_, T> {
        /// The records of `member_id`, in order.
        fn of(&mut self, member_id: i64) -> rusqlite::Result<Vec<T>> {
            let mut out = Vec::new();
            loop {
                if self.ahead.is_none() && !self.done {
                    match self.rows.next()? {
                        Some(row) => self.ahead = Some((row.get(0)?, (self.read)(row)?)),
                        None => self.done = true,
                    }
                }
                match self.ahead.take() {
                    Some((id, _)) if id < member_id => {}
                    Some((id, record)) if id == member_id => out.push(record),
                    other => {
                        self.ahead = other;
                        return Ok(out);
                    }
                }
            }
        }
    }
    let mut members = conn.prepare(&format!(
        "SELECT {} FROM store_members AS s JOIN members AS m ON m.member_id = s.member_id
             WHERE s.store_id = ?1 AND m.erased_at IS NULL ORDER BY m.member_id",
        records::MEMBER_COLUMNS.replace("member_id,", "m.member_id,")
    ))?;
    let mut cards = conn.prepare(
        "SELECT c.member_id, card_number, status, issued_on
         FROM store_members AS s JOIN member_cards AS c ON c.member_id = s.member_id
         WHERE s.store_id = ?1 ORDER BY c.member_id, card_number",
    )?;
    let mut preferences = conn.prepare(
        "SELECT p.member_id, kind, value
         FROM store_members AS s JOIN member_preferences AS p ON p.member_id = s.member_id
         WHERE s.store_id = ?1 ORDER BY p.member_id, kind, value",
    )?;
    let mut keys = conn.prepare(
        "SELECT k.member_id, key_id, public_key, created_at
         FROM store_members AS s JOIN member_keys AS k ON k.member_id = s.member_id
         WHERE s.store_id = ?1 ORDER BY k.member_id, key_id",
    )?;
    let mut holders: Vec<i64> = conn
        .prepare(
            "SELECT DISTINCT i.bound_member_id FROM store_members AS s
             JOIN coupon_issues AS i ON i.bound_member_id = s.member_id WHERE s.store_id = ?1",
        )?
        .query_map([store_id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    holders.sort_unstable();
    let mut cards = Side {
        rows: cards.query([store_id])?,
        read: |row| {
            Ok(CardRecord {
                card_number: row.get(1)?,
                status: row.get(2)?,
                issued_on: row.get(3)?,
            })
        },
        ahead: None,
        done: false,
    };
    let mut preferences = Side {
        rows: preferences.query([store_id])?,
        read: |row| {
            Ok(Preference {
                kind: row.get(1)?,
                value: row.get(2)?,
            })
        },
        ahead: None,
        done: false,
    };
    let mut keys = Side {
        rows: keys.query([store_id])?,
        read: |row| {
            Ok(aisle_proto::CodeKeyRecord {
                key_id: row.get(1)?,
                public_key: hex::encode(row.get::<_, Vec<u8>>(2)?),
                created_at: row.get(3)?,
                revoked_at: None,
            })
        },
        ahead: None,
        done: false,
    };
    let mut rows = members.query([store_id])?;
    while let Some(row) = rows.next()? {
        let mut member = records::member_from_row(row)?;
        let id = member.member_id;
        member.cards = cards.of(id)?;
        member.preferences = preferences.of(id)?;
        member.code_keys = Some(keys.of(id)?);
        if holders.binary_search(&id).is_ok() {
            let coupons = aisle_core::offers::ledger::read_instances(conn, id)?;
            member.coupons = (!coupons.is_empty()).then_some(coupons);
        }
        sink.record(Change::Member(member))?;
    }
    Ok(())
}

/// Records uploaded events once each and applies them, each in its own
/// savepoint of one transaction. An event HQ refuses (see [`refusal`]), or
/// whose effects its database refuses, is rolled back alone and kept in the
/// quarantine; the events behind it go on. Returns every key HQ now holds
/// from this upload (applied, seen before or quarantined) and the
/// rejected ones with their reasons.
fn record_events(
    conn: &mut Connection,
    device: &Device,
    events: &[RawEvent],
    now: Timestamp,
) -> Result<EventAck, HqError> {
    let tx = conn.transaction()?;
    let ack = crate::checks::acknowledge(events, |event| record_event(&tx, device, event, now))?;
    tx.commit()?;
    Ok(ack)
}

fn record_event(
    tx: &Transaction<'_>,
    device: &Device,
    event: &RawEvent,
    now: Timestamp,
) -> Result<Outcome, HqError> {
    let (device_id, store_id) = (device.device_id.as_str(), device.store_id);
    let key = event.idempotency_key.as_str();
    // Seen before: recorded (NULL code) or quarantined (its code and reason).
    let seen: Option<(Option<String>, Option<String>)> = tx
        .prepare_cached(
            "SELECT NULL, NULL FROM store_events WHERE idempotency_key = ?1
             UNION ALL
             SELECT reason_code, reason FROM event_quarantine WHERE idempotency_key = ?1
             LIMIT 1",
        )?
        .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    match seen {
        Some((Some(code), reason)) => {
            return Ok(Outcome::Rejected {
                code,
                reason: reason.unwrap_or_default(),
            });
        }
        Some((None, _)) => return Ok(Outcome::Duplicate),
        None => {}
    }
    let typed = match StoreEvent::decode(&event.kind, &event.payload) {
        Ok(typed) => typed,
        Err(err) => return quarantine(tx, device_id, store_id, event, &err.rejection(), now),
    };
    // Who may say this first: a refusal for data reasons (an unknown
    // member) must not tell a device what lies outside its partition.
    if let Some(rejection) = crate::checks::unauthorized(&mut Facts(tx), device, &typed)? {
        return quarantine(tx, device_id, store_id, event, &rejection, now);
    }
    if let Some(rejection) = crate::checks::refusal(&mut Facts(tx), &typed)? {
        return quarantine(tx, device_id, store_id, event, &rejection, now);
    }
    tx.execute_batch("SAVEPOINT store_event")?;
    let applied = tx
        .prepare_cached(
            "INSERT INTO store_events (idempotency_key, device_id, store_id, seq, kind, payload, created_at, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                key,
                device_id,
                store_id,
                event.seq,
                typed.kind().name(),
                event.payload.to_string(),
                event.created_at,
                now
            ])
        })
        .map_err(HqError::from)
        .and_then(|_| apply_event(tx, store_id, &typed, &event.created_at, now));
    match applied {
        Ok(()) => {
            tx.execute_batch("RELEASE store_event")?;
            Ok(Outcome::Applied)
        }
        Err(err) if refused_by_data(&err) => {
            tx.execute_batch("ROLLBACK TO store_event; RELEASE store_event")?;
            let rejection = Rejection::new(RejectCode::ApplyFailed, err.to_string());
            quarantine(tx, device_id, store_id, event, &rejection, now)
        }
        Err(err) => {
            // HQ's own trouble (disk, I/O): the whole upload fails and is retried.
            tx.execute_batch("ROLLBACK TO store_event; RELEASE store_event")?;
            Err(err)
        }
    }
}

/// Is this failure the event's fault (its data refused by a rule or a
/// constraint), not HQ's (I/O, a full disk, a busy database)?
fn refused_by_data(err: &HqError) -> bool {
    match err {
        HqError::Invalid(_) | HqError::NotFound(_) => true,
        HqError::Sqlite(err) => {
            err.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
        }
        _ => false,
    }
}

/// Keeps a refused event as received, with its reason; answers it rejected.
fn quarantine(
    tx: &Transaction<'_>,
    device_id: &str,
    store_id: i64,
    event: &RawEvent,
    rejection: &Rejection,
    now: Timestamp,
) -> Result<Outcome, HqError> {
    tracing::warn!(
        key = %event.idempotency_key,
        device_id,
        store_id,
        kind = %event.kind,
        code = rejection.code.as_str(),
        reason = %rejection.reason,
        "store event quarantined"
    );
    tx.prepare_cached(
        "INSERT INTO event_quarantine (idempotency_key, device_id, store_id, seq, kind, payload,
             created_at, reason_code, reason, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        event.idempotency_key,
        device_id,
        store_id,
        event.seq,
        event.kind,
        event.payload.to_string(),
        event.created_at,
        rejection.code.as_str(),
        rejection.reason,
        now
    ])?;
    Ok(Outcome::Rejected {
        code: rejection.code.as_str().to_owned(),
        reason: rejection.reason.clone(),
    })
}

/// [`crate::checks::Facts`] read from a SQLite connection.
struct Facts<'a>(&'a Connection);

impl crate::checks::Facts for Facts<'_> {
    fn in_partition(&mut self, store_id: i64, member_id: i64) -> Result<bool, HqError> {
        Ok(in_partition(self.0, store_id, member_id)?)
    }

    fn associate(&mut self, staff_id: i64) -> Result<Option<AssociateRecord>, HqError> {
        Ok(read_associate(self.0, staff_id)?)
    }

    fn may_sign_with(&mut self, device: &Device, key_id: i64) -> Result<bool, HqError> {
        // One of its own registered keys, or a store-wide key of its store
        // from before device keys.
        Ok(self
            .0
            .prepare_cached(
                "SELECT 1 FROM coupon_issuers WHERE store_id = ?1 AND key_id = ?2
                 AND (device_id = ?3 OR device_id IS NULL)",
            )?
            .exists(params![device.store_id, key_id, device.device_id])?)
    }

    fn member_known(&mut self, member_id: i64) -> Result<bool, HqError> {
        Ok(self
            .0
            .prepare_cached("SELECT 1 FROM members WHERE member_id = ?1")?
            .exists([member_id])?)
    }

    fn coupon_known(&mut self, coupon_id: i64) -> Result<bool, HqError> {
        Ok(self
            .0
            .prepare_cached("SELECT 1 FROM coupons WHERE coupon_id = ?1")?
            .exists([coupon_id])?)
    }

    fn store_known(&mut self, store_id: i64) -> Result<bool, HqError> {
        Ok(self
            .0
            .prepare_cached("SELECT 1 FROM stores WHERE store_id = ?1")?
            .exists([store_id])?)
    }
}

/// The quarantine after `after`, oldest first, at most `limit`.
fn quarantined(conn: &Connection, after: i64, limit: usize) -> Result<QuarantineList, HqError> {
    let mut rows = conn
        .prepare_cached(
            "SELECT quarantine_id, idempotency_key, device_id, store_id, seq, kind, reason_code,
                    reason, created_at, received_at, payload
             FROM event_quarantine WHERE quarantine_id > ?1 ORDER BY quarantine_id LIMIT ?2",
        )?
        .query_map(params![after, limit as i64 + 1], |row| {
            Ok((
                QuarantinedEvent {
                    quarantine_id: row.get(0)?,
                    idempotency_key: row.get(1)?,
                    device_id: row.get(2)?,
                    store_id: row.get(3)?,
                    seq: row.get(4)?,
                    kind: row.get(5)?,
                    code: row.get(6)?,
                    reason: row.get(7)?,
                    created_at: row.get(8)?,
                    received_at: row.get(9)?,
                    payload: serde_json::Value::Null,
                },
                row.get::<_, String>(10)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut events = Vec::with_capacity(rows.len());
    for (mut event, payload) in rows {
        event.payload = serde_json::from_str(&payload).map_err(|err| {
            HqError::Invalid(format!(
                "quarantined event {} is unreadable: {err}",
                event.quarantine_id
            ))
        })?;
        events.push(event);
    }
    let next_after = if more {
        events.last().map(|event| event.quarantine_id)
    } else {
        None
    };
    Ok(QuarantineList { events, next_after })
}

/// The conflict rules (docs/PROTOCOL.md): HQ owns the catalog and offers;
/// member edits from stores merge into the master record and come back to
/// every store holding the member; a consent withdrawal or an erasure always wins.
fn apply_event(
    tx: &Transaction<'_>,
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
    // One indexed look-up, not the whole record: most events (a kiosk visit
    // of a member the store already holds) change nothing else.
    let erased: bool = tx
        .prepare_cached("SELECT erased_at IS NOT NULL FROM members WHERE member_id = ?1")?
        .query_row([member_id], |row| row.get(0))
        .optional()?
        .unwrap_or(true);
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
                tx.prepare_cached("INSERT INTO member_notes (member_id, author, body, created_at) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![member_id, note.author, note.body, created_at])?;
            }
        }
        crate::rules::MemberEffect::Fact => {}
    }
    Ok(())
}

/// The redemption of an instance that counts at HQ (the earliest known).
struct CountedRedemption {
    redemption_id: i64,
    store_id: Option<i64>,
    at: String,
    till_id: Option<String>,
    value_cents: Option<i64>,
}

/// Records a coupon instance or redemption in HQ's ledger (its coupon,
/// serial, channel and stores checked by [`refusal`]). The earliest
/// redemption of an instance wins; any other is an over-redemption, kept in
/// `coupon_over_redemptions` and logged. The member's record (with their
/// instances) then goes to every store holding the member, so a store that
/// syncs refuses an instance redeemed elsewhere and accepts its numeric code.
fn record_coupon_event(
    tx: &Transaction<'_>,
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
                // An instance HQ learns of by its redemption: issued then, at the latest.
                redeemed.redeemed_at.as_str(),
                Some(redeemed),
            ),
            _ => return Ok(()),
        };
    let member_id = Some(member_id);
    let redeemed = redemption.is_some();
    tx.prepare_cached(
        "INSERT INTO coupon_issues (serial, coupon_id, member_id, store_id, channel, issued_at,
             expires_at, key_id, bound_member_id, issue_known)
         VALUES (?1, ?2, (SELECT member_id FROM members WHERE member_id = ?3), ?4, ?5, ?6, ?7, ?8, ?3, ?9)
         ON CONFLICT (serial) DO UPDATE SET issued_at = excluded.issued_at, issue_known = 1 WHERE ?9",
    )?
    .execute(params![
        serial,
        coupon_id,
        member_id,
        issuer,
        channel,
        issued_at,
        expires_at,
        key_id,
        !redeemed
    ])?;
    if let Some(redemption) = redemption {
        let redeemed_at = redemption.redeemed_at.clone();
        let till_id = Some(redemption.till_id.as_str());
        let value_cents = Some(redemption.value_cents);
        let issue_id: i64 = tx
            .prepare_cached("SELECT issue_id FROM coupon_issues WHERE serial = ?1")?
            .query_row([serial], |row| row.get(0))?;
        let first: Option<CountedRedemption> = tx
            .prepare_cached(
                "SELECT redemption_id, store_id, coalesce(redeemed_at, redeemed_on), till_id, value_cents
                 FROM coupon_redemptions WHERE issue_id = ?1",
            )?
            .query_row([issue_id], |row| {
                Ok(CountedRedemption {
                    redemption_id: row.get(0)?,
                    store_id: row.get(1)?,
                    at: row.get(2)?,
                    till_id: row.get(3)?,
                    value_cents: row.get(4)?,
                })
            })
            .optional()?;
        match first {
            None => {
                tx.prepare_cached(
                    "INSERT INTO coupon_redemptions (coupon_id, member_id, issue_id, store_id,
                         redeemed_on, redeemed_at, till_id, value_cents, offline_risk)
                     VALUES (?1, (SELECT member_id FROM members WHERE member_id = ?2), ?3, ?4,
                         substr(?5, 1, 10), ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    coupon_id,
                    member_id,
                    issue_id,
                    store_id,
                    redeemed_at,
                    till_id,
                    value_cents,
                    redemption.offline_risk
                ])?;
            }
            Some(CountedRedemption {
                redemption_id,
                store_id: first_store,
                at: first_at,
                till_id: first_till,
                value_cents: first_value,
            }) => {
                let judged = crate::rules::over_redemption(
                    crate::rules::Redemption {
                        store_id: first_store.unwrap_or_default(),
                        at: first_at,
                        till_id: first_till,
                        value_cents: first_value,
                    },
                    crate::rules::Redemption {
                        store_id,
                        at: redeemed_at,
                        till_id: till_id.map(str::to_owned),
                        value_cents,
                    },
                );
                if judged.arriving_wins {
                    let counted = &judged.counted;
                    tx.prepare_cached(
                        "UPDATE coupon_redemptions SET store_id = ?2, redeemed_on = substr(?3, 1, 10),
                             redeemed_at = ?3, till_id = ?4, value_cents = ?5 WHERE redemption_id = ?1",
                    )?
                    .execute(params![
                        redemption_id,
                        counted.store_id,
                        counted.at,
                        counted.till_id,
                        counted.value_cents
                    ])?;
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
                tx.prepare_cached(
                    "INSERT INTO coupon_over_redemptions (serial, coupon_id, member_id, issuer_store_id,
                         first_store_id, first_redeemed_at, later_store_id, later_redeemed_at,
                         later_till_id, value_cents, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    serial,
                    coupon_id,
                    member_id,
                    issuer,
                    winner.store_id,
                    winner.at,
                    loser.store_id,
                    loser.at,
                    loser.till_id,
                    loser.value_cents,
                    now
                ])?;
            }
        }
    }
    if let Some(member_id) = member_id
        && let Some(member) = records::read_member(tx, member_id)?
    {
        log_change(tx, Scope::Member(member_id), &Change::Member(member), now)?;
    }
    Ok(())
}

/// The reconciliation report: counts and every over-redemption, oldest first.
fn coupon_reconciliation(conn: &Connection) -> rusqlite::Result<aisle_proto::CouponReconciliation> {
    let issued: i64 = conn.query_row(
        "SELECT count(*) FROM coupon_issues WHERE key_id IS NOT NULL",
        [],
        |row| row.get(0),
    )?;
    let redeemed: i64 = conn.query_row(
        "SELECT count(*) FROM coupon_redemptions r JOIN coupon_issues i ON i.issue_id = r.issue_id
         WHERE i.key_id IS NOT NULL",
        [],
        |row| row.get(0),
    )?;
    let over_redemptions: Vec<aisle_proto::OverRedemption> = conn
        .prepare(
            "SELECT serial, coupon_id, member_id, issuer_store_id, first_store_id, first_redeemed_at,
                    later_store_id, later_redeemed_at, later_till_id, value_cents, recorded_at
             FROM coupon_over_redemptions ORDER BY over_id",
        )?
        .query_map([], |row| {
            Ok(aisle_proto::OverRedemption {
                serial: row.get(0)?,
                coupon_id: row.get(1)?,
                member_id: row.get(2)?,
                issuer_store_id: row.get(3)?,
                first_store_id: row.get(4)?,
                first_redeemed_at: row.get(5)?,
                later_store_id: row.get(6)?,
                later_redeemed_at: row.get(7)?,
                later_till_id: row.get(8)?,
                value_cents: row.get(9)?,
                recorded_at: row.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let never_issued: Vec<aisle_proto::NeverIssued> = conn
        .prepare(
            "SELECT i.serial, i.coupon_id, i.store_id, r.store_id, r.redeemed_at, r.till_id, r.value_cents
             FROM coupon_redemptions r JOIN coupon_issues i ON i.issue_id = r.issue_id
             WHERE i.issue_known = 0 ORDER BY r.redemption_id",
        )?
        .query_map([], |row| {
            Ok(aisle_proto::NeverIssued {
                serial: row.get(0)?,
                coupon_id: row.get(1)?,
                issuer_store_id: row.get(2)?,
                store_id: row.get(3)?,
                redeemed_at: row.get(4)?,
                till_id: row.get(5)?,
                value_cents: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for never in &never_issued {
        tracing::warn!(serial = %never.serial, store_id = ?never.store_id, till_id = ?never.till_id, "redeemed coupon HQ never saw issued");
    }
    Ok(aisle_proto::CouponReconciliation {
        issued: issued as u64,
        redeemed: redeemed as u64,
        over_redeemed_cents: over_redemptions.iter().filter_map(|o| o.value_cents).sum(),
        over_redemptions,
        never_issued,
    })
}

/// Writes a member's master record and sends it to every store holding them.
fn save_member(tx: &Transaction<'_>, member: &MemberRecord, now: Timestamp) -> Result<(), HqError> {
    for key in member.code_keys.iter().flatten() {
        aisle_core::keys::parse_strong_public(&key.public_key).map_err(|reason| {
            HqError::Invalid(format!(
                "member {} app-code key {}: {reason}",
                member.member_id, key.key_id
            ))
        })?;
    }
    if records::write_member(tx, member)? {
        if let Some(store_id) = member.home_store_id {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO store_members (store_id, member_id) VALUES (?1, ?2)",
            )?
            .execute([store_id, member.member_id])?;
        }
        let saved = records::read_member(tx, member.member_id)?
            .ok_or_else(|| HqError::NotFound(format!("member {}", member.member_id)))?;
        log_change(
            tx,
            Scope::Member(member.member_id),
            &Change::Member(saved),
            now,
        )?;
        Ok(())
    } else {
        Err(HqError::Invalid(format!(
            "member {} is erased",
            member.member_id
        )))
    }
}

/// Erases a member at HQ and sends the tombstone to every store holding them.
fn erase(tx: &Transaction<'_>, member_id: i64, now: Timestamp) -> Result<(), HqError> {
    aisle_core::members::erase(tx, member_id, now)?;
    scrub_member(tx, member_id, now)?;
    log_change(
        tx,
        Scope::Member(member_id),
        &Change::MemberErased {
            member_id,
            erased_at: now.to_string(),
        },
        now,
    )?;
    Ok(())
}

/// Leaves nothing of `member_id` but the tombstone in HQ's own records (in
/// the erasure's transaction): every earlier feed entry that carried their
/// record now carries the tombstone (a store reading from any position gets
/// the erasure, never the old record), their baskets in the feed lose the
/// member, the events about them keep their non-personal facts only (no
/// note's author or body, no preferences), and quarantined events about them
/// keep only the member id. What lies outside the transaction (snapshot
/// files, the write-ahead log) is queued in `erasure_scrubs` for
/// [`scrub_outside`].
fn scrub_member(tx: &Transaction<'_>, member_id: i64, now: Timestamp) -> Result<(), HqError> {
    let tombstone = serde_json::to_string(&Change::MemberErased {
        member_id,
        erased_at: now.to_string(),
    })
    .map_err(|err| HqError::Invalid(err.to_string()))?;
    for (sql, with_tombstone) in [
        (
            "UPDATE changes SET body = ?2
             WHERE member_id = ?1
                OR (json_extract(body, '$.type') = 'member' AND json_extract(body, '$.member_id') = ?1)",
            true,
        ),
        (
            "UPDATE changes SET body = json_set(body, '$.member_id', NULL)
             WHERE json_extract(body, '$.type') = 'basket' AND json_extract(body, '$.member_id') = ?1",
            false,
        ),
        (
            "UPDATE store_events SET payload = json_remove(payload, '$.author', '$.body', '$.preferences')
             WHERE json_extract(payload, '$.member_id') = ?1",
            false,
        ),
        (
            "UPDATE event_quarantine SET payload = json_object('member_id', ?1)
             WHERE json_extract(payload, '$.member_id') = ?1",
            false,
        ),
    ] {
        let mut statement = tx.prepare_cached(sql)?;
        if with_tombstone {
            statement.execute(params![member_id, tombstone])?;
        } else {
            statement.execute([member_id])?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO erasure_scrubs (member_id, erased_at) VALUES (?1, ?2)
         ON CONFLICT (member_id) DO UPDATE SET scrubbed_at = NULL",
    )?
    .execute(params![member_id, now])?;
    Ok(())
}

/// Whether an erasure's traces outside its transaction are still to be
/// scrubbed (one indexed look-up).
fn scrub_pending(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM erasure_scrubs WHERE scrubbed_at IS NULL LIMIT 1")?
        .exists([])
}

/// After erasures committed (snapshot files already deleted): checkpoints
/// the write-ahead log into the database and truncates it (its frames hold
/// the pages as they were before), and marks the erasures scrubbed. Call
/// with no transaction open on `conn`. `false`: a reader still holds old
/// frames; the next write tries again.
fn scrub_wal(conn: &Connection, now: Timestamp) -> Result<bool, HqError> {
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    if busy != 0 {
        tracing::warn!("erasure scrub: the write-ahead log is in use; truncated at the next write");
        return Ok(false);
    }
    conn.prepare_cached("UPDATE erasure_scrubs SET scrubbed_at = ?1 WHERE scrubbed_at IS NULL")?
        .execute([now])?;
    tracing::info!("erasure scrubbed: snapshots deleted, write-ahead log truncated");
    Ok(true)
}

/// Counts a request refused for going over `device`'s quota of `what`
/// (`lookups` or `events`).
fn record_throttle(
    conn: &Connection,
    device: &Device,
    what: &str,
    now: Timestamp,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO device_throttles (device_id, store_id, what, refused, first_at, last_at)
         VALUES (?1, ?2, ?3, 1, ?4, ?4)
         ON CONFLICT (device_id, what) DO UPDATE SET refused = refused + 1, last_at = excluded.last_at",
    )?
    .execute(params![device.device_id, device.store_id, what, now])?;
    Ok(())
}

/// Devices HQ throttled, the most refused first.
fn throttled(conn: &Connection) -> rusqlite::Result<Vec<aisle_proto::ThrottledDevice>> {
    conn.prepare_cached(
        "SELECT device_id, store_id, what, refused, first_at, last_at FROM device_throttles
         ORDER BY refused DESC, device_id, what",
    )?
    .query_map([], |row| {
        Ok(aisle_proto::ThrottledDevice {
            device_id: row.get(0)?,
            store_id: row.get(1)?,
            what: row.get(2)?,
            refused: row.get(3)?,
            first_at: row.get(4)?,
            last_at: row.get(5)?,
        })
    })?
    .collect()
}

/// Applies an admin change to the master data and logs it for the stores.
fn admin_change(conn: &mut Connection, change: &Change, now: Timestamp) -> Result<u64, HqError> {
    let tx = conn.transaction()?;
    match change {
        Change::Member(member) => save_member(&tx, member, now)?,
        Change::MemberErased { member_id, .. } => erase(&tx, *member_id, now)?,
        Change::StoreProduct(row) => {
            records::apply_change(&tx, change)?;
            if records::read_store_product(&tx, row.store_id, row.product_id)?.is_none() {
                return Err(HqError::NotFound(format!("product {}", row.product_id)));
            }
            log_change(&tx, Scope::Store(row.store_id), change, now)?;
        }
        Change::Basket(basket) => {
            let known = tx
                .prepare_cached("SELECT 1 FROM members WHERE member_id = ?1 AND erased_at IS NULL")?
                .exists([basket.member_id])?;
            if !known {
                return Err(HqError::NotFound(format!("member {}", basket.member_id)));
            }
            records::apply_change(&tx, change)?;
            // The member now belongs to the store they shopped at, too.
            tx.execute(
                "INSERT OR IGNORE INTO store_members (store_id, member_id) VALUES (?1, ?2)",
                [basket.store_id, basket.member_id],
            )?;
            log_change(&tx, Scope::Member(basket.member_id), change, now)?;
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
        Change::Campaign(CampaignRecord { .. })
        | Change::Coupon(CouponRecord { .. })
        | Change::Product(_)
        | Change::Store(_) => {
            records::apply_change(&tx, change)?;
            log_change(&tx, Scope::All, change, now)?;
        }
    }
    let seq = head(&tx)?;
    tx.commit()?;
    Ok(seq)
}

/// Adds or replaces an associate (a new PIN hashed with Argon2id) and sends
/// them to their store; a store they leave receives them inactive.
fn save_associate(
    conn: &mut Connection,
    associate: &NewAssociate<'_>,
    now: Timestamp,
) -> Result<u64, HqError> {
    let record = associate.record(now)?;
    let tx = conn.transaction()?;
    if records::read_store(&tx, associate.store_id)?.is_none() {
        return Err(HqError::NotFound(format!("store {}", associate.store_id)));
    }
    let previous = read_associate(&tx, associate.staff_id)?;
    records::write_associate(&tx, &record)?;
    if let Some(previous) = previous.filter(|p| p.store_id != record.store_id) {
        let left = AssociateRecord {
            active: false,
            updated_at: now.to_string(),
            ..previous
        };
        send_associate(&tx, left, now)?;
    }
    send_associate(&tx, record, now)?;
    let seq = head(&tx)?;
    tx.commit()?;
    Ok(seq)
}

/// An associate leaves: they can no longer sign in anywhere.
fn deactivate_associate(
    conn: &mut Connection,
    staff_id: i64,
    now: Timestamp,
) -> Result<u64, HqError> {
    let tx = conn.transaction()?;
    let record = read_associate(&tx, staff_id)?
        .ok_or_else(|| HqError::NotFound(format!("associate {staff_id}")))?;
    let record = AssociateRecord {
        active: false,
        updated_at: now.to_string(),
        ..record
    };
    records::write_associate(&tx, &record)?;
    send_associate(&tx, record, now)?;
    let seq = head(&tx)?;
    tx.commit()?;
    Ok(seq)
}

/// Logs an associate's record for their store (the only store that holds them).
fn send_associate(
    tx: &Transaction<'_>,
    record: AssociateRecord,
    now: Timestamp,
) -> Result<i64, HqError> {
    log_change(
        tx,
        Scope::Store(record.store_id),
        &Change::Associate(record),
        now,
    )
}

fn read_associate(conn: &Connection, staff_id: i64) -> rusqlite::Result<Option<AssociateRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM associates WHERE staff_id = ?1",
        records::ASSOCIATE_COLUMNS
    ))?
    .query_row([staff_id], records::associate_from_row)
    .optional()
}

/// App-code windows HQ remembers for its replay check: far more than a code
/// can be early or late and still verify.
const REPLAY_WINDOWS_KEPT: i64 = 20;

/// A member for a store that does not hold them yet, on proof of presence:
/// adds them to the device's store partition. Every look-up, answered or
/// refused, leaves a row in `lookup_audit`.
fn lookup(
    conn: &mut Connection,
    device: &Device,
    proof: LookupProof<'_>,
    now: Timestamp,
) -> Result<Looked, HqError> {
    let tx = conn.transaction()?;
    let audit = |tx: &Transaction<'_>, member_id: Option<i64>, outcome: &str| {
        tx.prepare_cached(
            "INSERT INTO lookup_audit (device_id, store_id, proof, member_id, outcome, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            device.device_id,
            device.store_id,
            proof.name(),
            member_id,
            outcome,
            now
        ])
    };
    let refused = |tx: Transaction<'_>, member_id: Option<i64>, why: String| {
        audit(&tx, member_id, "refused")?;
        tx.commit()?;
        tracing::warn!(device_id = %device.device_id, proof = proof.name(), reason = %why, "member look-up refused");
        Err(HqError::Forbidden(why))
    };
    if !device.kind.may_look_up() {
        let why = format!("a {} may not look members up", device.kind.name());
        return refused(tx, None, why);
    }
    let id: Option<i64> = match proof {
        LookupProof::Card(card) => tx
            .prepare_cached(
                "SELECT member_id FROM member_cards WHERE card_number = ?1 AND status = 'active'",
            )?
            .query_row([card], |row| row.get(0))
            .optional()?,
        LookupProof::AppCode(text) => {
            let code = match aisle_core::identify::member_code::parse(text) {
                Ok(code) => code,
                Err(err) => return refused(tx, None, format!("the app code is refused: {err}")),
            };
            let key = aisle_core::keys::code_key(&tx, code.member_id)?;
            let verified = key
                .ok_or(aisle_core::identify::member_code::CodeError::NoKey)
                .and_then(|key| {
                    aisle_core::identify::member_code::verify(
                        &code,
                        &key.public_key,
                        u64::try_from(now.unix()).unwrap_or(0),
                        &aisle_core::identify::member_code::CodePolicy::default(),
                    )
                });
            if let Err(err) = verified {
                return refused(
                    tx,
                    Some(code.member_id),
                    format!("the app code is refused: {err}"),
                );
            }
            // A member's code for a window is always the same text: one
            // look-up per code, so a code seen in passing is no key to the
            // member (the store-side cache is `code_replays` too).
            let window = i64::try_from(code.window).unwrap_or(i64::MAX);
            tx.prepare_cached("DELETE FROM code_replays WHERE code_window < ?1")?
                .execute([window.saturating_sub(REPLAY_WINDOWS_KEPT)])?;
            let fresh = tx
                .prepare_cached(
                    "INSERT INTO code_replays (member_id, code_window, seen_at, device)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )?
                .execute(params![code.member_id, window, now, device.device_id])?;
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
        audit(&tx, None, "unknown")?;
        tx.commit()?;
        return Ok(Looked {
            member: None,
            erased: false,
        });
    };
    let erased: bool = tx
        .prepare_cached("SELECT erased_at IS NOT NULL FROM members WHERE member_id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .unwrap_or(false);
    let member = records::read_member(&tx, id)?;
    if member.is_some() {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO store_members (store_id, member_id) VALUES (?1, ?2)",
        )?
        .execute([device.store_id, id])?;
    }
    audit(
        &tx,
        Some(id),
        if erased {
            "erased"
        } else if member.is_some() {
            "found"
        } else {
            "unknown"
        },
    )?;
    tx.commit()?;
    Ok(Looked { member, erased })
}

/// HQ's storage in one SQLCipher file.
#[derive(Debug)]
pub struct SqliteStorage {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStorage {
    /// Opens (creating and migrating) HQ's database at `path`.
    pub fn open(path: &Path) -> Result<Self, HqError> {
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(open(path)?),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` with the writer connection.
    fn write<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, HqError>,
    ) -> Result<T, HqError> {
        let mut conn = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&mut conn)
    }

    /// Runs `work` with a pooled read-only connection.
    fn read<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, HqError>,
    ) -> Result<T, HqError> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = work(&mut conn);
        let mut pool = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < 16 {
            pool.push(conn);
        }
        result
    }
}

impl Storage for SqliteStorage {
    fn authenticate(&self, device_id: &str, secret: &str) -> Result<Option<Device>, HqError> {
        self.read(|conn| Ok(authenticate(conn, device_id, secret)?))
    }

    fn register_device(
        &self,
        device_id: &str,
        store_id: i64,
        kind: DeviceKind,
        now: Timestamp,
    ) -> Result<String, HqError> {
        self.write(|conn| register_device(conn, device_id, store_id, kind, now))
    }

    fn revoke_device(&self, device_id: &str, now: Timestamp) -> Result<(), HqError> {
        self.write(|conn| revoke_device(conn, device_id, now))
    }

    fn create_enrolment(
        &self,
        registration: &DeviceRegistration,
        created_by: &str,
        valid_secs: i64,
        now: Timestamp,
    ) -> Result<Enrolment, HqError> {
        self.write(|conn| create_enrolment(conn, registration, created_by, valid_secs, now))
    }

    fn redeem_enrolment(&self, code: &str, now: Timestamp) -> Result<Option<Enrolled>, HqError> {
        self.write(|conn| redeem_enrolment(conn, code, now))
    }

    fn register_coupon_key(
        &self,
        device: &Device,
        public_key: &str,
        now: Timestamp,
    ) -> Result<i64, HqError> {
        self.write(|conn| register_coupon_key(conn, device, public_key, now))
    }

    fn retire_store_keys(&self, now: Timestamp) -> Result<usize, HqError> {
        self.write(|conn| retire_store_keys(conn, now))
    }

    fn record_throttle(&self, device: &Device, what: &str, now: Timestamp) -> Result<(), HqError> {
        self.write(|conn| Ok(record_throttle(conn, device, what, now)?))
    }

    fn throttled(&self) -> Result<Vec<aisle_proto::ThrottledDevice>, HqError> {
        self.read(|conn| Ok(throttled(conn)?))
    }

    fn changes_after(
        &self,
        store_id: i64,
        after: u64,
        limit: usize,
    ) -> Result<ChangeBatch, HqError> {
        self.read(|conn| changes_after(conn, store_id, after, limit))
    }

    fn snapshot(
        &self,
        store_id: i64,
        history_days: u32,
        sink: &mut dyn SnapshotSink,
    ) -> Result<Option<SnapshotHead>, HqError> {
        self.read(|conn| snapshot(conn, store_id, history_days, sink))
    }

    fn model_bytes(&self, artifact_id: i64) -> Result<Option<Vec<u8>>, HqError> {
        self.read(|conn| {
            Ok(aisle_core::recommend::artifact::bytes_of(
                conn,
                artifact_id,
            )?)
        })
    }

    fn offer_model_bytes(&self, model_id: i64) -> Result<Option<Vec<u8>>, HqError> {
        self.read(|conn| {
            Ok(aisle_core::offers::model::shipped(conn, Some(model_id))?.map(|s| s.bytes))
        })
    }

    fn record_events(
        &self,
        device: &Device,
        events: &[RawEvent],
        now: Timestamp,
    ) -> Result<EventAck, HqError> {
        self.write(|conn| record_events(conn, device, events, now))
    }

    fn event_log(&self) -> Result<Vec<LoggedEvent>, HqError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT idempotency_key, device_id, seq, kind FROM store_events ORDER BY device_id, seq",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    fn quarantined(&self, after: i64, limit: usize) -> Result<QuarantineList, HqError> {
        self.read(|conn| quarantined(conn, after, limit))
    }

    fn lookup(
        &self,
        device: &Device,
        proof: LookupProof<'_>,
        now: Timestamp,
    ) -> Result<Looked, HqError> {
        self.write(|conn| lookup(conn, device, proof, now))
    }

    fn admin_change(&self, change: &Change, now: Timestamp) -> Result<u64, HqError> {
        self.write(|conn| admin_change(conn, change, now))
    }

    fn save_associate(&self, associate: &NewAssociate<'_>, now: Timestamp) -> Result<u64, HqError> {
        self.write(|conn| save_associate(conn, associate, now))
    }

    fn deactivate_associate(&self, staff_id: i64, now: Timestamp) -> Result<u64, HqError> {
        self.write(|conn| deactivate_associate(conn, staff_id, now))
    }

    fn import(
        &self,
        importer: Importer,
        source: &dyn Source,
        options: &ImportOptions,
    ) -> Result<ImportReport, HqError> {
        let run = match importer {
            Importer::CompleteJourney => aisle_core::import::completejourney::import,
            Importer::Layout => aisle_core::import::layout::import,
        };
        self.write(|conn| {
            let report = aisle_core::import::in_transaction(conn, |tx| {
                run(tx, source, options, &mut aisle_core::import::NoProgress)
            })?;
            refresh_partitions(conn)?;
            Ok(report)
        })
    }

    fn showcase(&self) -> Result<Option<Showcase>, HqError> {
        self.read(|conn| {
            let Some(member_id) = aisle_core::demo::showcase_member(conn)? else {
                return Ok(None);
            };
            let store_id: Option<i64> = conn.query_row(
                "SELECT home_store_id FROM members WHERE member_id = ?1",
                [member_id],
                |row| row.get(0),
            )?;
            Ok(Some(Showcase {
                member_id,
                store_id,
            }))
        })
    }

    fn train(
        &self,
        until: Option<&str>,
        seed: u64,
        now: Timestamp,
    ) -> Result<aisle_proto::ModelInfo, HqError> {
        self.write(|conn| train_and_publish(conn, until, seed, now))
    }

    fn train_offers(
        &self,
        until: Option<&str>,
        now: Timestamp,
    ) -> Result<aisle_proto::ModelInfo, HqError> {
        self.write(|conn| train_offers_and_publish(conn, until, now))
    }

    fn coupon_reconciliation(&self) -> Result<aisle_proto::CouponReconciliation, HqError> {
        self.read(|conn| Ok(coupon_reconciliation(conn)?))
    }

    fn record_admin_call(
        &self,
        token_name: Option<&str>,
        action: &str,
        target: Option<&str>,
        outcome: &str,
        now: Timestamp,
    ) -> Result<(), HqError> {
        self.write(|conn| {
            Ok(record_admin_call(
                conn, token_name, action, target, outcome, now,
            )?)
        })
    }

    fn admin_audit(&self, after: i64, limit: usize) -> Result<AdminAuditList, HqError> {
        self.read(|conn| Ok(admin_audit(conn, after, limit)?))
    }

    fn scrub_pending(&self) -> Result<bool, HqError> {
        self.write(|conn| Ok(scrub_pending(conn)?))
    }

    fn scrub_storage(&self, now: Timestamp) -> Result<bool, HqError> {
        self.write(|conn| scrub_wal(conn, now))
    }

    #[cfg(feature = "bench")]
    fn assign_all_members(&self, store_id: i64) -> Result<usize, HqError> {
        self.write(|conn| {
            Ok(conn.execute(
                "INSERT OR IGNORE INTO store_members (store_id, member_id)
                 SELECT ?1, member_id FROM members WHERE erased_at IS NULL",
                [store_id],
            )?)
        })
    }
}

/// Records one admin call (or admin command).
fn record_admin_call(
    conn: &Connection,
    token_name: Option<&str>,
    action: &str,
    target: Option<&str>,
    outcome: &str,
    now: Timestamp,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO admin_audit (at, token_name, action, target, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![now, token_name, action, target, outcome])?;
    Ok(())
}

/// The admin audit after `after`, oldest first.
fn admin_audit(conn: &Connection, after: i64, limit: usize) -> rusqlite::Result<AdminAuditList> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let entries = conn
        .prepare_cached(
            "SELECT audit_id, at, token_name, action, target, outcome FROM admin_audit
             WHERE audit_id > ?1 ORDER BY audit_id LIMIT ?2",
        )?
        .query_map(params![after, limit], |row| {
            Ok(AdminAuditEntry {
                audit_id: row.get(0)?,
                at: row.get(1)?,
                token_name: row.get(2)?,
                action: row.get(3)?,
                target: row.get(4)?,
                outcome: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(AdminAuditList { entries })
}

fn create_enrolment(
    conn: &mut Connection,
    registration: &DeviceRegistration,
    created_by: &str,
    valid_secs: i64,
    now: Timestamp,
) -> Result<Enrolment, HqError> {
    let tx = conn.transaction()?;
    check_registration(&tx, &registration.device_id, registration.store_id)?;
    let (code, digest) = crate::admin::new_enrolment_code()?;
    let expires_at = crate::admin::enrolment_expiry(now, valid_secs);
    tx.execute(
        "DELETE FROM enrolments WHERE device_id = ?1 AND redeemed_at IS NULL",
        [&registration.device_id],
    )?;
    tx.execute(
        "INSERT INTO enrolments (code_sha256, device_id, store_id, kind, created_at, created_by, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            digest,
            registration.device_id,
            registration.store_id,
            registration.kind.name(),
            now,
            created_by,
            expires_at
        ],
    )?;
    tx.commit()?;
    Ok(Enrolment {
        device_id: registration.device_id.clone(),
        store_id: registration.store_id,
        kind: registration.kind,
        code,
        expires_at: expires_at.to_string(),
    })
}

fn redeem_enrolment(
    conn: &mut Connection,
    code: &str,
    now: Timestamp,
) -> Result<Option<Enrolled>, HqError> {
    let tx = conn.transaction()?;
    let digest = crate::admin::code_digest(code);
    let row: Option<(String, i64, String, Timestamp)> = tx
        .query_row(
            "SELECT device_id, store_id, kind, expires_at FROM enrolments
             WHERE code_sha256 = ?1 AND redeemed_at IS NULL",
            [&digest],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let Some((device_id, store_id, kind, expires_at)) = row else {
        return Ok(None);
    };
    if now >= expires_at {
        return Ok(None);
    }
    let kind = DeviceKind::parse(&kind)
        .ok_or_else(|| HqError::Invalid(format!("enrolment of {device_id}: kind {kind:?}")))?;
    let secret = register_device(&tx, &device_id, store_id, kind, now)?;
    tx.execute(
        "UPDATE enrolments SET redeemed_at = ?2 WHERE code_sha256 = ?1",
        params![digest, now],
    )?;
    record_admin_call(&tx, None, "enrol", Some(&device_id), "ok", now)?;
    tx.commit()?;
    Ok(Some(Enrolled {
        registration: DeviceRegistration {
            device_id,
            store_id,
            kind,
        },
        secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aisle_core::time::lit::ts;
    use aisle_proto::{CampaignRecord, CouponRecord, StoreRecord};
    use serde_json::json;

    const MEMBER: i64 = 7;
    const ERASED: i64 = 8;
    const STORE: i64 = 1;
    const COUPON: i64 = 900_001;
    const SERIAL: &str = "9176527369895822";
    const NOW: &str = "2026-11-25 12:00:00";

    fn member(member_id: i64) -> MemberRecord {
        MemberRecord {
            member_id,
            given_name: Some("Zoe".into()),
            family_name: None,
            display_name: None,
            phone: None,
            email: None,
            home_store_id: Some(STORE),
            tier: "standard".into(),
            consent_personalization: true,
            consent_personalization_at: None,
            consent_marketing: true,
            consent_marketing_at: None,
            enrolled_on: None,
            updated_at: "2026-01-01 00:00:00".into(),
            cards: Vec::new(),
            preferences: Vec::new(),
            code_keys: None,
            coupons: None,
        }
    }

    /// HQ with one store, two members (one erased), a campaign and its coupon.
    fn hq() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(&dir.path().join("hq.db")).expect("open HQ");
        let tx = conn.transaction().expect("tx");
        records::apply_change(
            &tx,
            &Change::Store(StoreRecord {
                store_id: STORE,
                name: "Main".into(),
                region: None,
                timezone: "UTC".into(),
                coupon_keys: None,
            }),
        )
        .expect("store");
        // tablet-1 issues coupons under its key 1.
        aisle_core::keys::add_issuer(&tx, STORE, 1, &test_key(1).verifying_key(), ts(NOW))
            .expect("key");
        tx.execute(
            "UPDATE coupon_issuers SET device_id = 'tablet-1' WHERE store_id = ?1 AND key_id = 1",
            [STORE],
        )
        .expect("key's device");
        for id in [MEMBER, ERASED] {
            assert!(records::write_member(&tx, &member(id)).expect("member"));
            tx.execute(
                "INSERT INTO store_members (store_id, member_id) VALUES (?1, ?2)",
                [STORE, id],
            )
            .expect("partition");
        }
        erase(&tx, ERASED, ts(NOW)).expect("erase");
        records::apply_change(
            &tx,
            &Change::Campaign(CampaignRecord {
                campaign_id: 50,
                name: "Autumn".into(),
                campaign_type: None,
                starts_on: "2026-01-01".into(),
                ends_on: "2026-12-31".into(),
                targets: Vec::new(),
            }),
        )
        .expect("campaign");
        records::apply_change(
            &tx,
            &Change::Coupon(CouponRecord {
                coupon_id: COUPON,
                code: "AUTUMN".into(),
                campaign_id: 50,
                description: None,
                discount_cents: Some(300),
                discount_percent: None,
                product_ids: Vec::new(),
            }),
        )
        .expect("coupon");
        tx.commit().expect("commit");
        (dir, conn)
    }

    fn raw(seq: i64, kind: &str, payload: serde_json::Value) -> RawEvent {
        RawEvent {
            idempotency_key: format!("replica-{seq}"),
            seq,
            kind: kind.into(),
            payload,
            created_at: NOW.into(),
        }
    }

    /// A device of `STORE` whose kind may send `kind` events (these tests
    /// are about the data; [`unauthorized`]'s own tests are the attack suite
    /// in `crates/aisle-cli/tests/it/trust.rs`).
    fn test_key(n: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[n; 32])
    }

    fn device_for(kind: &str) -> Device {
        let kind = match kind {
            "kiosk_visit" => DeviceKind::Kiosk,
            "coupon_redeemed" => DeviceKind::Till,
            _ => DeviceKind::Tablet,
        };
        Device {
            device_id: format!("{}-1", kind.name()),
            store_id: STORE,
            kind,
        }
    }

    fn note(seq: i64, body: &str) -> RawEvent {
        raw(
            seq,
            "associate_note",
            json!({ "member_id": MEMBER, "author": "Dana", "body": body }),
        )
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |row| row.get(0)).expect("count")
    }

    /// One event alone: its rejection code (None: applied).
    fn outcome(kind: &str, payload: serde_json::Value) -> Option<String> {
        let (_dir, mut conn) = hq();
        let event = raw(1, kind, payload);
        let ack = record_events(&mut conn, &device_for(kind), &[event], ts(NOW)).expect("upload");
        assert_eq!(ack.acknowledged, ["replica-1"], "always acknowledged");
        let applied = count(&conn, "SELECT count(*) FROM store_events");
        let quarantined = count(&conn, "SELECT count(*) FROM event_quarantine");
        match ack.rejected.as_slice() {
            [] => {
                assert_eq!((applied, quarantined), (1, 0), "{kind}");
                None
            }
            [rejected] => {
                assert_eq!((applied, quarantined), (0, 1), "{kind}: {rejected:?}");
                let kept: (String, String) = conn
                    .query_row(
                        "SELECT reason_code, reason FROM event_quarantine",
                        [],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .expect("quarantined");
                assert_eq!(kept, (rejected.code.clone(), rejected.reason.clone()));
                Some(rejected.code.clone())
            }
            more => panic!("{kind}: {more:?}"),
        }
    }

    fn check(kind: &str, payload: &serde_json::Value, expect: Option<&str>) {
        assert_eq!(
            outcome(kind, payload.clone()).as_deref(),
            expect,
            "{kind} {payload}"
        );
    }

    fn preferences(kind: &str, value: &str) -> serde_json::Value {
        json!({ "member_id": MEMBER, "preferences": [{ "kind": kind, "value": value }] })
    }

    fn issued(serial: &str, coupon_id: i64, channel: &str) -> serde_json::Value {
        json!({ "serial": serial, "coupon_id": coupon_id, "member_id": MEMBER, "store_id": STORE,
                "key_id": 1, "channel": channel, "issued_at": NOW, "expires_at": "2026-12-09 12:00:00" })
    }

    #[test]
    fn an_unknown_kind_is_rejected() {
        check(
            "loyalty_points",
            &json!({ "member_id": MEMBER }),
            Some("unknown_kind"),
        );
    }

    #[test]
    fn a_payload_that_does_not_decode_is_rejected() {
        check(
            "kiosk_visit",
            &json!({ "member_id": "seven", "store_id": STORE, "at": NOW }),
            Some("bad_payload"),
        );
        check(
            "consent_changed",
            &json!({ "member_id": MEMBER, "consent": "sms", "granted": true, "at": NOW }),
            Some("bad_payload"),
        );
        check("associate_note", &json!("a note"), Some("bad_payload"));
    }

    #[test]
    fn an_unknown_member_is_rejected_and_an_erased_one_kept_as_a_fact() {
        // Outside the device's partition, like any member HQ does not hold:
        // the device learns nothing about who exists.
        check(
            "kiosk_visit",
            &json!({ "member_id": 404, "store_id": STORE, "at": NOW }),
            Some("outside_partition"),
        );
        check(
            "associate_note",
            &json!({ "member_id": ERASED, "author": "Dana", "body": "late" }),
            None,
        );
        check(
            "kiosk_visit",
            &json!({ "member_id": MEMBER, "store_id": STORE, "at": NOW }),
            None,
        );
    }

    #[test]
    fn a_text_longer_than_the_store_allows_is_rejected() {
        let body = "n".repeat(aisle_proto::events::MAX_NOTE_CHARS);
        check(
            "associate_note",
            &json!({ "member_id": MEMBER, "author": "Dana", "body": body }),
            None,
        );
        check(
            "associate_note",
            &json!({ "member_id": MEMBER, "author": "Dana", "body": format!("{body}n") }),
            Some("too_long"),
        );
        check(
            "preferences_set",
            &preferences("brand", &"b".repeat(61)),
            Some("too_long"),
        );
        check(
            "profile_viewed",
            &json!({ "member_id": MEMBER, "actor": "s".repeat(101), "store_id": STORE, "at": NOW }),
            Some("too_long"),
        );
    }

    #[test]
    fn a_preference_kind_the_schema_refuses_is_rejected() {
        check("preferences_set", &preferences("dietary", "vegan"), None);
        check(
            "preferences_set",
            &preferences("colour", "red"),
            Some("bad_preference"),
        );
    }

    #[test]
    fn a_coupon_under_a_key_not_the_devices_own_is_rejected() {
        let mut other = issued(SERIAL, COUPON, "kiosk");
        other["key_id"] = 7.into();
        check("coupon_issued", &other, Some("wrong_key"));
        let (_dir, mut conn) = hq();
        let kiosk = Device {
            device_id: "kiosk-1".into(),
            store_id: STORE,
            kind: DeviceKind::Kiosk,
        };
        // kiosk-1 may not use tablet-1's key 1.
        let ack = record_events(
            &mut conn,
            &kiosk,
            &[raw(1, "coupon_issued", issued(SERIAL, COUPON, "kiosk"))],
            ts(NOW),
        )
        .expect("upload");
        assert_eq!(
            ack.rejected.first().map(|r| r.code.as_str()),
            Some("wrong_key")
        );
    }

    #[test]
    fn device_keys_are_numbered_rotated_and_revoked_in_every_stores_feed() {
        let (_dir, mut conn) = hq();
        let kiosk = Device {
            device_id: "kiosk-1".into(),
            store_id: STORE,
            kind: DeviceKind::Kiosk,
        };
        register_device(&conn, "kiosk-1", STORE, DeviceKind::Kiosk, ts(NOW)).expect("device");
        let first = hex::encode(test_key(2).verifying_key().as_bytes());
        let second = hex::encode(test_key(3).verifying_key().as_bytes());
        let id = register_coupon_key(&mut conn, &kiosk, &first, ts(NOW)).expect("register");
        assert_eq!(id, 2, "after the store's key 1");
        assert_eq!(
            register_coupon_key(&mut conn, &kiosk, &first, ts(NOW)).expect("again"),
            2,
            "the same key again: the same id"
        );
        let rotated = register_coupon_key(&mut conn, &kiosk, &second, ts("2026-11-26 12:00:00"))
            .expect("rotate");
        assert_eq!(rotated, 3);
        revoke_device(&mut conn, "kiosk-1", ts("2026-11-27 12:00:00")).expect("revoke");
        // The newest store record in the feed carries every key with its revocation.
        let text: String = conn
            .query_row(
                "SELECT body FROM changes WHERE scope = 'all' ORDER BY seq DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .expect("a store change");
        let Change::Store(store) = serde_json::from_str(&text).expect("change") else {
            panic!("{text}");
        };
        let keys: Vec<(i64, Option<String>)> = store
            .coupon_keys
            .expect("keys")
            .into_iter()
            .map(|k| (k.key_id, k.revoked_at))
            .collect();
        assert_eq!(
            keys,
            [
                (1, None),
                (2, Some("2026-11-26 12:00:00".into())),
                (3, Some("2026-11-27 12:00:00".into())),
            ]
        );
        // A bad key and a kind that issues no coupons are refused.
        assert!(matches!(
            register_coupon_key(&mut conn, &device_for("preferences_set"), "zz", ts(NOW)),
            Err(HqError::Invalid(_))
        ));
    }

    #[test]
    fn coupons_and_stores_hq_does_not_hold_are_rejected() {
        check("coupon_issued", &issued(SERIAL, COUPON, "kiosk"), None);
        check(
            "coupon_issued",
            &issued(SERIAL, 123, "kiosk"),
            Some("unknown_coupon"),
        );
        check(
            "coupon_issued",
            &issued("12-34", COUPON, "kiosk"),
            Some("bad_value"),
        );
        check(
            "coupon_issued",
            &issued(SERIAL, COUPON, "pigeon"),
            Some("bad_value"),
        );
        check(
            "kiosk_visit",
            &json!({ "member_id": MEMBER, "store_id": 99, "at": NOW }),
            Some("wrong_store"),
        );
        check(
            "kiosk_visit",
            &json!({ "member_id": MEMBER, "store_id": null, "at": NOW }),
            None,
        );
        check(
            "coupon_sent_to_app",
            &json!({ "member_id": MEMBER, "serial": "x", "at": NOW }),
            Some("bad_value"),
        );
    }

    /// A poison event between two good ones: both good ones apply, the poison
    /// is quarantined, and resending the batch applies nothing twice and
    /// answers the poison rejected again.
    #[test]
    fn a_poison_event_does_not_block_the_events_behind_it() {
        let (_dir, mut conn) = hq();
        let batch = [
            note(1, "likes oat milk"),
            raw(2, "preferences_set", preferences("colour", "red")),
            raw(3, "preferences_set", preferences("brand", "Oatly")),
        ];
        let ack = record_events(&mut conn, &device_for("associate_note"), &batch, ts(NOW))
            .expect("upload");
        assert_eq!(ack.acknowledged, ["replica-1", "replica-2", "replica-3"]);
        assert_eq!(ack.duplicates, 0);
        assert_eq!(
            ack.rejected
                .iter()
                .map(|r| (r.key.as_str(), r.code.as_str()))
                .collect::<Vec<_>>(),
            [("replica-2", "bad_preference")]
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM member_notes"), 1);
        assert_eq!(
            records::read_member(&conn, MEMBER)
                .expect("read")
                .expect("member")
                .preferences,
            [Preference {
                kind: "brand".into(),
                value: "Oatly".into()
            }]
        );
        let again = record_events(&mut conn, &device_for("associate_note"), &batch, ts(NOW))
            .expect("again");
        assert_eq!(again.acknowledged, ack.acknowledged);
        assert_eq!(again.duplicates, 2);
        assert_eq!(again.rejected, ack.rejected, "rejected again, same reason");
        assert_eq!(count(&conn, "SELECT count(*) FROM member_notes"), 1);
        assert_eq!(count(&conn, "SELECT count(*) FROM store_events"), 2);
        assert_eq!(count(&conn, "SELECT count(*) FROM event_quarantine"), 1);
    }

    /// An event that passes every check but whose effects the database
    /// refuses is rolled back alone (its log row too) and quarantined.
    #[test]
    fn an_event_whose_effects_the_database_refuses_is_rolled_back_alone() {
        let (_dir, mut conn) = hq();
        conn.execute_batch(
            "CREATE TEMP TRIGGER refuse_boom BEFORE INSERT ON member_notes
             WHEN NEW.body = 'boom' BEGIN SELECT RAISE(ABORT, 'notes saying boom are refused'); END;",
        )
        .expect("trigger");
        let batch = [note(1, "first"), note(2, "boom"), note(3, "third")];
        let ack = record_events(&mut conn, &device_for("associate_note"), &batch, ts(NOW))
            .expect("upload");
        assert_eq!(ack.acknowledged.len(), 3);
        assert_eq!(ack.rejected.len(), 1);
        assert_eq!(ack.rejected[0].key, "replica-2");
        assert_eq!(ack.rejected[0].code, "apply_failed");
        assert!(
            ack.rejected[0]
                .reason
                .contains("notes saying boom are refused"),
            "{:?}",
            ack.rejected[0]
        );
        let keys: Vec<String> = conn
            .prepare("SELECT idempotency_key FROM store_events ORDER BY seq")
            .expect("prepare")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("keys");
        assert_eq!(keys, ["replica-1", "replica-3"]);
        let bodies: Vec<String> = conn
            .prepare("SELECT body FROM member_notes ORDER BY note_id")
            .expect("prepare")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("notes");
        assert_eq!(bodies, ["first", "third"]);
    }

    #[test]
    fn the_quarantine_lists_in_pages() {
        let (_dir, mut conn) = hq();
        let batch: Vec<RawEvent> = (1..=5)
            .map(|seq| raw(seq, "associate_note", json!({ "member_id": 404 + seq })))
            .collect();
        let ack = record_events(&mut conn, &device_for("associate_note"), &batch, ts(NOW))
            .expect("upload");
        assert_eq!(ack.rejected.len(), 5);
        let first = quarantined(&conn, 0, 3).expect("page 1");
        assert_eq!(
            first
                .events
                .iter()
                .map(|e| e.idempotency_key.as_str())
                .collect::<Vec<_>>(),
            ["replica-1", "replica-2", "replica-3"]
        );
        assert_eq!(first.events[0].payload, json!({ "member_id": 405 }));
        assert_eq!(first.events[0].code, "bad_payload");
        assert_eq!(first.events[0].device_id, "tablet-1");
        let after = first.next_after.expect("more");
        let second = quarantined(&conn, after, 3).expect("page 2");
        assert_eq!(second.events.len(), 2);
        assert_eq!(second.next_after, None);
        assert!(
            quarantined(&conn, after + 10, 3)
                .expect("past the end")
                .events
                .is_empty()
        );
    }
}
