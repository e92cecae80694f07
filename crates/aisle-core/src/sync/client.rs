//! The HTTP side of sync: one blocking HTTPS client per store device,
//! bearer authentication, the protocol header, and the verification of
//! everything HQ signs. Nothing here touches the replica.

use std::time::Duration;

use aisle_proto::{
    ApiError, CouponKeyRegistered, CouponKeyRegistration, DeviceCredentials, EnrolRequest,
    EventAck, EventUpload, MemberLookup, PROTOCOL_HEADER, PROTOCOL_VERSION, Signed, paths,
};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::de::DeserializeOwned;

use super::{Credentials, SyncError};

/// A connection to HQ for one device.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::blocking::Client,
    chunk_timeout: Duration,
    base: String,
    /// `None` before enrolment (the one-time code is the only proof).
    authorization: Option<String>,
    key: Option<VerifyingKey>,
}

impl Transport {
    /// A client trusting only the CA in the credentials when there is one
    /// (and the platform's roots otherwise: none are built in), with the
    /// default per-request timeout of 60 s.
    pub fn new(credentials: &Credentials) -> Result<Self, SyncError> {
        Self::with_timeout(credentials, Duration::from_secs(60))
    }

    /// The same, giving up on a stalled request after `timeout` (snapshot
    /// chunks get five times as long).
    pub fn with_timeout(credentials: &Credentials, timeout: Duration) -> Result<Self, SyncError> {
        let key = credentials.verifying_key()?;
        let mut transport =
            Self::anonymous(&credentials.hq_url, credentials.ca_pem.as_deref(), timeout)?;
        transport.authorization = Some(format!(
            "Bearer {}.{}",
            credentials.device_id, credentials.secret
        ));
        transport.key = Some(key);
        Ok(transport)
    }

