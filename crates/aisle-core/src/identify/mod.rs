//! Identifying members at the kiosk and the tablet: what scanners and
//! cameras deliver, parsed and classified before any look-up.
//!
//! - [`wedge`]: keyboard-wedge scanners (a burst of keystrokes ending in
//!   Enter), told apart from a person typing, and magnetic-stripe tracks.
//! - [`member_code`]: the rotating, Ed25519-signed codes of members' phones,
//!   parsed and verified offline (pure: the clock is an input).
//! - [`route`]: what a scan is (app code, card, product, coupon) and where it
//!   goes, with a reason code for everything refused.

pub mod decode;
pub mod frame;
pub mod member_code;
pub mod route;
pub mod scan_eval;
pub mod wedge;
