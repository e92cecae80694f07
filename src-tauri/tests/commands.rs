//! The commands through Tauri's real IPC path (command lookup, argument
//! deserialization, the error shape) on the mock runtime, over the demo
//! replica: search, the client screen, a note that reaches the outbox,
//! refusals as `{ code, message }`; and the TypeScript bindings kept equal
//! to the DTOs.

use std::path::Path;

use aisle_associate::dto::{ApiError, Client360, MemberHit, SyncStatus};
use aisle_associate::{AppState, builder};
use rusqlite::Connection;
use serde_json::{Value, json};
use tauri::test::{INVOKE_KEY, get_ipc_response, mock_builder, mock_context, noop_assets};

const NOW: &str = "2017-10-20 12:00:00";

struct App {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    webview: tauri::WebviewWindow<tauri::test::MockRuntime>,
    _app: tauri::App<tauri::test::MockRuntime>,
}

fn app() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    aisle_tests::kiosk_replica(&db, NOW);
    let state = AppState::open(db.clone(), None, Some(NOW.into())).expect("state");
    let app = builder(mock_builder(), state)
        .build(mock_context(noop_assets()))
        .expect("mock app");
    let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("mock window");
    App {
        _dir: dir,
        db,
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
        Connection::open(&self.db).expect("replica")
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
    let hits: Vec<MemberHit> = app.ok(
        "search_members",
        json!({ "args": { "text": prefix, "limit": 100 } }),
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
    let none: Vec<MemberHit> = app.ok("search_members", json!({ "args": { "text": "   " } }));
    assert!(none.is_empty());
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
    let pending = |app: &App| -> u32 {
        let status: SyncStatus = app.ok("sync_status", json!({}));
        assert!(
            !status.provisioned && !status.offline,
            "a demo replica is never offline"
        );
        status.pending_events
    };
    let before = pending(&app);
    app.ok::<Value>(
        "add_note",
        json!({ "args": { "memberId": member, "body": "Prefers oat milk" } }),
    );
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

    let empty = app.err(
        "add_note",
        json!({ "args": { "memberId": member, "body": "  " } }),
    );
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
        aisle_core::sync::records::erase_member(&tx, erased, "2017-10-20 11:00:00").expect("erase");
        tx.commit().expect("commit");
    }
    let refused = app.err("client_360", json!({ "memberId": erased }));
    assert_eq!(refused.code, "erased");
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
        "{} is stale: run `AISLE_UPDATE_BINDINGS=1 cargo test -p aisle-associate --test commands` and commit it",
        path.display()
    );
}
