//! HQ's storage seam, held to one contract by every backend: each test runs
//! on SQLite and, when `AISLE_TEST_POSTGRES` names a cluster (`cargo xtask
//! test` starts one), on a fresh PostgreSQL database; only the trait is used.

use aisle_core::time::lit::ts;
use aisle_hq::storage::{Device, HqError, LookupProof, SnapshotHead, SnapshotSink, Storage};
use aisle_proto::events::RawEvent;
use aisle_proto::{
    CampaignRecord, CardRecord, Change, CouponRecord, DeviceKind, DeviceRegistration, MemberRecord,
    ProductRecord, StoreProductRecord, StoreRecord,
};
use serde_json::json;

const STORE: i64 = 1;
const OTHER: i64 = 2;
const MEMBER: i64 = 7;
const ERASED: i64 = 8;
const OUTSIDER: i64 = 9;
const COUPON: i64 = 900_001;
const NOW: &str = "2026-11-25 12:00:00";

/// A backend under test and what keeps it alive.
struct Backend {
    name: &'static str,
    storage: Box<dyn Storage>,
    _dir: Option<tempfile::TempDir>,
    database: Option<(String, String)>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some((cluster, url)) = &self.database {
            aisle_tests::postgres::drop_database(cluster, url);
        }
    }
}

/// SQLite, and PostgreSQL when the tests have a cluster.
fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = aisle_hq::sqlite::SqliteStorage::open(&dir.path().join("hq.db")).expect("SQLite");
    let mut all = vec![Backend {
        name: "sqlite",
        storage: Box::new(sqlite),
        _dir: Some(dir),
        database: None,
    }];
    if let Some(cluster) = aisle_tests::postgres::cluster() {
        let url = aisle_tests::postgres::empty_database(&cluster);
        let storage = aisle_hq::postgres::PgStorage::open(&url).expect("PostgreSQL");
        all.push(Backend {
            name: "postgres",
            storage: Box::new(storage),
            _dir: None,
            database: Some((cluster, url)),
        });
    }
    for backend in &all {
        fixture(&*backend.storage);
    }
    all
}

fn member(member_id: i64, card: &str) -> MemberRecord {
    MemberRecord {
        member_id,
        given_name: Some("Zoe".into()),
        family_name: Some("Okafor".into()),
        display_name: None,
        phone: Some("+1 555 0100".into()),
        email: None,
        home_store_id: Some(STORE),
        tier: "standard".into(),
        consent_personalization: true,
        consent_personalization_at: None,
        consent_marketing: true,
        consent_marketing_at: None,
        enrolled_on: None,
        updated_at: "2026-01-01 00:00:00".into(),
        cards: vec![CardRecord {
            card_number: card.into(),
            status: "active".into(),
            issued_on: None,
        }],
        preferences: Vec::new(),
        code_keys: None,
        coupons: None,
    }
}

/// Two stores, a product with a price at each, members 7 (store 1), 8
/// (erased) and 9 (store 2), a campaign targeting 7 and 9 with its coupon,
/// the demo's associates at store 1.
fn fixture(storage: &dyn Storage) {
    let now = ts(NOW);
    for (store_id, name) in [(STORE, "Main"), (OTHER, "North")] {
        storage
            .admin_change(
                &Change::Store(StoreRecord {
                    store_id,
                    name: name.into(),
                    region: None,
                    timezone: "UTC".into(),
                    coupon_keys: None,
                }),
                now,
            )
            .expect("store");
    }
    storage
        .admin_change(
            &Change::Product(ProductRecord {
                product_id: 100,
                name: "Oat milk".into(),
                gtin: None,
                manufacturer_id: None,
                department: Some("DAIRY".into()),
                category: None,
                product_type: None,
                brand: None,
                brand_type: None,
                package_size: None,
                active: true,
            }),
            now,
        )
        .expect("product");
    for store_id in [STORE, OTHER] {
        storage
            .admin_change(&Change::StoreProduct(price(store_id, 199)), now)
            .expect("price");
    }
    for (id, card) in [(MEMBER, "4000000007"), (ERASED, "4000000008")] {
        storage
            .admin_change(&Change::Member(member(id, card)), now)
            .expect("member");
    }
    let mut outsider = member(OUTSIDER, "4000000009");
    outsider.home_store_id = Some(OTHER);
    storage
        .admin_change(&Change::Member(outsider), now)
        .expect("outsider");
    storage
        .admin_change(
            &Change::MemberErased {
                member_id: ERASED,
                erased_at: String::new(),
            },
            now,
        )
        .expect("erase");
    storage
        .admin_change(
            &Change::Campaign(CampaignRecord {
                campaign_id: 50,
                name: "Autumn".into(),
                campaign_type: None,
                starts_on: "2026-01-01".into(),
                ends_on: "2026-12-31".into(),
                targets: vec![MEMBER, OUTSIDER],
            }),
            now,
        )
        .expect("campaign");
    storage
        .admin_change(
            &Change::Coupon(CouponRecord {
                coupon_id: COUPON,
                code: "AUTUMN".into(),
                campaign_id: 50,
                description: None,
                discount_cents: Some(300),
                discount_percent: None,
                product_ids: vec![100],
            }),
            now,
        )
        .expect("coupon");
    storage
        .save_demo_associates(STORE, now)
        .expect("associates");
}

