//! Reading QR codes and the 1-D symbologies of loyalty cards and products
//! (EAN-13, UPC-A, Code 128, Code 39) from a grayscale [`Frame`].
//!
//! The engine is zxing-cpp (C++, through the `zxing-cpp` crate, built from
//! its bundled sources), chosen by measurement on the photographs in
//! `shared/data/scans/dev` (see `docs/BENCHMARKS.md`, "Decoding"). This is
//! the only module that talks to it: every call is guarded with
//! `catch_unwind`, inputs are checked before they cross, and the boundary is
//! fuzzed by `cargo xtask bench fuzz`.
//!
//! A plain read comes first. When it finds nothing, a *retry ladder* of
//! cheap image transforms (another binarizer, 1.5x upscaling, sharpening,
//! contrast stretching, gamma) is tried in a fixed order until a code is
//! read, the ladder ends or the frame's time budget runs out. Retries read
//! damaged pictures, and damaged pictures are where checksum-valid misreads
//! come from: a QR code (Reed-Solomon) or Code 128 / Code 39 read is kept at
//! once, but an EAN-13 / UPC-A read (a mod-10 check digit: one wrong read in
//! ten passes it) only once two steps read the same number and it has three
//! times the votes of any other number read in the frame. For a still, even
//! the plain read's EAN-13 / UPC-A counts as one vote that a step must
//! confirm (and no step contradict); a camera's second frame does that job
//! live (see `accept`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use image::{GrayImage, imageops};
use zxingcpp::{BarcodeFormat, Binarizer, ImageFormat, ImageView, TextMode};

use super::frame::Frame;

/// The symbologies Aisle reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Symbology {
    Qr,
    Ean13,
    UpcA,
    Code128,
    Code39,
}

impl Symbology {
    pub const ALL: [Symbology; 5] = [
        Symbology::Qr,
        Symbology::Ean13,
        Symbology::UpcA,
        Symbology::Code128,
        Symbology::Code39,
    ];

    /// The stable name used in CSV output and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Symbology::Qr => "qr_code",
            Symbology::Ean13 => "ean_13",
            Symbology::UpcA => "upc_a",
            Symbology::Code128 => "code_128",
            Symbology::Code39 => "code_39",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The symbology of a read, from zxing-cpp's *symbology* (the family:
    /// always a value the crate's enum names) and the text. The read's
    /// *format* is never asked for: zxing-cpp 3 reports sub-formats the
    /// `zxing-cpp` crate's enum lacks (Code 39 Extended, 0x6541, for a
    /// full-ASCII Code 39) and the crate transmutes them into that enum,
    /// which is undefined behaviour (a debug build aborts the process).
    /// EAN-13 and UPC-A share a family; the length of the text tells them
    /// apart (13 and 12 digits; EAN-8 and UPC-E are not asked for).
    fn from_zxing(symbology: BarcodeFormat, text: &str) -> Option<Self> {
        match symbology {
            BarcodeFormat::QRCode => Some(Symbology::Qr),
            BarcodeFormat::EANUPC => match text.len() {
                13 => Some(Symbology::Ean13),
                12 => Some(Symbology::UpcA),
                _ => None,
            },
            BarcodeFormat::Code128 => Some(Symbology::Code128),
            BarcodeFormat::Code39 => Some(Symbology::Code39),
            _ => None,
        }
    }

    fn zxing(self) -> BarcodeFormat {
        match self {
            Symbology::Qr => BarcodeFormat::QRCode,
            Symbology::Ean13 => BarcodeFormat::EAN13,
            Symbology::UpcA => BarcodeFormat::UPCA,
            Symbology::Code128 => BarcodeFormat::Code128,
            Symbology::Code39 => BarcodeFormat::Code39,
        }
    }

    /// A mod-10 check digit only: one random misread in ten passes it.
    fn weakly_checked(self) -> bool {
        matches!(self, Symbology::Ean13 | Symbology::UpcA)
    }
}

/// One code read from a frame, its text exactly as decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub symbology: Symbology,
    pub text: String,
}

/// What a frame held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub symbols: Vec<Symbol>,
    /// The ladder step that read them (`"plain"` for the first read), or
    /// `None` when nothing was read.
    pub step: Option<&'static str>,
    /// Ladder steps tried, the plain read included.
    pub attempts: u32,
    /// Whether the time budget cut the ladder short.
    pub out_of_time: bool,
}

