//! Ed25519 keys: one parser for every key that arrives as text, and the
//! places in the replica where keys are kept and looked up.
//!
//! Keys travel as 64 hex digits (provisioning, the feed, import files, HQ's
//! key file) and are stored as 32 raw bytes; [`parse_public`],
//! [`parse_strong_public`] and [`parse_secret`] read the text,
//! [`public_from_bytes`] a stored value. Kept here:
//! - **Coupon issuers**: this device's issuing key ([`ISSUER_KEY`] in the
//!   replica's vault ([`crate::vault`]), `<key id>:<secret, hex>`: made here and registered with
//!   HQ, which numbers it ([`ISSUER_REGISTERED`] says for which device), or
//!   made here on first issue as key id 0 when the replica has no HQ), and
//!   the public keys of every issuing device of every store
//!   (`coupon_issuers`, only ever added; HQ may mark one revoked), which
//!   verify coupon tokens.
//! - **Members' app-code keys** (`member_keys`): the public halves HQ
//!   provisions; the highest key id verifies. Real members' private keys
//!   are made on their phones and never leave them. Demo members (the
//!   Complete Journey households and the synthetic members of `aisle gen`)
//!   get a key derived from their member id and [`DEMO_KEY_SECRET`], a
//!   secret that is public on purpose, so that demos and tests can show a
//!   valid code; a replica tells a demo key from a real one only by
//!   comparing it with the derived one.
//!
//! HQ's verifying key is part of the device's credentials (`sync`), parsed
//! here; the device's own secret is a bearer token, not key material.

use crate::time::Timestamp;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// The vault's name for this device's issuing key: `<key id>:<secret, hex>`.
pub const ISSUER_KEY: &str = crate::vault::ISSUER_KEY;

/// `replica_meta` key naming the device whose issuing key HQ registered
/// (absent: the key, if any, is not this device's own registered key, and
/// sync registers a new one).
pub const ISSUER_REGISTERED: &str = "coupons.issuer_registered_for";

/// The documented, public secret demo members' keys derive from. Anyone can
/// make a demo member's codes: never give a real member such a key.
pub const DEMO_KEY_SECRET: &str = "aisle demo member keys v1: public, never for real members";

/// The key id of a demo member's (only) key.
pub const DEMO_KEY_ID: i64 = 1;

/// Why a key is refused or cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{text:?} is not 64 hex digits")]
    NotHex { text: String },
    #[error("{text} is not an Ed25519 public key")]
    NotAKey { text: String },
    #[error("{text} is a weak (small-order) Ed25519 key")]
    Weak { text: String },
    #[error("the device's coupon issuing key ({ISSUER_KEY}) is unreadable")]
    Unreadable,
    #[error("no randomness from the operating system")]
    Random,
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// The 32 bytes of 64 hex digits: the shape of every key as text.
pub fn decode_hex32(text: &str) -> Result<[u8; 32], KeyError> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| KeyError::NotHex {
            text: text.to_owned(),
        })
}

/// A public key from its 64 hex digits.
pub fn parse_public(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = decode_hex32(text)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAKey {
        text: text.to_owned(),
    })
}

/// [`parse_public`], refusing a small-order ("weak") key too: the keys
/// others hand us to verify members' codes and coupons.
pub fn parse_strong_public(text: &str) -> Result<VerifyingKey, KeyError> {
    let key = parse_public(text)?;
    if key.is_weak() {
        return Err(KeyError::Weak {
            text: text.to_owned(),
        });
    }
    Ok(key)
}

/// A signing key from its 64 hex digits (the 32-byte secret).
pub fn parse_secret(text: &str) -> Result<SigningKey, KeyError> {
    decode_hex32(text).map(|bytes| SigningKey::from_bytes(&bytes))
}

/// A public key as stored (32 raw bytes).
pub fn public_from_bytes(bytes: &[u8]) -> Result<VerifyingKey, KeyError> {
    let not_a_key = || KeyError::NotAKey {
        text: hex::encode(bytes),
    };
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| not_a_key())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| not_a_key())
}

/// A new random signing key.
pub fn random_secret() -> Result<SigningKey, KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|_| KeyError::Random)?;
    Ok(SigningKey::from_bytes(&bytes))
}

