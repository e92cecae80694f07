//! The crate's integration tests, gathered in one binary (one link of the whole tree, not one per file).

mod camera;
mod crash;
mod flow;
mod models;
mod public;
mod translations;
mod xvfb;

use std::path::Path;

use aisle_kiosk::{KioskWindow, brand::Brand};
use i_slint_backend_testing::{TestingBackend, TestingBackendOptions};
use slint::ComponentHandle;

/// Slint's testing backend on this test's thread: mock time, the software renderer.
fn testing_platform() {
    slint::platform::set_platform(Box::new(TestingBackend::new(TestingBackendOptions {
        mock_time: true,
        threading: false,
        renderer_name: Some("software".into()),
    })))
    .expect("one platform per test thread");
}

/// The kiosk's window with the brand, in `lang`, at the kiosk's size, shown.
fn shown_window(lang: &str) -> KioskWindow {
    let ui = KioskWindow::new().expect("window");
    let brand_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/brand");
    Brand::load(&brand_dir)
        .expect("brand")
        .apply(&ui)
        .expect("apply");
    aisle_kiosk::app::select_language(lang).expect("language");
    ui.window().set_size(slint::PhysicalSize::new(1280, 800));
    ui.show().expect("show");
    ui
}