/// How hard to try on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Run the retry ladder when the plain read finds nothing.
    pub retries: bool,
    /// Product codes (EAN-13, UPC-A) from the plain read are kept only if
    /// no ladder step reads a different number, and are confirmed by one
    /// that reads the same (stills: there is no second frame to agree).
    pub confirm_products: bool,
    /// Retry only when the plain read located a symbol it could not read
    /// (a live camera: most frames show no code at all, and the next frame
    /// is another chance).
    pub only_when_located: bool,
    /// Stop retrying once this much time has gone on the frame (the plain
    /// read always runs, and a step once started finishes). `None`: the
    /// whole ladder (stills, evaluation).
    pub budget: Option<Duration>,
}

impl DecodeOptions {
    /// A still picture: every step of the ladder, however long it takes.
    pub const STILL: DecodeOptions = DecodeOptions {
        retries: true,
        confirm_products: true,
        only_when_located: false,
        budget: None,
    };
    /// A live camera frame: retries only for a located symbol, within
    /// 40 ms; the next frame gets another chance.
    pub const LIVE: DecodeOptions = DecodeOptions {
        retries: true,
        confirm_products: false,
        only_when_located: true,
        budget: Some(Duration::from_millis(40)),
    };
    /// The plain read only.
    pub const PLAIN: DecodeOptions = DecodeOptions {
        retries: false,
        confirm_products: false,
        only_when_located: false,
        budget: None,
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The decoder failed inside (a caught panic or an error it reported);
    /// the frame is skipped, the process goes on.
    #[error("the decoder failed on this frame: {0}")]
    Engine(String),
}

/// A transform of the frame, then a read with a binarizer.
#[derive(Debug, Clone, Copy)]
struct Step {
    name: &'static str,
    /// Upscaling factor as numerator / denominator (1/1: none).
    scale: (u32, u32),
    resampling: imageops::FilterType,
    filter: Filter,
    binarizer: Binarizer,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Filter {
    None,
    /// Unsharp mask: sigma, threshold.
    Sharpen(f32, i32),
    /// Linear stretch of the 2nd..98th percentiles to the full range.
    Stretch,
    /// Gamma > 1 darkens the mid-tones (washed-out prints, glare).
    Gamma(f32),
}

const PLAIN_BINARIZER: Binarizer = Binarizer::LocalAverage;

const fn step(
    name: &'static str,
    scale: (u32, u32),
    resampling: imageops::FilterType,
    filter: Filter,
    binarizer: Binarizer,
) -> Step {
    Step {
        name,
        scale,
        resampling,
        filter,
        binarizer,
    }
}

use Binarizer::{GlobalHistogram as GH, LocalAverage as LA};
use imageops::FilterType::{CatmullRom as CR, Lanczos3 as L3};

/// The retry ladder, in order. Chosen on the dev photographs (greedy, each
/// step the one adding the most reads at zero misreads, ties to the
/// cheaper); measured in docs/BENCHMARKS.md, "Decoding".
const LADDER: &[Step] = &[
    step("1.5x-stretch-global", (3, 2), CR, Filter::Stretch, GH),
    step("1.5x-lanczos-global", (3, 2), L3, Filter::None, GH),
    step("1.5x-lanczos-local", (3, 2), L3, Filter::None, LA),
    step("global", (1, 1), CR, Filter::None, GH),
    step("sharpen-local", (1, 1), CR, Filter::Sharpen(2.0, 5), LA),
    step("sharpen-global", (1, 1), CR, Filter::Sharpen(2.0, 5), GH),
    step(
        "light-sharpen-global",
        (1, 1),
        CR,
        Filter::Sharpen(1.0, 3),
        GH,
    ),
    step("stretch-local", (1, 1), CR, Filter::Stretch, LA),
    step("gamma-local", (1, 1), CR, Filter::Gamma(1.6), LA),
    step("gamma-global", (1, 1), CR, Filter::Gamma(1.6), GH),
    step("1.5x-global", (3, 2), CR, Filter::None, GH),
    step(
        "1.5x-light-sharpen-global",
        (3, 2),
        CR,
        Filter::Sharpen(1.0, 3),
        GH,
    ),
    step("1.5x-local", (3, 2), CR, Filter::None, LA),
    step(
        "1.5x-light-sharpen-local",
        (3, 2),
        CR,
        Filter::Sharpen(1.0, 3),
        LA,
    ),
];

/// Votes a weakly checked number needs from distinct ladder steps, and its
/// least lead over any other number read in the same frame.
const MIN_VOTES: usize = 2;
const MIN_LEAD: usize = 3;

/// Reads every code in `frame`.
pub fn decode(frame: &Frame, options: &DecodeOptions) -> Result<Decoded, DecodeError> {
    let started = Instant::now();
    let mut attempts = 1;
    // Asking zxing-cpp for the symbols it located but could not read costs
    // a few reads on hard photos, so only the live mode, which needs it, asks.
    let (plain, located) = read(
        frame.width(),
        frame.height(),
        frame.luma(),
        PLAIN_BINARIZER,
        options.only_when_located,
    )?;
    // A still's product codes read by the plain read alone are checked by
    // the ladder as well (a camera has its second frame instead).
    let confirm = options.confirm_products
        && options.retries
        && !plain.is_empty()
        && plain.iter().all(|s| s.symbology.weakly_checked());
    if !confirm
        && (!plain.is_empty() || !options.retries || (options.only_when_located && !located))
    {
        let step = (!plain.is_empty()).then_some("plain");
        return Ok(Decoded {
            symbols: plain,
            step,
            attempts,
            out_of_time: false,
        });
    }
    let gray = frame.to_gray_image();
    // Weakly checked reads collect votes until one number clearly leads.
    let mut votes: Vec<(Symbol, usize)> = Vec::new();
    if confirm {
        for symbol in &plain {
            votes.push((symbol.clone(), 1));
        }
    }
    let mut out_of_time = false;
    for step in LADDER {
        if options
            .budget
            .is_some_and(|budget| started.elapsed() >= budget)
        {
            out_of_time = true;
            break;
        }
        attempts += 1;
        let image = transform(&gray, step);
        let (symbols, _) = read(
            image.width(),
            image.height(),
            image.as_raw(),
            step.binarizer,
            false,
        )?;
        let (strong, weak): (Vec<Symbol>, Vec<Symbol>) = symbols
            .into_iter()
            .partition(|s| !s.symbology.weakly_checked());
        if !strong.is_empty() {
            return Ok(Decoded {
                symbols: strong,
                step: Some(step.name),
                attempts,
                out_of_time: false,
            });
        }
        for symbol in weak {
            match votes
                .iter_mut()
                .find(|(seen, _)| same_number(seen, &symbol))
            {
                Some((_, n)) => *n += 1,
                None => votes.push((symbol, 1)),
            }
        }
        if let Some(winner) = leader(&votes) {
            return Ok(Decoded {
                symbols: vec![winner],
                step: Some(step.name),
                attempts,
                out_of_time: false,
            });
        }
    }
    // The plain read's product codes stand when no step read another number.
    let uncontradicted = confirm
        && !out_of_time
        && votes
            .iter()
            .all(|(s, _)| plain.iter().any(|p| same_number(p, s)));
    Ok(Decoded {
        symbols: if uncontradicted { plain } else { Vec::new() },
        step: uncontradicted.then_some("plain"),
        attempts,
        out_of_time,
    })
}

/// Every frame of one picture (one for a still, all of an animated GIF):
/// the symbols read in any of them, each once, in the order first read; the
/// first ladder step that read something; and the frames the decoder failed
/// on, with why (the others still count).
pub fn decode_frames(
    frames: &[Frame],
    options: &DecodeOptions,
) -> (Vec<Symbol>, Option<&'static str>, Vec<DecodeError>) {
    let (mut symbols, mut step, mut errors) = (Vec::new(), None, Vec::new());
    for frame in frames {
        match decode(frame, options) {
            Ok(decoded) => {
                step = step.or(decoded.step);
                for symbol in decoded.symbols {
                    if !symbols.contains(&symbol) {
                        symbols.push(symbol);
                    }
                }
            }
            Err(err) => errors.push(err),
        }
    }
    (symbols, step, errors)
}

/// Two product-code reads of the same GTIN, however reported.
fn same_number(a: &Symbol, b: &Symbol) -> bool {
    gtin13(a.symbology, &a.text) == gtin13(b.symbology, &b.text)
}

/// The number with enough votes and a clear lead, if any.
fn leader(votes: &[(Symbol, usize)]) -> Option<Symbol> {
    let (best, n) = votes.iter().max_by_key(|(_, n)| *n)?;
    let runner_up = votes
        .iter()
        .filter(|(s, _)| !same_number(s, best))
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    (*n >= MIN_VOTES && *n >= MIN_LEAD * runner_up).then(|| best.clone())
}

fn transform(gray: &GrayImage, step: &Step) -> GrayImage {
    let (num, den) = step.scale;
    let scaled = (num != den).then(|| {
        imageops::resize(
            gray,
            gray.width() * num / den,
            gray.height() * num / den,
            step.resampling,
        )
    });
    let base = scaled.as_ref().unwrap_or(gray);
    match step.filter {
        Filter::None => scaled.unwrap_or_else(|| gray.clone()),
        Filter::Sharpen(sigma, threshold) => imageops::unsharpen(base, sigma, threshold),
        Filter::Stretch => stretch(base, 0.02, 0.98),
        Filter::Gamma(gamma) => {
            let mut lut = [0u8; 256];
            for (value, out) in lut.iter_mut().enumerate() {
                *out = (255.0 * (value as f32 / 255.0).powf(gamma)) as u8;
            }
            let mut out = base.clone();
            for p in out.iter_mut() {
                *p = lut[usize::from(*p)];
            }
            out
        }
    }
}

/// Linear contrast stretch between two quantiles of the histogram.
fn stretch(gray: &GrayImage, low: f64, high: f64) -> GrayImage {
    let mut histogram = [0u64; 256];
    for p in gray.as_raw() {
        histogram[usize::from(*p)] += 1;
    }
    let total = gray.as_raw().len() as f64;
    let quantile = |q: f64| {
        let target = (total * q) as u64;
        let mut seen = 0;
        for (value, count) in histogram.iter().enumerate() {
            seen += count;
            if seen > target {
                return value as f64;
            }
        }
        255.0
    };
    let (lo, hi) = (quantile(low), quantile(high));
    let span = (hi - lo).max(1.0);
    let mut lut = [0u8; 256];
    for (value, out) in lut.iter_mut().enumerate() {
        *out = (((value as f64 - lo) / span) * 255.0).clamp(0.0, 255.0) as u8;
    }
    let mut out = gray.clone();
    for p in out.iter_mut() {
        *p = lut[usize::from(*p)];
    }
    out
}

/// One guarded call into zxing-cpp: the symbols read, and whether a symbol
/// was located that could not be read (a failed checksum, a broken format).
fn read(
    width: u32,
    height: u32,
    luma: &[u8],
    binarizer: Binarizer,
    report_located: bool,
) -> Result<(Vec<Symbol>, bool), DecodeError> {
    let formats: Vec<BarcodeFormat> = Symbology::ALL.iter().map(|s| s.zxing()).collect();
    read_formats(width, height, luma, binarizer, report_located, &formats)
}

/// [`read`] asking zxing-cpp for `formats` (the tests ask for every one it
/// knows, to show that no family it can report reaches an invalid value).
fn read_formats(
    width: u32,
    height: u32,
    luma: &[u8],
    binarizer: Binarizer,
    report_located: bool,
    formats: &[BarcodeFormat],
) -> Result<(Vec<Symbol>, bool), DecodeError> {
    if u64::from(width) * u64::from(height) != luma.len() as u64 || luma.is_empty() {
        return Err(DecodeError::Engine(format!(
            "{width}x{height} does not match {} bytes",
            luma.len()
        )));
    }
    let call = || -> Result<(Vec<Symbol>, bool), String> {
        let view = ImageView::from_slice(luma, width, height, ImageFormat::Lum)
            .map_err(|err| err.to_string())?;
        let reader = zxingcpp::read()
            .formats(formats)
            .binarizer(binarizer)
            .try_harder(true)
            .try_rotate(true)
            .try_invert(true)
            .try_downscale(true)
            .text_mode(TextMode::Plain)
            .return_errors(report_located);
        let barcodes = reader.from(view).map_err(|err| err.to_string())?;
        let mut symbols: Vec<Symbol> = Vec::new();
        let mut located = false;
        for barcode in barcodes {
            if !barcode.is_valid() {
                located = true;
                continue;
            }
            let text = barcode.text();
            let Some(symbology) = Symbology::from_zxing(barcode.symbology(), &text) else {
                continue;
            };
            // GS1: an EAN-13 with a leading zero is a UPC-A, whichever
            // reader step saw it.
            let symbol = if symbology == Symbology::Ean13
                && text.len() == 13
                && let Some(upc) = text.strip_prefix('0')
            {
                Symbol {
                    symbology: Symbology::UpcA,
                    text: upc.to_owned(),
                }
            } else {
                Symbol { symbology, text }
            };
            if !symbols.contains(&symbol) {
                symbols.push(symbol);
            }
        }
        Ok((symbols, located))
    };
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(message)) => Err(DecodeError::Engine(message)),
        Err(_) => Err(DecodeError::Engine("panicked".into())),
    }
}

