//! The binary's wiring: arguments, the brand, the backend on its worker
//! thread or inline, the camera thread, and `--headless` rendering of every
//! screen to PNG files where there is no display.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aisle_core::identify::accept::Confirmer;
use aisle_core::identify::decode::{self, DecodeOptions};
use aisle_core::identify::frame::{FrameSource, ImageSource, Playback, SourceState};
use aisle_core::kiosk::KioskConfig;
use anyhow::{Context, Result};
use clap::Parser;
use slint::ComponentHandle;

use crate::backend::{Backend, BackendConfig, Clock, Job, Worker};
use crate::brand::Brand;
use crate::controller::{self, Controller, State};
use crate::{KioskState, KioskWindow};

#[derive(Debug, Parser)]
#[command(name = "aisle-kiosk", about = "The Aisle store kiosk")]
pub struct Args {
    /// The store replica (`aisle demo` builds one).
    #[arg(long, env = "AISLE_DB")]
    pub db: PathBuf,
    /// This kiosk's store [default: the replica's, else the demo's showcase store].
    #[arg(long)]
    pub store: Option<i64>,
    /// The brand folder (theme.json, logo).
    #[arg(long, default_value = "assets/brand")]
    pub brand: PathBuf,
    /// Show demo members to tap on the attract screen.
    #[arg(long)]
    pub demo: bool,
    /// Start the clock at this store-local time (`YYYY-MM-DD HH:MM:SS`), e.g.
    /// the demo data's last day [default: now].
    #[arg(long)]
    pub now: Option<String>,
    /// Seconds without a touch before the screen returns to attract.
    #[arg(long, default_value_t = 30)]
    pub idle_secs: u64,
    /// Interface language (`en`, `fr`).
    #[arg(long, default_value = "en")]
    pub lang: String,
    #[arg(long)]
    pub fullscreen: bool,
    /// Play these pictures (a file, a folder or an animated GIF) as the camera.
    #[arg(long, value_name = "PATH")]
    pub camera_source: Option<PathBuf>,
    /// Render every screen to PNG files in this folder and exit (no display needed).
    #[arg(long, value_name = "DIR")]
    pub headless: Option<PathBuf>,
    /// Quit after this many milliseconds (smoke tests).
    #[arg(long, value_name = "MS")]
    pub exit_after_ms: Option<u64>,
}

/// The backend configuration the arguments describe.
pub fn backend_config(args: &Args) -> Result<BackendConfig> {
    let clock = match &args.now {
        Some(text) => Clock::pinned(
            aisle_core::dates::seconds_of(text)
                .with_context(|| format!("--now {text:?} is not YYYY-MM-DD HH:MM:SS"))?,
        ),
        None => Clock::wall(),
    };
    let store_id = match args.store {
        Some(store) => store,
        None => default_store(&args.db)?,
    };
    let mut kiosk = KioskConfig::new(store_id);
    kiosk.idle_secs = args.idle_secs;
    Ok(BackendConfig {
        db: args.db.clone(),
        kiosk,
        clock,
        demo: args.demo,
    })
}

/// The store the replica is provisioned for, else the showcase member's home store.
fn default_store(db: &Path) -> Result<i64> {
    let conn = aisle_core::replica::open_reader(db)
        .with_context(|| format!("opening {}: run `aisle demo` first", db.display()))?;
    if let Some(credentials) = aisle_core::sync::Credentials::load(&conn)? {
        return Ok(credentials.store_id);
    }
    let member = aisle_core::demo::showcase_member(&conn)?
        .context("the replica is not provisioned and has no member: pass --store")?;
    conn.query_row(
        "SELECT home_store_id FROM members WHERE member_id = ?1",
        [member],
        |row| row.get::<_, Option<i64>>(0),
    )?
    .context("pass --store")
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
    let idle = config.kiosk.idle_secs;
    let backend = Backend::open(config)?;
    // Replies come from the worker thread; they are applied in the event loop.
    let shared: Arc<OnceLock<Arc<Mutex<State>>>> = Arc::new(OnceLock::new());
    let started = std::time::Instant::now();
    let worker = {
        let (ui, shared) = (ui.as_weak(), shared.clone());
        Worker::start(backend, move |reply| {
            let shared = shared.clone();
            let _ = ui.upgrade_in_event_loop(move |ui| {
                if let Some(state) = shared.get() {
                    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
                    controller::apply(&ui, &mut guard, reply, started.elapsed().as_millis() as u64);
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
    let clock: controller::Clock = Rc::new(move || started.elapsed().as_millis() as u64);
    let controller = Controller::new(&ui, idle, &submit, &clock);
    let _ = shared.set(controller.state.clone());
    worker.submit(Job::Refresh);
    if let Some(source) = &args.camera_source {
        start_camera(&ui, source, worker.sender())?;
    } else {
        ui.global::<KioskState>()
            .set_camera_status("Scanner ready".into());
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
    Ok(())
}

pub fn select_language(lang: &str) -> Result<()> {
    slint::select_bundled_translation(lang)
        .map_err(|e| anyhow::anyhow!("language {lang:?} is not bundled: {e}"))
}

/// Plays pictures as the camera: frames are decoded as live frames, a code
/// counts once seen in two consecutive frames, and the status line says what
/// the camera is doing.
fn start_camera(ui: &KioskWindow, path: &Path, jobs: std::sync::mpsc::Sender<Job>) -> Result<()> {
    let mut source = ImageSource::open(path, Playback::Loop)
        .with_context(|| format!("the camera source {}", path.display()))?;
    let ui = ui.as_weak();
    std::thread::Builder::new()
        .name("kiosk-camera".into())
        .spawn(move || {
            let mut confirmer = Confirmer::default();
            let status = |text: &'static str| {
                let _ = ui.upgrade_in_event_loop(move |ui| {
                    ui.global::<KioskState>().set_camera_status(text.into());
                });
            };
            status("Camera ready");
            loop {
                match source.next_frame(Duration::from_millis(500)) {
                    Ok(frame) => {
                        let Ok(decoded) = decode::decode(&frame, &DecodeOptions::LIVE) else {
                            continue;
                        };
                        for symbol in confirmer.observe(&decoded.symbols) {
                            if jobs.send(Job::Scan(symbol.text)).is_err() {
                                return;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(_) if source.state() == SourceState::Ended => return,
                    Err(_) => status("No camera: use the scanner"),
                }
            }
        })?;
    Ok(())
}

/// The backend run on the UI thread: tests and `--headless` apply each
/// reply as soon as the job is submitted.
pub fn inline_submit(
    ui: &KioskWindow,
    backend: Backend,
    clock: controller::Clock,
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
