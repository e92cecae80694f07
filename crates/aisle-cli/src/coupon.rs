//! `aisle coupon issue | redeem | check` and `aisle bench redeem`: coupon
//! instances (a QR code and a numeric code), judged through the replica's
//! ledger as a till would.

use std::path::{Path, PathBuf};
use std::time::Instant;

use aisle_core::offers::coupon::{Channel, Refusal};
use aisle_core::offers::ledger::{self, CouponError, IssueRequest, RedeemPolicy, RedeemRequest};
use aisle_core::offers::{issue, rules};
use aisle_core::replica;
use aisle_core::time::Timestamp;
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use qrcode::{EcLevel, QrCode};

use crate::output::{Out, money, now_secs, utc};

#[derive(Debug, Subcommand)]
pub enum CouponCommand {
    /// Issue a coupon instance to a member: a signed QR code and a numeric code.
    Issue(IssueArgs),
    /// Redeem a scanned QR code or a keyed-in numeric code (once, ever).
    Redeem(RedeemArgs),
    /// Judge a code without redeeming it (what the till shows first).
    Check(CheckArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChannelArg {
    Kiosk,
    Associate,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The coupon (its id in the catalog).
    #[arg(long = "coupon", value_name = "ID")]
    coupon_id: i64,
    /// The member the instance is bound to.
    #[arg(long = "member", value_name = "ID")]
    member_id: i64,
    #[arg(long, value_enum, default_value_t = ChannelArg::Kiosk)]
    channel: ChannelArg,
    /// Write the QR code as a PNG here.
    #[arg(long, value_name = "FILE.png")]
    qr: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct RedeemArgs {
    /// The QR code's text (AISLEC1:...) or the 17-digit numeric code.
    code: String,
    /// The member identified at the till.
    #[arg(long = "member", value_name = "ID")]
    member_id: i64,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The QR code's text (AISLEC1:...) or the 17-digit numeric code.
    code: String,
    /// The member identified at the till (without one, the binding is not checked).
    #[arg(long = "member", value_name = "ID")]
    member_id: Option<i64>,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// This store [default: the store the replica is provisioned for].
    #[arg(long = "store", value_name = "ID")]
    store_id: Option<i64>,
    /// The till or device (the audit's actor).
    #[arg(long, default_value = "cli")]
    till: String,
    /// Act at this time (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX_SECS")]
    at: Option<u64>,
}

/// The offline risk budget (docs/OFFERS.md).
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Largest value (cents) of one coupon of another store accepted offline.
    #[arg(long, default_value_t = RedeemPolicy::default().floor_limit_cents)]
    floor_limit_cents: i64,
    /// Largest total value (cents) of such coupons per day.
    #[arg(long, default_value_t = RedeemPolicy::default().daily_budget_cents)]
    daily_budget_cents: i64,
}

impl PolicyArgs {
    fn policy(&self, require_member: bool) -> RedeemPolicy {
        RedeemPolicy {
            floor_limit_cents: self.floor_limit_cents,
            daily_budget_cents: self.daily_budget_cents,
            require_member,
            ..RedeemPolicy::default()
        }
    }
}

/// The store, by the runtime's rule (`--store` names one).
fn store_id(conn: &rusqlite::Connection, given: Option<i64>) -> Result<i64> {
    Ok(aisle_core::runtime::choose_store(conn, given)?)
}

/// The exit status of a refusal, one per class (0 success, 1 other errors, 2 usage).
pub fn exit_code(reason: Refusal) -> u8 {
    match reason {
        // Unreadable: scan or key it again.
        Refusal::Malformed | Refusal::Altered => 10,
        // Not genuine.
        Refusal::Forged | Refusal::UnknownIssuer | Refusal::RevokedKey => 11,
        // Not valid now.
        Refusal::Expired
        | Refusal::NotYetValid
        | Refusal::CampaignEnded
        | Refusal::CouponWithdrawn => 12,
        // Someone else's.
        Refusal::WrongMember | Refusal::MemberRequired => 13,
        Refusal::AlreadyRedeemed => 14,
        Refusal::UnknownSerial => 15,
        // Over the offline risk budget: needs HQ or a manager.
        Refusal::OverFloorLimit | Refusal::OverRiskBudget => 16,
    }
}

/// Exit status of an issue the offer's rules refuse.
pub const NOT_ELIGIBLE: u8 = 17;

/// An issue the offer's rules refuse, as the binary reports it.
#[derive(Debug)]
pub struct NotEligible(pub rules::Ineligible);

impl std::fmt::Display for NotEligible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not issued ({}): {}", self.0.code(), self.0.message())
    }
}

