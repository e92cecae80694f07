//! The binary's wiring: arguments, the brand, the backend on its worker
//! thread or inline, the camera thread, and `--headless` rendering of every
//! screen to PNG files where there is no display.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aisle_core::identify::frame::{FrameSource, ImageSource, Playback};
use aisle_core::runtime::Clock;
use anyhow::{Context, Result};
use clap::Parser;
use slint::ComponentHandle;

use crate::backend::{Backend, BackendConfig, Job, Worker};
use crate::brand::Brand;
use crate::controller::{self, Controller, State};
use crate::{KioskState, KioskWindow};

#[derive(Debug, Parser)]
#[command(name = "aisle-kiosk", version, about = "The Aisle store kiosk")]
pub struct Args {
    /// The store replica (`aisle demo` builds one).
    #[arg(long, env = "AISLE_DB")]
    pub db: PathBuf,
    /// This kiosk's store [default: the store the replica is provisioned
    /// for, else the demo's showcase store]; a provisioned replica serves
    /// only its own.
    #[arg(long, env = "AISLE_STORE")]
    pub store: Option<i64>,
    /// The brand folder (theme.json, logo).
    #[arg(long, default_value = "assets/brand")]
    pub brand: PathBuf,
    /// Show demo members to tap on the attract screen.
    #[arg(long)]
    pub demo: bool,
    /// Start the clock at this store-local time (`YYYY-MM-DD HH:MM:SS`), e.g.
    /// the demo data's last day [default: now].
    #[arg(long, env = "AISLE_NOW")]
    pub now: Option<String>,
    /// Seconds without a touch before the screen returns to attract.
    #[arg(long, default_value_t = 30)]
    pub idle_secs: u64,
    /// Interface language (`en`, `fr`).
    #[arg(long, default_value = "en")]
    pub lang: String,
    #[arg(long)]
    pub fullscreen: bool,
    /// What this screen never shows, one word per line (matched within a
    /// product's department, category and type; `#` comments) [default:
    /// alcohol, tobacco and sensitive health items: docs/OFFERS.md].
    #[arg(long, value_name = "FILE")]
    pub public_excluded: Option<PathBuf>,
    /// The camera: `first`, an index (`/dev/video2` is 2) or part of its name.
    #[arg(long, default_value = "first")]
    pub camera: String,
    /// No camera: scanner (keyboard wedge) only.
    #[arg(long, conflicts_with_all = ["camera_source"])]
    pub no_camera: bool,
    /// Play these pictures (a file, a folder or an animated GIF) as the camera.
    #[arg(long, value_name = "PATH")]
    pub camera_source: Option<PathBuf>,
    /// Render every screen to PNG files in this folder and exit (no display needed).
    #[arg(long, value_name = "DIR")]
    pub headless: Option<PathBuf>,
    /// Quit after this many milliseconds (smoke tests).
    #[arg(long, value_name = "MS")]
    pub exit_after_ms: Option<u64>,
    /// Measure scan to welcome over this many card scans (no display), report, exit.
    #[cfg(feature = "bench")]
    #[arg(long, value_name = "N")]
    pub bench_scans: Option<usize>,
    /// Render the attract screen's first frame (no display) and exit: timed
    /// from outside as the cold start (`cargo xtask bench kiosk`).
    #[cfg(feature = "bench")]
    #[arg(long)]
    pub bench_first_frame: bool,
}

/// The backend configuration the arguments describe.
pub fn backend_config(args: &Args) -> Result<BackendConfig> {
    Ok(BackendConfig {
        db: args.db.clone(),
        store: args.store,
        clock: Clock::pinned_or_wall(args.now.as_deref()).context("--now")?,
        idle_secs: args.idle_secs,
        demo: args.demo,
        public_excluded: args
            .public_excluded
            .as_deref()
            .map(read_word_list)
            .transpose()?,
    })
}

/// A word per line; blank lines and `#` comments skipped.
fn read_word_list(path: &std::path::Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let words: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if words.is_empty() {
        anyhow::bail!(
            "{} lists no word: an empty list would show everything on a public screen",
            path.display()
        );
    }
    Ok(words)
}

