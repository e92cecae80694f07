//! The supply chain, checked in `cargo xtask test` (`cargo xtask deny`):
//! cargo-deny over the Rust dependency graph with the reviewed policy in
//! `deny.toml` (advisories, licences, bans, sources), and `npm audit` over
//! the tablet front end's shipped dependencies.
//!
//! RustSec's advisory database is fetched from GitHub, or, when
//! `AISLE_ADVISORY_DB` names a local copy (a clone of `rustsec/advisory-db`,
//! for machines that cannot reach GitHub), taken from there. When neither
//! works the check fails and says so (an advisory check that cannot see
//! the advisories must not pass).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, root, run};

/// The cargo-deny this project's `deny.toml` is written for.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// cargo-deny's folder (under `$CARGO_HOME/advisory-dbs`) for the database
/// URL in `deny.toml`: its name and a hash of the URL.
const ADVISORY_DB_DIR: &str = "advisory-db-3157b0e258782691";

pub fn check() -> Result<()> {
    ensure_cargo_deny()?;
    let offline = advisory_db()?;
    // cargo-deny reads the metadata of every crate in the lock file, those
    // of other platforms too, which a build here never downloads.
    run(cargo().arg("fetch"))?;
    let mut deny = cargo();
    deny.arg("deny");
    if offline {
        deny.arg("--offline");
    }
    deny.args(["--log-level", "error", "check"]);
    run(&mut deny)?;
    npm_audit()
}

fn ensure_cargo_deny() -> Result<()> {
    let installed = cargo()
        .args(["deny", "--version"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if installed.as_deref() == Some(&format!("cargo-deny {CARGO_DENY_VERSION}")) {
        return Ok(());
    }
    run(cargo().args([
        "install",
        "cargo-deny",
        "--locked",
        "--version",
        CARGO_DENY_VERSION,
    ]))
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        PathBuf::from,
    )
}

/// Makes the advisory database current: from the local copy when
/// `AISLE_ADVISORY_DB` names one, else fetched from GitHub. `true`:
/// cargo-deny must not fetch (`--offline`).
fn advisory_db() -> Result<bool> {
    let Some(source) = std::env::var_os("AISLE_ADVISORY_DB").map(PathBuf::from) else {
        let fetched = cargo()
            .args(["deny", "--log-level", "warn", "fetch", "db"])
            .current_dir(root())
            .output()
            .context("running cargo deny fetch")?;
        let said = String::from_utf8_lossy(&fetched.stderr);
        if !fetched.status.success() || said.contains("fail") {
            bail!(
                "cargo deny could not fetch RustSec's advisory database ({}); set AISLE_ADVISORY_DB to a local clone of https://github.com/rustsec/advisory-db",
                said.trim()
            );
        }
        return Ok(false);
    };
    let target = cargo_home().join("advisory-dbs").join(ADVISORY_DB_DIR);
    if target.join(".git").is_dir() {
        run(Command::new("git")
            .arg("-C")
            .arg(&target)
            .args(["fetch", "--quiet"])
            .arg(&source)
            .arg("HEAD"))?;
        run(Command::new("git").arg("-C").arg(&target).args([
            "reset",
            "--quiet",
            "--hard",
            "FETCH_HEAD",
        ]))?;
    } else {
        std::fs::remove_dir_all(&target).ok();
        std::fs::create_dir_all(target.parent().context("advisory-dbs")?)?;
        run(Command::new("git")
            .args(["clone", "--quiet"])
            .arg(&source)
            .arg(&target))?;
    }
    let newest = Command::new("git")
        .arg("-C")
        .arg(&target)
        .args(["log", "-1", "--format=%cs"])
        .output()?;
    eprintln!(
        "RustSec's advisories from the local copy {} (newest {})",
        source.display(),
        String::from_utf8_lossy(&newest.stdout).trim()
    );
    Ok(true)
}

/// `npm audit` of the front end's shipped dependencies (moderate and above
/// fail). The registry's audit endpoint may be out of reach while its
/// packages are not (this machine's proxy refuses it): that is said, loudly,
/// and is not a pass of the audit.
fn npm_audit() -> Result<()> {
    let dir = root().join("ui/associate");
    let out = Command::new("npm")
        .args(["audit", "--omit=dev", "--audit-level=moderate", "--json"])
        .current_dir(&dir)
        .output()
        .context("running npm audit")?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    if let Some(counts) = report.pointer("/metadata/vulnerabilities") {
        let at_least_moderate: u64 = ["moderate", "high", "critical"]
            .iter()
            .filter_map(|level| counts.get(level).and_then(serde_json::Value::as_u64))
            .sum();
        if at_least_moderate > 0 {
            bail!(
                "npm audit: {at_least_moderate} moderate or worse advisories in the tablet front end's dependencies: {counts} (run `npm audit` in ui/associate)"
            );
        }
        eprintln!("npm audit: no advisories at moderate or above ({counts})");
        return Ok(());
    }
    let reason = report
        .get("message")
        .and_then(serde_json::Value::as_str)
        .filter(|m| !m.is_empty())
        .map_or_else(
            || String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            str::to_owned,
        );
    eprintln!(
        "WARNING: npm audit could not be run here ({reason}): the front end's dependencies were NOT audited; run `npm audit --omit=dev` in ui/associate where the registry's audit endpoint answers"
    );
    Ok(())
}
