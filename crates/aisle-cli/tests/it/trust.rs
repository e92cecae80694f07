//! HQ trusts no device (issue 18): attacks with a stolen device's credential
//! against the real HQ over TLS, each refused with its own assertion, and
//! the same acts done rightly still working.

use aisle_core::time::lit::ts;
use aisle_proto::{DeviceCredentials, DeviceKind, paths};
use aisle_tests::hq::TestHq;
use serde_json::{Value, json};

/// A device's HTTPS calls, made by hand as an attacker holding its
/// credentials would make them.
struct Stolen<'a> {
    hq: &'a TestHq,
    credentials: DeviceCredentials,
}

impl<'a> Stolen<'a> {
    fn new(hq: &'a TestHq, device_id: &str, store_id: i64, kind: DeviceKind) -> Self {
        Self {
            hq,
            credentials: hq.register(device_id, store_id, kind),
        }
    }

    fn bearer(&self) -> String {
        format!("{}.{}", self.credentials.device_id, self.credentials.secret)
    }

    /// The key id of the issuing key the device registered at enrolment.
    fn key_id(&self) -> i64 {
        self.credentials
            .coupon_issuer
            .as_ref()
            .expect("an issuing key")
            .key_id
    }

    /// GET a look-up with these query pairs: (status, body).
    fn lookup(&self, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .hq
            .device_get(paths::MEMBER_LOOKUP, &self.bearer())
            .query(query)
            .send()
            .expect("look-up");
        let status = response.status().as_u16();
        (status, response.json().expect("json body"))
    }

    /// Uploads one event (kind, payload) under `key`: HQ's answer.
    fn send(&self, key: &str, kind: &str, payload: &Value) -> Value {
        let upload = json!({ "events": [{
            "idempotency_key": key,
            "seq": 1,
            "kind": kind,
            "payload": payload,
            "created_at": "2026-11-25 10:00:00",
        }]});
        let response = self
            .hq
            .device_post(paths::EVENTS, &self.bearer())
            .json(&upload)
            .send()
            .expect("upload");
        assert!(response.status().is_success(), "{}", response.status());
        response.json().expect("ack")
    }

    /// The rejection code HQ answered for `key`, if it refused it.
    fn refused(&self, key: &str, kind: &str, payload: &Value) -> Option<String> {
        let ack = self.send(key, kind, payload);
        ack["rejected"]
            .as_array()
            .and_then(|rejected| rejected.iter().find(|r| r["key"] == key))
            .map(|r| r["code"].as_str().expect("code").to_owned())
    }
}

