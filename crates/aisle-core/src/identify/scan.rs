//! A card or app code shown to a camera until a member is identified: the
//! associate tablet's "Scan card". Frames from any [`FrameSource`] are
//! decoded, a read counts once seen in two consecutive frames
//! ([`Confirmer`]), and the text goes through [`identify`] (check digit or
//! signature, window, replay cache, audit of refused codes). The caller
//! decides how long to look and can stop the scan at any moment.

use std::time::Duration;

use rusqlite::Connection;

use super::accept::Confirmer;
use super::decode::{self, DecodeOptions};
use super::frame::{FrameError, FrameSource};
use super::member_code::CodePolicy;
use super::resolve::{Identified, identify};

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    Member(i64),
    /// A code that does not identify a member (a product, a coupon, a card
    /// with a wrong check digit, an expired or forged app code): the reason
    /// code and a sentence.
    Refused {
        code: &'static str,
        message: String,
    },
    /// The source has no camera (or no more frames).
    NoCamera(String),
    /// `keep_going` said stop (cancelled, or the time is up).
    Stopped,
}

/// Looks at `source` while `keep_going()` holds. `now_secs` reads the clock
/// for each identification (app codes rotate).
pub fn scan_member(
    source: &mut dyn FrameSource,
    conn: &Connection,
    device: &str,
    now_secs: impl Fn() -> u64,
    policy: &CodePolicy,
    keep_going: impl Fn() -> bool,
) -> rusqlite::Result<Scanned> {
    let mut confirmer = Confirmer::default();
    while keep_going() {
        let frame = match source.next_frame(Duration::from_millis(200)) {
            Ok(frame) => frame,
            Err(FrameError::Timeout | FrameError::BadSize { .. }) => continue,
            Err(FrameError::Disconnected(_)) => {
                // The camera reconnects by itself; a short pause, not a spin.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(FrameError::Ended) => return Ok(Scanned::NoCamera("no more frames".into())),
            Err(error @ (FrameError::NoCamera(_) | FrameError::Unreadable { .. })) => {
                return Ok(Scanned::NoCamera(error.to_string()));
            }
        };
        let symbols = match decode::decode(&frame, &DecodeOptions::LIVE) {
            Ok(decoded) => decoded.symbols,
            Err(error) => {
                tracing::warn!(%error, "frame skipped");
                Vec::new()
            }
        };
        // The first accepted read decides (two codes at once: the first).
        if let Some(symbol) = confirmer.observe(&symbols).into_iter().next() {
            return Ok(
                match identify(conn, &symbol.text, device, now_secs(), policy)? {
                    Identified::Member { member_id, .. } => Scanned::Member(member_id),
                    Identified::Product { .. } | Identified::Coupon { .. } => Scanned::Refused {
                        code: "not_a_member",
                        message: "That is not a loyalty card or member code".into(),
                    },
                    Identified::CodeRefused { reason, .. } => Scanned::Refused {
                        code: reason.code(),
                        message: format!("The member code was refused: {reason}"),
                    },
                    Identified::Refused { code, message } => Scanned::Refused { code, message },
                },
            );
        }
    }
    Ok(Scanned::Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identify::frame::{ImageSource, Playback};

    fn source(files: &[&str], playback: Playback) -> ImageSource {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/scans");
        let mut frames = Vec::new();
        for file in files {
            frames.extend(crate::identify::frame::read_frames(&dir.join(file)).expect("picture"));
        }
        ImageSource::from_frames("test", frames, playback)
    }

    fn replica() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::replica::open_writer(&dir.path().join("r.db")).expect("replica");
        (dir, conn)
    }

    #[test]
    fn a_code_counts_after_two_frames_and_a_product_is_not_a_member() {
        let (_dir, conn) = replica();
        // One frame of a product code is not enough; two are, and a product
        // (not in this empty replica) is refused as what it is.
        let mut once = source(&["ean13.png"], Playback::Once);
        let scanned = scan_member(&mut once, &conn, "t", || 0, &CodePolicy::default(), || true)
            .expect("scan");
        assert!(matches!(scanned, Scanned::NoCamera(_)), "{scanned:?}");
        let mut twice = source(&["ean13.png", "ean13.png"], Playback::Once);
        let scanned = scan_member(
            &mut twice,
            &conn,
            "t",
            || 0,
            &CodePolicy::default(),
            || true,
        )
        .expect("scan");
        assert!(matches!(scanned, Scanned::Refused { .. }), "{scanned:?}");
    }

    #[test]
    fn a_stopped_scan_stops() {
        let (_dir, conn) = replica();
        let blank = crate::identify::frame::Frame::new(64, 64, vec![255; 64 * 64]).expect("frame");
        let mut looping = ImageSource::from_frames("blank", vec![blank], Playback::Loop);
        let calls = std::cell::Cell::new(0);
        let scanned = scan_member(
            &mut looping,
            &conn,
            "t",
            || 0,
            &CodePolicy::default(),
            || {
                calls.set(calls.get() + 1);
                calls.get() < 4
            },
        )
        .expect("scan");
        assert_eq!(scanned, Scanned::Stopped);
        assert_eq!(calls.get(), 4);
    }
}
