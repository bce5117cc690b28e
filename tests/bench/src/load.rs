//! The load engine. Each worker owns one connection (HTTP/1.1) or one slot on a shared HTTP/2
//! channel (gRPC) and sends one request at a time. Two pacings:
//!
//! - closed loop (saturation): send the next request as soon as the last answer arrived;
//! - open loop at a fixed offered rate: every worker has a schedule of intended send times. A
//!   request due while its connection still waits for an earlier answer is measured from the
//!   *intended* time, not the actual one (wrk2's correction for coordinated omission), so a
//!   stall counts against every request that should have been sent during it. A request due
//!   on an idle connection is measured from its actual send: the worker waits for the pacer
//!   (`pacer.rs`), which wakes it at most a step of 100 us after the due time, and that
//!   lateness is the load generator's, not the server's. Not tokio's timer: it fires on a 1 ms
//!   tick, so every request due within a millisecond left in one burst.
//!
//! A run has a warm-up and a measured window; only requests inside the window count.
use crate::pacer::{Bell, Pacer, Schedule};
use hdrhistogram::Histogram;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an open-loop worker that fell behind may keep draining its backlog after the window.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// One request of a scenario. `Err` carries a short reason for the error summary.
pub trait Worker: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<(), String>> + Send;

    /// A phase starts on this worker (see [`run`]). A worker that walks a mix of requests
    /// starts the walk afresh here.
    fn start_phase(&mut self) {}
}

#[derive(Clone, Copy, Debug)]
pub enum Pace {
    Closed,
    /// Requests per second, offered in total across workers.
    Rate(f64),
}

/// When a run starts measuring and when it stops.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: Instant,
    pub measure: Instant,
    pub end: Instant,
}

impl Window {
    pub fn after(warmup: Duration, duration: Duration) -> Window {
        let start = Instant::now();
        Window { start, measure: start + warmup, end: start + warmup + duration }
    }

    pub fn measured(&self) -> Duration {
        self.end - self.measure
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    /// Latency in microseconds of successful and failed requests alike.
    pub hist: Histogram<u64>,
    pub first_error: Option<String>,
    pub seconds: f64,
}

impl Stats {
    fn empty(seconds: f64) -> Stats {
        Stats { ok: 0, errors: 0, hist: new_histogram(), first_error: None, seconds }
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.hist.add(&other.hist).expect("histograms with the same bounds");
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Successful requests per second in the window.
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 { self.ok as f64 / self.seconds } else { 0.0 }
    }

    pub fn p(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.hist.value_at_quantile(quantile))
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.hist.max())
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 us to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Runs every worker for the window and merges what they measured. The workers come back
/// so a later phase can reuse their connections.
pub async fn run<W: Worker>(mut workers: Vec<W>, pace: Pace, window: Window) -> (Vec<W>, Stats) {
    workers.iter_mut().for_each(Worker::start_phase);
    let count = workers.len().max(1);
    let period = match pace {
        Pace::Closed => None,
        Pace::Rate(rate) => Some(Duration::from_secs_f64(count as f64 / rate.max(0.001))),
    };
    // Stagger the workers' schedules evenly over one period.
    let first = |i: usize| window.start + period.map(|p| p.mul_f64(i as f64 / count as f64)).unwrap_or_default();
    let pacer = period.map(|period| {
        let schedules = (0..workers.len()).map(|i| Schedule { first: first(i).into_std(), period }).collect();
        Pacer::start(schedules, window.end.into_std())
    });
    let handles: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let paced = period.zip(pacer.as_ref()).map(|(period, pacer)| (period, pacer.bell(i)));
            tokio::spawn(drive(w, paced, first(i), window))
        })
        .collect();
    let mut total = Stats::empty(window.measured().as_secs_f64());
    let mut back = Vec::with_capacity(handles.len());
    for handle in handles {
        let (worker, stats) = handle.await.expect("load worker panicked");
        total.merge(stats);
        back.push(worker);
    }
    (back, total)
}

