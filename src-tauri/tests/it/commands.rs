//! The commands through Tauri's real IPC path (command lookup, argument
//! deserialization, the error shape) on the mock runtime, over the demo
//! replica: sign-in (PINs, lockout, a manager's unlock, idle lock, roles),
//! search, the client screen, edits that reach the outbox, coupons issued
//! under the offers' rules, the store view, refusals as `{ code, message }`;
//! and the TypeScript bindings kept equal to the DTOs.

use crate::support;
use aisle_core::time::lit::ts;
use aisle_proto::DeviceKind;

use std::path::Path;

use aisle_associate::dto::{
    ApiError, Client360, ClientOffers, IssuedCoupon, MemberHit, ProductCard, SignedIn, StoreView,
    SyncStatus,
};
use aisle_associate::{AppState, builder};
use aisle_core::runtime::Clock;
use rusqlite::Connection;
use serde_json::{Value, json};
use tauri::test::{INVOKE_KEY, get_ipc_response, mock_builder, mock_context, noop_assets};

const NOW: &str = "2017-10-20 12:00:00";

struct App {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    /// The app's clock: stepped, at `NOW` until a test moves it.
    clock: Clock,
    webview: tauri::WebviewWindow<tauri::test::MockRuntime>,
    _app: tauri::App<tauri::test::MockRuntime>,
}

/// The demo associate (role associate) and manager, and their PINs.
const ALEX: (i64, &str) = (1001, "2468");
const SAM: (i64, &str) = (1002, "1357");

/// The app over a fresh demo replica, the associate Alex signed in.
fn app() -> App {
    let app = app_with(aisle_core::staff::Policy::default());
    app.sign_in(ALEX);
    app
}

/// The app over a fresh demo replica, nobody signed in.
fn app_with(policy: aisle_core::staff::Policy) -> App {
    app_configured(policy, |_, _| None)
}

/// The same, its camera replaced by the pictures `camera` makes (given the
/// replica and a folder).
fn app_configured(
    policy: aisle_core::staff::Policy,
    camera: impl FnOnce(&Path, &Path) -> Option<std::path::PathBuf>,
) -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    aisle_tests::kiosk_replica(&db, NOW);
    let clock = Clock::stepped_at(NOW).expect("now");
    let mut state = AppState::open(db.clone(), None, clock.clone(), policy).expect("state");
    state.camera_source = camera(&db, dir.path());
    let app = builder(mock_builder(), state)
        .build(mock_context(noop_assets()))
        .expect("mock app");
    let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("mock window");
    App {
        _dir: dir,
        db,
        clock,
        webview,
        _app: app,
    }
}

impl App {
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.webview,
            tauri::webview::InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().expect("url"),
                body: tauri::ipc::InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|body| body.deserialize::<Value>().expect("json answer"))
    }

    fn ok<T: serde::de::DeserializeOwned>(&self, cmd: &str, args: Value) -> T {
        let answer = self
            .invoke(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"));
        serde_json::from_value(answer).expect("the DTO")
    }

    fn err(&self, cmd: &str, args: Value) -> ApiError {
        let error = self.invoke(cmd, args).expect_err("the command refuses");
        serde_json::from_value(error).expect("{ code, message }")
    }

    fn conn(&self) -> Connection {
        aisle_core::replica::connect(&self.db).expect("replica")
    }

    fn sign_in(&self, (staff_id, pin): (i64, &str)) -> SignedIn {
        self.ok(
            "sign_in",
            json!({ "args": { "staffId": staff_id, "pin": pin } }),
        )
    }

    fn pending(&self) -> u32 {
        let status: SyncStatus = self.ok("sync_status", json!({}));
        assert!(
            !status.provisioned && !status.offline,
            "a demo replica is never offline"
        );
        status.pending_events
    }

    fn outbox(&self, kind: &str, member: i64) -> Vec<Value> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT payload FROM outbox WHERE kind = ?1
                 AND json_extract(payload, '$.member_id') = ?2 ORDER BY rowid",
            )
            .expect("sql");
        stmt.query_map(rusqlite::params![kind, member], |row| {
            row.get::<_, String>(0)
        })
        .expect("query")
        .map(|text| serde_json::from_str(&text.expect("row")).expect("json"))
        .collect()
    }

    fn edit(&self, member: i64, edit: &Value) -> Result<Value, Value> {
        self.invoke(
            "edit_client",
            json!({ "args": { "memberId": member, "edit": edit } }),
        )
    }
}

