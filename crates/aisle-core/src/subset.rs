//! The demo extract: a small, deterministic subset of a Complete Journey folder.
//!
//! Picks `n_households` households that have demographics (those with the
//! smallest seeded hash of their id, so the choice is stable and unbiased),
//! then keeps, file by file and in the source's order: their transactions (of
//! products the catalog knows), the products those touch, all campaign
//! descriptions, their campaign targets, the coupon rows of kept products in
//! their campaigns, and their redemptions of kept coupons. Output files have
//! the same names and headers, gzip-compressed, so the Complete Journey
//! importer reads them unchanged.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use crate::import::completejourney as cj;
use crate::rng::SplitMix64;

#[derive(Debug, thiserror::Error)]
pub enum SubsetError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Csv { file: String, source: csv::Error },
    #[error("{file}: column {column} missing")]
    Column { file: String, column: String },
}

/// What the extract holds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SubsetReport {
    pub households: usize,
    pub rows: Vec<(String, u64)>,
}

struct Table {
    header: csv::StringRecord,
    rows: Vec<csv::StringRecord>,
}

impl Table {
    fn column(&self, file: &str, name: &str) -> Result<usize, SubsetError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| SubsetError::Column {
                file: file.to_owned(),
                column: name.to_owned(),
            })
    }

    fn ids(&self, idx: usize) -> impl Iterator<Item = (i64, &csv::StringRecord)> {
        self.rows
            .iter()
            .map(move |row| (row[idx].parse().unwrap_or(-1), row))
    }
}

fn read(dir: &Path, file: &str) -> Result<Table, SubsetError> {
    let path = dir.join(file);
    let io = |source| SubsetError::Io {
        file: path.display().to_string(),
        source,
    };
    let raw = std::fs::File::open(&path).map_err(io)?;
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut text)
        .map_err(io)?;
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let csv_error = |source| SubsetError::Csv {
        file: file.to_owned(),
        source,
    };
    let header = reader.headers().map_err(csv_error)?.clone();
    let rows = reader
        .records()
        .collect::<Result<_, _>>()
        .map_err(csv_error)?;
    Ok(Table { header, rows })
}

fn write<'a>(
    out: &Path,
    file: &str,
    header: &csv::StringRecord,
    rows: impl Iterator<Item = &'a csv::StringRecord>,
) -> Result<u64, SubsetError> {
    let path = out.join(file);
    let io = |source| SubsetError::Io {
        file: path.display().to_string(),
        source,
    };
    let gz = flate2::GzBuilder::new().mtime(0).write(
        std::fs::File::create(&path).map_err(io)?,
        flate2::Compression::best(),
    );
    let mut writer = csv::Writer::from_writer(gz);
    let csv_error = |source| SubsetError::Csv {
        file: file.to_owned(),
        source,
    };
    writer.write_record(header).map_err(csv_error)?;
    let mut n = 0;
    for row in rows {
        writer.write_record(row).map_err(csv_error)?;
        n += 1;
    }
    let gz = writer.into_inner().map_err(|e| io(e.into_error()))?;
    gz.finish().map_err(io)?.flush().map_err(io)?;
    Ok(n)
}

