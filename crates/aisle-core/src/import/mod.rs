//! Importers: bulk data into the replica, all-or-nothing and idempotent.
//!
//! Two layouts are read: [`completejourney`] (the 84.51° Complete Journey
//! loyalty data, gzip CSV) and [`layout`] (Aisle's documented generic CSV layout
//! for a retailer's own exports, see `docs/IMPORT.md`). Both stream their files
//! record by record through [`read_table`], check every value, and write through
//! prepared statements inside ONE transaction that the caller's connection
//! commits only when every file has been read: a bad row, a truncated file or a
//! crash leaves the replica exactly as it was.
//!
//! With [`ImportOptions::skip_invalid`] a bad row is set aside as a [`Reject`]
//! (file, line, column, reason, raw text) instead, and the import goes on.
//! Structural faults (unreadable or truncated files, a wrong header, an empty
//! file) always stop the import.
//!
//! Re-running an import with the same files writes nothing: rows are upserted
//! only when a value differs, and the report counts rows written and unchanged.

pub mod completejourney;
pub mod layout;
mod source;
pub mod values;
mod writer;

use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::io::Read;

pub use source::{DirSource, EmbeddedSource, Source};

/// Knobs shared by the importers.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Set bad rows aside instead of stopping.
    pub skip_invalid: bool,
    /// Seed for derived data (demo identities of Complete Journey households).
    pub seed: u64,
    /// The time written to `updated_at` columns (injected: imports are reproducible).
    pub now: Timestamp,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            skip_invalid: false,
            seed: crate::identity::DEFAULT_SEED,
            now: Timestamp::from_unix(0),
        }
    }
}

/// A row that was set aside under `--skip-invalid`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reject {
    pub file: String,
    pub line: u64,
    pub column: String,
    pub reason: String,
    pub raw: String,
}

/// Rows a table received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableCounts {
    /// Inserted or changed.
    pub written: u64,
    /// Already present with the same values.
    pub unchanged: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    /// Records read per file.
    pub records: BTreeMap<String, u64>,
    /// Rows per replica table.
    pub tables: BTreeMap<&'static str, TableCounts>,
    pub rejects: Vec<Reject>,
}

impl ImportReport {
    /// Rows written over all tables.
    pub fn written(&self) -> u64 {
        self.tables.values().map(|c| c.written).sum()
    }
}

/// Why an import stopped. Every variant names the file; row faults name the line and column.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: corrupt or truncated gzip data after line {line}: {reason}")]
    Compressed {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("{file}: the file is empty; expected a header row ({expected})")]
    Empty { file: String, expected: String },
    #[error("{file} line 1: wrong header: {reason}")]
    Header { file: String, reason: String },
    #[error("{file} line {line}, column {column}: {reason}")]
    Row {
        file: String,
        line: u64,
        column: String,
        reason: String,
    },
    #[error("{place}: no files to import (looked for {expected})")]
    NothingToImport { place: String, expected: String },
    #[error("missing required file {file} in {place}")]
    MissingFile { place: String, file: String },
    #[error("writing the replica: {0}")]
    Db(#[from] rusqlite::Error),
}

impl ImportError {
    /// A stable code for scripts and UIs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Compressed { .. } => "compressed",
            Self::Empty { .. } => "empty_file",
            Self::Header { .. } => "header",
            Self::Row { .. } => "row",
            Self::NothingToImport { .. } => "nothing_to_import",
            Self::MissingFile { .. } => "missing_file",
            Self::Db(_) => "db",
        }
    }
}

/// Runs `import` in one transaction on the replica's writer connection and
/// commits only if it succeeds.
///
/// Foreign-key enforcement is switched off for the transaction (SQLite allows
/// that only outside one) because the importers check every reference
/// themselves, with a precise error, before writing; the per-row parent
/// look-ups SQLite would repeat cost a third of the import time. It is
/// switched back on afterwards whatever happens, and tests assert
/// `PRAGMA foreign_key_check` stays clean after imports.
pub fn in_transaction<T, E>(
    conn: &mut rusqlite::Connection,
    import: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<rusqlite::Error>,
{
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = (|| -> Result<T, E> {
        let tx = conn.transaction()?;
        let value = import(&tx)?;
        tx.commit()?;
        Ok(value)
    })();
    let restored = conn.pragma_update(None, "foreign_keys", true);
    let value = result?;
    restored?;
    Ok(value)
}

/// Receives progress while files are read (the CLI draws a bar; tests ignore it).
pub trait Progress {
    fn start_file(&mut self, file: &str, total_bytes: Option<u64>);
    /// Bytes of the (possibly compressed) file consumed so far.
    fn advance(&mut self, bytes_read: u64);
    fn finish_file(&mut self, file: &str, records: u64);
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start_file(&mut self, _file: &str, _total_bytes: Option<u64>) {}
    fn advance(&mut self, _bytes_read: u64) {}
    fn finish_file(&mut self, _file: &str, _records: u64) {}
}

/// The columns a file must have and may have.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
}