/// A member of `store_id`'s partition, and one outside it (with their card).
pub(crate) fn members(hq: &TestHq, store_id: i64) -> (i64, (i64, String)) {
    let db = hq.db();
    let inside: i64 = db
        .query_row(
            "SELECT member_id FROM store_members WHERE store_id = ?1 ORDER BY member_id LIMIT 1",
            [store_id],
            |row| row.get(0),
        )
        .expect("a member inside");
    let outside = db
        .query_row(
            "SELECT m.member_id, c.card_number FROM members m JOIN member_cards c USING (member_id)
             WHERE m.erased_at IS NULL AND c.status = 'active'
               AND m.member_id NOT IN (SELECT member_id FROM store_members WHERE store_id = ?1)
             ORDER BY m.member_id LIMIT 1",
            [store_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("a member outside");
    (inside, outside)
}

fn in_partition(hq: &TestHq, store_id: i64, member_id: i64) -> bool {
    hq.db()
        .query_row(
            "SELECT count(*) FROM store_members WHERE store_id = ?1 AND member_id = ?2",
            [store_id, member_id],
            |row| row.get::<_, i64>(0),
        )
        .expect("partition")
        > 0
}

fn erased_at_hq(hq: &TestHq, member_id: i64) -> bool {
    hq.db()
        .query_row(
            "SELECT erased_at IS NOT NULL FROM members WHERE member_id = ?1",
            [member_id],
            |row| row.get(0),
        )
        .expect("member")
}

fn lookup_audit(hq: &TestHq, device_id: &str) -> Vec<(String, Option<i64>, String)> {
    let db = hq.db();
    let mut stmt = db
        .prepare(
            "SELECT proof, member_id, outcome FROM lookup_audit WHERE device_id = ?1 ORDER BY lookup_id",
        )
        .expect("audit");
    stmt.query_map([device_id], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("audit rows")
}

#[test]
fn a_stolen_kiosk_cannot_look_a_member_up_by_id() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let (_, (outside, _)) = members(&hq, store_id);
    let kiosk = Stolen::new(&hq, "kiosk-stolen", store_id, DeviceKind::Kiosk);

    let (status, body) = kiosk.lookup(&[("member_id", &outside.to_string())]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert!(body.get("member").is_none(), "no member data: {body}");
    assert!(
        !in_partition(&hq, store_id, outside),
        "not added to the partition"
    );
    assert_eq!(
        lookup_audit(&hq, "kiosk-stolen"),
        [("member_id".to_owned(), Some(outside), "refused".to_owned())]
    );
}

#[test]
fn a_look_up_needs_a_card_or_a_real_app_code_and_is_audited() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let (_, (outside, card)) = members(&hq, store_id);
    let kiosk = Stolen::new(&hq, "kiosk-1", store_id, DeviceKind::Kiosk);

    // An app code for `member`, signed by demo key `signer`, `ago` seconds ago.
    let now_secs = u64::try_from(aisle_hq::now().unix()).expect("now");
    let code = |member: i64, signer: i64, ago: u64| {
        aisle_core::identify::member_code::encode(
            member,
            &aisle_core::keys::demo_member_key(signer),
            now_secs - ago,
            &aisle_core::identify::member_code::CodePolicy::default(),
        )
    };
    // Signed by another key than the member's: forged.
    let forged = code(outside, outside + 1, 0);
    let (status, body) = kiosk.lookup(&[("code", &forged)]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not signed by this member's key"),
        "{body}"
    );
    assert!(!in_partition(&hq, store_id, outside));

    // An expired one, signed by the right key an hour ago.
    let expired = code(outside, outside, 3600);
    let (status, body) = kiosk.lookup(&[("code", &expired)]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{body}"
    );

    // The member's own code, now: found, and now in the partition.
    let own = code(outside, outside, 0);
    let (status, body) = kiosk.lookup(&[("code", &own)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["member"]["member_id"], outside);
    assert!(in_partition(&hq, store_id, outside));
    // The same code again (seen over the shopper's shoulder, replayed by
    // another kiosk): refused, one look-up per code.
    let other = Stolen::new(&hq, "kiosk-2", store_id, DeviceKind::Kiosk);
    let (status, body) = other.lookup(&[("code", &own)]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("already used")),
        "{body}"
    );

    // Their card works too; an unknown card finds nobody.
    let (status, body) = kiosk.lookup(&[("card", &card)]);
    assert_eq!(
        (status, body["member"]["member_id"].as_i64()),
        (200, Some(outside))
    );
    let (status, body) = kiosk.lookup(&[("card", "0000000000000")]);
    assert_eq!(status, 200);
    assert!(body["member"].is_null(), "{body}");

    let audit = lookup_audit(&hq, "kiosk-1");
    let outcomes: Vec<(&str, &str)> = audit
        .iter()
        .map(|(proof, _, outcome)| (proof.as_str(), outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("app_code", "refused"),
            ("app_code", "refused"),
            ("app_code", "found"),
            ("card", "found"),
            ("card", "unknown"),
        ]
    );
}

#[test]
fn a_till_may_not_look_members_up() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let (_, (_, card)) = members(&hq, store_id);
    let till = Stolen::new(&hq, "till-1", store_id, DeviceKind::Till);
    let (status, body) = till.lookup(&[("card", &card)]);
    assert_eq!(status, 403, "{body}");
    assert!(body.get("member").is_none());
}

#[test]
fn a_stolen_kiosk_cannot_erase_or_grant_consent_for_anyone() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let (inside, _) = members(&hq, store_id);
    let kiosk = Stolen::new(&hq, "kiosk-stolen", store_id, DeviceKind::Kiosk);

    let erasure = json!({ "member_id": inside, "requested_by": "staff:1002", "role": "manager" });
    assert_eq!(
        kiosk
            .refused("erase-1", "erasure_requested", &erasure)
            .as_deref(),
        Some("not_allowed")
    );
    assert!(!erased_at_hq(&hq, inside), "the member is not erased");

    let before: bool = hq
        .db()
        .query_row(
            "SELECT consent_marketing FROM members WHERE member_id = ?1",
            [inside],
            |row| row.get(0),
        )
        .expect("consent");
    let grant = json!({ "member_id": inside, "consent": "marketing", "granted": true,
        "at": "2026-11-25 10:00:00", "by": "staff:1001", "role": "associate" });
    assert_eq!(
        kiosk
            .refused("grant-1", "consent_changed", &grant)
            .as_deref(),
        Some("not_allowed")
    );
    let after: bool = hq
        .db()
        .query_row(
            "SELECT consent_marketing FROM members WHERE member_id = ?1",
            [inside],
            |row| row.get(0),
        )
        .expect("consent");
    assert_eq!(before, after, "consent unchanged");

    let note = json!({ "member_id": inside, "author": "x", "body": "y" });
    assert_eq!(
        kiosk.refused("note-1", "associate_note", &note).as_deref(),
        Some("not_allowed")
    );
}

