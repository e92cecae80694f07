//! Test support shared by the app's integration tests.

#![allow(dead_code)]

pub mod webkit;

use std::path::Path;

/// A QR code of `text` as a 640x480 picture `dir/name`: what the tablet's
/// camera sees of a card held up to it.
pub fn qr_picture(dir: &Path, name: &str, text: &str) {
    let code = qrcode::QrCode::new(text.as_bytes()).expect("qr");
    let picture = code
        .render::<image::Luma<u8>>()
        .module_dimensions(6, 6)
        .quiet_zone(true)
        .build();
    let mut canvas = image::GrayImage::from_pixel(640, 480, image::Luma([255]));
    image::imageops::overlay(&mut canvas, &picture, 160, 80);
    canvas.save(dir.join(name)).expect("save picture");
}