/// GTIN-13 form of an EAN-13 or UPC-A read (a UPC-A is an EAN-13 with a
/// leading zero), for comparing product codes however they were reported.
pub fn gtin13(symbology: Symbology, text: &str) -> String {
    if symbology == Symbology::UpcA && text.len() == 12 {
        format!("0{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identify::frame::read_frames;
    use crate::rng::SplitMix64;

    fn asset(name: &str) -> Frame {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/scans")
            .join(name);
        read_frames(&path).expect("asset").remove(0)
    }

    fn texts(decoded: &Decoded) -> Vec<(Symbology, &str)> {
        decoded
            .symbols
            .iter()
            .map(|s| (s.symbology, s.text.as_str()))
            .collect()
    }

    #[test]
    fn real_photos_are_read_by_the_plain_read_or_the_ladder() {
        let plain = decode(&asset("ean13.png"), &DecodeOptions::PLAIN).expect("decode");
        assert_eq!(texts(&plain), [(Symbology::Ean13, "9780441014989")]);
        assert_eq!((plain.step, plain.attempts), (Some("plain"), 1));
        // A still's product code is confirmed by a ladder step too.
        let still = decode(&asset("ean13.png"), &DecodeOptions::STILL).expect("decode");
        assert_eq!(texts(&still), [(Symbology::Ean13, "9780441014989")]);
        assert!(still.attempts > 1);
        // A QR code (Reed-Solomon) needs no confirmation.
        let qr = decode(&asset("qr-photo.png"), &DecodeOptions::STILL).expect("decode");
        assert_eq!((qr.step, qr.attempts), (Some("plain"), 1));

        // These three defeat the plain read; a ladder step reads them.
        for (name, symbology, text) in [
            (
                "qr-curved.png",
                Symbology::Qr,
                "Google Print Ads - T.G.I.A.F. - January 31, 2008",
            ),
            ("ean13-glare.png", Symbology::Ean13, "9780441014989"),
            ("upca-pouch.png", Symbology::UpcA, "890444000335"),
        ] {
            let frame = asset(name);
            let without = decode(&frame, &DecodeOptions::PLAIN).expect("plain");
            assert!(without.symbols.is_empty(), "{name}: the plain read alone");
            let with = decode(&frame, &DecodeOptions::STILL).expect("ladder");
            assert_eq!(texts(&with), [(symbology, text)], "{name}");
            assert!(with.attempts > 1 && with.step != Some("plain"), "{name}");
        }
        let code128 = decode(&asset("code128.png"), &DecodeOptions::STILL).expect("decode");
        assert_eq!(texts(&code128), [(Symbology::Code128, "óóóó1234óóabózz")]);
    }

    #[test]
    fn a_blurred_code_gives_no_answer_rather_than_a_wrong_one() {
        let decoded = decode(&asset("ean13-blurred.png"), &DecodeOptions::STILL).expect("decode");
        assert!(decoded.symbols.is_empty(), "{decoded:?}");
        assert_eq!(decoded.step, None);
        assert_eq!(decoded.attempts as usize, 1 + LADDER.len());
    }

    #[test]
    fn live_frames_retry_only_what_was_located() {
        // Nothing but grey: nothing located, no retries.
        let blank = Frame::new(640, 480, vec![128; 640 * 480]).expect("frame");
        let decoded = decode(&blank, &DecodeOptions::LIVE).expect("decode");
        assert_eq!((decoded.attempts, decoded.out_of_time), (1, false));
        // A code the plain read finds but cannot read: the ladder runs.
        let curved = asset("qr-curved.png");
        let decoded = decode(&curved, &DecodeOptions::LIVE).expect("decode");
        assert!(decoded.attempts > 1, "{decoded:?}");
    }

    #[test]
    fn the_time_budget_cuts_the_ladder_short() {
        let options = DecodeOptions {
            retries: true,
            confirm_products: true,
            only_when_located: false,
            budget: Some(Duration::ZERO),
        };
        let decoded = decode(&asset("ean13-blurred.png"), &options).expect("decode");
        assert!(decoded.out_of_time);
        assert_eq!(decoded.attempts, 1, "only the plain read");
    }

    #[test]
    fn a_code_written_by_zxing_reads_back_exactly_however_it_is_placed() {
        let text = "AISLE1:1029:58800000:payload, with \"quotes\"\r\nand a second line";
        let barcode = zxingcpp::create(BarcodeFormat::QRCode)
            .from_str(text)
            .expect("create");
        let image = barcode
            .to_image_with(&zxingcpp::write().scale(4))
            .expect("image");
        let (w, h) = (image.width() as u32, image.height() as u32);
        let code = Frame::new(w, h, image.data()).expect("frame");
        // On a camera-sized grey canvas, off-centre, inverted too.
        let frame = code.placed_on(1280, 720, 700, 300, 140);
        let decoded = decode(&frame, &DecodeOptions::LIVE).expect("decode");
        assert_eq!(texts(&decoded), [(Symbology::Qr, text)]);
        let inverted: Vec<u8> = frame.luma().iter().map(|p| 255 - p).collect();
        let inverted = Frame::new(1280, 720, inverted).expect("frame");
        assert_eq!(
            texts(&decode(&inverted, &DecodeOptions::LIVE).expect("decode")),
            [(Symbology::Qr, text)]
        );
    }

    #[test]
    fn noise_and_degenerate_frames_never_panic_nor_read_anything() {
        let mut rng = SplitMix64::new(17);
        for round in 0..200 {
            let width = 1 + (rng.next_u64() % 96) as u32;
            let height = 1 + (rng.next_u64() % 96) as u32;
            let luma: Vec<u8> = (0..width * height)
                .map(|_| match round % 3 {
                    0 => rng.next_u64() as u8,
                    1 => 255,
                    _ => (rng.next_u64() % 2 * 255) as u8,
                })
                .collect();
            let frame = Frame::new(width, height, luma).expect("frame");
            let decoded = decode(&frame, &DecodeOptions::STILL).expect("decode");
            assert!(decoded.symbols.is_empty(), "{width}x{height}: {decoded:?}");
        }
        assert!(matches!(
            read(4, 4, &[0; 3], PLAIN_BINARIZER, true),
            Err(DecodeError::Engine(_))
        ));
    }

    /// A barcode zxing-cpp writes, as a frame on a white canvas.
    fn written(format: BarcodeFormat, text: &str) -> Option<Frame> {
        let barcode = zxingcpp::create(format).from_str(text).ok()?;
        let image = barcode.to_image_with(&zxingcpp::write().scale(3)).ok()?;
        let (w, h) = (image.width() as u32, image.height() as u32);
        let code = Frame::new(w, h, image.data()).ok()?;
        Some(code.placed_on(w + 80, h + 80, 40, 40, 255))
    }

    #[test]
    fn full_ascii_code_39_reads_as_code_39_without_touching_its_sub_format() {
        // Lower case in Code 39 is full-ASCII mode: each letter is a shift
        // symbol and a capital ("+A" is "a"). zxing-cpp 3 reports the read as
        // Code 39 Extended (0x6541), which the crate's enum does not name:
        // asking for the format of this read aborts a debug build.
        let frame = written(BarcodeFormat::Code39, "+A+I+S+L+E-39").expect("written");
        for options in [
            DecodeOptions::PLAIN,
            DecodeOptions::STILL,
            DecodeOptions::LIVE,
        ] {
            let decoded = decode(&frame, &options).expect("decode");
            assert_eq!(texts(&decoded), [(Symbology::Code39, "aisle-39")]);
        }
    }

    #[test]
    fn every_family_zxing_can_report_maps_to_a_symbology_or_is_skipped() {
        // One code of each format zxing-cpp writes, read with every format
        // enabled: only the four families Aisle reads come out, each as its
        // symbology, and nothing else aborts or leaks through.
        let cases: &[(BarcodeFormat, &str, Option<Symbology>)] = &[
            (BarcodeFormat::QRCode, "AISLE", Some(Symbology::Qr)),
            (BarcodeFormat::MicroQRCode, "AISLE", Some(Symbology::Qr)),
            (BarcodeFormat::RMQRCode, "AISLE", Some(Symbology::Qr)),
            (
                BarcodeFormat::EAN13,
                "9780441014989",
                Some(Symbology::Ean13),
            ),
            (BarcodeFormat::UPCA, "890444000335", Some(Symbology::UpcA)),
            (
                BarcodeFormat::Code128,
                "Aisle 128",
                Some(Symbology::Code128),
            ),
            (BarcodeFormat::Code39, "AISLE-39", Some(Symbology::Code39)),
            (BarcodeFormat::EAN8, "96385074", None),
            // A UPC-E is reported as the UPC-A number it stands for (the
            // product's GTIN); Aisle's own reader does not ask for UPC-E.
            (BarcodeFormat::UPCE, "01234565", Some(Symbology::UpcA)),
            (BarcodeFormat::Code93, "AISLE93", None),
            (BarcodeFormat::Codabar, "A123456A", None),
            (BarcodeFormat::ITF, "12345678", None),
            (BarcodeFormat::DataBar, "0950110153001", None),
            (BarcodeFormat::DataBarExp, "(01)98898765432106", None),
            (BarcodeFormat::DataBarLtd, "0950110153001", None),
            (BarcodeFormat::PDF417, "AISLE", None),
            (BarcodeFormat::MicroPDF417, "AISLE", None),
            (BarcodeFormat::DataMatrix, "AISLE", None),
            (BarcodeFormat::Aztec, "AISLE", None),
            (BarcodeFormat::MaxiCode, "AISLE", None),
            (BarcodeFormat::DXFilmEdge, "16-2", None),
            (BarcodeFormat::Telepen, "AISLE", None),
        ];
        let mut read_back = 0;
        for &(format, text, expected) in cases {
            let Some(frame) = written(format, text) else {
                continue;
            };
            let (symbols, _) = read_formats(
                frame.width(),
                frame.height(),
                frame.luma(),
                PLAIN_BINARIZER,
                true,
                &[BarcodeFormat::All],
            )
            .expect("read");
            let families: Vec<Symbology> = symbols.iter().map(|s| s.symbology).collect();
            match expected {
                Some(symbology) => {
                    assert_eq!(families, [symbology], "{format:?}");
                    read_back += 1;
                }
                None => assert!(families.is_empty(), "{format:?}: {symbols:?}"),
            }
        }
        // At least QR, EAN-13, UPC-A, Code 128 and Code 39 were written and read.
        assert!(read_back >= 5, "{read_back}");
    }

    #[test]
    fn votes_need_two_steps_and_a_clear_lead() {
        let ean = |t: &str| Symbol {
            symbology: Symbology::Ean13,
            text: t.into(),
        };
        let upc = Symbol {
            symbology: Symbology::UpcA,
            text: "890444000335".into(),
        };
        assert_eq!(leader(&[(ean("0890444000335"), 1)]), None);
        assert_eq!(
            leader(&[(upc.clone(), 2)]),
            Some(upc.clone()),
            "two steps agree"
        );
        assert!(same_number(&upc, &ean("0890444000335")));
        assert_eq!(leader(&[(upc.clone(), 2), (ean("5030159003930"), 1)]), None);
        assert_eq!(
            leader(&[(upc.clone(), 3), (ean("5030159003930"), 1)]),
            Some(upc)
        );
    }
}
