//! `aisle scan` and `aisle eval scan` on the real photos in assets/scans.

use std::path::{Path, PathBuf};
use std::process::Command;

fn aisle() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aisle"));
    cmd.env_remove("RUST_LOG");
    cmd
}

fn scans() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/scans")
}

fn expected(file: &str) -> String {
    let mut reader = csv::Reader::from_path(scans().join("manifest.csv")).expect("manifest");
    reader
        .records()
        .map(|r| r.expect("row"))
        .find(|r| &r[0] == file)
        .map(|r| r[2].to_owned())
        .expect("listed")
}

#[test]
fn scan_writes_one_csv_row_per_symbol_with_exact_text_and_a_row_for_nothing_read() {
    let files = [
        "qr-photo.png",
        "ean13-blurred.png",
        "code128.png",
        "upca-pouch.png",
    ];
    let output = aisle()
        .arg("scan")
        .args(files.iter().map(|f| scans().join(f)))
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        ["file", "symbology", "decoded_text", "ms"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 4, "one row per file here");
    let qr = &rows[0];
    assert!(qr[0].ends_with("qr-photo.png"));
    assert_eq!(&qr[1], "qr_code");
    // A payload with CR LF, a trailing space and Japanese text, byte for byte.
    assert_eq!(&qr[2], expected("qr-photo.png"));
    assert!(qr[2].contains("\r\n"));
    assert!(qr[3].parse::<f64>().expect("ms") >= 0.0);
    assert_eq!(
        (&rows[1][1], &rows[1][2]),
        ("", ""),
        "nothing read: empty symbology and text"
    );
    assert_eq!(
        (&rows[2][1], &rows[2][2]),
        ("code_128", expected("code128.png").as_str())
    );
    assert_eq!((&rows[3][1], &rows[3][2]), ("upc_a", "890444000335"));
}

#[test]
fn scan_names_files_it_cannot_read_and_still_scans_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n not really").expect("write");
    let output = aisle()
        .arg("scan")
        .arg(&broken)
        .arg(scans().join("ean13.png"))
        .arg(dir.path().join("missing.jpg"))
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 of 3 files could not be scanned"),
        "{stderr}"
    );
    assert!(
        stderr.contains("broken.png") && stderr.contains("missing.jpg"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ean_13,9780441014989,"), "{stdout}");
}

#[test]
fn eval_scan_reports_rates_misreads_and_the_plain_read_baseline() {
    let output = aisle()
        .args(["--json", "eval", "scan", "--manifest"])
        .arg(scans().join("manifest.csv"))
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let all = &report["summary"]["all"];
    assert_eq!(all["images"], 7);
    assert_eq!(all["decoded"], 6, "all but the blurred one: {report}");
    assert_eq!(all["misread"], 0);
    assert_eq!(report["baseline_plain_read"]["all"]["decoded"], 3);
    let qr = report["summary"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["symbology"] == "qr_code")
        .expect("qr row");
    assert_eq!(
        (qr["images"].as_u64(), qr["decoded"].as_u64()),
        (Some(2), Some(2))
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("manifest.csv");
    std::fs::write(&manifest, "file,format,expected_text\na.png,aztec,x\n").expect("write");
    let output = aisle()
        .args(["eval", "scan", "--manifest"])
        .arg(&manifest)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("row 2") && stderr.contains("aztec"),
        "{stderr}"
    );
}
