//! `aisle-till`: the till endpoint (see the library's documentation).

use std::net::SocketAddr;
use std::path::PathBuf;

use aisle_core::offers::ledger::RedeemPolicy;
use anyhow::Context;
use clap::Parser;

/// Serves coupon check and redemption to the point-of-sale system, on loopback.
#[derive(Debug, Parser)]
#[command(name = "aisle-till", version, max_term_width = 100)]
struct Cli {
    /// The store replica.
    #[arg(long, env = "AISLE_DB", value_name = "PATH")]
    db: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Listen on a non-loopback address (the endpoint has no authentication).
    #[arg(long)]
    allow_non_loopback: bool,
    /// This store [default: the store the replica is provisioned for].
    #[arg(long = "store", value_name = "ID")]
    store_id: Option<i64>,
    /// The till id recorded when a request names none.
    #[arg(long, default_value = "till")]
    till: String,
    /// Largest value (cents) of one coupon of another store accepted offline.
    #[arg(long, default_value_t = RedeemPolicy::default().floor_limit_cents)]
    floor_limit_cents: i64,
    /// Largest total value (cents) of such coupons per day.
    #[arg(long, default_value_t = RedeemPolicy::default().daily_budget_cents)]
    daily_budget_cents: i64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    aisle_till::check_listen_address(&cli.listen, cli.allow_non_loopback)?;
    let mut config = aisle_till::Config::new(cli.db);
    config.store_id = cli.store_id;
    config.default_till = cli.till;
    config.policy = RedeemPolicy {
        floor_limit_cents: cli.floor_limit_cents,
        daily_budget_cents: cli.daily_budget_cents,
        ..RedeemPolicy::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cli.listen)
            .await
            .with_context(|| format!("listening on {}", cli.listen))?;
        aisle_till::serve(listener, config, shutdown_signal()).await
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
