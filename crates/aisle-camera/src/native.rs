//! The real camera, through nokhwa 0.10.
//!
//! Opening is three steps, two of them pure and tested here: the devices
//! the system lists are matched against the [`DeviceChoice`]
//! ([`candidates`]); each candidate is opened in its first decodable mode,
//! the mode closest to the wanted size and rate is chosen from the ones it
//! offers ([`choose_mode`]) and set; the stream is started. Buffers are
//! turned into grayscale [`Frame`]s here ([`to_frame`]): MJPEG through the
//! `image` crate's pure-Rust JPEG decoder (so nokhwa's mozjpeg, a C build,
//! is left out), the raw formats by taking their luma.
//!
//! nokhwa offers no read timeout: a camera that hangs without an error
//! blocks its stream's read. An unplugged camera is an error (Video4Linux
//! answers `ENODEV`), which the capture thread turns into a reconnection.

use aisle_core::identify::frame::Frame;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use crate::capture::{Driver, OpenError, Stream, StreamError};
use crate::{CameraConfig, DeviceChoice, DeviceInfo};

/// The formats [`to_frame`] reads, in order of preference when two modes
/// are otherwise equal: raw luma first (no decoding), then MJPEG.
const DECODABLE: [FrameFormat; 6] = [
    FrameFormat::GRAY,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::MJPEG,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
];

/// The cameras the system lists, in index order.
pub(crate) fn list_devices() -> Result<Vec<DeviceInfo>, String> {
    let infos = nokhwa::query(ApiBackend::Auto).map_err(|err| err.to_string())?;
    let mut devices: Vec<DeviceInfo> = infos
        .iter()
        .enumerate()
        .map(|(position, info)| DeviceInfo {
            index: info
                .index()
                .as_index()
                .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX)),
            name: info.human_name(),
            description: info.description().to_owned(),
        })
        .collect();
    devices.sort_by_key(|device| device.index);
    Ok(devices)
}

