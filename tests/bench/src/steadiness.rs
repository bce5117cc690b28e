//! How steady the cores' speed is while nothing else runs: one thread per core times the same
//! small piece of arithmetic over and over, and each quarter second's mean is compared with the
//! fastest piece that thread ran.
//!
//! A latency target at a fixed rate assumes the cores keep their speed. On a virtual machine
//! they may not: on session 21's host the same piece of work took 1.2-1.4× its fastest time in
//! most quarter seconds and 1.8-2.1× in one every second or two, with the machine otherwise
//! idle and no steal time counted. A server at half its peak then needs more than all the
//! cores for a few hundred milliseconds, and the backlog shows in the p99 at half the peak rate
//! of the bare static handler as much as of Warden's. This probe says how much of a run's
//! fixed-rate latency the host itself can explain.
use serde::Serialize;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One window's length: short enough to catch a dip, long enough to hold a thousand pieces.
const WINDOW: Duration = Duration::from_millis(250);

/// The number of multiply-adds in one piece of work (about 0.2-0.3 ms on the hosts seen).
const PIECE: u32 = 200_000;

/// A window this much slower than the fastest piece counts as a dip.
pub const DIP: f64 = 1.5;

#[derive(Clone, Debug, Serialize)]
pub struct Steadiness {
    pub threads: usize,
    pub seconds: f64,
    /// The fastest piece of work, in ms (the fastest thread's).
    pub fastest_ms: f64,
    /// Every thread's windows together: how much slower than its fastest piece each was.
    pub windows: usize,
    pub median: f64,
    pub p90: f64,
    pub worst: f64,
    /// The share of windows at least [`DIP`] times slower.
    pub dip_share: f64,
}

/// Runs one timing thread per core for `duration`.
pub fn measure(threads: usize, duration: Duration) -> Steadiness {
    let threads = threads.max(1);
    let per_thread: Vec<(Duration, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || time_pieces(duration))).collect();
        handles.into_iter().map(|h| h.join().expect("steadiness thread panicked")).collect()
    });
    let fastest = per_thread.iter().map(|(f, _)| *f).min().unwrap_or_default();
    let mut windows: Vec<f64> = per_thread.into_iter().flat_map(|(_, w)| w).collect();
    windows.sort_by(f64::total_cmp);
    let at = |q: f64| windows.get(((windows.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    Steadiness {
        threads,
        seconds: duration.as_secs_f64(),
        fastest_ms: fastest.as_secs_f64() * 1e3,
        windows: windows.len(),
        median: at(0.5),
        p90: at(0.9),
        worst: windows.last().copied().unwrap_or(0.0),
        dip_share: dip_share(&windows),
    }
}

fn dip_share(windows: &[f64]) -> f64 {
    if windows.is_empty() {
        return 0.0;
    }
    windows.iter().filter(|w| **w >= DIP).count() as f64 / windows.len() as f64
}

/// Times pieces of work for `duration`: the fastest piece, and each window's mean over it.
fn time_pieces(duration: Duration) -> (Duration, Vec<f64>) {
    let start = Instant::now();
    let mut pieces: Vec<(Duration, Duration)> = Vec::new();
    let mut x = 1u64;
    while start.elapsed() < duration {
        let began = Instant::now();
        for _ in 0..PIECE {
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407));
        }
        pieces.push((began - start, began.elapsed()));
    }
    let fastest = pieces.iter().map(|(_, d)| *d).min().unwrap_or_default();
    (fastest, window_ratios(&pieces, fastest))
}

/// Each whole window's mean piece time over `fastest` (pieces are `(started, took)`).
fn window_ratios(pieces: &[(Duration, Duration)], fastest: Duration) -> Vec<f64> {
    if fastest.is_zero() {
        return Vec::new();
    }
    let mut sums: Vec<(Duration, u32)> = Vec::new();
    for (started, took) in pieces {
        let w = (started.as_nanos() / WINDOW.as_nanos()) as usize;
        if sums.len() <= w {
            sums.resize(w + 1, (Duration::ZERO, 0));
        }
        sums[w].0 += *took;
        sums[w].1 += 1;
    }
    // The last window is cut short by the end of the run; an empty one was a single long piece.
    sums.pop();
    sums.into_iter().filter(|(_, n)| *n > 0).map(|(sum, n)| (sum / n).as_secs_f64() / fastest.as_secs_f64()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_micros(x * 1000)
    }

    #[test]
    fn each_window_is_its_mean_over_the_fastest_piece() {
        // Windows of 250 ms: the first holds pieces of 1 and 3 ms, the second of 2 ms; the
        // third, cut short by the end, is dropped.
        let pieces = [(ms(0), ms(1)), (ms(100), ms(3)), (ms(260), ms(2)), (ms(510), ms(9))];
        assert_eq!(window_ratios(&pieces, ms(1)), vec![2.0, 2.0]);
        assert_eq!(dip_share(&[1.0, 1.2, 1.5, 2.0]), 0.5);
    }

    #[test]
    fn a_short_probe_reports_its_windows() {
        let s = measure(2, Duration::from_millis(800));
        assert_eq!(s.threads, 2);
        assert!(s.windows >= 2, "{s:?}");
        assert!(s.fastest_ms > 0.0 && s.median >= 1.0 && s.worst >= s.p90 && s.p90 >= s.median, "{s:?}");
    }
}
