//! Rotating member codes: what a member's phone shows as a QR code, verified
//! fully offline.
//!
//! Format (QR alphanumeric mode: upper case, digits and `:`):
//!
//! ```text
//! AISLE1:<member id>:<window>:<signature, base32>:<check>
//! ```
//!
//! - `window` is the code's time window: Unix seconds / window length
//!   (default 30 s); a code is valid in its window, with a configurable
//!   clock-skew tolerance of whole windows either side.
//! - `signature` is the Ed25519 signature, by the member's own key, of the
//!   ASCII bytes `AISLE1:<member id>:<window>`; 64 bytes, RFC 4648 base32
//!   without padding (103 characters).
//! - `check` is two base32 characters of a checksum over everything before
//!   it: a code damaged or edited by hand fails it ("altered"), a code made
//!   without the member's key passes it and fails the signature ("forged").
//!
//! Replays (the same code shown twice within its window) are caught by the
//! caller's replay cache; [`verify`] is pure (the clock is an input).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

pub const PREFIX: &str = "AISLE1";

/// Knobs of verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePolicy {
    pub window_secs: u64,
    /// Whole windows of clock skew accepted either side.
    pub skew_windows: u64,
}

impl Default for CodePolicy {
    fn default() -> Self {
        Self {
            window_secs: 30,
            skew_windows: 1,
        }
    }
}

/// A code's fields, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCode {
    pub member_id: i64,
    pub window: u64,
    pub signature: [u8; 64],
}

/// Why a code is refused; each has a stable code for audits and screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("not a member code")]
    Malformed,
    #[error("the code was damaged or edited (checksum)")]
    Altered,
    #[error("the code was not signed by this member's key")]
    Forged,
    #[error("the code has expired")]
    Expired,
    #[error("the code is not valid yet (clock skew beyond tolerance)")]
    NotYetValid,
    #[error("this member has no key for app codes")]
    NoKey,
    #[error("the code was already used in its window")]
    Replayed,
}

impl CodeError {
    pub fn code(self) -> &'static str {
        match self {
            CodeError::Malformed => "malformed",
            CodeError::Altered => "altered",
            CodeError::Forged => "forged",
            CodeError::Expired => "expired",
            CodeError::NotYetValid => "not_yet_valid",
            CodeError::NoKey => "no_key",
            CodeError::Replayed => "replayed",
        }
    }
}

pub(crate) const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub(crate) fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

pub(crate) fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = ALPHABET.iter().position(|a| *a == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding.
    (buffer == 0).then_some(out)
}

/// Two base32 characters (10 bits) of FNV-1a over the text.
pub(crate) fn check(text: &str) -> String {
    let hash = crate::rng::fnv1a64(text.as_bytes());
    let bits = (hash & 0x3ff) as usize;
    [ALPHABET[bits >> 5], ALPHABET[bits & 31]]
        .iter()
        .map(|b| char::from(*b))
        .collect()
}

fn signed_text(member_id: i64, window: u64) -> String {
    format!("{PREFIX}:{member_id}:{window}")
}

/// The code a member's app shows at `now_secs` (Unix seconds).
pub fn encode(member_id: i64, key: &SigningKey, now_secs: u64, policy: &CodePolicy) -> String {
    let window = now_secs / policy.window_secs.max(1);
    let signed = signed_text(member_id, window);
    let signature = key.sign(signed.as_bytes());
    let body = format!("{signed}:{}", base32(&signature.to_bytes()));
    let check = check(&body);
    format!("{body}:{check}")
}

