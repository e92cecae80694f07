//! The HTTP API, as two routers on two listeners: the devices' endpoints
//! (bearer `DEVICE_ID.SECRET`, protocol header; [`device_router`]) and the
//! admin API (bearer admin token, every call audited; [`admin_router`]).
//! Handlers translate only: the work is behind the storage seam
//! ([`crate::storage::Storage`]), run on blocking threads, a bounded number at once.
//! Outside the admin plane, errors say what the client did wrong and
//! nothing of HQ's insides.

use std::net::SocketAddr;
use std::sync::Arc;

use aisle_proto::events::{QuarantineList, RawEventUpload};
use aisle_proto::{
    ApiError, Change, CouponKeyRegistered, CouponKeyRegistration, DeviceCredentials,
    DeviceRegistration, EnrolRequest, Enrolment, PROTOCOL_HEADER, PROTOCOL_VERSION, paths,
};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::Hq;
use crate::admin::{self, AdminRefusal};
use crate::snapshot;
use crate::storage::{self, HqError, LookupProof};

/// A request body as JSON; a malformed one is `400 malformed` with no
/// parser detail.
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(malformed_body(&rejection)),
        }
    }
}

fn malformed_body(rejection: &JsonRejection) -> Failure {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Failure(status, "too_large", "the request body is too large".into());
    }
    Failure(
        StatusCode::BAD_REQUEST,
        "malformed",
        "the request body is not the JSON this endpoint takes".into(),
    )
}

/// Query parameters; malformed ones are `400 malformed`.
struct Params<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for Params<T>
{
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(_) => Err(Failure(
                StatusCode::BAD_REQUEST,
                "malformed",
                "the query parameters are not the ones this endpoint takes".into(),
            )),
        }
    }
}

/// An error answer: status plus `{code, message}`.
#[derive(Debug)]
pub struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ApiError {
                code: self.1.to_owned(),
                message: self.2,
            }),
        )
            .into_response()
    }
}

impl From<HqError> for Failure {
    fn from(err: HqError) -> Self {
        match err {
            HqError::NotFound(what) => Failure(StatusCode::NOT_FOUND, "not_found", what),
            HqError::Invalid(what) => Failure(StatusCode::UNPROCESSABLE_ENTITY, "invalid", what),
            HqError::Forbidden(what) => Failure(StatusCode::FORBIDDEN, "forbidden", what),
            ahead @ HqError::CursorAhead { .. } => {
                Failure(StatusCode::CONFLICT, "cursor_ahead", ahead.to_string())
            }
            other => {
                tracing::error!(error = %other, "HQ storage error");
                internal()
            }
        }
    }
}

/// A fault of HQ's: the details go to HQ's log, never to the client.
fn internal() -> Failure {
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "HQ could not answer; the fault is in HQ's log".into(),
    )
}

type Answer<T> = Result<T, Failure>;

/// Runs `work` on a blocking thread once one of HQ's database slots is free.
/// The slot is held until the work ends, even when the request timed out
/// and its answer was dropped.
async fn blocking<T: Send + 'static>(
    hq: Arc<Hq>,
    work: impl FnOnce(&Hq) -> Answer<T> + Send + 'static,
) -> Answer<T> {
    let slot = Arc::clone(&hq.db_slots)
        .acquire_owned()
        .await
        .map_err(|_| internal())?;
    let work = move || {
        let _slot = slot;
        work(&hq)
    };
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        tracing::error!(error = %err, "a request's work panicked");
        internal()
    })?
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn unauthorized(message: &str) -> Failure {
    Failure(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned())
}

/// Checks the protocol header.
fn protocol(headers: &HeaderMap) -> Answer<()> {
    let version = headers.get(PROTOCOL_HEADER).and_then(|v| v.to_str().ok());
    if version != Some(PROTOCOL_VERSION.to_string().as_str()) {
        return Err(Failure(
            StatusCode::UPGRADE_REQUIRED,
            "protocol_version",
            format!("this HQ speaks protocol {PROTOCOL_VERSION}; the request said {version:?}"),
        ));
    }
    Ok(())
}

