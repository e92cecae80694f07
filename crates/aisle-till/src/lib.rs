//! The till endpoint: a point-of-sale system checks and redeems coupons
//! over HTTP on loopback, judged by the store replica's ledger
//! ([`aisle_core::offers::ledger`]), offline.
//!
//! - `POST /v1/coupons/check` `{code, member_id?, till_id?}`: the coupon, or
//!   why it would be refused; writes nothing.
//! - `POST /v1/coupons/redeem` `{code, member_id?, till_id?}`: redeems once
//!   (the redemption and its outbox event, or the refusal's audit row, in
//!   one immediate transaction).
//!
//! Answers: 200 with the coupon (description, discount, serial, member,
//! issuing store, value, `offline_risk`), or `{code, message}` with the
//! refusal's reason code and a status ([`status_of`]).
//!
//! Connections follow the replica's rules: one writer (for redemptions, on
//! a blocking thread behind a mutex), read-only readers for checks. Other
//! processes (sync, the CLI) may write the same replica; SQLite's locks and
//! the busy timeout serialize them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use aisle_core::offers::coupon::Refusal;
use aisle_core::offers::ledger::{self, CouponError, RedeemPolicy, RedeemRequest};
use aisle_core::runtime::{Clock, StoreRuntime};
use aisle_proto::ApiError;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};

/// Paths of the endpoint.
pub mod paths {
    pub const CHECK: &str = "/v1/coupons/check";
    pub const REDEEM: &str = "/v1/coupons/redeem";
}

/// What the endpoint needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: PathBuf,
    /// The store named at start; the runtime's rule decides (a provisioned
    /// replica serves only its own store).
    pub store_id: Option<i64>,
    pub policy: RedeemPolicy,
    /// The till id recorded when a request names none.
    pub default_till: String,
    /// The clock: the wall clock; tests set a stepped one.
    pub clock: Clock,
}

impl Config {
    pub fn new(db: PathBuf) -> Self {
        Self {
            db,
            store_id: None,
            policy: RedeemPolicy::default(),
            default_till: "till".into(),
            clock: Clock::wall(),
        }
    }
}

/// Refuses to listen beyond loopback unless asked explicitly.
pub fn check_listen_address(addr: &SocketAddr, allow_non_loopback: bool) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && !allow_non_loopback {
        anyhow::bail!(
            "{addr} is not a loopback address: the till endpoint has no authentication, so it \
             listens on 127.0.0.1 only unless --allow-non-loopback is given"
        );
    }
    Ok(())
}

/// A request of a till.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRequest {
    /// The scanned QR text or the keyed-in numeric code.
    pub code: String,
    #[serde(default)]
    pub member_id: Option<i64>,
    #[serde(default)]
    pub till_id: Option<String>,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponAnswer {
    /// Set when redeemed.
    pub redemption_id: Option<i64>,
    pub serial: String,
    pub coupon_id: i64,
    pub description: Option<String>,
    pub discount_cents: Option<i64>,
    pub discount_percent: Option<i64>,
    pub member_id: i64,
    pub issuer_store_id: i64,
    /// Unix seconds.
    pub expires_at: u64,
    pub value_cents: i64,
    pub offline_risk: bool,
}

impl CouponAnswer {
    fn of(accepted: ledger::Accepted, redemption_id: Option<i64>) -> Self {
        Self {
            redemption_id,
            serial: accepted.serial,
            coupon_id: accepted.coupon.coupon_id,
            description: accepted.coupon.description,
            discount_cents: accepted.coupon.discount_cents,
            discount_percent: accepted.coupon.discount_percent,
            member_id: accepted.member_id,
            issuer_store_id: accepted.issuer_store_id,
            expires_at: accepted.expires_at,
            value_cents: accepted.value_cents,
            offline_risk: accepted.offline_risk,
        }
    }
}

/// The HTTP status of a refusal.
pub fn status_of(reason: Refusal) -> StatusCode {
    match reason {
        Refusal::Malformed | Refusal::Altered => StatusCode::BAD_REQUEST,
        Refusal::Forged
        | Refusal::UnknownIssuer
        | Refusal::RevokedKey
        | Refusal::WrongMember
        | Refusal::MemberRequired => StatusCode::FORBIDDEN,
        Refusal::UnknownSerial => StatusCode::NOT_FOUND,
        Refusal::AlreadyRedeemed => StatusCode::CONFLICT,
        Refusal::Expired | Refusal::CampaignEnded | Refusal::CouponWithdrawn => StatusCode::GONE,
        Refusal::NotYetValid | Refusal::OverFloorLimit | Refusal::OverRiskBudget => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

/// An error answer: status plus `{code, message}`.
#[derive(Debug)]
pub struct Failure(StatusCode, String, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ApiError {
                code: self.1,
                message: self.2,
            }),
        )
            .into_response()
    }
}

