//! Associates signing in on the store's tablets, decided here (the tablet
//! only asks and shows).
//!
//! - HQ hashes each associate's PIN with Argon2id ([`hash_pin`]); stores
//!   receive the PHC string with the associate's record and verify offline.
//! - Wrong PINs count per staff number, in the replica (`sign_in_failures`),
//!   so restarting the app lifts nothing. Every `max_failures` wrong PINs
//!   lock the number for `lockout_secs`, doubled at each further lockout (at
//!   most a day); a correct PIN or a manager clears the count. The decision
//!   is the pure [`judge`]; a locked number's PIN is not even checked.
//! - Unknown, inactive and other stores' staff numbers are refused exactly
//!   like a wrong PIN (same answer, same counting, an Argon2 verification of
//!   the same cost), so the tablet does not tell which staff numbers exist;
//!   the audit row records the real reason.
//! - Every attempt is audited (`audit_log`: `sign_in`, `sign_in_refused`,
//!   `sign_in_locked`, `sign_in_unlocked`).
//! - A signed-in [`Session`] locks itself after `idle_lock_secs` without use.

use crate::time::Timestamp;
use std::sync::LazyLock;

use aisle_proto::Role;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::json;

use crate::audit::{self, AuditEntry};
use crate::dates;

/// PINs are this many digits.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 4..=8;

/// Lockout and idle rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Wrong PINs in a row before a lockout.
    pub max_failures: u32,
    /// The first lockout; each further one is twice as long, at most a day.
    pub lockout_secs: i64,
    /// A session locks after this long without use.
    pub idle_lock_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_failures: 5,
            lockout_secs: 15 * 60,
            idle_lock_secs: 120,
        }
    }
}

/// A signed-in associate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Associate {
    pub staff_id: i64,
    pub store_id: i64,
    pub display_name: String,
    pub role: Role,
}

impl Associate {
    /// How audits and events name them.
    pub fn actor(&self) -> String {
        format!("staff:{}", self.staff_id)
    }

    /// Refuses unless they are a manager.
    pub fn require_manager(&self) -> Result<(), StaffError> {
        match self.role {
            Role::Manager => Ok(()),
            Role::Associate => Err(StaffError::Forbidden),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("a PIN is {} to {} digits", PIN_DIGITS.start(), PIN_DIGITS.end())]
    BadPin,
    #[error("wrong staff number or PIN")]
    WrongPin {
        /// Wrong PINs left before the number is locked.
        remaining: u32,
    },
    #[error("too many wrong PINs: locked until {until}")]
    Locked { until: String },
    #[error("only a manager can do this")]
    Forbidden,
    #[error("{0:?} is not a time YYYY-MM-DD HH:MM:SS")]
    BadTime(String),
    #[error("hashing a PIN failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

impl StaffError {
    /// A stable code for the tablet.
    pub fn code(&self) -> &'static str {
        match self {
            StaffError::BadPin => "bad_pin",
            StaffError::WrongPin { .. } => "wrong_pin",
            StaffError::Locked { .. } => "locked",
            StaffError::Forbidden => "forbidden",
            StaffError::BadTime(_) => "bad_request",
            StaffError::Hash(_) | StaffError::Db(_) => "internal",
        }
    }
}

fn check_format(pin: &str) -> Result<(), StaffError> {
    if PIN_DIGITS.contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(StaffError::BadPin)
    }
}

fn hasher() -> Argon2<'static> {
    // OWASP's minimum for Argon2id: 19 MiB, two passes, one lane.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// The PHC string HQ stores and sends for `pin` (a fresh random salt).
pub fn hash_pin(pin: &str) -> Result<String, StaffError> {
    check_format(pin)?;
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| StaffError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| StaffError::Hash(e.to_string()))?;
    hasher()
        .hash_password(pin.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StaffError::Hash(e.to_string()))
}

/// Verified against when the staff number cannot sign in, so that a refusal
/// costs the same time whatever its reason.
static DECOY: LazyLock<Option<String>> = LazyLock::new(|| hash_pin("00000000").ok());