/// The device (id, store, kind) after checking the protocol version and its secret.
fn device(hq: &Hq, headers: &HeaderMap) -> Answer<storage::Device> {
    protocol(headers)?;
    let token = bearer(headers).ok_or_else(|| unauthorized("no device credentials"))?;
    let (device_id, secret) = token
        .split_once('.')
        .ok_or_else(|| unauthorized("malformed device credentials"))?;
    hq.storage()
        .authenticate(device_id, secret)?
        .ok_or_else(|| unauthorized("unknown device or wrong secret"))
}

/// Admits `n` requests of `limit` for `device`, or answers `429 throttled`.
fn admit(hq: &Hq, device: &storage::Device, limit: crate::Limit, n: usize) -> Answer<()> {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    hq.admit(device, limit, n).map_err(|wait| {
        Failure(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!(
                "this device is over its quota of {}; retry in {} s",
                limit.name(),
                wait.as_secs().max(1)
            ),
        )
    })
}

/// The largest request body of each kind of route.
const EVENTS_BODY_LIMIT: usize = 16 << 20;
const SMALL_BODY_LIMIT: usize = 16 << 10;
const ADMIN_BODY_LIMIT: usize = 4 << 20;

fn no_such_endpoint() -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint".into(),
    )
}

/// The devices' listener: the device API and enrolment. Admin paths are not
/// served here (404, as any unknown path).
pub fn device_router(hq: Arc<Hq>) -> axum::Router {
    let routes = axum::Router::new()
        .route(paths::SNAPSHOT, get(snapshot))
        .route(paths::SNAPSHOT_CHUNKS, get(snapshot_chunk))
        .route(paths::CHANGES, get(changes))
        .route(paths::MODEL, get(model))
        .route(paths::OFFER_MODEL, get(offer_model))
        .route(
            paths::EVENTS,
            post(events).layer(DefaultBodyLimit::max(EVENTS_BODY_LIMIT)),
        )
        .route(paths::MEMBER_LOOKUP, get(lookup))
        .route(
            paths::ENROL,
            post(enrol).layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT)),
        )
        .route(
            paths::COUPON_KEYS,
            post(coupon_key).layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT)),
        );
    guarded(routes, hq)
}

/// The admin listener: the admin API only.
pub fn admin_router(hq: Arc<Hq>) -> axum::Router {
    let routes = axum::Router::new()
        .route(paths::ADMIN_DEVICES, post(admin_enrolment))
        .route(paths::ADMIN_DEVICE_REVOKE, post(revoke_device))
        .route(paths::ADMIN_MEMBERS, post(admin_member))
        .route(paths::ADMIN_PRODUCTS, post(admin_product))
        .route(paths::ADMIN_STORE_PRODUCTS, post(admin_store_product))
        .route(paths::ADMIN_CAMPAIGNS, post(admin_campaign))
        .route(paths::ADMIN_COUPONS, post(admin_coupon))
        .route(paths::ADMIN_BASKETS, post(admin_basket))
        .route(paths::ADMIN_ERASURES, post(admin_erasure))
        .route(paths::ADMIN_EVENTS, get(admin_events))
        .route(
            paths::ADMIN_COUPON_RECONCILIATION,
            get(admin_coupon_reconciliation),
        )
        .route(paths::ADMIN_QUARANTINE, get(admin_quarantine))
        .route(paths::ADMIN_THROTTLED, get(admin_throttled))
        .route(paths::ADMIN_AUDIT, get(admin_audit))
        .layer(DefaultBodyLimit::max(ADMIN_BODY_LIMIT));
    guarded(routes, hq)
}

/// What both listeners share: `404` for any other path, the per-address
/// limit (unknown paths included), then the whole-request timeout.
fn guarded(routes: axum::Router<Arc<Hq>>, hq: Arc<Hq>) -> axum::Router {
    let timeout = hq.config.limits.request_timeout;
    routes
        .fallback(|| async { no_such_endpoint() })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&hq),
            per_address,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(hq)
}

/// Per-address rate limit (docs/PROTOCOL.md, "Limits"), before any work.
async fn per_address(State(hq): State<Arc<Hq>>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(address) = peer
        && let Err(wait) = hq.admit_address(address)
    {
        tracing::warn!(%address, "address over its rate limit: throttled");
        return Failure(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!(
                "too many requests from this address; retry in {} s",
                wait.as_secs().max(1)
            ),
        )
        .into_response();
    }
    next.run(request).await
}

