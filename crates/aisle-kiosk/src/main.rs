//! `aisle-kiosk`: the store kiosk on a replica (see the crate docs).
fn main() -> std::process::ExitCode {
    match aisle_kiosk::app::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            #[allow(clippy::print_stderr)] // the binary reports its own failure
            {
                eprintln!("error: {error:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
