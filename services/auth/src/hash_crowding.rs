//! One idle-priority hash at a time while other work wants the cores.
//!
//! Idle priority lets every request preempt a hash, but two hashes running at once still
//! slowed the requests beside them: in split mode's login flood, the protected p99 rose
//! 5.5× and 9.1× with two hashing threads against 2.3× and 2.5× with one (paired runs,
//! BENCHMARKS.md, session 7). Each wake-up then has to preempt a hashing thread on either
//! core, and two AVX-512 fills share the caches and the memory bus with the requests.
//!
//! So each idle worker measures the share of a core its hash got: its thread's CPU time over
//! the hash's wall time. A moving average of those shares below [`CROWDED_BELOW`] means
//! other work wants the cores, and then only one idle worker hashes at a time, until the
//! average is back above [`ROOMY_ABOVE`]. In a login-only load a hash gets about 85 % of a
//! core (the logins' own requests take the rest), so logins keep both cores when nothing
//! else runs. The average, not each hash, decides: one hash can lose half its core to a
//! burst of finishing logins (deciding per hash cost a login-only load 15 % of its logins).
//!
//! While crowded, a hash also rests for [`SLICE_REST`] between its slices (`argon_fill.rs`):
//! its core is then idle for a moment, and the kernel pulls over a request thread that waits
//! on the other core instead of leaving it there until the next load balancing. In the
//! embedded login flood the protected p99 rose 1.0-1.9x with the rests and 2.5-8.8x without,
//! for a quarter to a half fewer logins during the flood (six paired runs, BENCHMARKS.md,
//! session 13). Always resting cost a login-only load a third of its logins, so a hash with
//! the cores to itself never rests.
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Below this average share of a core, the hashes are crowded out by other work.
const CROWDED_BELOW: f64 = 0.5;

/// Above this average share, two hashes may run at once again. (A single hash beside a
/// steady load gets more than `CROWDED_BELOW`; without the gap the pool would flap.)
const ROOMY_ABOVE: f64 = 0.75;

/// Weight of the newest share in the moving average (about the last five hashes count).
const NEWEST_WEIGHT: f64 = 0.2;

/// Shorter runs say nothing about the cores (a skipped or duplicate job).
const MIN_WALL: Duration = Duration::from_millis(2);

/// A crowded hash's rest between slices. In paired runs (session 13) 5 µs helped less than
/// 50 in embedded mode, 50 less than 150 in split mode's flood, and 400 helped no more than
/// 150 for a fifth fewer logins during the flood.
const SLICE_REST: Duration = Duration::from_micros(150);

/// How often a worker kept waiting looks again.
const WAIT_STEP: Duration = Duration::from_millis(1);

pub(crate) struct Crowding {
    /// Moving average of the share of a core the hashes got (`f64` bits).
    share: AtomicU64,
    crowded: AtomicBool,
    /// Idle workers hashing now.
    running: AtomicUsize,
}

/// A hash under way: when it started, in wall and thread CPU time.
pub(crate) struct Started {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Crowding {
    pub(crate) fn new() -> Self {
        Crowding {
            share: AtomicU64::new(1.0f64.to_bits()),
            crowded: AtomicBool::new(false),
            running: AtomicUsize::new(0),
        }
    }

    pub(crate) fn crowded(&self) -> bool {
        self.crowded.load(Ordering::Acquire)
    }

    /// Between a hash's slices: a moment's rest while crowded.
    pub(crate) fn rest_if_crowded(&self) {
        if self.crowded() {
            std::thread::sleep(SLICE_REST);
        }
    }

    /// Waits until this worker may hash: at once, unless crowded and another one hashes.
    /// Runs `before_waiting` once if it has to wait.
    pub(crate) fn enter(&self, before_waiting: impl FnOnce()) -> Started {
        let mut before_waiting = Some(before_waiting);
        loop {
            if !self.crowded() {
                self.running.fetch_add(1, Ordering::AcqRel);
                break;
            }
            if self.running.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                break;
            }
            if let Some(before) = before_waiting.take() {
                before();
            }
            std::thread::sleep(WAIT_STEP);
        }
        Started { wall: Instant::now(), cpu: thread_cpu_time() }
    }