fn price(store_id: i64, price_cents: i64) -> StoreProductRecord {
    StoreProductRecord {
        store_id,
        product_id: 100,
        price_cents,
        stock_qty: 5,
        location: None,
        updated_at: NOW.into(),
    }
}

fn device(storage: &dyn Storage, device_id: &str, store_id: i64, kind: DeviceKind) -> Device {
    let secret = storage
        .register_device(device_id, store_id, kind, ts(NOW))
        .expect("register");
    storage
        .authenticate(device_id, &secret)
        .expect("authenticate")
        .expect("the device")
}

fn raw(key: &str, seq: i64, kind: &str, payload: serde_json::Value) -> RawEvent {
    RawEvent {
        idempotency_key: key.into(),
        seq,
        kind: kind.into(),
        payload,
        created_at: NOW.into(),
    }
}

/// The member records of a store's whole feed, in order.
fn fed_members(storage: &dyn Storage, store_id: i64) -> Vec<MemberRecord> {
    storage
        .changes_after(store_id, 0, 10_000)
        .expect("feed")
        .changes
        .into_iter()
        .filter_map(|change| match change {
            Change::Member(member) => Some(member),
            _ => None,
        })
        .collect()
}

#[test]
fn devices_authenticate_by_secret_and_are_refused_once_revoked() {
    for backend in backends() {
        let storage = &*backend.storage;
        let secret = storage
            .register_device("kiosk-1", STORE, DeviceKind::Kiosk, ts(NOW))
            .expect("register");
        assert!(matches!(
            storage.register_device("kiosk-1", STORE, DeviceKind::Kiosk, ts(NOW)),
            Err(HqError::Invalid(_))
        ));
        assert!(matches!(
            storage.register_device("kiosk-2", 404, DeviceKind::Kiosk, ts(NOW)),
            Err(HqError::NotFound(_))
        ));
        assert!(matches!(
            storage.register_device("bad id!", STORE, DeviceKind::Kiosk, ts(NOW)),
            Err(HqError::Invalid(_))
        ));
        let found = storage.authenticate("kiosk-1", &secret).expect("auth");
        assert_eq!(
            found.map(|d| (d.store_id, d.kind)),
            Some((STORE, DeviceKind::Kiosk)),
            "{}",
            backend.name
        );
        assert_eq!(
            storage.authenticate("kiosk-1", "wrong").expect("auth"),
            None
        );
        storage.revoke_device("kiosk-1", ts(NOW)).expect("revoke");
        assert_eq!(
            storage.authenticate("kiosk-1", &secret).expect("auth"),
            None
        );
        assert!(matches!(
            storage.revoke_device("nobody", ts(NOW)),
            Err(HqError::NotFound(_))
        ));
    }
}

