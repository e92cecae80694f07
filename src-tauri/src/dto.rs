//! What crosses IPC. Every type derives `TS`: `bindings()` writes their
//! TypeScript declarations, which the front end imports from
//! `ui/associate/src/bindings.ts` (a test keeps the file equal to them).
//! Field names are camelCase on the wire; ids and cents are JS numbers
//! (they stay far below 2^53).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Every failure a command returns: a stable code the front end can act
/// on, and a sentence for the associate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ApiError {
    /// `bad_request`, `not_found`, `erased`, `erasure_pending`, `signed_out`,
    /// `bad_pin`, `wrong_pin`, `locked`, `forbidden`, `no_model`, an offer
    /// rule's refusal (`per_member_limit`, ...), `internal`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ApiError {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// A failure of the replica or the runtime: logged in full, shown in short.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "associate command failed");
        Self::new(
            "internal",
            format!("Something went wrong on this tablet: {error}"),
        )
    }
}

impl From<aisle_core::staff::StaffError> for ApiError {
    fn from(error: aisle_core::staff::StaffError) -> Self {
        use aisle_core::staff::StaffError;
        match &error {
            StaffError::Hash(_) | StaffError::Db(_) => Self::internal(error),
            StaffError::WrongPin { remaining } => Self::new(
                error.code(),
                format!("Wrong staff number or PIN. {remaining} attempts left before it locks."),
            ),
            StaffError::Locked { until } => Self::new(
                error.code(),
                format!(
                    "Too many wrong PINs: this staff number is locked until {until}. A manager can unlock it."
                ),
            ),
            _ => Self::new(error.code(), capitalized(&error.to_string())),
        }
    }
}

