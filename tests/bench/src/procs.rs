//! Child processes and what `/proc` says about them: CPU time (utime + stime), resident
//! memory now (VmRSS) and at its peak (VmHWM, reset per scenario through `clear_refs`).
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A started process whose output goes to a log file.
pub struct Proc {
    pub name: String,
    pub pid: u32,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &BTreeMap<String, String>,
        dir: &Path,
    ) -> anyhow::Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        // Appended to: a replica started again keeps its earlier life's log.
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(dir).stdin(Stdio::null()).stdout(out).stderr(err).kill_on_drop(true);
        // Only what we set: a WARDEN_* from the caller's shell must not change the setup.
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WARDEN_")) {
            cmd.env_remove(k);
        }
        cmd.envs(env);
        let child = cmd.spawn().with_context(|| format!("starting {}", program.display()))?;
        let pid = child.id().context("child has no pid")?;
        Ok(Proc { name: name.to_owned(), pid, child, log })
    }

    /// Fails with the log's tail if the process already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited with {status}:\n{}", self.name, self.tail());
        }
        Ok(())
    }

    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The log's warnings and errors (the lines that name a level of WARN or ERROR), last `n`.
    pub fn warnings(&self, n: usize) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
        lines[lines.len().saturating_sub(n)..].iter().map(|l| (*l).to_owned()).collect()
    }

    /// SIGKILL, without waiting.
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    /// SIGTERM, without waiting.
    pub fn terminate(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
    }

    pub async fn stop(mut self) {
        // SIGKILL: nothing the bench needs survives the process, and it is immediate.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .with_context(|| format!("{} did not exit within {within:?}", self.name))?
            .map_err(Into::into)
    }
}

/// Where [`free_port`] looks: below Linux's ephemeral range (32768–60999 by default), so no
/// outgoing connection takes the port between the check and the child's bind.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free loopback port for a child to listen on, never the same one twice in this process.
/// (With port 0, a drill once answered every call `unimplemented` at start-up, most likely
/// because two processes were handed the same port: the second could not bind and exited,
/// and the first answered in its place.)
pub fn free_port() -> anyhow::Result<u16> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);
    use std::sync::atomic::Ordering;
    let span = u32::from(PORTS.end - PORTS.start);
    // Each run starts somewhere else, so runs one after another do not meet in TIME_WAIT.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        uuid::Uuid::new_v4().as_u128() as u32 % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let port = PORTS.start + (NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free loopback port in {PORTS:?}")
}

/// A free loopback address (see [`free_port`]).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(([127, 0, 0, 1], free_port()?).into())
}

/// Waits until `addr` accepts TCP connections.
pub async fn wait_listening(proc: &mut Proc, addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        proc.check_alive()?;
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} is not listening on {addr} after {within:?}:\n{}", proc.name, proc.tail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks_per_second())
}

/// Minor page faults of a process so far.
pub fn minor_faults(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split_whitespace().nth(7)?.parse().ok()
}

/// A `/proc/<pid>/status` memory line in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    status_kib_file(&format!("/proc/{pid}/status"), field)
}

/// A `Name:   123 kB` line of a `/proc` file, in KiB.
pub fn status_kib_file(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Resets the peak-RSS counter (Linux `clear_refs` value 5); false when not permitted.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU seconds of every process on the machine whose name is one of `names` (PostgreSQL
/// backends, redis-server): the stores' share of split mode's cost.
pub fn cpu_seconds_named(names: &[&str]) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| names.contains(&c.trim())))
        .filter_map(cpu_seconds)
        .sum()
}

/// Busy and total jiffies of all CPUs (`/proc/stat`), for the machine's utilisation.
pub fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else { return (0, 0) };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU counters at one instant, for a window's deltas.
#[derive(Clone, Debug)]
pub struct CpuSnapshot {
    /// Per Warden process (same order as the fleet), CPU seconds.
    pub procs: Vec<f64>,
    /// PostgreSQL and Redis processes together.
    pub stores: f64,
    /// This bench process (load generator).
    pub bench: f64,
    pub machine: (u64, u64),
}

pub fn snapshot(pids: &[u32]) -> CpuSnapshot {
    CpuSnapshot {
        procs: pids.iter().map(|p| cpu_seconds(*p).unwrap_or(0.0)).collect(),
        stores: cpu_seconds_named(&["postgres", "redis-server"]),
        bench: cpu_seconds(std::process::id()).unwrap_or(0.0),
        machine: machine_jiffies(),
    }
}

/// CPU used between two snapshots.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CpuDelta {
    pub procs: Vec<f64>,
    pub stores: f64,
    pub bench: f64,
    /// Cores busy on the whole machine (anything running), averaged over the window.
    pub machine_cores: f64,
    /// Cores used by processes other than the measured ones, the stores and the bench:
    /// noise from whatever else runs on the machine.
    pub other_cores: f64,
}

pub fn delta(a: &CpuSnapshot, b: &CpuSnapshot, seconds: f64) -> CpuDelta {
    let busy = b.machine.0.saturating_sub(a.machine.0) as f64;
    let total = b.machine.1.saturating_sub(a.machine.1) as f64;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let machine_cores = if total > 0.0 { cores * busy / total } else { 0.0 };
    let procs: Vec<f64> = a.procs.iter().zip(&b.procs).map(|(x, y)| (y - x).max(0.0)).collect();
    let stores = (b.stores - a.stores).max(0.0);
    let bench = (b.bench - a.bench).max(0.0);
    let ours = (procs.iter().sum::<f64>() + stores + bench) / seconds.max(1e-9);
    CpuDelta { procs, stores, bench, machine_cores, other_cores: (machine_cores - ours).max(0.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let burn: u64 = (0..2_000_000u64).map(|x| x ^ (x >> 3)).sum();
        assert!(burn > 0);
        assert!(cpu_seconds(me).is_some());
        assert!(status_kib(me, "VmRSS").is_some_and(|k| k > 0));
        assert!(status_kib(me, "VmHWM").is_some_and(|k| k > 0));
        assert!(minor_faults(me).is_some_and(|f| f > 0));
        assert!(status_kib(me, "NoSuchField").is_none());
        let (busy, total) = machine_jiffies();
        assert!(total > 0 && busy <= total);
    }
}
