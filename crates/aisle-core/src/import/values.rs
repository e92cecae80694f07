//! Parsing of CSV field values: ids, money, dates, flags. Pure functions that
//! say precisely what is wrong with a value.

/// A positive integer id.
pub fn parse_id(text: &str) -> Result<i64, String> {
    let value: i64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    if value <= 0 {
        return Err(format!("{value} is not a positive id"));
    }
    Ok(value)
}

/// A whole number, possibly negative; "3.0" is accepted as 3 (some exports write integers as floats).
pub fn parse_int(text: &str) -> Result<i64, String> {
    if let Ok(value) = text.parse::<i64>() {
        return Ok(value);
    }
    match text.strip_suffix(".0").map(str::parse::<i64>) {
        Some(Ok(value)) => Ok(value),
        _ => Err(format!("{text:?} is not a whole number")),
    }
}

/// A decimal amount of money to integer cents, exactly, rounding half away from
/// zero beyond two decimals. "1.43" -> 143, "-0.5" -> -50, "12" -> 1200.
/// Exports written from floating point ("4.4408900000000007e-16", as in the
/// Complete Journey data) are rounded to the nearest cent.
pub fn parse_cents(text: &str) -> Result<i64, String> {
    parse_decimal_cents(text).or_else(|error| match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value.abs() < 1e13 && text.contains(['e', 'E']) => {
            Ok((value * 100.0).round() as i64)
        }
        _ => Err(error),
    })
}

fn parse_decimal_cents(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not an amount of money");
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad());
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole_value: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut digits = fraction.bytes().map(|b| i64::from(b - b'0'));
    let tenths = digits.next().unwrap_or(0);
    let hundredths = digits.next().unwrap_or(0);
    let round_up = digits.next().is_some_and(|d| d >= 5);
    let cents = whole_value
        .checked_mul(100)
        .and_then(|c| c.checked_add(tenths * 10 + hundredths + i64::from(round_up)))
        .ok_or_else(bad)?;
    Ok(if negative { -cents } else { cents })
}

/// A calendar date, `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<String, String> {
    crate::time::Day::parse(text)
        .map(|_| text.to_owned())
        .map_err(|err| err.to_string())
}

/// A validated local timestamp, `YYYY-MM-DD HH:MM:SS`, held inline (no
/// allocation: the importers keep one per basket and per shelf price).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp([u8; 19]);

impl Stamp {
    /// What a US Eastern wall clock read at this stamp taken as UTC
    /// ([`crate::time::Zone::UsEastern`]).
    pub fn utc_to_new_york(self) -> Self {
        let Ok(at) = crate::time::Timestamp::parse(self.as_str()) else {
            return self;
        };
        let text = crate::time::Zone::UsEastern.wall_clock(at).to_string();
        let mut bytes = [0u8; 19];
        bytes.copy_from_slice(&text.as_bytes()[..19]);
        Self(bytes)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, '-', ' ' and ':' are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// A local timestamp, `YYYY-MM-DD HH:MM:SS` (a `T` separator is accepted), normalised with a space.
pub fn parse_stamp(text: &str) -> Result<Stamp, String> {
    let bad = || format!("{text:?} is not a timestamp (YYYY-MM-DD HH:MM:SS)");
    if text.len() != 19 || !text.is_ascii() {
        return Err(bad());
    }
    let (date, time) = (&text[..10], &text[11..]);
    let separator = text.as_bytes()[10];
    if separator != b' ' && separator != b'T' {
        return Err(bad());
    }
    parse_date(date).map_err(|_| bad())?;
    let t = time.as_bytes();
    if t[2] != b':' || t[5] != b':' {
        return Err(bad());
    }
    let hour = digits(&t[0..2]).ok_or_else(bad)?;
    let minute = digits(&t[3..5]).ok_or_else(bad)?;
    let second = digits(&t[6..8]).ok_or_else(bad)?;
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let mut bytes = [0u8; 19];
    bytes.copy_from_slice(text.as_bytes());
    bytes[10] = b' ';
    Ok(Stamp(bytes))
}

/// [`parse_stamp`] as an owned string.
pub fn parse_timestamp(text: &str) -> Result<String, String> {
    parse_stamp(text).map(|stamp| stamp.as_str().to_owned())
}

/// A yes/no flag: 1/0, true/false, yes/no, y/n.
pub fn parse_flag(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" => Ok(true),
        "0" | "false" | "no" | "n" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a yes/no flag (1/0, true/false, yes/no)"
        )),
    }
}

fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents() {
        let cases = [
            ("1.43", Ok(143)),
            ("0.5", Ok(50)),
            ("-0.5", Ok(-50)),
            ("12", Ok(1200)),
            ("0.0", Ok(0)),
            (".99", Ok(99)),
            ("2.345", Ok(235)),
            ("2.344", Ok(234)),
            ("4.4408900000000007e-16", Ok(0)),
            ("-1.5E1", Ok(-1500)),
        ];
        for (text, expect) in cases {
            assert_eq!(parse_cents(text), expect, "{text}");
        }
        for bad in ["", "-", "1,5", "abc", "1.2.3", ".", "NaN", "inf", "1e30"] {
            assert!(parse_cents(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_and_ints() {
        assert_eq!(parse_id("42"), Ok(42));
        assert!(parse_id("0").is_err());
        assert!(parse_id("-3").is_err());
        assert!(
            parse_id("12x")
                .expect_err("not a number")
                .contains("not a whole number")
        );
        assert_eq!(parse_int("3.0"), Ok(3));
        assert_eq!(parse_int("-2"), Ok(-2));
        assert!(parse_int("3.5").is_err());
    }

    #[test]
    fn dates_and_times() {
        assert!(parse_date("2017-02-29").is_err());
        assert!(parse_date("2016-02-29").is_ok());
        assert!(parse_date("2017-13-01").is_err());
        assert!(parse_date("17-01-01").is_err());
        assert_eq!(
            parse_timestamp("2017-01-01T11:53:26").as_deref(),
            Ok("2017-01-01 11:53:26")
        );
        assert!(parse_timestamp("2017-01-01 24:00:00").is_err());
        assert!(parse_timestamp("2017-01-01 1:00:00").is_err());
    }

    #[test]
    fn flags() {
        assert_eq!(parse_flag("Yes"), Ok(true));
        assert_eq!(parse_flag("0"), Ok(false));
        assert!(parse_flag("maybe").is_err());
    }
}
