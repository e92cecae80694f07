//! Store events: the typed payload of every [`EventKind`], as the store's
//! outbox writes it and HQ reads it. Field names and types are the wire
//! format (`docs/PROTOCOL.md`, "Store events"); an [`Event`] carries one of
//! these as its `payload`, next to its `kind`.
//!
//! [`StoreEvent`] gathers them, tagged like the [`Event`] envelope
//! (`{"kind": ..., "payload": {...}}`). [`StoreEvent::decode`] reads an
//! uploaded event's kind and payload and says why it cannot ([`EventError`]);
//! [`StoreEvent::check`] applies the store's own rules (text lengths,
//! preference kinds), the ones a store never breaks unless its data is
//! damaged. Both are pure: checks against master data are HQ's.
//!
//! A payload may carry fields this build does not know (a newer store's):
//! they are ignored, as everywhere in the protocol.

use serde::{Deserialize, Serialize};

use crate::{Event, EventKind, Preference};

/// The preference kinds a member may state (the replica schema's
/// `member_preferences.kind`).
pub const PREFERENCE_KINDS: [&str; 4] = ["brand", "category", "size", "dietary"];
/// Preference values are at most this many characters (trimmed).
pub const MAX_PREFERENCE_CHARS: usize = 60;
/// A member holds at most this many preferences.
pub const MAX_PREFERENCES: usize = 40;
/// Notes are at most this many characters (trimmed).
pub const MAX_NOTE_CHARS: usize = 2_000;
/// Names and identifiers an event carries (a note's author, an actor such as
/// `staff:N` or a device, a till) are at most this many characters.
pub const MAX_LABEL_CHARS: usize = 100;
/// Timestamps are at most this many characters.
pub const MAX_TIMESTAMP_CHARS: usize = 40;

/// `kiosk_visit`: a member identified at a kiosk; HQ adds them to the
/// store's partition. `store_id` is null on a replica serving no store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskVisit {
    pub member_id: i64,
    pub store_id: Option<i64>,
    pub at: String,
}

/// `coupon_issued`: a coupon instance issued in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponIssued {
    /// 16 decimal digits.
    pub serial: String,
    pub coupon_id: i64,
    pub member_id: i64,
    pub store_id: i64,
    pub key_id: i64,
    /// `kiosk`, `associate`, `till` or `import`.
    pub channel: String,
    pub issued_at: String,
    pub expires_at: String,
}

/// `coupon_redeemed`: an instance redeemed at a till of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRedeemed {
    pub serial: String,
    pub coupon_id: i64,
    pub member_id: i64,
    pub issuer_store_id: i64,
    pub key_id: i64,
    pub channel: String,
    pub expires_at: String,
    /// The redeeming store.
    pub store_id: i64,
    pub redeemed_at: String,
    pub till_id: String,
    pub value_cents: i64,
    /// Issued at another store: counted in the store's offline risk budget.
    pub offline_risk: bool,
}

/// `preferences_set`: the member's whole preference set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferencesSet {
    pub member_id: i64,
    pub preferences: Vec<Preference>,
}

/// Which consent a `consent_changed` event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentName {
    Personalization,
    Marketing,
}

impl ConsentName {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentName::Personalization => "personalization",
            ConsentName::Marketing => "marketing",
        }
    }
}

/// `consent_changed`: a consent granted or withdrawn in the store at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentChanged {
    pub member_id: i64,
    pub consent: ConsentName,
    pub granted: bool,
    pub at: String,
    /// Who recorded it (`staff:N`) and their role (`associate`, `manager`):
    /// HQ accepts a grant only from an associate it knows at the store. A
    /// withdrawal needs neither (it always wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `associate_note`: a note an associate wrote on the member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociateNote {
    pub member_id: i64,
    pub author: String,
    pub body: String,
}

/// `erasure_requested`: the member asked to be forgotten (a manager confirmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRequested {
    pub member_id: i64,
    /// `staff:N`: HQ applies the request only if that associate is an active
    /// manager of the device's store in its own records.
    pub requested_by: String,
    /// The role the store saw (`manager`), checked against HQ's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `coupon_sent_to_app`: a shopper asked the kiosk to send a coupon to their app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponSentToApp {
    pub serial: String,
    pub member_id: i64,
    pub at: String,
}