#[test]
fn an_enrolment_code_is_good_once_and_only_until_it_expires() {
    for backend in backends() {
        let storage = &*backend.storage;
        let registration = DeviceRegistration {
            device_id: "till-1".into(),
            store_id: STORE,
            kind: DeviceKind::Till,
        };
        let enrolment = storage
            .create_enrolment(&registration, "ops", 3_600, ts(NOW))
            .expect("enrolment");
        let typed = enrolment.code.to_lowercase().replace('-', "");
        let enrolled = storage
            .redeem_enrolment(&typed, ts(NOW))
            .expect("redeem")
            .expect("a good code");
        assert_eq!(enrolled.registration, registration, "{}", backend.name);
        assert!(
            storage
                .authenticate("till-1", &enrolled.secret)
                .expect("auth")
                .is_some()
        );
        assert!(
            storage
                .redeem_enrolment(&enrolment.code, ts(NOW))
                .expect("again")
                .is_none(),
            "used"
        );
        let later = DeviceRegistration {
            device_id: "till-2".into(),
            ..registration
        };
        let expiring = storage
            .create_enrolment(&later, "ops", 3_600, ts(NOW))
            .expect("enrolment");
        assert!(
            storage
                .redeem_enrolment(&expiring.code, ts("2026-11-25 13:00:00"))
                .expect("late")
                .is_none(),
            "expired"
        );
        let audit = storage.admin_audit(0, 100).expect("audit");
        assert!(
            audit
                .entries
                .iter()
                .any(|e| e.action == "enrol" && e.target.as_deref() == Some("till-1"))
        );
    }
}

/// A poison event between good ones: the good ones apply, the poison is
/// quarantined, a resend applies nothing twice; the conflict rules decide
/// the member's record (a withdrawal wins over a later-arriving grant).
#[test]
fn events_apply_once_and_a_refused_one_is_quarantined_alone() {
    for backend in backends() {
        let storage = &*backend.storage;
        let tablet = device(storage, "tablet-1", STORE, DeviceKind::Tablet);
        let batch = [
            raw(
                "r-1",
                1,
                "preferences_set",
                json!({ "member_id": MEMBER, "preferences": [{ "kind": "brand", "value": "Oatly" }] }),
            ),
            raw(
                "r-2",
                2,
                "preferences_set",
                json!({ "member_id": MEMBER, "preferences": [{ "kind": "colour", "value": "red" }] }),
            ),
            raw(
                "r-3",
                3,
                "consent_changed",
                json!({ "member_id": MEMBER, "consent": "marketing", "granted": false, "at": "2026-11-25 11:00:00" }),
            ),
            raw(
                "r-4",
                4,
                "consent_changed",
                json!({ "member_id": MEMBER, "consent": "marketing", "granted": true, "at": "2026-11-25 10:00:00",
                        "by": "staff:1001", "role": "associate" }),
            ),
            raw(
                "r-5",
                5,
                "associate_note",
                json!({ "member_id": OUTSIDER, "author": "Dana", "body": "other store" }),
            ),
        ];
        let ack = storage
            .record_events(&tablet, &batch, ts(NOW))
            .expect("upload");
        assert_eq!(ack.acknowledged.len(), 5, "{}", backend.name);
        let rejected: Vec<(&str, &str)> = ack
            .rejected
            .iter()
            .map(|r| (r.key.as_str(), r.code.as_str()))
            .collect();
        assert_eq!(
            rejected,
            [("r-2", "bad_preference"), ("r-5", "outside_partition")],
            "{}",
            backend.name
        );
        let again = storage
            .record_events(&tablet, &batch, ts(NOW))
            .expect("again");
        assert_eq!(again.duplicates, 3);
        assert_eq!(again.rejected, ack.rejected, "rejected again, same reason");
        let logged: Vec<String> = storage
            .event_log()
            .expect("log")
            .into_iter()
            .map(|(key, ..)| key)
            .collect();
        assert_eq!(logged, ["r-1", "r-3", "r-4"], "{}", backend.name);
        let newest = fed_members(storage, STORE)
            .into_iter()
            .rev()
            .find(|m| m.member_id == MEMBER)
            .expect("the member in the feed");
        assert_eq!(newest.preferences.len(), 1);
        assert_eq!(newest.preferences[0].value, "Oatly");
        assert!(
            !newest.consent_marketing,
            "{}: the withdrawal won over an older grant",
            backend.name
        );
        let page = storage.quarantined(0, 1).expect("quarantine");
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].idempotency_key, "r-2");
        let rest = storage
            .quarantined(page.next_after.expect("more"), 10)
            .expect("page 2");
        assert_eq!(rest.events.len(), 1);
        assert_eq!(rest.next_after, None);
    }
}