impl std::error::Error for NotEligible {}

/// A refusal as the binary reports it: its code, message and exit status.
#[derive(Debug)]
pub struct Refused(pub Refusal);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "coupon refused ({}): {}", self.0.code(), self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(err: CouponError) -> anyhow::Error {
    match err {
        CouponError::Refused(reason) => Refused(reason).into(),
        other => other.into(),
    }
}

pub fn run(command: &CouponCommand, db: &Path, out: &mut Out) -> Result<()> {
    match command {
        CouponCommand::Issue(args) => issue(args, db, out),
        CouponCommand::Redeem(args) => redeem(args, db, out),
        CouponCommand::Check(args) => check(args, db, out),
    }
}

fn issue(args: &IssueArgs, db: &Path, out: &mut Out) -> Result<()> {
    crate::open_reader(db)?;
    let conn = replica::open_writer(db)?;
    let store_id = store_id(&conn, args.common.store_id)?;
    let now = Timestamp::from_unix(i64::try_from(args.common.at.unwrap_or_else(now_secs))?);
    let issued = issue::issue_offer(
        &conn,
        &issue::OfferIssue {
            coupon_id: args.coupon_id,
            member_id: args.member_id,
            store_id,
            channel: match args.channel {
                ChannelArg::Kiosk => rules::Channel::Kiosk,
                ChannelArg::Associate => rules::Channel::Associate,
            },
            now,
        },
    )
    .map_err(|error| match error {
        issue::IssueError::Coupon(error) => refused(error),
        issue::IssueError::Ineligible { reason, .. } => NotEligible(reason).into(),
        other => other.into(),
    })?;
    if let Some(path) = &args.qr {
        let code = QrCode::with_error_correction_level(issued.token.as_bytes(), EcLevel::M)
            .context("encoding the QR code")?;
        let image = code
            .render::<image::Luma<u8>>()
            .module_dimensions(6, 6)
            .quiet_zone(true)
            .build();
        image
            .save_with_format(path, image::ImageFormat::Png)
            .with_context(|| format!("writing {}", path.display()))?;
        out.line(format_args!(
            "wrote {} ({} x {} px)",
            path.display(),
            image.width(),
            image.height()
        ))?;
    }
    // What it is, as the kiosk and the tablet say it.
    let (description, cents, percent): (Option<String>, Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT description, discount_cents, discount_percent FROM coupons WHERE coupon_id = ?1",
            [issued.coupon_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
    let worth = match (cents, percent) {
        (Some(cents), _) => format!("{}.{:02} off", cents / 100, cents % 100),
        (None, Some(percent)) => format!("{percent}% off"),
        (None, None) => "no value stated".to_owned(),
    };
    out.line(format_args!(
        "issued coupon {} ({}, {worth}) to member {} at store {store_id}, expires {} UTC\n  serial        {}\n  numeric code  {}\n  token         {}",
        issued.coupon_id,
        description.as_deref().unwrap_or("no description"),
        issued.member_id,
        utc(issued.expires_at),
        issued.serial,
        issued.numeric_code,
        issued.token
    ))?;
    out.json(&issued)
}

fn describe(accepted: &ledger::Accepted) -> String {
    let value = match (
        accepted.coupon.discount_cents,
        accepted.coupon.discount_percent,
    ) {
        (Some(cents), _) => format!("{} off", money(cents)),
        (None, Some(percent)) => format!("{percent}% off"),
        (None, None) => "no discount stated".into(),
    };
    format!(
        "coupon {} ({}): {value}; member {}, serial {}, issued at store {}{}",
        accepted.coupon.coupon_id,
        accepted
            .coupon
            .description
            .as_deref()
            .unwrap_or("no description"),
        accepted.member_id,
        accepted.serial,
        accepted.issuer_store_id,
        if accepted.offline_risk {
            " (another store's: counted in the offline budget)"
        } else {
            ""
        }
    )
}

fn redeem(args: &RedeemArgs, db: &Path, out: &mut Out) -> Result<()> {
    crate::open_reader(db)?;
    let conn = replica::open_writer(db)?;
    let store_id = store_id(&conn, args.common.store_id)?;
    let redeemed = ledger::redeem(
        &conn,
        &RedeemRequest {
            code: &args.code,
            member_id: Some(args.member_id),
            store_id,
            till_id: &args.common.till,
            now_secs: args.common.at.unwrap_or_else(now_secs),
        },
        &args.policy.policy(true),
    )
    .map_err(refused)?;
    out.line(format_args!("redeemed {}", describe(&redeemed.accepted)))?;
    out.json(&redeemed)
}

fn check(args: &CheckArgs, db: &Path, out: &mut Out) -> Result<()> {
    let conn = crate::open_reader(db)?;
    let store_id = store_id(&conn, args.common.store_id)?;
    let accepted = ledger::check(
        &conn,
        &RedeemRequest {
            code: &args.code,
            member_id: args.member_id,
            store_id,
            till_id: &args.common.till,
            now_secs: args.common.at.unwrap_or_else(now_secs),
        },
        &args.policy.policy(false),
    )
    .map_err(refused)?;
    out.line(format_args!("valid: {}", describe(&accepted)))?;
    out.json(&accepted)
}

/// `aisle bench redeem`: the redemption check (parse, signature, ledger,
/// campaign, budget) beside a bare primary-key read of the issue row, on a
/// copy of the replica with `issues` fresh instances.
pub fn bench(db: &Path, queries: usize, out: &mut Out) -> Result<()> {
    let work = tempfile::tempdir().context("temporary folder")?;
    let copy = work.path().join("bench.db");
    crate::open_reader(db)?;
    replica::copy(db, &copy).context("copying the replica")?;
    let conn = replica::open_writer(&copy)?;
    let now = now_secs();
    const BENCH_ID: i64 = 2_000_000_001;
    conn.execute_batch(&format!(
        "INSERT OR IGNORE INTO stores (store_id, name) VALUES (1, 'Bench store');
         INSERT INTO campaigns (campaign_id, name, starts_on, ends_on)
             VALUES ({BENCH_ID}, 'bench', '2000-01-01', '2999-12-31');
         INSERT INTO coupons (coupon_id, code, campaign_id, description, discount_cents)
             VALUES ({BENCH_ID}, 'BENCH', {BENCH_ID}, 'bench', 100);"
    ))?;
    let member_id: i64 = conn.query_row(
        "SELECT coalesce(min(member_id), 1) FROM members",
        [],
        |row| row.get(0),
    )?;
    let issued: Vec<ledger::IssuedCoupon> = (0..queries)
        .map(|_| {
            ledger::issue(
                &conn,
                &IssueRequest {
                    coupon_id: BENCH_ID,
                    member_id,
                    store_id: 1,
                    channel: Channel::Kiosk,
                    issued_at: now,
                    expires_at: now + 86_400,
                },
            )
        })
        .collect::<Result<_, _>>()?;
    let policy = RedeemPolicy::default();
    let mut baseline = Vec::with_capacity(queries);
    let mut check_token = Vec::with_capacity(queries);
    let mut check_numeric = Vec::with_capacity(queries);
    let mut redeem = Vec::with_capacity(queries);
    let mut stmt =
        conn.prepare("SELECT issue_id, coupon_id FROM coupon_issues WHERE serial = ?1")?;
    for coupon in &issued {
        let started = Instant::now();
        let row: (i64, i64) =
            stmt.query_row([&coupon.serial], |row| Ok((row.get(0)?, row.get(1)?)))?;
        baseline.push(started.elapsed());
        anyhow::ensure!(row.0 == coupon.issue_id);
        let request = |code| RedeemRequest {
            code,
            member_id: Some(member_id),
            store_id: 1,
            till_id: "bench",
            now_secs: now + 1,
        };
        let started = Instant::now();
        ledger::check(&conn, &request(&coupon.token), &policy)?;
        check_token.push(started.elapsed());
        let started = Instant::now();
        ledger::check(&conn, &request(&coupon.numeric_code), &policy)?;
        check_numeric.push(started.elapsed());
        let started = Instant::now();
        ledger::redeem(&conn, &request(&coupon.token), &policy)?;
        redeem.push(started.elapsed());
    }
    let results = [
        crate::bench::summarize("baseline: issue row by serial", baseline),
        crate::bench::summarize("check, QR token (signature + ledger)", check_token),
        crate::bench::summarize("check, numeric code (ledger)", check_numeric),
        crate::bench::summarize("redeem, QR token (one committed tx)", redeem),
    ];
    out.line(format_args!(
        "{queries} coupons on a copy of {}",
        db.display()
    ))?;
    crate::bench::print_summaries(out, &results)?;
    out.line(format_args!(
        "  check p99 / baseline p99 = {:.1}x; redeem p99 = {:.2} ms",
        results[1].p99_us / results[0].p99_us,
        results[3].p99_us / 1000.0
    ))?;
    out.json(&results)
}
