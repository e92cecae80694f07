//! The wire protocol between a store and HQ: message types and the protocol
//! version. Serde only, no I/O; `docs/PROTOCOL.md` is the prose version, and
//! anything a retailer's own HQ sends must match these shapes.
//!
//! Every body is JSON except snapshot chunks (gzip of JSON lines of
//! [`Change`]). HQ signs what the store will apply (snapshot manifests and
//! change batches) with Ed25519: the signed bytes are exactly the `payload`
//! text of a [`Signed`] envelope, so no canonical JSON is needed.

use serde::{Deserialize, Serialize};

pub mod events;

pub use events::{RejectedEvent, StoreEvent};

/// The protocol version this build speaks. Sent by the store in the
/// [`PROTOCOL_HEADER`] header of every request; HQ refuses other versions
/// with 426 and an [`ApiError`] of code `protocol_version`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Request header carrying [`PROTOCOL_VERSION`].
pub const PROTOCOL_HEADER: &str = "aisle-protocol";

/// Paths, relative to HQ's base URL.
pub mod paths {
    /// `GET`: the signed [`super::SnapshotManifest`] of the device's store partition.
    pub const SNAPSHOT: &str = "/v1/snapshot";
    /// `GET /v1/snapshot/{snapshot_id}/chunks/{index}`: one chunk's bytes.
    pub const SNAPSHOT_CHUNKS: &str = "/v1/snapshot/{snapshot_id}/chunks/{index}";
    /// `GET /v1/models/{artifact_id}`: a model artifact's bytes (see [`super::ModelInfo`]).
    pub const MODEL: &str = "/v1/models/{artifact_id}";
    /// An offer model's bytes (a [`crate::ModelInfo`] of kind `offers`).
    pub const OFFER_MODEL: &str = "/v1/models/offers/{artifact_id}";
    /// `GET ?after=CURSOR&limit=N`: a signed [`super::ChangeBatch`].
    pub const CHANGES: &str = "/v1/changes";
    /// `POST` an [`super::EventUpload`], answered by an [`super::EventAck`].
    pub const EVENTS: &str = "/v1/events";
    /// `GET ?card=NUMBER` or `?code=APP_CODE`: a [`super::MemberLookup`].
    pub const MEMBER_LOOKUP: &str = "/v1/members/lookup";
    /// `POST` an [`super::EnrolRequest`] (no device credentials yet: the
    /// one-time code is the proof), answered by [`super::DeviceCredentials`].
    pub const ENROL: &str = "/v1/enrol";
    /// `POST` a [`super::CouponKeyRegistration`]: the device's own coupon
    /// issuing key, answered by [`super::CouponKeyRegistered`].
    pub const COUPON_KEYS: &str = "/v1/coupon-keys";
    /// Admin API: served on HQ's admin listener only (bearer admin token).
    /// `POST` a [`super::DeviceRegistration`]: answered by an
    /// [`super::Enrolment`], the one-time code the device redeems at [`ENROL`].
    pub const ADMIN_DEVICES: &str = "/admin/v1/devices";
    /// `GET ?after=ID&limit=N`: an [`super::AdminAuditList`], oldest first.
    pub const ADMIN_AUDIT: &str = "/admin/v1/audit";
    /// `POST`: revoke a device (a lost or stolen tablet); it gets 401 from then on.
    pub const ADMIN_DEVICE_REVOKE: &str = "/admin/v1/devices/{device_id}/revoke";
    pub const ADMIN_MEMBERS: &str = "/admin/v1/members";
    pub const ADMIN_PRODUCTS: &str = "/admin/v1/products";
    pub const ADMIN_STORE_PRODUCTS: &str = "/admin/v1/store-products";
    pub const ADMIN_CAMPAIGNS: &str = "/admin/v1/campaigns";
    pub const ADMIN_COUPONS: &str = "/admin/v1/coupons";
    /// A member's basket from the tills (reaches every store holding the member).
    pub const ADMIN_BASKETS: &str = "/admin/v1/baskets";
    pub const ADMIN_ERASURES: &str = "/admin/v1/erasures";
    pub const ADMIN_EVENTS: &str = "/admin/v1/events";
    pub const ADMIN_PARTITION: &str = "/admin/v1/partition";
    /// `GET`: a [`super::CouponReconciliation`] (coupons redeemed at two stores).
    pub const ADMIN_COUPON_RECONCILIATION: &str = "/admin/v1/coupons/reconciliation";
    /// `GET ?after=ID&limit=N`: a [`super::events::QuarantineList`], the
    /// store events HQ refused, oldest first.
    pub const ADMIN_QUARANTINE: &str = "/admin/v1/quarantine";
    pub const ADMIN_THROTTLED: &str = "/admin/v1/devices/throttled";
}