/// One upload sent twice at once (a store that retried while its first
/// attempt was still in flight, through another instance), and one key
/// twice in an upload: each event is recorded once, each refused one
/// quarantined once, and both answers acknowledge every event.
#[test]
fn an_upload_sent_twice_at_once_is_recorded_once() {
    for backend in backends() {
        let storage = &*backend.storage;
        let tablet = device(storage, "tablet-2", STORE, DeviceKind::Tablet);
        let batch: Vec<RawEvent> = (1..=40)
            .map(|n| {
                // Every tenth about a member outside the store's partition.
                let member_id = if n % 10 == 0 { OUTSIDER } else { MEMBER };
                raw(
                    &format!("twice-{n}"),
                    n,
                    "associate_note",
                    json!({ "member_id": member_id, "author": "Dana", "body": format!("note {n}") }),
                )
            })
            .collect();
        let mut repeated = batch.clone();
        repeated.push(batch[0].clone());
        let (first, second) = std::thread::scope(|scope| {
            let first = scope.spawn(|| storage.record_events(&tablet, &repeated, ts(NOW)));
            let second = scope.spawn(|| storage.record_events(&tablet, &batch, ts(NOW)));
            (first.join().expect("first"), second.join().expect("second"))
        });
        let (first, second) = (
            first.unwrap_or_else(|err| panic!("{}: {err}", backend.name)),
            second.unwrap_or_else(|err| panic!("{}: {err}", backend.name)),
        );
        assert_eq!(first.acknowledged.len(), 41, "{}", backend.name);
        assert_eq!(second.acknowledged.len(), 40, "{}", backend.name);
        assert_eq!(
            first.duplicates + second.duplicates,
            36 + 1,
            "{}: 36 applied by one upload, seen by the other, and the key sent twice",
            backend.name
        );
        for ack in [&first, &second] {
            let mut refused: Vec<&str> = ack.rejected.iter().map(|r| r.key.as_str()).collect();
            refused.sort_unstable();
            assert_eq!(
                refused,
                ["twice-10", "twice-20", "twice-30", "twice-40"],
                "{}",
                backend.name
            );
        }
        let mut logged: Vec<String> = storage
            .event_log()
            .expect("log")
            .into_iter()
            .map(|(key, ..)| key)
            .filter(|key| key.starts_with("twice-"))
            .collect();
        assert_eq!(
            logged.len(),
            36,
            "{}: each applied event once",
            backend.name
        );
        logged.dedup();
        assert_eq!(logged.len(), 36, "{}", backend.name);
        let quarantined = storage.quarantined(0, 1_000).expect("quarantine").events;
        let twice: Vec<&str> = quarantined
            .iter()
            .map(|q| q.idempotency_key.as_str())
            .filter(|key| key.starts_with("twice-"))
            .collect();
        assert_eq!(twice.len(), 4, "{}: each refused event once", backend.name);
    }
}

#[test]
fn the_feed_pages_by_position_narrows_to_the_store_and_refuses_a_cursor_ahead() {
    for backend in backends() {
        let storage = &*backend.storage;
        let head = storage
            .changes_after(STORE, 0, 10_000)
            .expect("feed")
            .to_cursor;
        let at_other = storage
            .admin_change(&Change::StoreProduct(price(OTHER, 249)), ts(NOW))
            .expect("price");
        let here = storage
            .admin_change(&Change::StoreProduct(price(STORE, 179)), ts(NOW))
            .expect("price");
        assert_eq!((at_other, here), (head + 1, head + 2), "{}", backend.name);
        let batch = storage.changes_after(STORE, head, 10).expect("delta");
        assert_eq!(batch.to_cursor, here);
        assert!(!batch.more);
        assert!(
            matches!(batch.changes.as_slice(), [Change::StoreProduct(p)] if p.price_cents == 179),
            "{}: only its own price: {:?}",
            backend.name,
            batch.changes
        );
        // One at a time: each page ends where its last change is.
        let first = storage.changes_after(STORE, 0, 1).expect("page");
        assert!(first.more);
        assert_eq!(first.changes.len(), 1);
        let second = storage
            .changes_after(STORE, first.to_cursor, 1)
            .expect("page");
        assert!(second.to_cursor > first.to_cursor);
        // The campaign as each store sees it: targets in its partition only.
        let campaign = storage
            .changes_after(STORE, 0, 10_000)
            .expect("feed")
            .changes
            .into_iter()
            .find_map(|change| match change {
                Change::Campaign(c) => Some(c),
                _ => None,
            })
            .expect("the campaign");
        assert_eq!(campaign.targets, [MEMBER], "{}", backend.name);
        assert!(matches!(
            storage.changes_after(STORE, here + 1, 10),
            Err(HqError::CursorAhead { cursor, head }) if cursor == here + 1 && head == here
        ));
    }
}

