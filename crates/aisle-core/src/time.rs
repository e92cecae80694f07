//! Time as types: a [`Timestamp`] is an instant (UTC, whole seconds), a
//! [`Day`] a calendar date, a [`Zone`] how an instant reads on a store's
//! wall. Text is parsed at the edges (CLI flags, environment, files, HQ's
//! answers) and written back only where it leaves: the replica and the wire
//! keep today's `YYYY-MM-DD HH:MM:SS` and `YYYY-MM-DD`, so stored text
//! compares in SQL as the instants and days do.
//!
//! Both types are `Copy`, ordered, and convert to and from SQLite text
//! (`ToSql` / `FromSql`): a value read back that is not well formed is a
//! conversion error naming the text, never a silent default.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::dates;

/// The first and last instants a [`Timestamp`] can hold (years 0000-9999,
/// what four digits can write).
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{0:?} is not a time (YYYY-MM-DD HH:MM:SS)")]
    BadTimestamp(String),
    #[error("{0:?} is not a date (YYYY-MM-DD)")]
    BadDay(String),
    #[error("{0:?} is not a time zone Aisle knows (UTC, America/New_York)")]
    BadZone(String),
}

/// An instant, UTC, to the second.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `secs` after 1970-01-01 00:00:00 UTC, held within years
    /// 0000-9999.
    pub fn from_unix(secs: i64) -> Self {
        Timestamp(secs.clamp(MIN_SECS, MAX_SECS))
    }

    /// The instant of a clock reading in unsigned seconds (coupon tokens,
    /// app codes), held in range.
    pub fn from_unix_u64(secs: u64) -> Self {
        Self::from_unix(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// Seconds since 1970-01-01 00:00:00 UTC.
    pub fn unix(self) -> i64 {
        self.0
    }

    /// `YYYY-MM-DD HH:MM:SS` (a `T` between date and time is accepted), every
    /// field in its range.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let bad = || TimeError::BadTimestamp(text.to_owned());
        let b = text.as_bytes();
        if b.len() != 19 || !(b[10] == b' ' || b[10] == b'T') || b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let day = Day::parse(&text[..10]).map_err(|_| bad())?;
        let field = |range: std::ops::Range<usize>, max: i64| {
            number(&b[range])
                .filter(|value| *value <= max)
                .ok_or_else(bad)
        };
        let (hour, minute, second) = (field(11..13, 23)?, field(14..16, 59)?, field(17..19, 59)?);
        Ok(Timestamp(
            day.0 * 86_400 + hour * 3600 + minute * 60 + second,
        ))
    }

    /// The calendar day of this instant in UTC (a store's own day is
    /// [`Zone::day_of`]).
    pub fn day(self) -> Day {
        Day(self.0.div_euclid(86_400))
    }

    /// This instant moved by `secs` (negative: earlier), held in range.
    pub fn plus_secs(self, secs: i64) -> Self {
        Self::from_unix(self.0.saturating_add(secs))
    }

    /// Seconds from `earlier` to this instant.
    pub fn secs_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&dates::timestamp_string(self.0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;
    fn from_str(text: &str) -> Result<Self, TimeError> {
        Self::parse(text)
    }
}

/// A calendar date (proleptic Gregorian), years 0000-9999; the default is
/// 1970-01-01.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Day(i64);

impl Day {
    /// `YYYY-MM-DD`, a date that exists.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let bad = || TimeError::BadDay(text.to_owned());
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let year = number(&b[0..4]).ok_or_else(bad)?;
        let month = number(&b[5..7]).ok_or_else(bad)?;
        let day = number(&b[8..10]).ok_or_else(bad)?;
        let (month, day) = (u32::try_from(month).ok(), u32::try_from(day).ok());
        let (Some(month @ 1..=12), Some(day @ 1..=31)) = (month, day) else {
            return Err(bad());
        };
        let days = dates::days_from_civil(year, month, day);
        // 31 April and 29 February of a common year roll over: refused.
        if dates::civil_from_days(days) != (year, month, day) {
            return Err(bad());
        }
        Ok(Day(days))
    }

    /// The date of `year`-`month`-`day`; `None` when it does not exist.
    pub fn from_ymd(year: i64, month: u32, day: u32) -> Option<Self> {
        let days = dates::days_from_civil(year, month, day);
        (dates::civil_from_days(days) == (year, month, day) && (0..=9999).contains(&year))
            .then_some(Day(days))
    }

    /// The day `days` after 1970-01-01.
    pub fn from_days(days: i64) -> Self {
        Day(days.clamp(MIN_SECS / 86_400, MAX_SECS / 86_400))
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        self.0
    }

    /// The day `n` days later (negative: earlier).
    pub fn plus_days(self, n: i64) -> Self {
        Self::from_days(self.0.saturating_add(n))
    }

    /// 00:00:00 UTC of this day.
    pub fn start(self) -> Timestamp {
        Timestamp::from_unix(self.0 * 86_400)
    }

    /// 23:59:59 UTC of this day: the last instant a date-bounded offer is valid.
    pub fn end(self) -> Timestamp {
        Timestamp::from_unix(self.0 * 86_400 + 86_399)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&dates::date_string(self.0))
    }
}