/// Every error body, with a stable code a client branches on and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// A payload signed by HQ: `signature` is the Ed25519 signature (hex) of the
/// UTF-8 bytes of `payload`, itself a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub payload: String,
    /// Hex, 128 characters.
    pub signature: String,
}

/// Admin: register a store device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRegistration {
    pub device_id: String,
    pub store_id: i64,
    /// What the device is, and so what it may do at HQ (required: a
    /// registration that does not say is refused).
    pub kind: DeviceKind,
}

/// What a store device is. HQ grants each kind the events and endpoints it
/// needs and nothing more ([`DeviceKind::may_send`], [`DeviceKind::may_look_up`];
/// the table in docs/PROTOCOL.md, "Device kinds").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A shopper-facing kiosk: identifies members, records visits, issues
    /// coupons and sends them to the app.
    Kiosk,
    /// An associate's tablet: member edits by a signed-in associate,
    /// profile views, coupons, erasure requests by a manager.
    Tablet,
    /// A till: redeems coupons, and issues them with the receipt.
    Till,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 3] = [DeviceKind::Kiosk, DeviceKind::Tablet, DeviceKind::Till];

    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Kiosk => "kiosk",
            DeviceKind::Tablet => "tablet",
            DeviceKind::Till => "till",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The store events this kind of device may upload.
    pub fn may_send(self, event: EventKind) -> bool {
        use EventKind as E;
        match self {
            DeviceKind::Kiosk => {
                matches!(event, E::KioskVisit | E::CouponIssued | E::CouponSentToApp)
            }
            DeviceKind::Tablet => matches!(
                event,
                E::PreferencesSet
                    | E::ConsentChanged
                    | E::AssociateNote
                    | E::ErasureRequested
                    | E::ProfileViewed
                    | E::CouponIssued
                    | E::CouponSentToApp
            ),
            // Coupons at the till: printed with the receipt, redeemed at checkout.
            DeviceKind::Till => matches!(event, E::CouponRedeemed | E::CouponIssued),
        }
    }

    /// Whether this kind may look a member up at HQ (with a proof of
    /// presence: a card or the member's app code).
    pub fn may_look_up(self) -> bool {
        matches!(self, DeviceKind::Kiosk | DeviceKind::Tablet)
    }

    /// Whether HQ sends this kind members' contacts (phone, e-mail): only
    /// the associate's tablet shows them (docs/PROTOCOL.md, "Least data per
    /// device kind").
    pub fn receives_contacts(self) -> bool {
        matches!(self, DeviceKind::Tablet)
    }

    /// Whether HQ sends this kind card numbers as they are (a tablet shows
    /// them); other kinds hold them keyed with the store's card key.
    pub fn receives_card_numbers(self) -> bool {
        matches!(self, DeviceKind::Tablet)
    }

    /// Whether HQ sends this kind the store's associates (names, roles, PIN
    /// hashes): only the tablet signs associates in.
    pub fn receives_associates(self) -> bool {
        matches!(self, DeviceKind::Tablet)
    }
}

/// Admin: a device HQ refused requests of for going over its quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottledDevice {
    pub device_id: String,
    pub store_id: i64,
    /// `lookups` or `events`.
    pub what: String,
    /// Requests refused so far.
    pub refused: i64,
    pub first_at: String,
    pub last_at: String,
}

/// Admin's answer to a registration: a one-time code for the device to
/// redeem at [`paths::ENROL`] (shown once; HQ keeps its SHA-256 only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    pub device_id: String,
    pub store_id: i64,
    pub kind: DeviceKind,
    pub code: String,
    pub expires_at: String,
}

/// A device redeeming its enrolment code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    pub code: String,
}

/// A device registering the public half of the coupon issuing key it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponKeyRegistration {
    /// Ed25519 verifying key, hex.
    pub public_key: String,
}

/// The key id HQ gave a registered issuing key (unique within the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponKeyRegistered {
    pub key_id: i64,
}

/// One admin call as HQ recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAuditEntry {
    pub audit_id: i64,
    pub at: String,
    /// The admin token's name (`None`: no valid token was shown).
    pub token_name: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// `ok`, or the refusal's code.
    pub outcome: String,
}

