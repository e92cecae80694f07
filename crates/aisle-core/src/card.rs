//! Loyalty card numbers: EAN-13 barcodes in the GS1 "restricted circulation"
//! range (prefix 2x), so they never collide with a product's GTIN.
//!
//! A card number is validated (13 digits, correct check digit) before any
//! look-up: a misread or mistyped card is refused as such, never matched to a
//! different member.

/// Why a string is not a card number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("a card number has 13 digits, this has {0}")]
    Length(usize),
    #[error("a card number has only digits; found {0:?}")]
    NotDigit(char),
    #[error("check digit is {found}, expected {expected}: misread or mistyped card")]
    CheckDigit { found: u8, expected: u8 },
}

/// GS1 check digit of the first 12 digits (weights 1, 3, 1, 3, ... from the left).
pub fn ean13_check_digit(first12: &[u8; 12]) -> u8 {
    let sum: u32 = first12
        .iter()
        .enumerate()
        .map(|(idx, d)| u32::from(*d) * if idx % 2 == 0 { 1 } else { 3 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Checks a 13-digit card number, ignoring spaces and dashes people type.
/// Returns the normalised digits.
pub fn validate(input: &str) -> Result<String, CardError> {
    let digits: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_digit()) {
        return Err(CardError::NotDigit(bad));
    }
    if digits.len() != 13 {
        return Err(CardError::Length(digits.len()));
    }
    let values: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    let mut first12 = [0u8; 12];
    first12.copy_from_slice(&values[..12]);
    let expected = ean13_check_digit(&first12);
    if values[12] != expected {
        return Err(CardError::CheckDigit {
            found: values[12],
            expected,
        });
    }
    Ok(digits)
}

/// Builds a card number from a 2-digit prefix (20..=29) and a 10-digit body.
pub fn card_number(prefix: u8, body: u64) -> String {
    debug_assert!((20..=29).contains(&prefix));
    debug_assert!(body < 10_000_000_000);
    let text = format!("{prefix:02}{body:010}");
    let mut first12 = [0u8; 12];
    for (slot, byte) in first12.iter_mut().zip(text.bytes()) {
        *slot = byte - b'0';
    }
    format!("{text}{}", ean13_check_digit(&first12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_gtins_validate() {
        // Real EAN-13s printed on products.
        for gtin in ["4006381333931", "5901234123457", "9780201379624"] {
            assert_eq!(validate(gtin).as_deref(), Ok(gtin));
        }
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(validate("400638133393"), Err(CardError::Length(12)));
        assert_eq!(validate("40063813339x1"), Err(CardError::NotDigit('x')));
        assert_eq!(
            validate("4006381333932"),
            Err(CardError::CheckDigit {
                found: 2,
                expected: 1
            })
        );
        assert_eq!(validate("4006 3813-33931").as_deref(), Ok("4006381333931"));
    }

    #[test]
    fn every_single_digit_error_is_caught() {
        let card = card_number(29, 1_234_567_890);
        assert!(validate(&card).is_ok());
        for pos in 0..13 {
            for replacement in b'0'..=b'9' {
                let mut bytes = card.clone().into_bytes();
                if bytes[pos] == replacement {
                    continue;
                }
                bytes[pos] = replacement;
                let typo = String::from_utf8(bytes).expect("ascii");
                assert!(validate(&typo).is_err(), "{typo} passed");
            }
        }
    }
}

/// How a card number is kept on a device that must find a scanned card
/// but never hold the number (a kiosk, a till: docs/PROTOCOL.md, "Least
/// data per device kind"): `k1:` and HMAC-SHA256 of the number under the
/// store's card key, hex. The same number under the same key is the same
/// text, so a scanned card is found offline; the number cannot be read back.
pub fn keyed(key: &[u8; 32], number: &str) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(number.as_bytes());
    format!("{KEYED_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// The prefix of a keyed card number ([`keyed`]).
pub const KEYED_PREFIX: &str = "k1:";

/// The vault's name for the store's card key on a device that holds card
/// numbers keyed ([`keyed`]).
pub const CARD_KEY: &str = crate::vault::CARD_KEY;

/// The form a scanned card number is stored in on this replica: keyed when
/// the replica holds a card key, as scanned otherwise.
pub fn stored_form(conn: &rusqlite::Connection, number: &str) -> rusqlite::Result<String> {
    Ok(
        match crate::replica::secret(conn, CARD_KEY)?
            .and_then(|hex_key| crate::keys::decode_hex32(hex_key.expose()).ok())
        {
            Some(key) => keyed(&key, number),
            None => number.to_owned(),
        },
    )
}

#[cfg(test)]
mod keyed_tests {
    use super::*;

    #[test]
    fn a_keyed_card_is_stable_per_key_and_hides_the_number() {
        let key = [7u8; 32];
        let card = card_number(29, 1_234_567_890);
        let once = keyed(&key, &card);
        assert_eq!(once, keyed(&key, &card));
        assert!(once.starts_with(KEYED_PREFIX) && once.len() == 3 + 64);
        assert!(!once.contains(&card[2..12]));
        assert_ne!(
            once,
            keyed(&[8u8; 32], &card),
            "another store's key, another text"
        );
        assert_ne!(once, keyed(&key, &card_number(29, 1_234_567_891)));
    }
}