#[test]
fn events_about_members_outside_the_partition_or_naming_another_store_are_refused() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let (inside, (outside, _)) = members(&hq, store_id);
    let kiosk = Stolen::new(&hq, "kiosk-1", store_id, DeviceKind::Kiosk);

    let visit = |member: i64, store: i64| json!({ "member_id": member, "store_id": store, "at": "2026-11-25 10:00:00" });
    // A visit "at" this store by a member the store does not hold: it used
    // to add them to the partition (and stream their changes to the kiosk).
    assert_eq!(
        kiosk
            .refused("visit-out", "kiosk_visit", &visit(outside, store_id))
            .as_deref(),
        Some("outside_partition")
    );
    assert!(!in_partition(&hq, store_id, outside));
    // A member id HQ never held is refused the same way: no oracle of who exists.
    assert_eq!(
        kiosk
            .refused("visit-none", "kiosk_visit", &visit(999_999_999, store_id))
            .as_deref(),
        Some("outside_partition")
    );
    // A visit claimed at another store.
    assert_eq!(
        kiosk
            .refused(
                "visit-elsewhere",
                "kiosk_visit",
                &visit(inside, store_id + 1)
            )
            .as_deref(),
        Some("wrong_store")
    );
    // The same visit, rightly: applied.
    assert_eq!(
        kiosk.refused("visit-ok", "kiosk_visit", &visit(inside, store_id)),
        None
    );
    assert!(hq.event_keys().contains(&"visit-ok".to_owned()));
}

#[test]
fn a_tablet_erasure_needs_a_manager_by_hqs_records_and_a_consent_grant_an_associate() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    hq.at_hq()
        .storage()
        .save_demo_associates(store_id, ts("2026-11-25 06:00:00"))
        .expect("associates");
    let (inside, _) = members(&hq, store_id);
    let tablet = Stolen::new(&hq, "tablet-1", store_id, DeviceKind::Tablet);
    let erasure =
        |by: &str, role: &str| json!({ "member_id": inside, "requested_by": by, "role": role });

    // An associate (not a manager) asks: refused.
    assert_eq!(
        tablet
            .refused(
                "erase-associate",
                "erasure_requested",
                &erasure("staff:1001", "associate")
            )
            .as_deref(),
        Some("not_authorized")
    );
    // The same associate claiming to be a manager: HQ's records say otherwise.
    assert_eq!(
        tablet
            .refused(
                "erase-claimed",
                "erasure_requested",
                &erasure("staff:1001", "manager")
            )
            .as_deref(),
        Some("not_authorized")
    );
    // Someone HQ does not know.
    assert_eq!(
        tablet
            .refused(
                "erase-stranger",
                "erasure_requested",
                &erasure("staff:4242", "manager")
            )
            .as_deref(),
        Some("not_authorized")
    );
    assert!(!erased_at_hq(&hq, inside));

    // A consent grant with no associate named is refused; a withdrawal is not.
    let consent = |granted: bool, by: Option<&str>| {
        let mut payload = json!({ "member_id": inside, "consent": "marketing", "granted": granted,
            "at": "2026-11-25 10:00:00" });
        if let Some(by) = by {
            payload["by"] = json!(by);
            payload["role"] = json!("associate");
        }
        payload
    };
    assert_eq!(
        tablet
            .refused("grant-anonymous", "consent_changed", &consent(true, None))
            .as_deref(),
        Some("not_authorized")
    );
    assert_eq!(
        tablet.refused("withdraw", "consent_changed", &consent(false, None)),
        None
    );
    assert_eq!(
        tablet.refused(
            "grant-known",
            "consent_changed",
            &consent(true, Some("staff:1001"))
        ),
        None
    );

    // The store's manager: applied, the member erased at HQ.
    assert_eq!(
        tablet.refused(
            "erase-manager",
            "erasure_requested",
            &erasure("staff:1002", "manager")
        ),
        None
    );
    assert!(erased_at_hq(&hq, inside));
}

