//! The `#[tauri::command]`s: arguments in, the core on a blocking thread,
//! DTOs or an `ApiError` out. Nothing is decided here.

use std::sync::Arc;

use aisle_core::clienteling::{self, ClientError};
use aisle_core::edits::Consent;
use aisle_core::recommend::serve;
use aisle_core::staff::Associate;
use tauri::State;

use crate::AppState;
use crate::dto::{
    ApiError, Basket, BasketLine, Client360, ClientOffers, Edit, EditArgs, HeldCoupon, IssueArgs,
    IssuedCoupon, LockedStaff, MemberHit, MonthSpend, Note, Offer, Preference, ProductCard,
    Profile, SearchArgs, SignInArgs, SignedIn, StoreView, Suggestion, SyncStatus,
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

fn signed_in(state: &AppState, associate: &Associate) -> SignedIn {
    SignedIn {
        staff_id: associate.staff_id,
        display_name: associate.display_name.clone(),
        role: associate.role.as_str().to_owned(),
        idle_lock_secs: u32::try_from(state.policy.idle_lock_secs).unwrap_or(u32::MAX),
    }
}

/// Signs an associate in with their staff number and PIN (checked offline
/// against the Argon2 hash HQ sent; wrong PINs count towards a lockout).
#[tauri::command]
pub async fn sign_in(
    state: State<'_, Arc<AppState>>,
    args: SignInArgs,
) -> Result<SignedIn, ApiError> {
    blocking(&state, move |state| {
        let now = state.now();
        let associate = state.write(|conn| {
            aisle_core::staff::sign_in(
                conn,
                args.staff_id,
                &args.pin,
                state.store_id(),
                now,
                &state.policy,
            )
            .map_err(ApiError::from)
        })?;
        state.begin(associate.clone());
        Ok(signed_in(state, &associate))
    })
    .await
}

/// Ends the session (the front end also calls it when it locks on idleness).
#[tauri::command]
pub async fn sign_out(state: State<'_, Arc<AppState>>) -> Result<(), ApiError> {
    state.end();
    Ok(())
}

/// Who is signed in, `None` when nobody is (or the tablet locked itself).
#[tauri::command]
pub async fn whoami(state: State<'_, Arc<AppState>>) -> Result<Option<SignedIn>, ApiError> {
    Ok(state.associate().ok().map(|a| signed_in(&state, &a)))
}

/// The associate is using the tablet (typing, scrolling): keeps the session open.
#[tauri::command]
pub async fn keep_alive(state: State<'_, Arc<AppState>>) -> Result<(), ApiError> {
    state.associate().map(|_| ())
}

/// As-you-type search by name, card, phone or e-mail.
#[tauri::command]
pub async fn search_members(
    state: State<'_, Arc<AppState>>,
    args: SearchArgs,
) -> Result<Vec<MemberHit>, ApiError> {
    let associate = state.associate()?;
    blocking(&state, move |state| {
        let limit = args.limit.unwrap_or(20) as usize;
        let actor = associate.actor();
        let viewer = clienteling::Viewer {
            actor: &actor,
            store_id: state.store_id(),
            now: state.now(),
        };
        // Audited, capped, contacts masked until the client is opened.
        let hits = state.write(|conn| {
            Ok(clienteling::search_clients(
                conn, &viewer, &args.text, limit,
            )?)
        })?;
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
    let associate = state.associate()?;
    blocking(&state, move |state| {
        let models = state.models(&state.reader()?)?;
        let now = state.now();
        let actor = associate.actor();
        let viewer = clienteling::Viewer {
            actor: &actor,
            store_id: state.store_id(),
            now,
        };
        let view = state.write(|conn| {
            clienteling::view_client(conn, models.ranking(), member_id, &viewer)
                .map_err(ApiError::from)
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
            erasure_requested_at: view.erasure_requested_at,
        })
    })
    .await
}

/// Looks through the tablet's camera until a loyalty card or member code
/// identifies a client (at most `seconds`, 30 by default; `cancel_scan`
/// stops it). The code is checked as at the kiosk: check digit or
/// signature, window, replay.
#[tauri::command]
pub async fn scan_card(
    state: State<'_, Arc<AppState>>,
    seconds: Option<u32>,
) -> Result<MemberHit, ApiError> {
    use std::sync::atomic::Ordering;
    state.associate()?;
    let generation = state.scan_generation.fetch_add(1, Ordering::SeqCst) + 1;
    blocking(&state, move |state| {
        let mut source = state.frame_source()?;
        // A writer of its own: an app code goes into the replay cache (the
        // shared writer is not held for the whole scan).
        let conn = aisle_core::replica::open_writer(&state.db).map_err(ApiError::internal)?;
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_secs(u64::from(seconds.unwrap_or(30).clamp(1, 120)));
        let device = format!("tablet-{}", state.store_id());
        let scanned = aisle_core::identify::scan::scan_member(
            source.as_mut(),
            &conn,
            &device,
            // Members' phones sign codes in real time, under the demo's day too.
            || u64::try_from(state.runtime.clock().wall_secs()).unwrap_or(0),
            &aisle_core::identify::member_code::CodePolicy::default(),
            || {
                state.scan_generation.load(Ordering::SeqCst) == generation
                    && std::time::Instant::now() < deadline
            },
        )?;
        use aisle_core::identify::scan::Scanned;
        let member_id = match scanned {
            Scanned::Member(member_id) => member_id,
            Scanned::Refused { code, message } => return Err(ApiError::new(code, message)),
            Scanned::NoCamera(why) => {
                return Err(ApiError::new(
                    "no_camera",
                    format!("The camera is not available: {why}"),
                ));
            }
            Scanned::Stopped => {
                return Err(ApiError::new("scan_stopped", "No card was seen"));
            }
        };
        let profile = aisle_core::members::profile(&conn, member_id).map_err(|e| match e {
            aisle_core::members::MemberError::NotFound(_) => ClientError::NotFound(member_id),
            other => ClientError::Member(other),
        })?;
        if profile.erased_at.is_some() {
            return Err(ClientError::Erased(member_id).into());
        }
        Ok(MemberHit {
            member_id,
            display_name: profile.display_name,
            card_number: profile.cards.first().map(|c| c.card_number.clone()),
            phone: profile.phone,
            email: profile.email,
        })
    })
    .await
}

/// Stops the scan under way.
#[tauri::command]
pub async fn cancel_scan(state: State<'_, Arc<AppState>>) -> Result<(), ApiError> {
    state
        .scan_generation
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// A change to a client (preferences, a consent, a note, an erasure
/// request): checked and audited by the core, written with its outbox event
/// in one transaction.
#[tauri::command]
pub async fn edit_client(state: State<'_, Arc<AppState>>, args: EditArgs) -> Result<(), ApiError> {
    let associate = state.associate()?;
    blocking(&state, move |state| {
        let edit = match args.edit {
            Edit::Preferences { preferences } => clienteling::Edit::Preferences(
                preferences
                    .into_iter()
                    .map(|p| aisle_proto::Preference {
                        kind: p.kind,
                        value: p.value,
                    })
                    .collect(),
            ),
            Edit::Consent { consent, granted } => clienteling::Edit::Consent {
                consent: match consent.as_str() {
                    "personalization" => Consent::Personalization,
                    "marketing" => Consent::Marketing,
                    other => {
                        return Err(ApiError::new(
                            "bad_request",
                            format!("{other:?} is not a consent (personalization, marketing)"),
                        ));
                    }
                },
                granted,
            },
            Edit::Note { body } => clienteling::Edit::Note(body),
            Edit::Erasure => clienteling::Edit::Erasure,
        };
        let now = state.now();
        state.write(|conn| {
            clienteling::edit_client(conn, &associate, args.member_id, &edit, now)
                .map(|_| ())
                .map_err(ApiError::from)
        })
    })
    .await
}

/// The offers the client may be given here now (best first, with reasons)
/// and the coupons they hold.
#[tauri::command]
pub async fn client_offers(
    state: State<'_, Arc<AppState>>,
    member_id: i64,
) -> Result<ClientOffers, ApiError> {
    state.associate()?;
    blocking(&state, move |state| {
        let conn = state.reader()?;
        let model = state.offer_model(&conn)?;
        let now = state.now();
        let book = aisle_core::offers::engine::OfferBook::load(&conn, state.store_id(), now.day())?;
        let offers = clienteling::client_offers(&conn, &book, &model, member_id, now)?;
        Ok(ClientOffers {
            eligible: offers
                .eligible
                .into_iter()
                .map(|ranked| Offer {
                    coupon_id: ranked.coupon_id,
                    description: ranked.description,
                    p_redeem: ranked.p_redeem,
                    expected_value_cents: ranked.expected_value_cents,
                    reason: ranked.reason_text,
                })
                .collect(),
            held: offers
                .live
                .into_iter()
                .map(|c| HeldCoupon {
                    serial: c.serial,
                    description: c.description,
                    discount_cents: c.discount_cents,
                    discount_percent: c.discount_percent,
                    expires_at: c.expires_at,
                })
                .collect(),
        })
    })
    .await
}

/// Issues an offer's coupon to the client (the offer's rules checked again
/// as it is issued; the instance and its event in one transaction).
#[tauri::command]
pub async fn issue_coupon(
    state: State<'_, Arc<AppState>>,
    args: IssueArgs,
) -> Result<IssuedCoupon, ApiError> {
    let associate = state.associate()?;
    blocking(&state, move |state| {
        let now = state.now();
        let issued = state.write(|conn| {
            clienteling::issue_coupon(conn, &associate, args.member_id, args.coupon_id, now)
                .map_err(ApiError::from)
        })?;
        Ok(IssuedCoupon {
            serial: issued.serial,
            numeric_code: issued.numeric_code,
            token: issued.token,
            expires_at: aisle_core::dates::timestamp_string(
                i64::try_from(issued.expires_at).unwrap_or(i64::MAX),
            ),
        })
    })
    .await
}

/// A product here, and what is often bought with it.
#[tauri::command]
pub async fn product_card(
    state: State<'_, Arc<AppState>>,
    product_id: i64,
) -> Result<ProductCard, ApiError> {
    state.associate()?;
    blocking(&state, move |state| {
        let conn = state.reader()?;
        let models = state.models(&conn)?;
        let served = models.served().ok_or_else(|| {
            ApiError::new(
                "no_model",
                "No suggestions yet: this store has no recommendation model",
            )
        })?;
        let view = aisle_core::welcome::product_view(
            &conn,
            served,
            product_id,
            state.store_id(),
            state.now(),
            6,
            &serve::Policy::default(),
        )?
        .ok_or_else(|| ApiError::new("not_found", format!("No product {product_id} here")))?;
        Ok(ProductCard {
            product_id: view.product_id,
            name: view.name,
            price_cents: view.price_cents,
            in_stock: view.in_stock,
            location: view.location,
            bought_together: suggestions(view.bought_together),
        })
    })
    .await
}

/// The store's day (counts only), sync, and for a manager who is locked out.
#[tauri::command]
pub async fn store_view(state: State<'_, Arc<AppState>>) -> Result<StoreView, ApiError> {
    let associate = state.associate()?;
    blocking(&state, move |state| {
        let conn = state.reader()?;
        let now = state.now();
        let day = clienteling::store_day(&conn, state.store_id(), now)?;
        let store_name =
            aisle_core::sync::records::read_store(&conn, state.store_id())?.map(|s| s.name);
        let locked_out = if associate.require_manager().is_ok() {
            aisle_core::staff::locked_out(&conn, now)?
                .into_iter()
                .map(|l| LockedStaff {
                    staff_id: l.staff_id,
                    display_name: l.display_name,
                    failures: l.failures,
                    locked_until: l.locked_until,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(StoreView {
            store_id: state.store_id(),
            store_name,
            day: now.day().to_string(),
            kiosk_visits: day.kiosk_visits,
            kiosk_members: day.kiosk_members,
            coupons_issued_kiosk: day.coupons_issued_kiosk,
            coupons_issued_associate: day.coupons_issued_associate,
            redemptions: day.redemptions,
            redeemed_cents: day.redeemed_cents,
            sync: sync(state, &conn)?,
            locked_out,
        })
    })
    .await
}

/// A manager lifts a staff number's lockout.
#[tauri::command]
pub async fn unlock_staff(
    state: State<'_, Arc<AppState>>,
    staff_id: i64,
) -> Result<bool, ApiError> {
    let associate = state.associate()?;
    blocking(&state, move |state| {
        let now = state.now();
        state.write(|conn| {
            aisle_core::staff::unlock(conn, &associate, staff_id, now).map_err(ApiError::from)
        })
    })
    .await
}

fn sync(state: &AppState, conn: &rusqlite::Connection) -> Result<SyncStatus, ApiError> {
    let status = aisle_core::sync::status(conn).map_err(ApiError::internal)?;
    Ok(SyncStatus {
        provisioned: status.provisioned,
        offline: state.runtime.is_offline(&status),
        last_success_at: status.last_success_at,
        last_error: status.last_error,
        pending_events: u32::try_from(status.pending_events).unwrap_or(u32::MAX),
    })
}

/// Sync with HQ as the store view shows it (no personal data: shown
/// before sign-in too).
#[tauri::command]
pub async fn sync_status(state: State<'_, Arc<AppState>>) -> Result<SyncStatus, ApiError> {
    blocking(&state, |state| sync(state, &state.reader()?)).await
}
