//! The `#[tauri::command]`s: arguments in, the core on a blocking thread,
//! DTOs or an `ApiError` out. Nothing is decided here.

use std::sync::Arc;

use aisle_core::clienteling::{self, ClientError};
use aisle_core::recommend::serve;
use tauri::State;

use crate::AppState;
use crate::dto::{
    ApiError, Basket, BasketLine, Client360, MemberHit, MonthSpend, Note, NoteArgs, Preference,
    Profile, SearchArgs, Suggestion, SyncStatus,
};

/// Runs `work` with the state on a blocking thread.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = Arc::clone(state);
    tauri::async_runtime::spawn_blocking(move || work(&state))
        .await
        .map_err(ApiError::internal)?
}

/// As-you-type search by name, card, phone or e-mail.
#[tauri::command]
pub async fn search_members(
    state: State<'_, Arc<AppState>>,
    args: SearchArgs,
) -> Result<Vec<MemberHit>, ApiError> {
    blocking(&state, move |state| {
        let limit = args.limit.unwrap_or(20).clamp(1, 100) as usize;
        let hits = aisle_core::members::search(&state.reader()?, &args.text, limit)?;
        Ok(hits
            .into_iter()
            .map(|hit| MemberHit {
                member_id: hit.member_id,
                display_name: hit.display_name,
                card_number: hit.card_number,
                phone: hit.phone,
                email: hit.email,
            })
            .collect())
    })
    .await
}

fn suggestions(picks: Vec<serve::Pick>) -> Vec<Suggestion> {
    picks
        .into_iter()
        .map(|pick| Suggestion {
            product_id: pick.product_id,
            name: pick.name,
            department: pick.department,
            price_cents: pick.price_cents,
            location: pick.location,
            reason: pick.reason.to_string(),
        })
        .collect()
}

/// One client as the core decides the associate may see them (the view is
/// audited, consent withholds history): profile and consents, preferences
/// and notes, history, spend by month and department, suggestions with
/// their reasons.
#[tauri::command]
pub async fn client_360(
    state: State<'_, Arc<AppState>>,
    member_id: i64,
) -> Result<Client360, ApiError> {
    blocking(&state, move |state| {
        let served = state.served(&state.reader()?)?;
        let now = state.now();
        let viewer = clienteling::Viewer {
            actor: "associate",
            store_id: state.store_id,
            now: &now,
        };
        let view = state.write(|conn| {
            clienteling::view_client(conn, &served, member_id, &viewer).map_err(|e| match e {
                ClientError::NotFound(_) => {
                    ApiError::new("not_found", format!("No client {member_id} on this tablet"))
                }
                ClientError::Erased(_) => ApiError::new(
                    "erased",
                    format!("Client {member_id} asked to be forgotten"),
                ),
                other => ApiError::internal(other),
            })
        })?;
        let profile = view.profile;
        Ok(Client360 {
            profile: Profile {
                member_id: profile.member_id,
                display_name: profile.display_name,
                phone: profile.phone,
                email: profile.email,
                tier: profile.tier,
                home_store: profile.home_store_name,
                personalization: profile.personalization.granted,
                marketing: profile.marketing.granted,
                enrolled_on: profile.enrolled_on,
                cards: profile.cards.into_iter().map(|c| c.card_number).collect(),
                preferences: profile
                    .preferences
                    .into_iter()
                    .map(|p| Preference {
                        kind: p.kind,
                        value: p.value,
                    })
                    .collect(),
                notes: profile
                    .notes
                    .into_iter()
                    .map(|n| Note {
                        author: n.author,
                        body: n.body,
                        created_at: n.created_at,
                    })
                    .collect(),
            },
            history: view
                .history
                .into_iter()
                .map(|b| Basket {
                    basket_id: b.basket_id,
                    store: b.store_name,
                    purchased_at: b.purchased_at,
                    total_cents: b.total_cents,
                    lines: b
                        .lines
                        .into_iter()
                        .map(|l| BasketLine {
                            product_id: l.product_id,
                            name: l.name,
                            quantity: l.quantity,
                            cents: l.sales_cents,
                        })
                        .collect(),
                })
                .collect(),
            spend: view
                .spend
                .into_iter()
                .map(|m| MonthSpend {
                    month: m.month,
                    department: m.department,
                    cents: m.cents,
                })
                .collect(),
            buy_again: suggestions(view.lists.buy_again),
            discover: suggestions(view.lists.discover),
            personal: view.lists.personal,
            notice: view.lists.notice,
            history_shown: view.history_shown,
        })
    })
    .await
}

/// A note on a client: the replica and its outbox event in one transaction.
#[tauri::command]
pub async fn add_note(state: State<'_, Arc<AppState>>, args: NoteArgs) -> Result<(), ApiError> {
    blocking(&state, move |state| {
        let body = args.body.trim();
        if body.is_empty() {
            return Err(ApiError::new("bad_request", "A note cannot be empty"));
        }
        let now = state.now();
        state.write(|conn| {
            aisle_core::edits::add_note(conn, args.member_id, "associate", body, &now)
                .map(|_| ())
                .map_err(ApiError::internal)
        })
    })
    .await
}

/// Sync with HQ as the store view shows it.
#[tauri::command]
pub async fn sync_status(state: State<'_, Arc<AppState>>) -> Result<SyncStatus, ApiError> {
    blocking(&state, |state| {
        let status = aisle_core::sync::status(&state.reader()?).map_err(ApiError::internal)?;
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(SyncStatus {
            provisioned: status.provisioned,
            offline: status.offline(wall, 600),
            last_success_at: status.last_success_at,
            last_error: status.last_error,
            pending_events: u32::try_from(status.pending_events).unwrap_or(u32::MAX),
        })
    })
    .await
}
