//! What was scanned, and where it goes: a member's app code or loyalty
//! card -> the member; a product barcode -> the product; a coupon code ->
//! the coupon; anything else -> a clear reason. Checks come before look-ups
//! (a misread card never reaches the member table), and nothing here panics
//! on any input.

use rusqlite::{Connection, OptionalExtension};

use super::member_code::{self, MemberCode};

/// Where a scan leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// A member's rotating app code, well formed (verify it before trusting it:
    /// see [`member_code::verify`]).
    AppCode(MemberCode),
    /// An active loyalty card of this member.
    Card {
        member_id: i64,
    },
    Product {
        product_id: i64,
    },
    Coupon {
        coupon_id: i64,
    },
    /// Nothing to show, and why (a stable code and a message for people).
    Refused {
        code: &'static str,
        message: String,
    },
}

/// Routes scanned text against the replica.
pub fn route(conn: &Connection, text: &str) -> rusqlite::Result<Routed> {
    let text = text.trim();
    let refused = |code: &'static str, message: String| Ok(Routed::Refused { code, message });
    if text.is_empty() {
        return refused("empty", "nothing was read".into());
    }
    if text.starts_with(member_code::PREFIX) {
        return match member_code::parse(text) {
            Ok(code) => Ok(Routed::AppCode(code)),
            Err(err) => refused(err.code(), err.to_string()),
        };
    }
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    // The check digit first: a misread card never reaches the member table.
    let valid_ean13 = digits && text.len() == 13 && crate::card::validate(text).is_ok();
    if valid_ean13
        && let Some(member_id) = conn
            .prepare_cached(
                "SELECT member_id FROM member_cards WHERE card_number = ?1 AND status = 'active'",
            )?
            .query_row([crate::card::stored_form(conn, text)?], |row| row.get(0))
            .optional()?
    {
        return Ok(Routed::Card { member_id });
    }
    if digits
        && (8..=14).contains(&text.len())
        && let Some(product_id) = conn
            .prepare_cached("SELECT product_id FROM products WHERE gtin = ?1")?
            .query_row([text], |row| row.get(0))
            .optional()?
    {
        return Ok(Routed::Product { product_id });
    }
    if let Some(coupon_id) = conn
        .prepare_cached(
            "SELECT coupon_id FROM coupons WHERE code = ?1 ORDER BY coupon_id DESC LIMIT 1",
        )?
        .query_row([text], |row| row.get(0))
        .optional()?
    {
        return Ok(Routed::Coupon { coupon_id });
    }
    if digits && text.len() == 13 {
        return match crate::card::validate(text) {
            Ok(_) if text.starts_with('2') => {
                refused("unknown_card", "this card is not known here".into())
            }
            Ok(_) => refused(
                "unknown_product",
                "this barcode is not in the catalog".into(),
            ),
            Err(err) => refused(
                "bad_check_digit",
                format!("misread or damaged barcode: {err}"),
            ),
        };
    }
    refused(
        "unrecognised",
        "this code is not a member, product or coupon code".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        conn.execute_batch(
            "INSERT INTO stores (store_id, name) VALUES (1, 'One');
             INSERT INTO members (member_id, given_name, updated_at) VALUES (7, 'Zoe', '2026-01-01');
             INSERT INTO member_cards (card_number, member_id, status) VALUES ('2912345678906', 7, 'active');
             INSERT INTO member_cards (card_number, member_id, status) VALUES ('2900000000018', 7, 'blocked');
             INSERT INTO products (product_id, name, gtin) VALUES (42, 'Oat milk', '4006381333931');
             INSERT INTO campaigns (campaign_id, name, starts_on, ends_on) VALUES (1, 'C', '2026-01-01', '2026-12-31');
             INSERT INTO coupons (coupon_id, code, campaign_id) VALUES (5, 'SAVE5-OAT', 1);",
        )
        .expect("rows");
        (dir, conn)
    }

    #[test]
    fn each_kind_of_scan_goes_where_it_belongs() {
        let (_dir, conn) = replica();
        let check = |text: &str, expected: Routed| {
            assert_eq!(route(&conn, text).expect("route"), expected, "{text:?}");
        };
        check("2912345678906", Routed::Card { member_id: 7 });
        check(" 2912345678906\r", Routed::Card { member_id: 7 });
        check("4006381333931", Routed::Product { product_id: 42 });
        check("SAVE5-OAT", Routed::Coupon { coupon_id: 5 });
        // Misread by one digit: refused for its check digit, never a look-up.
        // (The replica even holds a card with that very number, a bad row
        // from some source: it is still not matched.)
        conn.execute(
            "INSERT INTO member_cards (card_number, member_id, status) VALUES ('2912345678907', 7, 'active')",
            [],
        )
        .expect("bad row");
        let code = |code: &'static str| move |routed: Routed| matches!(routed, Routed::Refused { code: c, .. } if c == code);
        assert!(
            code("unknown_card")(route(&conn, "2900000000018").expect("route")),
            "a blocked card"
        );
        for misread in [
            "2912345678907",
            "2912345678960",
            "2912345687906",
            "2912345678900",
        ] {
            assert!(
                code("bad_check_digit")(route(&conn, misread).expect("route")),
                "{misread}"
            );
        }
        assert!(code("unknown_product")(
            route(&conn, "5901234123457").expect("route")
        ));
        assert!(code("empty")(route(&conn, "  ").expect("route")));
        assert!(code("unrecognised")(
            route(&conn, "hello, world").expect("route")
        ));
        assert!(code("malformed")(
            route(&conn, "AISLE1:7:1:XYZ:AB").expect("route")
        ));
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let text = member_code::encode(7, &key, 1_764_000_000, &member_code::CodePolicy::default());
        assert!(
            matches!(route(&conn, &text).expect("route"), Routed::AppCode(c) if c.member_id == 7)
        );
        let mut altered = text.clone();
        altered.replace_range(7..8, if &text[7..8] == "8" { "9" } else { "8" });
        assert!(code("altered")(route(&conn, &altered).expect("route")));
    }
}