async fn snapshot(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
) -> Answer<Json<aisle_proto::Signed>> {
    blocking(hq, move |hq| {
        let device = device(hq, &headers)?;
        let _building = hq
            .snapshot_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let folder = hq.config.snapshot_dir();
        let options = snapshot::SnapshotOptions {
            chunk_records: hq.config.chunk_records,
            max_age: hq.config.snapshot_max_age,
            history_days: hq.config.history_days,
        };
        let (manifest, _) = snapshot::build(
            hq.storage(),
            device.store_id,
            device.kind,
            &hq.signer.card_key(device.store_id),
            &folder,
            &options,
            crate::now(),
        )?;
        Ok(Json(hq.signer.sign(&manifest)))
    })
    .await
}

async fn snapshot_chunk(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Path((snapshot_id, index)): Path<(String, u32)>,
) -> Answer<Vec<u8>> {
    blocking(hq, move |hq| {
        let device = device(hq, &headers)?;
        let gone = || {
            Failure(
                StatusCode::NOT_FOUND,
                "snapshot_gone",
                format!("snapshot {snapshot_id} is no longer offered; ask for a new one"),
            )
        };
        // Only this store's snapshots for this kind, and only names HQ made.
        let prefix = snapshot::snapshot_prefix(device.store_id, device.kind);
        if !snapshot_id.starts_with(&prefix)
            || !snapshot_id[prefix.len()..]
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return Err(gone());
        }
        let path = hq
            .config
            .snapshot_dir()
            .join(&snapshot_id)
            .join(snapshot::chunk_name(index));
        std::fs::read(&path).map_err(|_| gone())
    })
    .await
}

async fn model(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Path(artifact_id): Path<i64>,
) -> Answer<Vec<u8>> {
    blocking(hq, move |hq| {
        device(hq, &headers)?;
        hq.storage().model_bytes(artifact_id)?.ok_or_else(|| {
            Failure(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no model artifact {artifact_id}"),
            )
        })
    })
    .await
}

