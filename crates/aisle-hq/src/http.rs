//! The HTTP API: device endpoints (bearer `DEVICE_ID.SECRET`, protocol
//! header) and the admin API (bearer admin token). Handlers translate only:
//! the work is in [`crate::db`], run on blocking threads.

use std::sync::Arc;

use aisle_proto::events::{QuarantineList, RawEventUpload};
use aisle_proto::{
    ApiError, Change, DeviceCredentials, DeviceRegistration, PROTOCOL_HEADER, PROTOCOL_VERSION,
    paths,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::Hq;
use crate::db::{self, HqError};

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
                Failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    other.to_string(),
                )
            }
        }
    }
}

type Answer<T> = Result<T, Failure>;

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Answer<T> + Send + 'static,
) -> Answer<T> {
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            err.to_string(),
        )
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

/// The device (id, store, kind) after checking the protocol version and its secret.
fn device(hq: &Hq, headers: &HeaderMap) -> Answer<db::Device> {
    let version = headers.get(PROTOCOL_HEADER).and_then(|v| v.to_str().ok());
    if version != Some(PROTOCOL_VERSION.to_string().as_str()) {
        return Err(Failure(
            StatusCode::UPGRADE_REQUIRED,
            "protocol_version",
            format!("this HQ speaks protocol {PROTOCOL_VERSION}; the request said {version:?}"),
        ));
    }
    let token = bearer(headers).ok_or_else(|| unauthorized("no device credentials"))?;
    let (device_id, secret) = token
        .split_once('.')
        .ok_or_else(|| unauthorized("malformed device credentials"))?;
    hq.read(|conn| Ok(db::authenticate(conn, device_id, secret)?))?
        .ok_or_else(|| unauthorized("unknown device or wrong secret"))
}