#[test]
fn a_till_redeems_but_never_edits_members() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let (inside, _) = members(&hq, store_id);
    let till = Stolen::new(&hq, "till-1", store_id, DeviceKind::Till);
    let preferences = json!({ "member_id": inside, "preferences": [] });
    assert_eq!(
        till.refused("prefs", "preferences_set", &preferences)
            .as_deref(),
        Some("not_allowed")
    );
    let visit = json!({ "member_id": inside, "store_id": store_id, "at": "2026-11-25 10:00:00" });
    assert_eq!(
        till.refused("visit", "kiosk_visit", &visit).as_deref(),
        Some("not_allowed")
    );
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Which of `needles` (lower case) `haystack` holds, ignoring case.
fn holds(haystack: &[u8], needles: &[&str]) -> Vec<String> {
    let lower = haystack.to_ascii_lowercase();
    needles
        .iter()
        .filter(|needle| {
            lower
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .map(|needle| (*needle).to_owned())
        .collect()
}

#[test]
fn an_erasure_leaves_nothing_at_hq() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let (member_id, _) = members(&hq, store_id);
    // The member gets a name, phone and e-mail found nowhere else.
    let mut record = aisle_core::sync::records::read_member(&hq.db(), member_id)
        .expect("read")
        .expect("member");
    record.given_name = Some("Quillon".into());
    record.family_name = Some("Zephyrine".into());
    record.phone = Some("+15555550199".into());
    record.email = Some("quillon.zephyrine@example.org".into());
    hq.admin(paths::ADMIN_MEMBERS, &record);
    let needles = [
        "quillon",
        "zephyrine",
        "5555550199",
        "quillon.zephyrine@example.org",
        "zephyr tea",
    ];

    // A tablet bootstraps (HQ writes a snapshot holding the record) and
    // uploads a note and preferences about them.
    let tablet = Stolen::new(&hq, "tablet-1", store_id, DeviceKind::Tablet);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tablet.db");
    aisle_tests::hq::provision(&db, &hq, &tablet.credentials);
    crate::ok(crate::aisle(&db, &["sync"]));
    let snapshots = hq.data.path().join("snapshots");
    assert!(
        !files_under(&snapshots).is_empty(),
        "a snapshot was written"
    );
    let note =
        json!({ "member_id": member_id, "author": "Alex", "body": "Quillon likes zephyr tea" });
    assert_eq!(tablet.refused("note", "associate_note", &note), None);
    let prefs =
        json!({ "member_id": member_id, "preferences": [{ "kind": "dietary", "value": "vegan" }] });
    assert_eq!(tablet.refused("prefs", "preferences_set", &prefs), None);
    let payloads = || -> String {
        hq.db()
            .query_row(
                "SELECT group_concat(payload) FROM store_events WHERE idempotency_key IN ('note', 'prefs')",
                [],
                |row| row.get(0),
            )
            .expect("events")
    };
    let before = payloads();
    assert!(
        !holds(before.as_bytes(), &needles).is_empty(),
        "the note is there before"
    );

    hq.admin(paths::ADMIN_ERASURES, &json!({ "member_id": member_id }));

    // The feed from position 0, as the store would read it.
    let feed = hq
        .device_get(paths::CHANGES, &tablet.bearer())
        .query(&[("after", "0"), ("limit", "50000")])
        .send()
        .expect("feed")
        .text()
        .expect("feed body");
    assert!(
        feed.contains("member_erased"),
        "the tombstone is in the feed"
    );
    assert_eq!(
        holds(feed.as_bytes(), &needles),
        Vec::<String>::new(),
        "feed from 0"
    );
    // The event log keeps the facts (who, when), not the note or the preferences.
    let after = payloads();
    assert_eq!(
        holds(after.as_bytes(), &needles),
        Vec::<String>::new(),
        "event log"
    );
    assert!(!after.contains("vegan"), "{after}");
    assert!(
        after.contains(&member_id.to_string()),
        "the facts stay: {after}"
    );
    // No snapshot file is left (any could hold the record).
    assert_eq!(files_under(&snapshots), Vec::<std::path::PathBuf>::new());
    // HQ's raw database and write-ahead log, byte for byte.
    for name in ["hq.db", "hq.db-wal"] {
        let path = hq.data.path().join(name);
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert_eq!(holds(&bytes, &needles), Vec::<String>::new(), "{name}");
    }
    // The store applies the tombstone at its next sync.
    crate::ok(crate::aisle(&db, &["sync"]));
    let erased: bool = aisle_core::replica::connect(&db)
        .expect("replica")
        .query_row(
            "SELECT erased_at IS NOT NULL FROM members WHERE member_id = ?1",
            [member_id],
            |row| row.get(0),
        )
        .expect("member");
    assert!(erased);
}

#[test]
fn a_device_over_its_quota_is_throttled_and_reported() {
    let mut hq = TestHq::start_with_demo();
    hq.quotas = Some(aisle_hq::Quotas {
        lookups_per_minute: 1,
        lookup_burst: 3,
        events_per_minute: 1,
        event_burst: 4,
    });
    hq.stop();
    hq.start();
    let store_id = hq.busy_store();
    let (inside, (_, card)) = members(&hq, store_id);
    let kiosk = Stolen::new(&hq, "kiosk-greedy", store_id, DeviceKind::Kiosk);
    let other = Stolen::new(&hq, "kiosk-calm", store_id, DeviceKind::Kiosk);

    // Look-ups: the burst, then 429 (a card scanned at machine speed).
    for _ in 0..3 {
        assert_eq!(kiosk.lookup(&[("card", &card)]).0, 200);
    }
    let (status, body) = kiosk.lookup(&[("card", &card)]);
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("throttled")),
        "{body}"
    );
    assert!(body.get("member").is_none());
    // Another device has a quota of its own.
    assert_eq!(other.lookup(&[("card", &card)]).0, 200);

    // Events: four fit the burst, a fifth waits.
    let visit = |n: usize| {
        let events: Vec<Value> = (0..n)
            .map(|i| {
                json!({ "idempotency_key": format!("v-{n}-{i}"), "seq": i + 1, "kind": "kiosk_visit",
                    "payload": { "member_id": inside, "store_id": store_id, "at": "2026-11-25 10:00:00" },
                    "created_at": "2026-11-25 10:00:00" })
            })
            .collect();
        hq.device_post(paths::EVENTS, &kiosk.bearer())
            .json(&json!({ "events": events }))
            .send()
            .expect("upload")
            .status()
            .as_u16()
    };
    assert_eq!(visit(4), 200);
    assert_eq!(visit(1), 429);
    assert_eq!(
        visit(9),
        429,
        "more than the burst at once is never admitted"
    );

    // The admin sees who was throttled, and for what.
    let listed: Vec<aisle_proto::ThrottledDevice> = hq
        .client()
        .get(format!("{}{}", hq.admin_url(), paths::ADMIN_THROTTLED))
        .bearer_auth(&hq.admin_token)
        .send()
        .expect("admin")
        .json()
        .expect("json");
    let summary: Vec<(&str, &str, i64)> = listed
        .iter()
        .map(|t| (t.device_id.as_str(), t.what.as_str(), t.refused))
        .collect();
    assert_eq!(
        summary,
        [
            ("kiosk-greedy", "events", 2),
            ("kiosk-greedy", "lookups", 1)
        ]
    );
}

