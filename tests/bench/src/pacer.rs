//! Wakes open-loop workers when their requests fall due, finer than tokio's timer.
//!
//! tokio's timer fires on a 1 ms tick, so workers that sleep on it until their requests are due
//! all wake together on the tick: at 37,000 requests/s the server got a burst of 37 requests
//! every millisecond rather than one every 27 us. A burst makes every thread on the two cores
//! runnable at once (the generator's and the server's), and the last requests of each burst
//! queue behind the first: that is latency a fixed offered rate should not have, added to the
//! server's answers and to the bare static handler's alike (session 20, BENCHMARKS.md).
//!
//! The pacer is one OS thread that sleeps until the next request falls due, but at least a
//! [`STEP`] (a futex wait, not tokio's timer), and then wakes the workers whose next request is
//! due. Requests leave in groups of what falls due in one step, a few at half a peak. At high
//! rates that is several thousand wake-ups a second of a thread that does nothing else (about
//! 9 % of a core at 45,000 requests/s, counted with the client's CPU); at a login's rate, a few
//! hundred.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The shortest sleep of the pacer: requests due within a step of each other leave together.
pub const STEP: Duration = Duration::from_micros(100);

/// One worker's schedule: its first due time and the period between its requests.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub first: Instant,
    pub period: Duration,
}

/// The pacer thread and a wake-up per worker. Stops when dropped.
pub struct Pacer {
    bells: Vec<Arc<Notify>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pacer {
    /// Paces `schedules` (one per worker) until `end`, or until dropped.
    pub fn start(schedules: Vec<Schedule>, end: Instant) -> Pacer {
        let bells: Vec<Arc<Notify>> = schedules.iter().map(|_| Arc::new(Notify::new())).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn({
                let (bells, stop) = (bells.clone(), stop.clone());
                move || ring(schedules, bells, end, &stop)
            })
            .expect("spawn the pacer thread");
        Pacer { bells, stop, thread: Some(thread) }
    }

    /// A worker's view of the pacer.
    pub fn bell(&self, worker: usize) -> Bell {
        Bell(self.bells[worker].clone())
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Cut its sleep short: the next due time may be far off.
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Waits for one worker's due times.
pub struct Bell(Arc<Notify>);

impl Bell {
    /// Returns once `due` has passed. The pacer rings once per due time, at the first step
    /// after it; a ring left over from a due time the worker was too busy to wait for only
    /// makes it look at the clock once more.
    pub async fn until(&self, due: Instant) {
        while Instant::now() < due {
            self.0.notified().await;
        }
    }
}

/// The pacer thread: rings each worker whose next due time has passed, then sleeps until the
/// next one (at least a [`STEP`]), until every due time before `end` is rung or it is stopped.
fn ring(schedules: Vec<Schedule>, bells: Vec<Arc<Notify>>, end: Instant, stop: &AtomicBool) {
    let mut next: Vec<Instant> = schedules.iter().map(|s| s.first).collect();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let mut earliest: Option<Instant> = None;
        for ((due, schedule), bell) in next.iter_mut().zip(&schedules).zip(&bells) {
            if *due <= now {
                bell.notify_one();
                // One ring covers every due time already passed.
                while *due <= now {
                    *due += schedule.period;
                }
            }
            if *due < end {
                earliest = Some(earliest.map_or(*due, |e| e.min(*due)));
            }
        }
        // None: the last due times are rung; the workers have nothing more to wait for.
        let Some(earliest) = earliest else { return };
        // A spurious wake-up only makes the loop look again.
        std::thread::park_timeout(earliest.max(now + STEP).saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_wakes_after_its_due_time_and_not_long_after() {
        let start = Instant::now() + Duration::from_millis(20);
        let period = Duration::from_millis(5);
        let pacer = Pacer::start(vec![Schedule { first: start, period }], start + Duration::from_millis(60));
        let bell = pacer.bell(0);
        let mut lateness = Vec::new();
        for k in 0..10 {
            let due = start + period * k;
            bell.until(due).await;
            lateness.push(Instant::now() - due);
        }
        lateness.sort();
        // Never early (the loop guarantees it), and usually within a step or two of the due
        // time. The median, with room to spare, not the worst: the machine is shared.
        assert!(lateness[5] < Duration::from_millis(2), "{lateness:?}");
    }

    #[test]
    fn the_pacer_stops_when_dropped_and_after_its_end() {
        let now = Instant::now();
        // Its first due time an hour away: the drop wakes the sleeping thread.
        let far = Schedule { first: now + Duration::from_secs(3600), period: Duration::from_secs(1) };
        drop(Pacer::start(vec![far], now + Duration::from_secs(7200)));
        assert!(now.elapsed() < Duration::from_secs(60), "the drop waited for the schedule");
        let done = Schedule { first: now, period: Duration::from_millis(1) };
        let pacer = Pacer::start(vec![done], now + Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(50));
        assert!(pacer.thread.as_ref().is_some_and(|t| t.is_finished()));
    }
}
