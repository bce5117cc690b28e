//! `warden`: one binary for every service. See `warden --help`.
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    malloc_tunables::apply();
    let cli = warden::cli::Cli::parse();
    let config = match warden_common::Config::load() {
        Ok(config) => config,
        Err(e) => {
            // One line naming the setting, never a panic trace.
            eprintln!("warden: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `WARDEN_WORKER_THREADS`: 0 leaves tokio's own choice, one thread per CPU the process may
    // use (a container's CPU limit included). A process sharing its cores with busy
    // neighbours (a split fleet on one small host) spends less CPU a request with fewer
    // threads: fewer wake-ups and less work stealing (BENCHMARKS.md, session 9).
    if let Some(n) = usize::try_from(config.worker_threads).ok().filter(|n| *n > 0) {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warden: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(warden::cli::run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming the problem, never a panic trace.
            eprintln!("warden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc's malloc adapts its mmap threshold: once a freed 19 MiB argon2 block has been
/// `munmap`ed, the threshold rises to that size, later blocks come from the heap, and freed
/// heap memory (per-thread arenas included) stays resident: 20 MiB more at idle and RSS that
/// grows with request count (BENCHMARKS.md, "Memory"). A fixed threshold keeps large blocks in
/// `mmap` and arenas trimming, and it can only be set before malloc starts: through
/// `GLIBC_TUNABLES`, so the process re-executes itself once with it. An operator's own
/// `GLIBC_TUNABLES` is left alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod malloc_tunables {
    use std::os::unix::process::CommandExt;

    const TUNABLES: &str = "glibc.malloc.mmap_threshold=131072";

    pub(crate) fn apply() {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        // `exec` returns only if it failed; then run as we are.
        let error = command.args(args).env("GLIBC_TUNABLES", TUNABLES).exec();
        eprintln!("warden: running with default malloc settings (re-exec failed: {error})");
    }
}
