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
    /// `bad_request`, `not_found`, `erased`, `internal`.
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct NoteArgs {
    pub member_id: i64,
    pub body: String,
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
        NoteArgs::decl(&cfg),
        SyncStatus::decl(&cfg),
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
