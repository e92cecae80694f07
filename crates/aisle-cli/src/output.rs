//! How the CLI talks to people (text on stdout) and scripts (`--json`).

use std::fmt::Arguments;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use aisle_core::import::{ImportReport, Progress};
use aisle_core::members::{Basket, Profile, SearchHit};
use aisle_core::stats::Stats;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

/// Standard output in text or JSON mode: text lines are dropped in JSON mode and vice versa.
#[derive(Debug)]
pub struct Out {
    json: bool,
    stdout: std::io::Stdout,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            stdout: std::io::stdout(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn line(&mut self, args: Arguments<'_>) -> Result<()> {
        if !self.json {
            writeln!(self.stdout.lock(), "{args}")?;
        }
        Ok(())
    }

    pub fn json<T: serde::Serialize>(&mut self, value: &T) -> Result<()> {
        if self.json {
            let mut lock = self.stdout.lock();
            serde_json::to_writer_pretty(&mut lock, value)?;
            writeln!(lock)?;
        }
        Ok(())
    }
}

/// Now, as Unix seconds (the runtime's wall clock).
pub fn now_secs() -> u64 {
    u64::try_from(aisle_core::runtime::Clock::wall().now_secs()).unwrap_or(0)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc(secs: u64) -> String {
    aisle_core::dates::timestamp_string(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Now (UTC; the runtime's wall clock).
pub fn now_utc() -> aisle_core::time::Timestamp {
    aisle_core::runtime::Clock::wall().now()
}

pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}${}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// A progress bar on a terminal; silent otherwise.
#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new(visible: bool) -> Self {
        Self {
            bar: visible.then(ProgressBar::hidden),
        }
    }

    pub fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn start_file(&mut self, file: &str, total_bytes: Option<u64>) {
        if let Some(old) = &self.bar {
            old.finish_and_clear();
            let bar = ProgressBar::new(total_bytes.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template("{msg:30} [{bar:40}] {bytes}/{total_bytes} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(file.to_owned());
            self.bar = Some(bar);
        }
    }

    fn advance(&mut self, bytes_read: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes_read);
        }
    }

    fn finish_file(&mut self, file: &str, records: u64) {
        if let Some(bar) = &self.bar {
            bar.println(format!("{file:<30} {records:>10} records"));
        }
    }
}

pub fn import_report(out: &mut Out, report: &ImportReport, elapsed: Duration) -> Result<()> {
    let records: u64 = report.records.values().sum();
    out.line(format_args!(
        "imported {records} records in {:.2} s: {} rows written, {} unchanged, {} rejected",
        elapsed.as_secs_f64(),
        report.written(),
        report.tables.values().map(|c| c.unchanged).sum::<u64>(),
        report.rejects.len()
    ))?;
    for (table, counts) in &report.tables {
        out.line(format_args!(
            "  {table:<22} {:>10} written {:>10} unchanged",
            counts.written, counts.unchanged
        ))?;
    }
    Ok(())
}

pub fn profile(out: &mut Out, profile: &Profile, baskets: &[Basket]) -> Result<()> {
    if let Some(erased_at) = &profile.erased_at {
        return out.line(format_args!(
            "member {}: personal data erased on {erased_at}",
            profile.member_id
        ));
    }
    let name = profile.display_name.as_deref().unwrap_or("(no name)");
    out.line(format_args!(
        "{name}  (member {}, {} tier)",
        profile.member_id, profile.tier
    ))?;
    for card in &profile.cards {
        out.line(format_args!(
            "  card      {} ({})",
            card.card_number, card.status
        ))?;
    }
    if let Some(phone) = &profile.phone {
        out.line(format_args!("  phone     {phone}"))?;
    }
    if let Some(email) = &profile.email {
        out.line(format_args!("  e-mail    {email}"))?;
    }
    if let (Some(id), Some(store)) = (profile.home_store_id, &profile.home_store_name) {
        out.line(format_args!("  home      {store} (#{id})"))?;
    }
    let consent = |granted: bool| if granted { "yes" } else { "no" };
    out.line(format_args!(
        "  consent   personalization: {}, marketing: {}",
        consent(profile.personalization.granted),
        consent(profile.marketing.granted)
    ))?;
    if let Some(enrolled) = &profile.enrolled_on {
        out.line(format_args!("  member since {enrolled}"))?;
    }
    for (source, id) in &profile.external_ids {
        out.line(format_args!("  {source} id: {id}"))?;
    }
    if !profile.demographics.is_empty() {
        let text: Vec<String> = profile
            .demographics
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.line(format_args!("  household {}", text.join(", ")))?;
    }
    for preference in &profile.preferences {
        out.line(format_args!(
            "  prefers   {}: {}",
            preference.kind, preference.value
        ))?;
    }
    for note in &profile.notes {
        out.line(format_args!(
            "  note      {} ({}, {})",
            note.body, note.author, note.created_at
        ))?;
    }
    for basket in baskets {
        out.line(format_args!(
            "\n  basket {} at {}, {}: {} items, {}",
            basket.basket_id,
            basket.store_name,
            basket.purchased_at,
            basket.lines.len(),
            money(basket.total_cents)
        ))?;
        for line in &basket.lines {
            out.line(format_args!(
                "    {:>3} x {:<48} {:>9}",
                line.quantity,
                line.name,
                money(line.sales_cents)
            ))?;
        }
    }
    Ok(())
}

pub fn hits(out: &mut Out, hits: &[SearchHit]) -> Result<()> {
    if hits.is_empty() {
        return out.line(format_args!("no members found"));
    }
    for hit in hits {
        out.line(format_args!(
            "{:>10}  {:<28} {:<14} {:<18} {}",
            hit.member_id,
            hit.display_name.as_deref().unwrap_or("-"),
            hit.card_number.as_deref().unwrap_or("-"),
            hit.phone.as_deref().unwrap_or("-"),
            hit.email.as_deref().unwrap_or("-"),
        ))?;
    }
    Ok(())
}

pub fn stats(out: &mut Out, db: &Path, bytes: u64, stats: &Stats) -> Result<()> {
    out.line(format_args!(
        "replica {} ({:.1} MB, schema version {})",
        db.display(),
        bytes as f64 / 1e6,
        stats.schema_version
    ))?;
    for (table, n) in &stats.tables {
        out.line(format_args!("  {table:<22} {n:>12}"))?;
    }
    if let (Some(first), Some(last)) = (&stats.first_purchase, &stats.last_purchase) {
        out.line(format_args!("  purchases from {first} to {last}"))?;
    }
    if stats.erased_members > 0 {
        out.line(format_args!("  {} members erased", stats.erased_members))?;
    }
    Ok(())
}