/// Where each known column sits in a file's header.
#[derive(Debug)]
pub struct Columns {
    index: BTreeMap<&'static str, usize>,
}

impl Columns {
    fn from_header(spec: &TableSpec, header: &csv::ByteRecord) -> Result<Self, String> {
        let names: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(idx, raw)| {
                let text = String::from_utf8_lossy(raw);
                // A UTF-8 byte-order mark on the first column is common in spreadsheet exports.
                let text = if idx == 0 {
                    text.trim_start_matches('\u{feff}')
                } else {
                    &text
                };
                text.trim().to_owned()
            })
            .collect();
        let mut index = BTreeMap::new();
        let mut unknown = Vec::new();
        for (idx, name) in names.iter().enumerate() {
            match spec
                .required
                .iter()
                .chain(spec.optional)
                .find(|known| **known == name)
            {
                Some(known) if index.contains_key(known) => {
                    return Err(format!("column {name:?} appears twice"));
                }
                Some(known) => {
                    index.insert(*known, idx);
                }
                None => unknown.push(name.clone()),
            }
        }
        let missing: Vec<&str> = spec
            .required
            .iter()
            .copied()
            .filter(|name| !index.contains_key(name))
            .collect();
        if missing.is_empty() && unknown.is_empty() {
            return Ok(Self { index });
        }
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing column(s) {}", missing.join(", ")));
        }
        if !unknown.is_empty() {
            parts.push(format!("unknown column(s) {}", unknown.join(", ")));
        }
        parts.push(format!(
            "expected {}",
            spec.required
                .iter()
                .chain(spec.optional)
                .copied()
                .collect::<Vec<_>>()
                .join(",")
        ));
        Err(parts.join("; "))
    }
}

/// One record being read, with typed accessors that report the column at fault.
#[derive(Debug)]
pub struct Row<'a> {
    columns: &'a Columns,
    record: &'a csv::ByteRecord,
}

/// A fault in one row: skippable under `--skip-invalid`, unless it is a database error.
#[derive(Debug)]
pub enum RowFault {
    Invalid { column: String, reason: String },
    Fatal(ImportError),
}

impl From<rusqlite::Error> for RowFault {
    fn from(error: rusqlite::Error) -> Self {
        Self::Fatal(ImportError::Db(error))
    }
}

/// Shorthand for an invalid value in `column`.
pub fn invalid(column: &str, reason: impl Into<String>) -> RowFault {
    RowFault::Invalid {
        column: column.to_owned(),
        reason: reason.into(),
    }
}