impl fmt::Debug for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Day({self})")
    }
}

impl FromStr for Day {
    type Err = TimeError;
    fn from_str(text: &str) -> Result<Self, TimeError> {
        Self::parse(text)
    }
}

/// How an instant reads on a store's wall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// Coordinated Universal Time: what a store without a zone uses.
    #[default]
    Utc,
    /// US Eastern (America/New_York), with the US daylight-saving rules in
    /// force since 2007: Complete Journey's stores.
    UsEastern,
}

impl Zone {
    /// `UTC` or `America/New_York`.
    pub fn parse(name: &str) -> Result<Self, TimeError> {
        match name {
            "UTC" | "Etc/UTC" => Ok(Zone::Utc),
            "America/New_York" | "US/Eastern" => Ok(Zone::UsEastern),
            _ => Err(TimeError::BadZone(name.to_owned())),
        }
    }

    /// Seconds the wall is ahead of UTC at `at` (negative: behind).
    pub fn offset_secs(self, at: Timestamp) -> i64 {
        match self {
            Zone::Utc => 0,
            Zone::UsEastern => dates::new_york_from_utc(at.0) - at.0,
        }
    }

    /// What the store's wall clock reads at `at`, written as instants are.
    pub fn wall_clock(self, at: Timestamp) -> Timestamp {
        at.plus_secs(self.offset_secs(at))
    }

    /// The store's calendar day at `at`: the day date-bounded offers and
    /// "today's" rules are judged by.
    pub fn day_of(self, at: Timestamp) -> Day {
        self.wall_clock(at).day()
    }
}

/// Times written in code: tests, fixtures, documentation. Each panics on a
/// malformed literal, so never hand them text from outside.
pub mod lit {
    use super::{Day, Timestamp};

    /// The instant a `YYYY-MM-DD HH:MM:SS` literal names.
    #[track_caller]
    pub fn ts(text: &str) -> Timestamp {
        match Timestamp::parse(text) {
            Ok(at) => at,
            Err(e) => panic!("{e}"),
        }
    }

    /// The day a `YYYY-MM-DD` literal names.
    #[track_caller]
    pub fn day(text: &str) -> Day {
        match Day::parse(text) {
            Ok(day) => day,
            Err(e) => panic!("{e}"),
        }
    }
}

fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |value, &d| {
        d.is_ascii_digit().then(|| value * 10 + i64::from(d - b'0'))
    })
}

/// SQLite text and serde strings for a type with `Display` and `parse`:
/// written as displayed, read back through `parse` (a malformed text is an
/// error naming it).
macro_rules! as_text {
    ($type:ty) => {
        impl ToSql for $type {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.to_string()))
            }
        }

        impl FromSql for $type {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                <$type>::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }

        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$type>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

