//! How the webview draws. WebKitGTK composites pages with OpenGL; on a
//! tablet without a GPU driver (no DRM render node) that OpenGL is Mesa's
//! software rasteriser, which loads LLVM and keeps its buffers in the web
//! process: about 75 MB and CPU time for flat pages that gain nothing from
//! it (docs/BENCHMARKS.md). There the app draws without compositing.
//! `AISLE_WEBVIEW_COMPOSITING` (`on`, `off`, `auto`: the default) overrides.

use std::path::Path;

/// The setting's name.
pub const SETTING: &str = "AISLE_WEBVIEW_COMPOSITING";

/// Whether to composite: the setting's word, else whether the machine has a
/// GPU to composite with.
pub fn composite(setting: Option<&str>, has_gpu: bool) -> anyhow::Result<bool> {
    match setting.map(str::trim) {
        None | Some("" | "auto") => Ok(has_gpu),
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => anyhow::bail!("{SETTING} is on, off or auto, not {other:?}"),
    }
}

/// Whether `dri` (`/dev/dri` on Linux) holds a render node (`renderD128`
/// and on): a GPU driver that OpenGL can use without a display server's help.
pub fn has_render_node(dri: &Path) -> bool {
    std::fs::read_dir(dri).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|entry| entry.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// The choice for this machine: the setting, else whether it has a GPU.
pub fn choose() -> anyhow::Result<bool> {
    composite(
        std::env::var(SETTING).ok().as_deref(),
        has_render_node(Path::new("/dev/dri")),
    )
}

/// `builder` with its main window drawn as chosen (compositing is
/// WebKitGTK's default; off, it is turned off in the setup hook, as the
/// window is created).
pub fn drawn<R: tauri::Runtime>(builder: tauri::Builder<R>, composite: bool) -> tauri::Builder<R> {
    builder.setup(move |app| {
        if !composite && let Some(window) = tauri::Manager::get_webview_window(app, "main") {
            without_compositing(&window)?;
        }
        Ok(())
    })
}

/// Turns compositing off in `window`'s webview (WebKitGTK's hardware
/// acceleration policy `never`); elsewhere the platform decides.
pub fn without_compositing<R: tauri::Runtime>(
    window: &tauri::WebviewWindow<R>,
) -> tauri::Result<()> {
    window.with_webview(|webview| {
        #[cfg(target_os = "linux")]
        {
            use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt, WebViewExt};
            if let Some(settings) = WebViewExt::settings(&webview.inner()) {
                settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = webview;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composites_only_with_a_gpu_unless_told() {
        assert!(composite(None, true).expect("auto"));
        assert!(!composite(None, false).expect("auto"));
        assert!(!composite(Some("auto"), false).expect("auto"));
        assert!(composite(Some("on"), false).expect("on"));
        assert!(!composite(Some(" off "), true).expect("off"));
        let refused = composite(Some("yes"), true).expect_err("not a setting");
        assert!(refused.to_string().contains("on, off or auto"), "{refused}");
    }

    #[test]
    fn a_render_node_is_a_gpu() {
        let dri = tempfile::tempdir().expect("dir");
        assert!(!has_render_node(dri.path()));
        assert!(!has_render_node(&dri.path().join("missing")));
        std::fs::write(dri.path().join("card0"), b"").expect("card");
        assert!(
            !has_render_node(dri.path()),
            "a display card alone is not a render node"
        );
        std::fs::write(dri.path().join("renderD128"), b"").expect("node");
        assert!(has_render_node(dri.path()));
    }
}