// Coupon issuers.

/// Makes `key` this store's issuing key (provisioning) and records its
/// public half among the issuers.
pub fn set_issuing_key(
    conn: &Connection,
    store_id: i64,
    key_id: i64,
    key: &SigningKey,
    now: Timestamp,
) -> rusqlite::Result<()> {
    crate::replica::set_secret(
        conn,
        ISSUER_KEY,
        &format!("{key_id}:{}", hex::encode(key.to_bytes())),
    )?;
    add_issuer(conn, store_id, key_id, &key.verifying_key(), now)
}

/// This store's issuing key and its key id; `None` when it has none yet.
pub fn issuing_key(conn: &Connection) -> Result<Option<(i64, SigningKey)>, KeyError> {
    let Some(text) = crate::replica::secret(conn, ISSUER_KEY)? else {
        return Ok(None);
    };
    let (key_id, secret) = text.expose().split_once(':').ok_or(KeyError::Unreadable)?;
    let key_id: i64 = key_id.parse().map_err(|_| KeyError::Unreadable)?;
    let key = parse_secret(secret).map_err(|_| KeyError::Unreadable)?;
    Ok(Some((key_id, key)))
}

/// This store's issuing key, made (key id 0) when the replica has none.
pub fn issuing_key_or_make(
    conn: &Connection,
    store_id: i64,
    now: Timestamp,
) -> Result<(i64, SigningKey), KeyError> {
    if let Some(found) = issuing_key(conn)? {
        return Ok(found);
    }
    let key = random_secret()?;
    set_issuing_key(conn, store_id, 0, &key, now)?;
    tracing::info!(store_id, "made a local coupon issuing key (key id 0)");
    Ok((0, key))
}

/// Records an issuing store's public key (keys are only ever added).
pub fn add_issuer(
    conn: &Connection,
    store_id: i64,
    key_id: i64,
    public_key: &VerifyingKey,
    now: Timestamp,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO coupon_issuers (store_id, key_id, public_key, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (store_id, key_id) DO UPDATE SET public_key = excluded.public_key",
    )?
    .execute(params![store_id, key_id, public_key.as_bytes().as_slice(), now])?;
    Ok(())
}

/// Marks an issuing key revoked from `at` on (the earliest revocation stays).
pub fn revoke_issuer(
    conn: &Connection,
    store_id: i64,
    key_id: i64,
    at: Timestamp,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE coupon_issuers SET revoked_at = coalesce(revoked_at, ?3)
         WHERE store_id = ?1 AND key_id = ?2",
    )?
    .execute(params![store_id, key_id, at])?;
    Ok(())
}

/// An issuing key as the replica knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub public_key: VerifyingKey,
    /// When HQ revoked it: tokens it signs are trusted only for instances
    /// the ledger holds as issued before.
    pub revoked_at: Option<Timestamp>,
}

/// The key an issuing device signed with (`None`: unknown, or a stored
/// value that is no key, which verifies nothing either).
pub fn issuer(conn: &Connection, store_id: i64, key_id: i64) -> rusqlite::Result<Option<Issuer>> {
    let row: Option<(Vec<u8>, Option<Timestamp>)> = conn
        .prepare_cached(
            "SELECT public_key, revoked_at FROM coupon_issuers WHERE store_id = ?1 AND key_id = ?2",
        )?
        .query_row([store_id, key_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(bytes, revoked_at)| {
        Some(Issuer {
            public_key: public_from_bytes(&bytes).ok()?,
            revoked_at,
        })
    }))
}

/// The public key of [`issuer`].
pub fn issuer_public_key(
    conn: &Connection,
    store_id: i64,
    key_id: i64,
) -> rusqlite::Result<Option<VerifyingKey>> {
    Ok(issuer(conn, store_id, key_id)?.map(|issuer| issuer.public_key))
}

// Members' app-code keys.

/// A demo member's signing key: SHA-256 of `DEMO_KEY_SECRET`, `:` and the
/// member id in decimal, as the Ed25519 secret key.
pub fn demo_member_key(member_id: i64) -> SigningKey {
    let digest = Sha256::new()
        .chain_update(DEMO_KEY_SECRET.as_bytes())
        .chain_update(b":")
        .chain_update(member_id.to_string().as_bytes())
        .finalize();
    SigningKey::from_bytes(&digest.into())
}

