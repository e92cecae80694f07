//! `aisle-associate`: the associate tablet (see the library's docs).
fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        // The benchmarks' baseline for a process start (no window).
        #[allow(clippy::print_stdout)]
        {
            println!("aisle-associate {}", env!("CARGO_PKG_VERSION"));
        }
        return std::process::ExitCode::SUCCESS;
    }
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