#[test]
fn a_redemption_of_a_coupon_hq_never_saw_issued_is_flagged() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let (inside, _) = members(&hq, store_id);
    let coupon_id: i64 = hq
        .db()
        .query_row("SELECT min(coupon_id) FROM coupons", [], |row| row.get(0))
        .expect("a coupon");
    let kiosk = Stolen::new(&hq, "kiosk-1", store_id, DeviceKind::Kiosk);
    let till = Stolen::new(&hq, "till-1", store_id, DeviceKind::Till);
    let redeemed = |serial: &str| {
        json!({ "serial": serial, "coupon_id": coupon_id, "member_id": inside,
            "issuer_store_id": store_id, "key_id": kiosk.key_id(), "channel": "kiosk",
            "expires_at": "2026-12-31 23:59:59", "store_id": store_id,
            "redeemed_at": "2026-11-25 11:00:00", "till_id": "till-1",
            "value_cents": 300, "offline_risk": false })
    };
    // Issued at the kiosk, then redeemed at the till: reconciled, not flagged.
    let issued = json!({ "serial": "1111222233334444", "coupon_id": coupon_id, "member_id": inside,
        "store_id": store_id, "key_id": kiosk.key_id(), "channel": "kiosk",
        "issued_at": "2026-11-25 10:00:00", "expires_at": "2026-12-31 23:59:59" });
    assert_eq!(kiosk.refused("issue-ok", "coupon_issued", &issued), None);
    assert_eq!(
        till.refused(
            "redeem-ok",
            "coupon_redeemed",
            &redeemed("1111222233334444")
        ),
        None
    );
    // A serial no device ever reported issuing: a minted coupon.
    assert_eq!(
        till.refused(
            "redeem-minted",
            "coupon_redeemed",
            &redeemed("9999888877776666")
        ),
        None
    );
    // Redeemed first, its issue arriving later (outboxes upload in any order): not flagged once known.
    assert_eq!(
        till.refused(
            "redeem-early",
            "coupon_redeemed",
            &redeemed("5555666677778888")
        ),
        None
    );
    let late = json!({ "serial": "5555666677778888", "coupon_id": coupon_id, "member_id": inside,
        "store_id": store_id, "key_id": kiosk.key_id(), "channel": "kiosk",
        "issued_at": "2026-11-25 09:00:00", "expires_at": "2026-12-31 23:59:59" });
    assert_eq!(kiosk.refused("issue-late", "coupon_issued", &late), None);

    let report: aisle_proto::CouponReconciliation = hq
        .client()
        .get(format!(
            "{}{}",
            hq.admin_url(),
            paths::ADMIN_COUPON_RECONCILIATION
        ))
        .bearer_auth(&hq.admin_token)
        .send()
        .expect("admin")
        .json()
        .expect("json");
    let flagged: Vec<(&str, Option<i64>, Option<&str>)> = report
        .never_issued
        .iter()
        .map(|n| (n.serial.as_str(), n.value_cents, n.till_id.as_deref()))
        .collect();
    assert_eq!(flagged, [("9999888877776666", Some(300), Some("till-1"))]);
}

/// 300 connections that never speak do not keep HQ from answering, and HQ
/// closes them once the handshake time is up.
#[test]
fn slow_connections_neither_starve_hq_nor_stay_open() {
    use std::io::Read;
    let mut hq = TestHq::start_with_demo();
    hq.limits = Some(aisle_hq::ConnectionLimits {
        handshake_timeout: std::time::Duration::from_secs(2),
        header_read_timeout: std::time::Duration::from_secs(2),
        ..aisle_hq::ConnectionLimits::default()
    });
    hq.stop();
    hq.start();
    let store_id = hq.busy_store();
    let kiosk = Stolen::new(&hq, "kiosk-1", store_id, DeviceKind::Kiosk);
    let slow: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(hq.addr).expect("connect"))
        .collect();
    // A real request on the same listener still gets its answer, well
    // within the client's 2 s.
    let answer = hq
        .device_get(paths::CHANGES, &kiosk.bearer())
        .query(&[("after", "0"), ("limit", "1")])
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .expect("HQ answers while 300 connections hang");
    assert!(answer.status().is_success(), "{}", answer.status());
    // Every silent connection is closed by HQ (end of stream) within 30 s.
    for mut stream in slow {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let read = stream.read(&mut buf);
        assert!(
            matches!(read, Ok(0))
                || read
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "HQ closed the connection: {read:?}"
        );
    }
}

