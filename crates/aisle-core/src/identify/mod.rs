//! Identifying members at the kiosk and the tablet: what scanners and
//! cameras deliver, parsed and classified before any look-up.
//!
//! - [`wedge`]: keyboard-wedge scanners (a burst of keystrokes ending in
//!   Enter), told apart from a person typing, and magnetic-stripe tracks.
//! - [`member_code`]: the rotating, Ed25519-signed codes of members' phones,
//!   parsed and verified offline (pure: the clock is an input).
//! - [`route`]: what a scan is (app code, card, product, coupon) and where it
//!   goes, with a reason code for everything refused.
//! - [`frame`]: grayscale frames and the [`frame::FrameSource`] trait, with
//!   still-image, folder and animated-GIF sources.
//! - [`decode`]: QR, EAN-13, UPC-A, Code 128 and Code 39 from a frame
//!   (zxing-cpp behind one guarded boundary, with a voting retry ladder);
//!   [`scan_eval`] measures it on labelled photographs. These, [`accept`]
//!   and [`scan`] come with the `decode` feature (the C++ decoder): HQ and
//!   the till build the core without it.
//! - [`accept`]: a camera read counts once seen in two consecutive frames.
//! - [`resolve`]: [`identify`], the whole offline path: route, the member's
//!   key, verification, the replay cache and the audit of refusals.
//! - [`scan`]: a camera looked at until a member is identified (the tablet).
//! - [`lookup`]: manual look-up by associates (phone, e-mail, card, name);
//!   never on the public kiosk. [`phone`]: phone numbers read as E.164.

#[cfg(feature = "decode")]
pub mod accept;
#[cfg(feature = "decode")]
pub mod decode;
pub mod frame;
pub mod lookup;
pub mod member_code;
pub mod phone;
pub mod resolve;
pub mod route;
#[cfg(feature = "decode")]
pub mod scan;
#[cfg(feature = "decode")]
pub mod scan_eval;
pub mod wedge;

pub use resolve::{Evidence, Identified, identify};