#[test]
fn device_coupon_keys_are_numbered_rotated_and_revoked_in_every_stores_feed() {
    for backend in backends() {
        let storage = &*backend.storage;
        let kiosk = device(storage, "kiosk-1", STORE, DeviceKind::Kiosk);
        let key = |n: u8| {
            hex::encode(
                ed25519_dalek::SigningKey::from_bytes(&[n; 32])
                    .verifying_key()
                    .as_bytes(),
            )
        };
        let first = storage
            .register_coupon_key(&kiosk, &key(2), ts(NOW))
            .expect("register");
        assert_eq!(first, 2, "{}: after the store's key 1", backend.name);
        assert_eq!(
            storage
                .register_coupon_key(&kiosk, &key(2), ts(NOW))
                .expect("again"),
            2
        );
        let rotated = storage
            .register_coupon_key(&kiosk, &key(3), ts("2026-11-26 12:00:00"))
            .expect("rotate");
        assert_eq!(rotated, 3);
        storage
            .revoke_device("kiosk-1", ts("2026-11-27 12:00:00"))
            .expect("revoke");
        let store = storage
            .changes_after(OTHER, 0, 10_000)
            .expect("feed")
            .changes
            .into_iter()
            .rev()
            .find_map(|change| match change {
                Change::Store(s) if s.store_id == STORE => Some(s),
                _ => None,
            })
            .expect("the store's record");
        let keys: Vec<(i64, Option<String>)> = store
            .coupon_keys
            .expect("keys")
            .into_iter()
            .map(|k| (k.key_id, k.revoked_at))
            .collect();
        assert_eq!(
            keys,
            [
                (2, Some("2026-11-26 12:00:00".into())),
                (3, Some("2026-11-27 12:00:00".into()))
            ],
            "{}",
            backend.name
        );
        let tablet = device(storage, "tablet-1", STORE, DeviceKind::Tablet);
        assert!(matches!(
            storage.register_coupon_key(&tablet, "zz", ts(NOW)),
            Err(HqError::Invalid(_))
        ));
    }
}

/// Two stores redeem the same instance: the earliest redemption counts,
/// whichever arrives first, and the other is an over-redemption.
#[test]
fn the_earliest_redemption_counts_and_the_other_is_reconciled() {
    for backend in backends() {
        let storage = &*backend.storage;
        let kiosk = device(storage, "kiosk-1", STORE, DeviceKind::Kiosk);
        let public = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[5; 32])
                .verifying_key()
                .as_bytes(),
        );
        let key_id = storage
            .register_coupon_key(&kiosk, &public, ts(NOW))
            .expect("key");
        let serial = "9176527369895822";
        let issued = raw(
            "k-1",
            1,
            "coupon_issued",
            json!({ "serial": serial, "coupon_id": COUPON, "member_id": MEMBER, "store_id": STORE,
                    "key_id": key_id, "channel": "kiosk", "issued_at": NOW, "expires_at": "2026-12-09 12:00:00" }),
        );
        let ack = storage
            .record_events(&kiosk, &[issued], ts(NOW))
            .expect("issue");
        assert!(
            ack.rejected.is_empty(),
            "{}: {:?}",
            backend.name,
            ack.rejected
        );
        let redeem = |key: &str, store_id: i64, till: &Device, at: &str| {
            let event = raw(
                key,
                1,
                "coupon_redeemed",
                json!({ "serial": serial, "coupon_id": COUPON, "member_id": MEMBER, "issuer_store_id": STORE,
                        "key_id": key_id, "channel": "kiosk", "expires_at": "2026-12-09 12:00:00",
                        "store_id": store_id, "redeemed_at": at, "till_id": till.device_id, "value_cents": 300,
                        "offline_risk": store_id != STORE }),
            );
            let ack = storage
                .record_events(till, &[event], ts(NOW))
                .expect("redeem");
            assert!(
                ack.rejected.is_empty(),
                "{}: {:?}",
                backend.name,
                ack.rejected
            );
        };
        let north = device(storage, "till-north", OTHER, DeviceKind::Till);
        let main = device(storage, "till-main", STORE, DeviceKind::Till);
        // The later redemption arrives first.
        redeem("t-2", OTHER, &north, "2026-11-25 15:00:00");
        redeem("t-1", STORE, &main, "2026-11-25 14:00:00");
        let report = storage.coupon_reconciliation().expect("report");
        assert_eq!((report.issued, report.redeemed), (1, 1), "{}", backend.name);
        let [over] = report.over_redemptions.as_slice() else {
            panic!("{}: {:?}", backend.name, report.over_redemptions);
        };
        assert_eq!(
            (over.first_store_id, over.later_store_id),
            (STORE, OTHER),
            "{}",
            backend.name
        );
        assert_eq!(report.over_redeemed_cents, 300);
        assert!(report.never_issued.is_empty());
    }
}