/// Reads a code's fields (format and checksum only).
pub fn parse(text: &str) -> Result<MemberCode, CodeError> {
    let text = text.trim();
    let (body, given_check) = text.rsplit_once(':').ok_or(CodeError::Malformed)?;
    let mut fields = body.split(':');
    let (Some(PREFIX), Some(member), Some(window), Some(signature), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(CodeError::Malformed);
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(member) || !digits(window) || signature.len() != 103 || given_check.len() != 2 {
        return Err(CodeError::Malformed);
    }
    if check(body) != given_check {
        return Err(CodeError::Altered);
    }
    let signature: [u8; 64] = unbase32(signature)
        .and_then(|b| b.try_into().ok())
        .ok_or(CodeError::Altered)?;
    Ok(MemberCode {
        member_id: member.parse().map_err(|_| CodeError::Malformed)?,
        window: window.parse().map_err(|_| CodeError::Malformed)?,
        signature,
    })
}

/// Verifies a parsed code against the member's public key at `now_secs`.
pub fn verify(
    code: &MemberCode,
    key: &VerifyingKey,
    now_secs: u64,
    policy: &CodePolicy,
) -> Result<(), CodeError> {
    let signature = Signature::from_bytes(&code.signature);
    key.verify_strict(
        signed_text(code.member_id, code.window).as_bytes(),
        &signature,
    )
    .map_err(|_| CodeError::Forged)?;
    let current = now_secs / policy.window_secs.max(1);
    if code.window.saturating_add(policy.skew_windows) < current {
        return Err(CodeError::Expired);
    }
    if code.window > current.saturating_add(policy.skew_windows) {
        return Err(CodeError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn key(seed: u64) -> SigningKey {
        let mut rng = SplitMix64::new(seed);
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        SigningKey::from_bytes(&bytes)
    }

    #[test]
    fn base32_round_trips() {
        let mut rng = SplitMix64::new(3);
        for len in 0..70 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            assert_eq!(unbase32(&base32(&bytes)), Some(bytes));
        }
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn the_protocol_test_vector_is_reproduced() {
        // docs/PROTOCOL.md's code of demo member 1, computed independently.
        assert_eq!(
            encode(
                1,
                &crate::keys::demo_member_key(1),
                1_764_000_000,
                &CodePolicy::default()
            ),
            "AISLE1:1:58800000:BPSOLNNUL224JIQDJYDRE6I5I6T35VK2VV3UEA775VSUCZILOECOGCIF6EOOPCC66A6KL7XCQZAUU2LPD5CTOIMKQ5CEQNDCFKJEEAQ:V5"
        );
    }

    #[test]
    fn a_fresh_code_verifies_and_fits_qr_alphanumeric_mode() {
        let policy = CodePolicy::default();
        let member_key = key(1);
        let text = encode(1029, &member_key, 1_764_000_000, &policy);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b':'),
            "{text}"
        );
        let code = parse(&text).expect("parses");
        assert_eq!(code.member_id, 1029);
        assert_eq!(
            verify(&code, &member_key.verifying_key(), 1_764_000_010, &policy),
            Ok(())
        );
    }

    /// Over 10,000 generated codes: every valid one accepted; every forged,
    /// altered, expired or premature one refused with its own reason.
    #[test]
    fn ten_thousand_codes_each_judged_right() {
        let policy = CodePolicy::default();
        let mut rng = SplitMix64::new(20_261_125);
        let keys: Vec<SigningKey> = (0..50).map(key).collect();
        let mut counts = [0usize; 5];
        for idx in 0..10_000 {
            let member = (rng.next_u64() % 50) as usize;
            let now = 1_700_000_000 + rng.next_u64() % 100_000_000;
            let public = keys[member].verifying_key();
            let kind = idx % 5;
            counts[kind] += 1;
            match kind {
                0 => {
                    let text = encode(member as i64, &keys[member], now, &policy);
                    let code = parse(&text).expect("valid code parses");
                    assert_eq!(
                        verify(&code, &public, now + rng.next_u64() % 30, &policy),
                        Ok(())
                    );
                }
                1 => {
                    // Forged: signed with another member's key, well formed.
                    let other = (member + 1 + (rng.next_u64() % 49) as usize) % 50;
                    let text = encode(member as i64, &keys[other], now, &policy);
                    let code = parse(&text).expect("a forged code is well formed");
                    assert_eq!(verify(&code, &public, now, &policy), Err(CodeError::Forged));
                }
                2 => {
                    // Altered: one character changed anywhere.
                    let text = encode(member as i64, &keys[member], now, &policy);
                    let mut bytes = text.into_bytes();
                    let at = (rng.next_u64() % bytes.len() as u64) as usize;
                    let old = bytes[at];
                    bytes[at] = loop {
                        let c = ALPHABET[(rng.next_u64() % 32) as usize];
                        if c != old {
                            break c;
                        }
                    };
                    let text = String::from_utf8(bytes).expect("ascii");
                    let judged = parse(&text).and_then(|code| verify(&code, &public, now, &policy));
                    assert!(
                        matches!(
                            judged,
                            Err(CodeError::Altered | CodeError::Malformed | CodeError::Forged)
                        ),
                        "{text}: {judged:?}"
                    );
                }
                3 => {
                    let text = encode(member as i64, &keys[member], now, &policy);
                    let code = parse(&text).expect("parses");
                    let later = now + policy.window_secs * (policy.skew_windows + 2);
                    assert_eq!(
                        verify(&code, &public, later, &policy),
                        Err(CodeError::Expired)
                    );
                }
                _ => {
                    let text = encode(
                        member as i64,
                        &keys[member],
                        now + 10 * policy.window_secs,
                        &policy,
                    );
                    let code = parse(&text).expect("parses");
                    assert_eq!(
                        verify(&code, &public, now, &policy),
                        Err(CodeError::NotYetValid)
                    );
                }
            }
        }
        assert_eq!(counts, [2_000; 5]);
    }

    /// Property: any text, however broken, is judged without a panic.
    #[test]
    fn property_any_text_is_judged_without_panic() {
        let mut rng = SplitMix64::new(9);
        let public = key(1).verifying_key();
        let valid = encode(7, &key(1), 1_764_000_000, &CodePolicy::default());
        for _ in 0..20_000 {
            let text = rng.garbled(&valid, 200, ALPHABET);
            if let Ok(code) = parse(&text) {
                let _ = verify(&code, &public, 1_764_000_000, &CodePolicy::default());
            }
        }
    }
}