/// A page of the admin audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAuditList {
    pub entries: Vec<AdminAuditEntry>,
}

/// What a device receives at enrolment (or `aisle-hq register-device`
/// prints): everything it needs to talk to HQ, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCredentials {
    pub device_id: String,
    pub store_id: i64,
    /// The device's bearer secret (hex, 32 random bytes); HQ keeps only its SHA-256.
    pub secret: String,
    /// HQ's Ed25519 verifying key (hex, 32 bytes).
    pub hq_public_key: String,
    pub protocol: u32,
    /// What HQ registered the device as (absent from an HQ older than
    /// device kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DeviceKind>,
    /// The store's card key, hex, for a device that holds card numbers
    /// keyed (a kiosk, a till: docs/PROTOCOL.md, "Least data per device
    /// kind"); `None` for a tablet, which holds them as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_key: Option<String>,
    /// The device's own coupon issuing key (docs/PROTOCOL.md, "Coupon
    /// codes"): HQ never sends one (it holds public halves only); the device
    /// fills this in when it made and registered its key at enrolment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_issuer: Option<CouponIssuerSecret>,
}

/// A device's Ed25519 coupon issuing key and the key id HQ gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponIssuerSecret {
    pub key_id: i64,
    /// The 32-byte secret, hex.
    pub secret: String,
}

/// The manifest of a bootstrap snapshot (signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub protocol: u32,
    pub snapshot_id: String,
    pub store_id: i64,
    /// The change-feed cursor the snapshot is consistent with: after applying
    /// it, ask for changes after this cursor.
    pub cursor: u64,
    pub created_at: String,
    pub chunks: Vec<ChunkInfo>,
    pub total_records: u64,
    /// HQ's current recommendation model, fetched from [`paths::MODEL`].
    #[serde(default)]
    pub model: Option<ModelInfo>,
    /// HQ's current offer model (P(redeem)), fetched from [`paths::OFFER_MODEL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_model: Option<ModelInfo>,
}

/// A model artifact HQ publishes (fitted on all stores' purchases). The
/// store fetches its bytes and checks them against `sha256` and `bytes`,
/// which it got signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub artifact_id: i64,
    /// `recommend` or `offers`.
    pub kind: String,
    pub format_version: u32,
    pub trained_until: String,
    pub created_at: String,
    /// SHA-256 (hex) of the artifact's bytes as served.
    pub sha256: String,
    pub bytes: u64,
}

impl ModelInfo {
    /// A recommendation model ([`paths::MODEL`]).
    pub const RECOMMEND: &'static str = "recommend";
    /// An offer model, P(redeem) ([`paths::OFFER_MODEL`]).
    pub const OFFERS: &'static str = "offers";

    /// Where HQ serves its bytes; `None` for a kind this build does not know
    /// (a newer HQ's: the store leaves it alone).
    pub fn path(&self) -> Option<String> {
        let template = match self.kind.as_str() {
            Self::RECOMMEND => paths::MODEL,
            Self::OFFERS => paths::OFFER_MODEL,
            _ => return None,
        };
        Some(template.replace("{artifact_id}", &self.artifact_id.to_string()))
    }
}

/// One chunk of a snapshot: gzip of JSON lines, each a [`Change`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    pub index: u32,
    /// SHA-256 (hex) of the chunk's bytes as served (compressed).
    pub sha256: String,
    pub bytes: u64,
    pub records: u64,
}

/// A batch of the change feed (signed). Changes with feed positions in
/// `(from_cursor, to_cursor]` that concern the store, in feed order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeBatch {
    pub protocol: u32,
    pub store_id: i64,
    pub from_cursor: u64,
    pub to_cursor: u64,
    /// More changes are waiting after `to_cursor`.
    pub more: bool,
    pub changes: Vec<Change>,
}

