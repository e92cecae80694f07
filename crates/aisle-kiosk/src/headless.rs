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

/// The window's pixels now, as RGB.
fn render(window: &MinimalSoftwareWindow) -> image::RgbImage {
    slint::platform::update_timers_and_animations();
    window.request_redraw();
    let mut pixels = vec![slint::Rgb8Pixel::default(); (WIDTH * HEIGHT) as usize];
    window.draw_if_needed(|renderer| {
        renderer.render(&mut pixels, WIDTH as usize);
    });
    let bytes: Vec<u8> = pixels.iter().flat_map(|p| [p.r, p.g, p.b]).collect();
    image::RgbImage::from_raw(WIDTH, HEIGHT, bytes).expect("the buffer matches the size")
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
    let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
    slint::platform::set_platform(Box::new(HeadlessPlatform(window.clone())))
        .map_err(|e| anyhow::anyhow!("the headless platform: {e}"))?;
    let ui = KioskWindow::new()?;
    brand.apply(&ui)?;
    crate::app::select_language(lang)?;
    ui.window()
        .set_size(slint::PhysicalSize::new(WIDTH, HEIGHT));
    ui.show()?;
    let store_id = config.kiosk.store_id;
    let idle = config.kiosk.idle_secs;
    let backend = Backend::open(config)?;
    let (showcase, gtin) = {
        let conn = aisle_core::replica::open_reader(backend.db())?;
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
    let started = std::time::Instant::now();
    let clock: crate::controller::Clock = Rc::new(move || started.elapsed().as_millis() as u64);
    let (submit, shared) = crate::app::inline_submit(&ui, backend, clock.clone());
    let controller = Controller::new(&ui, idle, &submit, &clock);
    let _ = shared.set(controller.state.clone());
    submit(Job::Refresh);
    ui.global::<KioskState>()
        .set_camera_status("Scanner ready".into());
    let mut written = Vec::new();
    let mut save = |name: &str| -> Result<()> {
        let path = dir.join(format!("{name}.png"));
        render(&window)
            .save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    save("attract")?;
    if let Some(member) = showcase {
        submit(Job::DemoMember(member));
        save("welcome")?;
        ui.global::<KioskState>().invoke_done();
    }
    if let Some(gtin) = gtin {
        submit(Job::Scan(gtin));
        save("product")?;
        ui.global::<KioskState>().invoke_done();
    }
    submit(Job::Scan("2900000000018".into()));
    save("message")?;
    ui.global::<KioskState>().invoke_done();
    save("attract-after")?;
    drop(controller);
    Ok(written)
}