/// The key that verifies a member's app codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeKey {
    pub key_id: i64,
    pub public_key: VerifyingKey,
}

/// The member's current app-code key: the highest key id. `None`: no key
/// (or only a stored value that is not a valid key, which verifies nothing
/// either).
pub fn code_key(conn: &Connection, member_id: i64) -> rusqlite::Result<Option<CodeKey>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT key_id, public_key FROM member_keys WHERE member_id = ?1
             ORDER BY key_id DESC LIMIT 1",
        )?
        .query_row([member_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(key_id, bytes)| {
        let public_key = public_from_bytes(&bytes).ok()?;
        Some(CodeKey { key_id, public_key })
    }))
}

/// Stores a public app-code key for a member (local provisioning: imports
/// and tests; a store's keys otherwise come from HQ with the member's
/// record). Writes nothing when the same key is already there.
pub fn set_code_key(
    conn: &Connection,
    member_id: i64,
    key_id: i64,
    public_key: &VerifyingKey,
    created_at: Timestamp,
) -> rusqlite::Result<bool> {
    let written = conn
        .prepare_cached(
            "INSERT INTO member_keys (member_id, key_id, public_key, created_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (member_id, key_id) DO UPDATE SET
                 public_key = excluded.public_key, created_at = excluded.created_at
             WHERE member_keys.public_key IS NOT excluded.public_key",
        )?
        .execute(params![
            member_id,
            key_id,
            public_key.as_bytes().as_slice(),
            created_at
        ])?;
    Ok(written > 0)
}