/// `profile_viewed`: an associate opened the member's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileViewed {
    pub member_id: i64,
    /// `staff:N` (or the device, before sign-in).
    pub actor: String,
    pub store_id: i64,
    pub at: String,
}

/// One store event, typed. Serialized like the [`Event`] envelope's
/// `kind` and `payload`: `{"kind": "kiosk_visit", "payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum StoreEvent {
    KioskVisit(KioskVisit),
    CouponIssued(CouponIssued),
    CouponRedeemed(CouponRedeemed),
    PreferencesSet(PreferencesSet),
    ConsentChanged(ConsentChanged),
    AssociateNote(AssociateNote),
    ErasureRequested(ErasureRequested),
    CouponSentToApp(CouponSentToApp),
    ProfileViewed(ProfileViewed),
}

/// Why an uploaded event cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// A kind this build does not know.
    UnknownKind(String),
    /// The payload does not decode into the kind's struct.
    BadPayload { kind: EventKind, reason: String },
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventError::UnknownKind(kind) => write!(f, "unknown event kind {kind:?}"),
            EventError::BadPayload { kind, reason } => {
                write!(
                    f,
                    "a {} payload that does not decode: {reason}",
                    kind.name()
                )
            }
        }
    }
}

impl std::error::Error for EventError {}

impl EventError {
    /// The rejection HQ answers with.
    pub fn rejection(&self) -> Rejection {
        let code = match self {
            EventError::UnknownKind(_) => RejectCode::UnknownKind,
            EventError::BadPayload { .. } => RejectCode::BadPayload,
        };
        Rejection::new(code, self.to_string())
    }
}

/// Why HQ refuses an event: a stable code (see [`RejectedEvent::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// A kind HQ does not know.
    UnknownKind,
    /// A payload that does not decode into its kind's struct.
    BadPayload,
    /// A member HQ has never held.
    UnknownMember,
    /// A coupon not in HQ's catalog.
    UnknownCoupon,
    /// A store not in HQ's master data.
    UnknownStore,
    /// A text (or a list) longer than the store allows.
    TooLong,
    /// A preference of a kind the schema refuses.
    BadPreference,
    /// Any other value the store would not write (an empty text, a malformed
    /// serial, an unknown coupon channel).
    BadValue,
    /// A valid-looking event whose effects HQ's database refused.
    ApplyFailed,
    /// An event the sending device's kind may not send (a kiosk's erasure).
    NotAllowed,
    /// An event about a member outside the device's store partition.
    OutsidePartition,
    /// An event naming a store other than the device's own.
    WrongStore,
    /// An act by an associate HQ does not know at this store, or whose role
    /// does not allow it (an erasure by a non-manager).
    NotAuthorized,
    /// A coupon issued under a key that is not the sending device's own.
    WrongKey,
}

impl RejectCode {
    pub const ALL: [RejectCode; 14] = [
        RejectCode::UnknownKind,
        RejectCode::BadPayload,
        RejectCode::UnknownMember,
        RejectCode::UnknownCoupon,
        RejectCode::UnknownStore,
        RejectCode::TooLong,
        RejectCode::BadPreference,
        RejectCode::BadValue,
        RejectCode::ApplyFailed,
        RejectCode::NotAllowed,
        RejectCode::OutsidePartition,
        RejectCode::WrongStore,
        RejectCode::NotAuthorized,
        RejectCode::WrongKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::UnknownKind => "unknown_kind",
            RejectCode::BadPayload => "bad_payload",
            RejectCode::UnknownMember => "unknown_member",
            RejectCode::UnknownCoupon => "unknown_coupon",
            RejectCode::UnknownStore => "unknown_store",
            RejectCode::TooLong => "too_long",
            RejectCode::BadPreference => "bad_preference",
            RejectCode::BadValue => "bad_value",
            RejectCode::ApplyFailed => "apply_failed",
            RejectCode::NotAllowed => "not_allowed",
            RejectCode::OutsidePartition => "outside_partition",
            RejectCode::WrongStore => "wrong_store",
            RejectCode::NotAuthorized => "not_authorized",
            RejectCode::WrongKey => "wrong_key",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// A refused event: its code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    pub reason: String,
}

impl Rejection {
    pub fn new(code: RejectCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.reason)
    }
}

