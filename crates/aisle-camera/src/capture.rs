//! The capture thread and the newest-frame slot it fills.
//!
//! The thread owns the device through a [`Driver`] (which opens it) and a
//! [`Stream`] (which delivers frames), and runs a small state machine:
//!
//! ```text
//! start --open ok--> Live --Gone, or too many bad frames--> Reconnecting{0}
//!   |                 ^                                      |  open fails: attempts + 1,
//!   | open fails      |                                      |  wait reconnect_interval
//!   v                 +-------------- open ok ---------------+
//! NoCamera (looks again every reconnect_interval until a camera opens)
//! ```
//!
//! Frames go into one slot guarded by a mutex, with a condition variable
//! for the consumer; a frame replacing one never handed out is counted as
//! skipped. Every wait of the thread (between attempts) watches the stop
//! flag, and dropping the [`Capture`] joins the thread. Driver calls run
//! under `catch_unwind`: a panicking driver is a failed open or a lost
//! stream, not a dead thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aisle_core::identify::frame::{Frame, FrameError, SourceState};

use crate::CameraConfig;

/// Opens a camera. Lives on the capture thread.
pub trait Driver: Send + 'static {
    /// The configured camera, streaming; or why there is none.
    fn open(&mut self, config: &CameraConfig) -> Result<Box<dyn Stream>, OpenError>;
}

/// An open camera. Created, used and dropped on the capture thread.
pub trait Stream {
    /// The device's name, for logs and the status line.
    fn name(&self) -> String;
    /// The next frame, blocking until the camera delivers one.
    fn frame(&mut self) -> Result<Frame, StreamError>;
}

/// Why a camera could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// No device matches the configured choice.
    #[error("{0}")]
    NotFound(String),
    /// A device is there but does not open (busy, permissions, no usable mode).
    #[error("{0}")]
    Unavailable(String),
}

/// Why a stream gave no frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The camera went away (unplugged, stream failed): reopen it.
    #[error("{0}")]
    Gone(String),
    /// This frame is unreadable (a corrupt JPEG); the next may be fine.
    #[error("unreadable frame: {0}")]
    BadFrame(String),
}

/// What the capture has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames the camera delivered and the slot took.
    pub captured: u64,
    /// Frames handed to the consumer.
    pub delivered: u64,
    /// Frames replaced by a newer one before the consumer asked.
    pub skipped: u64,
    /// Frames the camera delivered that could not be read.
    pub unreadable: u64,
    /// Times the camera came back after being lost.
    pub reconnects: u64,
}

/// Unreadable frames in a row after which the camera counts as lost and is
/// reopened (about a second at 30 frames a second).
const MAX_BAD_FRAMES_IN_A_ROW: u32 = 30;

/// Longest wait of [`Capture::start`] for the first attempt to open.
const STARTUP_WAIT: Duration = Duration::from_secs(5);

/// Longest wait of a drop for the thread to stop. A driver blocked in a
/// read that never returns cannot be interrupted; the thread is then left to
/// end on its own when the read does.
const STOP_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// The first attempt to open has not finished.
    Starting,
    Live,
    NoCamera(String),
    Reconnecting {
        attempts: u32,
        reason: String,
    },
}

#[derive(Debug)]
struct Slot {
    /// The newest frame not yet handed out.
    newest: Option<Frame>,
    status: Status,
    device_name: Option<String>,
    stats: CaptureStats,
    stop: bool,
    finished: bool,
}

#[derive(Debug)]
struct Shared {
    slot: Mutex<Slot>,
    /// Signalled on every change of the slot: a frame, a status, stop, finish.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the slot under the lock and wakes every waiter.
    fn update<T>(&self, change: impl FnOnce(&mut Slot) -> T) -> T {
        let result = change(&mut self.lock());
        self.changed.notify_all();
        result
    }

