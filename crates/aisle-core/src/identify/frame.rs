//! Frames and where they come from.
//!
//! A [`FrameSource`] hands out the newest grayscale frame; the kiosk's scan
//! loop and `aisle scan` do not care whether it is a camera
//! (`aisle-camera`, over nokhwa), a still image, a folder of pictures or an
//! animated GIF ([`ImageSource`], for tests, demos and kiosks without a
//! camera). Sources never panic and name what went wrong: no camera, a camera
//! unplugged (and being reconnected), an unreadable file.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// One 8-bit grayscale frame, row-major, `width * height` bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    luma: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{})", self.width, self.height)
    }
}

/// Largest frame accepted (a 16-megapixel still): bigger input is refused
/// rather than handed to the decoder.
pub const MAX_PIXELS: u64 = 16_000_000;

impl Frame {
    /// A frame from luma bytes; refuses a size that does not match or is
    /// empty or too large.
    pub fn new(width: u32, height: u32, luma: Vec<u8>) -> Result<Self, FrameError> {
        let pixels = u64::from(width) * u64::from(height);
        if width == 0 || height == 0 || pixels > MAX_PIXELS {
            return Err(FrameError::BadSize { width, height });
        }
        if luma.len() as u64 != pixels {
            return Err(FrameError::BadSize { width, height });
        }
        Ok(Self {
            width,
            height,
            luma,
        })
    }

    /// A frame from packed RGB bytes (what cameras and decoders of JPEG and
    /// MJPEG deliver), with ITU-R BT.601 luma weights.
    pub fn from_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Self, FrameError> {
        let pixels = u64::from(width) * u64::from(height);
        if rgb.len() as u64 != pixels * 3 {
            return Err(FrameError::BadSize { width, height });
        }
        let luma = rgb
            .chunks_exact(3)
            .map(|p| {
                let y = 299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]);
                ((y + 500) / 1000) as u8
            })
            .collect();
        Self::new(width, height, luma)
    }

    /// A frame from packed YUYV 4:2:2 (the raw format of most USB cameras):
    /// the luma is every other byte.
    pub fn from_yuyv(width: u32, height: u32, yuyv: &[u8]) -> Result<Self, FrameError> {
        let pixels = u64::from(width) * u64::from(height);
        if yuyv.len() as u64 != pixels * 2 {
            return Err(FrameError::BadSize { width, height });
        }
        Self::new(width, height, yuyv.iter().step_by(2).copied().collect())
    }

    /// Any decoded picture, converted to grayscale.
    pub fn from_image(image: &image::DynamicImage) -> Result<Self, FrameError> {
        let gray = image.to_luma8();
        let (width, height) = gray.dimensions();
        Self::new(width, height, gray.into_raw())
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn luma(&self) -> &[u8] {
        &self.luma
    }

    /// The frame as an `image` buffer (for the decoder's retries).
    pub fn to_gray_image(&self) -> image::GrayImage {
        image::GrayImage::from_raw(self.width, self.height, self.luma.clone())
            .unwrap_or_else(|| image::GrayImage::new(self.width, self.height))
    }

    /// The frame pasted at (`x`, `y`) on a canvas of the given size and
    /// background (how a small photo becomes a camera-sized frame in the
    /// benchmarks); parts outside the canvas are cut.
    pub fn placed_on(&self, width: u32, height: u32, x: u32, y: u32, background: u8) -> Self {
        let mut luma = vec![background; width as usize * height as usize];
        for row in 0..self.height.min(height.saturating_sub(y)) {
            let cols = self.width.min(width.saturating_sub(x)) as usize;
            let src = row as usize * self.width as usize;
            let dst = (y + row) as usize * width as usize + x as usize;
            luma[dst..dst + cols].copy_from_slice(&self.luma[src..src + cols]);
        }
        Self {
            width,
            height,
            luma,
        }
    }
}