fn showcase(app: &App) -> (i64, String) {
    let conn = app.conn();
    let member = aisle_core::demo::showcase_member(&conn)
        .expect("sql")
        .expect("showcase");
    let family: String = conn
        .query_row(
            "SELECT family_name FROM members WHERE member_id = ?1",
            [member],
            |row| row.get(0),
        )
        .expect("name");
    (member, family)
}

#[test]
fn search_as_you_type_finds_the_client_by_name_prefix_and_card() {
    let app = app();
    let (member, family) = showcase(&app);
    let prefix = &family[..3.min(family.len())];
    // Capped at 20, whatever is asked: a letter that starts more names than that.
    let letter = ('a'..='z')
        .map(String::from)
        .find(|l| {
            aisle_core::members::search(&app.conn(), l, 1_000)
                .expect("search")
                .len()
                > 20
        })
        .expect("a common first letter");
    let many: Vec<MemberHit> = app.ok(
        "search_members",
        json!({ "args": { "text": letter, "limit": 100 } }),
    );
    assert_eq!(many.len(), 20);
    let hits: Vec<MemberHit> = app.ok(
        "search_members",
        json!({ "args": { "text": family, "limit": 100 } }),
    );
    assert!(
        hits.iter().any(|h| h.member_id == member),
        "{prefix}: {hits:?}"
    );
    let card: String = app
        .conn()
        .query_row(
            "SELECT card_number FROM member_cards WHERE member_id = ?1",
            [member],
            |row| row.get(0),
        )
        .expect("card");
    let hits: Vec<MemberHit> = app.ok("search_members", json!({ "args": { "text": card } }));
    assert_eq!(hits.first().map(|h| h.member_id), Some(member));
    // The list masks the card until the client is opened.
    assert_eq!(
        hits.first().and_then(|h| h.card_number.clone()),
        Some(format!("•••• {}", &card[card.len() - 4..]))
    );
    let none: Vec<MemberHit> = app.ok("search_members", json!({ "args": { "text": "   " } }));
    assert!(none.is_empty());
    // Every search is audited: who, what, how many hits.
    let audited: Vec<(String, String)> = app
        .conn()
        .prepare(
            "SELECT actor, detail FROM audit_log WHERE action = 'member_search' ORDER BY audit_id",
        )
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    assert_eq!(audited.len(), 4, "{audited:?}");
    assert!(audited.iter().all(|(actor, _)| actor.starts_with("staff:")));
    let detail: Value = serde_json::from_str(&audited[2].1).expect("json");
    assert_eq!(
        (detail["text"].as_str(), detail["hits"].as_u64()),
        (Some(card.as_str()), Some(1))
    );
}

#[test]
fn the_client_screen_has_profile_history_spend_and_reasoned_suggestions() {
    let app = app();
    let (member, _) = showcase(&app);
    let client: Client360 = app.ok("client_360", json!({ "memberId": member }));
    assert_eq!(client.profile.member_id, member);
    assert!(client.profile.personalization && client.personal);
    assert!(!client.history.is_empty());
    assert!(
        client
            .history
            .windows(2)
            .all(|w| w[0].purchased_at >= w[1].purchased_at),
        "newest first"
    );
    for basket in &client.history {
        assert_eq!(
            basket.total_cents,
            basket.lines.iter().map(|l| l.cents).sum::<i64>()
        );
    }
    // Spend: at most twelve months up to NOW, and the same total as the baskets say.
    let months: std::collections::BTreeSet<&str> =
        client.spend.iter().map(|s| s.month.as_str()).collect();
    assert!(!months.is_empty() && months.len() <= 12, "{months:?}");
    assert!(months.iter().all(|m| *m <= "2017-10" && *m >= "2016-11"));
    let total: i64 = app
        .conn()
        .query_row(
            "SELECT sum(l.sales_cents) FROM baskets b JOIN purchase_lines l USING (basket_id)
             WHERE b.member_id = ?1 AND b.purchased_at >= '2016-11-01' AND b.purchased_at < '2017-11-01'",
            [member],
            |row| row.get(0),
        )
        .expect("sum");
    assert_eq!(client.spend.iter().map(|s| s.cents).sum::<i64>(), total);
    assert!(!client.buy_again.is_empty());
    assert!(client.buy_again.iter().all(|s| !s.reason.is_empty()));
}

