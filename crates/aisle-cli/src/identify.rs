//! `aisle member qr | identify | lookup`: a member's app code as a QR code
//! (what their phone shows), a scan judged as the kiosk would, and an
//! associate's manual look-up.

use std::path::{Path, PathBuf};

use aisle_core::identify::lookup::{self, MemberHit};
use aisle_core::identify::member_code::{self, CodePolicy};
use aisle_core::identify::phone::CallingCode;
use aisle_core::identify::{Evidence, Identified};
use aisle_core::keys;
use aisle_core::runtime::{Clock, StoreRuntime};
use aisle_core::{members, replica};
use anyhow::{Context, Result, bail};
use clap::Args;
use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

use crate::output::{Out, now_secs, utc};

/// The verification window and skew, as the kiosk would use them.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Seconds a code is valid for.
    #[arg(long, default_value_t = CodePolicy::default().window_secs, value_parser = clap::value_parser!(u64).range(1..))]
    window_secs: u64,
    /// Whole windows of clock skew accepted either side.
    #[arg(long, default_value_t = CodePolicy::default().skew_windows)]
    skew_windows: u64,
}

impl PolicyArgs {
    fn policy(&self) -> CodePolicy {
        CodePolicy {
            window_secs: self.window_secs,
            skew_windows: self.skew_windows,
        }
    }
}

