//! Coupon instances as text: the signed token a QR code carries and the
//! short numeric code a cashier keys in (docs/PROTOCOL.md, "Coupon codes").
//!
//! Token (QR alphanumeric mode: upper case, digits and `:`):
//!
//! ```text
//! AISLEC2:<serial>:<coupon id>:<member id>:<store id>:<key id>:<channel>:<expires>:<max value>:<signature>:<check>
//! AISLEC1:<serial>:<coupon id>:<member id>:<store id>:<key id>:<channel>:<expires>:<signature>:<check>
//! ```
//!
//! Instances are issued as `AISLEC2`; `AISLEC1` (no maximum value) is still
//! read, for instances issued before it.
//!
//! - `serial`: 16 random decimal digits, unique per instance;
//! - `store id`, `key id`: the issuing store and which of its issuing keys
//!   signed (the till looks the public key up in `coupon_issuers`);
//! - `channel`: `K` kiosk, `A` associate, `T` till, `I` import;
//! - `expires`: Unix seconds after which the instance is refused;
//! - `max value`: cents, the most the instance is worth (a fixed coupon's
//!   discount; a percentage coupon's cap): a till counts it at that value
//!   and never discounts more;
//! - `signature`: Ed25519, by the issuing store's key, of the ASCII bytes of
//!   everything before it (without the trailing `:`), RFC 4648 base32 without
//!   padding (103 characters);
//! - `check`: two base32 characters of FNV-1a over everything before it, so
//!   a damaged or hand-edited token is `altered`, and one made without the
//!   store's key passes the check and fails the signature (`forged`).
//!
//! Numeric code: the 16 serial digits and one Damm check digit (17 digits).
//! It is a reference into the ledger, not self-verifying: it is accepted
//! only where the replica knows the instance (issued here, or received from
//! HQ). The check digit catches every single mistyped digit and every swap
//! of two adjacent digits (`altered`).
//!
//! Everything here is pure; [`super::ledger`] adds the ledger, the clock and
//! the risk budget.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::identify::member_code::{base32, check, unbase32};

/// The token's first field.
pub const PREFIX: &str = "AISLEC2";
/// The first field of a token without a maximum value (still read).
pub const PREFIX_V1: &str = "AISLEC1";
/// Digits of a serial.
pub const SERIAL_DIGITS: usize = 16;
/// Digits of a numeric code (serial + check digit).
pub const NUMERIC_DIGITS: usize = SERIAL_DIGITS + 1;

/// Why a coupon is refused; each has a stable code for tills, audits and screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    #[error("not a coupon code")]
    Malformed,
    #[error("the coupon code was damaged or mistyped (check)")]
    Altered,
    #[error("the coupon was not signed by its issuing store's key")]
    Forged,
    #[error("the coupon's issuing store or key is unknown here")]
    UnknownIssuer,
    #[error("the coupon was signed by a revoked key and is not known as issued before")]
    RevokedKey,
    #[error("the coupon has expired")]
    Expired,
    #[error("the coupon's campaign has not started yet")]
    NotYetValid,
    #[error("the coupon belongs to another member")]
    WrongMember,
    #[error("the coupon is bound to a member: identify the member first")]
    MemberRequired,
    #[error("the coupon was already redeemed")]
    AlreadyRedeemed,
    #[error("no coupon with this number is known here")]
    UnknownSerial,
    #[error(
        "the coupon was issued at another store and is worth more than the offline floor limit"
    )]
    OverFloorLimit,
    #[error("the store's daily budget for coupons of other stores is spent")]
    OverRiskBudget,
    #[error("the coupon's campaign has ended")]
    CampaignEnded,
    #[error("the coupon was withdrawn (not in the catalog)")]
    CouponWithdrawn,
}

impl Refusal {
    pub const ALL: [Refusal; 15] = [
        Refusal::Malformed,
        Refusal::Altered,
        Refusal::Forged,
        Refusal::UnknownIssuer,
        Refusal::RevokedKey,
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::WrongMember,
        Refusal::MemberRequired,
        Refusal::AlreadyRedeemed,
        Refusal::UnknownSerial,
        Refusal::OverFloorLimit,
        Refusal::OverRiskBudget,
        Refusal::CampaignEnded,
        Refusal::CouponWithdrawn,
    ];