#[test]
fn a_note_is_kept_with_its_outbox_event_and_bad_input_is_refused() {
    let app = app();
    let (member, _) = showcase(&app);
    let pending = |app: &App| app.pending();
    let before = pending(&app);
    app.edit(
        member,
        &json!({ "kind": "note", "body": "Prefers oat milk" }),
    )
    .expect("note");
    assert_eq!(
        pending(&app),
        before + 1,
        "the note waits in the outbox for HQ"
    );
    let client: Client360 = app.ok("client_360", json!({ "memberId": member }));
    assert!(
        client
            .profile
            .notes
            .iter()
            .any(|n| n.body == "Prefers oat milk")
    );
    assert_eq!(pending(&app), before + 2, "the view is audited for HQ too");

    let author: Vec<Value> = app.outbox("associate_note", member);
    assert_eq!(author[0]["author"], "Alex Moreau", "{author:?}");
    let empty: ApiError = serde_json::from_value(
        app.edit(member, &json!({ "kind": "note", "body": "  " }))
            .expect_err("refused"),
    )
    .expect("error");
    assert_eq!(empty.code, "bad_request");
    assert_eq!(pending(&app), before + 2, "nothing written");
    let unknown = app.err("client_360", json!({ "memberId": 987_654_321 }));
    assert_eq!(unknown.code, "not_found");
    assert!(unknown.message.contains("987654321"), "{}", unknown.message);
    // Arguments of the wrong shape are refused by IPC before any code runs.
    assert!(
        app.invoke("client_360", json!({ "memberId": "nope" }))
            .is_err()
    );
    assert!(app.invoke("no_such_command", json!({})).is_err());
}

