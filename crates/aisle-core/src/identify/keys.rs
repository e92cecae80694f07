//! Members' app-code keys in the replica: the public halves HQ provisions
//! (`member_keys`), the one that verifies, and the deterministic keys of demo
//! members.
//!
//! Real members' private keys are made on their phones and never leave them;
//! HQ only ever holds and sends the public half. Demo members (the Complete
//! Journey households and the synthetic members of `aisle gen`, whose
//! identities are derived too) get a key derived from their member id and
//! [`DEMO_KEY_SECRET`], a secret that is public on purpose, so that demos and
//! tests can show a valid code. A replica tells a demo key from a real one
//! only by comparing it with the derived one.

use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// The documented, public secret demo members' keys derive from. Anyone can
/// make a demo member's codes: never give a real member such a key.
pub const DEMO_KEY_SECRET: &str = "aisle demo member keys v1: public, never for real members";

/// The key id of a demo member's (only) key.
pub const DEMO_KEY_ID: i64 = 1;

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

/// The member's current key: the highest key id. `None`: no key (or only a
/// stored value that is not a valid key, which verifies nothing either).
pub fn current_key(conn: &Connection, member_id: i64) -> rusqlite::Result<Option<CodeKey>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT key_id, public_key FROM member_keys WHERE member_id = ?1
             ORDER BY key_id DESC LIMIT 1",
        )?
        .query_row([member_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(key_id, bytes)| {
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        let public_key = VerifyingKey::from_bytes(&bytes).ok()?;
        Some(CodeKey { key_id, public_key })
    }))
}

/// Stores a public key for a member (local provisioning: imports and tests;
/// a store's keys otherwise come from HQ with the member's record). Writes
/// nothing when the same key is already there.
pub fn set_key(
    conn: &Connection,
    member_id: i64,
    key_id: i64,
    public_key: &VerifyingKey,
    created_at: &str,
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
    Ok(current_key(conn, member_id)?
        .filter(|key| key.public_key == demo.verifying_key())
        .map(|_| demo))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // The code of docs/PROTOCOL.md's test vector, also computed independently.
        assert_eq!(
            super::super::member_code::encode(
                1,
                &demo_member_key(1),
                1_764_000_000,
                &super::super::member_code::CodePolicy::default()
            ),
            "AISLE1:1:58800000:BPSOLNNUL224JIQDJYDRE6I5I6T35VK2VV3UEA775VSUCZILOECOGCIF6EOOPCC66A6KL7XCQZAUU2LPD5CTOIMKQ5CEQNDCFKJEEAQ:V5"
        );
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
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        conn.execute_batch(
            "INSERT INTO members (member_id, updated_at) VALUES (7, '2026-01-01'), (8, '2026-01-01');",
        )
        .expect("members");
        assert_eq!(current_key(&conn, 7).expect("key"), None);
        let demo = demo_member_key(7).verifying_key();
        assert!(set_key(&conn, 7, 1, &demo, "2026-01-01 00:00:00").expect("set"));
        assert!(!set_key(&conn, 7, 1, &demo, "2027-01-01 00:00:00").expect("again"));
        assert!(demo_signing_key(&conn, 7).expect("demo").is_some());
        // A rotation to a phone-made key: that one verifies, and no private half is known here.
        let phone = SigningKey::from_bytes(&[9; 32]).verifying_key();
        set_key(&conn, 7, 2, &phone, "2026-02-01 00:00:00").expect("rotate");
        assert_eq!(
            current_key(&conn, 7).expect("key"),
            Some(CodeKey {
                key_id: 2,
                public_key: phone
            })
        );
        assert!(demo_signing_key(&conn, 7).expect("demo").is_none());
        // Member 8 with member 7's demo key is not a demo member.
        set_key(&conn, 8, 1, &demo, "2026-01-01 00:00:00").expect("set");
        assert!(demo_signing_key(&conn, 8).expect("demo").is_none());
    }
}