    /// The stable code (the serde name).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Altered => "altered",
            Refusal::Forged => "forged",
            Refusal::UnknownIssuer => "unknown_issuer",
            Refusal::RevokedKey => "revoked_key",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::WrongMember => "wrong_member",
            Refusal::MemberRequired => "member_required",
            Refusal::AlreadyRedeemed => "already_redeemed",
            Refusal::UnknownSerial => "unknown_serial",
            Refusal::OverFloorLimit => "over_floor_limit",
            Refusal::OverRiskBudget => "over_risk_budget",
            Refusal::CampaignEnded => "campaign_ended",
            Refusal::CouponWithdrawn => "coupon_withdrawn",
        }
    }
}

/// How an instance was handed out (the `coupon_issues.channel` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Kiosk,
    Associate,
    Till,
    Import,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Kiosk => "kiosk",
            Channel::Associate => "associate",
            Channel::Till => "till",
            Channel::Import => "import",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            Channel::Kiosk,
            Channel::Associate,
            Channel::Till,
            Channel::Import,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    fn letter(self) -> char {
        match self {
            Channel::Kiosk => 'K',
            Channel::Associate => 'A',
            Channel::Till => 'T',
            Channel::Import => 'I',
        }
    }

    fn from_letter(text: &str) -> Option<Self> {
        match text {
            "K" => Some(Channel::Kiosk),
            "A" => Some(Channel::Associate),
            "T" => Some(Channel::Till),
            "I" => Some(Channel::Import),
            _ => None,
        }
    }
}

/// What a token states (the signed fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub serial: String,
    pub coupon_id: i64,
    pub member_id: i64,
    pub store_id: i64,
    pub key_id: i64,
    pub channel: Channel,
    /// Unix seconds.
    pub expires_at: u64,
    /// Cents: the most the instance is worth (`None`: an `AISLEC1` token).
    pub max_value_cents: Option<i64>,
}

/// A token as read: its fields and signature (format and check verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub instance: Instance,
    pub signature: [u8; 64],
}

/// Is `text` a serial (exactly 16 decimal digits)?
pub fn is_serial(text: &str) -> bool {
    text.len() == SERIAL_DIGITS && text.bytes().all(|b| b.is_ascii_digit())
}

fn signed_text(instance: &Instance) -> String {
    let common = format!(
        "{}:{}:{}:{}:{}:{}:{}",
        instance.serial,
        instance.coupon_id,
        instance.member_id,
        instance.store_id,
        instance.key_id,
        instance.channel.letter(),
        instance.expires_at
    );
    match instance.max_value_cents {
        Some(max) => format!("{PREFIX}:{common}:{max}"),
        None => format!("{PREFIX_V1}:{common}"),
    }
}

/// The token of an instance, signed with the issuing store's key.
pub fn encode(instance: &Instance, key: &SigningKey) -> String {
    let signed = signed_text(instance);
    let signature = key.sign(signed.as_bytes());
    let body = format!("{signed}:{}", base32(&signature.to_bytes()));
    let check = check(&body);
    format!("{body}:{check}")
}

