//! The Aisle associate tablet: Tauri 2 over `aisle-core`. No logic lives
//! here beyond translation: each command reads its arguments, calls the
//! core on a blocking thread (SQLite never runs on the UI's thread), and
//! maps the answer to a DTO (`dto`), or the failure to an `ApiError`
//! (`{ code, message }`) the front end shows.
//!
//! - [`dto`]: what crosses IPC, with TypeScript types generated from it
//!   (`ui/associate/src/bindings.ts`, checked by a test).
//! - [`commands`]: the `#[tauri::command]`s, thin and async.
//! - [`state`]: the replica the tablet works on and the store it serves.
//! - [`webview`]: how the webview draws (compositing only with a GPU).

pub mod commands;
pub mod dto;
pub mod state;
pub mod webview;

pub use state::AppState;

/// The app's commands and state on a builder: the real runtime in `run`,
/// the mock runtime in tests.
pub fn builder<R: tauri::Runtime>(
    builder: tauri::Builder<R>,
    state: AppState,
) -> tauri::Builder<R> {
    builder
        .manage(std::sync::Arc::new(state))
        .invoke_handler(tauri::generate_handler![
            commands::sign_in,
            commands::sign_out,
            commands::whoami,
            commands::keep_alive,
            commands::search_members,
            commands::scan_card,
            commands::cancel_scan,
            commands::client_360,
            commands::edit_client,
            commands::client_offers,
            commands::issue_coupon,
            commands::product_card,
            commands::store_view,
            commands::unlock_staff,
            commands::sync_status,
        ])
}

/// Opens the replica named by `AISLE_DB` (or the default) and runs the app.
pub fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let state = AppState::from_env()?;
    webview::drawn(
        builder(tauri::Builder::default(), state),
        webview::choose()?,
    )
    .run(tauri::generate_context!())
    .map_err(|e| anyhow::anyhow!("the associate app stopped: {e}"))
}