impl Row<'_> {
    /// The line the record starts on (the header is line 1).
    pub fn line(&self) -> u64 {
        self.record.position().map_or(0, |p| p.line())
    }

    /// The trimmed text of a column; `None` when absent from the file or empty.
    pub fn text(&self, column: &'static str) -> Result<Option<&str>, RowFault> {
        let Some(idx) = self.columns.index.get(column) else {
            return Ok(None);
        };
        let raw = self.record.get(*idx).unwrap_or_default();
        let text = std::str::from_utf8(raw).map_err(|_| invalid(column, "not valid UTF-8 text"))?;
        let text = text.trim();
        Ok((!text.is_empty()).then_some(text))
    }

    pub fn required(&self, column: &'static str) -> Result<&str, RowFault> {
        self.text(column)?
            .ok_or_else(|| invalid(column, "a value is required"))
    }

    /// A required value parsed by `parse`.
    pub fn parse<T>(
        &self,
        column: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, RowFault> {
        parse(self.required(column)?).map_err(|reason| invalid(column, reason))
    }

    /// An optional value parsed by `parse`.
    pub fn parse_opt<T>(
        &self,
        column: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, RowFault> {
        self.text(column)?
            .map(|text| parse(text).map_err(|reason| invalid(column, reason)))
            .transpose()
    }

    fn raw(&self) -> String {
        let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
        let line = writer
            .write_byte_record(self.record)
            .ok()
            .and_then(|()| writer.into_inner().ok())
            .unwrap_or_default();
        String::from_utf8_lossy(&line).trim_end().to_owned()
    }
}

/// Counts the bytes a reader has handed out, for progress.
struct CountingReader<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Records handed from the reading thread to the writing one, in file order.
enum Chunk<T> {
    /// Records and what `parse` made of each; the records' buffers go back to
    /// the reading thread for reuse (allocating on one thread and freeing on
    /// the other contended on the allocator's lock).
    Rows(Vec<csv::ByteRecord>, Vec<Result<T, RowFault>>),
    /// A record with the wrong number of fields, on `line`.
    Ragged { line: u64, reason: String },
    /// The stream broke after `line` (I/O, gzip).
    Broken { error: csv::Error, line: u64 },
}

const CHUNK_ROWS: usize = 2048;

/// Streams one file of `source` through `on_row`, record by record.
/// Same as [`read_table`] with all the work in the writing phase.
pub fn read_rows(
    source: &dyn Source,
    file: &str,
    spec: &TableSpec,
    options: &ImportOptions,
    progress: &mut dyn Progress,
    report: &mut ImportReport,
    mut on_row: impl FnMut(&Row<'_>) -> Result<(), RowFault>,
) -> Result<u64, ImportError> {
    read_table(
        source,
        file,
        spec,
        options,
        progress,
        report,
        |_| Ok(()),
        |row, ()| on_row(row),
    )
}

/// Streams one file of `source` in two phases over two threads: a reading
/// thread decompresses, splits records and runs `parse` (pure: text to typed
/// values, no replica access); the calling thread runs `write` on each parsed
/// record in file order. On a 2-core store server this halves import time.
///
/// Handles, for every importer alike: gzip detection by magic number, the
/// header against `spec`, ragged rows, non-UTF-8 text, progress, and the
/// `--skip-invalid` policy (rejects go to `report`). Returns the number of
/// records read, rejected ones included.
#[allow(clippy::too_many_arguments)]
pub fn read_table<T: Send>(
    source: &dyn Source,
    file: &str,
    spec: &TableSpec,
    options: &ImportOptions,
    progress: &mut dyn Progress,
    report: &mut ImportReport,
    parse: impl Fn(&Row<'_>) -> Result<T, RowFault> + Sync,
    mut write: impl FnMut(&Row<'_>, T) -> Result<(), RowFault>,
) -> Result<u64, ImportError> {
    let io_error = |source| ImportError::Io {
        file: file.to_owned(),
        source,
    };
    let raw = source.open(file).map_err(io_error)?;
    progress.start_file(file, source.size(file));
    let consumed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = CountingReader {
        inner: raw,
        count: consumed.clone(),
    };
    let mut buffered = std::io::BufReader::with_capacity(1 << 16, counted);
    let is_gzip = {
        use std::io::BufRead;
        let head = buffered.fill_buf().map_err(io_error)?;
        head.starts_with(&[0x1f, 0x8b])
    };
    let reader: Box<dyn Read + Send + '_> = if is_gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut csv_reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(1 << 16)
        .from_reader(reader);

    let stream_error = |error: csv::Error, line: u64| match error.into_kind() {
        csv::ErrorKind::Io(io) if is_gzip || io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImportError::Compressed {
                file: file.to_owned(),
                line,
                reason: io.to_string(),
            }
        }
        csv::ErrorKind::Io(io) => io_error(io),
        other => io_error(std::io::Error::other(format!("{other:?}"))),
    };
    let header = csv_reader
        .byte_headers()
        .map_err(|e| stream_error(e, 0))?
        .clone();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(ImportError::Empty {
            file: file.to_owned(),
            expected: spec.required.join(","),
        });
    }
    let columns = Columns::from_header(spec, &header).map_err(|reason| ImportError::Header {
        file: file.to_owned(),
        reason,
    })?;
    let started = std::time::Instant::now();

    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Chunk<T>>(4);
        let columns = &columns;
        let parse = &parse;
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<csv::ByteRecord>>();
        scope.spawn(move || {
            let mut records: Vec<csv::ByteRecord> = Vec::with_capacity(CHUNK_ROWS);
            let mut parsed: Vec<Result<T, RowFault>> = Vec::with_capacity(CHUNK_ROWS);
            let mut spare: Vec<csv::ByteRecord> = Vec::new();
            let mut last_line = 1u64;
            loop {
                if spare.is_empty() {
                    spare = recycled.try_recv().unwrap_or_default();
                }
                let mut record = spare.pop().unwrap_or_default();
                let outcome = csv_reader.read_byte_record(&mut record);
                let interruption = match outcome {
                    Ok(true) => {
                        last_line = record.position().map_or(last_line + 1, |p| p.line());
                        parsed.push(parse(&Row {
                            columns,
                            record: &record,
                        }));
                        records.push(record);
                        if records.len() < CHUNK_ROWS {
                            continue;
                        }
                        None
                    }
                    Ok(false) => break,
                    Err(error) => {
                        let line = error.position().map_or(last_line + 1, |p| p.line());
                        if let csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        } = error.kind()
                        {
                            last_line = line;
                            Some(Chunk::Ragged {
                                line,
                                reason: format!("{len} fields, the header has {expected_len}"),
                            })
                        } else {
                            Some(Chunk::Broken {
                                error,
                                line: last_line,
                            })
                        }
                    }
                };
                let full_records = std::mem::replace(&mut records, Vec::with_capacity(CHUNK_ROWS));
                let full_parsed = std::mem::replace(&mut parsed, Vec::with_capacity(CHUNK_ROWS));
                if !full_records.is_empty()
                    && sender.send(Chunk::Rows(full_records, full_parsed)).is_err()
                {
                    return;
                }
                if let Some(chunk) = interruption {
                    let broken = matches!(chunk, Chunk::Broken { .. });
                    if sender.send(chunk).is_err() || broken {
                        return;
                    }
                }
            }
            if !records.is_empty() {
                let _ = sender.send(Chunk::Rows(records, parsed));
            }
        });

        let mut n_records = 0u64;
        let mut reject =
            |line: u64, column: String, reason: String, raw: String| -> Result<(), ImportError> {
                if !options.skip_invalid {
                    return Err(ImportError::Row {
                        file: file.to_owned(),
                        line,
                        column,
                        reason,
                    });
                }
                tracing::debug!(file, line, column = %column, reason = %reason, "row rejected");
                report.rejects.push(Reject {
                    file: file.to_owned(),
                    line,
                    column,
                    reason,
                    raw,
                });
                Ok(())
            };
        for chunk in receiver {
            match chunk {
                Chunk::Rows(records, parsed) => {
                    for (record, parsed) in records.iter().zip(parsed) {
                        n_records += 1;
                        let row = Row { columns, record };
                        let fault = match parsed.and_then(|value| write(&row, value)) {
                            Ok(()) => continue,
                            Err(RowFault::Fatal(error)) => return Err(error),
                            Err(RowFault::Invalid { column, reason }) => (column, reason),
                        };
                        reject(row.line(), fault.0, fault.1, row.raw())?;
                    }
                    // The reading thread may have finished; then the buffers are simply dropped.
                    let _ = recycle.send(records);
                    progress.advance(consumed.load(std::sync::atomic::Ordering::Relaxed));
                }
                Chunk::Ragged { line, reason } => {
                    n_records += 1;
                    reject(line, "(row)".to_owned(), reason, String::new())?;
                }
                Chunk::Broken { error, line } => return Err(stream_error(error, line)),
            }
        }
        progress.advance(consumed.load(std::sync::atomic::Ordering::Relaxed));
        progress.finish_file(file, n_records);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(file, n_records, elapsed_ms, "file read");
        report.records.insert(file.to_owned(), n_records);
        Ok(n_records)
    })
}

/// Writes rejects as CSV (file, line, column, reason, raw).
pub fn write_rejects(rejects: &[Reject], out: impl std::io::Write) -> csv::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(["file", "line", "column", "reason", "raw"])?;
    for reject in rejects {
        writer.write_record([
            reject.file.as_str(),
            &reject.line.to_string(),
            &reject.column,
            &reject.reason,
            &reject.raw,
        ])?;
    }
    writer.flush()?;
    Ok(())
}
