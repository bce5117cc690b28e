//! `warden`: one binary for every service. See `warden --help`.
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = warden::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warden: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(warden::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming the problem, never a panic trace.
            eprintln!("warden: {e:#}");
            ExitCode::FAILURE
        }
    }
}
