//! Tauri's build step, with the app's commands declared: each gets an
//! `allow-*` permission, and a window may call only the commands its
//! capability file (`capabilities/`) lists.

/// Every `#[tauri::command]` registered in `lib.rs`.
const COMMANDS: &[&str] = &[
    "sign_in",
    "sign_out",
    "whoami",
    "keep_alive",
    "search_members",
    "scan_card",
    "cancel_scan",
    "client_360",
    "edit_client",
    "client_offers",
    "issue_coupon",
    "product_card",
    "store_view",
    "unlock_staff",
    "sync_status",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build step");
}