/// An admin-plane GET or POST with `token` against `base`: (status, body).
fn admin_call(
    hq: &TestHq,
    base: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let url = format!("{base}{path}");
    let request = match body {
        Some(body) => hq.client().post(url).json(body),
        None => hq.client().get(url),
    };
    let response = request.bearer_auth(token).send().expect("admin call");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn the_admin_api_is_not_served_on_the_device_port() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let registration = json!({ "device_id": "kiosk-9", "store_id": store_id, "kind": "kiosk" });
    // The right token, the device port: no such endpoint, as any unknown path.
    for (path, body) in [
        (paths::ADMIN_DEVICES, Some(&registration)),
        (paths::ADMIN_THROTTLED, None),
        (paths::ADMIN_AUDIT, None),
    ] {
        let (status, answer) = admin_call(&hq, &hq.url(), path, &hq.admin_token, body);
        assert_eq!(status, 404, "{path} on the device port: {answer}");
        assert_eq!(answer["code"], "not_found");
    }
    // Nothing was done: the admin port has no record of those calls.
    let (status, audit) = admin_call(
        &hq,
        &hq.admin_url(),
        paths::ADMIN_AUDIT,
        &hq.admin_token,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        audit["entries"],
        json!([]),
        "nothing reached the admin plane"
    );
    // And the device API is not on the admin port.
    let (status, _) = admin_call(&hq, &hq.admin_url(), paths::CHANGES, &hq.admin_token, None);
    assert_eq!(status, 404);
    // The admin port does the admin's work.
    let (status, enrolment) = admin_call(
        &hq,
        &hq.admin_url(),
        paths::ADMIN_DEVICES,
        &hq.admin_token,
        Some(&registration),
    );
    assert_eq!(status, 200, "{enrolment}");
    assert!(enrolment["code"].is_string());
}

#[test]
fn every_admin_call_is_audited_with_its_token_name_refusals_included() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let kiosk = hq.register("kiosk-1", store_id, DeviceKind::Kiosk);
    let wrong = "not-the-admin-token-but-long-enough-0123456789abcdef";
    let revoke = |device: &str, token: &str| {
        let path = format!("/admin/v1/devices/{device}/revoke");
        admin_call(&hq, &hq.admin_url(), &path, token, Some(&json!({})))
    };
    let (status, answer) = revoke("kiosk-1", wrong);
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(revoke("kiosk-1", &hq.admin_token).0, 200);
    assert_eq!(revoke("no-such-device", &hq.admin_token).0, 404);
    let (status, audit) = admin_call(
        &hq,
        &hq.admin_url(),
        paths::ADMIN_AUDIT,
        &hq.admin_token,
        None,
    );
    assert_eq!(status, 200);
    let audit: aisle_proto::AdminAuditList = serde_json::from_value(audit).expect("audit");
    let rows: Vec<(Option<&str>, &str, Option<&str>, &str)> = audit
        .entries
        .iter()
        .map(|e| {
            (
                e.token_name.as_deref(),
                e.action.as_str(),
                e.target.as_deref(),
                e.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                Some("test-admin"),
                "create_enrolment",
                Some("kiosk-1"),
                "ok"
            ),
            (None, "enrol", Some("kiosk-1"), "ok"),
            (None, "revoke_device", Some("kiosk-1"), "unauthorized"),
            (Some("test-admin"), "revoke_device", Some("kiosk-1"), "ok"),
            (
                Some("test-admin"),
                "revoke_device",
                Some("no-such-device"),
                "not_found"
            ),
        ]
    );
    assert!(audit.entries.iter().all(|e| !e.at.is_empty()));
    // Neither token's value is anywhere in the audit.
    let text = serde_json::to_string(&audit).expect("json");
    assert!(!text.contains(&hq.admin_token) && !text.contains(wrong));
    // The revoked kiosk is refused from now on.
    let refused = aisle_core::sync::Transport::new(&aisle_core::sync::Credentials {
        hq_url: hq.url(),
        device_id: kiosk.device_id.clone(),
        store_id,
        secret: kiosk.secret.clone(),
        hq_public_key: kiosk.hq_public_key.clone(),
        ca_pem: Some(hq.ca_pem.clone()),
        coupon_issuer: None,
        card_key: None,
    })
    .expect("transport")
    .changes(0, 1)
    .expect_err("revoked");
    assert!(
        matches!(
            refused,
            aisle_core::sync::SyncError::Refused { status: 401, .. }
        ),
        "{refused}"
    );
}

