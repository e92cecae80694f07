//! The kiosk's camera: a thread reads frames from a [`FrameSource`] (the
//! real camera through `aisle-camera`, or pictures played as a camera),
//! decodes them, confirms a code seen in two frames in a row and submits it
//! as a scan; it also hands the UI a small live preview (mirrored, as a
//! shopper expects to see themselves) and what the camera is doing.
//!
//! The thread never touches the UI: it reports [`CameraEvent`]s to a sink
//! (the app's moves them into the event loop with `upgrade_in_event_loop`;
//! tests collect them), and [`apply`] shows one on the window.

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use aisle_core::identify::accept::Confirmer;
use aisle_core::identify::decode::{self, DecodeOptions};
use aisle_core::identify::frame::{Frame, FrameError, FrameSource, SourceState};
use slint::{ComponentHandle, Rgb8Pixel, SharedPixelBuffer};

use crate::backend::Job;
use crate::{CameraStatus, KioskState, KioskWindow};

/// Width of the preview in pixels (the panel scales it).
pub const PREVIEW_WIDTH: u32 = 320;
/// Frames decoded (and previews sent) at most this often.
const PERIOD: Duration = Duration::from_millis(100);

/// What the camera thread reports.
#[derive(Debug, Clone)]
pub enum CameraEvent {
    Status(CameraStatus),
    Preview(SharedPixelBuffer<Rgb8Pixel>),
}

/// The status a source's state shows as.
pub fn status_of(state: &SourceState) -> CameraStatus {
    match state {
        SourceState::Live => CameraStatus::Live,
        SourceState::NoCamera | SourceState::Ended => CameraStatus::Missing,
        SourceState::Reconnecting { .. } => CameraStatus::Reconnecting,
    }
}

/// A frame scaled to `width` (aspect kept, nearest pixel), grey as RGB,
/// mirrored left to right.
pub fn preview(frame: &Frame, width: u32) -> SharedPixelBuffer<Rgb8Pixel> {
    let (fw, fh) = (frame.width().max(1), frame.height().max(1));
    let width = width.clamp(1, fw.max(1));
    let height = (u64::from(fh) * u64::from(width) / u64::from(fw)).max(1) as u32;
    let mut buffer = SharedPixelBuffer::<Rgb8Pixel>::new(width, height);
    let luma = frame.luma();
    let pixels = buffer.make_mut_slice();
    for y in 0..height {
        let sy = (u64::from(y) * u64::from(fh) / u64::from(height)) as usize;
        for x in 0..width {
            let sx = (u64::from(width - 1 - x) * u64::from(fw) / u64::from(width)) as usize;
            let v = luma[sy * fw as usize + sx];
            pixels[(y * width + x) as usize] = Rgb8Pixel { r: v, g: v, b: v };
        }
    }
    buffer
}

/// Runs on the camera thread until the source ends, the backend is gone,
/// or the sink says the UI is (returns `false`): frames -> preview and
/// decode -> confirmed codes -> [`Job::Scan`].
pub fn run(
    mut source: Box<dyn FrameSource>,
    jobs: &Sender<Job>,
    sink: &dyn Fn(CameraEvent) -> bool,
) {
    let mut confirmer = Confirmer::default();
    let mut shown: Option<CameraStatus> = None;
    let mut report = |status: CameraStatus| {
        if shown == Some(status) {
            return true;
        }
        shown = Some(status);
        sink(CameraEvent::Status(status))
    };
    loop {
        let started = Instant::now();
        match source.next_frame(Duration::from_millis(500)) {
            Ok(frame) => {
                if !report(CameraStatus::Live)
                    || !sink(CameraEvent::Preview(preview(&frame, PREVIEW_WIDTH)))
                {
                    return;
                }
                let symbols = decode::decode(&frame, &DecodeOptions::LIVE)
                    .map(|decoded| decoded.symbols)
                    .unwrap_or_default();
                for symbol in confirmer.observe(&symbols) {
                    if jobs.send(Job::Scan(symbol.text)).is_err() {
                        return;
                    }
                }
                std::thread::sleep(PERIOD.saturating_sub(started.elapsed()));
            }
            Err(FrameError::Ended) => {
                report(CameraStatus::Missing);
                return;
            }
            Err(FrameError::Timeout) => {}
            Err(error) => {
                tracing::debug!(%error, "no frame");
                confirmer.reset();
                if !report(status_of(&source.state())) {
                    return;
                }
                // A missing camera answers at once; do not spin.
                std::thread::sleep(PERIOD.saturating_sub(started.elapsed()));
            }
        }
    }
}

/// Starts the camera thread: `open` makes the source on the thread (a real
/// camera may take seconds to open; the kiosk does not wait for it).
pub fn start(
    open: impl FnOnce() -> Box<dyn FrameSource> + Send + 'static,
    jobs: Sender<Job>,
    sink: impl Fn(CameraEvent) -> bool + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("kiosk-camera".into())
        .spawn(move || run(open(), &jobs, &sink))
        .map(|_| ())
}

/// Shows a camera event on the window (in the event loop).
pub fn apply(ui: &KioskWindow, event: CameraEvent) {
    let state = ui.global::<KioskState>();
    match event {
        CameraEvent::Status(status) => {
            state.set_camera(status);
            if status != CameraStatus::Live {
                state.set_camera_preview(slint::Image::default());
            }
        }
        CameraEvent::Preview(buffer) => {
            if state.get_camera() == CameraStatus::Live {
                state.set_camera_preview(slint::Image::from_rgb8(buffer));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_is_scaled_and_mirrored() {
        // A 640x360 frame, dark on its left half.
        let luma: Vec<u8> = (0..360)
            .flat_map(|_| (0..640).map(|x| if x < 320 { 10 } else { 240 }))
            .collect();
        let frame = Frame::new(640, 360, luma).expect("frame");
        let small = preview(&frame, 320);
        assert_eq!((small.width(), small.height()), (320, 180));
        let pixels = small.as_slice();
        assert_eq!(pixels[0].r, 240, "the right of the frame shows on the left");
        assert_eq!(pixels[319].r, 10);
        assert_eq!(
            pixels[179 * 320 + 319],
            Rgb8Pixel {
                r: 10,
                g: 10,
                b: 10
            }
        );
    }
}
