//! The kiosk's camera thread on real pictures and on the real camera code:
//! a code held to the camera is scanned once per hold and previewed
//! (mirrored); a kiosk without a camera says so, keeps looking, and goes
//! live when one is plugged in (`aisle-camera`'s capture thread over a
//! scripted driver); the thread stops when the UI is gone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aisle_camera::{Camera, CameraConfig, Driver, OpenError, Stream, StreamError};
use aisle_core::identify::frame::{Frame, FrameSource, ImageSource, Playback};
use aisle_kiosk::CameraStatus;
use aisle_kiosk::backend::Job;
use aisle_kiosk::camera::{self, CameraEvent};

/// A QR code of `text` as a camera frame (640x480, code in the middle).
fn qr_frame(text: &str) -> Frame {
    let code = qrcode::QrCode::new(text.as_bytes()).expect("qr");
    let picture = code
        .render::<image::Luma<u8>>()
        .module_dimensions(6, 6)
        .quiet_zone(true)
        .build();
    Frame::from_image(&image::DynamicImage::ImageLuma8(picture))
        .expect("frame")
        .placed_on(640, 480, 160, 80, 255)
}

fn blank() -> Frame {
    Frame::new(640, 480, vec![255; 640 * 480]).expect("frame")
}

fn statuses(events: &[CameraEvent]) -> Vec<CameraStatus> {
    events
        .iter()
        .filter_map(|e| match e {
            CameraEvent::Status(s) => Some(*s),
            CameraEvent::Preview(_) => None,
        })
        .collect()
}

#[test]
fn a_code_held_to_the_camera_is_scanned_once_per_hold_and_previewed() {
    let card = "2947003289668";
    // Held for three frames, taken away for twenty, held again for two.
    let mut frames = vec![qr_frame(card); 3];
    frames.extend(std::iter::repeat_with(blank).take(20));
    frames.extend(vec![qr_frame(card); 2]);
    let count = frames.len();
    let source = ImageSource::from_frames("held card", frames, Playback::Once);
    let (jobs, scans) = mpsc::channel();
    let events = Mutex::new(Vec::new());
    camera::run(Box::new(source), &jobs, &|event| {
        events.lock().expect("events").push(event);
        true
    });
    let scans: Vec<Job> = scans.try_iter().collect();
    assert_eq!(
        scans,
        vec![Job::Scan(card.into()), Job::Scan(card.into())],
        "once per hold, not once per frame"
    );
    let events = events.into_inner().expect("events");
    assert_eq!(
        statuses(&events),
        vec![CameraStatus::Live, CameraStatus::Missing],
        "live while frames come, missing when the pictures end"
    );
    let previews: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            CameraEvent::Preview(p) => Some(p),
            CameraEvent::Status(_) => None,
        })
        .collect();
    assert_eq!(previews.len(), count, "one preview per frame");
    let first = previews[0];
    assert_eq!(
        (first.width(), first.height()),
        (camera::PREVIEW_WIDTH, 240)
    );
    // The code (frame x 160..334, y 80..254) shows at half size, mirrored:
    // dark modules on the preview row through its middle, within x 153..240.
    let row = &first.as_slice()[83 * 320..84 * 320];
    let dark: Vec<usize> = (0..320).filter(|x| row[*x].r < 100).collect();
    assert!(!dark.is_empty(), "the code shows in the preview");
    assert!(
        dark.iter().all(|x| (153..240).contains(x)),
        "mirrored into place: {dark:?}"
    );
}

/// A camera that is unplugged until the test plugs it in.
struct Rig {
    plugged: AtomicBool,
    opens: AtomicUsize,
}

struct Unplugged(Arc<Rig>);

impl Driver for Unplugged {
    fn open(&mut self, _config: &CameraConfig) -> Result<Box<dyn Stream>, OpenError> {
        self.0.opens.fetch_add(1, Ordering::SeqCst);
        if self.0.plugged.load(Ordering::SeqCst) {
            Ok(Box::new(Plugged))
        } else {
            Err(OpenError::NotFound("no camera is plugged in".into()))
        }
    }
}

struct Plugged;

impl Stream for Plugged {
    fn name(&self) -> String {
        "scripted camera".into()
    }

    fn frame(&mut self) -> Result<Frame, StreamError> {
        std::thread::sleep(Duration::from_millis(30));
        Ok(blank())
    }
}

#[test]
fn without_a_camera_the_kiosk_says_so_and_goes_live_when_one_is_plugged() {
    let rig = Arc::new(Rig {
        plugged: AtomicBool::new(false),
        opens: AtomicUsize::new(0),
    });
    let config = CameraConfig {
        reconnect_interval: Duration::from_millis(50),
        ..CameraConfig::default()
    };
    let driver = Unplugged(Arc::clone(&rig));
    let (jobs, _scans) = mpsc::channel();
    let (events, seen) = mpsc::channel::<CameraEvent>();
    let ui_gone = Arc::new(AtomicBool::new(false));
    let thread = {
        let ui_gone = Arc::clone(&ui_gone);
        std::thread::spawn(move || {
            let source: Box<dyn FrameSource> = Box::new(Camera::with_driver(config, driver));
            camera::run(source, &jobs, &|event| {
                events.send(event).ok();
                !ui_gone.load(Ordering::SeqCst)
            });
        })
    };
    let next_status = || loop {
        match seen
            .recv_timeout(Duration::from_secs(10))
            .expect("an event")
        {
            CameraEvent::Status(status) => return status,
            CameraEvent::Preview(_) => {}
        }
    };
    assert_eq!(next_status(), CameraStatus::Missing);
    let started = Instant::now();
    while rig.opens.load(Ordering::SeqCst) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "it keeps looking"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    rig.plugged.store(true, Ordering::SeqCst);
    assert_eq!(next_status(), CameraStatus::Live, "plugged in: live");
    let preview = loop {
        if let CameraEvent::Preview(p) = seen
            .recv_timeout(Duration::from_secs(10))
            .expect("a preview")
        {
            break p;
        }
    };
    assert_eq!(preview.width(), camera::PREVIEW_WIDTH);
    // The window closes: the thread stops at its next report.
    ui_gone.store(true, Ordering::SeqCst);
    let started = Instant::now();
    while !thread.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the camera thread stops with the UI"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    thread.join().expect("the camera thread ended cleanly");
}
