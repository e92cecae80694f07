//! Pure mapping from the core's answers to what the screens show: money,
//! places, initials, expiry dates, the coupon's QR code as pixels.

use aisle_core::kiosk::KioskCoupon;
use aisle_core::recommend::serve;
use qrcode::{EcLevel, QrCode};
use slint::{Image, Rgb8Pixel, SharedPixelBuffer, SharedString};

use crate::{CouponCard, Pick};

/// `$1.99`; an unknown price is empty (the screen says "price at the
/// shelf" in the shopper's language).
pub fn money(cents: Option<i64>) -> String {
    match cents {
        Some(cents) => format!("${}.{:02}", cents / 100, (cents % 100).abs()),
        None => String::new(),
    }
}

/// The letter on a product's round badge: its department's first letter.
pub fn initial(department: Option<&str>, name: &str) -> String {
    department
        .or(Some(name))
        .and_then(|text| text.chars().find(|c| c.is_alphanumeric()))
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default()
}

pub fn pick(p: &serve::Pick) -> Pick {
    let (kind, count, product) = match &p.reason {
        serve::Reason::Cycle { every_days } => ("cycle", *every_days, ""),
        serve::Reason::Bought { times } => ("bought", *times, ""),
        serve::Reason::BoughtWith { name, .. } => ("bought_with", 0, name.as_str()),
        serve::Reason::PopularHere => ("popular_here", 0, ""),
        serve::Reason::Popular => ("popular", 0, ""),
    };
    Pick {
        name: SharedString::from(p.name.as_str()),
        department: p.department.clone().unwrap_or_default().into(),
        initial: initial(p.department.as_deref(), &p.name).into(),
        price: money(p.price_cents).into(),
        location: p.location.clone().unwrap_or_default().into(),
        reason_kind: kind.into(),
        reason_count: i32::try_from(count).unwrap_or(i32::MAX),
        reason_product: product.into(),
    }
}

/// The amount a coupon takes off (`$0.50`), else empty; the screen
/// writes "... off" or "..% off" in the shopper's language.
pub fn discount_amount(coupon: &KioskCoupon) -> String {
    match coupon.discount_cents {
        Some(cents) if cents > 0 => money(Some(cents)),
        _ => String::new(),
    }
}

/// The day part of an expiry (`YYYY-MM-DD HH:MM:SS` -> `YYYY-MM-DD`).
pub fn day(timestamp: &str) -> String {
    timestamp.get(..10).unwrap_or(timestamp).to_owned()
}

/// A QR code of `text` as black-on-white pixels, `scale` pixels per module
/// with a 4-module quiet zone; `None` if the text cannot be a QR code.
pub fn qr_pixels(text: &str, scale: u32) -> Option<SharedPixelBuffer<Rgb8Pixel>> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let modules = code.width() as u32;
    let colors = code.to_colors();
    let size = (modules + 8) * scale;
    let mut buffer = SharedPixelBuffer::<Rgb8Pixel>::new(size, size);
    let white = Rgb8Pixel::new(255, 255, 255);
    let black = Rgb8Pixel::new(0, 0, 0);
    let pixels = buffer.make_mut_slice();
    for y in 0..size {
        for x in 0..size {
            let (mx, my) = (x / scale, y / scale);
            let dark = (4..modules + 4).contains(&mx)
                && (4..modules + 4).contains(&my)
                && colors[((my - 4) * modules + (mx - 4)) as usize] == qrcode::Color::Dark;
            pixels[(y * size + x) as usize] = if dark { black } else { white };
        }
    }
    Some(buffer)
}

