//! Scanning benchmarks: decode time on camera-sized frames, scan-to-welcome
//! on a replica, and the fuzz run over every parser that reads untrusted
//! input. Each reports beside a baseline measured in the same run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use aisle_core::identify::decode::{self, DecodeOptions};
use aisle_core::identify::frame::{self, Frame};
use aisle_core::identify::member_code::{self, CodePolicy};
use aisle_core::identify::wedge::{Key, KeyEvent, WedgeConfig, WedgeParser};
use aisle_core::identify::{self, scan_eval};
use aisle_core::keys;
use aisle_core::recommend::{artifact, serve};
use aisle_core::rng::SplitMix64;
use aisle_core::time::Day;
use anyhow::{Context, Result, bail};

use crate::bench::{Summary, print_summaries, summarize};
use crate::output::Out;

/// Every corpus photo placed on a 1280x720 frame (a kiosk camera's), plus
/// as many frames without a code; decoded as the live scan loop does.
pub fn decode_frames(manifest: &Path, out: &mut Out) -> Result<()> {
    let (dir, entries) = scan_eval::read_manifest(manifest)?;
    let mut frames = Vec::new();
    for entry in &entries {
        let Some(photo) = frame::read_frames(&dir.join(&entry.file))?
            .into_iter()
            .next()
        else {
            continue;
        };
        let x = 1280u32.saturating_sub(photo.width()) / 2;
        let y = 720u32.saturating_sub(photo.height()) / 2;
        frames.push(photo.placed_on(1280, 720, x, y, 128));
    }
    // Frames without a code: the same photos with rows and columns shuffled
    // (a scene's tones and noise, no symbol left).
    let mut rng = SplitMix64::new(5);
    let empty: Vec<Frame> = frames
        .iter()
        .map(|f| {
            let mut rows: Vec<usize> = (0..720).collect();
            let mut cols: Vec<usize> = (0..1280).collect();
            for order in [&mut rows, &mut cols] {
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
            }
            let luma = rows
                .iter()
                .flat_map(|&r| cols.iter().map(move |&c| (r, c)))
                .map(|(r, c)| f.luma()[r * 1280 + c])
                .collect();
            Frame::new(1280, 720, luma).expect("same size")
        })
        .collect();
    let time = |frames: &[Frame], options: &DecodeOptions| -> Result<(Vec<Duration>, usize)> {
        let mut samples = Vec::with_capacity(frames.len());
        let mut read = 0;
        for f in frames {
            let started = Instant::now();
            let decoded = decode::decode(f, options)?;
            samples.push(started.elapsed());
            read += usize::from(!decoded.symbols.is_empty());
        }
        Ok((samples, read))
    };
    let (plain, plain_read) = time(&frames, &DecodeOptions::PLAIN)?;
    let (live, live_read) = time(&frames, &DecodeOptions::LIVE)?;
    let (plain_empty, _) = time(&empty, &DecodeOptions::PLAIN)?;
    let (live_empty, false_reads) = time(&empty, &DecodeOptions::LIVE)?;
    let results = [
        summarize("baseline: plain read, photo in frame", plain),
        summarize("live (ladder if located, 40 ms), photo", live),
        summarize("baseline: plain read, no code", plain_empty),
        summarize("live (ladder if located, 40 ms), no code", live_empty),
    ];
    out.line(format_args!(
        "{} photos of {} on 1280x720 frames, one thread; read: plain {plain_read}, live {live_read}; \
         frames without a code read as something: {false_reads}",
        frames.len(),
        manifest.display()
    ))?;
    print_summaries(out, &results)?;
    out.line(format_args!(
        "  live median / plain median = {:.2}x (photo), {:.2}x (no code)",
        results[1].p50_us / results[0].p50_us,
        results[3].p50_us / results[2].p50_us
    ))?;
    out.json(&results)
}