as_text!(Timestamp);
as_text!(Day);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).expect("time")
    }

    #[test]
    fn text_round_trips_and_orders_as_the_instants_do() {
        for secs in (-100_000_000_000i64..200_000_000_000).step_by(7_777_777_777) {
            let t = Timestamp::from_unix(secs);
            assert_eq!(at(&t.to_string()), t);
        }
        let (a, b) = (at("2017-10-20 09:59:59"), at("2017-10-20 10:00:00"));
        assert!(a < b && a.to_string() < b.to_string());
        assert_eq!(b.secs_since(a), 1);
        assert_eq!(at("2017-10-20T10:00:00"), b);
        assert_eq!(b.day().to_string(), "2017-10-20");
        assert_eq!(
            Day::parse("2017-10-20").expect("day").end(),
            at("2017-10-20 23:59:59")
        );
        assert_eq!(
            Timestamp::from_unix(i64::MAX).to_string(),
            "9999-12-31 23:59:59"
        );
    }

    #[test]
    fn malformed_text_is_refused_with_the_text() {
        for bad in [
            "",
            "2017-10-20",
            "2017-10-20 24:00:00",
            "2017-10-20 10:60:00",
            "2017-02-29 10:00:00",
            "2017-13-01 10:00:00",
            "2017-10-20 10:00:0x",
            "2017/10/20 10:00:00",
            "+017-10-20 10:00:00",
        ] {
            let err = Timestamp::parse(bad).expect_err(bad);
            assert_eq!(err, TimeError::BadTimestamp(bad.to_owned()));
        }
        for bad in ["2017-04-31", "2017-00-10", "17-10-20", "2017-10-2x"] {
            assert_eq!(Day::parse(bad), Err(TimeError::BadDay(bad.to_owned())));
        }
        assert!(Day::parse("2016-02-29").is_ok());
        assert_eq!(Day::from_ymd(2017, 2, 29), None);
    }

    #[test]
    fn a_stores_day_follows_its_zone_and_daylight_saving() {
        let eastern = Zone::parse("America/New_York").expect("zone");
        // 03:30 UTC on 21 October (EDT, UTC-4) is still 20 October in New York.
        let late = at("2017-10-21 03:30:00");
        assert_eq!(Zone::Utc.day_of(late).to_string(), "2017-10-21");
        assert_eq!(eastern.day_of(late).to_string(), "2017-10-20");
        assert_eq!(eastern.wall_clock(late), at("2017-10-20 23:30:00"));
        // In January (EST, UTC-5).
        assert_eq!(
            eastern.wall_clock(at("2017-01-10 12:00:00")),
            at("2017-01-10 07:00:00")
        );
        // Daylight saving begins 12 March 2017 at 07:00 UTC.
        assert_eq!(eastern.offset_secs(at("2017-03-12 06:59:59")), -5 * 3600);
        assert_eq!(eastern.offset_secs(at("2017-03-12 07:00:00")), -4 * 3600);
        assert!(Zone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn sqlite_stores_the_text_and_refuses_bad_text_on_read() {
        let conn = rusqlite::Connection::open_in_memory().expect("db");
        let t = at("2017-10-20 10:00:00");
        let text: String = conn
            .query_row("SELECT ?1", [t], |r| r.get(0))
            .expect("text");
        assert_eq!(text, "2017-10-20 10:00:00");
        let back: Timestamp = conn
            .query_row("SELECT ?1", [&text], |r| r.get(0))
            .expect("back");
        assert_eq!(back, t);
        let err = conn
            .query_row("SELECT 'yesterday'", [], |r| r.get::<_, Timestamp>(0))
            .expect_err("bad text");
        assert!(err.to_string().contains("yesterday"), "{err}");
        let day: Day = conn
            .query_row("SELECT '2017-10-20'", [], |r| r.get(0))
            .expect("day");
        assert_eq!(day, t.day());
    }

    #[test]
    fn serde_writes_the_same_text() {
        let t = at("2017-10-20 10:00:00");
        assert_eq!(
            serde_json::to_string(&t).expect("json"),
            "\"2017-10-20 10:00:00\""
        );
        let back: Timestamp = serde_json::from_str("\"2017-10-20 10:00:00\"").expect("back");
        assert_eq!(back, t);
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
    }
}