/// The signing key of a member whose current key is their demo key, for
/// showing their code; `None` for a member without a key or with a real
/// (phone-made) one.
pub fn demo_signing_key(conn: &Connection, member_id: i64) -> rusqlite::Result<Option<SigningKey>> {
    let demo = demo_member_key(member_id);
    Ok(code_key(conn, member_id)?
        .filter(|key| key.public_key == demo.verifying_key())
        .map(|_| demo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::lit::ts;

    fn replica() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        (dir, conn)
    }

    #[test]
    fn keys_as_text_parse_or_say_why_not() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let public_hex = hex::encode(key.verifying_key().as_bytes());
        assert_eq!(
            parse_public(&public_hex).expect("public"),
            key.verifying_key()
        );
        assert_eq!(
            parse_strong_public(&public_hex).expect("strong"),
            key.verifying_key()
        );
        assert_eq!(
            parse_secret(&hex::encode([9; 32]))
                .expect("secret")
                .to_bytes(),
            key.to_bytes()
        );
        for text in ["", "abc", "zz", &"0".repeat(62), &"0".repeat(66)] {
            assert!(
                matches!(parse_public(text), Err(KeyError::NotHex { .. })),
                "{text:?}"
            );
            assert!(
                matches!(parse_secret(text), Err(KeyError::NotHex { .. })),
                "{text:?}"
            );
        }
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert!(matches!(
            parse_public(&hex::encode(off_curve)),
            Err(KeyError::NotAKey { .. })
        ));
        // The identity point is a key, but a weak one: it verifies forgeries.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let identity_hex = hex::encode(identity);
        assert!(parse_public(&identity_hex).is_ok());
        let weak = parse_strong_public(&identity_hex).expect_err("weak");
        assert!(matches!(weak, KeyError::Weak { .. }));
        assert_eq!(
            weak.to_string(),
            format!("{identity_hex} is a weak (small-order) Ed25519 key")
        );
        assert_eq!(
            public_from_bytes(key.verifying_key().as_bytes()).expect("bytes"),
            key.verifying_key()
        );
        assert!(public_from_bytes(&[1; 31]).is_err(), "31 bytes");
        assert!(public_from_bytes(&off_curve).is_err());
    }

    #[test]
    fn the_issuing_key_is_made_once_and_its_public_half_recorded() {
        let (_dir, conn) = replica();
        conn.execute("INSERT INTO stores (store_id, name) VALUES (1, 'Here')", [])
            .expect("store");
        assert!(issuing_key(&conn).expect("none").is_none());
        assert_eq!(issuer_public_key(&conn, 1, 0).expect("none"), None);
        let (key_id, made) =
            issuing_key_or_make(&conn, 1, ts("2026-01-01 00:00:00")).expect("made");
        assert_eq!(key_id, 0);
        let (again_id, again) =
            issuing_key_or_make(&conn, 1, ts("2026-01-02 00:00:00")).expect("again");
        assert_eq!(
            (again_id, again.to_bytes()),
            (0, made.to_bytes()),
            "made once"
        );
        assert_eq!(
            issuer_public_key(&conn, 1, 0).expect("public"),
            Some(made.verifying_key())
        );
        // Provisioning replaces it with HQ's key (id 1); the old public half stays.
        let from_hq = SigningKey::from_bytes(&[5; 32]);
        set_issuing_key(&conn, 1, 1, &from_hq, ts("2026-02-01 00:00:00")).expect("provision");
        let (key_id, key) = issuing_key(&conn).expect("read").expect("key");
        assert_eq!((key_id, key.to_bytes()), (1, from_hq.to_bytes()));
        assert!(issuer_public_key(&conn, 1, 0).expect("old").is_some());
        crate::replica::set_secret(&conn, ISSUER_KEY, "1:not-hex").expect("damage");
        assert!(matches!(issuing_key(&conn), Err(KeyError::Unreadable)));
        assert!(matches!(
            issuing_key_or_make(&conn, 1, ts("2026-02-02 00:00:00")),
            Err(KeyError::Unreadable)
        ));
    }

    #[test]
    fn demo_keys_are_fixed_and_distinct() {
        // Pinned (and computed independently, with Python's `cryptography`,
        // from the documented derivation; docs/PROTOCOL.md lists them): a
        // change of derivation would silently invalidate every demo
        // replica's keys and every printed demo code.
        for (member_id, public) in [
            (
                1,
                "8b5197873ccb980ebb4180db1bb2cbba5012c8f6451dba9b4ffa0204eeb2fe1c",
            ),
            (
                2,
                "bfbc4c955d4d1d408bfb56a2703f5d121e2dbdf592ed95de7460c8cc7796a009",
            ),
        ] {
            assert_eq!(
                hex::encode(demo_member_key(member_id).verifying_key().as_bytes()),
                public
            );
        }
        assert_ne!(
            demo_member_key(1).verifying_key(),
            demo_member_key(2).verifying_key()
        );
        assert_ne!(
            demo_member_key(12).verifying_key(),
            demo_member_key(21).verifying_key()
        );
    }

    #[test]
    fn the_highest_key_id_verifies_and_only_demo_keys_sign_here() {
        let (_dir, conn) = replica();
        conn.execute_batch(
            "INSERT INTO members (member_id, updated_at) VALUES (7, '2026-01-01'), (8, '2026-01-01');",
        )
        .expect("members");
        assert_eq!(code_key(&conn, 7).expect("key"), None);
        let demo = demo_member_key(7).verifying_key();
        assert!(set_code_key(&conn, 7, 1, &demo, ts("2026-01-01 00:00:00")).expect("set"));
        assert!(!set_code_key(&conn, 7, 1, &demo, ts("2027-01-01 00:00:00")).expect("again"));
        assert!(demo_signing_key(&conn, 7).expect("demo").is_some());
        // A rotation to a phone-made key: that one verifies, and no private half is known here.
        let phone = SigningKey::from_bytes(&[9; 32]).verifying_key();
        set_code_key(&conn, 7, 2, &phone, ts("2026-02-01 00:00:00")).expect("rotate");
        assert_eq!(
            code_key(&conn, 7).expect("key"),
            Some(CodeKey {
                key_id: 2,
                public_key: phone
            })
        );
        assert!(demo_signing_key(&conn, 7).expect("demo").is_none());
        // Member 8 with member 7's demo key is not a demo member.
        set_code_key(&conn, 8, 1, &demo, ts("2026-01-01 00:00:00")).expect("set");
        assert!(demo_signing_key(&conn, 8).expect("demo").is_none());
    }
}
