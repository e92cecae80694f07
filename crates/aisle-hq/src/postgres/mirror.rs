//! Tables between HQ's PostgreSQL database and a SQLite file of the same
//! schema, both ways, column for column (the two schemas match: a test
//! holds them to it).
//!
//! - **Imports** run the store's own importers (the same parsing, checks and
//!   reports as everywhere) into a scratch SQLite file holding HQ's master
//!   data, then write the imported tables back with binary `COPY` and an
//!   upsert, in one transaction.
//! - **Training** fits on a scratch SQLite extract of the master data, read
//!   in one snapshot, with the store's own model code; the model is then
//!   stored and published at HQ.
//! - **Tests and audits** read a whole copy with [`export_to_sqlite`].
//!
//! Scratch files are encrypted replicas in a private temporary folder,
//! removed when the work ends.

use aisle_core::import::{ImportOptions, ImportReport, Source};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{GenericClient, Transaction};

use super::PgStorage;
use crate::storage::{HqError, Importer};

/// The master data's tables, parents before children.
pub const MASTER_TABLES: &[&str] = &[
    "stores",
    "products",
    "members",
    "member_external_ids",
    "member_cards",
    "member_preferences",
    "member_notes",
    "member_demographics",
    "member_keys",
    "store_products",
    "baskets",
    "purchase_lines",
    "campaigns",
    "campaign_targets",
    "coupons",
    "coupon_products",
    "offer_rules",
    "coupon_issues",
    "coupon_redemptions",
    "coupon_issuers",
    "associates",
    "model_artifacts",
    "offer_models",
];

/// HQ's own tables.
pub const HQ_TABLES: &[&str] = &[
    "devices",
    "store_members",
    "changes",
    "store_events",
    "coupon_over_redemptions",
    "event_quarantine",
    "lookup_audit",
    "code_replays",
    "erasure_scrubs",
    "device_throttles",
    "admin_audit",
    "enrolments",
];

/// Rows read from PostgreSQL at a time.
const PAGE: i32 = 10_000;

#[derive(Debug, Clone)]
struct Column {
    name: String,
    ty: Type,
}

fn columns(c: &mut impl GenericClient, table: &str) -> Result<Vec<Column>, HqError> {
    let rows = c.query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        &[&table],
    )?;
    if rows.is_empty() {
        return Err(HqError::Invalid(format!(
            "HQ's PostgreSQL schema has no table {table}"
        )));
    }
    rows.iter()
        .map(|row| {
            let name: String = row.get(0);
            let ty = match row.get::<_, &str>(1) {
                "bigint" => Type::INT8,
                "text" => Type::TEXT,
                "bytea" => Type::BYTEA,
                "double precision" => Type::FLOAT8,
                other => {
                    return Err(HqError::Invalid(format!(
                        "{table}.{name}: type {other} has no SQLite counterpart"
                    )));
                }
            };
            Ok(Column { name, ty })
        })
        .collect()
}

fn primary_key(c: &mut impl GenericClient, table: &str) -> Result<Vec<String>, HqError> {
    Ok(c.query(
        "SELECT a.attname::text FROM pg_index AS i
         JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY a.attnum",
        &[&table],
    )?
    .iter()
    .map(|row| row.get(0))
    .collect())
}

/// One value on its way between the two databases.
#[derive(Debug)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(v) => v.to_sql(ty, out),
            Cell::Real(v) => v.to_sql(ty, out),
            Cell::Text(v) => v.to_sql(ty, out),
            Cell::Bytes(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl rusqlite::ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Cell::Null => ValueRef::Null,
            Cell::Int(v) => ValueRef::Integer(*v),
            Cell::Real(v) => ValueRef::Real(*v),
            Cell::Text(v) => ValueRef::Text(v.as_bytes()),
            Cell::Bytes(v) => ValueRef::Blob(v),
        }))
    }
}

fn from_pg(row: &postgres::Row, idx: usize, column: &Column) -> Result<Cell, HqError> {
    Ok(match column.ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(idx)?
            .map_or(Cell::Null, Cell::Int),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(idx)?
            .map_or(Cell::Null, Cell::Real),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(idx)?
            .map_or(Cell::Null, Cell::Bytes),
        _ => row
            .try_get::<_, Option<String>>(idx)?
            .map_or(Cell::Null, Cell::Text),
    })
}