/// Every view is audited (a row and an event for HQ); without consent to
/// personalization the history and spend are withheld and the suggestions
/// are what is popular here; an erased client is refused as such.
#[test]
fn views_are_audited_and_consent_decides_what_is_shown() {
    let app = app();
    let (without, erased): (i64, i64) = app
        .conn()
        .query_row(
            "SELECT (SELECT min(member_id) FROM members WHERE consent_personalization = 0 AND erased_at IS NULL
                       AND EXISTS (SELECT 1 FROM baskets b WHERE b.member_id = members.member_id)),
                    (SELECT max(member_id) FROM members WHERE erased_at IS NULL)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("members");
    let client: Client360 = app.ok("client_360", json!({ "memberId": without }));
    assert!(!client.history_shown && !client.personal);
    assert!(
        client.history.is_empty() && client.spend.is_empty(),
        "withheld"
    );
    assert!(client.notice.is_some());
    assert!(
        client
            .buy_again
            .iter()
            .chain(&client.discover)
            .all(|s| s.reason.starts_with("popular")),
        "nothing from their history"
    );
    let (audits, events): (i64, i64) = app
        .conn()
        .query_row(
            "SELECT (SELECT count(*) FROM audit_log WHERE action = 'profile_viewed' AND member_id = ?1),
                    (SELECT count(*) FROM outbox WHERE kind = 'profile_viewed'
                       AND json_extract(payload, '$.member_id') = ?1)",
            [without],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("audit");
    assert_eq!((audits, events), (1, 1));

    // Erased (as HQ's tombstone would): refused, and nothing about them returned.
    {
        let mut conn = aisle_core::replica::open_writer(&app.db).expect("writer");
        let tx = conn.transaction().expect("tx");
        aisle_core::members::erase(&tx, erased, ts("2017-10-20 11:00:00")).expect("erase");
        tx.commit().expect("commit");
    }
    let refused = app.err("client_360", json!({ "memberId": erased }));
    assert_eq!(refused.code, "erased");
}

/// PINs are checked offline against HQ's Argon2 hashes; an unknown staff
/// number is refused like a wrong PIN; five wrong PINs lock the number (the
/// right PIN then too) until a manager unlocks it; every attempt is audited.
#[test]
fn sign_in_checks_the_pin_locks_out_and_a_manager_unlocks() {
    let app = app_with(aisle_core::staff::Policy::default());
    // Nothing works before sign-in but the sync bar.
    let refused = app.err("search_members", json!({ "args": { "text": "a" } }));
    assert_eq!(refused.code, "signed_out");
    assert!(app.ok::<Option<SignedIn>>("whoami", json!({})).is_none());
    app.ok::<SyncStatus>("sync_status", json!({}));

    let bad = app.err(
        "sign_in",
        json!({ "args": { "staffId": 1001, "pin": "24a8" } }),
    );
    assert_eq!(bad.code, "bad_pin");
    let wrong = app.err(
        "sign_in",
        json!({ "args": { "staffId": 1001, "pin": "1111" } }),
    );
    assert_eq!(wrong.code, "wrong_pin");
    assert!(
        wrong.message.contains("4 attempts left"),
        "{}",
        wrong.message
    );
    let unknown = app.err(
        "sign_in",
        json!({ "args": { "staffId": 4242, "pin": "2468" } }),
    );
    assert_eq!(
        (
            unknown.code.as_str(),
            unknown.message.contains("4 attempts left")
        ),
        ("wrong_pin", true),
        "an unknown number is answered like a wrong PIN"
    );
    for left in [3, 2, 1] {
        let wrong = app.err(
            "sign_in",
            json!({ "args": { "staffId": 1001, "pin": "1111" } }),
        );
        assert!(
            wrong.message.contains(&format!("{left} attempts left")),
            "{}",
            wrong.message
        );
    }
    let locked = app.err(
        "sign_in",
        json!({ "args": { "staffId": 1001, "pin": "1111" } }),
    );
    assert_eq!(locked.code, "locked");
    assert!(
        locked.message.contains("2017-10-20 12:15:00"),
        "{}",
        locked.message
    );
    let still = app.err(
        "sign_in",
        json!({ "args": { "staffId": 1001, "pin": "2468" } }),
    );
    assert_eq!(
        still.code, "locked",
        "the right PIN does not lift a lockout"
    );

    // A restart keeps the lockout (it is in the replica).
    let state = AppState::open(
        app.db.clone(),
        None,
        app.clock.clone(),
        aisle_core::staff::Policy::default(),
    )
    .expect("state");
    let mut conn = aisle_core::replica::open_writer(&app.db).expect("writer");
    let again = aisle_core::staff::sign_in(
        &mut conn,
        1001,
        "2468",
        state.store_id(),
        ts(NOW),
        &state.policy,
    );
    assert!(
        matches!(again, Err(aisle_core::staff::StaffError::Locked { .. })),
        "{again:?}"
    );

    // An associate cannot unlock; a manager can, and sees who is locked.
    let sam = app.sign_in(SAM);
    assert_eq!(
        (sam.display_name.as_str(), sam.role.as_str()),
        ("Sam Diallo", "manager")
    );
    let store: StoreView = app.ok("store_view", json!({}));
    assert_eq!(
        store
            .locked_out
            .iter()
            .map(|l| (l.staff_id, l.failures))
            .collect::<Vec<_>>(),
        vec![(1001, 5)]
    );
    assert!(app.ok::<bool>("unlock_staff", json!({ "staffId": 1001 })));
    let alex = app.sign_in(ALEX);
    assert_eq!((alex.staff_id, alex.role.as_str()), (1001, "associate"));
    let who: Option<SignedIn> = app.ok("whoami", json!({}));
    assert_eq!(who.map(|w| w.staff_id), Some(1001));
    let forbidden = app.err("unlock_staff", json!({ "staffId": 4242 }));
    assert_eq!(forbidden.code, "forbidden");

    let audits: Vec<(String, String)> = app
        .conn()
        .prepare(
            "SELECT actor, action FROM audit_log WHERE action LIKE 'sign_in%' ORDER BY audit_id",
        )
        .expect("sql")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let count = |action: &str| audits.iter().filter(|(_, a)| a == action).count();
    assert_eq!(count("sign_in_refused"), 6, "{audits:?}");
    assert_eq!(count("sign_in_locked"), 2, "{audits:?}");
    assert_eq!(count("sign_in_unlocked"), 1, "{audits:?}");
    assert_eq!(count("sign_in"), 2, "{audits:?}");
    let reason: String = app
        .conn()
        .query_row(
            "SELECT json_extract(detail, '$.reason') FROM audit_log WHERE actor = 'staff:4242'",
            [],
            |row| row.get(0),
        )
        .expect("audit of the unknown number");
    assert_eq!(reason, "unknown_staff");

    // Signing out ends the session.
    app.ok::<Value>("sign_out", json!({}));
    assert_eq!(app.err("store_view", json!({})).code, "signed_out");
}

/// A session not used for the idle time locks itself; using it keeps it
/// open. Time is the app's stepped clock: nothing sleeps.
#[test]
fn the_tablet_locks_itself_when_left_idle() {
    let app = app_with(aisle_core::staff::Policy::default());
    let idle = aisle_core::staff::Policy::default().idle_lock_secs;
    let alex = app.sign_in(ALEX);
    assert_eq!(u64::from(alex.idle_lock_secs), idle);
    let step = std::time::Duration::from_secs(idle) / 2;
    // Used every half idle time, for three idle times: still open.
    for _ in 0..6 {
        app.clock.advance(step);
        app.ok::<Value>("keep_alive", json!({}));
    }
    // Then left for longer than the idle time: locked.
    app.clock
        .advance(std::time::Duration::from_secs(idle) + std::time::Duration::from_millis(1));
    let locked = app.err("search_members", json!({ "args": { "text": "a" } }));
    assert_eq!(locked.code, "signed_out");
    assert!(
        locked.message.contains("locked itself"),
        "{}",
        locked.message
    );
    assert!(app.ok::<Option<SignedIn>>("whoami", json!({})).is_none());
}

/// Preferences and consents change the replica and reach the outbox in one
/// transaction, checked first; a withdrawn consent hides the history at once.
#[test]
fn preferences_and_consents_are_edited_checked_and_queued_for_hq() {
    let app = app();
    let (member, _) = showcase(&app);
    let before = app.pending();
    app.edit(
        member,
        &json!({ "kind": "preferences", "preferences": [
            { "kind": "dietary", "value": " vegetarian " },
            { "kind": "size", "value": "M" },
            { "kind": "size", "value": "M" },
        ] }),
    )
    .expect("preferences");
    let client: Client360 = app.ok("client_360", json!({ "memberId": member }));
    let prefs: Vec<(String, String)> = client
        .profile
        .preferences
        .iter()
        .map(|p| (p.kind.clone(), p.value.clone()))
        .collect();
    assert_eq!(prefs.len(), 2, "trimmed and without duplicates: {prefs:?}");
    assert!(prefs.contains(&("dietary".into(), "vegetarian".into())));
    let events = app.outbox("preferences_set", member);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["preferences"].as_array().map(Vec::len), Some(2));

    for bad in [
        json!({ "kind": "preferences", "preferences": [{ "kind": "colour", "value": "red" }] }),
        json!({ "kind": "preferences", "preferences": [{ "kind": "brand", "value": "" }] }),
        json!({ "kind": "consent", "consent": "telepathy", "granted": true }),
        json!({ "kind": "teleport" }),
    ] {
        let error = app.edit(member, &bad).expect_err("refused");
        let code = error.get("code").and_then(Value::as_str).map(str::to_owned);
        // Unknown edit kinds are refused by IPC deserialization (a string).
        assert!(
            code.as_deref() == Some("bad_request") || error.is_string(),
            "{bad}: {error}"
        );
    }

    app.edit(
        member,
        &json!({ "kind": "consent", "consent": "personalization", "granted": false }),
    )
    .expect("withdraw");
    let client: Client360 = app.ok("client_360", json!({ "memberId": member }));
    assert!(!client.profile.personalization && !client.history_shown);
    assert!(client.history.is_empty());
    let consent = app.outbox("consent_changed", member);
    assert_eq!(consent[0]["granted"], false);
    // preferences, consent, and two audited views
    assert_eq!(app.pending(), before + 4);
    let edits: i64 = app
        .conn()
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'client_edited' AND actor = 'staff:1001' AND member_id = ?1",
            [member],
            |row| row.get(0),
        )
        .expect("audit");
    assert_eq!(edits, 2);
}