    /// A client of a device that has no credentials yet (enrolment).
    fn anonymous(hq_url: &str, ca_pem: Option<&str>, timeout: Duration) -> Result<Self, SyncError> {
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .tls_built_in_root_certs(false)
            .user_agent(concat!("aisle/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certificate = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|err| {
                SyncError::Config {
                    what: format!("the HQ certificate authority is not a PEM certificate: {err}"),
                }
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder.build().map_err(|err| SyncError::Config {
            what: format!("cannot build the HTTPS client: {err}"),
        })?;
        Ok(Self {
            chunk_timeout: timeout * 5,
            client,
            base: hq_url.trim_end_matches('/').to_owned(),
            authorization: None,
            key: None,
        })
    }

    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::blocking::Response, SyncError> {
        let mut request = request.header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string());
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request.send().map_err(|err| SyncError::Unreachable {
            what: what.to_owned(),
            reason: error_chain(&err),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().unwrap_or_default();
        let error: Option<ApiError> = serde_json::from_str(&body).ok();
        Err(SyncError::Refused {
            what: what.to_owned(),
            status: status.as_u16(),
            code: error
                .as_ref()
                .map_or_else(|| "http".to_owned(), |e| e.code.clone()),
            message: error
                .map_or_else(|| body.chars().take(200).collect::<String>(), |e| e.message),
        })
    }

    fn body(
        &self,
        response: reqwest::blocking::Response,
        what: &str,
    ) -> Result<Vec<u8>, SyncError> {
        response
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|err| SyncError::Unreachable {
                what: what.to_owned(),
                reason: error_chain(&err),
            })
    }

    fn json<T: DeserializeOwned>(&self, bytes: &[u8], what: &str) -> Result<T, SyncError> {
        serde_json::from_slice(bytes).map_err(|err| SyncError::Malformed {
            what: what.to_owned(),
            reason: err.to_string(),
        })
    }

    /// A signed document, verified against HQ's key, then parsed.
    fn signed<T: DeserializeOwned>(&self, bytes: &[u8], what: &str) -> Result<T, SyncError> {
        let signed: Signed = self.json(bytes, what)?;
        let key = self.key.as_ref().ok_or_else(|| SyncError::Config {
            what: format!("{what}: no HQ key to verify it with (not provisioned)"),
        })?;
        verify(key, &signed, what)?;
        self.json(signed.payload.as_bytes(), what)
    }

    pub fn snapshot_manifest(&self) -> Result<aisle_proto::SnapshotManifest, SyncError> {
        let what = "the snapshot manifest";
        // HQ may build the snapshot first: as long as a chunk may take.
        let response = self.send(
            self.client
                .get(format!("{}{}", self.base, paths::SNAPSHOT))
                .timeout(self.chunk_timeout),
            what,
        )?;
        let bytes = self.body(response, what)?;
        self.signed(&bytes, what)
    }

    pub fn snapshot_chunk(&self, snapshot_id: &str, index: u32) -> Result<Vec<u8>, SyncError> {
        let what = format!("snapshot chunk {index}");
        let url = format!("{}/v1/snapshot/{snapshot_id}/chunks/{index}", self.base);
        let response = self.send(self.client.get(url).timeout(self.chunk_timeout), &what)?;
        self.body(response, &what)
    }

    /// A model artifact's bytes, checked against what HQ signed about them.
    pub fn model(&self, info: &aisle_proto::ModelInfo) -> Result<Vec<u8>, SyncError> {
        let what = format!("{} model artifact {}", info.kind, info.artifact_id);
        let path = info.path().ok_or_else(|| SyncError::Protocol {
            what: format!("{what} is of a kind this store does not know"),
        })?;
        let url = format!("{}{path}", self.base);
        let response = self.send(self.client.get(url).timeout(self.chunk_timeout), &what)?;
        let bytes = self.body(response, &what)?;
        if bytes.len() as u64 != info.bytes || super::sha256_hex(&bytes) != info.sha256 {
            return Err(SyncError::Checksum { what });
        }
        Ok(bytes)
    }

    pub fn changes(&self, after: u64, limit: usize) -> Result<aisle_proto::ChangeBatch, SyncError> {
        let what = format!("the changes after {after}");
        let request = self
            .client
            .get(format!("{}{}", self.base, paths::CHANGES))
            .query(&[("after", after.to_string()), ("limit", limit.to_string())]);
        let response = self.send(request, &what)?;
        let bytes = self.body(response, &what)?;
        self.signed(&bytes, &what)
    }

    pub fn upload(&self, upload: &EventUpload) -> Result<EventAck, SyncError> {
        let what = format!("an upload of {} events", upload.events.len());
        let request = self
            .client
            .post(format!("{}{}", self.base, paths::EVENTS))
            .json(upload);
        let response = self.send(request, &what)?;
        let bytes = self.body(response, &what)?;
        self.json(&bytes, &what)
    }

    pub fn lookup(&self, query: &super::LookupKey) -> Result<MemberLookup, SyncError> {
        let what = "a member look-up";
        let pair = match query {
            super::LookupKey::Card(card) => ("card", card.clone()),
            super::LookupKey::AppCode(code) => ("code", code.clone()),
        };
        let request = self
            .client
            .get(format!("{}{}", self.base, paths::MEMBER_LOOKUP))
            .query(&[pair]);
        let response = self.send(request, what)?;
        let bytes = self.body(response, what)?;
        self.json(&bytes, what)
    }
}

/// Redeems a one-time enrolment code at HQ over TLS (trusting `ca_pem`
/// only, when given): the device's credentials, without a coupon key.
pub fn redeem_enrolment(
    hq_url: &str,
    ca_pem: Option<&str>,
    code: &str,
) -> Result<DeviceCredentials, SyncError> {
    let transport = Transport::anonymous(hq_url, ca_pem, Duration::from_secs(60))?;
    let what = "the enrolment";
    let request = transport
        .client
        .post(format!("{}{}", transport.base, paths::ENROL))
        .json(&EnrolRequest {
            code: code.trim().to_owned(),
        });
    let response = transport.send(request, what)?;
    let bytes = transport.body(response, what)?;
    transport.json(&bytes, what)
}

impl Transport {
    /// Registers the public half of this device's coupon issuing key; HQ
    /// answers with its key id.
    pub fn register_coupon_key(&self, public_key: &VerifyingKey) -> Result<i64, SyncError> {
        let what = "the coupon key registration";
        let request = self
            .client
            .post(format!("{}{}", self.base, paths::COUPON_KEYS))
            .json(&CouponKeyRegistration {
                public_key: hex::encode(public_key.as_bytes()),
            });
        let response = self.send(request, what)?;
        let bytes = self.body(response, what)?;
        let registered: CouponKeyRegistered = self.json(&bytes, what)?;
        Ok(registered.key_id)
    }
}

/// Checks HQ's signature over the payload's exact bytes.
pub fn verify(key: &VerifyingKey, signed: &Signed, what: &str) -> Result<(), SyncError> {
    let bad = |reason: &str| SyncError::BadSignature {
        what: what.to_owned(),
        reason: reason.to_owned(),
    };
    let bytes = hex::decode(&signed.signature).map_err(|_| bad("the signature is not hex"))?;
    let signature =
        Signature::from_slice(&bytes).map_err(|_| bad("the signature is not 64 bytes"))?;
    key.verify_strict(signed.payload.as_bytes(), &signature)
        .map_err(|_| bad("it does not verify with HQ's key"))
}

/// An error and its causes on one line (reqwest hides the useful part in sources).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