/// What a source is doing, for the kiosk's "camera missing" state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// Frames are coming.
    Live,
    /// No camera is attached (or none matches the configured device).
    NoCamera,
    /// The camera went away; trying again (attempts so far).
    Reconnecting { attempts: u32 },
    /// A finite source (a folder, a GIF played once) has no more frames.
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no camera: {0}")]
    NoCamera(String),
    #[error("camera disconnected: {0}")]
    Disconnected(String),
    #[error("no new frame within the wait")]
    Timeout,
    #[error("no more frames")]
    Ended,
    #[error("frame size {width}x{height} is empty, too large or does not match its bytes")]
    BadSize { width: u32, height: u32 },
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// Where frames come from. Implementations keep only the newest frame: a
/// slow consumer skips frames rather than falling behind the camera.
pub trait FrameSource: Send {
    /// The newest frame not handed out before, waiting at most `wait`.
    fn next_frame(&mut self, wait: Duration) -> Result<Frame, FrameError>;
    /// What the source is doing now.
    fn state(&self) -> SourceState;
    /// A name for logs and the status line ("USB Camera (0)", a file name).
    fn name(&self) -> String;
}

/// How an [`ImageSource`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playback {
    /// Every frame once, then [`FrameError::Ended`].
    Once,
    /// Round and round, as a camera pointed at a printed code would see it.
    Loop,
}

/// Frames from a still image, every image of a folder (in name order), or
/// the frames of an animated GIF. Files are decoded when opened, so a bad
/// file is reported at once, with its name.
#[derive(Debug)]
pub struct ImageSource {
    name: String,
    frames: Vec<Frame>,
    next: usize,
    playback: Playback,
}

/// Picture files a folder source reads.
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "webp", "gif", "bmp"];

