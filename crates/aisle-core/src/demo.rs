//! The embedded demo dataset: a small deterministic extract of the Complete
//! Journey data (see `assets/demo/README.md` and [`crate::subset`]), compiled
//! into the binary so `aisle demo` runs on a machine that has nothing else.

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
        "WITH stock AS (SELECT store_id, count(*) AS n FROM store_products WHERE stock_qty > 0 GROUP BY store_id)
         SELECT m.member_id FROM members AS m
         JOIN baskets AS b ON b.member_id = m.member_id
         LEFT JOIN stock AS s ON s.store_id = m.home_store_id
         WHERE m.consent_personalization = 1 AND m.erased_at IS NULL
         GROUP BY m.member_id ORDER BY coalesce(s.n, 0) DESC, count(*) DESC, m.member_id LIMIT 1",
        [],
        |row| row.get(0),
    )
    .optional()
}