/// Reads a token (format and check only; the signature is [`verify`]'s).
/// Lower case is read as upper case (a wedge scanner with Caps Lock on).
pub fn parse(text: &str) -> Result<Token, Refusal> {
    let text = text.trim().to_ascii_uppercase();
    let (body, given_check) = text.rsplit_once(':').ok_or(Refusal::Malformed)?;
    let fields: Vec<&str> = body.split(':').collect();
    // AISLEC2 signs a maximum value after the expiry; AISLEC1 has none.
    let (common, max, signature) = match fields.as_slice() {
        [PREFIX, common @ .., max, signature] => (common, Some(*max), *signature),
        [PREFIX_V1, common @ .., signature] => (common, None, *signature),
        _ => return Err(Refusal::Malformed),
    };
    let [serial, coupon, member, store, key_id, channel, expires] = common[..] else {
        return Err(Refusal::Malformed);
    };
    let number = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
    if !is_serial(serial)
        || ![coupon, member, store, key_id, expires]
            .into_iter()
            .chain(max)
            .all(number)
        || signature.len() != 103
        || given_check.len() != 2
    {
        return Err(Refusal::Malformed);
    }
    if check(body) != given_check {
        return Err(Refusal::Altered);
    }
    let channel = Channel::from_letter(channel).ok_or(Refusal::Altered)?;
    let signature: [u8; 64] = unbase32(signature)
        .and_then(|b| b.try_into().ok())
        .ok_or(Refusal::Altered)?;
    let int = |s: &str| s.parse::<i64>().map_err(|_| Refusal::Malformed);
    Ok(Token {
        instance: Instance {
            serial: serial.to_owned(),
            coupon_id: int(coupon)?,
            member_id: int(member)?,
            store_id: int(store)?,
            key_id: int(key_id)?,
            channel,
            expires_at: expires.parse().map_err(|_| Refusal::Malformed)?,
            max_value_cents: max.map(int).transpose()?,
        },
        signature,
    })
}

/// Verifies a token's signature with its issuer's public key.
pub fn verify(token: &Token, key: &VerifyingKey) -> Result<(), Refusal> {
    key.verify_strict(
        signed_text(&token.instance).as_bytes(),
        &Signature::from_bytes(&token.signature),
    )
    .map_err(|_| Refusal::Forged)
}

/// The Damm algorithm's quasigroup (weakly totally antisymmetric, order 10).
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

fn damm(digits: &str) -> u8 {
    digits.bytes().fold(0u8, |interim, b| {
        DAMM[interim as usize][(b - b'0') as usize]
    })
}

/// The numeric code of a serial: the serial and its Damm check digit.
pub fn numeric_code(serial: &str) -> String {
    debug_assert!(is_serial(serial));
    format!("{serial}{}", damm(serial))
}

/// The serial a keyed-in numeric code names. Spaces and dashes (as printed
/// on a receipt in groups) are ignored.
pub fn parse_numeric(text: &str) -> Result<String, Refusal> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect();
    if digits.len() != NUMERIC_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Malformed);
    }
    if damm(&digits) != 0 {
        return Err(Refusal::Altered);
    }
    Ok(digits[..SERIAL_DIGITS].to_owned())
}

/// What a text is: a token or a numeric code (both still to be verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponText {
    Token(Token),
    Serial(String),
}

