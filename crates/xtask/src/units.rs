//! The systemd unit files a retailer installs (`deploy/systemd`, see
//! docs/DEPLOY.md), checked by `systemd-analyze verify` in a throwaway root
//! that holds systemd's own units and a stand-in for each program the units
//! start (Aisle's binaries and cage). Any complaint fails the check:
//! `systemd-analyze` only warns about an unknown key.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::root;

/// The programs the units start, as installed on a device.
const PROGRAMS: &[&str] = &[
    "usr/local/bin/aisle",
    "usr/local/bin/aisle-hq",
    "usr/local/bin/aisle-kiosk",
    "usr/local/bin/aisle-associate",
    "usr/bin/cage",
];

pub fn check() -> Result<()> {
    let units: Vec<std::path::PathBuf> = std::fs::read_dir(root().join("deploy/systemd"))
        .context("reading deploy/systemd")?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "service" || ext == "timer")
        })
        .collect();
    if units.is_empty() {
        bail!("no unit files in deploy/systemd");
    }
    let fake = tempfile::tempdir()?;
    let system = fake.path().join("etc/systemd/system");
    std::fs::create_dir_all(&system)?;
    let lib = fake.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&lib)?;
    let copied = Command::new("cp")
        .args(["-a", "/lib/systemd/system"])
        .arg(&lib)
        .status()
        .context("copying systemd's units")?;
    if !copied.success() {
        bail!("systemd's own units (/lib/systemd/system) are needed to verify ours");
    }
    for program in PROGRAMS {
        stand_in(&fake.path().join(program))?;
    }
    for unit in &units {
        let name = unit.file_name().context("unit name")?;
        std::fs::copy(unit, system.join(name))?;
    }
    for unit in &units {
        let name = unit.file_name().context("unit name")?.to_string_lossy();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", fake.path().display()))
            .arg(format!("/etc/systemd/system/{name}"))
            .output()
            .context("running systemd-analyze (Debian's systemd package)")?;
        let said = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !said.trim().is_empty() {
            bail!("deploy/systemd/{name} does not verify:\n{said}");
        }
        eprintln!("deploy/systemd/{name}: verified");
    }
    Ok(())
}

fn stand_in(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().context("parent")?)?;
    std::fs::write(path, "#!/bin/sh\nexit 0\n")?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
