//! `aisle train` and `aisle recommend`: fit the model into the replica, and
//! print or export recommendations.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use aisle_core::recommend::artifact;
use aisle_core::recommend::model;
use aisle_core::recommend::serve::{self, Lists, Pick, Policy, Request, Served};
use aisle_core::time::{Day, Timestamp};
use anyhow::{Context, Result, bail};
use clap::Args;

use crate::output::{Out, money};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Fit on purchases strictly before this time [default: all purchases].
    #[arg(long, value_name = "YYYY-MM-DD[ HH:MM:SS]")]
    pub until: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// Both lists for this member (member id or household id).
    #[arg(long, conflicts_with_all = ["product", "households"])]
    pub member: Option<i64>,
    /// "Often bought together" for this product.
    #[arg(long, conflicts_with = "households")]
    pub product: Option<i64>,
    /// Batch export for evaluation: a CSV with a `household_id` column. Lists are
    /// the model's ranking under the rules that hold everywhere (consent, active
    /// products); stock, diversity and screen rules are the kiosk's.
    #[arg(long, value_name = "FILE", requires = "out")]
    pub households: Option<PathBuf>,
    /// With --households: where to write `household_id,rank,product_id`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// With --households: blended (the kiosk's single list), buy-again or discover.
    #[arg(long, default_value = "blended")]
    pub list: String,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// The store [default: the store the replica is provisioned for, else the demo's].
    #[arg(long)]
    pub store: Option<i64>,
    /// The time to recommend for [default: the model's as-of time].
    #[arg(long, value_name = "YYYY-MM-DD HH:MM:SS")]
    pub now: Option<Timestamp>,
    /// Apply the public-screen exclusions (as the kiosk does).
    #[arg(long)]
    pub public: bool,
}

pub fn train(args: &TrainArgs, db: &Path, now_utc: Timestamp, out: &mut Out) -> Result<()> {
    let conn = aisle_core::replica::open_writer(db)?;
    let started = Instant::now();
    let artifact = artifact::fit_from(&conn, args.until.as_deref(), args.seed, now_utc)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let until = artifact.trained_until.clone();
    let id = artifact::store(&conn, &artifact)?;
    let size = artifact::newest_size(&conn)?.unwrap_or(0);
    out.line(format_args!(
        "fitted on the purchases before {until} in {fit_seconds:.1} s; artifact #{id}, {:.1} MB, stored in {}",
        size as f64 / 1e6,
        db.display()
    ))?;
    out.json(&serde_json::json!({ "artifact_id": id, "bytes": size, "trained_until": until, "fit_seconds": fit_seconds }))
}

/// Loads the newest usable model, saying which newer ones were refused.
pub fn load(conn: &rusqlite::Connection) -> Result<(Served, String)> {
    let loaded = artifact::load_newest(conn)?;
    for (id, error) in &loaded.refused {
        eprintln_warning(&format!(
            "model artifact #{id} refused ({error}); using #{}",
            loaded.artifact_id
        ));
    }
    Ok((
        Served::new(loaded.artifact.model),
        loaded.artifact.trained_until,
    ))
}

fn eprintln_warning(text: &str) {
    let _ = writeln!(std::io::stderr(), "warning: {text}");
}

fn member_id(conn: &rusqlite::Connection, id: i64) -> Result<Option<i64>> {
    Ok(aisle_core::members::find(
        conn,
        &aisle_core::members::MemberKey::Id(id),
    )?)
}