/// Reads a scanned or keyed-in coupon text.
pub fn read(text: &str) -> Result<CouponText, Refusal> {
    let trimmed = text.trim();
    if [PREFIX, PREFIX_V1].into_iter().any(|prefix| {
        trimmed
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    }) {
        parse(trimmed).map(CouponText::Token)
    } else if trimmed
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
    {
        parse_numeric(trimmed).map(CouponText::Serial)
    } else {
        Err(Refusal::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    pub(crate) fn key(seed: u64) -> SigningKey {
        let mut rng = SplitMix64::new(seed);
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        SigningKey::from_bytes(&bytes)
    }

    fn instance() -> Instance {
        Instance {
            serial: "0123456789012345".into(),
            coupon_id: 42,
            member_id: 1029,
            store_id: 367,
            key_id: 1,
            channel: Channel::Kiosk,
            expires_at: 1_766_000_000,
            max_value_cents: Some(450),
        }
    }

    #[test]
    fn the_maximum_value_is_signed_and_an_older_token_without_it_still_reads() {
        let text = encode(&instance(), &key(1));
        assert!(
            text.starts_with("AISLEC2:") && text.contains(":1766000000:450:"),
            "{text}"
        );
        // Raised by hand: the check catches it; with the check made again,
        // the signature does.
        let raised = text.replacen(":450:", ":950:", 1);
        assert_eq!(parse(&raised), Err(Refusal::Altered));
        let (body, _) = raised.rsplit_once(':').expect("check");
        let rechecked = format!("{body}:{}", check(body));
        let token = parse(&rechecked).expect("well formed");
        assert_eq!(token.instance.max_value_cents, Some(950));
        assert_eq!(
            verify(&token, &key(1).verifying_key()),
            Err(Refusal::Forged)
        );
        // An AISLEC1 token (issued before the maximum was signed).
        let older = Instance {
            max_value_cents: None,
            ..instance()
        };
        let text = encode(&older, &key(1));
        assert!(text.starts_with("AISLEC1:"), "{text}");
        let token = parse(&text).expect("parses");
        assert_eq!(token.instance, older);
        assert_eq!(verify(&token, &key(1).verifying_key()), Ok(()));
        assert_eq!(read(&text), Ok(CouponText::Token(token)));
    }

    #[test]
    fn a_token_round_trips_and_fits_qr_alphanumeric_mode() {
        let text = encode(&instance(), &key(1));
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b':'),
            "{text}"
        );
        let token = parse(&text).expect("parses");
        assert_eq!(token.instance, instance());
        assert_eq!(verify(&token, &key(1).verifying_key()), Ok(()));
        assert_eq!(
            verify(&token, &key(2).verifying_key()),
            Err(Refusal::Forged)
        );
        assert_eq!(read(&text.to_lowercase()), Ok(CouponText::Token(token)));
    }

    #[test]
    fn numeric_codes_catch_single_digit_errors_and_adjacent_swaps() {
        let mut rng = SplitMix64::new(5);
        for _ in 0..2_000 {
            let serial: String = (0..SERIAL_DIGITS)
                .map(|_| char::from(b'0' + (rng.next_u64() % 10) as u8))
                .collect();
            let code = numeric_code(&serial);
            assert_eq!(code.len(), NUMERIC_DIGITS);
            assert_eq!(parse_numeric(&code), Ok(serial.clone()));
            assert_eq!(read(&code), Ok(CouponText::Serial(serial.clone())));
            let spaced = format!("{} {}-{}", &code[..4], &code[4..8], &code[8..]);
            assert_eq!(parse_numeric(&spaced), Ok(serial.clone()));
            let mut bytes = code.clone().into_bytes();
            let at = (rng.next_u64() % NUMERIC_DIGITS as u64) as usize;
            let old = bytes[at];
            bytes[at] = b'0' + ((old - b'0') + 1 + (rng.next_u64() % 9) as u8) % 10;
            let typo = String::from_utf8(bytes).expect("ascii");
            assert_eq!(parse_numeric(&typo), Err(Refusal::Altered), "{typo}");
            let mut bytes = code.into_bytes();
            let at = (rng.next_u64() % (NUMERIC_DIGITS as u64 - 1)) as usize;
            if bytes[at] != bytes[at + 1] {
                bytes.swap(at, at + 1);
                let swapped = String::from_utf8(bytes).expect("ascii");
                assert_eq!(parse_numeric(&swapped), Err(Refusal::Altered), "{swapped}");
            }
        }
        for text in ["", "123", "12345678901234567890", "1234567890123456X"] {
            assert_eq!(parse_numeric(text), Err(Refusal::Malformed), "{text:?}");
        }
    }

    #[test]
    fn reason_codes_are_distinct_and_match_serde() {
        let codes: std::collections::HashSet<&str> =
            Refusal::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Refusal::ALL.len());
        for reason in Refusal::ALL {
            assert_eq!(
                serde_json::to_string(&reason).expect("json"),
                format!("\"{}\"", reason.code())
            );
        }
    }

    /// Property: any text, however broken, is read without a panic.
    #[test]
    fn any_text_is_read_without_panic() {
        let mut rng = SplitMix64::new(11);
        let valid = encode(&instance(), &key(1));
        let public = key(1).verifying_key();
        for _ in 0..20_000 {
            let text = rng.garbled(&valid, 250, b":");
            if let Ok(CouponText::Token(token)) = read(&text) {
                let _ = verify(&token, &public);
            }
        }
    }
}