/// The associate sees the offers the rules allow with reasons, issues one
/// (an instance on the associate channel with its event), and the client
/// then holds it; the store view counts it.
#[test]
fn an_associate_issues_an_eligible_coupon() {
    let app = app();
    let (member, _) = showcase(&app);
    let offers: ClientOffers = app.ok("client_offers", json!({ "memberId": member }));
    let offer = offers.eligible.first().expect("an eligible offer").clone();
    assert!(offers.eligible.iter().all(|o| !o.reason.is_empty()));
    assert!(offer.p_redeem > 0.0 && offer.p_redeem < 1.0);
    let issued: IssuedCoupon = app.ok(
        "issue_coupon",
        json!({ "args": { "memberId": member, "couponId": offer.coupon_id } }),
    );
    assert_eq!(issued.numeric_code.len(), 17);
    assert!(issued.token.starts_with("AISLEC2:"));
    let (channel, store): (String, i64) = app
        .conn()
        .query_row(
            "SELECT channel, store_id FROM coupon_issues WHERE serial = ?1",
            [&issued.serial],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("issued");
    assert_eq!(channel, "associate");
    let events = app.outbox("coupon_issued", member);
    assert!(events.iter().any(|e| e["serial"] == issued.serial.as_str()));
    let after: ClientOffers = app.ok("client_offers", json!({ "memberId": member }));
    assert!(after.held.iter().any(|c| c.serial == issued.serial));
    assert!(
        after
            .eligible
            .iter()
            .all(|o| o.coupon_id != offer.coupon_id),
        "one coupon per campaign: the issued offer is no longer suggested"
    );
    let again = app.err(
        "issue_coupon",
        json!({ "args": { "memberId": member, "couponId": offer.coupon_id } }),
    );
    assert_ne!(again.code, "internal", "{again:?}");
    let unknown = app.err(
        "issue_coupon",
        json!({ "args": { "memberId": member, "couponId": 999_999 } }),
    );
    assert_eq!(unknown.code, "unknown_coupon");

    // The store view: the coupon, and a kiosk visit recorded today.
    {
        let mut conn = aisle_core::replica::open_writer(&app.db).expect("writer");
        aisle_core::edits::record_visit(&mut conn, member, Some(store), ts("2017-10-20 09:00:00"))
            .expect("visit");
        aisle_core::edits::record_visit(&mut conn, member, Some(store), ts("2017-10-19 09:00:00"))
            .expect("yesterday's visit");
    }
    let view: StoreView = app.ok("store_view", json!({}));
    assert_eq!(view.store_id, store);
    assert_eq!(view.day, "2017-10-20");
    assert_eq!((view.kiosk_visits, view.kiosk_members), (1, 1));
    assert_eq!(view.coupons_issued_associate, 1);
    assert!(view.locked_out.is_empty(), "an associate sees no lockouts");
}

/// Only a manager requests an erasure; it is queued for HQ, shown, and the
/// client takes no more edits or coupons until HQ's tombstone arrives.
#[test]
fn an_erasure_request_needs_a_manager_and_freezes_the_profile() {
    let app = app();
    let (member, _) = showcase(&app);
    let refused = app
        .edit(member, &json!({ "kind": "erasure" }))
        .expect_err("associate");
    assert_eq!(refused["code"], "forbidden");
    assert!(app.outbox("erasure_requested", member).is_empty());
    app.sign_in(SAM);
    app.edit(member, &json!({ "kind": "erasure" }))
        .expect("manager");
    let events = app.outbox("erasure_requested", member);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["requested_by"], "staff:1002");
    let client: Client360 = app.ok("client_360", json!({ "memberId": member }));
    assert_eq!(client.erasure_requested_at.as_deref(), Some(NOW));
    let frozen = app
        .edit(member, &json!({ "kind": "note", "body": "hello" }))
        .expect_err("frozen");
    assert_eq!(frozen["code"], "erasure_pending");
    assert_eq!(
        app.err("client_offers", json!({ "memberId": member })).code,
        "erasure_pending"
    );
    // HQ's tombstone: the profile is gone, and so is the request.
    {
        let mut conn = aisle_core::replica::open_writer(&app.db).expect("writer");
        let tx = conn.transaction().expect("tx");
        aisle_core::members::erase(&tx, member, ts("2017-10-20 12:30:00")).expect("erase");
        tx.commit().expect("commit");
    }
    assert_eq!(
        app.err("client_360", json!({ "memberId": member })).code,
        "erased"
    );
    let left: i64 = app
        .conn()
        .query_row("SELECT count(*) FROM erasure_requests", [], |row| {
            row.get(0)
        })
        .expect("sql");
    assert_eq!(left, 0);
}

