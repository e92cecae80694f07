//! `cargo xtask bench tablet`: the associate app (release build) in
//! WebKitGTK under Xvfb on a large replica, measured from inside the page:
//!
//! - search as you type: the round trip of `search_members` through Tauri's
//!   real IPC, timed in the webview (`performance.now()` around `invoke`),
//!   for prefixes of names as typed, cards, phones and e-mails; baseline:
//!   the round trip of `whoami` (IPC and the session check, no SQL),
//!   interleaved in the same loop;
//! - cold start: from asking WebKitWebDriver for a session (which launches
//!   the app) to the sign-in form being on the page; baseline: the process
//!   start of `aisle-associate --version`;
//! - resident memory: the app and its WebKit processes, after the searches
//!   and a client's screen opened through the page (drawn in full).
//!
//!   Baseline: a blank page in a Tauri window on the same WebKit
//!   (`examples/blank_window.rs`), the floor any WebKitGTK app starts from.
//!
//! Usage: bench_tablet --binary PATH --blank PATH --db REPLICA [--queries N] [--starts K]

// A benchmark reports on stdout.
#![allow(clippy::print_stdout)]

#[path = "../tests/it/support/webkit.rs"]
mod webkit;

use aisle_core::time::lit::ts;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rusqlite::Connection;
use serde_json::{Value, json};

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// What an associate types, from random members of the replica: names as
/// typed (2 to 6 letters), whole cards, phones and e-mail starts.
fn queries(conn: &Connection, count: usize) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT m.family_name, m.given_name, m.phone, m.email, c.card_number
         FROM members m LEFT JOIN member_cards c ON c.member_id = m.member_id
         WHERE m.erased_at IS NULL AND m.member_id IN
             (SELECT member_id FROM members ORDER BY random() LIMIT ?1)",
    )?;
    let rows = stmt.query_map([i64::try_from(count)?], |row| {
        Ok((
            row.get::<_, Option<String>>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, Option<String>>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut out = Vec::with_capacity(count);
    for (i, row) in rows.enumerate() {
        let (family, given, phone, email, card) = row?;
        let typed = |name: Option<String>, len: usize| {
            name.map(|n| n.chars().take(len).collect::<String>())
        };
        let query = match i % 6 {
            0 => typed(family, 2 + i % 5),
            1 => typed(given, 3),
            2 => card,
            3 => phone,
            4 => email.map(|e| e.chars().take(8).collect()),
            _ => typed(family, 6),
        };
        if let Some(query) = query.filter(|q| !q.trim().is_empty()) {
            out.push(query);
        }
        if out.len() == count {
            break;
        }
    }
    Ok(out)
}

/// One process's memory, kB: resident (shared library pages counted in
/// full in every process that maps them), anonymous resident (its own heap
/// and stacks), and proportional (shared pages divided among the processes
/// sharing them: the sum over processes is the true footprint).
#[derive(Debug, Default, Clone, Copy)]
struct Memory {
    rss: u64,
    anon: u64,
    pss: u64,
}

fn kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A live process: its parent and its name (`comm`, at most 15 bytes).
struct Process {
    parent: u32,
    name: String,
}

/// Every live process (zombies hold no memory and are left out).
fn processes() -> Result<std::collections::HashMap<u32, Process>> {
    let mut all = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Ok(pid) = name.to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let mut rest = stat[close + 1..].split_whitespace();
        let (state, parent) = (rest.next(), rest.next());
        if state == Some("Z") {
            continue;
        }
        all.insert(
            pid,
            Process {
                parent: parent.and_then(|p| p.parse().ok()).unwrap_or(0),
                name: stat[open + 1..close].to_owned(),
            },
        );
    }
    Ok(all)
}

fn below(all: &std::collections::HashMap<u32, Process>, mut pid: u32, root: u32) -> bool {
    while pid > 1 {
        if pid == root {
            return true;
        }
        pid = all.get(&pid).map_or(0, |p| p.parent);
    }
    false
}

/// Waits (20 s at most) until no WebKit process lives outside `root`'s
/// tree: an earlier session's leftovers would share library pages with the
/// measured processes and make their proportional figures look smaller.
fn settle(root: u32) -> Result<()> {
    let started = Instant::now();
    loop {
        let all = processes()?;
        let strays: Vec<String> = all
            .iter()
            .filter(|(pid, p)| {
                **pid != root && p.name.starts_with("WebKit") && !below(&all, **pid, root)
            })
            .map(|(pid, p)| format!("{} ({pid})", p.name))
            .collect();
        if strays.is_empty() {
            return Ok(());
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            bail!(
                "WebKit processes outside the measured app would skew its memory: {}",
                strays.join(", ")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The memory of every process below `root` (the app and its WebKit processes).
fn tree_memory(root: u32) -> Result<Vec<(String, Memory)>> {
    settle(root)?;
    let all = processes()?;
    let mut each = Vec::new();
    for (&pid, process) in &all {
        if pid == root || !below(&all, pid, root) {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        each.push((
            process.name.clone(),
            Memory {
                rss: kb(&status, "VmRSS:"),
                anon: kb(&status, "RssAnon:"),
                pss: kb(&rollup, "Pss:"),
            },
        ));
    }
    each.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(each)
}

/// One second for the page to finish drawing before its memory is read.
fn settle_page(driver: &webkit::Driver) {
    driver.execute_async(
        "const done = arguments[arguments.length - 1]; setTimeout(done, 1000);",
        &json!([]),
    );
}

fn total(each: &[(String, Memory)]) -> Memory {
    each.iter().fold(Memory::default(), |sum, (_, m)| Memory {
        rss: sum.rss + m.rss,
        anon: sum.anon + m.anon,
        pss: sum.pss + m.pss,
    })
}

/// The floor: a blank page in a Tauri window on the same WebKit, drawn the
/// same way, measured once it is on screen (the app is gone by then).
fn blank_window(binary: &std::path::Path) -> Result<Vec<(String, Memory)>> {
    let browser = webkit::Browser::start(binary, &[]);
    let driver = browser.session();
    driver.find("#blank");
    settle_page(&driver);
    let each = tree_memory(browser.driver_pid())?;
    driver.quit();
    Ok(each)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let binary = PathBuf::from(flag(&args, "--binary").context("--binary PATH")?);
    let blank = PathBuf::from(flag(&args, "--blank").context("--blank PATH")?);
    let db = PathBuf::from(flag(&args, "--db").context("--db REPLICA")?);
    let count: usize = flag(&args, "--queries").map_or(Ok(1000), |v| v.parse())?;
    let starts: usize = flag(&args, "--starts").map_or(Ok(10), |v| v.parse())?;

    // The store, its associates (the demo's, if it has none) and the queries.
    let (store_id, members, sample, (client_name, client_card)) = {
        let mut conn = aisle_core::replica::open_writer(&db)?;
        let store_id: i64 = conn.query_row(
            "SELECT store_id FROM store_products GROUP BY store_id ORDER BY count(*) DESC LIMIT 1",
            [],
            |row| row.get(0),
        )?;
        let has: bool = conn
            .prepare("SELECT 1 FROM associates WHERE staff_id = 1001 AND store_id = ?1")?
            .exists([store_id])?;
        if !has {
            let tx = conn.transaction()?;
            aisle_core::demo::add_associates(&tx, store_id, ts("2026-11-26 00:00:00"))?;
            tx.commit()?;
        }
        // The client screen needs the recommendation model (`aisle train`).
        if aisle_core::recommend::artifact::load_newest(&conn).is_err() {
            println!("fitting the recommendation model first (the client screen needs it)");
            let fitted = aisle_core::recommend::artifact::fit_from(
                &conn,
                None,
                1,
                ts("2026-11-26 00:00:00"),
            )?;
            aisle_core::recommend::artifact::store(&conn, &fitted)?;
        }
        let members: i64 = conn.query_row("SELECT count(*) FROM members", [], |r| r.get(0))?;
        // The client the memory is read on: one with history, shown in full.
        let client: (String, String) = conn.query_row(
            "SELECT m.display_name, c.card_number FROM members m
             JOIN member_cards c ON c.member_id = m.member_id
             WHERE m.erased_at IS NULL AND m.consent_personalization = 1
               AND EXISTS (SELECT 1 FROM baskets b WHERE b.member_id = m.member_id)
             LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        (store_id, members, queries(&conn, count)?, client)
    };
    println!(
        "replica {} ({members} members), store {store_id}, {} queries",
        db.display(),
        sample.len()
    );

    // Baseline for the start: the process alone.
    let mut plain = Vec::new();
    for _ in 0..starts {
        let started = Instant::now();
        let status = std::process::Command::new(&binary)
            .arg("--version")
            .output()?;
        if !status.status.success() {
            bail!("{} --version failed", binary.display());
        }
        plain.push(started.elapsed().as_secs_f64() * 1e3);
    }

    let browser = webkit::Browser::start(
        &binary,
        &[
            ("AISLE_DB", db.display().to_string()),
            ("AISLE_STORE", store_id.to_string()),
            ("AISLE_IDLE_LOCK_SECS", "3600".to_owned()),
        ],
    );
    let mut cold = Vec::new();
    for _ in 0..starts {
        let started = Instant::now();
        let driver = browser.session();
        driver.find("[data-testid=signin]");
        cold.push(started.elapsed().as_secs_f64() * 1e3);
        driver.quit();
    }

    let driver = browser.session();
    driver.type_into(&driver.find("#staff"), "1001");
    driver.type_into(&driver.find("#pin"), "2468");
    driver.click(&driver.find("[data-testid=signin-submit]"));
    driver.wait_text("[data-testid=who]", |t| t.contains("Alex"));
    driver.call(
        reqwest::Method::POST,
        "timeouts",
        Some(json!({ "script": 600_000 })),
    );
    let timings = driver.execute_async(
        r#"
        const [queries, done] = [arguments[0], arguments[arguments.length - 1]];
        const invoke = window.__TAURI_INTERNALS__.invoke;
        (async () => {
          const search = [], base = [];
          let hits = 0;
          for (const text of queries) {
            let t = performance.now();
            const found = await invoke("search_members", { args: { text, limit: 20 } });
            search.push(performance.now() - t);
            hits += found.length;
            t = performance.now();
            await invoke("whoami", {});
            base.push(performance.now() - t);
          }
          done({ search, base, hits });
        })().catch((e) => done({ error: JSON.stringify(e) }));
        "#,
        &json!([sample]),
    );
    if let Some(error) = timings.get("error") {
        bail!("the page failed: {error}");
    }
    let read = |key: &str| -> Vec<f64> {
        timings[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let search = sorted(read("search"));
    let base = sorted(read("base"));
    // A client's screen as an associate opens it: searched, clicked, drawn
    // (chart, baskets, suggestions, offers).
    driver.type_into(&driver.find("#q"), &client_card);
    driver.wait_text("[data-testid=hits]", |t| t.contains(&client_name));
    driver.click(&driver.find_xpath(&format!("//button[contains(., \"{client_name}\")]")));
    driver.wait_text("[data-testid=client]", |t| t.contains("Buy again"));
    settle_page(&driver);
    let each = tree_memory(browser.driver_pid())?;
    driver.quit();
    drop(browser);
    let floor = blank_window(&blank)?;

    let plain = sorted(plain);
    let cold = sorted(cold);
    println!(
        "search round trip ({} searches, {} hits): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        search.len(),
        timings["hits"],
        percentile(&search, 50.0),
        percentile(&search, 99.0),
        search.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "baseline whoami round trip: p50 {:.2} ms, p99 {:.2} ms; ratio at p99 {:.1}x",
        percentile(&base, 50.0),
        percentile(&base, 99.0),
        percentile(&search, 99.0) / percentile(&base, 99.0)
    );
    println!(
        "cold start to the sign-in form ({starts} launches): p50 {:.0} ms, max {:.0} ms; baseline `--version` p50 {:.1} ms",
        percentile(&cold, 50.0),
        cold.last().copied().unwrap_or(f64::NAN),
        percentile(&plain, 50.0)
    );
    let mb = |kb: u64| kb as f64 / 1024.0;
    let (app, base) = (total(&each), total(&floor));
    println!(
        "memory after the searches and a client screen: proportional (PSS) {:.1} MB in all, resident {:.1} MB (shared pages counted per process), anonymous {:.1} MB",
        mb(app.pss),
        mb(app.rss),
        mb(app.anon)
    );
    println!(
        "baseline blank Tauri window: PSS {:.1} MB in all, resident {:.1} MB, anonymous {:.1} MB; the app's own PSS above it {:.1} MB (ratio {:.2}x)",
        mb(base.pss),
        mb(base.rss),
        mb(base.anon),
        mb(app.pss.saturating_sub(base.pss)),
        app.pss as f64 / base.pss.max(1) as f64
    );
    for (label, list) in [("app", &each), ("blank", &floor)] {
        for (name, m) in list {
            println!(
                "  {label} {name}: PSS {:.1} MB, resident {:.1} MB, anonymous {:.1} MB",
                mb(m.pss),
                mb(m.rss),
                mb(m.anon)
            );
        }
    }
    Ok(())
}
