//! How steady the cores' speed is while nothing else runs: one thread per core times the same
//! small piece of arithmetic over and over, and each 10 ms window's mean is compared with the
//! fastest piece that thread ran.
//!
//! A latency target at a fixed rate assumes the cores keep their speed. On a virtual machine
//! they may not. On session 21's host, with the machine otherwise idle and no steal time
//! counted, a core ran at a twelfth of its speed for tens of milliseconds at a time, in spells
//! of about 100 ms every 1.3-1.7 s. A server at half its peak then falls behind for the whole
//! spell, and the backlog shows in the p99 at half the peak rate: 22-71 ms for the bare
//! static handler, as for Warden. This probe says how much of a run's fixed-rate latency the
//! host itself explains. The spells come and go over minutes, so the bench probes before each
//! mode, not once.
use serde::Serialize;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One window: short enough to see a stall, long enough to hold dozens of pieces.
const WINDOW: Duration = Duration::from_millis(10);

/// The number of multiply-adds in one piece of work (about 0.07 ms on the hosts seen).
const PIECE: u32 = 50_000;

/// A window this much slower than the fastest piece is slow; consecutive slow windows make a
/// slow spell.
pub const SLOW: f64 = 2.0;

/// A window this much slower had the core mostly taken away: a stall.
pub const STALLED: f64 = 5.0;

#[derive(Clone, Debug, Serialize)]
pub struct Steadiness {
    /// When in the run it was measured, e.g. "before embedded".
    pub when: String,
    pub threads: usize,
    pub seconds: f64,
    /// The fastest piece of work, in ms (the fastest thread's).
    pub fastest_ms: f64,
    /// Every thread's windows together: how much slower than its fastest piece each was.
    pub windows: usize,
    pub median: f64,
    pub p99: f64,
    pub worst: f64,
    /// The share of windows at least [`STALLED`] times slower.
    pub stalled_share: f64,
    /// The longest run of consecutive windows at least [`SLOW`] times slower, on any thread, ms.
    pub longest_slow_ms: f64,
}

/// Runs one timing thread per core for `duration`; `when` labels the result.
pub fn measure(threads: usize, duration: Duration, when: &str) -> Steadiness {
    let threads = threads.max(1);
    let per_thread: Vec<(Duration, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || time_pieces(duration))).collect();
        handles.into_iter().map(|h| h.join().expect("steadiness thread panicked")).collect()
    });
    let fastest = per_thread.iter().map(|(f, _)| *f).min().unwrap_or_default();
    let longest = per_thread.iter().map(|(_, w)| longest_slow(w)).max().unwrap_or(0);
    let mut windows: Vec<f64> = per_thread.into_iter().flat_map(|(_, w)| w).collect();
    windows.sort_by(f64::total_cmp);
    let at = |q: f64| windows.get(((windows.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    Steadiness {
        when: when.to_owned(),
        threads,
        seconds: duration.as_secs_f64(),
        fastest_ms: fastest.as_secs_f64() * 1e3,
        windows: windows.len(),
        median: at(0.5),
        p99: at(0.99),
        worst: windows.last().copied().unwrap_or(0.0),
        stalled_share: share_at_least(&windows, STALLED),
        longest_slow_ms: (longest as u32 * WINDOW).as_secs_f64() * 1e3,
    }
}

fn share_at_least(windows: &[f64], ratio: f64) -> f64 {
    if windows.is_empty() {
        return 0.0;
    }
    windows.iter().filter(|w| **w >= ratio).count() as f64 / windows.len() as f64
}

/// The most consecutive windows at least [`SLOW`] times slower (windows in time order).
fn longest_slow(windows: &[f64]) -> usize {
    let (mut longest, mut run) = (0, 0);
    for w in windows {
        run = if *w >= SLOW { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
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

/// Each window's mean piece time over `fastest`, in time order (pieces are `(started, took)`
/// and count in the window they started in). A window no piece started in lies inside a
/// piece that took longer than a window: it gets the ratio of the window that piece started
/// in, so a stall of several windows counts as long as it was.
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
    // The last window is cut short by the end of the run.
    sums.pop();
    let mut ratios = Vec::with_capacity(sums.len());
    let mut last = 1.0;
    for (sum, n) in sums {
        if n > 0 {
            last = (sum / n).as_secs_f64() / fastest.as_secs_f64();
        }
        ratios.push(last);
    }
    ratios
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn each_window_is_its_mean_over_the_fastest_piece() {
        // 10 ms windows: the first holds pieces of 1 and 3 ms; the second starts a 25 ms
        // piece, which the third and fourth lie inside; the fifth, cut short, is dropped.
        let pieces = [(ms(0), ms(1)), (ms(5), ms(3)), (ms(12), ms(25)), (ms(41), ms(1))];
        let ratios = window_ratios(&pieces, ms(1));
        assert_eq!(ratios, vec![2.0, 25.0, 25.0, 25.0]);
        assert_eq!(longest_slow(&ratios), 4);
        assert_eq!(longest_slow(&[3.0, 1.0, 2.0, 2.5, 1.9, 2.0]), 2);
        assert_eq!(share_at_least(&[1.0, 1.2, 5.0, 12.0], STALLED), 0.5);
    }

    #[test]
    fn a_short_probe_reports_its_windows() {
        let s = measure(2, Duration::from_millis(300), "now");
        assert_eq!((s.when.as_str(), s.threads), ("now", 2));
        assert!(s.windows >= 2, "{s:?}");
        assert!(s.fastest_ms > 0.0 && s.median >= 1.0 && s.worst >= s.p99 && s.p99 >= s.median, "{s:?}");
        assert!(s.longest_slow_ms <= s.seconds * 1e3, "{s:?}");
    }
}