#[test]
fn an_enrolment_code_works_once_until_it_expires_and_its_answer_holds_no_secret() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let enrolment = hq.enrolment("tablet-1", store_id, DeviceKind::Tablet);
    // The admin sees a code, never the device's secret.
    let shown = serde_json::to_value(&enrolment).expect("json");
    assert_eq!(
        shown
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(
            ["code", "device_id", "expires_at", "kind", "store_id"]
                .map(String::from)
                .to_vec()
        )
    );
    assert_eq!(
        enrolment.code.len(),
        39,
        "32 hex digits in groups of four: {}",
        enrolment.code
    );
    // Typed in lower case without dashes, it still works: the device gets
    // its credentials over TLS and its own issuing key.
    let typed = enrolment.code.replace('-', "").to_lowercase();
    let credentials = aisle_core::sync::enrol(&hq.url(), Some(&hq.ca_pem), &typed).expect("enrol");
    assert_eq!(
        (credentials.device_id.as_str(), credentials.store_id),
        ("tablet-1", store_id)
    );
    assert_eq!(credentials.kind, Some(DeviceKind::Tablet));
    let key_id = credentials.coupon_issuer.as_ref().expect("own key").key_id;
    let registered: Option<String> = hq
        .db()
        .query_row(
            "SELECT device_id FROM coupon_issuers WHERE store_id = ?1 AND key_id = ?2",
            (store_id, key_id),
            |row| row.get(0),
        )
        .expect("HQ holds the key's public half");
    assert_eq!(registered.as_deref(), Some("tablet-1"));
    // Only the secret's digest is at HQ.
    let stored: String = hq
        .db()
        .query_row(
            "SELECT secret_sha256 FROM devices WHERE device_id = 'tablet-1'",
            [],
            |row| row.get(0),
        )
        .expect("device");
    assert_ne!(stored, credentials.secret);

    let refusal = |code: &str| {
        let err = aisle_core::sync::enrol(&hq.url(), Some(&hq.ca_pem), code).expect_err("refused");
        match err {
            aisle_core::sync::SyncError::Refused {
                status,
                code,
                message,
                ..
            } => (status, code, message),
            other => panic!("{other}"),
        }
    };
    let used = refusal(&enrolment.code);
    assert_eq!(used.0, 401, "{used:?}");
    assert_eq!(used.2, "unknown, used or expired enrolment code");
    // A made-up code gets the same answer (nothing to tell codes apart by).
    assert_eq!(refusal("0000-0000-0000-0000-0000-0000-0000-0000"), used);
    // An expired code: created two days ago, good for an hour.
    let expired = {
        hq.at_hq()
            .storage()
            .create_enrolment(
                &aisle_proto::DeviceRegistration {
                    device_id: "till-1".into(),
                    store_id,
                    kind: DeviceKind::Till,
                },
                "test-admin",
                3600,
                aisle_hq::now().plus_secs(-2 * 86_400),
            )
            .expect("enrolment")
    };
    assert_eq!(refusal(&expired.code), used);
    let till_known: bool = hq
        .db()
        .query_row(
            "SELECT count(*) FROM devices WHERE device_id = 'till-1'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .expect("count");
    assert!(!till_known, "an expired code registers nothing");
}