    /// Waits until `done` holds or `wait` has passed; true when it holds.
    fn wait_for(&self, wait: Duration, done: impl Fn(&Slot) -> bool) -> bool {
        let deadline = Instant::now().checked_add(wait);
        let mut slot = self.lock();
        loop {
            if done(&slot) {
                return true;
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return false;
            }
            slot = self
                .changed
                .wait_timeout(slot, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn stopping(&self) -> bool {
        self.lock().stop
    }

    fn publish(&self, frame: Frame) {
        self.update(|slot| {
            if slot.newest.replace(frame).is_some() {
                slot.stats.skipped += 1;
            }
            slot.stats.captured += 1;
        });
    }
}

/// The capture thread and what it shares with the consumer.
#[derive(Debug)]
pub(crate) struct Capture {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Spawns the capture thread and waits for its first attempt to open.
    pub(crate) fn start(config: CameraConfig, driver: Box<dyn Driver>) -> Self {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                newest: None,
                status: Status::Starting,
                device_name: None,
                stats: CaptureStats::default(),
                stop: false,
                finished: false,
            }),
            changed: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("aisle-camera".into())
            .spawn(move || {
                let _finish = Finish(Arc::clone(&thread_shared));
                run(&thread_shared, driver, &config);
            });
        let thread = match thread {
            Ok(handle) => Some(handle),
            Err(err) => {
                let reason = format!("the capture thread could not start: {err}");
                tracing::error!(%reason, "camera");
                shared.update(|slot| {
                    slot.status = Status::NoCamera(reason);
                    slot.finished = true;
                });
                None
            }
        };
        shared.wait_for(STARTUP_WAIT, |slot| slot.status != Status::Starting);
        Self { shared, thread }
    }

    pub(crate) fn next_frame(&self, wait: Duration) -> Result<Frame, FrameError> {
        let deadline = Instant::now().checked_add(wait);
        let mut slot = self.shared.lock();
        let live_at_entry = slot.status == Status::Live;
        loop {
            if let Some(frame) = slot.newest.take() {
                slot.stats.delivered += 1;
                return Ok(frame);
            }
            // A camera lost while we wait is reported at once.
            let lost = live_at_entry && slot.status != Status::Live;
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if lost || left.is_zero() {
                return Err(match &slot.status {
                    Status::Live => FrameError::Timeout,
                    Status::Starting => FrameError::NoCamera("the camera is still opening".into()),
                    Status::NoCamera(reason) => FrameError::NoCamera(reason.clone()),
                    Status::Reconnecting { reason, .. } => FrameError::Disconnected(reason.clone()),
                });
            }
            slot = self
                .shared
                .changed
                .wait_timeout(slot, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(crate) fn state(&self) -> SourceState {
        match &self.shared.lock().status {
            Status::Live => SourceState::Live,
            Status::Starting | Status::NoCamera(_) => SourceState::NoCamera,
            Status::Reconnecting { attempts, .. } => SourceState::Reconnecting {
                attempts: *attempts,
            },
        }
    }

    pub(crate) fn problem(&self) -> Option<String> {
        match &self.shared.lock().status {
            Status::Live => None,
            Status::Starting => Some("the camera is still opening".into()),
            Status::NoCamera(reason) => Some(format!("no camera: {reason}")),
            Status::Reconnecting { attempts, reason } => Some(format!(
                "camera disconnected ({reason}); {attempts} attempts to reopen it so far"
            )),
        }
    }

    pub(crate) fn stats(&self) -> CaptureStats {
        self.shared.lock().stats
    }

    pub(crate) fn device_name(&self) -> Option<String> {
        self.shared.lock().device_name.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shared.update(|slot| slot.stop = true);
        let finished = self.shared.wait_for(STOP_GRACE, |slot| slot.finished);
        let Some(thread) = self.thread.take() else {
            return;
        };
        if !finished {
            tracing::warn!(
                grace_ms = STOP_GRACE.as_millis() as u64,
                "the camera driver is still blocked in a read; its thread will end when the read returns"
            );
            return;
        }
        if thread.join().is_err() {
            tracing::error!("the camera's capture thread panicked");
        }
    }
}

/// Marks the thread finished however it ends.
struct Finish(Arc<Shared>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.update(|slot| {
            slot.finished = true;
            slot.newest = None;
        });
    }
}

/// Whether the `attempts`-th failure to reopen is logged as a warning:
/// the first few, then at powers of two, so a camera unplugged for a day
/// leaves a few dozen lines rather than tens of thousands.
pub(crate) fn worth_warning(attempts: u32) -> bool {
    attempts <= 3 || attempts.is_power_of_two()
}

/// The capture thread: open, pump frames, and reopen, until stopped.
fn run(shared: &Shared, mut driver: Box<dyn Driver>, config: &CameraConfig) {
    let mut ever_live = false;
    let mut attempts = 0u32;
    let mut last_missing_reason = None::<String>;
    while !shared.stopping() {
        let opened = catch_unwind(AssertUnwindSafe(|| driver.open(config)))
            .unwrap_or_else(|panic| Err(OpenError::Unavailable(panicked("opening", &*panic))));
        match opened {
            Ok(mut stream) => {
                let name = catch_unwind(AssertUnwindSafe(|| stream.name()))
                    .unwrap_or_else(|_| config.device.to_string());
                tracing::info!(camera = %name, after_attempts = attempts, "camera live");
                shared.update(|slot| {
                    slot.status = Status::Live;
                    slot.device_name = Some(name.clone());
                    if ever_live {
                        slot.stats.reconnects += 1;
                    }
                });
                ever_live = true;
                attempts = 0;
                last_missing_reason = None;
                let lost = pump(shared, stream.as_mut());
                if catch_unwind(AssertUnwindSafe(move || drop(stream))).is_err() {
                    tracing::warn!(camera = %name, "the camera driver panicked while closing");
                }
                let Some(reason) = lost else {
                    break;
                };
                let reason = format!("{name}: {reason}");
                tracing::warn!(
                    %reason,
                    retry_every_ms = config.reconnect_interval.as_millis() as u64,
                    "camera lost; reopening it"
                );
                shared.update(|slot| {
                    slot.status = Status::Reconnecting {
                        attempts: 0,
                        reason,
                    };
                    slot.newest = None;
                });
            }
            Err(err) => {
                let reason = err.to_string();
                if ever_live {
                    attempts = attempts.saturating_add(1);
                    if worth_warning(attempts) {
                        tracing::warn!(attempts, %reason, "camera still missing");
                    } else {
                        tracing::debug!(attempts, %reason, "camera still missing");
                    }
                    shared.update(|slot| {
                        if let Status::Reconnecting {
                            attempts: shown, ..
                        } = &mut slot.status
                        {
                            *shown = attempts;
                        }
                    });
                } else {
                    // Before the first success, a missing camera is logged
                    // once per distinct reason.
                    if last_missing_reason.as_ref() != Some(&reason) {
                        tracing::info!(
                            %reason,
                            retry_every_ms = config.reconnect_interval.as_millis() as u64,
                            "no camera; looking again"
                        );
                        last_missing_reason = Some(reason.clone());
                    }
                    shared.update(|slot| slot.status = Status::NoCamera(reason));
                }
            }
        }
        if shared.wait_for(config.reconnect_interval, |slot| slot.stop) {
            break;
        }
    }
}

/// Moves frames from the stream into the slot until the camera is lost
/// (`Some(reason)`) or the capture is stopped (`None`).
fn pump(shared: &Shared, stream: &mut dyn Stream) -> Option<String> {
    let mut bad_in_a_row = 0u32;
    while !shared.stopping() {
        let frame = catch_unwind(AssertUnwindSafe(|| stream.frame()))
            .unwrap_or_else(|panic| Err(StreamError::Gone(panicked("reading", &*panic))));
        match frame {
            Ok(frame) => {
                bad_in_a_row = 0;
                shared.publish(frame);
            }
            Err(StreamError::BadFrame(reason)) => {
                bad_in_a_row += 1;
                shared.update(|slot| slot.stats.unreadable += 1);
                if bad_in_a_row == 1 {
                    tracing::debug!(%reason, "unreadable frame skipped");
                }
                if bad_in_a_row >= MAX_BAD_FRAMES_IN_A_ROW {
                    return Some(format!(
                        "{bad_in_a_row} unreadable frames in a row (last: {reason})"
                    ));
                }
            }
            Err(StreamError::Gone(reason)) => return Some(reason),
        }
    }
    None
}

fn panicked(doing: &str, panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("the camera driver panicked while {doing}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_failures_are_warned_about_at_a_falling_rate() {
        let warned: Vec<u32> = (1..=100).filter(|n| worth_warning(*n)).collect();
        assert_eq!(warned, [1, 2, 3, 4, 8, 16, 32, 64]);
        let in_a_day = (1..=43_200u32).filter(|n| worth_warning(*n)).count();
        assert!(in_a_day < 20, "{in_a_day} warnings for a day at 2 s");
    }
}
