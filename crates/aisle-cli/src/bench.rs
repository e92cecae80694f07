//! `aisle bench`: whole-replica measurements reported beside a baseline
//! measured in the same run (see docs/BENCHMARKS.md). Never run by tests.

use std::path::Path;
use std::time::{Duration, Instant};

use aisle_core::members::{self, MemberKey};
use aisle_core::rng::SplitMix64;
use aisle_core::time::Day;
use anyhow::{Context, Result};
use clap::Subcommand;

use crate::output::Out;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Member look-up by card and FTS prefix search over random members of the replica.
    Lookup {
        #[arg(long, default_value_t = 10_000)]
        queries: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Both recommendation lists for random members, model loaded (run `aisle train` first).
    Recommend {
        #[arg(long, default_value_t = 10_000)]
        queries: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Decode time on 1280x720 frames made from a scan corpus (with and without a code).
    Decode {
        #[arg(long, value_name = "FILE")]
        manifest: std::path::PathBuf,
    },
    /// Decoded member code -> identified -> welcome screen data (writes demo keys and
    /// replay rows into the replica; model needed).
    Welcome {
        #[arg(long, default_value_t = 10_000)]
        queries: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// A member's ranked offers with --offers active offers (written in a
    /// transaction that is rolled back), beside a primary-key read.
    Offers {
        #[arg(long, default_value_t = 1_000)]
        offers: usize,
        #[arg(long, default_value_t = 10_000)]
        queries: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The till's coupon check and redemption on a copy of the replica, beside
    /// a primary-key read of the issue row.
    Redeem {
        #[arg(long, default_value_t = 10_000)]
        queries: usize,
    },
    /// Random and mutated inputs through the member-code, wedge and picture parsers
    /// and the decoder; fails on any panic.
    Fuzz {
        /// Inputs per parser (picture files get a thousandth of it, at least 100).
        #[arg(long, default_value_t = 1_000_000)]
        inputs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Photos to mutate.
        #[arg(long, value_name = "DIR", default_value = "assets/scans")]
        photos: std::path::PathBuf,
    },
}

/// Resident memory of this process, from /proc (Linux), in MB.
fn resident_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn bench_recommend(db: &Path, queries: usize, seed: u64, out: &mut Out) -> Result<()> {
    use aisle_core::recommend::{artifact, serve};
    let conn = aisle_core::replica::open_reader(db)?;
    let before = resident_mb().unwrap_or(0.0);
    let started = Instant::now();
    let loaded = artifact::load_newest(&conn)?;
    let served = serve::Served::new(loaded.artifact.model);
    let load = started.elapsed();
    let after = resident_mb().unwrap_or(0.0);
    let size = artifact::newest_size(&conn)?.unwrap_or(0);
    let now = Day::parse(&loaded.artifact.trained_until)?.start();
    let members: Vec<(i64, Option<i64>)> = conn
        .prepare("SELECT member_id, home_store_id FROM members WHERE erased_at IS NULL")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(!members.is_empty(), "the replica has no members");
    let mut rng = SplitMix64::new(seed);
    let policy = serve::Policy::default();
    let mut baseline = Vec::with_capacity(queries);
    let mut lists = Vec::with_capacity(queries);
    let mut stmt = conn.prepare("SELECT member_id FROM members WHERE member_id = ?1")?;
    let mut empty = 0usize;
    for _ in 0..queries {
        let (member_id, home) = members[rng.below(members.len() as u64) as usize];
        let started = Instant::now();
        let _: i64 = stmt.query_row([member_id], |row| row.get(0))?;
        baseline.push(started.elapsed());
        let request = serve::Request {
            member_id: Some(member_id),
            store_id: home.unwrap_or_default(),
            now,
            k: 10,
            public_screen: true,
            shown: Vec::new(),
        };
        let started = Instant::now();
        let answer = serve::recommend(&conn, &served, &request, &policy)?;
        lists.push(started.elapsed());
        empty += usize::from(answer.discover.is_empty() && answer.buy_again.is_empty());
    }
    let results = [
        summarize("baseline: member by primary key", baseline),
        summarize("both lists for one member", lists),
    ];
    out.line(format_args!(
        "model artifact {:.1} MB loaded in {:.0} ms; resident memory {:.0} MB -> {:.0} MB",
        size as f64 / 1e6,
        load.as_secs_f64() * 1e3,
        before,
        after
    ))?;
    print_summaries(out, &results)?;
    out.line(format_args!(
        "  lists p99 / baseline p99 = {:.1}x; {empty} of {queries} answers empty (nothing in stock to show)",
        results[1].p99_us / results[0].p99_us
    ))?;
    out.json(&results)
}

#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub name: String,
    pub n: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

pub fn print_summaries(out: &mut Out, results: &[Summary]) -> Result<()> {
    for r in results {
        out.line(format_args!(
            "  {:<40} p50 {:>8.1} us  p99 {:>8.1} us  max {:>9.1} us  mean {:>8.1} us",
            r.name, r.p50_us, r.p99_us, r.max_us, r.mean_us
        ))?;
    }
    Ok(())
}

pub fn summarize(name: &str, mut samples: Vec<Duration>) -> Summary {
    samples.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| micros(samples[((samples.len() as f64 - 1.0) * q).round() as usize]);
    Summary {
        name: name.to_owned(),
        n: samples.len(),
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: micros(*samples.last().unwrap_or(&Duration::ZERO)),
        mean_us: samples.iter().map(|d| micros(*d)).sum::<f64>() / samples.len().max(1) as f64,
    }
}

pub fn run(command: &BenchCommand, db: &Path, out: &mut Out) -> Result<()> {
    let (queries, seed) = match command {
        BenchCommand::Lookup { queries, seed } => (queries, seed),
        BenchCommand::Recommend { queries, seed } => {
            return bench_recommend(db, *queries, *seed, out);
        }
        BenchCommand::Decode { manifest } => {
            return crate::bench_scan::decode_frames(manifest, out);
        }
        BenchCommand::Redeem { queries } => return crate::coupon::bench(db, *queries, out),
        BenchCommand::Welcome { queries, seed } => {
            return crate::bench_scan::welcome(db, *queries, *seed, out);
        }
        BenchCommand::Offers {
            offers,
            queries,
            seed,
        } => return crate::bench_offers::offers(db, *offers, *queries, *seed, out),
        BenchCommand::Fuzz {
            inputs,
            seed,
            photos,
        } => return crate::bench_scan::fuzz(*inputs, *seed, photos, out),
    };
    let conn = aisle_core::replica::open_reader(db)?;
    let ids: Vec<i64> = conn
        .prepare("SELECT member_id FROM members WHERE erased_at IS NULL")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(!ids.is_empty(), "the replica has no members");
    let mut rng = SplitMix64::new(*seed);
    let mut sample = Vec::with_capacity(*queries);
    for _ in 0..*queries {
        let member_id = ids[rng.below(ids.len() as u64) as usize];
        let profile = members::profile(&conn, member_id)?;
        sample.push(profile);
    }

    let mut baseline = Vec::with_capacity(*queries);
    let mut by_card = Vec::with_capacity(*queries);
    let mut search = Vec::with_capacity(*queries);
    let mut stmt = conn.prepare("SELECT member_id FROM members WHERE member_id = ?1")?;
    for (idx, profile) in sample.iter().enumerate() {
        let started = Instant::now();
        let found: i64 = stmt.query_row([profile.member_id], |row| row.get(0))?;
        baseline.push(started.elapsed());
        anyhow::ensure!(found == profile.member_id);

        let card = &profile
            .cards
            .first()
            .context("member without a card")?
            .card_number;
        let started = Instant::now();
        let key = MemberKey::parse(card)?;
        let found = members::find(&conn, &key)?;
        by_card.push(started.elapsed());
        anyhow::ensure!(
            found == Some(profile.member_id),
            "card {card} did not find member {}",
            profile.member_id
        );

        // What an associate types: a few letters of a name, the end of a phone, the start of an
        // e-mail, or the first digits of a card.
        let text = match idx % 4 {
            0 => {
                let given = profile.given_name.clone().unwrap_or_default();
                let family = profile.family_name.clone().unwrap_or_default();
                format!("{} {}", prefix(&given, 3), prefix(&family, 2))
            }
            1 => profile
                .phone
                .clone()
                .unwrap_or_default()
                .chars()
                .rev()
                .take(4)
                .collect::<String>()
                .chars()
                .rev()
                .collect(),
            2 => prefix(profile.email.as_deref().unwrap_or_default(), 6),
            _ => prefix(card, 8),
        };
        let started = Instant::now();
        let hits = members::search(&conn, &text, 20)?;
        search.push(started.elapsed());
        anyhow::ensure!(!hits.is_empty(), "search {text:?} found nothing");
    }
    let results = [
        summarize("baseline: member by primary key", baseline),
        summarize("member by card (validate + look-up)", by_card),
        summarize("FTS prefix search, 20 results", search),
    ];
    out.line(format_args!(
        "{} queries over {} members of {}",
        queries,
        ids.len(),
        db.display()
    ))?;
    print_summaries(out, &results)?;
    out.line(format_args!(
        "  card p99 / baseline p99 = {:.1}x; search p99 / baseline p99 = {:.1}x",
        results[1].p99_us / results[0].p99_us,
        results[2].p99_us / results[0].p99_us
    ))?;
    out.json(&results)
}

fn prefix(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}
