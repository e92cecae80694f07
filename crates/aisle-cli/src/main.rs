//! `aisle`: the store IT person's command line over aisle-core.
//!
//! Parsing, output (text or `--json`), progress bars and logging live here;
//! every decision and every byte written to a replica is aisle-core's.

mod bench;
mod bench_offers;
mod bench_scan;
mod coupon;
mod eval;
mod identify;
mod offers;
mod output;
mod recommend;
mod scan;
mod sync;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use aisle_core::import::{self, DirSource, ImportOptions, ImportReport};
use aisle_core::{demo, generate, members, replica, stats, subset};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Out;

/// Aisle: loyalty personalization for physical stores.
///
/// Each store keeps a replica of its loyalty data (members, catalog, prices,
/// purchases, offers) in one SQLite file; this command creates, fills and
/// inspects it.
#[derive(Debug, Parser)]
#[command(
    name = "aisle",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// The replica file [default: $AISLE_DB, else $XDG_DATA_HOME/aisle/replica.db,
    /// else ~/.local/share/aisle/replica.db].
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Log line format on stderr (filter with RUST_LOG, e.g. RUST_LOG=aisle_core=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum ReplicaCommand {
    /// Whether the replica is encrypted, and which key provider holds its keys.
    Status,
    /// Encrypt a plain replica in place (SQLCipher), its key with the key
    /// provider (AISLE_KEY_PROVIDER): all or nothing, a kill at any point
    /// leaves a whole replica. Stop the device's services first.
    Encrypt,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an empty replica (or bring an existing one's schema up to date).
    Init {
        /// The store's country calling code, for phone numbers typed without
        /// one (e.g. +44); kept in the replica [default: +1].
        #[arg(long, value_name = "+CC")]
        calling_code: Option<String>,
    },
    /// The replica file at rest: its encryption and where its keys live.
    #[command(subcommand)]
    Replica(ReplicaCommand),
    /// Load data into the replica: all-or-nothing, and re-running changes nothing.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Look members up.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Row counts and date range of the replica.
    Stats,
    /// Build a replica from the embedded demo data and show a member (no network, no ../shared).
    Demo {
        /// Where to build it [default: the data dir's demo/replica.db]; replaced if present.
        #[arg(long, value_name = "PATH")]
        replica: Option<PathBuf>,
    },
    /// Write a synthetic dataset in the generic CSV layout (docs/IMPORT.md).
    Gen(GenArgs),
    /// Cut the small demo extract out of a Complete Journey folder (writes assets/demo).
    ExtractDemo {
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 200)]
        households: usize,
        #[arg(long, default_value_t = aisle_core::identity::DEFAULT_SEED)]
        seed: u64,
    },
    /// Fit the recommendation model on the replica's purchases and store it there.
    Train(recommend::TrainArgs),
    /// Recommendations: a member's lists, a product's companions, or a batch export.
    Recommend(recommend::RecommendArgs),
    /// Offers: fit the P(redeem) model, rank a member's offers, score a campaign.
    #[command(subcommand)]
    Offers(offers::OffersCommand),
    /// Measure quality against built-in baselines (see docs/BENCHMARKS.md).
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Measure the replica (look-ups, search); see docs/BENCHMARKS.md.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Sync with HQ: bootstrap, upload the outbox, apply signed changes (see docs/PROTOCOL.md).
    Sync(sync::SyncArgs),
    /// Read the codes in pictures: CSV `file,symbology,decoded_text,ms` on stdout.
    Scan(scan::ScanArgs),
    /// Coupon instances: issue (QR + numeric code), redeem once, check.
    /// Refusals exit with a status per class: 10 unreadable, 11 not genuine,
    /// 12 not valid now, 13 another member's, 14 already redeemed,
    /// 15 unknown number, 16 over the offline risk budget.
    #[command(subcommand)]
    Coupon(coupon::CouponCommand),
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// The Complete Journey folder (seven gzip CSV files).
    Completejourney {
        dir: PathBuf,
        #[command(flatten)]
        common: ImportArgs,
        /// Seed of the derived member identities (names, cards, contacts).
        #[arg(long, default_value_t = aisle_core::identity::DEFAULT_SEED)]
        seed: u64,
    },
    /// A folder in Aisle's generic CSV layout (docs/IMPORT.md).
    Csv {
        dir: PathBuf,
        #[command(flatten)]
        common: ImportArgs,
    },
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// Set bad rows aside (counted, written to the rejects file) instead of stopping.
    #[arg(long)]
    skip_invalid: bool,
    /// Where rejected rows go with --skip-invalid [default: rejects.csv beside the replica].
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// A member's profile and recent baskets, by card number, member id or household id.
    Show {
        key: String,
        /// How many recent baskets to show.
        #[arg(long, default_value_t = 3)]
        baskets: usize,
    },
    /// Search by name, card number, phone or e-mail (prefixes match).
    Search {
        text: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Exact look-up for associates by phone (any format, read as E.164),
    /// e-mail, card number (check digit verified first) or name. Never
    /// offered on the public kiosk.
    Lookup(identify::LookupArgs),
    /// Show a member's current app code as a QR code (terminal or PNG): what
    /// their phone shows. Demo members only (their keys derive from a
    /// public secret); a real member's key never leaves their phone.
    Qr(identify::QrArgs),
    /// Judge a scan as the kiosk does: app code (key, signature, window,
    /// replay), card, product or coupon. Refusals are audited; exit status 1.
    Identify(identify::IdentifyArgs),
}

#[derive(Debug, Args)]
struct GenArgs {
    #[arg(long)]
    members: u64,
    #[arg(long)]
    products: u64,
    /// Purchase lines in total.
    #[arg(long)]
    purchases: u64,
    #[arg(long, default_value_t = 20)]
    stores: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The share of the catalog, beyond its 500 best sellers, a store
    /// carries, relative to the default (0 < SHARE <= 1).
    #[arg(long, default_value_t = 1.0, value_parser = assortment)]
    assortment: f64,
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn assortment(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
        _ => Err(format!(
            "an assortment is a share above 0 and at most 1, not {text:?}"
        )),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {error:#}");
            if let Some(refused) = error.downcast_ref::<coupon::Refused>() {
                std::process::ExitCode::from(coupon::exit_code(refused.0))
            } else if error.is::<coupon::NotEligible>() {
                std::process::ExitCode::from(coupon::NOT_ELIGIBLE)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The default data dir.
fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("aisle");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/aisle"),
        None => PathBuf::from(".aisle"),
    }
}

fn replica_command(command: &ReplicaCommand, db: &Path, out: &mut Out) -> Result<()> {
    use aisle_core::replica::FileState;
    if let ReplicaCommand::Encrypt = command {
        replica::encrypt_in_place(db)?;
    }
    let state = replica::file_state(db).with_context(|| format!("reading {}", db.display()))?;
    if state == FileState::New {
        bail!("no replica at {} (run `aisle init`)", db.display());
    }
    // Opening it proves the key provider holds the right key.
    drop(replica::open_reader(db)?);
    let provider = aisle_core::vault::Vault::for_replica(db)?
        .provider()
        .to_string();
    let encrypted = state == FileState::Encrypted;
    out.line(format_args!(
        "{}: {}, keys with {provider}",
        db.display(),
        if encrypted {
            "encrypted (SQLCipher)"
        } else {
            "NOT encrypted: run `aisle replica encrypt`"
        },
    ))?;
    out.json(&serde_json::json!({
        "replica": db,
        "encrypted": encrypted,
        "key_provider": provider,
    }))
}

fn db_path(cli: &Cli) -> PathBuf {
    cli.db
        .clone()
        .or_else(|| std::env::var_os("AISLE_DB").map(PathBuf::from))
        .unwrap_or_else(|| data_dir().join("replica.db"))
}

fn run(cli: &Cli) -> Result<()> {
    let out = &mut Out::new(cli.json);
    let db = db_path(cli);
    match &cli.command {
        Command::Init { calling_code } => {
            let conn = replica::open_writer(&db)?;
            if let Some(text) = calling_code {
                let code = aisle_core::identify::phone::CallingCode::parse(text)?;
                replica::set_meta(
                    &conn,
                    aisle_core::identify::phone::CALLING_CODE_SETTING,
                    &code.to_string(),
                )?;
            }
            let calling_code = aisle_core::identify::phone::CallingCode::of_store(&conn)?;
            out.line(format_args!(
                "replica ready: {} (schema version {}, phone numbers without a country code are {calling_code})",
                db.display(),
                replica::latest_version()
            ))?;
            out.json(&serde_json::json!({
                "replica": db,
                "schema_version": replica::latest_version(),
                "calling_code": calling_code.to_string(),
            }))
        }
        Command::Replica(command) => replica_command(command, &db, out),
        Command::Import(ImportCommand::Completejourney { dir, common, seed }) => {
            let options = import_options(common, *seed);
            let report = run_import(&db, common, &options, out, |tx, progress| {
                import::completejourney::import(tx, &DirSource(dir.clone()), &options, progress)
            })?;
            out.json(&report)
        }
        Command::Import(ImportCommand::Csv { dir, common }) => {
            let options = import_options(common, aisle_core::identity::DEFAULT_SEED);
            let report = run_import(&db, common, &options, out, |tx, progress| {
                import::layout::import(tx, &DirSource(dir.clone()), &options, progress)
            })?;
            out.json(&report)
        }
        Command::Member(MemberCommand::Show { key, baskets }) => {
            let conn = open_reader(&db)?;
            let parsed = members::MemberKey::parse(key)?;
            let member_id = members::find(&conn, &parsed)?
                .ok_or_else(|| members::MemberError::NotFound(key.clone()))?;
            let profile = members::profile(&conn, member_id)?;
            let recent = members::recent_baskets(&conn, member_id, *baskets)?;
            output::profile(out, &profile, &recent)?;
            out.json(&serde_json::json!({ "profile": profile, "recent_baskets": recent }))
        }
        Command::Member(MemberCommand::Search { text, limit }) => {
            let conn = open_reader(&db)?;
            let hits = members::search(&conn, text, *limit)?;
            output::hits(out, &hits)?;
            out.json(&hits)
        }
        Command::Member(MemberCommand::Lookup(args)) => {
            identify::lookup(args, &open_reader(&db)?, out)
        }
        Command::Member(MemberCommand::Qr(args)) => identify::qr(args, &open_reader(&db)?, out),
        Command::Member(MemberCommand::Identify(args)) => {
            open_reader(&db)?;
            identify::identify(args, &db, out)
        }
        Command::Stats => {
            let conn = open_reader(&db)?;
            let stats = stats::stats(&conn)?;
            let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
            output::stats(out, &db, size, &stats)?;
            out.json(&serde_json::json!({ "replica": db, "bytes": size, "stats": stats }))
        }
        Command::Demo { replica: path } => run_demo(
            &path
                .clone()
                .unwrap_or_else(|| data_dir().join("demo/replica.db")),
            out,
        ),
        Command::Gen(args) => {
            let spec = generate::GenSpec {
                members: args.members,
                products: args.products,
                purchases: args.purchases,
                stores: args.stores,
                seed: args.seed,
                assortment: args.assortment,
            };
            let started = std::time::Instant::now();
            let report = generate::generate(&spec, &args.out)
                .with_context(|| format!("writing {}", args.out.display()))?;
            out.line(format_args!(
                "wrote {} members, {} products, {} baskets, {} purchase lines to {} in {:.1} s",
                report.members,
                report.products,
                report.baskets,
                report.purchase_lines,
                args.out.display(),
                started.elapsed().as_secs_f64()
            ))?;
            out.json(&report)
        }
        Command::ExtractDemo {
            from,
            out: dir,
            households,
            seed,
        } => {
            let report = subset::extract(from, dir, *households, *seed)?;
            for (file, n) in &report.rows {
                out.line(format_args!("{file:<30} {n:>8} rows"))?;
            }
            out.json(&report)
        }
        Command::Bench(command) => bench::run(command, &db, out),
        Command::Sync(args) => sync::run(args, &db, out),
        Command::Scan(args) => scan::scan(args),
        Command::Coupon(command) => coupon::run(command, &db, out),
        Command::Eval(command) => eval::run(command, &db, out),
        Command::Offers(command) => offers::run(command, &db, out),
        Command::Train(args) => recommend::train(args, &db, output::now_utc(), out),
        Command::Recommend(args) => recommend::recommend(args, &db, out),
    }
}

fn open_reader(db: &Path) -> Result<rusqlite::Connection> {
    if !db.exists() {
        bail!(
            "no replica at {}: run `aisle init` and an import first, or pass --db",
            db.display()
        );
    }
    Ok(replica::open_reader(db)?)
}

fn import_options(common: &ImportArgs, seed: u64) -> ImportOptions {
    ImportOptions {
        skip_invalid: common.skip_invalid,
        seed,
        now: output::now_utc(),
    }
}

fn run_import(
    db: &Path,
    common: &ImportArgs,
    options: &ImportOptions,
    out: &mut Out,
    import: impl FnOnce(
        &rusqlite::Transaction<'_>,
        &mut dyn import::Progress,
    ) -> Result<ImportReport, import::ImportError>,
) -> Result<ImportReport> {
    let started = std::time::Instant::now();
    let mut conn = replica::open_writer(db)?;
    let mut progress = output::Bar::new(!out.is_json() && std::io::stderr().is_terminal());
    let report = import::in_transaction(&mut conn, |tx| import(tx, &mut progress))?;
    progress.done();
    if options.skip_invalid && !report.rejects.is_empty() {
        let path = common
            .rejects
            .clone()
            .unwrap_or_else(|| db.with_file_name("rejects.csv"));
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        import::write_rejects(&report.rejects, std::io::BufWriter::new(file))
            .with_context(|| format!("writing {}", path.display()))?;
        out.line(format_args!(
            "{} rows rejected, written with their reasons to {}",
            report.rejects.len(),
            path.display()
        ))?;
    }
    output::import_report(out, &report, started.elapsed())?;
    Ok(report)
}

fn run_demo(path: &Path, out: &mut Out) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("removing the previous demo replica {}", path.display())
                });
            }
        }
    }
    let mut conn = replica::open_writer(path)?;
    let options = ImportOptions {
        now: output::now_utc(),
        ..ImportOptions::default()
    };
    let report = import::in_transaction(&mut conn, |tx| {
        import::completejourney::import(tx, &demo::source(), &options, &mut import::NoProgress)
    })?;
    let member_id =
        demo::showcase_member(&conn)?.context("the demo data has no member with baskets")?;
    // The tablet's demo associates, at the store the demo replica serves.
    match aisle_core::runtime::choose_store(&conn, None) {
        Ok(store_id) => {
            let tx = conn.transaction()?;
            demo::add_associates(&tx, store_id, options.now)?;
            tx.commit()?;
        }
        Err(aisle_core::runtime::RuntimeError::NoStore) => {}
        Err(other) => return Err(other.into()),
    }
    let profile = members::profile(&conn, member_id)?;
    let recent = members::recent_baskets(&conn, member_id, 3)?;
    let stats = stats::stats(&conn)?;
    out.line(format_args!("Aisle demo replica: {}", path.display()))?;
    out.line(format_args!(
        "  {} members, {} products, {} baskets, {} purchase lines, {} coupons (from the embedded Complete Journey extract)\n",
        count(&stats, "members"),
        count(&stats, "products"),
        count(&stats, "baskets"),
        count(&stats, "purchase_lines"),
        count(&stats, "coupons"),
    ))?;
    output::profile(out, &profile, &recent)?;
    let card = profile
        .cards
        .first()
        .map_or("CARD", |c| c.card_number.as_str());
    // The model, fitted here in seconds, and what the kiosk would show this member.
    out.line(format_args!(""))?;
    recommend::train(
        &recommend::TrainArgs {
            until: None,
            seed: 1,
        },
        path,
        output::now_utc(),
        out,
    )?;
    out.line(format_args!(
        "\nWhat {} would see at the kiosk:",
        profile.given_name.as_deref().unwrap_or("they")
    ))?;
    let args = recommend::RecommendArgs {
        member: Some(member_id),
        product: None,
        households: None,
        out: None,
        list: "blended".to_owned(),
        k: 5,
        store: None,
        now: None,
        public: true,
    };
    recommend::recommend(&args, path, out)?;
    // The offer model, and the coupons the kiosk would offer on the data's last day.
    out.line(format_args!(""))?;
    offers::run(&offers::OffersCommand::Train { until: None }, path, out)?;
    let last_day =
        aisle_core::offers::eval::data_until(&conn)?.context("the demo has no baskets")?;
    out.line(format_args!("\nTheir best offers on {last_day}:"))?;
    offers::run(
        &offers::OffersCommand::Rank(offers::RankArgs::for_member(
            member_id,
            aisle_core::time::Day::parse(&last_day)?
                .start()
                .plus_secs(12 * 3600),
        )),
        path,
        out,
    )?;
    out.line(format_args!(
        "\nTry:  aisle --db {} member search {}\n      aisle --db {} member show {card}\n      aisle --db {} member qr {card}    (the code their phone would show)",
        path.display(),
        profile
            .given_name
            .as_deref()
            .unwrap_or("anna")
            .to_lowercase(),
        path.display(),
        path.display()
    ))?;
    out.json(&serde_json::json!({ "replica": path, "import": report, "profile": profile, "recent_baskets": recent }))
}

fn count(stats: &stats::Stats, table: &str) -> i64 {
    stats
        .tables
        .iter()
        .find(|(name, _)| name == table)
        .map_or(0, |(_, n)| *n)
}
