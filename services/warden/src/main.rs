//! `warden`: one binary for every service. See `warden --help`.
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    malloc_tunables::apply();
    let cli = warden::cli::Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match worker_threads() {
        Ok(Some(n)) => {
            builder.worker_threads(n);
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("warden: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match builder.enable_all().build() {
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

/// `WARDEN_WORKER_THREADS`: how many threads run requests. Unset or `0`: one per CPU the
/// process may use, a container's CPU limit included (what tokio picks by itself). It is read
/// here, not with the rest of the configuration, because the runtime that loads the
/// configuration is built from it. A process sharing its cores with busy neighbours (a split
/// fleet on one small host) spends less CPU a request with fewer threads: fewer wake-ups
/// and less work stealing between threads (BENCHMARKS.md, session 9).
fn worker_threads() -> Result<Option<usize>, String> {
    const NAME: &str = "WARDEN_WORKER_THREADS";
    let Some(value) = std::env::var_os(NAME) else { return Ok(None) };
    let value = value.to_str().ok_or_else(|| format!("{NAME} must be a whole number"))?;
    match value.trim().parse::<usize>() {
        Ok(0) => Ok(None),
        Ok(n) if n <= 1024 => Ok(Some(n)),
        _ => Err(format!("{NAME} must be a whole number from 0 (one per CPU) to 1024, not {value:?}")),
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