#[test]
fn a_look_up_needs_proof_of_presence_and_joins_the_member_to_the_store() {
    for backend in backends() {
        let storage = &*backend.storage;
        let kiosk = device(storage, "kiosk-north", OTHER, DeviceKind::Kiosk);
        assert!(
            !fed_members(storage, OTHER)
                .iter()
                .any(|m| m.member_id == MEMBER)
        );
        let found = storage
            .lookup(&kiosk, LookupProof::Card("4000000007"), ts(NOW))
            .expect("look-up");
        assert_eq!(
            found.member.map(|m| m.member_id),
            Some(MEMBER),
            "{}",
            backend.name
        );
        let unknown = storage
            .lookup(&kiosk, LookupProof::Card("4999999999"), ts(NOW))
            .expect("unknown");
        assert_eq!((unknown.member, unknown.erased), (None, false));
        assert!(matches!(
            storage.lookup(&kiosk, LookupProof::MemberId(MEMBER), ts(NOW)),
            Err(HqError::Forbidden(_))
        ));
        let till = device(storage, "till-north", OTHER, DeviceKind::Till);
        assert!(matches!(
            storage.lookup(&till, LookupProof::Card("4000000007"), ts(NOW)),
            Err(HqError::Forbidden(_))
        ));
        // The member is now in store 2's partition: an edit reaches it.
        let mut edited = member(MEMBER, "4000000007");
        edited.given_name = Some("Zoé".into());
        storage
            .admin_change(&Change::Member(edited), ts(NOW))
            .expect("edit");
        assert!(
            fed_members(storage, OTHER)
                .iter()
                .any(|m| m.given_name.as_deref() == Some("Zoé")),
            "{}",
            backend.name
        );
    }
}

#[test]
fn an_erasure_leaves_only_the_tombstone_in_the_feed_and_is_scrubbed() {
    for backend in backends() {
        let storage = &*backend.storage;
        assert!(
            fed_members(storage, STORE)
                .iter()
                .any(|m| m.member_id == MEMBER)
        );
        storage
            .admin_change(
                &Change::MemberErased {
                    member_id: MEMBER,
                    erased_at: String::new(),
                },
                ts(NOW),
            )
            .expect("erase");
        let feed = storage.changes_after(STORE, 0, 10_000).expect("feed");
        let text = serde_json::to_string(&feed.changes).expect("json");
        assert!(
            !text.contains("4000000007")
                && !fed_members(storage, STORE)
                    .iter()
                    .any(|m| m.member_id == MEMBER),
            "{}: the member's record is gone from every feed position",
            backend.name
        );
        assert!(
            feed.changes.iter().any(
                |c| matches!(c, Change::MemberErased { member_id, .. } if *member_id == MEMBER)
            )
        );
        assert!(matches!(
            storage.admin_change(&Change::Member(member(MEMBER, "4000000007")), ts(NOW)),
            Err(HqError::Invalid(_))
        ));
        assert!(
            storage.scrub_pending().expect("pending"),
            "{}",
            backend.name
        );
        assert!(storage.scrub_storage(ts(NOW)).expect("scrub"));
        assert!(!storage.scrub_pending().expect("pending"));
    }
}

/// Collects a snapshot's records.
#[derive(Default)]
struct Collect {
    cursor: Option<u64>,
    records: Vec<Change>,
}

impl SnapshotSink for Collect {
    fn begin(&mut self, cursor: u64) -> Result<bool, HqError> {
        self.cursor = Some(cursor);
        Ok(true)
    }

    fn record(&mut self, change: Change) -> Result<(), HqError> {
        self.records.push(change);
        Ok(())
    }
}

