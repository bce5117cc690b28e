//! `warden-drill`: the scale-out drill (two replicas of every service, one of each stopped
//! under load). See docs/deployment.md and `warden-drill --help`.
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    warden_bench::drill::run_cli(warden_bench::drill::DrillCli::parse())
}
