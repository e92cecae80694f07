//! Aisle's camera: frames from a USB or built-in camera, as the core's
//! [`FrameSource`].
//!
//! [`Camera::open`] never fails. A kiosk starts whether or not a camera is
//! plugged in; what the camera is doing is a [`SourceState`]:
//!
//! - `NoCamera`: no device, none matching [`CameraConfig::device`], or none
//!   that would open; [`FrameSource::next_frame`] answers
//!   [`FrameError::NoCamera`] with the reason, and the camera is looked for
//!   again every [`CameraConfig::reconnect_interval`].
//! - `Live`: frames are coming.
//! - `Reconnecting { attempts }`: the camera stopped delivering (unplugged,
//!   or only unreadable frames); it is reopened every `reconnect_interval`
//!   until it is back, and `next_frame` answers [`FrameError::Disconnected`].
//!
//! One capture thread per [`Camera`] owns the device and writes every frame
//! into a single newest-frame slot: a consumer slower than the camera skips
//! frames (counted in [`CaptureStats::skipped`]) instead of queueing them, and
//! never gets a frame older than one it already had. Dropping the [`Camera`]
//! stops and joins the thread.
//!
//! - `capture`: the slot, the capture thread and its state machine, over the
//!   [`Driver`] and [`Stream`] traits (the seam tests use to script a camera
//!   that comes and goes).
//! - `native`: the real driver over nokhwa 0.10 (Video4Linux on Linux, Media
//!   Foundation, AVFoundation), device choice, capture-mode choice and the
//!   conversion of MJPEG, YUYV, NV12, GRAY, RGB and BGR buffers to [`Frame`]s.
//!
//! The core never depends on this crate's dependencies (nokhwa); it only
//! knows [`FrameSource`].

mod capture;
mod native;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use aisle_core::identify::frame::{Frame, FrameError, FrameSource, SourceState};
pub use capture::{CaptureStats, Driver, OpenError, Stream, StreamError};
pub use native::NativeDriver;

/// Which camera to use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The first device, in the system's order, that opens.
    #[default]
    First,
    /// The device with this index (`/dev/video2` is 2 on Linux).
    Index(u32),
    /// The first device whose name contains this text, ignoring case.
    Name(String),
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::First => f.write_str("first camera"),
            Self::Index(index) => write!(f, "camera {index}"),
            Self::Name(name) => write!(f, "camera named like \"{name}\""),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = std::convert::Infallible;

    /// `first` (or nothing), an index such as `0`, or a part of a name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        Ok(if text.is_empty() || text.eq_ignore_ascii_case("first") {
            Self::First
        } else if let Ok(index) = text.parse::<u32>() {
            Self::Index(index)
        } else {
            Self::Name(text.to_owned())
        })
    }
}

/// What to open and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraConfig {
    pub device: DeviceChoice,
    /// Wanted frame size; the camera's closest mode is used.
    pub width: u32,
    pub height: u32,
    /// Wanted frames per second; the closest the camera offers at that size.
    pub fps: u32,
    /// How long to wait between attempts to find or reopen the camera.
    pub reconnect_interval: Duration,
}

impl Default for CameraConfig {
    /// A kiosk's camera: the first one, 1280x720 at 30 frames a second,
    /// looked for again every 2 seconds while it is missing.
    fn default() -> Self {
        Self {
            device: DeviceChoice::First,
            width: 1280,
            height: 720,
            fps: 30,
            reconnect_interval: Duration::from_secs(2),
        }
    }
}

/// A camera the system lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// What [`DeviceChoice::Index`] takes.
    pub index: u32,
    /// Human name ("HD Pro Webcam C920").
    pub name: String,
    /// Backend details ("Video4Linux Device @ /dev/video0").
    pub description: String,
}

/// A camera as a [`FrameSource`], with its own capture thread.
pub struct Camera {
    capture: capture::Capture,
    config: CameraConfig,
}

impl fmt::Debug for Camera {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Camera")
            .field("name", &self.name())
            .field("state", &self.state())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Camera {
    /// Starts capturing from the configured camera through nokhwa. Never
    /// fails: without a camera the source is in `NoCamera` and keeps looking.
    /// Waits for the first attempt to open the camera (a few seconds at
    /// most), so [`FrameSource::state`] is meaningful on return.
    pub fn open(config: CameraConfig) -> Self {
        Self::with_driver(config, NativeDriver)
    }

    /// Starts capturing through another [`Driver`] (a scripted camera in
    /// tests, another capture backend).
    pub fn with_driver(config: CameraConfig, driver: impl Driver) -> Self {
        let capture = capture::Capture::start(config.clone(), Box::new(driver));
        Self { capture, config }
    }

    /// The cameras the system lists now (empty when there are none, or when
    /// they cannot be listed; the reason is logged).
    pub fn list_devices() -> Vec<DeviceInfo> {
        native::list_devices().unwrap_or_else(|reason| {
            tracing::warn!(%reason, "cameras cannot be listed");
            Vec::new()
        })
    }

    pub fn config(&self) -> &CameraConfig {
        &self.config
    }

    /// Frames captured, handed out, skipped and unreadable, and reconnections.
    pub fn stats(&self) -> CaptureStats {
        self.capture.stats()
    }

    /// Why there are no frames (`NoCamera`, `Reconnecting`), for a status line.
    pub fn problem(&self) -> Option<String> {
        self.capture.problem()
    }
}

impl FrameSource for Camera {
    fn next_frame(&mut self, wait: Duration) -> Result<Frame, FrameError> {
        self.capture.next_frame(wait)
    }

    fn state(&self) -> SourceState {
        self.capture.state()
    }

    /// The device's name once it has been opened, else the configured choice.
    fn name(&self) -> String {
        self.capture
            .device_name()
            .unwrap_or_else(|| self.config.device.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choices_read_from_text() {
        for (text, expect) in [
            ("", DeviceChoice::First),
            ("First", DeviceChoice::First),
            ("0", DeviceChoice::Index(0)),
            (" 12 ", DeviceChoice::Index(12)),
            ("C920", DeviceChoice::Name("C920".into())),
            ("-1", DeviceChoice::Name("-1".into())),
        ] {
            assert_eq!(text.parse::<DeviceChoice>(), Ok(expect), "{text:?}");
        }
    }

    #[test]
    fn the_default_is_a_kiosk_camera() {
        let config = CameraConfig::default();
        assert_eq!(
            (config.device, config.width, config.height, config.fps),
            (DeviceChoice::First, 1280, 720, 30)
        );
        assert_eq!(config.reconnect_interval, Duration::from_secs(2));
    }
}