/// A product's card: price and place here, and what is often bought with it.
#[test]
fn a_product_shows_what_is_often_bought_with_it() {
    let app = app();
    let (member, _) = showcase(&app);
    let client: Client360 = app.ok("client_360", json!({ "memberId": member }));
    let product = client.buy_again.first().expect("a pick").product_id;
    let card: ProductCard = app.ok("product_card", json!({ "productId": product }));
    assert_eq!(card.product_id, product);
    assert!(!card.bought_together.is_empty());
    assert!(card.bought_together.iter().all(|p| p.product_id != product));
    assert_eq!(
        app.err("product_card", json!({ "productId": 1 })).code,
        "not_found"
    );
}

/// "Scan card": the camera (pictures here) shows a member's card; the
/// client is found after two frames agree. A card with a wrong check digit
/// is refused as such, and nothing at all ends with `scan_stopped`.
#[test]
fn a_card_shown_to_the_camera_finds_the_client() {
    let card = std::cell::RefCell::new(String::new());
    let app = app_configured(aisle_core::staff::Policy::default(), |db, dir| {
        let conn = aisle_core::replica::connect(db).expect("replica");
        let member = aisle_core::demo::showcase_member(&conn)
            .expect("sql")
            .expect("showcase");
        *card.borrow_mut() = conn
            .query_row(
                "SELECT card_number FROM member_cards WHERE member_id = ?1",
                [member],
                |row| row.get(0),
            )
            .expect("card");
        let pictures = dir.join("camera");
        std::fs::create_dir(&pictures).expect("dir");
        support::qr_picture(&pictures, "card.png", &card.borrow());
        Some(pictures)
    });
    assert_eq!(app.err("scan_card", json!({})).code, "signed_out");
    app.sign_in(ALEX);
    let (member, _) = showcase(&app);
    let hit: MemberHit = app.ok("scan_card", json!({ "seconds": 10 }));
    assert_eq!(hit.member_id, member);
    assert_eq!(hit.card_number.as_deref(), Some(card.borrow().as_str()));
}

