//! The crate's integration tests, gathered in one binary (one link of the whole tree, not one per file).

mod at_rest;
mod cli;
mod coupons;
mod devices;
mod offers;
mod scan;
mod sync;
mod trust;

use std::path::Path;
use std::process::{Command, Output};

/// The real `aisle` binary on the replica `db`.
fn aisle(db: &Path, args: &[&str]) -> Output {
    aisle_command(db, args).output().expect("run aisle")
}

/// The same, to be given an environment or run in the background first.
fn aisle_command(db: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aisle"));
    command.arg("--db").arg(db).args(args);
    command
}

/// Everything a run printed, stdout then stderr.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A successful run's stdout (the run's output in the failure otherwise).
fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf8")
}
