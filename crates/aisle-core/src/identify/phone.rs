//! Phone numbers as associates type them, read as E.164 (`+` then at most 15
//! digits) for an exact look-up.
//!
//! The rules, applied the same way to what is typed and to what is stored
//! (phones are kept as the source wrote them, for display and search; the
//! replica's `members.phone_key` column holds the country-independent first
//! half of the rules so a look-up is one index probe):
//!
//! 1. spaces, dashes, parentheses and dots are dropped; a leading `00` is the
//!    international prefix and becomes `+`;
//! 2. a number starting with `+` is international: its digits are the country
//!    calling code and the national number;
//! 3. any other number is national, in the store's country: its default
//!    calling code ([`CallingCode`], a store setting, `+1` unless set) is put
//!    in front, after dropping the trunk prefix (`1` in the North American
//!    plan, where a national number has exactly 10 digits and starts with
//!    2-9; one leading `0` elsewhere);
//! 4. obviously wrong lengths are refused: E.164 allows 7 to 15 digits, and
//!    numbers under `+1` have exactly 11.
//!
//! Countries whose national numbers keep their leading 0 after the country
//! code (Italy's fixed lines) should be stored in international form.

use rusqlite::Connection;

/// `replica_meta` key of the store's default calling code.
pub const CALLING_CODE_SETTING: &str = "store.calling_code";

/// A country calling code: 1 to 3 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingCode(String);

impl Default for CallingCode {
    /// `+1`, the North American numbering plan.
    fn default() -> Self {
        Self("1".to_owned())
    }
}

impl CallingCode {
    /// Reads `+44`, `44` or `0044`.
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        let text = text.trim();
        let digits = text
            .strip_prefix('+')
            .or_else(|| text.strip_prefix("00"))
            .unwrap_or(text);
        if digits.is_empty()
            || digits.len() > 3
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(PhoneError::CallingCode(text.to_owned()));
        }
        Ok(Self(digits.to_owned()))
    }

    /// The store's setting in the replica, else `+1`.
    pub fn of_store(conn: &Connection) -> Result<Self, PhoneError> {
        match crate::replica::meta(conn, CALLING_CODE_SETTING).map_err(PhoneError::Db)? {
            Some(text) => Self::parse(&text),
            None => Ok(Self::default()),
        }
    }

    /// The digits, without `+`.
    pub fn digits(&self) -> &str {
        &self.0
    }

    fn is_nanp(&self) -> bool {
        self.0 == "1"
    }

    /// The national trunk prefix dropped from national numbers.
    fn trunk(&self) -> &'static str {
        if self.is_nanp() { "1" } else { "0" }
    }
}

impl std::fmt::Display for CallingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "+{}", self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("no phone number given")]
    Empty,
    #[error(
        "{found:?} is not allowed in a phone number (digits, a leading +, spaces, dashes, dots and parentheses)"
    )]
    NotAPhone { found: char },
    #[error("{digits} digits is too short for a phone number (at least 7 with the country code)")]
    TooShort { digits: usize },
    #[error("{digits} digits is too long for a phone number (at most 15 with the country code)")]
    TooLong { digits: usize },
    #[error(
        "a North American (+1) number has 10 digits after the 1, the first 2-9; this has {national:?}"
    )]
    NorthAmerican { national: String },
    #[error("{0:?} is not a country calling code (1 to 3 digits, e.g. +1, +44)")]
    CallingCode(String),
    #[error(transparent)]
    Db(rusqlite::Error),
}

/// Rule 1: the phone less spaces, dashes, parentheses and dots, `00` read as
/// `+`. The same as the SQL of `members.phone_key` (migration 0004).
pub fn phone_key(text: &str) -> String {
    let stripped: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    match stripped.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => stripped,
    }
}

/// The E.164 form of a typed or stored phone number (rules 1 to 4).
pub fn normalize(text: &str, calling_code: &CallingCode) -> Result<String, PhoneError> {
    let key = phone_key(text);
    if key.is_empty() {
        return Err(PhoneError::Empty);
    }
    let (international, digits) = match key.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, key.as_str()),
    };
    if let Some(found) = digits.chars().find(|c| !c.is_ascii_digit()) {
        return Err(PhoneError::NotAPhone { found });
    }
    let full = if international {
        digits.to_owned()
    } else {
        let national = if calling_code.is_nanp() {
            match digits.strip_prefix('1') {
                Some(rest) if digits.len() == 11 => rest,
                _ => digits,
            }
        } else {
            digits.strip_prefix('0').unwrap_or(digits)
        };
        format!("{}{national}", calling_code.digits())
    };
    if full.len() < 7 {
        return Err(PhoneError::TooShort { digits: full.len() });
    }
    if full.len() > 15 {
        return Err(PhoneError::TooLong { digits: full.len() });
    }
    if full.starts_with('0') {
        return Err(PhoneError::NotAPhone { found: '0' });
    }
    if let Some(national) = full.strip_prefix('1')
        && (national.len() != 10 || matches!(national.as_bytes()[0], b'0' | b'1'))
    {
        return Err(PhoneError::NorthAmerican {
            national: national.to_owned(),
        });
    }
    Ok(format!("+{full}"))
}

