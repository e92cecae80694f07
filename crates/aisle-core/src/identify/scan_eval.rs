//! Measuring the decoder on labelled photographs: `aisle eval scan`.
//!
//! The manifest is the scan corpus's `manifest.csv` (RFC 4180; payloads may
//! hold commas, quotes and CR LF): columns `file`, `format` (`qr_code`,
//! `ean_13`, `upc_a`, `code_128`, `code_39`) and `expected_text`; other
//! columns are ignored. Scoring follows the corpus: an image is *decoded*
//! when one of the texts read equals the expected text exactly (EAN-13 and
//! UPC-A compared as GTIN-13), and *misread* when something was read but
//! nothing equal to it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::decode::{self, DecodeOptions, Symbol, Symbology};
use super::frame;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub file: String,
    pub symbology: Symbology,
    pub expected: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: missing column {column:?}")]
    MissingColumn { path: String, column: &'static str },
    #[error("{path}, row {row}: unknown format {format:?}")]
    UnknownFormat {
        path: String,
        row: usize,
        format: String,
    },
}

/// Reads a manifest; image paths are relative to its folder.
pub fn read_manifest(path: &Path) -> Result<(PathBuf, Vec<Labelled>), ManifestError> {
    let shown = path.display().to_string();
    let csv_error = |source| ManifestError::Csv {
        path: shown.clone(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_error)?;
    let headers = reader.headers().map_err(csv_error)?.clone();
    let column = |name: &'static str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or(ManifestError::MissingColumn {
                path: shown.clone(),
                column: name,
            })
    };
    let (file, format, expected) = (column("file")?, column("format")?, column("expected_text")?);
    let mut entries = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(csv_error)?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        let symbology =
            Symbology::from_name(&field(format)).ok_or_else(|| ManifestError::UnknownFormat {
                path: shown.clone(),
                row: index + 2,
                format: field(format),
            })?;
        entries.push(Labelled {
            file: field(file),
            symbology,
            expected: field(expected),
        });
    }
    let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
    Ok((dir, entries))
}

/// Whether the reads of one image decode it, or misread it.
pub fn score(entry: &Labelled, symbols: &[Symbol]) -> (bool, bool) {
    let gtin = matches!(entry.symbology, Symbology::Ean13 | Symbology::UpcA);
    let expected = if gtin {
        decode::gtin13(entry.symbology, &entry.expected)
    } else {
        entry.expected.clone()
    };
    let hit = symbols.iter().any(|s| {
        if gtin {
            matches!(s.symbology, Symbology::Ean13 | Symbology::UpcA)
                && decode::gtin13(s.symbology, &s.text) == expected
        } else {
            s.text == expected
        }
    });
    (hit, !hit && !symbols.is_empty())
}

/// One image's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub entry: Labelled,
    pub symbols: Vec<Symbol>,
    pub decoded: bool,
    pub misread: bool,
    /// Decoding time (the file read and image decompression excluded).
    pub millis: f64,
    pub step: Option<&'static str>,
    /// Why the image could not be read or decoded, if so.
    pub error: Option<String>,
}

/// Decodes one labelled image (every frame, for an animated GIF).
pub fn run_one(dir: &Path, entry: &Labelled, options: &DecodeOptions) -> Outcome {
    let mut outcome = Outcome {
        entry: entry.clone(),
        symbols: Vec::new(),
        decoded: false,
        misread: false,
        millis: 0.0,
        step: None,
        error: None,
    };
    let frames = match frame::read_frames(&dir.join(&entry.file)) {
        Ok(frames) => frames,
        Err(err) => {
            outcome.error = Some(err.to_string());
            return outcome;
        }
    };
    let started = Instant::now();
    let (symbols, step, errors) = decode::decode_frames(&frames, options);
    (outcome.symbols, outcome.step) = (symbols, step);
    outcome.error = errors.last().map(ToString::to_string);
    outcome.millis = started.elapsed().as_secs_f64() * 1e3;
    (outcome.decoded, outcome.misread) = score(entry, &outcome.symbols);
    outcome
}

