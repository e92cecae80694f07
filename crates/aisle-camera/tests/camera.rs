//! The camera's behaviour over a scripted driver (a camera that can be
//! unplugged, paused, fed unreadable frames or made to panic), and the real
//! nokhwa path on a machine without a camera.
//!
//! Every frame of the scripted camera carries its serial number (1, 2, ...)
//! in its first four bytes, so a test can tell which frames it was given
//! and which it missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aisle_camera::{
    Camera, CameraConfig, DeviceChoice, Driver, Frame, FrameError, FrameSource, OpenError,
    SourceState, Stream, StreamError,
};

/// The scripted camera's world, shared by the test and the capture thread.
#[derive(Debug, Default)]
struct Rig {
    plugged: AtomicBool,
    /// While set, a read blocks (a camera that hangs without an error).
    paused: AtomicBool,
    /// Set while a read is blocked by `paused`.
    stuck_in_read: AtomicBool,
    /// How many of the next reads deliver an unreadable frame.
    bad_left: AtomicU32,
    panic_next_open: AtomicBool,
    frame_interval_us: AtomicU32,
    frames_made: AtomicU32,
    opens: AtomicU32,
    streams_open: AtomicI32,
    driver_dropped: AtomicBool,
}

impl Rig {
    fn new(plugged: bool, frame_interval: Duration) -> Arc<Self> {
        let rig = Self::default();
        rig.plugged.store(plugged, Ordering::SeqCst);
        rig.frame_interval_us.store(
            u32::try_from(frame_interval.as_micros()).unwrap_or(u32::MAX),
            Ordering::SeqCst,
        );
        Arc::new(rig)
    }