fn from_sqlite(
    row: &rusqlite::Row<'_>,
    idx: usize,
    table: &str,
    column: &Column,
) -> Result<Cell, HqError> {
    use rusqlite::types::ValueRef;
    let value = row.get_ref(idx)?;
    let mismatch = || {
        HqError::Invalid(format!(
            "{table}.{}: a {:?} value where PostgreSQL holds {}",
            column.name,
            value.data_type(),
            column.ty
        ))
    };
    Ok(match (value, &column.ty) {
        (ValueRef::Null, _) => Cell::Null,
        (ValueRef::Integer(v), &Type::INT8) => Cell::Int(v),
        (ValueRef::Integer(v), &Type::FLOAT8) => Cell::Real(v as f64),
        (ValueRef::Real(v), &Type::FLOAT8) => Cell::Real(v),
        (ValueRef::Text(v), &Type::TEXT) => {
            Cell::Text(std::str::from_utf8(v).map_err(|_| mismatch())?.to_owned())
        }
        (ValueRef::Blob(v), &Type::BYTEA) => Cell::Bytes(v.to_vec()),
        _ => return Err(mismatch()),
    })
}

fn column_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Copies every row of `tables` from PostgreSQL into the same (empty)
/// tables of `sqlite`, read in `pg`'s snapshot; rows copied.
pub fn export_to_sqlite(
    pg: &mut Transaction<'_>,
    sqlite: &rusqlite::Connection,
    tables: &[&str],
) -> Result<u64, HqError> {
    let mut copied = 0;
    for table in tables {
        let columns = columns(pg, table)?;
        let list = column_list(&columns);
        let marks = (1..=columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut insert =
            sqlite.prepare(&format!("INSERT INTO {table} ({list}) VALUES ({marks})"))?;
        let portal = pg.bind(&format!("SELECT {list} FROM {table}"), &[])?;
        loop {
            let rows = pg.query_portal(&portal, PAGE)?;
            for row in &rows {
                let cells = columns
                    .iter()
                    .enumerate()
                    .map(|(idx, column)| from_pg(row, idx, column))
                    .collect::<Result<Vec<_>, _>>()?;
                insert.execute(rusqlite::params_from_iter(cells.iter()))?;
                copied += 1;
            }
            if rows.len() < PAGE as usize {
                break;
            }
        }
    }
    Ok(copied)
}

/// Writes the rows of `table` in `sqlite` into PostgreSQL (only those not
/// in `unchanged`, a table of the rows as they were extracted, when given):
/// straight in when PostgreSQL's table is empty, else through a staging
/// table and an upsert on the primary key. Identity columns continue after
/// the highest id.
fn copy_into_pg(
    sqlite: &rusqlite::Connection,
    pg: &mut Transaction<'_>,
    table: &str,
    unchanged: Option<&str>,
) -> Result<u64, HqError> {
    let columns = columns(pg, table)?;
    let list = column_list(&columns);
    let empty = pg
        .query_opt(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])?
        .is_none();
    let target = if empty {
        table.to_owned()
    } else {
        let staging = format!("staging_{table}");
        pg.batch_execute(&format!(
            "CREATE TEMP TABLE {staging} (LIKE {table}) ON COMMIT DROP"
        ))?;
        staging
    };
    let types: Vec<Type> = columns.iter().map(|c| c.ty.clone()).collect();
    let mut copied = 0;
    {
        let sink = pg.copy_in(&format!(
            "COPY {target} ({list}) FROM STDIN (FORMAT binary)"
        ))?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        let sql = match unchanged {
            Some(unchanged) => {
                format!("SELECT {list} FROM {table} EXCEPT SELECT {list} FROM {unchanged}")
            }
            None => format!("SELECT {list} FROM {table}"),
        };
        let mut select = sqlite.prepare(&sql)?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let cells = columns
                .iter()
                .enumerate()
                .map(|(idx, column)| from_sqlite(row, idx, table, column))
                .collect::<Result<Vec<_>, _>>()?;
            let values: Vec<&(dyn ToSql + Sync)> =
                cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
            writer.write(&values)?;
            copied += 1;
        }
        writer.finish()?;
    }
    if !empty {
        let key = primary_key(pg, table)?;
        let update = columns
            .iter()
            .filter(|c| !key.contains(&c.name))
            .map(|c| format!("{0} = excluded.{0}", c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let action = if update.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            format!("DO UPDATE SET {update}")
        };
        pg.batch_execute(&format!(
            "INSERT INTO {table} ({list}) SELECT {list} FROM {target}
             ON CONFLICT ({}) {action}",
            key.join(", ")
        ))?;
    }
    // Identity columns go on after the ids copied in.
    for row in pg.query(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
        &[&table],
    )? {
        let column: String = row.get(0);
        pg.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                     coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )?;
    }
    Ok(copied)
}

