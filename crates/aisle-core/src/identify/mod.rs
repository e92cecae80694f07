//! Identifying members at the kiosk and the tablet: what scanners and
//! cameras deliver, parsed and classified before any look-up.
//!
//! - [`wedge`]: keyboard-wedge scanners (a burst of keystrokes ending in
//!   Enter), told apart from a person typing, and magnetic-stripe tracks.

pub mod wedge;