/// The stored [`phone_key`]s that [`normalize`] reads as `e164` under
/// `calling_code`: the international form and, for a number of the store's
/// country, its national forms with and without the trunk prefix. (A stored
/// phone is a match when it is one of these *and* normalizes to `e164`;
/// the caller checks both.)
pub fn stored_keys(e164: &str, calling_code: &CallingCode) -> Vec<String> {
    let mut keys = vec![e164.to_owned()];
    if let Some(national) = e164
        .strip_prefix('+')
        .and_then(|digits| digits.strip_prefix(calling_code.digits()))
        .filter(|national| !national.is_empty())
    {
        keys.push(national.to_owned());
        keys.push(format!("{}{national}", calling_code.trunk()));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, calling_code: &str, expect: Result<&str, &str>) {
        let code = CallingCode::parse(calling_code).expect("calling code");
        let got = normalize(text, &code);
        match (expect, &got) {
            (Ok(e164), Ok(found)) => assert_eq!(found, e164, "{text:?}"),
            (Err(fragment), Err(err)) => {
                assert!(err.to_string().contains(fragment), "{text:?}: {err}");
            }
            _ => panic!("{text:?} under {calling_code}: expected {expect:?}, got {got:?}"),
        }
    }

    #[test]
    fn typed_numbers_become_e164() {
        check("+1 614-555-0142", "+1", Ok("+16145550142"));
        check("(614) 555-0142", "+1", Ok("+16145550142"));
        check("614.555.0142", "+1", Ok("+16145550142"));
        check("1-614-555-0142", "+1", Ok("+16145550142"));
        check("001 614 555 0142", "+44", Ok("+16145550142"));
        check(" +44 20 7946 0018 ", "+1", Ok("+442079460018"));
        check("020 7946 0018", "+44", Ok("+442079460018"));
        check("20 7946 0018", "+44", Ok("+442079460018"));
        check("0044 (0)20", "+1", Err("too short"));
        check("555-0142", "+1", Err("North American"));
        check("614-555-014", "+1", Err("North American"));
        check("+1 614 555 01422", "+1", Err("North American"));
        check("+1 114 555 0142", "+1", Err("North American"));
        check("1234", "+44", Err("too short"));
        check("12345", "+44", Ok("+4412345"));
        check("+1234567890123456", "+44", Err("too long"));
        check("614-555-0142 ext 3", "+1", Err("not allowed"));
        check("+0 123 456 789", "+44", Err("not allowed"));
        check("  ", "+1", Err("no phone"));
        check("++44 20 7946 0018", "+1", Err("not allowed"));
    }

    #[test]
    fn calling_codes() {
        for (text, digits) in [("+1", "1"), ("44", "44"), ("0033", "33"), (" +353 ", "353")] {
            assert_eq!(CallingCode::parse(text).expect(text).digits(), digits);
        }
        for bad in ["", "+", "+0", "+1234", "uk", "+4a"] {
            assert!(CallingCode::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(CallingCode::default().to_string(), "+1");
    }

    /// Every stored form a number can take normalizes to the same E.164, and
    /// its key is among `stored_keys` of that E.164: the index probe finds it.
    #[test]
    fn stored_forms_are_found_by_their_keys() {
        for (code, forms) in [
            (
                "+1",
                &[
                    "+1 614-555-0142",
                    "(614) 555-0142",
                    "614.555.0142",
                    "1 614 555 0142",
                    "001-614-555-0142",
                ][..],
            ),
            (
                "+44",
                &[
                    "+44 20 7946 0018",
                    "020 7946 0018",
                    "20-7946-0018",
                    "0044 20 7946 0018",
                ][..],
            ),
        ] {
            let code = CallingCode::parse(code).expect("code");
            let e164 = normalize(forms[0], &code).expect("first");
            let keys = stored_keys(&e164, &code);
            for form in forms {
                assert_eq!(normalize(form, &code).expect(form), e164, "{form}");
                assert!(keys.contains(&phone_key(form)), "{form}: {keys:?}");
            }
        }
    }
}
