//! `aisle-kiosk --headless DIR`: every screen rendered by Slint's software
//! renderer into PNG files, on a machine without a display. The screens are
//! reached the way a shopper reaches them (a demo member's code, an unknown
//! card), through the same controller and core as the real kiosk.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result};
use slint::ComponentHandle;
use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{Platform, WindowAdapter};

use crate::backend::{Backend, BackendConfig, Job};
use crate::brand::Brand;
use crate::controller::Controller;
use crate::{KioskState, KioskWindow};

pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 800;

struct HeadlessPlatform(Rc<MinimalSoftwareWindow>);

impl Platform for HeadlessPlatform {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, slint::PlatformError> {
        Ok(self.0.clone())
    }
}

/// The kiosk in a window of memory: the same UI, controller, backend and
/// core as on screen, rendered by Slint's software renderer on demand.
pub struct Headless {
    window: Rc<MinimalSoftwareWindow>,
    pub ui: KioskWindow,
    pub submit: crate::controller::Submit,
    controller: Controller,
    pixels: Vec<slint::Rgb8Pixel>,
    /// The store the kiosk serves.
    pub store_id: i64,
}

impl std::fmt::Debug for Headless {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Headless").finish_non_exhaustive()
    }
}

impl Headless {
    /// Sets the process's Slint platform (once per process), opens the
    /// backend inline and shows the attract screen's data.
    pub fn open(config: BackendConfig, brand: &Brand, lang: &str) -> Result<Self> {
        let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
        slint::platform::set_platform(Box::new(HeadlessPlatform(window.clone())))
            .map_err(|e| anyhow::anyhow!("the headless platform: {e}"))?;
        let ui = KioskWindow::new()?;
        brand.apply(&ui)?;
        crate::app::select_language(lang)?;
        ui.window()
            .set_size(slint::PhysicalSize::new(WIDTH, HEIGHT));
        ui.show()?;
        let idle = config.idle_secs;
        let runtime_clock = config.clock.clone();
        let backend = Backend::open(config)?;
        let store_id = backend.store_id();
        let clock: crate::controller::Millis = Rc::new(move || runtime_clock.monotonic_ms());
        let (submit, shared) = crate::app::inline_submit(&ui, backend, clock.clone());
        let controller = Controller::new(&ui, idle, &submit, &clock);
        let _ = shared.set(controller.state.clone());
        submit(Job::Refresh);
        Ok(Headless {
            window,
            ui,
            submit,
            controller,
            pixels: vec![slint::Rgb8Pixel::default(); (WIDTH * HEIGHT) as usize],
            store_id,
        })
    }

    /// Renders the whole window now (every pixel, as a first frame is).
    pub fn frame(&mut self) -> &[slint::Rgb8Pixel] {
        slint::platform::update_timers_and_animations();
        self.window.request_redraw();
        let pixels = &mut self.pixels;
        self.window.draw_if_needed(|renderer| {
            renderer.render(pixels, WIDTH as usize);
        });
        &self.pixels
    }

    /// The window's pixels now, as an image.
    pub fn image(&mut self) -> image::RgbImage {
        let bytes: Vec<u8> = self.frame().iter().flat_map(|p| [p.r, p.g, p.b]).collect();
        image::RgbImage::from_raw(WIDTH, HEIGHT, bytes).expect("the buffer matches the size")
    }

    /// "Done": back to the attract screen.
    pub fn done(&self) {
        self.ui.global::<KioskState>().invoke_done();
    }

    pub fn state(&self) -> &std::sync::Arc<std::sync::Mutex<crate::controller::State>> {
        &self.controller.state
    }
}

/// Renders attract, welcome, message and (when the catalog has a barcode
/// sold here) product screens into `dir`; returns the files written.
pub fn render_all(
    config: BackendConfig,
    brand: &Brand,
    lang: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = config.db.clone();
    let mut kiosk = Headless::open(config, brand, lang)?;
    let store_id = kiosk.store_id;
    let (showcase, gtin) = {
        let conn = aisle_core::replica::open_reader(&db)?;
        let showcase = aisle_core::demo::showcase_member(&conn)?;
        let gtin: Option<String> = conn
            .query_row(
                "SELECT p.gtin FROM products p JOIN store_products s USING (product_id)
                 WHERE s.store_id = ?1 AND p.gtin IS NOT NULL LIMIT 1",
                [store_id],
                |row| row.get(0),
            )
            .ok();
        (showcase, gtin)
    };
    let mut written = Vec::new();
    let mut save = |kiosk: &mut Headless, name: &str| -> Result<()> {
        let path = dir.join(format!("{name}.png"));
        kiosk
            .image()
            .save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    save(&mut kiosk, "attract")?;
    if let Some(member) = showcase {
        (kiosk.submit)(Job::DemoMember(member));
        save(&mut kiosk, "welcome")?;
        kiosk.done();
    }
    if let Some(gtin) = gtin {
        (kiosk.submit)(Job::Scan(gtin));
        save(&mut kiosk, "product")?;
        kiosk.done();
    }
    (kiosk.submit)(Job::Scan("2900000000018".into()));
    save(&mut kiosk, "message")?;
    kiosk.done();
    save(&mut kiosk, "attract-after")?;
    Ok(written)
}