/// Rates per symbology and overall.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub rows: Vec<Row>,
    pub all: Row,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub symbology: String,
    pub images: usize,
    pub decoded: usize,
    pub misread: usize,
    pub rate: f64,
}

pub fn summarize(outcomes: &[Outcome]) -> Summary {
    let row = |name: &str, selected: Vec<&Outcome>| {
        let decoded = selected.iter().filter(|o| o.decoded).count();
        Row {
            symbology: name.to_owned(),
            images: selected.len(),
            decoded,
            misread: selected.iter().filter(|o| o.misread).count(),
            rate: if selected.is_empty() {
                0.0
            } else {
                decoded as f64 / selected.len() as f64
            },
        }
    };
    let rows = Symbology::ALL
        .iter()
        .map(|&s| {
            row(
                s.name(),
                outcomes.iter().filter(|o| o.entry.symbology == s).collect(),
            )
        })
        .collect();
    let mut millis: Vec<f64> = outcomes.iter().map(|o| o.millis).collect();
    millis.sort_by(f64::total_cmp);
    Summary {
        rows,
        all: row("all", outcomes.iter().collect()),
        median_ms: quantile(&millis, 0.5),
        p99_ms: quantile(&millis, 0.99),
        errors: outcomes.iter().filter(|o| o.error.is_some()).count(),
    }
}

/// The `q` quantile of sorted values (nearest rank); 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(symbology: Symbology, expected: &str) -> Labelled {
        Labelled {
            file: "x.png".into(),
            symbology,
            expected: expected.into(),
        }
    }

    fn symbol(symbology: Symbology, text: &str) -> Symbol {
        Symbol {
            symbology,
            text: text.into(),
        }
    }

    #[test]
    fn scoring_compares_exactly_and_products_as_gtin13() {
        let upc = entry(Symbology::UpcA, "023942431015");
        assert_eq!(
            score(&upc, &[symbol(Symbology::Ean13, "0023942431015")]),
            (true, false)
        );
        assert_eq!(
            score(&upc, &[symbol(Symbology::Ean13, "9074932437075")]),
            (false, true)
        );
        assert_eq!(score(&upc, &[]), (false, false));
        let qr = entry(Symbology::Qr, "line one\r\nline two ");
        assert_eq!(
            score(&qr, &[symbol(Symbology::Qr, "line one\r\nline two")]),
            (false, true),
            "a trailing space matters"
        );
        assert_eq!(
            score(
                &qr,
                &[
                    symbol(Symbology::Ean13, "4006381333931"),
                    symbol(Symbology::Qr, "line one\r\nline two ")
                ]
            ),
            (true, false),
            "a second code beside the right one is no misread"
        );
    }

    #[test]
    fn manifests_keep_embedded_newlines_and_name_bad_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manifest.csv");
        std::fs::write(
            &path,
            "file,format,expected_text,notes\r\na.png,qr_code,\"one, \"\"two\"\"\r\nthree\",\r\nb.png,ean_13,4006381333931,x\r\n",
        )
        .expect("write");
        let (base, entries) = read_manifest(&path).expect("manifest");
        assert_eq!(base, dir.path());
        assert_eq!(entries[0].expected, "one, \"two\"\r\nthree");
        assert_eq!(entries[1].symbology, Symbology::Ean13);
        std::fs::write(&path, "file,format,expected_text\nc.png,pdf417,x\n").expect("write");
        let err = read_manifest(&path).expect_err("unknown format");
        assert!(
            err.to_string().contains("row 2") && err.to_string().contains("pdf417"),
            "{err}"
        );
        std::fs::write(&path, "file,expected_text\nc.png,x\n").expect("write");
        assert!(matches!(
            read_manifest(&path),
            Err(ManifestError::MissingColumn {
                column: "format",
                ..
            })
        ));
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 50.0);
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
