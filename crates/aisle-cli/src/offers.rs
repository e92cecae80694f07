//! `aisle offers train|rank|score` and `aisle eval offers`: the offer model
//! fitted and stored, a member's ranked offers, a campaign's batch scores,
//! and the evaluation on real campaigns.

use std::io::Write;
use std::path::{Path, PathBuf};

use aisle_core::offers::engine::{self, DecideRequest, Exploration, OfferBook};
use aisle_core::offers::eval::{self, METHODS};
use aisle_core::offers::{features, model, rules::Channel};
use aisle_core::time::Timestamp;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rusqlite::{Connection, OptionalExtension};

use crate::output::Out;

#[derive(Debug, Subcommand)]
pub enum OffersCommand {
    /// Fit the P(redeem) model on the replica's campaigns and store it there.
    Train {
        /// Learn from campaigns that start before this day [default: the day after the last purchase].
        #[arg(long, value_name = "YYYY-MM-DD")]
        until: Option<String>,
    },
    /// A member's ranked offers at a store, with expected values and reasons.
    Rank(RankArgs),
    /// Write `household_id,score` for every member a campaign targets.
    Score {
        #[arg(long)]
        campaign: i64,
        #[arg(long, value_name = "FILE.csv")]
        out: PathBuf,
        /// Signals from data before this day [default: the campaign's start].
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RankArgs {
    #[arg(long)]
    member: i64,
    /// The store [default: the store the replica is provisioned for, else the demo's].
    #[arg(long)]
    store: Option<i64>,
    #[arg(long, default_value = "kiosk", value_parser = ["kiosk", "associate"])]
    channel: String,
    /// The time to rank at, `YYYY-MM-DD HH:MM:SS` [default: now, UTC].
    #[arg(long)]
    now: Option<Timestamp>,
    #[arg(long, default_value_t = 5)]
    limit: usize,
    /// Share of offers ranked by a Thompson draw instead of the estimate.
    #[arg(long, default_value_t = 0.0)]
    explore: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also list the offers left out and the rule that refused each.
    #[arg(long)]
    why: bool,
}

impl RankArgs {
    /// Defaults for one member at a time.
    pub fn for_member(member: i64, now: Timestamp) -> Self {
        RankArgs {
            member,
            store: None,
            channel: "kiosk".into(),
            now: Some(now),
            limit: 3,
            explore: 0.0,
            seed: 0,
            why: false,
        }
    }
}

pub fn run(command: &OffersCommand, db: &Path, out: &mut Out) -> Result<()> {
    match command {
        OffersCommand::Train { until } => {
            let conn = aisle_core::replica::open_writer(db)?;
            let until = match until {
                Some(day) => day.clone(),
                None => day_after_data(&conn)?,
            };
            let fitted = model::fit_from(&conn, &until)?;
            let id = model::store(&conn, &fitted, crate::output::now_utc())?;
            out.line(format_args!(
                "offer model #{id}: {} targets of {} campaigns before {until}, {} redeemed",
                fitted.examples,
                fitted.campaigns.len(),
                fitted.positives
            ))?;
            for (name, weight) in fitted.features.iter().zip(&fitted.weights) {
                out.line(format_args!("  {name:<16} {weight:+.3}"))?;
            }
            out.json(&fitted)
        }
        OffersCommand::Rank(args) => rank(args, db, out),
        OffersCommand::Score {
            campaign,
            out: file,
            as_of,
        } => score(db, *campaign, file, as_of.as_deref(), out),
    }
}

/// The day after the last purchase: a model trained until then saw everything.
fn day_after_data(conn: &Connection) -> Result<String> {
    model::day_after_data(conn)?.context("the replica has no purchases to learn from")
}

fn rank(args: &RankArgs, db: &Path, out: &mut Out) -> Result<()> {
    let conn = crate::open_reader(db)?;
    let now = args.now.unwrap_or_else(crate::output::now_utc);
    let today = now.day();
    let loaded = model::load_newest(&conn)?
        .context("the replica holds no offer model: run `aisle offers train` first")?;
    let store = aisle_core::runtime::choose_store(&conn, args.store)?;
    let book = OfferBook::load(&conn, store, today)?;
    let request = DecideRequest {
        store_id: store,
        channel: Channel::parse(&args.channel).context("channel")?,
        today,
        limit: args.limit,
        include_negative: false,
        exploration: Exploration {
            share: args.explore,
            seed: args.seed,
            ..Exploration::default()
        },
    };
    let decision = engine::offers_for(&conn, &book, &loaded.model, args.member, now, &request)?
        .with_context(|| format!("member {} is not in this replica", args.member))?;
    out.line(format_args!(
        "{} active offers at store {store} on {}; {} eligible for member {}",
        book.offers.len(),
        request.today,
        decision.ranked.len(),
        args.member
    ))?;
    for (i, r) in decision.ranked.iter().enumerate() {
        out.line(format_args!(
            "{:>2}. coupon {:<6} campaign {:<4} P(redeem) {:.3}  EV {:>8.1}c  {}",
            i + 1,
            r.coupon_id,
            r.campaign_id,
            r.p_redeem,
            r.expected_value_cents,
            r.reason_text
        ))?;
    }
    if args.why {
        let mut by_reason: std::collections::BTreeMap<&str, (&str, Vec<i64>)> = Default::default();
        for (coupon, why) in &decision.refused {
            by_reason
                .entry(why.code())
                .or_insert((why.message(), Vec::new()))
                .1
                .push(*coupon);
        }
        for (code, (message, coupons)) in by_reason {
            let shown: Vec<String> = coupons.iter().take(8).map(|c| c.to_string()).collect();
            out.line(format_args!(
                "    {} not offered: {message} ({code}): coupons {}{}",
                coupons.len(),
                shown.join(", "),
                if coupons.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ))?;
        }
        if !decision.negative.is_empty() {
            out.line(format_args!(
                "    {} not offered: expected value below zero (negative_value)",
                decision.negative.len()
            ))?;
        }
    }
    out.json(&decision)
}

fn score(db: &Path, campaign: i64, file: &Path, as_of: Option<&str>, out: &mut Out) -> Result<()> {
    let conn = crate::open_reader(db)?;
    let (starts_on, kind): (String, Option<String>) = conn
        .query_row(
            "SELECT starts_on, campaign_type FROM campaigns WHERE campaign_id = ?1",
            [campaign],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?
        .with_context(|| format!("campaign {campaign} is not in this replica"))?;
    let loaded = model::load_newest(&conn)?
        .context("the replica holds no offer model: run `aisle offers train` first")?;
    let as_of = as_of.unwrap_or(&starts_on);
    let rows = features::for_campaign_targets(&conn, campaign, as_of)?;
    if rows.is_empty() {
        bail!("campaign {campaign} targets no member in this replica");
    }
    let mut external = conn.prepare(
        "SELECT external_id FROM member_external_ids WHERE member_id = ?1 AND source = 'completejourney'",
    )?;
    let partial = file.with_extension("csv.partial");
    let mut writer = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?,
    );
    writeln!(writer, "household_id,score")?;
    for (member, signals) in &rows {
        let id: Option<String> = external.query_row([member], |row| row.get(0)).optional()?;
        let p = loaded.model.predict(signals, kind.as_deref());
        writeln!(
            writer,
            "{},{p:.6}",
            id.unwrap_or_else(|| member.to_string())
        )?;
    }
    writer
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    std::fs::rename(&partial, file).with_context(|| format!("writing {}", file.display()))?;
    out.line(format_args!(
        "{} households of campaign {campaign} scored with offer model #{} (signals before {as_of}) -> {}",
        rows.len(),
        loaded.model_id,
        file.display()
    ))
}

pub fn eval(data: Option<&Path>, train_until: &str, db: &Path, out: &mut Out) -> Result<()> {
    if aisle_core::dates::seconds_of(&format!("{train_until} 00:00:00")).is_none() {
        bail!("--train-until {train_until:?} is not a day YYYY-MM-DD");
    }
    let scratch = crate::eval::tempfile_dir()?;
    let path = crate::eval::replica_for(data, db, &scratch, out)?;
    let conn = crate::open_reader(&path)?;
    let started = std::time::Instant::now();
    let report = eval::evaluate(&conn, train_until)?;
    let fitted = &report.model;
    out.line(format_args!(
        "model fitted on {} targets of {} campaigns before {train_until} ({} redeemed); data until {}; {:.1} s",
        fitted.examples,
        fitted.campaigns.len(),
        fitted.positives,
        report.data_until,
        started.elapsed().as_secs_f64()
    ))?;
    if report.campaigns.is_empty() {
        bail!(
            "no campaign with targets starts between {train_until} and {}",
            report.data_until
        );
    }
    out.line(format_args!(
        "\n{:<9} {:<7} {:<10} {:>7} {:>5}  {}",
        "campaign",
        "type",
        "starts",
        "targets",
        "red.",
        METHODS
            .iter()
            .map(|m| format!("{:>13}", short(m)))
            .collect::<String>()
    ))?;
    let cell = |f: Option<&eval::Figures>| match f {
        Some(f) => format!("{:>7.3} {:>5.2}", f.auc, f.lift_top10),
        None => format!("{:>13}", "-"),
    };
    for c in &report.campaigns {
        out.line(format_args!(
            "{:<9} {:<7} {:<10} {:>7} {:>5}  {}",
            c.campaign_id,
            c.campaign_type.as_deref().unwrap_or("-"),
            c.starts_on,
            c.targets,
            c.redeemers,
            c.figures
                .iter()
                .map(|f| cell(f.as_ref()))
                .collect::<String>()
        ))?;
    }
    out.line(format_args!(
        "\n{:<40} {:>8} {:>10} {:>9}",
        "overall", "AUC", "prec@10%", "lift@10%"
    ))?;
    for (name, f) in METHODS.iter().zip(&report.overall) {
        out.line(format_args!(
            "{name:<40} {:>8.4} {:>10.4} {:>9.3}",
            f.auc, f.precision_top10, f.lift_top10
        ))?;
    }
    std::fs::remove_dir_all(&scratch).ok();
    out.json(&report)
}

fn short(method: &str) -> &str {
    match method {
        "model" => "model",
        "baseline: random" => "random",
        "baseline: redeemed a coupon before" => "redeemed",
        _ => "spend",
    }
}