/// Writes the extract of `from` into `out` (created if needed).
pub fn extract(
    from: &Path,
    out: &Path,
    n_households: usize,
    seed: u64,
) -> Result<SubsetReport, SubsetError> {
    std::fs::create_dir_all(out).map_err(|source| SubsetError::Io {
        file: out.display().to_string(),
        source,
    })?;
    let demographics = read(from, cj::DEMOGRAPHICS)?;
    let hh = demographics.column(cj::DEMOGRAPHICS, "household_id")?;
    let mut ranked: Vec<(u64, i64)> = demographics
        .ids(hh)
        .map(|(id, _)| {
            (
                SplitMix64::for_key(seed, "demo-subset", id as u64).next_u64(),
                id,
            )
        })
        .collect();
    ranked.sort_unstable();
    let chosen: HashSet<i64> = ranked
        .iter()
        .take(n_households)
        .map(|(_, id)| *id)
        .collect();

    let products = read(from, cj::PRODUCTS)?;
    let product_col = products.column(cj::PRODUCTS, "product_id")?;
    let catalog: HashSet<i64> = products.ids(product_col).map(|(id, _)| id).collect();

    let transactions = read(from, cj::TRANSACTIONS)?;
    let t_hh = transactions.column(cj::TRANSACTIONS, "household_id")?;
    let t_product = transactions.column(cj::TRANSACTIONS, "product_id")?;
    let kept_lines: Vec<&csv::StringRecord> = transactions
        .rows
        .iter()
        .filter(|row| {
            chosen.contains(&row[t_hh].parse().unwrap_or(-1))
                && catalog.contains(&row[t_product].parse().unwrap_or(-1))
        })
        .collect();
    let used: HashSet<i64> = kept_lines
        .iter()
        .map(|row| row[t_product].parse().unwrap_or(-1))
        .collect();

    let campaigns = read(from, cj::CAMPAIGNS)?;
    let c_hh = campaigns.column(cj::CAMPAIGNS, "household_id")?;
    let c_campaign = campaigns.column(cj::CAMPAIGNS, "campaign_id")?;
    let kept_targets: Vec<&csv::StringRecord> = campaigns
        .ids(c_hh)
        .filter(|(id, _)| chosen.contains(id))
        .map(|(_, row)| row)
        .collect();
    let their_campaigns: HashSet<&str> = kept_targets.iter().map(|row| &row[c_campaign]).collect();

    let coupons = read(from, cj::COUPONS)?;
    let k_product = coupons.column(cj::COUPONS, "product_id")?;
    let k_campaign = coupons.column(cj::COUPONS, "campaign_id")?;
    let k_upc = coupons.column(cj::COUPONS, "coupon_upc")?;
    let kept_coupons: Vec<&csv::StringRecord> = coupons
        .rows
        .iter()
        .filter(|row| {
            their_campaigns.contains(&row[k_campaign])
                && used.contains(&row[k_product].parse().unwrap_or(-1))
        })
        .collect();
    let coupon_keys: HashSet<(&str, &str)> = kept_coupons
        .iter()
        .map(|row| (&row[k_upc], &row[k_campaign]))
        .collect();

    let redemptions = read(from, cj::COUPON_REDEMPTIONS)?;
    let r_hh = redemptions.column(cj::COUPON_REDEMPTIONS, "household_id")?;
    let r_upc = redemptions.column(cj::COUPON_REDEMPTIONS, "coupon_upc")?;
    let r_campaign = redemptions.column(cj::COUPON_REDEMPTIONS, "campaign_id")?;
    let kept_redemptions = redemptions.rows.iter().filter(|row| {
        chosen.contains(&row[r_hh].parse().unwrap_or(-1))
            && coupon_keys.contains(&(&row[r_upc], &row[r_campaign]))
    });

    let descriptions = read(from, cj::CAMPAIGN_DESCRIPTIONS)?;
    let mut report = SubsetReport {
        households: chosen.len(),
        rows: Vec::new(),
    };
    let kept_products = products
        .ids(product_col)
        .filter(|(id, _)| used.contains(id))
        .map(|(_, row)| row);
    let kept_demographics = demographics
        .ids(hh)
        .filter(|(id, _)| chosen.contains(id))
        .map(|(_, row)| row);
    report.rows.push((
        cj::PRODUCTS.to_owned(),
        write(out, cj::PRODUCTS, &products.header, kept_products)?,
    ));
    report.rows.push((
        cj::DEMOGRAPHICS.to_owned(),
        write(
            out,
            cj::DEMOGRAPHICS,
            &demographics.header,
            kept_demographics,
        )?,
    ));
    report.rows.push((
        cj::CAMPAIGN_DESCRIPTIONS.to_owned(),
        write(
            out,
            cj::CAMPAIGN_DESCRIPTIONS,
            &descriptions.header,
            descriptions.rows.iter(),
        )?,
    ));
    report.rows.push((
        cj::CAMPAIGNS.to_owned(),
        write(
            out,
            cj::CAMPAIGNS,
            &campaigns.header,
            kept_targets.into_iter(),
        )?,
    ));
    report.rows.push((
        cj::COUPONS.to_owned(),
        write(out, cj::COUPONS, &coupons.header, kept_coupons.into_iter())?,
    ));
    report.rows.push((
        cj::TRANSACTIONS.to_owned(),
        write(
            out,
            cj::TRANSACTIONS,
            &transactions.header,
            kept_lines.into_iter(),
        )?,
    ));
    report.rows.push((
        cj::COUPON_REDEMPTIONS.to_owned(),
        write(
            out,
            cj::COUPON_REDEMPTIONS,
            &redemptions.header,
            kept_redemptions,
        )?,
    ));
    Ok(report)
}
