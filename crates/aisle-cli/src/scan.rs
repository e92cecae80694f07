//! `aisle scan FILE...` (CSV of what each picture holds) and
//! `aisle eval scan --manifest` (decode rates on labelled photographs).

use std::path::{Path, PathBuf};
use std::time::Instant;

use aisle_core::identify::decode::{self, DecodeOptions};
use aisle_core::identify::{frame, scan_eval};
use anyhow::{Result, bail};
use clap::Args;

use crate::output::Out;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Pictures to read (PNG, JPEG, WebP, GIF (every frame), BMP).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The plain read only, without the retry ladder.
    #[arg(long)]
    no_retries: bool,
}

/// Writes `file,symbology,decoded_text,ms`: one row per symbol read, one row
/// with empty symbology and text for a picture where nothing was read. A
/// file that cannot be read is named on stderr, the others are still
/// scanned, and the exit status says something failed.
pub fn scan(args: &ScanArgs) -> Result<()> {
    let options = if args.no_retries {
        DecodeOptions::PLAIN
    } else {
        DecodeOptions::STILL
    };
    let stdout = std::io::stdout();
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(stdout.lock());
    writer.write_record(["file", "symbology", "decoded_text", "ms"])?;
    let mut failed = Vec::new();
    for path in &args.files {
        let shown = path.display().to_string();
        let frames = match frame::read_frames(path) {
            Ok(frames) => frames,
            Err(err) => {
                tracing::error!(file = %shown, error = %err, "cannot read the picture");
                failed.push(format!("{err}"));
                continue;
            }
        };
        let started = Instant::now();
        let (symbols, _, errors) = decode::decode_frames(&frames, &options);
        for err in errors {
            tracing::error!(file = %shown, error = %err, "decoder failed");
            failed.push(format!("{shown}: {err}"));
        }
        let ms = format!("{:.3}", started.elapsed().as_secs_f64() * 1e3);
        if symbols.is_empty() {
            writer.write_record([shown.as_str(), "", "", &ms])?;
        }
        for symbol in &symbols {
            writer.write_record([
                shown.as_bytes(),
                symbol.symbology.name().as_bytes(),
                symbol.text.as_bytes(),
                ms.as_bytes(),
            ])?;
        }
        writer.flush()?;
    }
    writer.flush()?;
    if !failed.is_empty() {
        bail!(
            "{} of {} files could not be scanned:\n  {}",
            failed.len(),
            args.files.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct EvalScanArgs {
    /// The corpus's manifest.csv (file, format, expected_text, ...).
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// The plain read only, without the retry ladder (the baseline).
    #[arg(long)]
    no_retries: bool,
    /// Also list every image not decoded, and every misread.
    #[arg(long)]
    verbose: bool,
}

pub fn eval(args: &EvalScanArgs, out: &mut Out) -> Result<()> {
    let (dir, entries) = scan_eval::read_manifest(&args.manifest)?;
    let run = |options: &DecodeOptions| -> Vec<scan_eval::Outcome> {
        entries
            .iter()
            .map(|entry| scan_eval::run_one(&dir, entry, options))
            .collect()
    };
    // The baseline (the plain read alone) is measured in the same run; with
    // --no-retries it is the run itself.
    let plain = run(&DecodeOptions::PLAIN);
    let baseline = scan_eval::summarize(&plain);
    let (outcomes, label) = if args.no_retries {
        (plain, "plain read")
    } else {
        (run(&DecodeOptions::STILL), "with the retry ladder")
    };
    let summary = scan_eval::summarize(&outcomes);
    if out.is_json() {
        return out.json(&serde_json::json!({
            "manifest": args.manifest.display().to_string(),
            "decoder": label,
            "summary": summary,
            "baseline_plain_read": baseline,
        }));
    }
    print_summary(out, &args.manifest, label, &summary, &baseline)?;
    if args.verbose {
        for o in outcomes.iter().filter(|o| !o.decoded || o.misread) {
            let read: Vec<String> = o
                .symbols
                .iter()
                .map(|s| format!("{}:{:?}", s.symbology.name(), s.text))
                .collect();
            out.line(format_args!(
                "{} {} {} read [{}]{}",
                if o.misread { "MISREAD" } else { "missed " },
                o.entry.file,
                o.entry.symbology.name(),
                read.join(", "),
                o.error
                    .as_deref()
                    .map(|e| format!(" error: {e}"))
                    .unwrap_or_default()
            ))?;
        }
    }
    Ok(())
}

fn print_summary(
    out: &mut Out,
    manifest: &Path,
    label: &str,
    summary: &scan_eval::Summary,
    baseline: &scan_eval::Summary,
) -> Result<()> {
    out.line(format_args!(
        "{} images in {} ({label})",
        summary.all.images,
        manifest.display()
    ))?;
    out.line(format_args!(
        "{:<10} {:>6} {:>8} {:>7} {:>8} {:>10}",
        "symbology", "images", "decoded", "rate", "misread", "plain read"
    ))?;
    for (row, base) in summary
        .rows
        .iter()
        .chain([&summary.all])
        .zip(baseline.rows.iter().chain([&baseline.all]))
    {
        out.line(format_args!(
            "{:<10} {:>6} {:>8} {:>6.1}% {:>8} {:>9.1}%",
            row.symbology,
            row.images,
            row.decoded,
            row.rate * 100.0,
            row.misread,
            base.rate * 100.0
        ))?;
    }
    out.line(format_args!(
        "time per image: median {:.2} ms, p99 {:.1} ms (plain read: median {:.2} ms, p99 {:.1} ms); unreadable files: {}",
        summary.median_ms, summary.p99_ms, baseline.median_ms, baseline.p99_ms, summary.errors
    ))?;
    Ok(())
}