async fn offer_model(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Path(model_id): Path<i64>,
) -> Answer<Vec<u8>> {
    blocking(hq, move |hq| {
        device(hq, &headers)?;
        hq.storage().offer_model_bytes(model_id)?.ok_or_else(|| {
            Failure(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no offer model {model_id}"),
            )
        })
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
struct ChangesQuery {
    after: u64,
    limit: Option<usize>,
}

async fn changes(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Params(query): Params<ChangesQuery>,
) -> Answer<Json<aisle_proto::Signed>> {
    blocking(hq, move |hq| {
        let device = device(hq, &headers)?;
        let limit = query.limit.unwrap_or(5_000).clamp(1, 50_000);
        let mut batch = hq
            .storage()
            .changes_after(device.store_id, query.after, limit)?;
        let card_key = hq.signer.card_key(device.store_id);
        batch.changes = std::mem::take(&mut batch.changes)
            .into_iter()
            .filter_map(|change| storage::for_kind(device.kind, &card_key, change))
            .collect();
        Ok(Json(hq.signer.sign(&batch)))
    })
    .await
}

/// An upload is read with each event's kind as text ([`RawEventUpload`]):
/// an event HQ cannot read is quarantined alone, not the whole upload.
async fn events(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(upload): Body<RawEventUpload>,
) -> Answer<Json<aisle_proto::EventAck>> {
    blocking(hq, move |hq| {
        let device = device(hq, &headers)?;
        admit(hq, &device, crate::Limit::Events, upload.events.len())?;
        let now = crate::now();
        let ack = hq.storage().record_events(&device, &upload.events, now);
        hq.scrub_erasures();
        Ok(Json(ack?))
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
struct LookupQuery {
    card: Option<String>,
    /// A member's app code.
    code: Option<String>,
    /// Refused (a look-up needs proof of presence); kept so that the
    /// refusal is audited rather than a 400.
    member_id: Option<i64>,
}

async fn lookup(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Params(query): Params<LookupQuery>,
) -> Answer<Json<aisle_proto::MemberLookup>> {
    blocking(hq, move |hq| {
        let device = device(hq, &headers)?;
        admit(hq, &device, crate::Limit::Lookups, 1)?;
        let proof = match (&query.card, &query.code, query.member_id) {
            (Some(card), _, _) => LookupProof::Card(card),
            (None, Some(code), _) => LookupProof::AppCode(code),
            (None, None, Some(id)) => LookupProof::MemberId(id),
            (None, None, None) => LookupProof::None,
        };
        let found = hq.storage().lookup(&device, proof, crate::now())?;
        // The same record the device's feed would carry.
        let card_key = hq.signer.card_key(device.store_id);
        let member = found.member.and_then(|member| {
            match storage::for_kind(device.kind, &card_key, Change::Member(member)) {
                Some(Change::Member(member)) => Some(member),
                _ => None,
            }
        });
        Ok(Json(aisle_proto::MemberLookup {
            member,
            erased: found.erased,
        }))
    })
    .await
}

/// A device redeems its one-time enrolment code for its credentials.
async fn enrol(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(request): Body<EnrolRequest>,
) -> Answer<Json<DeviceCredentials>> {
    blocking(hq, move |hq| {
        protocol(&headers)?;
        let enrolled = hq.storage().redeem_enrolment(&request.code, crate::now())?;
        let Some(enrolled) = enrolled else {
            return Err(unauthorized("unknown, used or expired enrolment code"));
        };
        tracing::info!(device_id = %enrolled.registration.device_id, "device enrolled");
        Ok(Json(DeviceCredentials {
            device_id: enrolled.registration.device_id,
            store_id: enrolled.registration.store_id,
            secret: enrolled.secret,
            hq_public_key: hq.signer.public_hex(),
            protocol: PROTOCOL_VERSION,
            card_key: hq.card_key_for(enrolled.registration.kind, enrolled.registration.store_id),
            kind: Some(enrolled.registration.kind),
            coupon_issuer: None,
        }))
    })
    .await
}

/// A device registers the public half of its own coupon issuing key.
async fn coupon_key(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(registration): Body<CouponKeyRegistration>,
) -> Answer<Json<CouponKeyRegistered>> {
    blocking(hq, move |hq| {
        let device = device(hq, &headers)?;
        let key_id =
            hq.storage()
                .register_coupon_key(&device, &registration.public_key, crate::now())?;
        Ok(Json(CouponKeyRegistered { key_id }))
    })
    .await
}

/// Runs an admin call: checks the bearer token, does `work` with the
/// token's name, and records the call in the admin audit either way.
async fn admin_call<T: Send + 'static>(
    hq: Arc<Hq>,
    headers: HeaderMap,
    action: &'static str,
    target: Option<String>,
    work: impl FnOnce(&Hq, &str) -> Answer<T> + Send + 'static,
) -> Answer<T> {
    blocking(hq, move |hq| {
        let now = crate::now();
        let presented = bearer(&headers).unwrap_or_default();
        let (name, result) = match hq.config.admin_tokens.authenticate(presented, now) {
            Ok(name) => {
                let name = name.to_owned();
                let result = work(hq, &name);
                (Some(name), result)
            }
            Err(AdminRefusal::Unknown) => (None, Err(unauthorized("admin token required"))),
            Err(AdminRefusal::Expired) => (None, Err(unauthorized("this admin token has expired"))),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(failure) => failure.1,
        };
        hq.storage()
            .record_admin_call(name.as_deref(), action, target.as_deref(), outcome, now)
            .map_err(|err| {
                tracing::error!(error = %err, "recording an admin call");
                internal()
            })?;
        result
    })
    .await
}

/// Admin: a one-time enrolment code for a new device.
async fn admin_enrolment(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(registration): Body<DeviceRegistration>,
) -> Answer<Json<Enrolment>> {
    let target = Some(registration.device_id.clone());
    admin_call(hq, headers, "create_enrolment", target, move |hq, token| {
        let enrolment = hq.storage().create_enrolment(
            &registration,
            token,
            admin::ENROLMENT_VALID_SECS,
            crate::now(),
        )?;
        Ok(Json(enrolment))
    })
    .await
}

async fn admin_coupon_reconciliation(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
) -> Answer<Json<aisle_proto::CouponReconciliation>> {
    admin_call(hq, headers, "read_coupon_reconciliation", None, |hq, _| {
        Ok(Json(hq.storage().coupon_reconciliation()?))
    })
    .await
}

async fn revoke_device(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Path(device_id): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    let target = Some(device_id.clone());
    admin_call(hq, headers, "revoke_device", target, move |hq, _| {
        hq.storage().revoke_device(&device_id, crate::now())?;
        Ok(Json(serde_json::json!({ "revoked": device_id })))
    })
    .await
}

/// The feed position after an admin change.
#[derive(Debug, serde::Serialize)]
struct Changed {
    seq: u64,
}

async fn admin_apply(
    hq: Arc<Hq>,
    headers: HeaderMap,
    action: &'static str,
    target: String,
    change: Change,
) -> Answer<Json<Changed>> {
    admin_call(hq, headers, action, Some(target), move |hq, _| {
        let seq = hq.storage().admin_change(&change, crate::now());
        hq.scrub_erasures();
        Ok(Json(Changed { seq: seq? }))
    })
    .await
}

async fn admin_member(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(record): Body<aisle_proto::MemberRecord>,
) -> Answer<Json<Changed>> {
    let target = format!("member {}", record.member_id);
    admin_apply(hq, headers, "save_member", target, Change::Member(record)).await
}

async fn admin_product(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(record): Body<aisle_proto::ProductRecord>,
) -> Answer<Json<Changed>> {
    let target = format!("product {}", record.product_id);
    admin_apply(hq, headers, "save_product", target, Change::Product(record)).await
}

async fn admin_store_product(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(record): Body<aisle_proto::StoreProductRecord>,
) -> Answer<Json<Changed>> {
    let target = format!("store {} product {}", record.store_id, record.product_id);
    let change = Change::StoreProduct(record);
    admin_apply(hq, headers, "save_store_product", target, change).await
}

async fn admin_campaign(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(record): Body<aisle_proto::CampaignRecord>,
) -> Answer<Json<Changed>> {
    let target = format!("campaign {}", record.campaign_id);
    admin_apply(
        hq,
        headers,
        "save_campaign",
        target,
        Change::Campaign(record),
    )
    .await
}

async fn admin_coupon(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(record): Body<aisle_proto::CouponRecord>,
) -> Answer<Json<Changed>> {
    let target = format!("coupon {}", record.coupon_id);
    admin_apply(hq, headers, "save_coupon", target, Change::Coupon(record)).await
}

async fn admin_basket(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(record): Body<aisle_proto::BasketRecord>,
) -> Answer<Json<Changed>> {
    let target = format!("basket {}", record.basket_id);
    admin_apply(hq, headers, "save_basket", target, Change::Basket(record)).await
}

#[derive(Debug, serde::Deserialize)]
struct Erasure {
    member_id: i64,
}

async fn admin_erasure(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Body(erasure): Body<Erasure>,
) -> Answer<Json<Changed>> {
    let change = Change::MemberErased {
        member_id: erasure.member_id,
        erased_at: String::new(),
    };
    let target = format!("member {}", erasure.member_id);
    admin_apply(hq, headers, "erase_member", target, change).await
}

/// Admin: the recorded store events (keys in order), for audits and tests.
#[derive(Debug, serde::Serialize)]
struct EventLog {
    events: Vec<(String, String, i64, String)>,
}

async fn admin_events(State(hq): State<Arc<Hq>>, headers: HeaderMap) -> Answer<Json<EventLog>> {
    admin_call(hq, headers, "read_events", None, |hq, _| {
        let events = hq.storage().event_log()?;
        Ok(Json(EventLog { events }))
    })
    .await
}

/// Admin: the devices HQ throttled, the most refused first.
async fn admin_throttled(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
) -> Answer<Json<Vec<aisle_proto::ThrottledDevice>>> {
    admin_call(hq, headers, "read_throttled", None, |hq, _| {
        Ok(Json(hq.storage().throttled()?))
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
}

/// Admin: the store events HQ refused, oldest first, a page at a time.
async fn admin_quarantine(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Params(query): Params<PageQuery>,
) -> Answer<Json<QuarantineList>> {
    admin_call(hq, headers, "read_quarantine", None, move |hq, _| {
        let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
        Ok(Json(hq.storage().quarantined(query.after, limit)?))
    })
    .await
}

/// Admin: the admin audit, oldest first, a page at a time.
async fn admin_audit(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Params(query): Params<PageQuery>,
) -> Answer<Json<aisle_proto::AdminAuditList>> {
    admin_call(hq, headers, "read_audit", None, move |hq, _| {
        let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
        Ok(Json(hq.storage().admin_audit(query.after, limit)?))
    })
    .await
}