/// HQ's answer about one event it will never apply (quarantined).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// The event's idempotency key.
    pub key: String,
    /// A [`RejectCode`] name; a newer HQ may send codes this build does not know.
    pub code: String,
    pub reason: String,
}

/// Admin: one quarantined event, as HQ received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantinedEvent {
    /// Increasing: the listing's `after` cursor.
    pub quarantine_id: i64,
    pub idempotency_key: String,
    pub device_id: String,
    pub store_id: i64,
    pub seq: i64,
    pub kind: String,
    pub code: String,
    pub reason: String,
    pub created_at: String,
    pub received_at: String,
    /// The payload as received.
    pub payload: serde_json::Value,
}

/// Admin: a page of the quarantine, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineList {
    pub events: Vec<QuarantinedEvent>,
    /// Pass as `after` for the next page; `None` when this page is the last.
    pub next_after: Option<i64>,
}

/// An event as uploaded, before HQ reads its kind: the [`Event`] envelope
/// with the kind as text, so one event of a kind HQ does not know is
/// refused alone instead of failing its whole upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    pub idempotency_key: String,
    pub seq: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: String,
}

/// An [`crate::EventUpload`] as HQ reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEventUpload {
    pub events: Vec<RawEvent>,
}

impl From<Event> for RawEvent {
    fn from(event: Event) -> Self {
        Self {
            idempotency_key: event.idempotency_key,
            seq: event.seq,
            kind: event.kind.name().to_owned(),
            payload: event.payload,
            created_at: event.created_at,
        }
    }
}

fn decode_as<T: serde::de::DeserializeOwned>(
    kind: EventKind,
    payload: &serde_json::Value,
) -> Result<T, EventError> {
    if !payload.is_object() {
        return Err(EventError::BadPayload {
            kind,
            reason: format!(
                "{} is not a JSON object",
                match payload {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::Object(_) => "an object",
                }
            ),
        });
    }
    T::deserialize(payload).map_err(|err| EventError::BadPayload {
        kind,
        reason: err.to_string(),
    })
}

impl StoreEvent {
    /// Reads an event from its kind's name and its payload.
    pub fn decode(kind: &str, payload: &serde_json::Value) -> Result<Self, EventError> {
        let kind = EventKind::parse(kind).ok_or_else(|| EventError::UnknownKind(kind.into()))?;
        Ok(match kind {
            EventKind::KioskVisit => Self::KioskVisit(decode_as(kind, payload)?),
            EventKind::CouponIssued => Self::CouponIssued(decode_as(kind, payload)?),
            EventKind::CouponRedeemed => Self::CouponRedeemed(decode_as(kind, payload)?),
            EventKind::PreferencesSet => Self::PreferencesSet(decode_as(kind, payload)?),
            EventKind::ConsentChanged => Self::ConsentChanged(decode_as(kind, payload)?),
            EventKind::AssociateNote => Self::AssociateNote(decode_as(kind, payload)?),
            EventKind::ErasureRequested => Self::ErasureRequested(decode_as(kind, payload)?),
            EventKind::CouponSentToApp => Self::CouponSentToApp(decode_as(kind, payload)?),
            EventKind::ProfileViewed => Self::ProfileViewed(decode_as(kind, payload)?),
        })
    }

    pub fn kind(&self) -> EventKind {
        match self {
            Self::KioskVisit(_) => EventKind::KioskVisit,
            Self::CouponIssued(_) => EventKind::CouponIssued,
            Self::CouponRedeemed(_) => EventKind::CouponRedeemed,
            Self::PreferencesSet(_) => EventKind::PreferencesSet,
            Self::ConsentChanged(_) => EventKind::ConsentChanged,
            Self::AssociateNote(_) => EventKind::AssociateNote,
            Self::ErasureRequested(_) => EventKind::ErasureRequested,
            Self::CouponSentToApp(_) => EventKind::CouponSentToApp,
            Self::ProfileViewed(_) => EventKind::ProfileViewed,
        }
    }