fn verify(pin: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| hasher().verify_password(pin.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// A staff number's wrong PINs so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    pub count: u32,
    /// Seconds since the epoch (store-local clock).
    pub locked_until: Option<i64>,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Signed in; the count is cleared.
    Granted,
    /// Wrong PIN: the new count, and the lockout it caused if any.
    Refused(Failures),
    /// Still locked: the PIN was not looked at.
    Locked { until: i64 },
}

/// Decides an attempt at `now` (seconds) from the number's failures so
/// far and whether the PIN matched (`pin_ok` is only called when not locked).
pub fn judge(prior: Failures, now: i64, pin_ok: impl FnOnce() -> bool, policy: &Policy) -> Verdict {
    if let Some(until) = prior.locked_until
        && until > now
    {
        return Verdict::Locked { until };
    }
    if pin_ok() {
        return Verdict::Granted;
    }
    let count = prior.count.saturating_add(1);
    let max = policy.max_failures.max(1);
    let locked_until = count.is_multiple_of(max).then(|| {
        let doublings = (count / max - 1).min(16);
        now + (policy.lockout_secs << doublings).min(86_400)
    });
    Verdict::Refused(Failures {
        count,
        locked_until,
    })
}

fn read_failures(conn: &Connection, staff_id: i64) -> rusqlite::Result<Failures> {
    Ok(conn
        .prepare_cached("SELECT failures, locked_until FROM sign_in_failures WHERE staff_id = ?1")?
        .query_row([staff_id], |row| {
            let until: Option<String> = row.get(1)?;
            Ok(Failures {
                count: row.get(0)?,
                locked_until: until.as_deref().and_then(dates::seconds_of),
            })
        })
        .optional()?
        .unwrap_or_default())
}

fn audit(
    conn: &Connection,
    now: Timestamp,
    staff_id: i64,
    action: &str,
    detail: &serde_json::Value,
) -> rusqlite::Result<()> {
    audit::record(
        conn,
        &AuditEntry {
            at: now,
            actor: &format!("staff:{staff_id}"),
            action,
            member_id: None,
            detail,
        },
    )
}

/// Why a staff number can or cannot sign in here, before the PIN.
enum Standing {
    Can(Associate, String),
    Cannot(&'static str),
}

fn standing(conn: &Connection, staff_id: i64, store_id: i64) -> rusqlite::Result<Standing> {
    let row: Option<(i64, String, String, String, bool)> = conn
        .prepare_cached(
            "SELECT store_id, display_name, role, pin_hash, active FROM associates WHERE staff_id = ?1",
        )?
        .query_row([staff_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
        })
        .optional()?;
    Ok(match row {
        None => Standing::Cannot("unknown_staff"),
        Some((_, _, _, _, false)) => Standing::Cannot("inactive"),
        Some((home, ..)) if home != store_id => Standing::Cannot("other_store"),
        Some((home, display_name, role, hash, true)) => match Role::parse(&role) {
            Some(role) => Standing::Can(
                Associate {
                    staff_id,
                    store_id: home,
                    display_name,
                    role,
                },
                hash,
            ),
            None => Standing::Cannot("unknown_role"),
        },
    })
}

/// One sign-in attempt at `store_id` at `now` (store-local
/// `YYYY-MM-DD HH:MM:SS`). The Argon2 check runs outside any transaction;
/// the count is then updated in an immediate one.
pub fn sign_in(
    conn: &mut Connection,
    staff_id: i64,
    pin: &str,
    store_id: i64,
    now: Timestamp,
    policy: &Policy,
) -> Result<Associate, StaffError> {
    check_format(pin)?;
    let now_secs = now.unix();
    let prior = read_failures(conn, staff_id)?;
    let standing = standing(conn, staff_id, store_id)?;
    let mut why_not = "wrong_pin";
    let pin_ok = || match &standing {
        Standing::Can(_, hash) => verify(pin, hash),
        Standing::Cannot(reason) => {
            if let Some(decoy) = DECOY.as_deref() {
                verify(pin, decoy);
            }
            why_not = reason;
            false
        }
    };
    // Judged on the prior count first (a locked number's PIN is not looked
    // at), then again on the count inside the transaction.
    let ok = match judge(prior, now_secs, pin_ok, policy) {
        Verdict::Locked { until } => {
            audit(
                conn,
                now,
                staff_id,
                "sign_in_locked",
                &json!({ "store_id": store_id }),
            )?;
            return Err(StaffError::Locked {
                until: dates::timestamp_string(until),
            });
        }
        Verdict::Granted => true,
        Verdict::Refused(_) => false,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = read_failures(&tx, staff_id)?;
    let verdict = judge(current, now_secs, || ok, policy);
    let result = match verdict {
        Verdict::Granted => {
            tx.execute(
                "DELETE FROM sign_in_failures WHERE staff_id = ?1",
                [staff_id],
            )?;
            audit(
                &tx,
                now,
                staff_id,
                "sign_in",
                &json!({ "store_id": store_id }),
            )?;
            match standing {
                Standing::Can(associate, _) => Ok(associate),
                Standing::Cannot(_) => unreachable!("a number that cannot sign in never matches"),
            }
        }
        Verdict::Refused(failures) => {
            let until = failures.locked_until.map(dates::timestamp_string);
            tx.execute(
                "INSERT INTO sign_in_failures (staff_id, failures, last_failure_at, locked_until)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (staff_id) DO UPDATE SET failures = excluded.failures,
                     last_failure_at = excluded.last_failure_at, locked_until = excluded.locked_until",
                params![staff_id, failures.count, now, until],
            )?;
            audit(
                &tx,
                now,
                staff_id,
                "sign_in_refused",
                &json!({ "store_id": store_id, "reason": why_not, "failures": failures.count }),
            )?;
            Err(match until {
                Some(until) => StaffError::Locked { until },
                None => StaffError::WrongPin {
                    remaining: policy.max_failures.max(1)
                        - failures.count % policy.max_failures.max(1),
                },
            })
        }
        Verdict::Locked { until } => {
            audit(
                &tx,
                now,
                staff_id,
                "sign_in_locked",
                &json!({ "store_id": store_id }),
            )?;
            Err(StaffError::Locked {
                until: dates::timestamp_string(until),
            })
        }
    };
    tx.commit()?;
    result
}

/// A staff number locked out now, for the manager's store view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedOut {
    pub staff_id: i64,
    /// `None` for a number the replica does not know.
    pub display_name: Option<String>,
    pub failures: u32,
    pub locked_until: String,
}

/// Every staff number locked at `now`.
pub fn locked_out(conn: &Connection, now: Timestamp) -> rusqlite::Result<Vec<LockedOut>> {
    conn.prepare_cached(
        "SELECT f.staff_id, a.display_name, f.failures, f.locked_until
         FROM sign_in_failures f LEFT JOIN associates a ON a.staff_id = f.staff_id
         WHERE f.locked_until > ?1 ORDER BY f.staff_id",
    )?
    .query_map([now], |row| {
        Ok(LockedOut {
            staff_id: row.get(0)?,
            display_name: row.get(1)?,
            failures: row.get(2)?,
            locked_until: row.get(3)?,
        })
    })?
    .collect()
}

/// A manager lifts a staff number's lockout and clears its count. `Ok(false)`
/// when there was nothing to clear.
pub fn unlock(
    conn: &mut Connection,
    manager: &Associate,
    staff_id: i64,
    now: Timestamp,
) -> Result<bool, StaffError> {
    manager.require_manager()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let cleared = tx.execute(
        "DELETE FROM sign_in_failures WHERE staff_id = ?1",
        [staff_id],
    )? > 0;
    if cleared {
        audit::record(
            &tx,
            &AuditEntry {
                at: now,
                actor: &manager.actor(),
                action: "sign_in_unlocked",
                member_id: None,
                detail: &json!({ "staff_id": staff_id }),
            },
        )?;
    }
    tx.commit()?;
    Ok(cleared)
}

/// A signed-in associate and when they last used the tablet, on a
/// monotonic clock in milliseconds the caller reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    associate: Associate,
    last_active_ms: u64,
}

impl Session {
    pub fn new(associate: Associate, now_ms: u64) -> Self {
        Session {
            associate,
            last_active_ms: now_ms,
        }
    }

    /// The associate, if the session has been used within `idle_ms`; using
    /// it counts as activity. `None` once it has locked itself.
    pub fn resume(&mut self, now_ms: u64, idle_ms: u64) -> Option<&Associate> {
        if now_ms.saturating_sub(self.last_active_ms) > idle_ms {
            return None;
        }
        self.last_active_ms = self.last_active_ms.max(now_ms);
        Some(&self.associate)
    }

    pub fn associate(&self) -> &Associate {
        &self.associate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_failures: 3,
            lockout_secs: 60,
            idle_lock_secs: 120,
        }
    }

    #[test]
    fn wrong_pins_lock_the_number_for_longer_each_time() {
        let policy = policy();
        let mut failures = Failures::default();
        let mut now = 1_000;
        let mut lockouts = Vec::new();
        for _ in 0..9 {
            match judge(failures, now, || false, &policy) {
                Verdict::Refused(next) => {
                    if let Some(until) = next.locked_until {
                        lockouts.push(until - now);
                        // While locked, even the right PIN is not looked at.
                        let verdict = judge(next, until - 1, || panic!("PIN checked"), &policy);
                        assert_eq!(verdict, Verdict::Locked { until });
                        now = until;
                    }
                    failures = next;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(failures.count, 9);
        assert_eq!(lockouts, vec![60, 120, 240]);
        assert_eq!(judge(failures, now, || true, &policy), Verdict::Granted);
    }

    #[test]
    fn lockouts_are_capped_at_a_day() {
        let policy = policy();
        let prior = Failures {
            count: 3 * 40 - 1,
            locked_until: None,
        };
        let Verdict::Refused(next) = judge(prior, 0, || false, &policy) else {
            panic!()
        };
        assert_eq!(next.locked_until, Some(86_400));
    }

    #[test]
    fn pins_are_digits_and_hashes_verify_only_their_pin() {
        assert!(matches!(hash_pin("12a4"), Err(StaffError::BadPin)));
        assert!(matches!(hash_pin("123"), Err(StaffError::BadPin)));
        assert!(matches!(hash_pin("123456789"), Err(StaffError::BadPin)));
        let hash = hash_pin("2468").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("2468", &hash));
        assert!(!verify("2469", &hash));
        assert!(!verify("2468", "$argon2id$garbage"));
        assert_ne!(hash, hash_pin("2468").expect("hash"), "salted");
    }

    #[test]
    fn a_session_locks_itself_when_idle() {
        let associate = Associate {
            staff_id: 7,
            store_id: 1,
            display_name: "Sam".into(),
            role: Role::Associate,
        };
        let mut session = Session::new(associate.clone(), 1_000);
        assert_eq!(session.resume(50_000, 60_000), Some(&associate));
        // Used at 50 s: still open at 110 s, not at 110.001 s after that.
        assert!(session.resume(110_000, 60_000).is_some());
        assert!(session.resume(170_001, 60_000).is_none());
        assert!(session.resume(170_001, 60_000).is_none(), "stays locked");
        assert!(associate.require_manager().is_err());
    }
}
