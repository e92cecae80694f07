//! The memory benchmark's floor (`cargo xtask bench tablet`): a Tauri window
//! on WebKitGTK showing a blank page, drawn as the app draws (no compositing
//! without a GPU); no commands, no replica.

fn main() -> anyhow::Result<()> {
    let composite = aisle_associate::webview::choose()?;
    aisle_associate::webview::drawn(tauri::Builder::default(), composite)
        .run(tauri::generate_context!("examples/blank/tauri.conf.json"))?;
    Ok(())
}