/// One change to the store's partition. Records are whole (state, not
/// diffs): applying one twice leaves the same replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    Store(StoreRecord),
    Product(ProductRecord),
    StoreProduct(StoreProductRecord),
    /// The member's whole profile (cards and preferences included): what HQ holds now.
    Member(MemberRecord),
    /// Erasure: the store removes every personal datum of the member.
    MemberErased {
        member_id: i64,
        erased_at: String,
    },
    Campaign(CampaignRecord),
    Coupon(CouponRecord),
    /// One of a member's baskets: the purchase history a store personalizes
    /// with while offline (Buy again, coupon affinity, spend rules).
    Basket(BasketRecord),
    /// One of the store's associates, whole (PIN hash included): who may
    /// sign in on the store's tablets, and with which role.
    Associate(AssociateRecord),
    /// A new model artifact: fetch it, then keep it with this batch.
    Model(ModelInfo),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRecord {
    pub store_id: i64,
    pub name: String,
    pub region: Option<String>,
    pub timezone: String,
    /// The public keys the store signs coupon instances with, so that every
    /// store verifies its coupons offline. Keys are only ever added: `None`
    /// (a peer older than coupons) and `Some` both keep the keys a store has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_keys: Option<Vec<CodeKeyRecord>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRecord {
    pub product_id: i64,
    pub name: String,
    pub gtin: Option<String>,
    pub manufacturer_id: Option<i64>,
    pub department: Option<String>,
    pub category: Option<String>,
    pub product_type: Option<String>,
    pub brand: Option<String>,
    pub brand_type: Option<String>,
    pub package_size: Option<String>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreProductRecord {
    pub store_id: i64,
    pub product_id: i64,
    pub price_cents: i64,
    pub stock_qty: i64,
    pub location: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: i64,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub home_store_id: Option<i64>,
    pub tier: String,
    pub consent_personalization: bool,
    pub consent_personalization_at: Option<String>,
    pub consent_marketing: bool,
    pub consent_marketing_at: Option<String>,
    pub enrolled_on: Option<String>,
    pub updated_at: String,
    pub cards: Vec<CardRecord>,
    pub preferences: Vec<Preference>,
    /// The public keys the member's phone signs app codes with (normally one;
    /// during a rotation the new one and the old one, until HQ drops it); the
    /// highest `key_id` verifies. `Some`: exactly these (HQ always says).
    /// `None`: not stated, as from a peer older than this field; the
    /// receiver keeps the keys it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_keys: Option<Vec<CodeKeyRecord>>,
    /// Coupon instances issued to the member by Aisle, each with its
    /// redemption when HQ knows one (the first, when two stores redeemed it).
    /// The ledger only grows: a store adds what it lacks and keeps what it has.
    /// `None`: none, or a peer older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupons: Option<Vec<CouponInstanceRecord>>,
}

/// One coupon instance (docs/PROTOCOL.md, "Coupon codes").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponInstanceRecord {
    /// 16 decimal digits.
    pub serial: String,
    pub coupon_id: i64,
    pub issuer_store_id: i64,
    /// The issuing key's id (`None`: not issued by Aisle).
    pub key_id: Option<i64>,
    /// `kiosk`, `associate`, `till` or `import`.
    pub channel: String,
    pub issued_at: String,
    pub expires_at: String,
    pub redemption: Option<CouponRedemptionRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRedemptionRecord {
    pub store_id: i64,
    pub redeemed_at: String,
}

/// HQ's reconciliation of coupon redemptions across stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponReconciliation {
    pub issued: u64,
    pub redeemed: u64,
    /// Redemptions that lost to an earlier one of the same instance.
    pub over_redemptions: Vec<OverRedemption>,
    /// Sum of the losing redemptions' values.
    pub over_redeemed_cents: i64,
    /// Redemptions of instances HQ never saw issued (no `coupon_issued`
    /// event, no import): minted or forged coupons, or a lost outbox.
    #[serde(default)]
    pub never_issued: Vec<NeverIssued>,
}

/// A redemption of a coupon instance HQ never saw issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeverIssued {
    pub serial: String,
    pub coupon_id: i64,
    /// The store whose key signed the instance, as the redemption says.
    pub issuer_store_id: Option<i64>,
    pub store_id: Option<i64>,
    pub redeemed_at: Option<String>,
    pub till_id: Option<String>,
    pub value_cents: Option<i64>,
}

/// A coupon instance redeemed again at a store that could not know (offline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverRedemption {
    pub serial: String,
    pub coupon_id: i64,
    pub member_id: Option<i64>,
    pub issuer_store_id: Option<i64>,
    /// The redemption that counts (the earliest).
    pub first_store_id: i64,
    pub first_redeemed_at: String,
    /// The redemption flagged.
    pub later_store_id: i64,
    pub later_redeemed_at: String,
    pub later_till_id: Option<String>,
    pub value_cents: Option<i64>,
    pub recorded_at: String,
}