    /// The payload alone, as an [`Event`] carries it and the outbox stores it.
    pub fn payload(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Self::KioskVisit(p) => serde_json::to_value(p),
            Self::CouponIssued(p) => serde_json::to_value(p),
            Self::CouponRedeemed(p) => serde_json::to_value(p),
            Self::PreferencesSet(p) => serde_json::to_value(p),
            Self::ConsentChanged(p) => serde_json::to_value(p),
            Self::AssociateNote(p) => serde_json::to_value(p),
            Self::ErasureRequested(p) => serde_json::to_value(p),
            Self::CouponSentToApp(p) => serde_json::to_value(p),
            Self::ProfileViewed(p) => serde_json::to_value(p),
        }
    }

    /// The member the event is about (every kind names one).
    pub fn member_id(&self) -> i64 {
        match self {
            Self::KioskVisit(p) => p.member_id,
            Self::CouponIssued(p) => p.member_id,
            Self::CouponRedeemed(p) => p.member_id,
            Self::PreferencesSet(p) => p.member_id,
            Self::ConsentChanged(p) => p.member_id,
            Self::AssociateNote(p) => p.member_id,
            Self::ErasureRequested(p) => p.member_id,
            Self::CouponSentToApp(p) => p.member_id,
            Self::ProfileViewed(p) => p.member_id,
        }
    }

    /// The store's own rules: what a store writes always passes. Master
    /// data (members, coupons, stores) is HQ's to check.
    pub fn check(&self) -> Result<(), Rejection> {
        match self {
            Self::KioskVisit(p) => timestamp("at", &p.at),
            Self::CouponIssued(p) => {
                label("channel", &p.channel)?;
                timestamp("issued_at", &p.issued_at)?;
                timestamp("expires_at", &p.expires_at)
            }
            Self::CouponRedeemed(p) => {
                label("channel", &p.channel)?;
                label("till_id", &p.till_id)?;
                timestamp("expires_at", &p.expires_at)?;
                timestamp("redeemed_at", &p.redeemed_at)?;
                if p.value_cents < 0 {
                    return Err(Rejection::new(
                        RejectCode::BadValue,
                        format!("value_cents is {}, below zero", p.value_cents),
                    ));
                }
                Ok(())
            }
            Self::PreferencesSet(p) => check_preferences(&p.preferences),
            Self::ConsentChanged(p) => timestamp("at", &p.at),
            Self::AssociateNote(p) => {
                label("author", &p.author)?;
                text("body", p.body.trim(), MAX_NOTE_CHARS)
            }
            Self::ErasureRequested(p) => label("requested_by", &p.requested_by),
            Self::CouponSentToApp(p) => timestamp("at", &p.at),
            Self::ProfileViewed(p) => {
                label("actor", &p.actor)?;
                timestamp("at", &p.at)
            }
        }
    }
}

/// A non-empty text of at most `max` characters.
fn text(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.is_empty() {
        return Err(Rejection::new(
            RejectCode::BadValue,
            format!("{field} is empty"),
        ));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(Rejection::new(
            RejectCode::TooLong,
            format!("{field} is {chars} characters; at most {max}"),
        ));
    }
    Ok(())
}

fn label(field: &str, value: &str) -> Result<(), Rejection> {
    text(field, value, MAX_LABEL_CHARS)
}

fn timestamp(field: &str, value: &str) -> Result<(), Rejection> {
    text(field, value, MAX_TIMESTAMP_CHARS)
}