    /// Ends a hash and counts the share of a core it got.
    pub(crate) fn leave(&self, started: Started) {
        self.running.fetch_sub(1, Ordering::AcqRel);
        let wall = started.wall.elapsed();
        let (Some(before), Some(after)) = (started.cpu, thread_cpu_time()) else { return };
        if wall >= MIN_WALL {
            self.record(after.saturating_sub(before).as_secs_f64() / wall.as_secs_f64());
        }
    }

    /// Adds one hash's share of a core to the average and decides on it.
    fn record(&self, share: f64) {
        let share = share.clamp(0.0, 1.0);
        let mut average = 0.0;
        let _ = self.share.fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
            average = f64::from_bits(bits) * (1.0 - NEWEST_WEIGHT) + share * NEWEST_WEIGHT;
            Some(average.to_bits())
        });
        if average < CROWDED_BELOW {
            self.crowded.store(true, Ordering::Release);
        } else if average > ROOMY_ABOVE {
            self.crowded.store(false, Ordering::Release);
        }
    }
}

/// CPU time the calling thread has used.
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(u64::try_from(t.tv_sec).ok()?, u32::try_from(t.tv_nsec).ok()?))
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_share_decides_with_a_gap_between_crowded_and_roomy() {
        let crowding = Crowding::new();
        // One starved hash among fair ones is a burst, not a crowd.
        crowding.record(0.0);
        assert!(!crowding.crowded());
        for _ in 0..3 {
            crowding.record(0.1);
        }
        assert!(crowding.crowded());
        // A single hash beside a steady load gets more than the crowded mark: still crowded.
        for _ in 0..20 {
            crowding.record(0.6);
        }
        assert!(crowding.crowded());
        // Room again.
        for _ in 0..10 {
            crowding.record(1.0);
        }
        assert!(!crowding.crowded());
    }

    #[test]
    fn a_crowded_hash_rests_between_slices() {
        let crowding = Crowding::new();
        for _ in 0..5 {
            crowding.record(0.0);
        }
        let started = Instant::now();
        crowding.rest_if_crowded();
        assert!(started.elapsed() >= SLICE_REST);
    }

    #[test]
    fn a_hash_that_waited_instead_of_computing_counts_as_starved() {
        let crowding = Crowding::new();
        for _ in 0..5 {
            let started = crowding.enter(|| {});
            std::thread::sleep(Duration::from_millis(10));
            crowding.leave(started);
        }
        assert!(crowding.crowded());
    }

    #[test]
    fn while_crowded_a_second_hash_waits_for_the_first() {
        let crowding = Crowding::new();
        for _ in 0..5 {
            crowding.record(0.0);
        }
        // Only a worker kept waiting runs `before_waiting` (it gives its memory up), once.
        let gave_up = AtomicUsize::new(0);
        let give_up = || {
            gave_up.fetch_add(1, Ordering::AcqRel);
        };
        let first = crowding.enter(give_up);
        assert_eq!(gave_up.load(Ordering::Acquire), 0, "the first hash did not wait");
        let waited = std::thread::scope(|s| {
            let second = s.spawn(|| {
                let asked = Instant::now();
                let started = crowding.enter(give_up);
                let waited = asked.elapsed();
                crowding.leave(started);
                waited
            });
            std::thread::sleep(Duration::from_millis(50));
            crowding.leave(first);
            second.join().unwrap()
        });
        assert!(waited >= Duration::from_millis(40), "the second hash started after {waited:?}");
        assert_eq!(gave_up.load(Ordering::Acquire), 1, "the second hash waited");
    }
}