#[test]
fn a_snapshot_holds_the_store_partition_as_of_its_cursor() {
    for backend in backends() {
        let storage = &*backend.storage;
        let head = storage.changes_after(STORE, 0, 1).expect("feed");
        let mut collect = Collect::default();
        let SnapshotHead { cursor, .. } = storage
            .snapshot(STORE, 400, &mut collect)
            .expect("snapshot")
            .expect("built");
        assert_eq!(Some(cursor), collect.cursor);
        assert!(cursor >= head.to_cursor);
        let members: Vec<i64> = collect
            .records
            .iter()
            .filter_map(|c| match c {
                Change::Member(m) => Some(m.member_id),
                _ => None,
            })
            .collect();
        assert_eq!(members, [MEMBER], "{}", backend.name);
        let prices: Vec<i64> = collect
            .records
            .iter()
            .filter_map(|c| match c {
                Change::StoreProduct(p) => Some(p.store_id),
                _ => None,
            })
            .collect();
        assert_eq!(prices, [STORE]);
        assert!(
            collect
                .records
                .iter()
                .any(|c| matches!(c, Change::Associate(a) if a.store_id == STORE))
        );
        // Declined: a snapshot at this cursor exists.
        struct Decline;
        impl SnapshotSink for Decline {
            fn begin(&mut self, _: u64) -> Result<bool, HqError> {
                Ok(false)
            }
            fn record(&mut self, _: Change) -> Result<(), HqError> {
                panic!("a declined snapshot sends nothing")
            }
        }
        assert!(
            storage
                .snapshot(STORE, 400, &mut Decline)
                .expect("declined")
                .is_none()
        );
    }
}

/// The PostgreSQL schema holds every table HQ keeps, column for column as
/// SQLite's (what mirrors, imports and training rely on).
#[test]
fn postgresql_tables_match_sqlites_column_for_column() {
    let Some(cluster) = aisle_tests::postgres::cluster() else {
        return;
    };
    let url = aisle_tests::postgres::empty_database(&cluster);
    drop(aisle_hq::postgres::PgStorage::open(&url).expect("migrate"));
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = aisle_hq::sqlite::open(&dir.path().join("hq.db")).expect("SQLite");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    for table in aisle_hq::postgres::MASTER_TABLES
        .iter()
        .chain(aisle_hq::postgres::HQ_TABLES)
    {
        let pg: Vec<(String, String)> = client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY column_name",
                &[table],
            )
            .expect("columns")
            .iter()
            .map(|row| {
                let ty = match row.get::<_, &str>(1) {
                    "bigint" => "INTEGER",
                    "text" => "TEXT",
                    "bytea" => "BLOB",
                    "double precision" => "REAL",
                    other => panic!("{table}: {other}"),
                };
                (row.get(0), ty.to_owned())
            })
            .collect();
        let mut lite: Vec<(String, String)> = sqlite
            .prepare(&format!("PRAGMA table_info({table})"))
            .expect("pragma")
            .query_map([], |row| Ok((row.get(1)?, row.get::<_, String>(2)?)))
            .expect("columns")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        lite.sort();
        assert_eq!(pg, lite, "{table}");
    }
    drop(client);
    aisle_tests::postgres::drop_database(&cluster, &url);
}

/// The demo imported and both models trained on each backend, with one
/// clock: the same showcase member and the same models, byte for byte.
#[test]
fn imports_and_training_give_the_same_data_and_models_on_every_backend() {
    let mut models = Vec::new();
    for backend in backends() {
        let storage = &*backend.storage;
        let report = storage
            .import(
                aisle_hq::storage::Importer::CompleteJourney,
                &aisle_core::demo::source(),
                &aisle_core::import::ImportOptions::default(),
            )
            .expect("import");
        assert!(report.rejects.is_empty(), "{}", backend.name);
        let showcase = storage.showcase().expect("showcase").expect("a member");
        let now = ts("2026-11-25 06:00:00");
        let recommend = storage.train(None, 1, now).expect("train");
        let offers = storage
            .train_offers(Some("2017-10-01"), now)
            .expect("train offers");
        let bytes = storage
            .model_bytes(recommend.artifact_id)
            .expect("bytes")
            .expect("the model");
        assert_eq!(aisle_hq::storage::sha256_hex(&bytes), recommend.sha256);
        models.push((backend.name, showcase, recommend.sha256, offers.sha256));
    }
    for other in models.iter().skip(1) {
        assert_eq!(other.1, models[0].1, "{} vs {}", other.0, models[0].0);
        assert_eq!(other.2, models[0].2, "the recommendation model");
        assert_eq!(other.3, models[0].3, "the offer model");
    }
}