/// A coupon card: the QR code of its signed token (or of its numeric code
/// when another store signed it).
pub fn coupon(c: &KioskCoupon, sent: bool) -> CouponCard {
    let payload = c.token.as_deref().unwrap_or(&c.numeric_code);
    let qr = qr_pixels(payload, 4)
        .map(Image::from_rgb8)
        .unwrap_or_default();
    let digits = &c.numeric_code;
    let grouped: Vec<&str> = (0..digits.len())
        .step_by(4)
        .map(|i| &digits[i..(i + 4).min(digits.len())])
        .collect();
    CouponCard {
        serial: c.serial.as_str().into(),
        title: c.description.clone().unwrap_or_default().into(),
        discount_amount: discount_amount(c).into(),
        discount_percent: c
            .discount_percent
            .filter(|p| *p > 0)
            .map_or(0, |p| i32::try_from(p).unwrap_or(0)),
        expires: day(&c.expires_at).into(),
        qr,
        numeric_code: grouped.join(" ").into(),
        sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kiosk_coupon(cents: Option<i64>, percent: Option<i64>) -> KioskCoupon {
        KioskCoupon {
            serial: "1234567890123456".into(),
            description: Some("Oat milk".into()),
            discount_cents: cents,
            discount_percent: percent,
            expires_at: "2026-03-24 09:00:00".into(),
            token: None,
            numeric_code: "12345678901234567".into(),
        }
    }

    #[test]
    fn money_days_and_discounts_read_well() {
        assert_eq!(money(Some(199)), "$1.99");
        assert_eq!(money(Some(5)), "$0.05");
        assert_eq!(
            money(None),
            "",
            "the screen says it in the shopper's language"
        );
        assert_eq!(day("2026-03-24 09:00:00"), "2026-03-24");
        assert_eq!(discount_amount(&kiosk_coupon(Some(50), None)), "$0.50");
        assert_eq!(discount_amount(&kiosk_coupon(Some(300), Some(5))), "$3.00");
        let percent = coupon(&kiosk_coupon(None, Some(10)), false);
        assert_eq!(
            (percent.discount_amount.as_str(), percent.discount_percent),
            ("", 10)
        );
        let neither = coupon(&kiosk_coupon(Some(0), Some(0)), false);
        assert_eq!(
            (neither.discount_amount.as_str(), neither.discount_percent),
            ("", 0)
        );
        assert_eq!(initial(Some("produce"), "Apples"), "P");
        assert_eq!(initial(None, "  apples"), "A");
    }

    #[test]
    fn reasons_travel_as_kinds_the_screen_translates() {
        let pick_with = |reason: serve::Reason| {
            pick(&serve::Pick {
                product_id: 1,
                name: "Oat milk".into(),
                department: Some("dairy".into()),
                price_cents: None,
                location: None,
                reason,
                score: 1.0,
            })
        };
        let cycle = pick_with(serve::Reason::Cycle { every_days: 14 });
        assert_eq!(
            (cycle.reason_kind.as_str(), cycle.reason_count),
            ("cycle", 14)
        );
        let with = pick_with(serve::Reason::BoughtWith {
            product_id: 2,
            name: "Granola".into(),
        });
        assert_eq!(
            (with.reason_kind.as_str(), with.reason_product.as_str()),
            ("bought_with", "Granola")
        );
        assert_eq!(
            pick_with(serve::Reason::PopularHere).reason_kind,
            "popular_here"
        );
        assert_eq!((cycle.price.as_str(), cycle.location.as_str()), ("", ""));
        assert_eq!(cycle.initial, "D");
    }

    #[test]
    fn a_coupon_card_carries_a_qr_code_that_reads_back() {
        let card = coupon(&kiosk_coupon(Some(50), None), false);
        assert_eq!(card.numeric_code, "1234 5678 9012 3456 7");
        let buffer = qr_pixels("AISLEC1:TEST", 4).expect("qr");
        let (w, h) = (buffer.width(), buffer.height());
        let luma: Vec<u8> = buffer.as_slice().iter().map(|p| p.r).collect();
        let frame = aisle_core::identify::frame::Frame::new(w, h, luma).expect("frame");
        let decoded = aisle_core::identify::decode::decode(
            &frame,
            &aisle_core::identify::decode::DecodeOptions::PLAIN,
        )
        .expect("decode");
        assert_eq!(decoded.symbols[0].text, "AISLEC1:TEST");
    }
}