/// Decoded member code -> identified -> welcome screen data, for random
/// members of the replica (keys provisioned for them first: the bench
/// writes demo keys and replay rows into the replica it is given).
pub fn welcome(db: &Path, queries: usize, seed: u64, out: &mut Out) -> Result<()> {
    let conn = aisle_core::replica::open_writer(db)?;
    let loaded = artifact::load_newest(&conn).context("run `aisle train` first")?;
    let served = serve::Served::new(loaded.artifact.model);
    let now = Day::parse(&loaded.artifact.trained_until)?
        .start()
        .plus_secs(12 * 3600);
    let members: Vec<(i64, Option<i64>)> = conn
        .prepare("SELECT member_id, home_store_id FROM members WHERE erased_at IS NULL")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(!members.is_empty(), "the replica has no members");
    let store_id: i64 = conn.query_row("SELECT min(store_id) FROM stores", [], |r| r.get(0))?;
    let mut rng = SplitMix64::new(seed);
    let policy = CodePolicy::default();
    let serve_policy = serve::Policy::default();
    let base_secs = 1_795_000_000u64;
    let mut sample = Vec::with_capacity(queries);
    for i in 0..queries {
        let (member_id, home) = members[rng.below(members.len() as u64) as usize];
        let key = match keys::demo_signing_key(&conn, member_id)? {
            Some(key) => key,
            None => {
                let key = keys::demo_member_key(member_id);
                keys::set_code_key(
                    &conn,
                    member_id,
                    keys::DEMO_KEY_ID,
                    &key.verifying_key(),
                    now,
                )?;
                key
            }
        };
        // Each query a minute apart: a fresh window, no replay.
        let at = base_secs + 60 * i as u64;
        let text = member_code::encode(member_id, &key, at, &policy);
        sample.push((member_id, home.unwrap_or(store_id), at, text));
    }
    let mut baseline = Vec::with_capacity(queries);
    let mut identify_only = Vec::with_capacity(queries);
    let mut whole = Vec::with_capacity(queries);
    let mut by_id = conn.prepare("SELECT given_name FROM members WHERE member_id = ?1")?;
    for (member_id, store, at, text) in &sample {
        let started = Instant::now();
        let _: Option<String> = by_id.query_row([member_id], |row| row.get(0))?;
        baseline.push(started.elapsed());

        let started = Instant::now();
        let identified = identify::identify(&conn, text, "bench", *at, &policy)?;
        let identified_at = started.elapsed();
        let identify::Identified::Member {
            member_id: found, ..
        } = identified
        else {
            bail!("member {member_id}'s code was refused: {identified:?}");
        };
        let screen =
            aisle_core::welcome::welcome(&conn, &served, found, *store, now, 6, &serve_policy)?;
        whole.push(started.elapsed());
        identify_only.push(identified_at);
        anyhow::ensure!(screen.member_id == *member_id);
    }
    let results: [Summary; 3] = [
        summarize("baseline: member's first name by id", baseline),
        summarize("identify (verify, replay cache, audit)", identify_only),
        summarize("decoded code -> welcome data", whole),
    ];
    out.line(format_args!(
        "{queries} member codes over {} members of {}",
        members.len(),
        db.display()
    ))?;
    print_summaries(out, &results)?;
    out.line(format_args!(
        "  scan-to-welcome p99 / baseline p99 = {:.1}x",
        results[2].p99_us / results[0].p99_us
    ))?;
    out.json(&results)
}

/// Counts of a fuzz run.
#[derive(Debug, Default, serde::Serialize)]
struct Fuzzed {
    target: &'static str,
    inputs: u64,
    panics: u64,
    accepted: u64,
    /// Reads that are wrong (damaged photos only).
    wrong: u64,
    seconds: f64,
}

