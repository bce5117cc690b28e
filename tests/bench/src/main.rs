//! `warden-bench`: see BENCHMARKS.md and `warden-bench --help`.
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    warden_bench::cli::run_cli(warden_bench::cli::Cli::parse())
}
