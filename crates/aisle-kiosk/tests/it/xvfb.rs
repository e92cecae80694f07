//! Smoke test of the real binary: `aisle-kiosk` opens its window on an X
//! server (Xvfb, which `cargo xtask test` installs), the root window is
//! captured with `xwd`, and the capture shows the attract screen in the
//! brand's colours.

use std::path::Path;
use std::process::Command;

/// Reads an XWD capture (ZPixmap, 24 or 32 bits per pixel) into RGB rows.
fn read_xwd(bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let field = |i: usize| u32::from_be_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let header_size = field(0) as usize;
    assert_eq!(field(1), 7, "XWD version 7");
    assert_eq!(field(2), 2, "ZPixmap");
    let (width, height) = (field(4), field(5));
    let little = field(7) == 0;
    let bits_per_pixel = field(11);
    let bytes_per_line = field(12) as usize;
    let masks = [field(14), field(15), field(16)];
    let colors = field(19) as usize;
    assert!(
        bits_per_pixel == 32 || bits_per_pixel == 24,
        "{bits_per_pixel} bits per pixel"
    );
    let data = &bytes[header_size + colors * 12..];
    let step = (bits_per_pixel / 8) as usize;
    let mut pixels = Vec::with_capacity((width * height) as usize);
    for y in 0..height as usize {
        for x in 0..width as usize {
            let at = y * bytes_per_line + x * step;
            let mut raw = [0u8; 4];
            raw[..step].copy_from_slice(&data[at..at + step]);
            let value = if little {
                u32::from_le_bytes(raw)
            } else {
                u32::from_be_bytes(raw) >> (32 - bits_per_pixel)
            };
            let channel = |mask: u32| ((value & mask) >> mask.trailing_zeros()) as u8;
            pixels.push([channel(masks[0]), channel(masks[1]), channel(masks[2])]);
        }
    }
    (width, height, pixels)
}

#[test]
fn the_real_binary_shows_the_attract_screen_under_xvfb() {
    assert!(
        Command::new("xvfb-run").arg("--help").output().is_ok(),
        "xvfb-run is missing: `cargo xtask test` installs xvfb, xauth and x11-apps"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    aisle_tests::kiosk_replica(&db, "2017-10-20 12:00:00");
    let capture = dir.path().join("screen.xwd");
    let brand = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/brand");
    let script = "\"$KIOSK\" --db \"$DB\" --brand \"$BRAND\" --demo --now '2017-10-20 12:00:00' --exit-after-ms 8000 & app=$!; \
         sleep 5; xwd -root -silent > \"$OUT\"; wait $app";
    let output = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24", "sh", "-c", script])
        .env("KIOSK", env!("CARGO_BIN_EXE_aisle-kiosk"))
        .env("DB", &db)
        .env("BRAND", &brand)
        .env("OUT", &capture)
        .env("SLINT_BACKEND", "winit-software")
        .output()
        .expect("xvfb-run");
    assert!(
        output.status.success(),
        "the kiosk under Xvfb failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let (width, height, pixels) = read_xwd(&std::fs::read(&capture).expect("capture"));
    assert_eq!((width, height), (1280, 800));
    let at = |x: u32, y: u32| pixels[(y * width + x) as usize];
    // The brand's background behind the title, the logo's orange top left.
    let background = [0x10, 0x24, 0x3a];
    let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 8);
    let background_share =
        pixels.iter().filter(|p| near(**p, background)).count() as f64 / pixels.len() as f64;
    assert!(
        background_share > 0.5,
        "{:.0}% brand background",
        background_share * 100.0
    );
    let logo = (10..80)
        .flat_map(|y| (10..80).map(move |x| (x, y)))
        .filter(|(x, y)| near(at(*x, *y), [0xe4, 0x57, 0x2e]))
        .count();
    assert!(logo > 1000, "the logo's orange: {logo} pixels");
    // Text was drawn: the title's white.
    let white = pixels.iter().filter(|p| p.iter().all(|c| *c > 240)).count();
    assert!(white > 2000, "{white} white pixels");
}