/// The public half of a member's app-code key (see docs/PROTOCOL.md, "Member
/// codes"); the private half lives only on the member's phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeKeyRecord {
    /// Increases with each rotation; the highest verifies.
    pub key_id: i64,
    /// The Ed25519 verifying key, hex (64 characters).
    pub public_key: String,
    pub created_at: String,
    /// Coupon issuing keys only: when HQ revoked the key (its device was
    /// revoked, or registered a newer key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRecord {
    pub card_number: String,
    pub status: String,
    pub issued_on: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Preference {
    /// `brand`, `category`, `size` or `dietary`.
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub campaign_id: i64,
    pub name: String,
    pub campaign_type: Option<String>,
    pub starts_on: String,
    pub ends_on: String,
    /// Targeted members of this store's partition.
    pub targets: Vec<i64>,
}

/// What an associate may do on the tablet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Clienteling: search, view, edit, issue coupons.
    Associate,
    /// Also: confirm erasure requests, unlock locked-out associates.
    Manager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Associate => "associate",
            Role::Manager => "manager",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "associate" => Some(Role::Associate),
            "manager" => Some(Role::Manager),
            _ => None,
        }
    }
}

/// An associate of one store. HQ hashes the PIN (Argon2id, a PHC string);
/// stores verify offline and never see the PIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociateRecord {
    pub staff_id: i64,
    pub store_id: i64,
    pub display_name: String,
    pub role: Role,
    pub pin_hash: String,
    /// False once the associate has left: they can no longer sign in.
    pub active: bool,
    pub updated_at: String,
}

/// A member's basket, whole: its lines replace the store's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketRecord {
    pub basket_id: i64,
    pub member_id: i64,
    /// Where it was bought (any store: a member's history is theirs, not the store's).
    pub store_id: i64,
    pub purchased_at: String,
    pub lines: Vec<BasketLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketLine {
    pub line_no: i64,
    pub product_id: i64,
    pub quantity: i64,
    pub sales_cents: i64,
    pub retail_disc_cents: i64,
    pub coupon_disc_cents: i64,
    pub coupon_match_disc_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRecord {
    pub coupon_id: i64,
    pub code: String,
    pub campaign_id: i64,
    pub description: Option<String>,
    pub discount_cents: Option<i64>,
    pub discount_percent: Option<i64>,
    pub product_ids: Vec<i64>,
}

/// Store events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventUpload {
    pub events: Vec<Event>,
}

/// One local event of a store. `idempotency_key` is unique forever: HQ
/// records each key once, however often it is sent. `payload` is the
/// kind's struct in [`events`] (see [`StoreEvent`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub idempotency_key: String,
    /// The store's outbox sequence number (increasing per store).
    pub seq: i64,
    pub kind: EventKind,
    pub payload: serde_json::Value,
    pub created_at: String,
}

/// What happened in the store. HQ applies the profile-changing kinds to its
/// master record (see the conflict rules in `docs/PROTOCOL.md`) and keeps the
/// others as facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `{member_id, at}`: a member identified at a kiosk (HQ adds the member to the store's partition).
    KioskVisit,
    /// `{serial, coupon_id, member_id, store_id, key_id, channel, issued_at, expires_at}`.
    CouponIssued,
    /// `{serial, coupon_id, member_id, issuer_store_id, key_id, channel, expires_at,
    /// store_id, redeemed_at, till_id, value_cents, offline_risk}`.
    CouponRedeemed,
    /// `{member_id, preferences: [{kind, value}]}`: the member's whole preference set.
    PreferencesSet,
    /// `{member_id, consent: "personalization"|"marketing", granted, at}`.
    ConsentChanged,
    /// `{member_id, author, body}`.
    AssociateNote,
    /// `{member_id, requested_by}`.
    ErasureRequested,
    /// `{serial, member_id, at}`: a shopper asked the kiosk to send a coupon
    /// to their app (HQ keeps it as a fact; the app channel delivers it).
    CouponSentToApp,
    /// `{member_id, actor, store_id, at}`: an associate opened the member's
    /// profile (HQ keeps it as a fact: the audit trail of who saw whom).
    ProfileViewed,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::KioskVisit,
        EventKind::CouponIssued,
        EventKind::CouponRedeemed,
        EventKind::PreferencesSet,
        EventKind::ConsentChanged,
        EventKind::AssociateNote,
        EventKind::ErasureRequested,
        EventKind::CouponSentToApp,
        EventKind::ProfileViewed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::KioskVisit => "kiosk_visit",
            EventKind::CouponIssued => "coupon_issued",
            EventKind::CouponRedeemed => "coupon_redeemed",
            EventKind::PreferencesSet => "preferences_set",
            EventKind::ConsentChanged => "consent_changed",
            EventKind::AssociateNote => "associate_note",
            EventKind::ErasureRequested => "erasure_requested",
            EventKind::CouponSentToApp => "coupon_sent_to_app",
            EventKind::ProfileViewed => "profile_viewed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// HQ's answer to an upload: every key it now holds (new or seen before,