pub fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let brand = Brand::load(&args.brand)?;
    let config = backend_config(&args)?;
    #[cfg(feature = "bench")]
    if args.bench_first_frame {
        return crate::bench::first_frame(config, &brand, &args.lang);
    }
    #[cfg(feature = "bench")]
    if let Some(scans) = args.bench_scans {
        let report = crate::bench::scan_to_welcome(config, &brand, &args.lang, scans)?;
        return crate::bench::print(&report);
    }
    if let Some(dir) = &args.headless {
        let written = crate::headless::render_all(config, &brand, &args.lang, dir)?;
        tracing::info!(files = written.len(), dir = %dir.display(), "screens rendered");
        return Ok(());
    }
    let ui = KioskWindow::new()?;
    brand.apply(&ui)?;
    select_language(&args.lang)?;
    if args.fullscreen {
        ui.window().set_fullscreen(true);
    }
    let idle = config.idle_secs;
    let clock = config.clock.clone();
    let backend = Backend::open(config)?;
    // Replies come from the worker thread; they are applied in the event loop.
    let shared: Arc<OnceLock<Arc<Mutex<State>>>> = Arc::new(OnceLock::new());
    let worker = {
        let (ui, shared, clock) = (ui.as_weak(), shared.clone(), clock.clone());
        Worker::start(backend, move |reply| {
            let (shared, clock) = (shared.clone(), clock.clone());
            let _ = ui.upgrade_in_event_loop(move |ui| {
                if let Some(state) = shared.get() {
                    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
                    controller::apply(&ui, &mut guard, reply, clock.monotonic_ms());
                }
            });
        })
    };
    let worker = Rc::new(worker);
    let submit: Rc<dyn Fn(Job)> = {
        let (worker, ui) = (worker.clone(), ui.as_weak());
        Rc::new(move |job| {
            if let Some(ui) = ui.upgrade() {
                ui.global::<KioskState>().set_busy(true);
            }
            worker.submit(job);
        })
    };
    let millis: controller::Millis = Rc::new(move || clock.monotonic_ms());
    let controller = Controller::new(&ui, idle, &submit, &millis);
    let _ = shared.set(controller.state.clone());
    worker.submit(Job::Refresh);
    if !args.no_camera {
        let open = camera_opener(&args)?;
        let ui = ui.as_weak();
        crate::camera::start(open, worker.sender(), move |event| {
            // Err: the event loop has ended, and with it the camera's work.
            ui.upgrade_in_event_loop(move |ui| crate::camera::apply(&ui, event))
                .is_ok()
        })?;
    }
    let _quit = args.exit_after_ms.map(|ms| {
        let timer = slint::Timer::default();
        timer.start(
            slint::TimerMode::SingleShot,
            Duration::from_millis(ms),
            || {
                let _ = slint::quit_event_loop();
            },
        );
        timer
    });
    ui.run()?;
    drop(controller);
    if args.exit_after_ms.is_some()
        && let Some(kb) = proc_status_kb("VmHWM")
    {
        // Smoke tests and `cargo xtask bench kiosk` read the window's memory here.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("peak resident memory: {kb} kB");
        }
    }
    Ok(())
}

/// A field of `/proc/self/status` in kB (Linux).
pub fn proc_status_kb(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn select_language(lang: &str) -> Result<()> {
    slint::select_bundled_translation(lang)
        .map_err(|e| anyhow::anyhow!("language {lang:?} is not bundled: {e}"))
}

/// What the camera thread opens: the pictures of `--camera-source` played
/// in a loop (checked now, so a bad file is an error at start), or the
/// camera `--camera` names (opened on the thread; missing is a state, not
/// an error: the kiosk says so and keeps looking).
fn camera_opener(args: &Args) -> Result<Box<dyn FnOnce() -> Box<dyn FrameSource> + Send>> {
    if let Some(path) = &args.camera_source {
        let source = ImageSource::open(path, Playback::Loop)
            .with_context(|| format!("the camera source {}", path.display()))?;
        return Ok(Box::new(move || Box::new(source) as Box<dyn FrameSource>));
    }
    let config = aisle_camera::CameraConfig {
        device: args.camera.parse().unwrap_or_default(),
        ..aisle_camera::CameraConfig::default()
    };
    Ok(Box::new(move || {
        Box::new(aisle_camera::Camera::open(config)) as Box<dyn FrameSource>
    }))
}

/// The backend run on the UI thread: tests and `--headless` apply each
/// reply as soon as the job is submitted.
pub fn inline_submit(
    ui: &KioskWindow,
    backend: Backend,
    clock: controller::Millis,
) -> (controller::Submit, controller::Shared) {
    let backend = Rc::new(RefCell::new(backend));
    let shared: controller::Shared = Rc::new(OnceLock::new());
    let submit: controller::Submit = {
        let (ui, shared) = (ui.as_weak(), shared.clone());
        Rc::new(move |job| {
            let reply = backend.borrow_mut().run(job);
            if let (Some(ui), Some(state)) = (ui.upgrade(), shared.get()) {
                let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
                controller::apply(&ui, &mut guard, reply, clock());
            }
        })
    };
    (submit, shared)
}