/// PostgreSQL numbers feed entries from a sequence: after a restore or a
/// failover that brought the rows back with an older sequence, HQ realigns
/// it when it starts, and the next change goes after the newest row.
#[test]
fn a_feed_sequence_left_behind_by_a_restore_is_realigned_when_hq_starts() {
    let Some(cluster) = aisle_tests::postgres::cluster() else {
        return;
    };
    let url = aisle_tests::postgres::empty_database(&cluster);
    let storage = aisle_hq::postgres::PgStorage::open(&url).expect("PostgreSQL");
    fixture(&storage);
    let head = storage
        .admin_change(&Change::StoreProduct(price(STORE, 199)), ts(NOW))
        .expect("price");
    drop(storage);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    client
        .batch_execute("SELECT setval('changes_seq', 1)")
        .expect("the sequence set back");
    drop(client);
    let storage = aisle_hq::postgres::PgStorage::open(&url).expect("reopened");
    let next = storage
        .admin_change(&Change::StoreProduct(price(STORE, 189)), ts(NOW))
        .expect("a change after the realignment");
    assert_eq!(next, head + 1);
    let batch = storage.changes_after(STORE, head, 10).expect("delta");
    assert!(
        matches!(batch.changes.as_slice(), [Change::StoreProduct(p)] if p.price_cents == 189),
        "{:?}",
        batch.changes
    );
    drop(storage);
    aisle_tests::postgres::drop_database(&cluster, &url);
}

/// Writers on two HQ instances at once, each change in its own
/// transaction: every one commits (none gives up after its retries), each
/// at its own position, and the feed holds them in the order they took.
#[test]
fn concurrent_writers_on_two_instances_all_commit_at_distinct_positions() {
    let Some(cluster) = aisle_tests::postgres::cluster() else {
        return;
    };
    let url = aisle_tests::postgres::empty_database(&cluster);
    let instances = [
        aisle_hq::postgres::PgStorage::open(&url).expect("instance a"),
        aisle_hq::postgres::PgStorage::open(&url).expect("instance b"),
    ];
    fixture(&instances[0]);
    // A product each: the writers contend for the feed, not for one row.
    for writer in 0..8i64 {
        instances[0]
            .admin_change(
                &Change::Product(ProductRecord {
                    product_id: 200 + writer,
                    name: format!("Product {writer}"),
                    gtin: None,
                    manufacturer_id: None,
                    department: None,
                    category: None,
                    product_type: None,
                    brand: None,
                    brand_type: None,
                    package_size: None,
                    active: true,
                }),
                ts(NOW),
            )
            .expect("product");
    }
    let before = instances[0]
        .changes_after(STORE, 0, 100_000)
        .expect("feed")
        .to_cursor;
    let mut positions: Vec<(u64, i64)> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..8i64)
            .map(|writer| {
                let storage = &instances[(writer % 2) as usize];
                scope.spawn(move || {
                    (0..40i64)
                        .map(|n| {
                            let cents = writer * 1_000 + n;
                            let change = StoreProductRecord {
                                product_id: 200 + writer,
                                ..price(STORE, cents)
                            };
                            let at = storage
                                .admin_change(&Change::StoreProduct(change), ts(NOW))
                                .unwrap_or_else(|err| panic!("writer {writer}, change {n}: {err}"));
                            (at, cents)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().expect("writer"))
            .collect()
    });
    positions.sort_unstable();
    assert_eq!(positions.len(), 320);
    assert!(
        positions.windows(2).all(|w| w[0].0 < w[1].0),
        "two changes answered the same position"
    );
    let fed: Vec<i64> = instances[1]
        .changes_after(STORE, before, 100_000)
        .expect("feed")
        .changes
        .into_iter()
        .filter_map(|change| match change {
            Change::StoreProduct(p) => Some(p.price_cents),
            _ => None,
        })
        .collect();
    let expected: Vec<i64> = positions.iter().map(|(_, cents)| *cents).collect();
    assert_eq!(fed, expected, "the feed's order is the positions' order");
    drop(instances);
    aisle_tests::postgres::drop_database(&cluster, &url);
}
