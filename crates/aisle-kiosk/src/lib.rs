//! The Aisle kiosk: a thin Slint shell over `aisle_core::kiosk`.
//!
//! - `ui/kiosk/app.slint`: the screens, one adapter global per screen
//!   (`AttractAdapter`, `WelcomeAdapter`, `ProductAdapter`), `KioskState`
//!   for what they share, `Theme` for the brand.
//! - [`brand`]: `assets/brand/theme.json` and the logo into `Theme`.
//! - [`view`]: pure mapping from the core's outcomes to the UI's structs.
//! - [`backend`]: the replica, the models and the core calls, run on a
//!   worker thread ([`backend::Worker`]) or inline (tests, `--headless`).
//! - [`camera`]: the camera thread (preview, decode, confirmed scans) and
//!   how its events show.
//! - [`controller`]: wires the globals' callbacks, the wedge parser, the
//!   idle session and the popular strip's rotation; applies results.

/// The code slint-build generates from `ui/kiosk/app.slint`.
#[allow(
    unused_qualifications,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
mod ui {
    slint::include_modules!();
}
pub use ui::*;

pub mod app;
pub mod backend;
#[cfg(feature = "bench")]
pub mod bench;
pub mod brand;
pub mod camera;
pub mod controller;
pub mod headless;
pub mod view;

pub use controller::Controller;