/// applied or quarantined). The store deletes exactly these, and the
/// rejected ones, from its outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAck {
    pub acknowledged: Vec<String>,
    /// How many of them HQ had already recorded (duplicates, ignored).
    pub duplicates: u64,
    /// Events HQ refused and keeps in its quarantine, never to apply them
    /// (their keys are acknowledged too, so a store older than this field
    /// lets go of them as well). Absent from an HQ older than the
    /// quarantine, and when nothing was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedEvent>,
}

/// The answer to a member look-up: the profile, now part of the store's partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberLookup {
    pub member: Option<MemberRecord>,
    pub erased: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_tagged_snake_case() {
        let change = Change::MemberErased {
            member_id: 7,
            erased_at: "2026-01-02 03:04:05".into(),
        };
        let text = serde_json::to_string(&change).expect("json");
        assert_eq!(
            text,
            r#"{"type":"member_erased","member_id":7,"erased_at":"2026-01-02 03:04:05"}"#
        );
        let back: Change = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, change);
    }

    /// A member record from a peer older than `code_keys` parses (no keys),
    /// and one with keys round-trips.
    #[test]
    fn member_records_with_and_without_code_keys() {
        let old = r#"{"type":"member","member_id":7,"given_name":"Zoe","family_name":null,
            "display_name":null,"phone":null,"email":null,"home_store_id":null,"tier":"standard",
            "consent_personalization":true,"consent_personalization_at":null,
            "consent_marketing":false,"consent_marketing_at":null,"enrolled_on":null,
            "updated_at":"2026-01-01 00:00:00","cards":[],"preferences":[]}"#;
        let Change::Member(mut member) = serde_json::from_str(old).expect("old record") else {
            panic!("not a member");
        };
        assert_eq!(member.code_keys, None, "not stated");
        assert!(
            !serde_json::to_string(&member)
                .expect("json")
                .contains("code_keys"),
            "not stated, not sent: older peers see what they always saw"
        );
        member.code_keys = Some(Vec::new());
        assert!(
            serde_json::to_string(&member)
                .expect("json")
                .contains(r#""code_keys":[]"#),
            "no keys is stated as such"
        );
        member.code_keys = Some(vec![CodeKeyRecord {
            key_id: 2,
            public_key: "ab".repeat(32),
            created_at: "2026-02-01 00:00:00".into(),
            revoked_at: None,
        }]);
        let text = serde_json::to_string(&Change::Member(member.clone())).expect("json");
        assert_eq!(
            serde_json::from_str::<Change>(&text).expect("parse"),
            Change::Member(member)
        );
    }

    /// Records and credentials from peers older than coupons parse, and
    /// without coupon data nothing new is sent.
    #[test]
    fn coupon_fields_are_optional_both_ways() {
        let old = r#"{"type":"store","store_id":1,"name":"Main","region":null,"timezone":"UTC"}"#;
        let Change::Store(mut store) = serde_json::from_str(old).expect("old store") else {
            panic!("not a store");
        };
        assert_eq!(store.coupon_keys, None);
        assert_eq!(
            serde_json::to_string(&Change::Store(store.clone())).expect("json"),
            old
        );
        store.coupon_keys = Some(vec![CodeKeyRecord {
            key_id: 1,
            public_key: "cd".repeat(32),
            created_at: "2026-06-01 00:00:00".into(),
            revoked_at: None,
        }]);
        let text = serde_json::to_string(&Change::Store(store.clone())).expect("json");
        assert_eq!(
            serde_json::from_str::<Change>(&text).expect("parse"),
            Change::Store(store)
        );
        let credentials: DeviceCredentials = serde_json::from_str(
            r#"{"device_id":"k","store_id":1,"secret":"s","hq_public_key":"p","protocol":1}"#,
        )
        .expect("old credentials");
        assert_eq!(credentials.coupon_issuer, None);
        assert!(
            !serde_json::to_string(&credentials)
                .expect("json")
                .contains("coupon_issuer")
        );
    }

    #[test]
    fn event_kinds_round_trip_by_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.name()), Some(kind));
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }
}