fn listed(devices: &[DeviceInfo]) -> String {
    devices
        .iter()
        .map(|device| format!("{} \"{}\"", device.index, device.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The devices to try, in order, for a choice; or why there is none.
pub(crate) fn candidates(
    devices: &[DeviceInfo],
    choice: &DeviceChoice,
) -> Result<Vec<DeviceInfo>, OpenError> {
    if devices.is_empty() {
        return Err(OpenError::NotFound(
            "the system lists no video capture device".into(),
        ));
    }
    let chosen: Vec<DeviceInfo> = match choice {
        DeviceChoice::First => devices.to_vec(),
        DeviceChoice::Index(index) => devices
            .iter()
            .filter(|device| device.index == *index)
            .cloned()
            .collect(),
        DeviceChoice::Name(part) => {
            let part = part.to_lowercase();
            devices
                .iter()
                .filter(|device| device.name.to_lowercase().contains(&part))
                .cloned()
                .collect()
        }
    };
    if chosen.is_empty() {
        let what = match choice {
            DeviceChoice::Index(index) => format!("no device with index {index}"),
            other => format!("no {other}"),
        };
        return Err(OpenError::NotFound(format!(
            "{what}; the system lists {}",
            listed(devices)
        )));
    }
    Ok(chosen)
}

/// A capture mode: size, rate and pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub format: FrameFormat,
}

impl From<CameraFormat> for Mode {
    fn from(format: CameraFormat) -> Self {
        Self {
            width: format.width(),
            height: format.height(),
            fps: format.frame_rate(),
            format: format.format(),
        }
    }
}

impl From<Mode> for CameraFormat {
    fn from(mode: Mode) -> Self {
        CameraFormat::new(
            Resolution::new(mode.width, mode.height),
            mode.format,
            mode.fps,
        )
    }
}

/// The offered mode closest to the wanted one: nearest size (by the sum of
/// the differences in width and height), then nearest rate (the faster of
/// two equally near), then the cheaper format to read. Formats [`to_frame`]
/// cannot read are never chosen.
pub(crate) fn choose_mode(offered: &[Mode], width: u32, height: u32, fps: u32) -> Option<Mode> {
    offered
        .iter()
        .filter_map(|mode| {
            let rank = DECODABLE.iter().position(|f| *f == mode.format)?;
            let size = mode.width.abs_diff(width) + mode.height.abs_diff(height);
            Some((
                (size, mode.fps.abs_diff(fps), u32::MAX - mode.fps, rank),
                *mode,
            ))
        })
        .min_by_key(|(key, _)| *key)
        .map(|(_, mode)| mode)
}

/// A camera buffer as a grayscale frame.
pub(crate) fn to_frame(
    format: FrameFormat,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<Frame, String> {
    let pixels = width as usize * height as usize;
    // Drivers may hand out a buffer longer than the picture (padding at the
    // end); a shorter one is a broken frame.
    let prefix = |len: usize| {
        bytes.get(..len).ok_or_else(|| {
            format!(
                "{format} {width}x{height} needs {len} bytes, got {}",
                bytes.len()
            )
        })
    };
    let frame = match format {
        FrameFormat::MJPEG => {
            let image = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
                .map_err(|err| format!("MJPEG: {err}"))?;
            Frame::from_image(&image)
        }
        FrameFormat::YUYV => Frame::from_yuyv(width, height, prefix(pixels * 2)?),
        FrameFormat::GRAY | FrameFormat::NV12 => {
            Frame::new(width, height, prefix(pixels)?.to_vec())
        }
        FrameFormat::RAWRGB => Frame::from_rgb(width, height, prefix(pixels * 3)?),
        FrameFormat::RAWBGR => {
            let rgb: Vec<u8> = prefix(pixels * 3)?
                .chunks_exact(3)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect();
            Frame::from_rgb(width, height, &rgb)
        }
    };
    frame.map_err(|err| err.to_string())
}

/// Cameras through nokhwa's native backend for the platform.
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeDriver;

impl Driver for NativeDriver {
    fn open(&mut self, config: &CameraConfig) -> Result<Box<dyn Stream>, OpenError> {
        let devices = list_devices()
            .map_err(|err| OpenError::NotFound(format!("cameras cannot be listed: {err}")))?;
        let mut failures = Vec::new();
        for device in candidates(&devices, &config.device)? {
            match open_device(&device, config) {
                Ok(stream) => return Ok(Box::new(stream)),
                Err(reason) => {
                    failures.push(format!("{} \"{}\": {reason}", device.index, device.name));
                }
            }
        }
        Err(OpenError::Unavailable(format!(
            "no device would open: {}",
            failures.join("; ")
        )))
    }
}

fn open_device(device: &DeviceInfo, config: &CameraConfig) -> Result<NativeStream, String> {
    let requested = RequestedFormat::with_formats(RequestedFormatType::None, &DECODABLE);
    let mut camera = nokhwa::Camera::new(CameraIndex::Index(device.index), requested)
        .map_err(|err| err.to_string())?;
    let offered: Vec<Mode> = camera
        .compatible_camera_formats()
        .map(|formats| formats.into_iter().map(Mode::from).collect())
        .unwrap_or_default();
    if let Some(mode) = choose_mode(&offered, config.width, config.height, config.fps)
        && mode != Mode::from(camera.camera_format())
        && let Err(err) = camera.set_camera_requset(RequestedFormat::with_formats(
            RequestedFormatType::Exact(mode.into()),
            &[mode.format],
        ))
    {
        tracing::warn!(camera = %device.name, ?mode, %err, "keeping the camera's first mode");
    }
    camera.open_stream().map_err(|err| err.to_string())?;
    let mode = Mode::from(camera.camera_format());
    tracing::debug!(camera = %device.name, ?mode, "stream open");
    Ok(NativeStream {
        camera,
        name: format!("{} ({})", device.name, device.index),
    })
}

struct NativeStream {
    camera: nokhwa::Camera,
    name: String,
}

impl Stream for NativeStream {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn frame(&mut self) -> Result<Frame, StreamError> {
        let buffer = self
            .camera
            .frame()
            .map_err(|err| StreamError::Gone(err.to_string()))?;
        let resolution = buffer.resolution();
        to_frame(
            buffer.source_frame_format(),
            resolution.width(),
            resolution.height(),
            buffer.buffer(),
        )
        .map_err(StreamError::BadFrame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(index: u32, name: &str) -> DeviceInfo {
        DeviceInfo {
            index,
            name: name.into(),
            description: String::new(),
        }
    }

    fn check_candidates(choice: &DeviceChoice, expect: Result<&[u32], &str>) {
        let devices = [
            device(0, "Integrated Camera"),
            device(1, "Integrated Camera"),
            device(2, "HD Pro Webcam C920"),
        ];
        let got = candidates(&devices, choice)
            .map(|found| found.iter().map(|d| d.index).collect::<Vec<_>>());
        match expect {
            Ok(indexes) => assert_eq!(got, Ok(indexes.to_vec()), "{choice:?}"),
            Err(text) => {
                let err = got.expect_err("no candidate").to_string();
                assert!(err.contains(text), "{choice:?}: {err}");
            }
        }
    }

    #[test]
    fn device_choices_pick_their_candidates_in_order() {
        check_candidates(&DeviceChoice::First, Ok(&[0, 1, 2]));
        check_candidates(&DeviceChoice::Index(2), Ok(&[2]));
        check_candidates(&DeviceChoice::Name("c920".into()), Ok(&[2]));
        check_candidates(&DeviceChoice::Name("integrated".into()), Ok(&[0, 1]));
        check_candidates(
            &DeviceChoice::Index(5),
            Err("no device with index 5; the system lists 0 \"Integrated Camera\", 1"),
        );
        check_candidates(
            &DeviceChoice::Name("Logitech Brio".into()),
            Err("no camera named like \"Logitech Brio\"; the system lists"),
        );
        assert_eq!(
            candidates(&[], &DeviceChoice::First),
            Err(OpenError::NotFound(
                "the system lists no video capture device".into()
            ))
        );
    }

    fn mode(width: u32, height: u32, fps: u32, format: FrameFormat) -> Mode {
        Mode {
            width,
            height,
            fps,
            format,
        }
    }

    #[test]
    fn the_mode_closest_to_the_wanted_one_is_chosen() {
        use FrameFormat::{MJPEG, NV12, RAWRGB, YUYV};
        let check = |offered: &[Mode], expect: Option<Mode>| {
            assert_eq!(choose_mode(offered, 1280, 720, 30), expect, "{offered:?}");
        };
        // A typical UVC webcam: YUYV is slow at 720p, MJPEG is not.
        let webcam = [
            mode(640, 480, 30, YUYV),
            mode(1280, 720, 10, YUYV),
            mode(640, 480, 30, MJPEG),
            mode(1280, 720, 30, MJPEG),
            mode(1920, 1080, 30, MJPEG),
        ];
        check(&webcam, Some(mode(1280, 720, 30, MJPEG)));
        // Same size and rate: the format read without decoding wins.
        check(
            &[mode(1280, 720, 30, MJPEG), mode(1280, 720, 30, YUYV)],
            Some(mode(1280, 720, 30, YUYV)),
        );
        // No 720p: the nearest size, then the nearest rate.
        check(
            &[
                mode(640, 480, 30, MJPEG),
                mode(1024, 768, 15, MJPEG),
                mode(1024, 768, 25, MJPEG),
                mode(1920, 1080, 30, MJPEG),
            ],
            Some(mode(1024, 768, 25, MJPEG)),
        );
        // Equally near rates: the faster.
        check(
            &[mode(1280, 720, 25, NV12), mode(1280, 720, 35, NV12)],
            Some(mode(1280, 720, 35, NV12)),
        );
        check(
            &[mode(320, 240, 30, RAWRGB)],
            Some(mode(320, 240, 30, RAWRGB)),
        );
        check(&[], None);
    }

    #[test]
    fn every_decodable_format_becomes_its_luma() {
        let (w, h) = (2, 2);
        let gray = to_frame(FrameFormat::GRAY, w, h, &[1, 2, 3, 4, 99]).expect("gray");
        assert_eq!(
            gray.luma(),
            &[1, 2, 3, 4],
            "padding after the picture is cut"
        );
        let nv12 = to_frame(FrameFormat::NV12, w, h, &[5, 6, 7, 8, 128, 128]).expect("nv12");
        assert_eq!(nv12.luma(), &[5, 6, 7, 8]);
        let yuyv = to_frame(FrameFormat::YUYV, w, h, &[9, 0, 10, 0, 11, 0, 12, 0]).expect("yuyv");
        assert_eq!(yuyv.luma(), &[9, 10, 11, 12]);
        let red_green = [255, 0, 0, 0, 255, 0, 255, 0, 0, 0, 255, 0];
        let rgb = to_frame(FrameFormat::RAWRGB, w, h, &red_green).expect("rgb");
        assert_eq!(rgb.luma(), &[76, 150, 76, 150]);
        let bgr = to_frame(FrameFormat::RAWBGR, w, h, &red_green).expect("bgr");
        assert_eq!(bgr.luma(), &[29, 150, 29, 150], "blue, not red, in BGR");

        let short = to_frame(FrameFormat::YUYV, w, h, &[1, 2, 3]).expect_err("short");
        assert!(short.contains("needs 8 bytes, got 3"), "{short}");
    }

    #[test]
    fn mjpeg_frames_are_decoded_and_broken_ones_refused() {
        let picture =
            image::GrayImage::from_fn(16, 8, |x, _| image::Luma([if x < 8 { 0 } else { 255 }]));
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageLuma8(picture)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .expect("encode");
        // MJPEG frames carry their own size; the stream's may be stale.
        let frame = to_frame(FrameFormat::MJPEG, 640, 480, &jpeg).expect("mjpeg");
        assert_eq!((frame.width(), frame.height()), (16, 8));
        assert!(
            frame.luma()[1] < 30 && frame.luma()[14] > 225,
            "{:?}",
            frame.luma()
        );

        let cut = to_frame(FrameFormat::MJPEG, 16, 8, &jpeg[..jpeg.len() / 3]);
        assert!(cut.is_err_and(|err| err.starts_with("MJPEG")));
    }
}