impl From<CouponError> for Failure {
    fn from(err: CouponError) -> Self {
        match err {
            CouponError::Refused(reason) => {
                Failure(status_of(reason), reason.code().into(), reason.to_string())
            }
            other => {
                tracing::error!(error = %other, "till endpoint: replica error");
                Failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    other.code().into(),
                    other.to_string(),
                )
            }
        }
    }
}

fn internal(err: impl std::fmt::Display) -> Failure {
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal".into(),
        err.to_string(),
    )
}

/// Shared state: the config, the store's runtime, the writer and a pool of readers.
#[derive(Debug)]
pub struct Till {
    config: Config,
    runtime: StoreRuntime,
    writer: Mutex<rusqlite::Connection>,
    readers: Mutex<Vec<rusqlite::Connection>>,
}

impl Till {
    /// Opens the replica (the writer brings its schema up to date) and
    /// finds this store.
    pub fn open(config: Config) -> anyhow::Result<Arc<Self>> {
        let writer = aisle_core::replica::open_writer(&config.db)?;
        let runtime = StoreRuntime::open(&writer, config.store_id, config.clock.clone())
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.db.display()))?;
        Ok(Arc::new(Self {
            config,
            runtime,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        }))
    }

    pub fn store_id(&self) -> i64 {
        self.runtime.store_id()
    }

    fn request<'a>(&'a self, body: &'a CouponRequest) -> RedeemRequest<'a> {
        RedeemRequest {
            code: &body.code,
            member_id: body.member_id,
            store_id: self.runtime.store_id(),
            till_id: body.till_id.as_deref().unwrap_or(&self.config.default_till),
            now_secs: u64::try_from(self.runtime.clock().now_secs()).unwrap_or(0),
        }
    }

    /// Judges without writing, on a pooled reader.
    pub fn check(&self, body: &CouponRequest) -> Result<CouponAnswer, Failure> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => aisle_core::replica::open_reader(&self.config.db).map_err(internal)?,
        };
        let result = ledger::check(&conn, &self.request(body), &self.config.policy);
        let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < 8 {
            pool.push(conn);
        }
        Ok(CouponAnswer::of(result?, None))
    }

    /// Redeems on the writer.
    pub fn redeem(&self, body: &CouponRequest) -> Result<CouponAnswer, Failure> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let redeemed = ledger::redeem(&conn, &self.request(body), &self.config.policy)?;
        Ok(CouponAnswer::of(
            redeemed.accepted,
            Some(redeemed.redemption_id),
        ))
    }
}

type Answer = Result<Json<CouponAnswer>, Failure>;

fn body(payload: Result<Json<CouponRequest>, JsonRejection>) -> Result<CouponRequest, Failure> {
    payload.map(|Json(body)| body).map_err(|rejection| {
        Failure(
            StatusCode::BAD_REQUEST,
            "bad_request".into(),
            rejection.body_text(),
        )
    })
}

async fn blocking(
    till: Arc<Till>,
    work: impl FnOnce(&Till) -> Result<CouponAnswer, Failure> + Send + 'static,
) -> Answer {
    tokio::task::spawn_blocking(move || work(&till))
        .await
        .map_err(internal)?
        .map(Json)
}

async fn check(
    State(till): State<Arc<Till>>,
    payload: Result<Json<CouponRequest>, JsonRejection>,
) -> Answer {
    let body = body(payload)?;
    blocking(till, move |till| till.check(&body)).await
}

async fn redeem(
    State(till): State<Arc<Till>>,
    payload: Result<Json<CouponRequest>, JsonRejection>,
) -> Answer {
    let body = body(payload)?;
    blocking(till, move |till| till.redeem(&body)).await
}

/// The endpoint's routes over an opened [`Till`].
pub fn router(till: Arc<Till>) -> axum::Router {
    axum::Router::new()
        .route(paths::CHECK, post(check))
        .route(paths::REDEEM, post(redeem))
        .with_state(till)
}

/// Serves the endpoint on `listener` until `shutdown` completes (in-flight
/// requests finish first).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let till = tokio::task::spawn_blocking(move || Till::open(config)).await??;
    tracing::info!(addr = %listener.local_addr()?, store_id = till.store_id(), "till endpoint listening");
    axum::serve(listener, router(till))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