#[test]
fn a_revoked_devices_coupon_key_is_refused_at_a_store_after_sync() {
    use aisle_core::offers::coupon::{Channel, Refusal};
    use aisle_core::offers::ledger::{self, IssueRequest, RedeemPolicy, RedeemRequest};
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let (member_id, _) = members(&hq, store_id);
    hq.admin(
        paths::ADMIN_CAMPAIGNS,
        &aisle_proto::CampaignRecord {
            campaign_id: 900_101,
            name: "Revocation test".into(),
            campaign_type: None,
            starts_on: "2026-01-01".into(),
            ends_on: "2026-12-31".into(),
            targets: vec![member_id],
        },
    );
    hq.admin(
        paths::ADMIN_COUPONS,
        &aisle_proto::CouponRecord {
            coupon_id: 900_101,
            code: "T900101".into(),
            campaign_id: 900_101,
            description: Some("1.00 off".into()),
            discount_cents: Some(100),
            discount_percent: None,
            product_ids: Vec::new(),
        },
    );
    let kiosk = hq.provisioned_store("kiosk-1", DeviceKind::Kiosk);
    let till = hq.provisioned_store("till-1", DeviceKind::Till);
    let sync = |db: &std::path::Path| {
        let output = crate::aisle(db, &["sync"]);
        assert!(output.status.success(), "sync: {}", crate::text(&output));
    };
    sync(&kiosk.db);
    sync(&till.db);
    let at_kiosk = aisle_core::replica::open_writer(&kiosk.db).expect("kiosk");
    let at_till = aisle_core::replica::open_writer(&till.db).expect("till");
    let t0 = ts("2026-06-01 10:00:00").unix().unsigned_abs();
    let issue = |issued_at: u64| {
        ledger::issue(
            &at_kiosk,
            &IssueRequest {
                coupon_id: 900_101,
                member_id,
                store_id,
                channel: Channel::Kiosk,
                issued_at,
                expires_at: issued_at + 14 * 86_400,
            },
        )
        .expect("issue at the kiosk")
    };
    let policy = RedeemPolicy::default();
    let check = |code: &str| {
        ledger::check(
            &at_till,
            &RedeemRequest {
                code,
                member_id: Some(member_id),
                store_id,
                till_id: "till-1",
                now_secs: t0 + 3600,
            },
            &policy,
        )
    };
    // A genuine coupon, reported to HQ before anything goes wrong.
    let genuine = issue(t0);
    sync(&kiosk.db);
    sync(&till.db);
    check(&genuine.token).expect("the till verifies the kiosk's coupon offline");

    // Another kiosk of the store cannot claim kiosk-1's key for its coupons.
    let other = Stolen::new(&hq, "kiosk-2", store_id, DeviceKind::Kiosk);
    let (kiosk_key, _) = aisle_core::keys::issuing_key(&at_kiosk)
        .expect("kiosk key")
        .expect("kiosk key id");
    assert_ne!(kiosk_key, other.key_id());
    let claimed = json!({ "serial": "1212343456567878", "coupon_id": 900_101, "member_id": member_id,
        "store_id": store_id, "key_id": kiosk_key, "channel": "kiosk",
        "issued_at": "2026-06-01 10:00:00", "expires_at": "2026-06-15 10:00:00" });
    assert_eq!(
        other
            .refused("claim-key", "coupon_issued", &claimed)
            .as_deref(),
        Some("wrong_key")
    );

    // The kiosk is stolen: the thief keeps its replica and its key. HQ revokes it.
    hq.admin("/admin/v1/devices/kiosk-1/revoke", &json!({}));
    let minted = issue(t0 + 60);
    // A till that has not synced since cannot know yet.
    check(&minted.token).expect("not yet known to be revoked");
    sync(&till.db);
    let refused = check(&minted.token).expect_err("revoked key");
    assert_eq!(refused.refusal(), Some(Refusal::RevokedKey), "{refused}");
    // Backdating the instance does not help: the signature is the thief's to make.
    let backdated = issue(t0 - 86_400);
    assert_eq!(
        check(&backdated.token).expect_err("revoked").refusal(),
        Some(Refusal::RevokedKey)
    );
    // The coupon the kiosk issued and reported before the theft stays good.
    check(&genuine.token).expect("issued and known before the revocation");
    // The stolen kiosk itself is refused at HQ.
    let output = crate::aisle(&kiosk.db, &["sync"]);
    assert!(!output.status.success(), "the revoked kiosk still syncs");
}

#[test]
fn one_address_flooding_hq_is_throttled_while_others_are_served() {
    let mut hq = TestHq::start_with_demo();
    hq.limits = Some(aisle_hq::ConnectionLimits {
        per_address_per_minute: 60,
        per_address_burst: 5,
        ..aisle_hq::ConnectionLimits::default()
    });
    hq.stop();
    hq.start();
    let from = |address: &str| hq.client_from(address.parse().expect("ip"));
    let flood = from("127.0.0.1");
    // Requests that would be refused anyway (no protocol header, no
    // credentials: 426) count too: the limit comes before any work.
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            flood
                .get(format!("{}{}?after=0", hq.url(), paths::CHANGES))
                .send()
                .expect("request")
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses[..5], [426; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429; 3], "{statuses:?}");
    let throttled = flood
        .get(format!("{}{}", hq.url(), paths::CHANGES))
        .send()
        .expect("request");
    let body: Value = throttled.json().expect("json");
    assert_eq!(body["code"], "throttled");
    // Another address is served meanwhile.
    let other = from("127.0.0.2")
        .get(format!("{}{}?after=0", hq.url(), paths::CHANGES))
        .send()
        .expect("request");
    assert_eq!(other.status().as_u16(), 426, "answered, not throttled");
}

#[test]
fn malformed_or_oversized_bodies_get_a_plain_refusal_without_parser_details() {
    let hq = TestHq::start_with_demo();
    let store_id = hq.busy_store();
    let kiosk = Stolen::new(&hq, "kiosk-1", store_id, DeviceKind::Kiosk);
    let post = |path: &str, body: String| {
        let response = hq
            .device_post(path, &kiosk.bearer())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json::<Value>().expect("a JSON error"))
    };
    let (status, body) = post(paths::EVENTS, r#"{"events": [{"seq": "one"}]}"#.into());
    assert_eq!(status, 400);
    assert_eq!(body["code"], "malformed");
    let message = body["message"].as_str().expect("message");
    assert!(
        !message.contains("seq") && !message.contains("line"),
        "{message}"
    );
    let (status, body) = post(
        paths::ENROL,
        format!(r#"{{"code": "{}"}}"#, "A".repeat(100_000)),
    );
    assert_eq!((status, body["code"].as_str()), (413, Some("too_large")));
    let (status, body) = post(paths::COUPON_KEYS, r#"{"public_key": "zz"}"#.into());
    assert_eq!(status, 422, "{body}");
}