    fn set(flag: &AtomicBool, value: bool) {
        flag.store(value, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct ScriptedDriver(Arc<Rig>);

impl Drop for ScriptedDriver {
    fn drop(&mut self) {
        Rig::set(&self.0.driver_dropped, true);
    }
}

impl Driver for ScriptedDriver {
    fn open(&mut self, _config: &CameraConfig) -> Result<Box<dyn Stream>, OpenError> {
        let rig = &self.0;
        rig.opens.fetch_add(1, Ordering::SeqCst);
        assert!(
            !rig.panic_next_open.swap(false, Ordering::SeqCst),
            "scripted panic"
        );
        if !rig.plugged.load(Ordering::SeqCst) {
            return Err(OpenError::NotFound(
                "the scripted camera is unplugged".into(),
            ));
        }
        rig.streams_open.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(ScriptedStream(Arc::clone(rig))))
    }
}

struct ScriptedStream(Arc<Rig>);

impl Drop for ScriptedStream {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Stream for ScriptedStream {
    fn name(&self) -> String {
        "Scripted Camera".into()
    }

    fn frame(&mut self) -> Result<Frame, StreamError> {
        let rig = &self.0;
        std::thread::sleep(Duration::from_micros(u64::from(
            rig.frame_interval_us.load(Ordering::SeqCst),
        )));
        while rig.paused.load(Ordering::SeqCst) {
            rig.stuck_in_read.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
        rig.stuck_in_read.store(false, Ordering::SeqCst);
        if !rig.plugged.load(Ordering::SeqCst) {
            return Err(StreamError::Gone("no such device".into()));
        }
        let bad = rig
            .bad_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if bad.is_ok() {
            return Err(StreamError::BadFrame("corrupt JPEG".into()));
        }
        let serial = rig.frames_made.fetch_add(1, Ordering::SeqCst) + 1;
        let mut luma = serial.to_le_bytes().to_vec();
        luma.extend([0; 4]);
        Ok(Frame::new(4, 2, luma).expect("a 4x2 frame"))
    }
}

fn serial(frame: &Frame) -> u32 {
    let bytes: [u8; 4] = frame.luma()[..4].try_into().expect("four bytes");
    u32::from_le_bytes(bytes)
}

fn config(reconnect_interval: Duration) -> CameraConfig {
    CameraConfig {
        reconnect_interval,
        ..CameraConfig::default()
    }
}

fn scripted(rig: &Arc<Rig>, reconnect_interval: Duration) -> Camera {
    Camera::with_driver(config(reconnect_interval), ScriptedDriver(Arc::clone(rig)))
}

/// Polls `done` until it holds or five seconds have passed.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_slow_consumer_gets_only_newer_frames_and_the_rest_are_counted_as_skipped() {
    let rig = Rig::new(true, Duration::from_millis(1));
    let mut camera = scripted(&rig, Duration::from_millis(20));
    assert_eq!(camera.state(), SourceState::Live);
    assert_eq!(camera.name(), "Scripted Camera");

    let mut serials = Vec::new();
    for _ in 0..25 {
        let frame = camera.next_frame(2 * SECOND).expect("a frame");
        serials.push(serial(&frame));
        std::thread::sleep(Duration::from_millis(8)); // slower than the camera
    }
    assert!(
        serials.windows(2).all(|pair| pair[0] < pair[1]),
        "never an older frame after a newer one: {serials:?}"
    );
    let last = *serials.last().expect("frames");
    let missed = u64::from(last) - serials.len() as u64;
    assert!(
        missed > 0,
        "the consumer was slower, so it skipped: {serials:?}"
    );

    let stats = camera.stats();
    assert_eq!(stats.delivered, serials.len() as u64);
    assert!(
        stats.skipped >= missed,
        "every frame not handed out was counted: {stats:?}, {missed} missed before the last"
    );
    let pending = stats.captured - stats.delivered - stats.skipped;
    assert!(
        pending <= 1,
        "at most one frame waits in the slot: {stats:?}"
    );
}

#[test]
fn next_frame_times_out_when_the_camera_delivers_nothing() {
    let rig = Rig::new(true, Duration::from_millis(1));
    let mut camera = scripted(&rig, Duration::from_millis(20));
    camera.next_frame(2 * SECOND).expect("frames at first");
    Rig::set(&rig.paused, true);
    std::thread::sleep(Duration::from_millis(50));
    // What was captured before the pause (one frame at most, if any).
    let drained = (0..10)
        .take_while(|_| camera.next_frame(Duration::ZERO).is_ok())
        .count();
    assert!(
        drained <= 1,
        "the slot holds one frame, not a queue: {drained}"
    );

    let wait = Duration::from_millis(100);
    let started = Instant::now();
    assert_eq!(camera.next_frame(wait), Err(FrameError::Timeout));
    let waited = started.elapsed();
    assert!(waited >= wait, "waited the whole {wait:?}: {waited:?}");
    assert!(waited < 2 * SECOND, "and not much longer: {waited:?}");
    assert_eq!(
        camera.state(),
        SourceState::Live,
        "a quiet camera is still live"
    );

    Rig::set(&rig.paused, false);
    camera.next_frame(2 * SECOND).expect("frames again");
}

#[test]
fn an_unplugged_camera_is_reconnected_with_growing_attempts_and_delivers_again() {
    let rig = Rig::new(true, Duration::from_millis(1));
    let mut camera = scripted(&rig, Duration::from_millis(15));
    let before = serial(&camera.next_frame(2 * SECOND).expect("a frame"));

    Rig::set(&rig.plugged, false);
    let lost = (0..1000)
        .find_map(|_| camera.next_frame(2 * SECOND).err())
        .expect("the loss is reported");
    match &lost {
        FrameError::Disconnected(reason) => {
            assert_eq!(reason, "Scripted Camera: no such device");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }

    let mut seen = Vec::new();
    let reached = eventually(|| match camera.state() {
        SourceState::Reconnecting { attempts } => {
            seen.push(attempts);
            attempts >= 4
        }
        other => panic!("unexpected state while unplugged: {other:?}"),
    });
    assert!(reached, "attempts grow while unplugged: {seen:?}");
    assert!(seen.windows(2).all(|pair| pair[0] <= pair[1]), "{seen:?}");
    assert!(matches!(
        camera.next_frame(Duration::from_millis(20)),
        Err(FrameError::Disconnected(_))
    ));
    let problem = camera.problem().expect("a problem to show");
    assert!(
        problem.starts_with("camera disconnected (Scripted Camera: no such device)"),
        "{problem}"
    );
    assert_eq!(
        rig.streams_open.load(Ordering::SeqCst),
        0,
        "the lost stream was closed"
    );

    Rig::set(&rig.plugged, true);
    assert!(
        eventually(|| camera.state() == SourceState::Live),
        "back to live"
    );
    let after = serial(&camera.next_frame(2 * SECOND).expect("frames again"));
    assert!(after > before);
    assert_eq!(camera.stats().reconnects, 1);
    assert_eq!(camera.problem(), None);
    assert_eq!(rig.streams_open.load(Ordering::SeqCst), 1);
}

#[test]
fn a_camera_never_plugged_in_is_no_camera_and_is_picked_up_when_plugged_in() {
    let rig = Rig::new(false, Duration::from_millis(1));
    let mut camera = scripted(&rig, Duration::from_millis(15));
    assert_eq!(
        camera.state(),
        SourceState::NoCamera,
        "known on return from open"
    );
    assert_eq!(camera.name(), "first camera");
    assert_eq!(
        camera.problem().as_deref(),
        Some("no camera: the scripted camera is unplugged")
    );

    let wait = Duration::from_millis(50);
    let started = Instant::now();
    assert_eq!(
        camera.next_frame(wait),
        Err(FrameError::NoCamera(
            "the scripted camera is unplugged".into()
        ))
    );
    assert!(
        started.elapsed() >= wait,
        "a caller in a loop does not spin"
    );
    assert!(
        eventually(|| rig.opens.load(Ordering::SeqCst) >= 3),
        "keeps looking"
    );
    assert_eq!(camera.state(), SourceState::NoCamera, "never Reconnecting");

    Rig::set(&rig.plugged, true);
    assert!(eventually(|| camera.state() == SourceState::Live));
    camera
        .next_frame(2 * SECOND)
        .expect("frames once plugged in");
    assert_eq!(camera.name(), "Scripted Camera");
    assert_eq!(
        camera.stats().reconnects,
        0,
        "a first camera is not a reconnection"
    );
}

#[test]
fn dropping_the_camera_joins_its_thread_promptly() {
    // While frames flow.
    let rig = Rig::new(true, Duration::from_millis(1));
    let mut camera = scripted(&rig, Duration::from_millis(20));
    camera.next_frame(2 * SECOND).expect("a frame");
    let started = Instant::now();
    drop(camera);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(
        rig.driver_dropped.load(Ordering::SeqCst),
        "the thread had ended (and dropped its driver) when drop returned"
    );
    assert_eq!(rig.streams_open.load(Ordering::SeqCst), 0);

    // While waiting a minute before looking for the camera again.
    let rig = Rig::new(false, Duration::from_millis(1));
    let camera = scripted(&rig, Duration::from_secs(60));
    assert_eq!(camera.state(), SourceState::NoCamera);
    let started = Instant::now();
    drop(camera);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "the wait is interrupted: {took:?}"
    );
    assert!(rig.driver_dropped.load(Ordering::SeqCst));
    assert_eq!(rig.opens.load(Ordering::SeqCst), 1);
}

#[test]
fn a_driver_stuck_in_a_read_does_not_hang_the_drop() {
    let rig = Rig::new(true, Duration::from_millis(1));
    Rig::set(&rig.paused, true);
    let camera = scripted(&rig, Duration::from_millis(20));
    assert_eq!(camera.state(), SourceState::Live);
    // Only once the capture thread is inside the read is it stuck.
    assert!(eventually(|| rig.stuck_in_read.load(Ordering::SeqCst)));
    let started = Instant::now();
    drop(camera);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "drop gives up after its grace period: {took:?}"
    );
    assert!(
        !rig.driver_dropped.load(Ordering::SeqCst),
        "still in the read"
    );
    Rig::set(&rig.paused, false);
    assert!(
        eventually(|| rig.driver_dropped.load(Ordering::SeqCst)),
        "the thread ends by itself once the read returns"
    );
    assert_eq!(rig.streams_open.load(Ordering::SeqCst), 0);
}

#[test]
fn unreadable_frames_are_skipped_and_a_run_of_them_counts_as_a_lost_camera() {
    let rig = Rig::new(true, Duration::from_millis(1));
    rig.bad_left.store(5, Ordering::SeqCst);
    let mut camera = scripted(&rig, Duration::from_millis(15));
    let first = camera
        .next_frame(2 * SECOND)
        .expect("frames after a few bad ones");
    assert_eq!(serial(&first), 1, "bad frames are never handed out");
    assert_eq!(camera.stats().unreadable, 5);
    assert_eq!(
        camera.stats().reconnects,
        0,
        "a few bad frames are not a loss"
    );

    rig.bad_left.store(45, Ordering::SeqCst);
    assert!(
        eventually(|| camera.stats().reconnects >= 1),
        "30 bad frames in a row: reopened"
    );
    assert!(eventually(|| rig.bad_left.load(Ordering::SeqCst) == 0));
    assert!(eventually(|| camera.state() == SourceState::Live));
    camera.next_frame(2 * SECOND).expect("frames again");
    assert_eq!(camera.stats().unreadable, 50);
    assert!(rig.opens.load(Ordering::SeqCst) >= 2);
}

#[test]
fn a_panicking_driver_is_a_failed_open_not_a_dead_thread() {
    let rig = Rig::new(true, Duration::from_millis(1));
    Rig::set(&rig.panic_next_open, true);
    let mut camera = scripted(&rig, Duration::from_millis(15));
    assert_eq!(camera.state(), SourceState::NoCamera);
    let problem = camera.problem().expect("a problem");
    assert!(
        problem.contains("the camera driver panicked while opening: scripted panic"),
        "{problem}"
    );
    assert!(eventually(|| camera.state() == SourceState::Live));
    camera
        .next_frame(2 * SECOND)
        .expect("frames after the retry");
}

#[test]
fn the_real_camera_path_reports_no_camera_on_a_machine_without_one() {
    let started = Instant::now();
    let devices = Camera::list_devices();

    // A device that exists nowhere: NoCamera, whatever the machine has.
    let mut missing = Camera::open(CameraConfig {
        device: DeviceChoice::Index(999),
        ..CameraConfig::default()
    });
    assert_eq!(missing.state(), SourceState::NoCamera);
    let Err(FrameError::NoCamera(reason)) = missing.next_frame(Duration::from_millis(50)) else {
        panic!("expected NoCamera");
    };
    if devices.is_empty() {
        assert_eq!(reason, "the system lists no video capture device");
    } else {
        assert!(reason.starts_with("no device with index 999"), "{reason}");
    }
    drop(missing);

    if devices.is_empty() {
        // This machine (and CI): no /dev/video*, so the kiosk's default
        // camera is missing, said plainly, without a panic or a hang.
        let mut camera = Camera::open(CameraConfig::default());
        assert_eq!(camera.state(), SourceState::NoCamera);
        let err = camera
            .next_frame(Duration::from_millis(50))
            .expect_err("no frames without a camera");
        assert_eq!(
            err.to_string(),
            "no camera: the system lists no video capture device"
        );
        assert_eq!(
            camera.problem().as_deref(),
            Some("no camera: the system lists no video capture device")
        );
        assert_eq!(camera.name(), "first camera");
    }
    assert!(started.elapsed() < Duration::from_secs(20), "no hang");
}