/// A member's app code (their phone's QR code) shown to the tablet's camera:
/// verified as at the kiosk, which writes the replay cache.
#[test]
fn a_members_app_code_shown_to_the_camera_finds_the_client() {
    let member = std::cell::Cell::new(0);
    let app = app_configured(aisle_core::staff::Policy::default(), |db, dir| {
        let conn = aisle_core::replica::connect(db).expect("replica");
        member.set(
            aisle_core::demo::showcase_member(&conn)
                .expect("sql")
                .expect("showcase"),
        );
        // The phone's clock: the tablet's (stepped, in tests) wall time.
        let now_secs = Clock::stepped_at(NOW)
            .expect("now")
            .wall_secs()
            .unsigned_abs();
        let code = aisle_core::identify::member_code::encode(
            member.get(),
            &aisle_core::keys::demo_member_key(member.get()),
            now_secs,
            &aisle_core::identify::member_code::CodePolicy::default(),
        );
        let pictures = dir.join("camera");
        std::fs::create_dir(&pictures).expect("dir");
        support::qr_picture(&pictures, "phone.png", &code);
        Some(pictures)
    });
    app.sign_in(ALEX);
    let hit: MemberHit = app.ok("scan_card", json!({ "seconds": 10 }));
    assert_eq!(hit.member_id, member.get());
    let replays: i64 = app
        .conn()
        .query_row(
            "SELECT count(*) FROM code_replays WHERE member_id = ?1",
            [member.get()],
            |row| row.get(0),
        )
        .expect("replay cache");
    assert_eq!(replays, 1, "the code is in the replay cache");
    // The same code again (the picture is still in front of the camera): a replay.
    let again = app.err("scan_card", json!({ "seconds": 3 }));
    assert_eq!(again.code, "replayed", "{again:?}");
}

#[test]
fn a_wrong_card_or_no_card_is_said_so() {
    let app = app_configured(aisle_core::staff::Policy::default(), |_, dir| {
        let pictures = dir.join("camera");
        std::fs::create_dir(&pictures).expect("dir");
        // A card-like number with a wrong check digit.
        support::qr_picture(&pictures, "card.png", "2947003289669");
        Some(pictures)
    });
    app.sign_in(ALEX);
    let refused = app.err("scan_card", json!({ "seconds": 10 }));
    assert_ne!(refused.code, "scan_stopped", "{refused:?}");
    assert_ne!(refused.code, "internal", "{refused:?}");
    let blank = app_configured(aisle_core::staff::Policy::default(), |_, dir| {
        let pictures = dir.join("camera");
        std::fs::create_dir(&pictures).expect("dir");
        image::GrayImage::from_pixel(64, 64, image::Luma([255]))
            .save(pictures.join("blank.png"))
            .expect("save");
        Some(pictures)
    });
    blank.sign_in(ALEX);
    assert_eq!(
        blank.err("scan_card", json!({ "seconds": 1 })).code,
        "scan_stopped"
    );
}

/// The capability file names the windows and the commands: a window it does
/// not name cannot call even the harmless `whoami`, and the main window may
/// call every registered command.
#[test]
fn only_the_window_the_capability_names_may_call_commands() {
    // The app's real context (its capabilities and permissions, as
    // compiled), on the mock runtime.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    aisle_tests::kiosk_replica(&db, NOW);
    let clock = Clock::stepped_at(NOW).expect("now");
    let state = AppState::open(db, None, clock, Default::default()).expect("state");
    let app = builder(mock_builder(), state)
        .build(tauri::generate_context!())
        .expect("app with its capabilities");
    let main = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("main window");
    let other = tauri::WebviewWindowBuilder::new(&app, "other", Default::default())
        .build()
        .expect("a second window");
    let request = |webview: &tauri::WebviewWindow<tauri::test::MockRuntime>, cmd: &str| {
        get_ipc_response(
            webview,
            tauri::webview::InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().expect("url"),
                body: tauri::ipc::InvokeBody::Json(json!({})),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
    };
    assert!(request(&main, "whoami").is_ok());
    let refused = request(&other, "whoami").expect_err("not in the capability");
    assert!(refused.to_string().contains("not allowed"), "{refused}");
    // Every command `lib.rs` registers is allowed to the main window (a
    // command added without its permission would be refused at run time:
    // here it fails as "not allowed", whatever its arguments).
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    let registered: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.trim().strip_prefix("commands::"))
        .map(|name| name.trim_end_matches(','))
        .collect();
    assert!(registered.len() >= 15, "{registered:?}");
    for cmd in registered {
        if let Err(error) = request(&main, cmd) {
            let text = error.to_string();
            assert!(
                !text.contains("not allowed") && !text.contains("not found"),
                "{cmd}: {text}"
            );
        }
    }
}

