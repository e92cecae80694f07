//! HQ's admin plane: named admin tokens, the admin audit, and two-step
//! device enrolment (docs/SECURITY.md, "The admin plane").
//!
//! - **Tokens** come from a file (`aisle-hq serve --admin-token-file`): one
//!   token per line as `NAME TOKEN [EXPIRES]`, or a file holding a single
//!   token (named `admin`). A token shorter than [`MIN_TOKEN_BYTES`] is
//!   refused when HQ starts; HQ keeps only each token's SHA-256 and compares
//!   digests in constant time, against every token.
//! - **The audit** (`admin_audit`) records every admin call (token name,
//!   action, target, outcome, HQ's time), refused ones included, and every
//!   admin command run on HQ's data folder (token name `local`).
//! - **Enrolment**: the admin creates a one-time code for a device
//!   ([`crate::storage::Storage::create_enrolment`]); the device redeems it
//!   over TLS ([`crate::storage::Storage::redeem_enrolment`]) and receives its
//!   credentials, so the device's secret never passes through the admin's hands.

use aisle_core::time::Timestamp;
use sha2::{Digest, Sha256};

use crate::storage::HqError;

/// The shortest admin token HQ accepts, in bytes.
pub const MIN_TOKEN_BYTES: usize = 32;

/// How long an enrolment code is good for unless the admin says otherwise.
pub const ENROLMENT_VALID_SECS: i64 = 24 * 3600;

/// The token name of admin commands run on HQ's data folder.
pub const LOCAL: &str = "local";

/// One admin token: its name, the SHA-256 of its value, its expiry.
#[derive(Clone)]
pub struct AdminToken {
    pub name: String,
    digest: [u8; 32],
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why a token file or token is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error(
        "admin token {name:?} is {bytes} bytes; at least {MIN_TOKEN_BYTES} are required (make one with `aisle-hq new-admin-token --name {name}`)"
    )]
    TooShort { name: String, bytes: usize },
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("admin token name {0:?} appears twice")]
    DuplicateName(String),
    #[error("two admin tokens ({0:?} and {1:?}) have the same value")]
    DuplicateValue(String, String),
    #[error("no admin token in the file")]
    Empty,
}

/// Why an admin call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRefusal {
    /// No token, or one HQ does not know.
    Unknown,
    /// A known token past its expiry.
    Expired,
}

/// HQ's admin tokens.
#[derive(Debug, Clone, Default)]
pub struct AdminTokens(Vec<AdminToken>);

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl AdminTokens {
    /// No token: the admin API refuses every call (commands that only open
    /// HQ's data folder need none).
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// One token named `name`, never expiring.
    pub fn single(name: &str, token: &str) -> Result<Self, TokenError> {
        Self::from_entries(vec![(name.to_owned(), token.to_owned(), None)])
    }

    fn from_entries(entries: Vec<(String, String, Option<Timestamp>)>) -> Result<Self, TokenError> {
        if entries.is_empty() {
            return Err(TokenError::Empty);
        }
        let mut tokens: Vec<AdminToken> = Vec::with_capacity(entries.len());
        for (name, value, expires_at) in entries {
            if value.len() < MIN_TOKEN_BYTES {
                return Err(TokenError::TooShort {
                    name,
                    bytes: value.len(),
                });
            }
            let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
            if tokens.iter().any(|t| t.name == name) {
                return Err(TokenError::DuplicateName(name));
            }
            if let Some(same) = tokens.iter().find(|t| t.digest == digest) {
                return Err(TokenError::DuplicateValue(same.name.clone(), name));
            }
            tokens.push(AdminToken {
                name,
                digest,
                expires_at,
            });
        }
        Ok(Self(tokens))
    }

    /// Reads a token file: `NAME TOKEN [EXPIRES]` per line (`#` comments and
    /// blank lines skipped; EXPIRES as `YYYY-MM-DDTHH:MM:SS`, UTC), or a
    /// single bare token (named `admin`).
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let lines: Vec<(usize, Vec<&str>)> = text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line.split_whitespace().collect::<Vec<_>>()))
            .filter(|(_, fields)| fields.first().is_some_and(|f| !f.starts_with('#')))
            .collect();
        if let [(_, fields)] = lines.as_slice()
            && fields.len() == 1
        {
            return Self::single("admin", fields[0]);
        }
        let mut entries = Vec::with_capacity(lines.len());
        for (line, fields) in lines {
            let bad = |reason: String| TokenError::Line { line, reason };
            let (name, value, expires) = match fields.as_slice() {
                [name, value] => (*name, *value, None),
                [name, value, expires] => (*name, *value, Some(*expires)),
                _ => return Err(bad("expected NAME TOKEN [EXPIRES]".into())),
            };
            if !valid_name(name) {
                return Err(bad(format!(
                    "token name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
                )));
            }
            let expires_at = expires
                .map(|text| {
                    Timestamp::parse(text).map_err(|_| {
                        bad(format!("expiry {text:?} is not YYYY-MM-DDTHH:MM:SS (UTC)"))
                    })
                })
                .transpose()?;
            entries.push((name.to_owned(), value.to_owned(), expires_at));
        }
        Self::from_entries(entries)
    }

    /// Reads a token file, refusing one that others than its owner may read
    /// (it holds secrets).
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        use std::os::unix::fs::PermissionsExt;
        let metadata =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{} is readable by others (mode {mode:o}): it holds admin tokens; chmod 600 it",
                path.display()
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("admin token file {}", path.display()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|t| t.name.as_str())
    }

    /// The name of the token `presented` is, if HQ knows it and it has not
    /// expired at `now`. Every token's digest is compared, in constant time.
    pub fn authenticate(&self, presented: &str, now: Timestamp) -> Result<&str, AdminRefusal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for token in &self.0 {
            let diff = token
                .digest
                .iter()
                .zip(digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(token);
            }
        }
        match found {
            None => Err(AdminRefusal::Unknown),
            Some(token) if token.expires_at.is_some_and(|at| now >= at) => {
                Err(AdminRefusal::Expired)
            }
            Some(token) => Ok(&token.name),
        }
    }
}