/// Admits `n` requests of `limit` for `device`, or answers `429 throttled`.
fn admit(hq: &Hq, device: &db::Device, limit: crate::Limit, n: usize) -> Answer<()> {
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

fn admin(hq: &Hq, headers: &HeaderMap) -> Answer<()> {
    let token = bearer(headers).unwrap_or_default();
    let expected = hq.config.admin_token.as_bytes();
    let same = token.len() == expected.len()
        && token
            .bytes()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same && !expected.is_empty() {
        Ok(())
    } else {
        Err(unauthorized("admin token required"))
    }
}

pub fn router(hq: Arc<Hq>) -> axum::Router {
    axum::Router::new()
        .route(paths::SNAPSHOT, get(snapshot))
        .route(paths::SNAPSHOT_CHUNKS, get(snapshot_chunk))
        .route(paths::CHANGES, get(changes))
        .route(paths::MODEL, get(model))
        .route(paths::OFFER_MODEL, get(offer_model))
        .route(paths::EVENTS, post(events))
        .route(paths::MEMBER_LOOKUP, get(lookup))
        .route(paths::ADMIN_DEVICES, post(register_device))
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
        .fallback(|| async {
            Failure(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .with_state(hq)
}

async fn snapshot(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
) -> Answer<Json<aisle_proto::Signed>> {
    blocking(move || {
        let store_id = device(&hq, &headers)?.store_id;
        let _building = hq
            .snapshot_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let folder = hq.config.snapshot_dir();
        let options = db::SnapshotOptions {
            chunk_records: hq.config.chunk_records,
            max_age: hq.config.snapshot_max_age,
            history_days: hq.config.history_days,
        };
        let (manifest, _) =
            hq.read(|conn| db::build_snapshot(conn, store_id, &folder, &options, crate::now()))?;
        Ok(Json(hq.signer.sign(&manifest)))
    })
    .await
}

async fn snapshot_chunk(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Path((snapshot_id, index)): Path<(String, u32)>,
) -> Answer<Vec<u8>> {
    blocking(move || {
        let store_id = device(&hq, &headers)?.store_id;
        let gone = || {
            Failure(
                StatusCode::NOT_FOUND,
                "snapshot_gone",
                format!("snapshot {snapshot_id} is no longer offered; ask for a new one"),
            )
        };
        // Only this store's snapshots, and only names HQ made.
        let prefix = format!("{store_id}-");
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
            .join(db::chunk_name(index));
        std::fs::read(&path).map_err(|_| gone())
    })
    .await
}

async fn model(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Path(artifact_id): Path<i64>,
) -> Answer<Vec<u8>> {
    blocking(move || {
        device(&hq, &headers)?;
        hq.read(|conn| {
            Ok(aisle_core::recommend::artifact::bytes_of(
                conn,
                artifact_id,
            )?)
        })?
        .ok_or_else(|| {
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
    blocking(move || {
        device(&hq, &headers)?;
        hq.read(|conn| Ok(aisle_core::offers::model::shipped(conn, Some(model_id))?))?
            .map(|shipped| shipped.bytes)
            .ok_or_else(|| {
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
    Query(query): Query<ChangesQuery>,
) -> Answer<Json<aisle_proto::Signed>> {
    blocking(move || {
        let store_id = device(&hq, &headers)?.store_id;
        let limit = query.limit.unwrap_or(5_000).clamp(1, 50_000);
        let batch = hq.read(|conn| db::changes_after(conn, store_id, query.after, limit))?;
        Ok(Json(hq.signer.sign(&batch)))
    })
    .await
}

/// An upload is read with each event's kind as text ([`RawEventUpload`]):
/// an event HQ cannot read is quarantined alone, not the whole upload.
async fn events(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Json(upload): Json<RawEventUpload>,
) -> Answer<Json<aisle_proto::EventAck>> {
    blocking(move || {
        let device = device(&hq, &headers)?;
        admit(&hq, &device, crate::Limit::Events, upload.events.len())?;
        let now = crate::now();
        let ack = hq.write(|conn| db::record_events(conn, &device, &upload.events, now))?;
        Ok(Json(ack))
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
    Query(query): Query<LookupQuery>,
) -> Answer<Json<aisle_proto::MemberLookup>> {
    blocking(move || {
        let device = device(&hq, &headers)?;
        admit(&hq, &device, crate::Limit::Lookups, 1)?;
        let proof = match (&query.card, &query.code, query.member_id) {
            (Some(card), _, _) => db::LookupProof::Card(card),
            (None, Some(code), _) => db::LookupProof::AppCode(code),
            (None, None, Some(id)) => db::LookupProof::MemberId(id),
            (None, None, None) => db::LookupProof::None,
        };
        let found = hq.write(|conn| db::lookup(conn, &device, proof, crate::now()))?;
        Ok(Json(found))
    })
    .await
}

async fn register_device(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Json(registration): Json<DeviceRegistration>,
) -> Answer<Json<DeviceCredentials>> {
    blocking(move || {
        admin(&hq, &headers)?;
        let secret = hq.write(|conn| {
            db::register_device(
                conn,
                &registration.device_id,
                registration.store_id,
                registration.kind,
                crate::now(),
            )
        })?;
        let coupon_issuer = hq.coupon_issuer(registration.store_id)?;
        Ok(Json(DeviceCredentials {
            device_id: registration.device_id,
            store_id: registration.store_id,
            secret,
            hq_public_key: hq.signer.public_hex(),
            protocol: PROTOCOL_VERSION,
            kind: Some(registration.kind),
            coupon_issuer: Some(coupon_issuer),
        }))
    })
    .await
}

async fn admin_coupon_reconciliation(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
) -> Answer<Json<aisle_proto::CouponReconciliation>> {
    blocking(move || {
        admin(&hq, &headers)?;
        let report = hq.read(|conn| Ok(db::coupon_reconciliation(conn)?))?;
        Ok(Json(report))
    })
    .await
}

async fn revoke_device(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Path(device_id): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    blocking(move || {
        admin(&hq, &headers)?;
        hq.write(|conn| db::revoke_device(conn, &device_id, crate::now()))?;
        Ok(Json(serde_json::json!({ "revoked": device_id })))
    })
    .await
}

/// The feed position after an admin change.
#[derive(Debug, serde::Serialize)]
struct Changed {
    seq: u64,
}

async fn admin_apply(hq: Arc<Hq>, headers: HeaderMap, change: Change) -> Answer<Json<Changed>> {
    blocking(move || {
        admin(&hq, &headers)?;
        let seq = hq.write(|conn| db::admin_change(conn, &change, crate::now()))?;
        Ok(Json(Changed { seq }))
    })
    .await
}

async fn admin_member(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Json(record): Json<aisle_proto::MemberRecord>,
) -> Answer<Json<Changed>> {
    admin_apply(hq, headers, Change::Member(record)).await
}

async fn admin_product(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Json(record): Json<aisle_proto::ProductRecord>,
) -> Answer<Json<Changed>> {
    admin_apply(hq, headers, Change::Product(record)).await
}

async fn admin_store_product(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Json(record): Json<aisle_proto::StoreProductRecord>,
) -> Answer<Json<Changed>> {
    admin_apply(hq, headers, Change::StoreProduct(record)).await
}

async fn admin_campaign(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Json(record): Json<aisle_proto::CampaignRecord>,
) -> Answer<Json<Changed>> {
    admin_apply(hq, headers, Change::Campaign(record)).await
}

async fn admin_coupon(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Json(record): Json<aisle_proto::CouponRecord>,
) -> Answer<Json<Changed>> {
    admin_apply(hq, headers, Change::Coupon(record)).await
}

async fn admin_basket(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Json(record): Json<aisle_proto::BasketRecord>,
) -> Answer<Json<Changed>> {
    admin_apply(hq, headers, Change::Basket(record)).await
}

#[derive(Debug, serde::Deserialize)]
struct Erasure {
    member_id: i64,
}

async fn admin_erasure(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Json(erasure): Json<Erasure>,
) -> Answer<Json<Changed>> {
    admin_apply(
        hq,
        headers,
        Change::MemberErased {
            member_id: erasure.member_id,
            erased_at: String::new(),
        },
    )
    .await
}

/// Admin: the recorded store events (keys in order), for audits and tests.
#[derive(Debug, serde::Serialize)]
struct EventLog {
    events: Vec<(String, String, i64, String)>,
}

async fn admin_events(State(hq): State<Arc<Hq>>, headers: HeaderMap) -> Answer<Json<EventLog>> {
    blocking(move || {
        admin(&hq, &headers)?;
        let events = hq.read(|conn| {
            let mut stmt = conn.prepare("SELECT idempotency_key, device_id, seq, kind FROM store_events ORDER BY device_id, seq")?;
            let rows = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })?;
        Ok(Json(EventLog { events }))
    })
    .await
}

/// Admin: the devices HQ throttled, the most refused first.
async fn admin_throttled(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
) -> Answer<Json<Vec<aisle_proto::ThrottledDevice>>> {
    blocking(move || {
        admin(&hq, &headers)?;
        Ok(Json(hq.read(|conn| Ok(db::throttled(conn)?))?))
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
struct QuarantineQuery {
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
}

/// Admin: the store events HQ refused, oldest first, a page at a time.
async fn admin_quarantine(
    State(hq): State<Arc<Hq>>,
    headers: HeaderMap,
    Query(query): Query<QuarantineQuery>,
) -> Answer<Json<QuarantineList>> {
    blocking(move || {
        admin(&hq, &headers)?;
        let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
        let page = hq.read(|conn| db::quarantined(conn, query.after, limit))?;
        Ok(Json(page))
    })
    .await
}