pub fn recommend(args: &RecommendArgs, db: &Path, out: &mut Out) -> Result<()> {
    let conn = aisle_core::replica::open_reader(db)?;
    let (served, trained_until) = load(&conn)?;
    let now = match args.now {
        Some(now) => now,
        None => Day::parse(&trained_until)?.start(),
    };
    let policy = Policy::default();
    if let Some(households) = &args.households {
        let list = model::List::parse(&args.list)
            .with_context(|| format!("--list {:?}: blended, buy-again or discover", args.list))?;
        let out_path = args
            .out
            .as_ref()
            .context("--out is required with --households")?;
        return export(&conn, &served, households, out_path, list, args, now, out);
    }
    if let Some(product_id) = args.product {
        let request = Request {
            member_id: None,
            store_id: aisle_core::runtime::choose_store(&conn, args.store)?,
            now,
            k: args.k,
            public_screen: args.public,
            shown: Vec::new(),
        };
        let picks = serve::bought_together(&conn, &served, product_id, &request, &policy)?;
        out.line(format_args!(
            "Often bought together with product {product_id}:"
        ))?;
        print_picks(out, &picks)?;
        return out.json(&picks);
    }
    let Some(id) = args.member else {
        bail!("say --member ID, --product ID or --households FILE")
    };
    let member = member_id(&conn, id)?;
    let request = Request {
        member_id: Some(member.unwrap_or(id)),
        store_id: aisle_core::runtime::choose_store(&conn, args.store)?,
        now,
        k: args.k,
        public_screen: args.public,
        shown: Vec::new(),
    };
    let started = Instant::now();
    let lists = serve::recommend(&conn, &served, &request, &policy)?;
    let micros = started.elapsed().as_micros();
    print_lists(out, &lists)?;
    out.line(format_args!(
        "\n(store {}, as of {}, {micros} us)",
        request.store_id, request.now
    ))?;
    out.json(&lists)
}

fn print_picks(out: &mut Out, picks: &[Pick]) -> Result<()> {
    for (rank, pick) in picks.iter().enumerate() {
        out.line(format_args!(
            "  {:>2}. {:<44} {:>8}  {:<18} {}",
            rank + 1,
            pick.name,
            pick.price_cents.map(money).unwrap_or_default(),
            pick.location.as_deref().unwrap_or(""),
            pick.reason
        ))?;
    }
    Ok(())
}

fn print_lists(out: &mut Out, lists: &Lists) -> Result<()> {
    if let Some(notice) = &lists.notice {
        out.line(format_args!("{notice}"))?;
    }
    if !lists.buy_again.is_empty() {
        out.line(format_args!("Buy again:"))?;
        print_picks(out, &lists.buy_again)?;
    }
    out.line(format_args!("Discover:"))?;
    print_picks(out, &lists.discover)
}

#[allow(clippy::too_many_arguments)]
fn export(
    conn: &rusqlite::Connection,
    served: &Served,
    households: &Path,
    out_path: &Path,
    list: model::List,
    args: &RecommendArgs,
    now: Timestamp,
    out: &mut Out,
) -> Result<()> {
    let mut reader = csv::Reader::from_path(households)
        .with_context(|| format!("reading {}", households.display()))?;
    let column = reader
        .headers()?
        .iter()
        .position(|h| h.trim() == "household_id")
        .with_context(|| format!("{}: no household_id column", households.display()))?;
    let mut writer = csv::Writer::from_path(out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
    writer.write_record(["household_id", "rank", "product_id"])?;
    let started = Instant::now();
    let mut n = 0usize;
    for (line, record) in reader.records().enumerate() {
        let record = record?;
        let text = record.get(column).unwrap_or_default().trim();
        let household: i64 = text.parse().with_context(|| {
            format!(
                "{} line {}: {text:?} is not a household id",
                households.display(),
                line + 2
            )
        })?;
        let member = member_id(conn, household)?.unwrap_or(household);
        let picks = serve::batch_list(conn, served, member, now, args.k, list)?;
        for (rank, pick) in picks.iter().take(args.k).enumerate() {
            writer.write_record([
                household.to_string(),
                (rank + 1).to_string(),
                pick.product_id.to_string(),
            ])?;
        }
        n += 1;
    }
    writer.flush()?;
    out.line(format_args!(
        "wrote {} lists of {} ({}) to {} in {:.1} s",
        n,
        args.k,
        list.name(),
        out_path.display(),
        started.elapsed().as_secs_f64()
    ))
}
