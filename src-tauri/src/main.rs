//! `aisle-associate`: the associate tablet (see the library's docs).
fn main() -> std::process::ExitCode {
    match aisle_associate::run() {
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