/// One worker's loop; `paced` is its period and its bell in the open loop, `None` in the closed.
async fn drive<W: Worker>(
    mut worker: W,
    paced: Option<(Duration, Bell)>,
    first: Instant,
    window: Window,
) -> (W, Stats) {
    let mut stats = Stats::empty(window.measured().as_secs_f64());
    let mut intended = first;
    loop {
        let now = Instant::now();
        // When the request was due (its place in the window) and when its latency starts.
        let (due, sent_at) = match &paced {
            None => {
                if now >= window.end {
                    break;
                }
                (now, now)
            }
            Some((period, bell)) => {
                if intended >= window.end {
                    break;
                }
                if now > window.end + DRAIN_GRACE {
                    // Still behind long after the window: what is left was never sent.
                    let missed = ((window.end - intended).as_secs_f64() / period.as_secs_f64()).ceil() as u64;
                    stats.errors += missed;
                    stats.first_error.get_or_insert_with(|| "offered rate not reached (backlog)".into());
                    break;
                }
                let due = intended;
                intended += *period;
                if due > now {
                    bell.until(due.into_std()).await;
                    (due, Instant::now())
                } else {
                    (due, due)
                }
            }
        };
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, worker.call()).await {
            Ok(result) => result,
            Err(_) => Err("timeout".into()),
        };
        let done = Instant::now();
        let counted = match &paced {
            // Closed loop: whatever completed inside the window.
            None => done >= window.measure && done <= window.end,
            // Open loop: whatever was due inside the window, however late it completed.
            Some(_) => due >= window.measure && due < window.end,
        };
        if !counted {
            continue;
        }
        stats.hist.saturating_record(done.saturating_duration_since(sent_at).as_micros().max(1) as u64);
        match outcome {
            Ok(()) => stats.ok += 1,
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(e);
            }
        }
    }
    (worker, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every third call.
    struct Flaky(u64);

    impl Worker for Flaky {
        async fn call(&mut self) -> Result<(), String> {
            self.0 += 1;
            tokio::task::yield_now().await;
            if self.0.is_multiple_of(3) { Err("third".into()) } else { Ok(()) }
        }
    }

    #[tokio::test]
    async fn closed_loop_counts_successes_and_errors_inside_the_window() {
        let window = Window::after(Duration::from_millis(20), Duration::from_millis(100));
        let (workers, stats) = run(vec![Flaky(0), Flaky(0)], Pace::Closed, window).await;
        assert_eq!(workers.len(), 2);
        assert!(stats.ok > 0 && stats.errors > 0, "{stats:?}");
        assert_eq!(stats.hist.len(), stats.ok + stats.errors);
        assert_eq!(stats.first_error.as_deref(), Some("third"));
        // Requests made during the warm-up are not counted.
        let made: u64 = workers.iter().map(|w| w.0).sum();
        assert!(made > stats.ok + stats.errors);
    }

    /// Answers after a fixed delay.
    struct Slow(Duration);

    impl Worker for Slow {
        async fn call(&mut self) -> Result<(), String> {
            tokio::time::sleep(self.0).await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_backlog_counts_from_the_due_time_an_idle_connection_from_its_send() {
        // One connection, a request due every 3.33 ms, answered in about 1 ms: each is sent on
        // an idle connection, and its latency is its answer's.
        let window = Window::after(Duration::from_millis(100), Duration::from_secs(1));
        let (_, on_time) = run(vec![Slow(Duration::from_millis(1))], Pace::Rate(300.0), window).await;
        assert!(on_time.p(0.5) < Duration::from_millis(5), "{:?}", on_time.p(0.5));
        // Answers take 20 ms, one due every 10 ms: the schedule falls further behind with every
        // request, and each request's wait for the connection counts against the server (the
        // median one, over half a second).
        let window = Window::after(Duration::from_millis(100), Duration::from_secs(1));
        let (_, behind) = run(vec![Slow(Duration::from_millis(20))], Pace::Rate(100.0), window).await;
        assert!(behind.p(0.5) > Duration::from_millis(200), "{:?}", behind.p(0.5));
    }

    /// Counts its phases and the calls of the current one.
    #[derive(Default)]
    struct Phased {
        phases: u32,
        calls: u64,
    }

    impl Worker for Phased {
        async fn call(&mut self) -> Result<(), String> {
            self.calls += 1;
            tokio::task::yield_now().await;
            Ok(())
        }

        fn start_phase(&mut self) {
            self.phases += 1;
            self.calls = 0;
        }
    }

    #[tokio::test]
    async fn every_phase_starts_its_workers_afresh() {
        let window = || Window::after(Duration::from_millis(10), Duration::from_millis(100));
        let (workers, _) = run(vec![Phased::default()], Pace::Closed, window()).await;
        let closed = workers[0].calls;
        // A closed loop of calls that only yield makes thousands; 20 a second makes a few.
        let (workers, _) = run(workers, Pace::Rate(20.0), window()).await;
        assert_eq!(workers[0].phases, 2);
        assert!(workers[0].calls < 10 && workers[0].calls < closed, "{} calls, {closed} before", workers[0].calls);
    }

    #[tokio::test]
    async fn open_loop_sends_what_was_offered() {
        // Every request due in the window counts, however late it left, so the count is exact.
        let window = Window::after(Duration::from_millis(200), Duration::from_secs(1));
        let (_, stats) = run(vec![Flaky(1), Flaky(1)], Pace::Rate(50.0), window).await;
        assert_eq!(stats.ok + stats.errors, 50);
    }
}
