//! A throwaway PostgreSQL cluster for the tests and benchmarks: Debian's
//! PostgreSQL 15 (`postgresql` package), `initdb` in a temporary folder as
//! the unprivileged `postgres` user (the server refuses to run as root), a
//! Unix socket in that folder and no TCP port, stopped and removed when
//! dropped (../shared/TESTING.md, "A real PostgreSQL in tests").

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Where Debian puts PostgreSQL 15's programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The system user the server runs as.
const USER: &str = "postgres";

/// A running cluster; stopped and removed when dropped.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a new cluster in a temporary folder, for tests: durability
    /// off (`fsync=off`), nothing survives the run anyway.
    pub fn start() -> Result<Self> {
        Self::start_with("-c fsync=off -c synchronous_commit=off")
    }

    /// The same with PostgreSQL's defaults for durability (benchmarks).
    pub fn start_durable() -> Result<Self> {
        Self::start_with("")
    }

    fn start_with(durability: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("aisle-pg")
            .tempdir()
            .context("a folder for PostgreSQL")?;
        // The server runs as `postgres`: it owns the folder (and reaches it).
        run(Command::new("chown").args(["-R", USER]).arg(dir.path()))?;
        run(Command::new("chmod").arg("0755").arg(dir.path()))?;
        let data = dir.path().join("data");
        let initdb = Path::new(BIN).join("initdb");
        run(Command::new("runuser")
            .args(["-u", USER, "--"])
            .arg(&initdb)
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"]))?;
        let this = Self { dir };
        let options = format!(
            "-k {} -c listen_addresses='' -c max_connections=300 -c shared_buffers=256MB {durability}",
            this.socket_dir().display()
        );
        run(Command::new("runuser")
            .args(["-u", USER, "--"])
            .arg(Path::new(BIN).join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("server.log"))
            .args(["-o", &options, "-w", "start"]))?;
        Ok(this)
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// A URL of database `name` on this cluster (libpq style, Unix socket).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{USER}@localhost/{name}?host={}",
            self.socket_dir().display()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        Command::new("runuser")
            .args(["-u", USER, "--"])
            .arg(Path::new(BIN).join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output()
            .ok();
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let output = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