/// The whole erasure loop with a real HQ: a manager's request on the tablet
/// reaches HQ with the next sync, HQ erases the client everywhere, and its
/// tombstone removes the profile from the replica: not found by search,
/// refused as erased, the request gone. (HQ has trained no model here: the
/// client screen shows the store's popular picks.)
#[test]
fn an_erasure_requested_on_the_tablet_comes_back_from_hq_as_a_tombstone() {
    let hq = aisle_tests::hq::TestHq::start_with_demo();
    let store_id = hq.busy_store();
    hq.at_hq()
        .storage()
        .save_demo_associates(store_id, ts("2026-11-26 06:00:00"))
        .expect("associates");
    let store = hq.provisioned_store("tablet-erasure", DeviceKind::Tablet);
    support::sync_once(&store.db);
    let clock = Clock::stepped_at(NOW).expect("now");
    let state = AppState::open(
        store.db.clone(),
        Some(store.store_id),
        clock.clone(),
        Default::default(),
    )
    .expect("state");
    let built = builder(mock_builder(), state)
        .build(mock_context(noop_assets()))
        .expect("mock app");
    let webview = tauri::WebviewWindowBuilder::new(&built, "main", Default::default())
        .build()
        .expect("mock window");
    let app = App {
        _dir: tempfile::tempdir().expect("tempdir"),
        db: store.db.clone(),
        clock,
        webview,
        _app: built,
    };
    let (member, card): (i64, String) = app
        .conn()
        .query_row(
            "SELECT m.member_id, c.card_number FROM members m JOIN member_cards c USING (member_id)
             WHERE m.erased_at IS NULL AND m.consent_personalization = 1
             ORDER BY m.member_id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("a client who agreed to personal picks");
    app.sign_in(SAM);
    // HQ has trained no model: the client is shown all the same, with the
    // store's popular picks (nothing personal) and a notice saying why.
    let client: Client360 = app.ok("client_360", json!({ "memberId": member }));
    assert!(client.buy_again.is_empty(), "{:?}", client.buy_again);
    assert!(!client.discover.is_empty(), "popular picks without a model");
    assert!(
        client
            .notice
            .as_deref()
            .is_some_and(|n| n.contains("personal picks come with this store's first model")),
        "{:?}",
        client.notice
    );
    assert_eq!(
        app.err("product_card", json!({ "productId": 1 })).code,
        "no_model"
    );
    app.edit(member, &json!({ "kind": "erasure" }))
        .expect("requested");
    let client: Client360 = app.ok("client_360", json!({ "memberId": member }));
    assert!(client.erasure_requested_at.is_some());

    support::sync_once(&store.db); // the request reaches HQ, which erases
    let erased_at_hq: Option<String> = hq
        .db()
        .query_row(
            "SELECT erased_at FROM members WHERE member_id = ?1",
            [member],
            |row| row.get(0),
        )
        .expect("member at HQ");
    assert!(erased_at_hq.is_some(), "HQ erased the client");
    support::sync_once(&store.db); // the tombstone comes back
    assert_eq!(
        app.err("client_360", json!({ "memberId": member })).code,
        "erased"
    );
    let found: Vec<MemberHit> = app.ok("search_members", json!({ "args": { "text": card } }));
    assert!(found.is_empty(), "{found:?}");
    let (cards, requests): (i64, i64) = app
        .conn()
        .query_row(
            "SELECT (SELECT count(*) FROM member_cards WHERE member_id = ?1),
                    (SELECT count(*) FROM erasure_requests)",
            [member],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("sql");
    assert_eq!((cards, requests), (0, 0));
}

#[test]
fn the_typescript_bindings_match_the_dtos() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/associate/src/bindings.ts");
    let generated = aisle_associate::dto::bindings();
    if std::env::var_os("AISLE_UPDATE_BINDINGS").is_some() {
        std::fs::write(&path, &generated).expect("write bindings");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run `AISLE_UPDATE_BINDINGS=1 cargo test -p aisle-associate --test it commands` and commit it",
        path.display()
    );
}