/// A scratch SQLite file with HQ's schema, in a private temporary folder.
struct Scratch {
    _dir: tempfile::TempDir,
    conn: rusqlite::Connection,
}

impl Scratch {
    fn new() -> Result<Self, HqError> {
        let dir = tempfile::Builder::new()
            .prefix("aisle-hq-scratch")
            .tempdir()
            .map_err(|source| HqError::Io {
                path: std::env::temp_dir().display().to_string(),
                source,
            })?;
        let conn = crate::sqlite::open(&dir.path().join("scratch.db"))?;
        Ok(Self { _dir: dir, conn })
    }
}

/// The master data as a scratch SQLite file, read in one snapshot; with
/// `keep`, each table also as it was (`extracted_<table>`), so that only
/// what the work changes goes back.
fn extract(storage: &PgStorage, keep: bool) -> Result<Scratch, HqError> {
    let scratch = Scratch::new()?;
    storage.read(|pg| {
        let tx = scratch.conn.unchecked_transaction()?;
        export_to_sqlite(pg.raw(), &tx, MASTER_TABLES)?;
        if keep {
            for table in MASTER_TABLES {
                tx.execute_batch(&format!(
                    "CREATE TABLE extracted_{table} AS SELECT * FROM {table}"
                ))?;
            }
        }
        tx.commit()?;
        Ok(())
    })?;
    Ok(scratch)
}

/// Runs a store importer into a scratch copy of the master data, then
/// writes back, in one transaction, the rows it added or changed (so that
/// HQ's own edits made meanwhile stand, unless the import changed the same
/// row), and refreshes the store partitions.
pub fn import(
    storage: &PgStorage,
    importer: Importer,
    source: &dyn Source,
    options: &ImportOptions,
) -> Result<ImportReport, HqError> {
    let run = match importer {
        Importer::CompleteJourney => aisle_core::import::completejourney::import,
        Importer::Layout => aisle_core::import::layout::import,
    };
    let mut scratch = extract(storage, true)?;
    let report = aisle_core::import::in_transaction(&mut scratch.conn, |tx| {
        run(tx, source, options, &mut aisle_core::import::NoProgress)
    })?;
    storage.with_client(|client| {
        let mut pg = client.transaction()?;
        for table in MASTER_TABLES {
            let unchanged = format!("extracted_{table}");
            copy_into_pg(&scratch.conn, &mut pg, table, Some(&unchanged))?;
        }
        pg.commit()?;
        Ok(())
    })?;
    storage.refresh_partitions()?;
    Ok(report)
}

/// Fits a model on a scratch extract of the master data (`fit` stores it
/// there), then stores the newest model rows at HQ.
pub fn train(
    storage: &PgStorage,
    fit: impl FnOnce(&mut rusqlite::Connection) -> Result<(), HqError>,
) -> Result<(), HqError> {
    let mut scratch = extract(storage, false)?;
    let before: (i64, i64) = storage.read(|pg| {
        let row = pg.query_one(
            "SELECT (SELECT coalesce(max(artifact_id), 0) FROM model_artifacts),
                    (SELECT coalesce(max(model_id), 0) FROM offer_models)",
            &[],
        )?;
        Ok((row.get(0), row.get(1)))
    })?;
    fit(&mut scratch.conn)?;
    // Only the rows the fit added (ids past those HQ held) go back.
    scratch.conn.execute_batch(&format!(
        "DELETE FROM model_artifacts WHERE artifact_id <= {};
         DELETE FROM offer_models WHERE model_id <= {};",
        before.0, before.1
    ))?;
    storage.with_client(|client| {
        let mut pg = client.transaction()?;
        for table in ["model_artifacts", "offer_models"] {
            copy_into_pg(&scratch.conn, &mut pg, table, None)?;
        }
        pg.commit()?;
        Ok(())
    })
}