/// Random and mutated inputs through every parser of untrusted input; fails
/// on the first panic, naming the input.
pub fn fuzz(inputs: u64, seed: u64, assets: &Path, out: &mut Out) -> Result<()> {
    let mut rng = SplitMix64::new(seed);
    let policy = CodePolicy::default();
    let key = keys::demo_member_key(42);
    let valid = member_code::encode(42, &key, 1_795_000_000, &policy);
    let mut results = Vec::new();

    // 1. Member codes: valid codes mutated byte by byte, and random text.
    results.push(measure("member code parse + verify", |run| {
        for _ in 0..inputs {
            let text = mutate_text(&valid, &mut rng);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                member_code::parse(&text).map(|code| {
                    member_code::verify(&code, &key.verifying_key(), 1_795_000_000, &policy)
                })
            }));
            run.inputs += 1;
            match outcome {
                // Only the untouched code may verify: anything else accepted
                // would be a forgery passing.
                Ok(Ok(Ok(()))) if text.trim() == valid => run.accepted += 1,
                Ok(Ok(Ok(()))) => bail!("a mutated member code verified: {text:?}"),
                Ok(_) => {}
                Err(_) => bail!("member code parser panicked on {text:?}"),
            }
        }
        Ok(())
    })?);

    // 2. Wedge: random key streams with random timing.
    results.push(measure("keyboard-wedge parser (events)", |run| {
        let mut parser = WedgeParser::new(WedgeConfig::default());
        let mut clock = 0u64;
        for _ in 0..inputs {
            clock += rng.below(120);
            let key = match rng.below(20) {
                0 => Key::Enter,
                1 => Key::Tab,
                2 => Key::Other,
                _ => Key::Char(random_char(&mut rng)),
            };
            let event = KeyEvent { at_ms: clock, key };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                (parser.feed(event), parser.idle(clock + rng.below(200)))
            }));
            run.inputs += 1;
            match outcome {
                Ok((a, b)) => run.accepted += u64::from(a.is_some()) + u64::from(b.is_some()),
                Err(_) => bail!("wedge parser panicked at {event:?}"),
            }
        }
        Ok(())
    })?);

    // 3. The decoder boundary: random frames of random sizes and contents.
    results.push(measure("decoder (random frames, plain read)", |run| {
        for _ in 0..inputs {
            let width = 1 + rng.below(48) as u32;
            let height = 1 + rng.below(48) as u32;
            let style = rng.below(3);
            let luma: Vec<u8> = (0..width * height)
                .map(|_| match style {
                    0 => rng.next_u64() as u8,
                    1 => (rng.below(2) * 255) as u8,
                    _ => (rng.below(4) * 85) as u8,
                })
                .collect();
            let frame = Frame::new(width, height, luma)?;
            let outcome = decode::decode(&frame, &DecodeOptions::PLAIN);
            run.inputs += 1;
            match outcome {
                Ok(decoded) => run.accepted += u64::from(!decoded.symbols.is_empty()),
                Err(err) => bail!("decoder failed on a {width}x{height} frame: {err}"),
            }
        }
        Ok(())
    })?);

    // 4. Picture files: the demo photos' bytes mutated, then decoded (image
    // parsing and the ladder on whatever survives).
    results.push(measure("picture files (mutated photos, ladder)", |run| {
        let photos: Vec<Vec<u8>> = std::fs::read_dir(assets)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .map(std::fs::read)
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(!photos.is_empty(), "no photos in {}", assets.display());
        let scratch = tempfile::tempdir()?;
        let path = scratch.path().join("fuzzed.png");
        for _ in 0..(inputs / 1000).max(100) {
            let mut bytes = photos[rng.below(photos.len() as u64) as usize].clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
            std::fs::write(&path, &bytes)?;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                frame::read_frames(&path).map(|frames| {
                    frames
                        .iter()
                        .map(|f| decode::decode(f, &DecodeOptions::STILL))
                        .collect::<Vec<_>>()
                })
            }));
            run.inputs += 1;
            match outcome {
                Ok(Ok(decoded)) => run.accepted += u64::from(decoded.iter().any(Result::is_ok)),
                Ok(Err(_)) => {}
                Err(_) => {
                    let kept = scratch.path().join("panic.png");
                    std::fs::copy(&path, &kept)?;
                    bail!("panicked on a mutated photo (kept at {})", kept.display());
                }
            }
        }
        Ok(())
    })?);

    // 5. The demo photos with damaged pixels (blocks overwritten, stripes
    // inverted), through the whole ladder: reads must stay right or absent.
    results.push(measure("damaged photos (ladder)", |run| {
        let manifest = assets.join("manifest.csv");
        let (dir, entries) = scan_eval::read_manifest(&manifest)?;
        let originals: Vec<(scan_eval::Labelled, Frame)> = entries
            .into_iter()
            .map(|e| {
                let f = frame::read_frames(&dir.join(&e.file))?.remove(0);
                Ok((e, f))
            })
            .collect::<Result<_>>()?;
        for _ in 0..(inputs / 2000).max(100) {
            let (entry, original) = &originals[rng.below(originals.len() as u64) as usize];
            let (w, h) = (original.width(), original.height());
            let mut luma = original.luma().to_vec();
            for _ in 0..1 + rng.below(4) {
                let (bw, bh) = (
                    1 + rng.below(u64::from(w) / 4) as u32,
                    1 + rng.below(u64::from(h) / 4) as u32,
                );
                let (x, y) = (
                    rng.below(u64::from(w - bw + 1)) as u32,
                    rng.below(u64::from(h - bh + 1)) as u32,
                );
                let (invert, value) = (rng.below(2) == 0, rng.next_u64() as u8);
                for yy in y..y + bh {
                    for xx in x..x + bw {
                        let p = &mut luma[(yy * w + xx) as usize];
                        *p = if invert { 255 - *p } else { value };
                    }
                }
            }
            let damaged = Frame::new(w, h, luma)?;
            let decoded = decode::decode(&damaged, &DecodeOptions::STILL)?;
            run.inputs += 1;
            let (hit, misread) = scan_eval::score(entry, &decoded.symbols);
            run.accepted += u64::from(hit);
            run.wrong += u64::from(misread);
        }
        Ok(())
    })?);

    let total: u64 = results.iter().map(|r| r.inputs).sum();
    for r in &results {
        out.line(format_args!(
            "  {:<40} {:>9} inputs  {:>8} accepted/read  {:>4} wrong  0 panics  {:>6.1} s",
            r.target, r.inputs, r.accepted, r.wrong, r.seconds
        ))?;
    }
    out.line(format_args!("{total} inputs, no panic"))?;
    out.json(&results)
}

