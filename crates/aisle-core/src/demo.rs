//! The embedded demo dataset: a small deterministic extract of the Complete
//! Journey data (see `assets/demo/README.md` and [`crate::subset`]), compiled
//! into the binary so `aisle demo` runs on a machine that has nothing else.

use crate::time::Timestamp;
use rusqlite::{Connection, OptionalExtension};

use crate::import::EmbeddedSource;

macro_rules! demo_file {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../../assets/demo/", $name)) as &[u8],
        )
    };
}

/// The seven Complete Journey files of the demo extract.
pub static FILES: &[(&str, &[u8])] = &[
    demo_file!("products.csv.gz"),
    demo_file!("demographics.csv.gz"),
    demo_file!("campaign_descriptions.csv.gz"),
    demo_file!("campaigns.csv.gz"),
    demo_file!("coupons.csv.gz"),
    demo_file!("transactions.csv.gz"),
    demo_file!("coupon_redemptions.csv.gz"),
];

/// The demo store's associates: staff number, name, role, PIN. The PINs
/// are public (README): a real HQ sets each associate's own.
pub const ASSOCIATES: [(i64, &str, aisle_proto::Role, &str); 2] = [
    (1001, "Alex Moreau", aisle_proto::Role::Associate, "2468"),
    (1002, "Sam Diallo", aisle_proto::Role::Manager, "1357"),
];

/// Writes the demo associates for `store_id` (PINs hashed here, as HQ does).
pub fn add_associates(
    tx: &rusqlite::Transaction<'_>,
    store_id: i64,
    now: Timestamp,
) -> Result<(), crate::staff::StaffError> {
    for (staff_id, display_name, role, pin) in ASSOCIATES {
        crate::sync::records::write_associate(
            tx,
            &aisle_proto::AssociateRecord {
                staff_id,
                store_id,
                display_name: display_name.to_owned(),
                role,
                pin_hash: crate::staff::hash_pin(pin)?,
                active: true,
                updated_at: now.to_string(),
            },
        )?;
    }
    Ok(())
}

/// The embedded files as an import source.
pub fn source() -> EmbeddedSource {
    EmbeddedSource(FILES)
}

/// The member the demo shows: of those who consent to personalization, a
/// regular of the store with the widest range in stock (the demo's stores
/// stock only what its 200 households bought there), the one with the most
/// baskets (ties: lowest id).
pub fn showcase_member(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        &format!(
            "WITH stock AS (SELECT store_id, count(*) AS n FROM store_products WHERE stock_qty > 0 GROUP BY store_id)
             SELECT m.member_id FROM members AS m
             JOIN baskets AS b ON b.member_id = m.member_id
             LEFT JOIN stock AS s ON s.store_id = m.home_store_id
             WHERE {}
             GROUP BY m.member_id ORDER BY coalesce(s.n, 0) DESC, count(*) DESC, m.member_id LIMIT 1",
            crate::consent::MAY_PERSONALIZE_SQL
        ),
        [],
        |row| row.get(0),
    )
    .optional()
}