/// A new admin token: 32 random bytes, hex (64 characters).
pub fn new_token() -> Result<String, HqError> {
    random_hex::<32>()
}

fn random_hex<const N: usize>() -> Result<String, HqError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|_| HqError::Invalid("no randomness".into()))?;
    Ok(hex::encode(bytes))
}

/// An enrolment code as typed: 32 hex digits in groups of four.
fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The digest HQ keeps of an enrolment code (as typed: any case, dashes or not).
pub fn code_digest(code: &str) -> String {
    hex::encode(Sha256::digest(normalize_code(code).as_bytes()))
}

/// A new one-time enrolment code (128 bits, as 8 groups of four hex
/// digits) and the digest HQ keeps of it.
pub fn new_enrolment_code() -> Result<(String, String), HqError> {
    let raw = random_hex::<16>()?;
    let code = raw
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).to_uppercase())
        .collect::<Vec<_>>()
        .join("-");
    let digest = code_digest(&code);
    Ok((code, digest))
}

/// How long a code asked for `valid_secs` is good for: a minute to 30 days.
pub fn enrolment_expiry(now: Timestamp, valid_secs: i64) -> Timestamp {
    now.plus_secs(valid_secs.clamp(60, 30 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aisle_core::time::lit::ts;

    const LONG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_short_token_is_refused_with_its_name_and_length() {
        let err = AdminTokens::parse("ops short-token-of-18b\n").expect_err("refused");
        assert_eq!(
            err,
            TokenError::TooShort {
                name: "ops".into(),
                bytes: 18
            }
        );
        assert!(err.to_string().contains("at least 32"), "{err}");
        assert_eq!(
            AdminTokens::parse("admin-secret").expect_err("refused"),
            TokenError::TooShort {
                name: "admin".into(),
                bytes: 12
            }
        );
    }

    #[test]
    fn named_tokens_with_expiry_authenticate_by_name_until_they_expire() {
        let other = "fedcba9876543210fedcba9876543210";
        let text =
            format!("# HQ admin tokens\n\nalice {LONG}\nci-bot {other} 2027-01-01T00:00:00\n");
        let tokens = AdminTokens::parse(&text).expect("tokens");
        assert_eq!(tokens.names().collect::<Vec<_>>(), ["alice", "ci-bot"]);
        let before = ts("2026-12-31 23:59:59");
        let after = ts("2027-01-01 00:00:00");
        assert_eq!(tokens.authenticate(LONG, after), Ok("alice"));
        assert_eq!(tokens.authenticate(other, before), Ok("ci-bot"));
        assert_eq!(
            tokens.authenticate(other, after),
            Err(AdminRefusal::Expired)
        );
        assert_eq!(
            tokens.authenticate(&LONG[1..], before),
            Err(AdminRefusal::Unknown)
        );
        assert_eq!(tokens.authenticate("", before), Err(AdminRefusal::Unknown));
        assert_eq!(
            AdminTokens::none().authenticate("", before),
            Err(AdminRefusal::Unknown)
        );
    }

    #[test]
    fn malformed_token_files_say_which_line() {
        for (text, needle) in [
            ("", "no admin token"),
            (&format!("a {LONG}\na {LONG}x\n") as &str, "appears twice"),
            (&format!("a {LONG}\nb {LONG}\n"), "same value"),
            (&format!("a {LONG} tomorrow\n"), "line 1: expiry"),
            (&format!("a b c d\nx {LONG}"), "line 1: expected"),
            (&format!("a/b {LONG}\n"), "token name"),
        ] {
            let err = AdminTokens::parse(text).expect_err("refused").to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_token_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, format!("ops {LONG}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = AdminTokens::load(&path).expect_err("refused").to_string();
        assert!(err.contains("readable by others"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let tokens = AdminTokens::load(&path).expect("0600 file");
        assert_eq!(tokens.names().collect::<Vec<_>>(), ["ops"]);
    }

    #[test]
    fn the_debug_form_shows_no_digest() {
        let tokens = AdminTokens::single("ops", LONG).expect("token");
        let text = format!("{tokens:?}");
        let digest = hex::encode(Sha256::digest(LONG.as_bytes()));
        assert!(
            text.contains("ops") && !text.contains(&digest[..16]),
            "{text}"
        );
    }

    #[test]
    fn enrolment_codes_are_typed_in_any_case_with_or_without_dashes() {
        assert_eq!(
            code_digest("ABCD-0123-ef45-6789-ABCD-0123-EF45-6789"),
            code_digest("abcd0123ef456789abcd0123ef456789")
        );
        assert_ne!(
            code_digest("abcd0123ef456789abcd0123ef456789"),
            code_digest("abcd0123ef456789abcd0123ef456788")
        );
    }
}
