//! `aisle-kiosk --bench-scans N`: scan to welcome, measured the way a
//! shopper meets it, and the process's memory; `--bench-first-frame`: the
//! attract screen's first frame, then exit (`cargo xtask bench kiosk` times
//! it from the process's spawn). See docs/BENCHMARKS.md.
//!
//! One sample of scan to welcome is: a scanned card number handed to the
//! kiosk (as the wedge or the camera hands a decoded code) -> the core
//! identifies the member, records the visit, ranks and issues their
//! coupons, builds Buy again and Discover -> the controller fills the
//! welcome screen's models -> every pixel of the welcome frame rendered by
//! the software renderer. The baseline, in the same run, is one full frame
//! of the attract screen (what any screen change costs at least).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use slint::{ComponentHandle, Model};

use crate::KioskState;
use crate::backend::{BackendConfig, Job};
use crate::brand::Brand;
use crate::headless::Headless;

/// Latencies, sorted.
#[derive(Debug, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Samples(samples)
    }

    /// The `q` quantile (nearest rank).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug)]
pub struct ScanBench {
    pub scan_to_welcome: Samples,
    /// The baseline: a full frame of the attract screen.
    pub attract_frame: Samples,
    /// Welcomes that showed at least one coupon.
    pub with_coupons: usize,
    pub members: usize,
    /// Peak and current resident memory (kB) at the end.
    pub peak_rss_kb: Option<u64>,
    pub rss_kb: Option<u64>,
}

/// Members' active card numbers, lowest member first.
fn cards(config: &BackendConfig) -> Result<Vec<String>> {
    let conn = aisle_core::replica::open_reader(&config.db)?;
    let mut statement = conn.prepare(
        "SELECT c.card_number FROM member_cards AS c JOIN members AS m USING (member_id)
         WHERE c.status = 'active' AND m.erased_at IS NULL ORDER BY c.member_id, c.card_number",
    )?;
    let cards = statement
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(cards)
}

pub fn scan_to_welcome(
    config: BackendConfig,
    brand: &Brand,
    lang: &str,
    scans: usize,
) -> Result<ScanBench> {
    let cards = cards(&config)?;
    anyhow::ensure!(!cards.is_empty(), "the replica has no member with a card");
    let mut kiosk = Headless::open(config, brand, lang)?;
    let mut welcome = Vec::with_capacity(scans);
    let mut attract = Vec::with_capacity(scans);
    let mut with_coupons = 0;
    for i in 0..scans {
        let started = Instant::now();
        kiosk.frame();
        attract.push(started.elapsed());

        let card = cards[i % cards.len()].clone();
        let started = Instant::now();
        (kiosk.submit)(Job::Scan(card.clone()));
        kiosk.frame();
        welcome.push(started.elapsed());
        let screen = kiosk.ui.global::<KioskState>().get_screen();
        anyhow::ensure!(
            screen == crate::Screen::Welcome,
            "card {card} led to the {screen:?} screen, not the welcome"
        );
        if kiosk
            .ui
            .global::<crate::WelcomeAdapter>()
            .get_coupons()
            .row_count()
            > 0
        {
            with_coupons += 1;
        }
        kiosk.done();
    }
    Ok(ScanBench {
        scan_to_welcome: Samples::new(welcome),
        attract_frame: Samples::new(attract),
        with_coupons,
        members: cards.len().min(scans),
        peak_rss_kb: crate::app::proc_status_kb("VmHWM"),
        rss_kb: crate::app::proc_status_kb("VmRSS"),
    })
}

/// Prints the report (text; the figures docs/BENCHMARKS.md records).
pub fn print(report: &ScanBench) -> Result<()> {
    use std::io::Write;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (s, b) = (&report.scan_to_welcome, &report.attract_frame);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "scan to welcome frame: {} scans of {} members ({} with coupons)",
        s.len(),
        report.members,
        report.with_coupons
    )?;
    writeln!(
        out,
        "  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(s.quantile(0.5)),
        ms(s.quantile(0.99)),
        ms(s.quantile(1.0))
    )?;
    writeln!(
        out,
        "baseline, one full attract frame: p50 {:.2} ms  p99 {:.2} ms",
        ms(b.quantile(0.5)),
        ms(b.quantile(0.99))
    )?;
    writeln!(
        out,
        "ratio p99 scan-to-welcome / attract frame: {:.2}",
        ms(s.quantile(0.99)) / ms(b.quantile(0.99)).max(1e-9)
    )?;
    let mb = |kb: Option<u64>| {
        kb.map_or_else(
            || "n/a".to_owned(),
            |kb| format!("{:.1} MB", kb as f64 / 1024.0),
        )
    };
    writeln!(
        out,
        "resident memory: peak {} (now {})",
        mb(report.peak_rss_kb),
        mb(report.rss_kb)
    )?;
    Ok(())
}

/// The first frame of the attract screen, then exit: what a cold start
/// costs up to the first picture (the caller times the whole process).
pub fn first_frame(config: BackendConfig, brand: &Brand, lang: &str) -> Result<()> {
    let mut kiosk = Headless::open(config, brand, lang)?;
    let pixels = kiosk.frame();
    // The frame is real: the brand's background is on it.
    let background = pixels.first().context("an empty frame")?;
    anyhow::ensure!(
        [background.r, background.g, background.b] != [0, 0, 0] || pixels.iter().any(|p| p.r > 0),
        "the first frame is blank"
    );
    Ok(())
}
