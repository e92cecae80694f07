//! `aisle eval recommend`: the next-basket evaluation of the recommendation
//! models against built-in baselines, on a replica or a Complete Journey folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use aisle_core::import::{self, DirSource, ImportOptions};
use aisle_core::recommend::eval::{self, Metrics, Weeks};
use aisle_core::recommend::history::History;
use aisle_core::recommend::{baseline, model};
use aisle_core::time::Day;
use anyhow::{Context, Result};
use clap::Subcommand;

use crate::output::Out;

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Fit on the training weeks, predict each member's first basket of the test weeks.
    Recommend {
        /// A Complete Journey folder to import into a temporary replica first
        /// (without it, the --db replica is used as it is).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        #[arg(long, default_value = "1-39")]
        train_weeks: String,
        #[arg(long, default_value = "40-44")]
        test_weeks: String,
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// TIFU-style decay per trip of the personal frequencies [default: the model's].
        #[arg(long)]
        decay: Option<f64>,
    },
    /// Decode labelled photographs: rate per symbology, misreads, time per image.
    Scan(crate::scan::EvalScanArgs),
    /// Rank each campaign's targets by predicted redemption (the model fitted
    /// on data before --train-until) and compare with three baselines.
    Offers {
        /// A Complete Journey folder to import into a temporary replica first
        /// (without it, the --db replica is used as it is).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Fit on campaigns that start before this day; evaluate those that start on or after it.
        #[arg(long, value_name = "YYYY-MM-DD")]
        train_until: String,
    },
}

pub fn run(command: &EvalCommand, db: &Path, out: &mut Out) -> Result<()> {
    let (data, train_weeks, test_weeks, k, decay) = match command {
        EvalCommand::Recommend {
            data,
            train_weeks,
            test_weeks,
            k,
            decay,
        } => (data, train_weeks, test_weeks, k, decay),
        EvalCommand::Scan(args) => return crate::scan::eval(args, out),
        EvalCommand::Offers { data, train_until } => {
            return crate::offers::eval(data.as_deref(), train_until, db, out);
        }
    };
    let train_weeks = Weeks::parse(train_weeks).map_err(anyhow::Error::msg)?;
    let test_weeks = Weeks::parse(test_weeks).map_err(anyhow::Error::msg)?;
    let scratch = tempfile_dir()?;
    let db = replica_for(data.as_deref(), db, &scratch, out)?;
    let conn = aisle_core::replica::open_reader(&db)?;
    let origin = eval::origin_day(&conn)?.context("the replica has no baskets")?;
    let (train_from, train_until) = train_weeks.bounds(origin);
    let (test_from, test_until) = test_weeks.bounds(origin);
    let started = Instant::now();
    let train = History::load(&conn, &train_from, &train_until)?;
    let cases = eval::cases(&conn, &train, &test_from, &test_until)?;
    out.line(format_args!(
        "train {train_from} .. {train_until} ({} members, {} items), test {test_from} .. {test_until}: {} members; loaded in {:.1} s",
        train.members.len(),
        train.n_items(),
        cases.len(),
        started.elapsed().as_secs_f64()
    ))?;

    let popular = baseline::popularity(&train);
    let as_ids = |items: Vec<u32>| {
        items
            .into_iter()
            .map(|i| train.products[i as usize])
            .collect::<Vec<i64>>()
    };
    let mut results: Vec<(String, Metrics)> = Vec::new();
    results.push((
        "baseline: global popularity".into(),
        eval::evaluate(&cases, &train, *k, |_| {
            as_ids(popular.iter().take(*k).copied().collect())
        }),
    ));
    results.push((
        "baseline: personal top-frequency".into(),
        eval::evaluate(&cases, &train, *k, |c| {
            as_ids(baseline::top_frequency(&train, c.member, &popular, *k))
        }),
    ));
    results.push((
        "baseline: popular items never bought".into(),
        eval::evaluate(&cases, &train, *k, |c| {
            as_ids(baseline::popular_unbought(&train, c.member, &popular, *k))
        }),
    ));
    let started = Instant::now();
    let kinds = model::kinds_of(&conn, &train.products)?;
    let defaults = model::FitOptions::default();
    let options = model::FitOptions {
        decay: decay.unwrap_or(defaults.decay),
        ..defaults
    };
    let as_of = aisle_core::recommend::history::day_of(&train_until).context("train window end")?;
    let fitted = model::fit(&train, &kinds, as_of, &options);
    out.line(format_args!(
        "fitted in {:.1} s",
        started.elapsed().as_secs_f64()
    ))?;
    // The serving path itself, as the batch export runs it (consent, active products),
    // with the model stored in the replica when it was fitted on the same window.
    let stored = aisle_core::recommend::artifact::load_newest(&conn)
        .ok()
        .filter(|loaded| loaded.artifact.trained_until == train_until);
    let served = aisle_core::recommend::serve::Served::new(match stored {
        Some(loaded) => {
            out.line(format_args!(
                "serving path uses stored artifact #{}",
                loaded.artifact_id
            ))?;
            loaded.artifact.model
        }
        None => fitted.clone(),
    });
    let now = Day::parse(&train_until)?.start();
    results.push((
        "aisle: blended, through the serving path".into(),
        eval::evaluate(&cases, &train, *k, |c| {
            aisle_core::recommend::serve::batch_list(
                &conn,
                &served,
                c.member_id,
                now,
                *k,
                model::List::Blended,
            )
            .map(|picks| picks.into_iter().map(|p| p.product_id).collect())
            .unwrap_or_default()
        }),
    ));
    for list in [
        model::List::Blended,
        model::List::BuyAgain,
        model::List::Discover,
    ] {
        results.push((
            format!("aisle: {}", list.name()),
            eval::evaluate(&cases, &train, *k, |c| {
                fitted.predict(
                    &train,
                    c.member,
                    model::home_store(&train.trips[c.member as usize]),
                    list,
                    *k,
                )
            }),
        ));
    }

    out.line(format_args!(
        "\n{:<40} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8}",
        format!("list (k = {k}, {} members)", cases.len()),
        "Recall",
        "NDCG",
        "HitRate",
        "Rec.rep",
        "Rec.expl",
        "Cover."
    ))?;
    for (name, m) in &results {
        out.line(format_args!(
            "{name:<40} {:>8.4} {:>8.4} {:>8.4} {:>10.4} {:>10.4} {:>8.4}",
            m.recall, m.ndcg, m.hit_rate, m.recall_repeat, m.recall_explore, m.coverage
        ))?;
    }
    std::fs::remove_dir_all(&scratch).ok();
    out.json(&results)
}

pub fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("aisle-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The replica to evaluate on: `data` imported into a fresh replica in
/// `scratch`, or `db` as it is.
pub fn replica_for(
    data: Option<&Path>,
    db: &Path,
    scratch: &Path,
    out: &mut Out,
) -> Result<PathBuf> {
    Ok(match data {
        Some(dir) => {
            let path = scratch.join("eval.db");
            let mut conn = aisle_core::replica::open_writer(&path)?;
            let options = ImportOptions {
                skip_invalid: true,
                ..ImportOptions::default()
            };
            let report = import::in_transaction(&mut conn, |tx| {
                import::completejourney::import(
                    tx,
                    &DirSource(dir.to_owned()),
                    &options,
                    &mut import::NoProgress,
                )
            })
            .with_context(|| format!("importing {}", dir.display()))?;
            out.line(format_args!(
                "imported {} ({} rows rejected)",
                dir.display(),
                report.rejects.len()
            ))?;
            path
        }
        None => db.to_owned(),
    })
}
