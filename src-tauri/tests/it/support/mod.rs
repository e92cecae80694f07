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

/// One `aisle sync` pass of the replica at `db` (provisioned) with HQ.
pub fn sync_once(db: &Path) -> aisle_core::sync::SyncReport {
    use aisle_core::sync::{Credentials, SyncOptions, Transport};
    let mut conn = aisle_core::replica::open_writer(db).expect("writer");
    let credentials = Credentials::load(&conn)
        .expect("load")
        .expect("provisioned");
    let transport = Transport::with_timeout(&credentials, std::time::Duration::from_secs(30))
        .expect("transport");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    aisle_core::sync::run_once(
        &mut conn,
        &transport,
        &SyncOptions::for_replica(db),
        aisle_core::time::Timestamp::from_unix(now),
    )
    .expect("sync")
}