impl ImageSource {
    pub fn open(path: &Path, playback: Playback) -> Result<Self, FrameError> {
        let frames = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|err| unreadable(path, &err))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                    })
                })
                .collect();
            files.sort();
            let mut frames = Vec::new();
            for file in &files {
                frames.extend(read_frames(file)?);
            }
            frames
        } else {
            read_frames(path)?
        };
        if frames.is_empty() {
            return Err(FrameError::Unreadable {
                path: path.display().to_string(),
                reason: "no pictures in it".into(),
            });
        }
        Ok(Self {
            name: path.display().to_string(),
            frames,
            next: 0,
            playback,
        })
    }

    /// A source over frames already in memory.
    pub fn from_frames(name: &str, frames: Vec<Frame>, playback: Playback) -> Self {
        Self {
            name: name.to_owned(),
            frames,
            next: 0,
            playback,
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl FrameSource for ImageSource {
    fn next_frame(&mut self, _wait: Duration) -> Result<Frame, FrameError> {
        if self.next >= self.frames.len() {
            match self.playback {
                Playback::Loop if !self.frames.is_empty() => self.next = 0,
                _ => return Err(FrameError::Ended),
            }
        }
        let frame = self.frames[self.next].clone();
        self.next += 1;
        Ok(frame)
    }

    fn state(&self) -> SourceState {
        if self.playback == Playback::Once && self.next >= self.frames.len() {
            SourceState::Ended
        } else {
            SourceState::Live
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

fn unreadable(path: &Path, err: &dyn std::fmt::Display) -> FrameError {
    FrameError::Unreadable {
        path: path.display().to_string(),
        reason: err.to_string(),
    }
}

/// Every frame of one picture file: one for a still, all of them for an
/// animated GIF.
pub fn read_frames(path: &Path) -> Result<Vec<Frame>, FrameError> {
    use image::AnimationDecoder;
    let bytes = std::fs::read(path).map_err(|err| unreadable(path, &err))?;
    let format = image::guess_format(&bytes).map_err(|err| unreadable(path, &err))?;
    if format == image::ImageFormat::Gif {
        let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&bytes))
            .map_err(|err| unreadable(path, &err))?;
        let mut frames = Vec::new();
        for frame in decoder.into_frames() {
            let frame = frame.map_err(|err| unreadable(path, &err))?;
            let image = image::DynamicImage::ImageRgba8(frame.into_buffer());
            frames.push(Frame::from_image(&image)?);
        }
        return Ok(frames);
    }
    let image = image::load_from_memory_with_format(&bytes, format)
        .map_err(|err| unreadable(path, &err))?;
    Ok(vec![Frame::from_image(&image)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_refuse_sizes_that_do_not_match_their_bytes() {
        assert!(Frame::new(2, 2, vec![0; 4]).is_ok());
        assert_eq!(
            Frame::new(2, 2, vec![0; 3]),
            Err(FrameError::BadSize {
                width: 2,
                height: 2
            })
        );
        assert!(Frame::new(0, 5, vec![]).is_err());
        assert!(
            Frame::new(5000, 5000, vec![]).is_err(),
            "over the pixel cap"
        );
        assert!(Frame::from_rgb(1, 1, &[1, 2]).is_err());
        assert!(Frame::from_yuyv(2, 1, &[1, 2, 3]).is_err());
    }

    #[test]
    fn colour_formats_become_the_expected_luma() {
        let white_red = Frame::from_rgb(2, 1, &[255, 255, 255, 255, 0, 0]).expect("rgb");
        assert_eq!(white_red.luma(), &[255, 76]);
        let yuyv = Frame::from_yuyv(2, 1, &[10, 128, 200, 128]).expect("yuyv");
        assert_eq!(yuyv.luma(), &[10, 200]);
    }

    #[test]
    fn placing_a_frame_on_a_canvas_keeps_its_pixels_and_cuts_the_overflow() {
        let small = Frame::new(2, 2, vec![1, 2, 3, 4]).expect("frame");
        let big = small.placed_on(4, 3, 1, 1, 9);
        assert_eq!(big.luma(), &[9, 9, 9, 9, 9, 1, 2, 9, 9, 3, 4, 9]);
        let cut = small.placed_on(2, 2, 1, 1, 0);
        assert_eq!(cut.luma(), &[0, 0, 0, 1]);
    }

    #[test]
    fn a_folder_plays_its_pictures_in_name_order_and_a_gif_its_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, shade) in [("b.png", 200u8), ("a.png", 100)] {
            image::GrayImage::from_pixel(3, 2, image::Luma([shade]))
                .save(dir.path().join(name))
                .expect("png");
        }
        std::fs::write(dir.path().join("notes.txt"), "not a picture").expect("txt");
        let mut source = ImageSource::open(dir.path(), Playback::Once).expect("folder");
        assert_eq!(source.len(), 2);
        let wait = Duration::from_millis(1);
        assert_eq!(source.next_frame(wait).expect("a").luma()[0], 100);
        assert_eq!(source.next_frame(wait).expect("b").luma()[0], 200);
        assert_eq!(source.state(), SourceState::Ended);
        assert_eq!(source.next_frame(wait), Err(FrameError::Ended));

        let gif_path = dir.path().join("anim.gif");
        {
            let file = std::fs::File::create(&gif_path).expect("gif");
            let mut encoder = image::codecs::gif::GifEncoder::new(file);
            for shade in [0u8, 128, 255] {
                let rgba =
                    image::RgbaImage::from_pixel(4, 4, image::Rgba([shade, shade, shade, 255]));
                encoder
                    .encode_frame(image::Frame::new(rgba))
                    .expect("frame");
            }
        }
        let mut gif = ImageSource::open(&gif_path, Playback::Loop).expect("gif");
        let shades: Vec<u8> = (0..4)
            .map(|_| gif.next_frame(wait).expect("frame").luma()[0])
            .collect();
        assert_eq!(shades, [0, 128, 255, 0], "loops back to the first frame");
    }

    #[test]
    fn unreadable_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("broken.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not the rest of a png").expect("write");
        let err = ImageSource::open(&bad, Playback::Once).expect_err("broken png");
        assert!(
            matches!(&err, FrameError::Unreadable { path, .. } if path.ends_with("broken.png")),
            "{err}"
        );
        let missing = ImageSource::open(&dir.path().join("missing.png"), Playback::Once);
        assert!(matches!(missing, Err(FrameError::Unreadable { .. })));
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            ImageSource::open(empty.path(), Playback::Once),
            Err(FrameError::Unreadable { reason, .. }) if reason.contains("no pictures")
        ));
    }
}
