//! `aisle-hq`: the reference HQ server (a thin shell over the library).

#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "bench")]
mod fleet;

use std::path::PathBuf;

use aisle_hq::storage::Importer;
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "aisle-hq", version, about = "Aisle's reference HQ server")]
struct Cli {
    /// HQ's data folder (signing key, snapshots, and the database when it is SQLite).
    #[arg(long, env = "AISLE_HQ_DATA", default_value = "hq-data")]
    data: PathBuf,
    /// HQ's PostgreSQL database, libpq style: `postgres://user@host/db`, or
    /// `postgres://user@localhost/db?host=/run/postgresql` over a Unix
    /// socket (a password is better in ~/.pgpass or PGPASSWORD than in the
    /// URL). Without it, HQ keeps its database in SQLite in --data.
    #[arg(long, env = "AISLE_HQ_DATABASE", global = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTPS (or HTTP with --insecure-http, for local experiments only).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// PEM certificate chain and key.
        #[arg(long, required_unless_present = "insecure_http")]
        tls_cert: Option<PathBuf>,
        #[arg(long, required_unless_present = "insecure_http")]
        tls_key: Option<PathBuf>,
        #[arg(long)]
        insecure_http: bool,
        /// The admin API's tokens (mode 0600): `NAME TOKEN [EXPIRES]` per
        /// line, or one bare token; each at least 32 bytes
        /// (`aisle-hq new-admin-token` makes one).
        #[arg(long)]
        admin_token_file: PathBuf,
        /// Write the bound address to this file once listening (for scripts and tests).
        #[arg(long)]
        address_file: Option<PathBuf>,
        /// Where the admin API listens (its own listener; keep it off the
        /// network the devices reach).
        #[arg(long, default_value = "127.0.0.1:8444")]
        admin_listen: String,
        /// Write the admin listener's bound address to this file.
        #[arg(long)]
        admin_address_file: Option<PathBuf>,
        /// Requests per minute from one client address, sustained (raise it
        /// when HQ sits behind a load balancer or proxy that it sees as one address).
        #[arg(long, default_value_t = aisle_hq::ConnectionLimits::default().per_address_per_minute)]
        per_address_per_minute: u32,
        /// ... and at once.
        #[arg(long, default_value_t = aisle_hq::ConnectionLimits::default().per_address_burst)]
        per_address_burst: u32,
    },
    /// Print a new admin token line (`NAME TOKEN [EXPIRES]`) to add to the token file.
    NewAdminToken {
        #[arg(long)]
        name: String,
        /// When the token stops working (`YYYY-MM-DDTHH:MM:SS`, UTC).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Create a one-time enrolment code for a device (printed as JSON); the
    /// device redeems it with `aisle sync enrol` and receives its credentials.
    EnrolDevice {
        #[command(flatten)]
        device: DeviceArgs,
        /// Hours the code stays good.
        #[arg(long, default_value_t = 24)]
        valid_hours: i64,
    },
    /// Revoke a device (lost or stolen): it is refused from now on, and its
    /// coupon issuing key is revoked at every store.
    RevokeDevice {
        #[arg(long)]
        device_id: String,
    },
    /// Load a Complete Journey folder into HQ's master data.
    ImportCompletejourney {
        dir: PathBuf,
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Load the embedded demo extract into HQ's master data; prints the demo's
    /// showcase member and their home store as JSON.
    ImportDemo,
    /// Load a folder in Aisle's generic CSV layout (docs/IMPORT.md) into HQ's master data.
    ImportCsv {
        dir: PathBuf,
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Write a development CA and a loopback certificate (ca.pem, hq.pem, hq.key) into a folder.
    DevCert { out: PathBuf },
    /// Measure sync (bootstrap, delta apply, upload, many stores polling); see docs/BENCHMARKS.md.
    /// Built with `--features bench` only (`cargo xtask bench sync`): the shipped server has no harness.
    #[cfg(feature = "bench")]
    BenchSync(bench::Options),
    /// A chain's stores against running HQ instances (`cargo xtask bench fleet`).
    #[cfg(feature = "bench")]
    BenchFleet(fleet::Options),
    /// Register a store device; prints its credentials as JSON (shown once).
    /// Prefer `enrol-device`: then the device's secret never passes through
    /// the admin's hands.
    RegisterDevice {
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Fit the recommendation model and the offer model on HQ's data and publish both to every store.
    Train {
        /// Learn from purchases before this date [default: the day after the newest].
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Print HQ's signing public key (hex).
    PublicKey,
    /// List the store events HQ refused and quarantined, oldest first, as
    /// JSON (what `GET /admin/v1/quarantine` answers).
    Quarantine {
        /// Only events after this quarantine id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Manage the associates who sign in on the stores' tablets.
    #[command(subcommand)]
    Associate(AssociateCommand),
}

/// A device to enrol or register.
#[derive(Debug, clap::Args)]
struct DeviceArgs {
    #[arg(long)]
    device_id: String,
    #[arg(long)]
    store_id: i64,
    /// What the device is: kiosk, tablet or till (what it may do at HQ:
    /// docs/PROTOCOL.md, "Device kinds").
    #[arg(long, value_parser = parse_kind)]
    kind: aisle_proto::DeviceKind,
}

impl DeviceArgs {
    fn registration(self) -> aisle_proto::DeviceRegistration {
        aisle_proto::DeviceRegistration {
            device_id: self.device_id,
            store_id: self.store_id,
            kind: self.kind,
        }
    }
}

#[derive(Debug, Subcommand)]
enum AssociateCommand {
    /// Add an associate, or replace one (new name, role, store or PIN). The
    /// PIN (4 to 8 digits) is read from AISLE_PIN or, if unset, from stdin.
    Save {
        #[arg(long)]
        staff_id: i64,
        #[arg(long)]
        store_id: i64,
        #[arg(long)]
        name: String,
        /// associate or manager.
        #[arg(long, default_value = "associate", value_parser = parse_role)]
        role: aisle_proto::Role,
    },
    /// An associate leaves: they can no longer sign in.
    Deactivate {
        #[arg(long)]
        staff_id: i64,
    },
}

fn parse_role(text: &str) -> Result<aisle_proto::Role, String> {
    aisle_proto::Role::parse(text).ok_or_else(|| format!("{text:?} is not associate or manager"))
}

impl Cli {
    /// HQ's configuration for a command: the data folder and the database.
    fn config(&self) -> aisle_hq::Config {
        let mut config = aisle_hq::Config::new(self.data.clone());
        config.database = self.database.clone();
        config
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = cli.config();
    match cli.command {
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            insecure_http,
            admin_token_file,
            address_file,
            admin_listen,
            admin_address_file,
            per_address_per_minute,
            per_address_burst,
        } => {
            let mut config = config.clone();
            config.limits.per_address_per_minute = per_address_per_minute;
            config.limits.per_address_burst = per_address_burst;
            config.admin_tokens = aisle_hq::admin::AdminTokens::load(&admin_token_file)?;
            if !insecure_http {
                let read = |path: &Option<PathBuf>| -> anyhow::Result<String> {
                    let path = path
                        .as_ref()
                        .context("--tls-cert and --tls-key are required")?;
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))
                };
                config.tls = Some(aisle_hq::tls::TlsFiles {
                    cert_chain_pem: read(&tls_cert)?,
                    key_pem: read(&tls_key)?,
                });
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let devices = bind(&listen, address_file.as_deref(), "HQ listening").await?;
                let admin = bind(
                    &admin_listen,
                    admin_address_file.as_deref(),
                    "HQ admin API listening",
                )
                .await?;
                let listeners = aisle_hq::Listeners {
                    devices,
                    admin: Some(admin),
                };
                aisle_hq::serve(listeners, config, async {
                    tokio::signal::ctrl_c().await.ok();
                })
                .await
            })
        }
        Command::ImportCompletejourney { dir, skip_invalid } => import(
            &config,
            &aisle_core::import::DirSource(dir),
            skip_invalid,
            Importer::CompleteJourney,
        )
        .map(drop),
        Command::ImportDemo => {
            let hq = import(
                &config,
                &aisle_core::demo::source(),
                false,
                Importer::CompleteJourney,
            )?;
            let showcase = hq
                .storage()
                .showcase()?
                .context("the demo data has no member with baskets")?;
            if let Some(store_id) = showcase.store_id {
                hq.storage()
                    .save_demo_associates(store_id, aisle_hq::now())?;
            }
            let showcase = serde_json::json!({ "showcase_member": showcase.member_id, "store_id": showcase.store_id });
            std::io::Write::write_all(&mut std::io::stdout(), format!("{showcase}\n").as_bytes())?;
            Ok(())
        }
        Command::ImportCsv { dir, skip_invalid } => import(
            &config,
            &aisle_core::import::DirSource(dir),
            skip_invalid,
            Importer::Layout,
        )
        .map(drop),
        Command::Train { until, seed } => {
            let hq = aisle_hq::Hq::open(config.clone())?;
            let now = aisle_hq::now();
            let recommend = hq.storage().train(until.as_deref(), seed, now)?;
            let offers = hq.storage().train_offers(until.as_deref(), now)?;
            let text = serde_json::to_string_pretty(&[recommend, offers])?;
            std::io::Write::write_all(&mut std::io::stdout(), format!("{text}\n").as_bytes())?;
            Ok(())
        }
        Command::DevCert { out } => {
            let (ca, tls) = aisle_hq::tls::dev_pki()?;
            std::fs::create_dir_all(&out)?;
            std::fs::write(out.join("ca.pem"), ca)?;
            std::fs::write(out.join("hq.pem"), tls.cert_chain_pem)?;
            std::fs::write(out.join("hq.key"), tls.key_pem)?;
            Ok(())
        }
        #[cfg(feature = "bench")]
        Command::BenchSync(options) => bench::run(&cli.data, &options),
        #[cfg(feature = "bench")]
        Command::BenchFleet(options) => fleet::run(config.clone(), &options),
        Command::RegisterDevice { device } => {
            let aisle_proto::DeviceRegistration {
                device_id,
                store_id,
                kind,
            } = device.registration();
            let hq = aisle_hq::Hq::open(config.clone())?;
            let now = aisle_hq::now();
            let secret = hq
                .storage()
                .register_device(&device_id, store_id, kind, now)?;
            local_audit(&hq, "register_device", &device_id, now)?;
            let credentials = aisle_proto::DeviceCredentials {
                device_id,
                store_id,
                secret,
                hq_public_key: hq.signer.public_hex(),
                protocol: aisle_proto::PROTOCOL_VERSION,
                kind: Some(kind),
                card_key: hq.card_key_for(kind, store_id),
                coupon_issuer: None,
            };
            let text = serde_json::to_string_pretty(&credentials)?;
            std::io::Write::write_all(&mut std::io::stdout(), format!("{text}\n").as_bytes())?;
            Ok(())
        }
        Command::Associate(command) => {
            let hq = aisle_hq::Hq::open(config.clone())?;
            let now = aisle_hq::now();
            match command {
                AssociateCommand::Save {
                    staff_id,
                    store_id,
                    name,
                    role,
                } => {
                    let pin = match std::env::var("AISLE_PIN") {
                        Ok(pin) => pin,
                        Err(_) => {
                            let mut line = String::new();
                            std::io::stdin()
                                .read_line(&mut line)
                                .context("reading the PIN from stdin")?;
                            line
                        }
                    };
                    let associate = aisle_hq::storage::NewAssociate {
                        staff_id,
                        store_id,
                        display_name: &name,
                        role,
                        pin: pin.trim(),
                    };
                    hq.storage().save_associate(&associate, now)?;
                    local_audit(&hq, "save_associate", &format!("staff {staff_id}"), now)?;
                }
                AssociateCommand::Deactivate { staff_id } => {
                    hq.storage().deactivate_associate(staff_id, now)?;
                    local_audit(
                        &hq,
                        "deactivate_associate",
                        &format!("staff {staff_id}"),
                        now,
                    )?;
                }
            }
            Ok(())
        }
        Command::Quarantine { after, limit } => {
            let hq = aisle_hq::Hq::open(config.clone())?;
            let page = hq.storage().quarantined(after, limit.max(1))?;
            let text = serde_json::to_string_pretty(&page)?;
            std::io::Write::write_all(&mut std::io::stdout(), format!("{text}\n").as_bytes())?;
            Ok(())
        }
        Command::NewAdminToken { name, expires } => {
            let token = aisle_hq::admin::new_token()?;
            let line = match expires {
                Some(expires) => format!("{name} {token} {expires}"),
                None => format!("{name} {token}"),
            };
            // Checked as HQ will read it.
            aisle_hq::admin::AdminTokens::parse(&line)?;
            std::io::Write::write_all(&mut std::io::stdout(), format!("{line}\n").as_bytes())?;
            Ok(())
        }
        Command::EnrolDevice {
            device,
            valid_hours,
        } => {
            let hq = aisle_hq::Hq::open(config.clone())?;
            let now = aisle_hq::now();
            let registration = device.registration();
            let enrolment = hq.storage().create_enrolment(
                &registration,
                aisle_hq::admin::LOCAL,
                valid_hours.saturating_mul(3600),
                now,
            )?;
            local_audit(&hq, "create_enrolment", &registration.device_id, now)?;
            let text = serde_json::to_string_pretty(&enrolment)?;
            std::io::Write::write_all(&mut std::io::stdout(), format!("{text}\n").as_bytes())?;
            Ok(())
        }
        Command::RevokeDevice { device_id } => {
            let hq = aisle_hq::Hq::open(config.clone())?;
            let now = aisle_hq::now();
            hq.storage().revoke_device(&device_id, now)?;
            local_audit(&hq, "revoke_device", &device_id, now)?;
            Ok(())
        }
        Command::PublicKey => {
            let hq = aisle_hq::Hq::open(config.clone())?;
            std::io::Write::write_all(
                &mut std::io::stdout(),
                format!("{}\n", hq.signer.public_hex()).as_bytes(),
            )?;
            Ok(())
        }
    }
}

/// Loads a source into HQ's master data with one of the store's importers
/// (the store partitions refreshed after it).
fn import(
    config: &aisle_hq::Config,
    source: &dyn aisle_core::import::Source,
    skip_invalid: bool,
    importer: Importer,
) -> anyhow::Result<std::sync::Arc<aisle_hq::Hq>> {
    let hq = aisle_hq::Hq::open(config.clone())?;
    let options = aisle_core::import::ImportOptions {
        skip_invalid,
        ..aisle_core::import::ImportOptions::default()
    };
    let report = hq.storage().import(importer, source, &options)?;
    tracing::info!(rejects = report.rejects.len(), "imported into HQ");
    Ok(hq)
}

/// Records an admin command run on HQ's data folder in the admin audit.
fn local_audit(
    hq: &aisle_hq::Hq,
    action: &str,
    target: &str,
    now: aisle_core::time::Timestamp,
) -> Result<(), aisle_hq::storage::HqError> {
    hq.storage().record_admin_call(
        Some(aisle_hq::admin::LOCAL),
        action,
        Some(target),
        "ok",
        now,
    )
}

/// Binds `address`, logs it, and writes it to `file` when asked.
async fn bind(
    address: &str,
    file: Option<&std::path::Path>,
    what: &'static str,
) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "{what}");
    if let Some(path) = file {
        std::fs::write(path, bound.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(listener)
}

fn parse_kind(text: &str) -> Result<aisle_proto::DeviceKind, String> {
    aisle_proto::DeviceKind::parse(text)
        .ok_or_else(|| format!("{text:?} is not a device kind: kiosk, tablet or till"))
}