impl From<aisle_core::clienteling::ClientError> for ApiError {
    fn from(error: aisle_core::clienteling::ClientError) -> Self {
        match error.code() {
            "internal" => Self::internal(error),
            code => Self::new(code, capitalized(&error.to_string())),
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

impl From<rusqlite::Error> for ApiError {
    fn from(error: rusqlite::Error) -> Self {
        Self::internal(error)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct SearchArgs {
    /// What the associate typed: name, card number, phone or e-mail.
    pub text: String,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct MemberHit {
    pub member_id: i64,
    pub display_name: Option<String>,
    pub card_number: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Preference {
    /// `size`, `brand`, `category`, `dietary`.
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Note {
    pub author: String,
    pub body: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Profile {
    pub member_id: i64,
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub tier: String,
    pub home_store: Option<String>,
    /// Consent to personalization: without it, no history-based suggestion is shown.
    pub personalization: bool,
    pub marketing: bool,
    pub enrolled_on: Option<String>,
    pub cards: Vec<String>,
    pub preferences: Vec<Preference>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct BasketLine {
    pub product_id: i64,
    pub name: String,
    pub quantity: i64,
    pub cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Basket {
    pub basket_id: i64,
    pub store: String,
    pub purchased_at: String,
    pub total_cents: i64,
    pub lines: Vec<BasketLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct MonthSpend {
    /// `YYYY-MM`.
    pub month: String,
    pub department: String,
    pub cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Suggestion {
    pub product_id: i64,
    pub name: String,
    pub department: Option<String>,
    pub price_cents: Option<i64>,
    pub location: Option<String>,
    /// Why it is suggested, in words the associate can repeat.
    pub reason: String,
}

/// Everything the client screen shows about one member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Client360 {
    pub profile: Profile,
    /// Newest first.
    pub history: Vec<Basket>,
    /// The last twelve months, oldest first.
    pub spend: Vec<MonthSpend>,
    pub buy_again: Vec<Suggestion>,
    pub discover: Vec<Suggestion>,
    /// False without consent (then the lists are what is popular here).
    pub personal: bool,
    pub notice: Option<String>,
    /// False when history and spend are withheld: no consent to personalization.
    pub history_shown: bool,
    /// When an erasure was requested on this replica (no more edits then).
    pub erasure_requested_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct SignInArgs {
    pub staff_id: i64,
    pub pin: String,
}

/// The signed-in associate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct SignedIn {
    pub staff_id: i64,
    pub display_name: String,
    /// `associate` or `manager`.
    pub role: String,
    /// The tablet locks after this long without use.
    pub idle_lock_secs: u32,
}

/// A change to a client, as the client screen sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[ts(tag = "kind", rename_all = "camelCase")]
pub enum Edit {
    /// The whole preference set.
    Preferences {
        preferences: Vec<Preference>,
    },
    /// `personalization` or `marketing`.
    Consent {
        consent: String,
        granted: bool,
    },
    Note {
        body: String,
    },
    /// The client asks to be forgotten (a manager only).
    Erasure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct EditArgs {
    pub member_id: i64,
    pub edit: Edit,
}

/// An offer the associate may give the client now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Offer {
    pub coupon_id: i64,
    pub description: Option<String>,
    /// The model's chance the client redeems it (0 to 1).
    pub p_redeem: f64,
    pub expected_value_cents: f64,
    /// Why it is suggested.
    pub reason: String,
}

/// A coupon the client holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct HeldCoupon {
    pub serial: String,
    pub description: Option<String>,
    pub discount_cents: Option<i64>,
    pub discount_percent: Option<i64>,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct ClientOffers {
    pub eligible: Vec<Offer>,
    pub held: Vec<HeldCoupon>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct IssueArgs {
    pub member_id: i64,
    pub coupon_id: i64,
}

/// A coupon just issued: the till takes the member's card, the QR token or
/// the numeric code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct IssuedCoupon {
    pub serial: String,
    pub numeric_code: String,
    pub token: String,
    pub expires_at: String,
}

/// A product and what is often bought with it here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct ProductCard {
    pub product_id: i64,
    pub name: String,
    pub price_cents: Option<i64>,
    pub in_stock: bool,
    pub location: Option<String>,
    pub bought_together: Vec<Suggestion>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct LockedStaff {
    pub staff_id: i64,
    pub display_name: Option<String>,
    pub failures: u32,
    pub locked_until: String,
}

/// The store view: today's figures (no personal data), sync, and for a
/// manager the staff numbers locked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct StoreView {
    pub store_id: i64,
    pub store_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub kiosk_visits: u32,
    pub kiosk_members: u32,
    pub coupons_issued_kiosk: u32,
    pub coupons_issued_associate: u32,
    pub redemptions: u32,
    pub redeemed_cents: i64,
    pub sync: SyncStatus,
    /// Empty unless a manager is signed in.
    pub locked_out: Vec<LockedStaff>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct SyncStatus {
    pub provisioned: bool,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub pending_events: u32,
    pub offline: bool,
}

/// The TypeScript declarations of every DTO, as `ui/associate/src/bindings.ts` holds them.
pub fn bindings() -> String {
    let cfg = ts_rs::Config::new().with_large_int("number");
    let decls = [
        ApiError::decl(&cfg),
        SearchArgs::decl(&cfg),
        MemberHit::decl(&cfg),
        Preference::decl(&cfg),
        Note::decl(&cfg),
        Profile::decl(&cfg),
        BasketLine::decl(&cfg),
        Basket::decl(&cfg),
        MonthSpend::decl(&cfg),
        Suggestion::decl(&cfg),
        Client360::decl(&cfg),
        SignInArgs::decl(&cfg),
        SignedIn::decl(&cfg),
        Edit::decl(&cfg),
        EditArgs::decl(&cfg),
        Offer::decl(&cfg),
        HeldCoupon::decl(&cfg),
        ClientOffers::decl(&cfg),
        IssueArgs::decl(&cfg),
        IssuedCoupon::decl(&cfg),
        ProductCard::decl(&cfg),
        LockedStaff::decl(&cfg),
        SyncStatus::decl(&cfg),
        StoreView::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/dto.rs by `cargo test -p aisle-associate` \
         (AISLE_UPDATE_BINDINGS=1 rewrites it). Do not edit.\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}