/// A preference set as the store keeps it: known kinds, values of 1 to
/// [`MAX_PREFERENCE_CHARS`] characters once trimmed, at most
/// [`MAX_PREFERENCES`] distinct preferences.
pub fn check_preferences(preferences: &[Preference]) -> Result<(), Rejection> {
    let mut distinct: std::collections::HashSet<(&str, &str)> =
        std::collections::HashSet::with_capacity(preferences.len());
    for preference in preferences {
        if !PREFERENCE_KINDS.contains(&preference.kind.as_str()) {
            return Err(Rejection::new(
                RejectCode::BadPreference,
                format!(
                    "{:?} is not a kind of preference ({})",
                    preference.kind,
                    PREFERENCE_KINDS.join(", ")
                ),
            ));
        }
        let value = preference.value.trim();
        text(
            &format!("a {} preference", preference.kind),
            value,
            MAX_PREFERENCE_CHARS,
        )?;
        distinct.insert((preference.kind.as_str(), value));
    }
    if distinct.len() > MAX_PREFERENCES {
        return Err(Rejection::new(
            RejectCode::TooLong,
            format!("{} preferences; at most {MAX_PREFERENCES}", distinct.len()),
        ));
    }
    Ok(())
}

macro_rules! into_store_event {
    ($($name:ident),* $(,)?) => {
        $(impl From<$name> for StoreEvent {
            fn from(payload: $name) -> Self {
                StoreEvent::$name(payload)
            }
        })*
    };
}