#[derive(Debug, Args)]
pub struct QrArgs {
    /// Member id or card number.
    key: String,
    /// Write a PNG here instead of drawing in the terminal.
    #[arg(long, value_name = "FILE.png")]
    out: Option<PathBuf>,
    /// Pixels per module of the PNG (at least 6, for a camera).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(6..=64))]
    scale: u32,
    /// The code for this time (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX_SECS")]
    at: Option<u64>,
    /// Print only the code's text (what the QR code holds).
    #[arg(long)]
    text: bool,
    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// What was scanned: an app code, a card number, a barcode, a coupon code.
    scanned: String,
    /// The device scanning (the audit's actor).
    #[arg(long, default_value = "cli")]
    device: String,
    /// Judge at this time (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX_SECS")]
    at: Option<u64>,
    /// The store a product is shown at [default: the store the replica is
    /// provisioned for, else the demo's].
    #[arg(long, value_name = "ID")]
    store: Option<i64>,
    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// A phone number, an e-mail address, a card number or a name.
    query: String,
    /// The calling code of national phone numbers [default: the store's
    /// setting (`aisle init --calling-code`), else +1].
    #[arg(long, value_name = "+CC")]
    calling_code: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

/// `aisle member qr`.
pub fn qr(args: &QrArgs, conn: &rusqlite::Connection, out: &mut Out) -> Result<()> {
    let parsed = members::MemberKey::parse(&args.key)?;
    let member_id = members::find(conn, &parsed)?
        .ok_or_else(|| members::MemberError::NotFound(args.key.clone()))?;
    let Some(current) = keys::code_key(conn, member_id)? else {
        bail!(
            "member {member_id} has no app-code key: HQ provisions one when the member sets up the app"
        );
    };
    let Some(signing) = keys::demo_signing_key(conn, member_id)? else {
        bail!(
            "member {member_id}'s app-code key (key id {}) is not a demo key: a real member's \
             private key lives only on their phone, so only their app can show their code",
            current.key_id
        );
    };
    let policy = args.policy.policy();
    let at = args.at.unwrap_or_else(now_secs);
    let text = member_code::encode(member_id, &signing, at, &policy);
    let window = at / policy.window_secs;
    let valid_from = window.saturating_mul(policy.window_secs);
    let valid_until = valid_from.saturating_add(policy.window_secs);
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .context("encoding the QR code")?;
    let modules = code.width();
    if args.text {
        out.line(format_args!("{text}"))?;
    } else if let Some(path) = &args.out {
        let (width, height) = write_png(&code, args.scale, path)?;
        out.line(format_args!(
            "wrote {} ({width} x {height} px, {modules} modules + quiet zone, {} px each): member {member_id}'s code for {} - {} UTC",
            path.display(),
            args.scale,
            utc(valid_from),
            utc(valid_until),
        ))?;
    } else {
        // Light modules drawn, dark ones left to the background: for a
        // terminal with light text on a dark background, as most are.
        let drawing = code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build();
        out.line(format_args!("{drawing}"))?;
        out.line(format_args!(
            "member {member_id}, window {window}: valid {} - {} UTC (and {} window(s) either side)\n{text}",
            utc(valid_from),
            utc(valid_until),
            policy.skew_windows,
        ))?;
    }
    out.json(&serde_json::json!({
        "member_id": member_id,
        "key_id": current.key_id,
        "code": text,
        "window": window,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "modules": modules,
        "png": args.out,
    }))
}

/// The QR code as a grey PNG with its quiet zone; returns its size.
fn write_png(code: &QrCode, scale: u32, path: &Path) -> Result<(u32, u32)> {
    let image = code
        .render::<image::Luma<u8>>()
        .module_dimensions(scale, scale)
        .quiet_zone(true)
        .build();
    image
        .save_with_format(path, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(image.dimensions())
}

/// A scanned product: name, this store's price and place, and (with a
/// model in the replica) what is often bought with it.
fn product(
    conn: &rusqlite::Connection,
    runtime: &StoreRuntime,
    product_id: i64,
    out: &mut Out,
) -> Result<serde_json::Value> {
    let models = runtime.models(conn)?;
    let policy = aisle_core::recommend::serve::Policy::default();
    let Some(view) = aisle_core::welcome::product_view(
        conn,
        models.ranking(),
        product_id,
        runtime.store_id(),
        runtime.now(),
        5,
        &policy,
    )?
    else {
        out.line(format_args!("product {product_id}"))?;
        return Ok(serde_json::json!({ "product_id": product_id }));
    };
    if models.recommend.is_none() {
        out.line(format_args!(
            "(no model: run `aisle train` for what is bought with it)"
        ))?;
    }
    out.line(format_args!(
        "product {} {}{}",
        view.product_id,
        view.name,
        view.price_cents
            .map(|c| format!(", {} here", crate::output::money(c)))
            .unwrap_or_default()
    ))?;
    for pick in &view.bought_together {
        out.line(format_args!("  with {} ({})", pick.name, pick.reason))?;
    }
    Ok(serde_json::to_value(&view)?)
}

/// `aisle member identify`: judges a scan as the kiosk does (writes the
/// replay cache and the audit of refusals).
pub fn identify(args: &IdentifyArgs, db: &Path, out: &mut Out) -> Result<()> {
    let conn = replica::open_writer(db)?;
    let clock = match args.at {
        Some(at) => Clock::stepped(i64::try_from(at).unwrap_or(i64::MAX)),
        None => Clock::wall(),
    };
    let at = u64::try_from(clock.now_secs()).unwrap_or(0);
    let identified = aisle_core::identify::identify(
        &conn,
        &args.scanned,
        &args.device,
        at,
        &args.policy.policy(),
    )?;
    let json = match &identified {
        Identified::Member { member_id, by } => {
            let how = match by {
                Evidence::AppCode { key_id, window } => {
                    format!("app code, key {key_id}, window {window}")
                }
                Evidence::Card => "loyalty card".to_owned(),
            };
            out.line(format_args!("member {member_id} ({how})"))?;
            serde_json::json!({ "member_id": member_id, "by": how })
        }
        Identified::Product { product_id } => {
            let runtime = StoreRuntime::open(&conn, args.store, clock)?;
            product(&conn, &runtime, *product_id, out)?
        }
        Identified::Coupon { coupon_id } => {
            let today = clock.today();
            match aisle_core::welcome::coupon_status(&conn, *coupon_id, today)? {
                Some(status) => {
                    out.line(format_args!(
                        "coupon {} ({}): {:?}, campaign {:?} {} .. {}, {} redeemed here",
                        status.code,
                        status.description.as_deref().unwrap_or("-"),
                        status.state,
                        status.campaign,
                        status.starts_on,
                        status.ends_on,
                        status.redemptions
                    ))?;
                    serde_json::to_value(&status)?
                }
                None => serde_json::json!({ "coupon_id": coupon_id }),
            }
        }
        Identified::CodeRefused { reason, .. } => {
            serde_json::json!({ "refused": reason.code(), "message": reason.to_string() })
        }
        Identified::Refused { code, message } => {
            serde_json::json!({ "refused": code, "message": message })
        }
    };
    out.json(&json)?;
    if let Some(code) = identified.refusal_code() {
        bail!(
            "refused ({code}): {}",
            json["message"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// `aisle member lookup` (associates only: the kiosk never offers it).
pub fn lookup(args: &LookupArgs, conn: &rusqlite::Connection, out: &mut Out) -> Result<()> {
    let calling_code = match &args.calling_code {
        Some(text) => CallingCode::parse(text)?,
        None => CallingCode::of_store(conn)?,
    };
    let hits = lookup::lookup(conn, &args.query, &calling_code, args.limit)?;
    hit_lines(out, &hits)?;
    out.json(&hits)
}

fn hit_lines(out: &mut Out, hits: &[MemberHit]) -> Result<()> {
    if hits.is_empty() {
        return out.line(format_args!("no members found"));
    }
    for hit in hits {
        out.line(format_args!(
            "{:>10}  {:<28} {:<14} {:<18} {}  (by {})",
            hit.member_id,
            hit.display_name.as_deref().unwrap_or("-"),
            hit.card_number.as_deref().unwrap_or("-"),
            hit.phone.as_deref().unwrap_or("-"),
            hit.email.as_deref().unwrap_or("-"),
            hit.matched_by.name(),
        ))?;
    }
    Ok(())
}
