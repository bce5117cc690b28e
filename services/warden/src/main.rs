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
    let runtime = match runtime_builder(config.worker_threads).enable_all().build() {
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

/// The async runtime for `WARDEN_WORKER_THREADS`. 0 means one thread per CPU the process may
/// use (a container's CPU limit included). A process sharing its cores with busy neighbours
/// (a split fleet on one small host) spends less CPU a request with fewer threads: fewer
/// wake-ups and less work stealing (BENCHMARKS.md, session 9).
///
/// One thread gets tokio's single-threaded scheduler rather than a pool of one. The pool runs
/// a task woken by the running task right after it (its "LIFO slot"); for an HTTP/2
/// connection that is the writer, which then sends each finished call's answer in a system
/// call of its own, even when several calls finished together. The single-threaded scheduler
/// runs woken tasks in turn: the finished calls queue their answers first and the writer
/// sends them in one write. A split fleet's one-thread processes spent 2-33 % less CPU a
/// request in paired runs (BENCHMARKS.md, session 11).
fn runtime_builder(worker_threads: i64) -> tokio::runtime::Builder {
    let threads = usize::try_from(worker_threads)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 1 {
        return tokio::runtime::Builder::new_current_thread();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(threads);
    builder
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

#[cfg(test)]
mod tests {
    use super::runtime_builder;
    use tokio::runtime::{Handle, RuntimeFlavor};

    fn flavor(worker_threads: i64) -> RuntimeFlavor {
        let runtime = runtime_builder(worker_threads).enable_all().build().unwrap();
        runtime.block_on(async { Handle::current().runtime_flavor() })
    }

    #[test]
    fn one_thread_runs_the_single_threaded_scheduler_more_run_a_pool() {
        assert_eq!(flavor(1), RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(2), RuntimeFlavor::MultiThread);
        // 0 counts the CPUs this process may use.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let expected = if cpus == 1 { RuntimeFlavor::CurrentThread } else { RuntimeFlavor::MultiThread };
        assert_eq!(flavor(0), expected);
    }
}