into_store_event!(
    KioskVisit,
    CouponIssued,
    CouponRedeemed,
    PreferencesSet,
    ConsentChanged,
    AssociateNote,
    ErasureRequested,
    CouponSentToApp,
    ProfileViewed,
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `kind` TAB `payload` lines, as a store's outbox holds them.
    const FIXTURES: &str = include_str!("../tests/fixtures/events.tsv");

    fn fixtures() -> Vec<(&'static str, &'static str)> {
        FIXTURES
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| line.split_once('\t').expect("kind TAB payload"))
            .collect()
    }

    fn decode(kind: &str, payload: &serde_json::Value) -> Result<StoreEvent, EventError> {
        StoreEvent::decode(kind, payload)
    }

    #[test]
    fn todays_payloads_decode_and_re_encode_to_the_same_text() {
        let mut kinds = std::collections::HashSet::new();
        for (kind, text) in fixtures() {
            let payload: serde_json::Value = serde_json::from_str(text).expect("fixture json");
            let event = StoreEvent::decode(kind, &payload)
                .unwrap_or_else(|err| panic!("{kind} {text}: {err}"));
            assert_eq!(event.kind().name(), kind);
            assert_eq!(
                event.member_id(),
                payload["member_id"].as_i64().expect("id")
            );
            let again = event.payload().expect("encode");
            assert_eq!(again, payload, "{kind}: the same JSON");
            assert_eq!(
                again.to_string(),
                text,
                "{kind}: the same bytes in the outbox"
            );
            assert_eq!(event.check(), Ok(()), "{kind}: a store's event passes");
            // Tagged like the envelope, and back.
            let tagged = serde_json::to_value(&event).expect("tagged");
            assert_eq!(tagged, json!({ "kind": kind, "payload": payload }));
            assert_eq!(
                serde_json::from_value::<StoreEvent>(tagged).expect("untag"),
                event
            );
            kinds.insert(event.kind());
        }
        assert_eq!(
            kinds,
            EventKind::ALL.into_iter().collect(),
            "a fixture for every kind"
        );
    }

    #[test]
    fn an_unknown_kind_is_refused_by_name() {
        let err = decode("loyalty_points", &json!({ "member_id": 1 })).expect_err("unknown");
        assert_eq!(err, EventError::UnknownKind("loyalty_points".into()));
        assert_eq!(err.to_string(), r#"unknown event kind "loyalty_points""#);
        assert_eq!(err.rejection().code, RejectCode::UnknownKind);
        // The tagged form says which kinds exist.
        let err = serde_json::from_value::<StoreEvent>(
            json!({ "kind": "loyalty_points", "payload": {} }),
        )
        .expect_err("unknown");
        assert!(
            err.to_string().contains("unknown variant `loyalty_points`"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_payload_is_refused_with_the_field_at_fault() {
        for (kind, payload, says) in [
            (
                "kiosk_visit",
                json!({ "member_id": "1042", "store_id": 1, "at": "2026-11-25 10:00:00" }),
                "invalid type: string \"1042\", expected i64",
            ),
            (
                "associate_note",
                json!({ "member_id": 1, "author": "Dana" }),
                "missing field `body`",
            ),
            (
                "consent_changed",
                json!({ "member_id": 1, "consent": "sms", "granted": true, "at": "x" }),
                "unknown variant `sms`",
            ),
            (
                "preferences_set",
                json!({ "member_id": 1, "preferences": [{ "kind": "brand" }] }),
                "missing field `value`",
            ),
            (
                "profile_viewed",
                json!([1, "staff:1", 1, "t"]),
                "an array is not a JSON object",
            ),
            (
                "erasure_requested",
                json!(null),
                "null is not a JSON object",
            ),
        ] {
            let err = decode(kind, &payload).expect_err(kind);
            let EventError::BadPayload {
                kind: which,
                reason,
            } = &err
            else {
                panic!("{kind}: {err:?}");
            };
            assert_eq!(which.name(), kind);
            assert!(reason.contains(says), "{kind}: {reason}");
            assert!(
                err.to_string()
                    .starts_with(&format!("a {kind} payload that does not decode"))
            );
            assert_eq!(err.rejection().code, RejectCode::BadPayload);
        }
    }

    #[test]
    fn fields_a_newer_store_adds_are_ignored() {
        let event = decode(
            "kiosk_visit",
            &json!({ "member_id": 1, "store_id": 2, "at": "t", "lane": 4 }),
        )
        .expect("decodes");
        assert_eq!(
            event,
            StoreEvent::KioskVisit(KioskVisit {
                member_id: 1,
                store_id: Some(2),
                at: "t".into()
            })
        );
    }

    fn check(kind: &str, payload: &serde_json::Value) -> Result<(), (RejectCode, String)> {
        decode(kind, payload)
            .expect("decodes")
            .check()
            .map_err(|rejection| (rejection.code, rejection.reason))
    }

    fn preferences(list: &[(&str, &str)]) -> serde_json::Value {
        let list: Vec<_> = list
            .iter()
            .map(|(kind, value)| json!({ "kind": kind, "value": value }))
            .collect();
        json!({ "member_id": 1, "preferences": list })
    }

    #[test]
    fn the_stores_rules_are_checked() {
        let ok = Ok(());
        let code = |result: Result<(), (RejectCode, String)>| result.map_err(|(code, _)| code);
        // Preference kinds, values, counts.
        assert_eq!(check("preferences_set", &preferences(&[("size", "M")])), ok);
        assert_eq!(
            check("preferences_set", &preferences(&[("colour", "red")])),
            Err((
                RejectCode::BadPreference,
                r#""colour" is not a kind of preference (brand, category, size, dietary)"#.into()
            ))
        );
        assert_eq!(
            code(check("preferences_set", &preferences(&[("brand", "  ")]))),
            Err(RejectCode::BadValue)
        );
        let long = "é".repeat(MAX_PREFERENCE_CHARS);
        assert_eq!(
            check("preferences_set", &preferences(&[("brand", &long)])),
            ok
        );
        let longer = "é".repeat(MAX_PREFERENCE_CHARS + 1);
        assert_eq!(
            code(check(
                "preferences_set",
                &preferences(&[("brand", &longer)])
            )),
            Err(RejectCode::TooLong)
        );
        let values: Vec<String> = (0..=MAX_PREFERENCES).map(|n| format!("b{n}")).collect();
        let many: Vec<(&str, &str)> = values.iter().map(|v| ("brand", v.as_str())).collect();
        assert_eq!(
            code(check("preferences_set", &preferences(&many))),
            Err(RejectCode::TooLong)
        );
        let repeated: Vec<(&str, &str)> = (0..=MAX_PREFERENCES).map(|_| ("brand", "X")).collect();
        assert_eq!(
            check("preferences_set", &preferences(&repeated)),
            ok,
            "duplicates count once, as the store keeps them"
        );
        // Notes and labels.
        let note = |author: &str, body: &str| {
            check(
                "associate_note",
                &json!({ "member_id": 1, "author": author, "body": body }),
            )
        };
        assert_eq!(note("Dana", &"n".repeat(MAX_NOTE_CHARS)), ok);
        assert_eq!(
            note("Dana", &"n".repeat(MAX_NOTE_CHARS + 1)),
            Err((
                RejectCode::TooLong,
                format!(
                    "body is {} characters; at most {MAX_NOTE_CHARS}",
                    MAX_NOTE_CHARS + 1
                )
            ))
        );
        assert_eq!(code(note("Dana", " \n ")), Err(RejectCode::BadValue));
        assert_eq!(
            code(note(&"a".repeat(MAX_LABEL_CHARS + 1), "hi")),
            Err(RejectCode::TooLong)
        );
        assert_eq!(
            code(check(
                "profile_viewed",
                &json!({ "member_id": 1, "actor": "", "store_id": 1, "at": "t" })
            )),
            Err(RejectCode::BadValue)
        );
        assert_eq!(
            code(check(
                "kiosk_visit",
                &json!({ "member_id": 1, "store_id": null, "at": "t".repeat(MAX_TIMESTAMP_CHARS + 1) })
            )),
            Err(RejectCode::TooLong)
        );
        let (_, redeemed) = fixtures()
            .into_iter()
            .find(|(kind, _)| *kind == "coupon_redeemed")
            .expect("a redemption");
        let mut negative: serde_json::Value = serde_json::from_str(redeemed).expect("json");
        negative["value_cents"] = json!(-1);
        assert_eq!(
            code(check("coupon_redeemed", &negative)),
            Err(RejectCode::BadValue)
        );
    }

    #[test]
    fn reject_codes_round_trip_by_name() {
        for code in RejectCode::ALL {
            assert_eq!(RejectCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(RejectCode::parse("nope"), None);
    }

    /// An ack from an HQ older than the quarantine parses (nothing rejected),
    /// and an ack with nothing rejected is sent as before.
    #[test]
    fn acks_stay_compatible_both_ways() {
        let old = r#"{"acknowledged":["a-1"],"duplicates":0}"#;
        let ack: crate::EventAck = serde_json::from_str(old).expect("old ack");
        assert!(ack.rejected.is_empty());
        assert_eq!(serde_json::to_string(&ack).expect("json"), old);
        let ack = crate::EventAck {
            acknowledged: vec!["a-1".into(), "a-2".into()],
            duplicates: 0,
            rejected: vec![RejectedEvent {
                key: "a-2".into(),
                code: "bad_preference".into(),
                reason: "no".into(),
            }],
        };
        let text = serde_json::to_string(&ack).expect("json");
        assert!(
            text.ends_with(r#""rejected":[{"key":"a-2","code":"bad_preference","reason":"no"}]}"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<crate::EventAck>(&text).expect("parse"),
            ack
        );
    }

    /// HQ reads an upload with the kind as text: the store's envelope, byte for
    /// byte, and an event of a kind it does not know does not fail the rest.
    #[test]
    fn raw_uploads_read_the_stores_envelope_and_any_kind() {
        let event = Event {
            idempotency_key: "abc-1".into(),
            seq: 1,
            kind: EventKind::KioskVisit,
            payload: json!({ "member_id": 1, "store_id": 2, "at": "t" }),
            created_at: "t".into(),
        };
        let upload = crate::EventUpload {
            events: vec![event.clone()],
        };
        let text = serde_json::to_string(&upload).expect("json");
        let raw: RawEventUpload = serde_json::from_str(&text).expect("raw");
        assert_eq!(raw.events, vec![RawEvent::from(event)]);
        assert_eq!(serde_json::to_string(&raw).expect("json"), text);
        let unknown = text.replace("kiosk_visit", "loyalty_points");
        let raw: RawEventUpload = serde_json::from_str(&unknown).expect("raw");
        assert_eq!(raw.events[0].kind, "loyalty_points");
        assert!(serde_json::from_str::<crate::EventUpload>(&unknown).is_err());
    }
}