/// Runs one fuzz target, timing it.
fn measure(target: &'static str, body: impl FnOnce(&mut Fuzzed) -> Result<()>) -> Result<Fuzzed> {
    let mut run = Fuzzed {
        target,
        ..Fuzzed::default()
    };
    let started = Instant::now();
    body(&mut run)?;
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

fn random_char(rng: &mut SplitMix64) -> char {
    match rng.below(4) {
        0 => char::from(b'0' + rng.below(10) as u8),
        1 => char::from(b'A' + rng.below(26) as u8),
        2 => [':', ';', '%', '^', '?', '=', ' ', '\u{e9}', '\u{1f600}'][rng.below(9) as usize],
        _ => char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'),
    }
}

fn mutate_text(valid: &str, rng: &mut SplitMix64) -> String {
    let mut chars: Vec<char> = valid.chars().collect();
    match rng.below(6) {
        0 => (0..rng.below(160)).map(|_| random_char(rng)).collect(),
        1 => {
            chars.truncate(rng.below(chars.len() as u64 + 1) as usize);
            chars.into_iter().collect()
        }
        _ => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(chars.len() as u64) as usize;
                match rng.below(3) {
                    0 => chars[at] = random_char(rng),
                    1 => {
                        chars.remove(at);
                    }
                    _ => chars.insert(at, random_char(rng)),
                }
                if chars.is_empty() {
                    break;
                }
            }
            chars.into_iter().collect()
        }
    }
}
