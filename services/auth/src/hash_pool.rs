//! Dedicated threads for password hashing, scheduled only when nothing else wants the CPU.
//!
//! Argon2 is pure CPU for ~10 ms a call. On tokio's blocking pool it competes as an equal
//! with the runtime threads, so a login flood on 2 cores stretches every other request's
//! latency. Here the hashing threads run under Linux's `SCHED_IDLE` policy: when nothing
//! else wants the CPU (a login-only load) they still get all of it, and when a request
//! thread wakes the kernel preempts a hashing thread at once and places the woken thread on
//! a core that is only hashing as if that core were idle. A niced thread gets neither: at
//! nice 10 a woken request thread still waited out the hashing thread's time slice (in
//! paired runs of the login flood, the protected p99 rose 5.0× at nice 10 against 3.0× at
//! idle priority, medians; BENCHMARKS.md, session 5).
//!
//! Idle priority has a cost: against busy threads of the same CPU cgroup (in Kubernetes,
//! the pod's own; on a host without one, every process of the session) a hashing thread
//! gets almost nothing (weight 3 against 1024). So one more thread, the rescue worker, runs
//! at nice 10 and takes only a job that has waited [`RESCUE_AFTER`]: logins then still move
//! at about a tenth of a core, as they did when every hashing thread ran at nice 10. In a
//! login flood that the CPU can serve, jobs never wait that long and the rescue worker
//! sleeps.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// How long a job waits for an idle-priority worker before the rescue worker is offered it.
const RESCUE_AFTER: Duration = Duration::from_secs(1);

/// The rescue worker's niceness: below the request threads (nice 0), above idle priority.
const RESCUE_NICE: i32 = 10;

/// Jobs reach the workers through channels whose send takes no lock: a request thread must
/// never wait on a lock that an idle-priority thread may hold, because that thread gets no
/// CPU back until the cores have nothing else to do (priority inversion).
pub(crate) struct HashPool {
    idle: mpsc::Sender<Arc<Slot>>,
    rescue: mpsc::Sender<Arc<Slot>>,
    workers: usize,
    rescue_after: Duration,
}

/// One job, offered to the idle workers and, once it has waited, to the rescue worker too;
/// whichever claims it first runs it.
struct Slot {
    claimed: AtomicBool,
    job: Mutex<Option<Job>>,
}

impl Slot {
    fn claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Runs the job unless another worker claimed it. Only the claimant locks `job`.
    fn run(&self) -> bool {
        if self.claimed.swap(true, Ordering::AcqRel) {
            return false;
        }
        let job = self.job.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(job) = job {
            // A panicking job loses its answer (the caller sees an internal error), not the
            // thread: the pool keeps its size.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
        true
    }
}

impl HashPool {
    /// Starts `workers` idle-priority threads and the rescue worker; they exit once the pool
    /// is dropped and their queue is empty.
    pub(crate) fn new(workers: usize) -> Self {
        Self::with_rescue_after(workers, RESCUE_AFTER)
    }

    fn with_rescue_after(workers: usize, rescue_after: Duration) -> Self {
        let (idle, queue) = mpsc::channel::<Arc<Slot>>();
        // Shared by the idle workers only: the rescue worker has a queue of its own.
        let queue = Arc::new(Mutex::new(queue));
        let workers = workers.max(1);
        for n in 0..workers {
            let queue = queue.clone();
            spawn(format!("warden-hash-{n}"), move || {
                idle_priority();
                loop {
                    let next = queue.lock().expect("hash queue lock").recv();
                    match next {
                        Ok(slot) => slot.run(),
                        Err(_) => return,
                    };
                }
            });
        }
        let (rescue, rescued) = mpsc::channel::<Arc<Slot>>();
        spawn("warden-hash-rescue".to_owned(), move || {
            rescue_priority();
            for slot in rescued {
                if slot.run() {
                    metrics::counter!("warden_password_hash_rescued_total").increment(1);
                }
            }
        });
        HashPool { idle, rescue, workers, rescue_after }
    }

    /// Jobs that can run at once: the idle-priority workers and the rescue worker. Callers
    /// admit this many, so a job waits only while the idle workers are busy or starved.
    pub(crate) fn capacity(&self) -> usize {
        self.workers + 1
    }

    /// Runs `job` on a hashing thread; `None` if the pool has stopped.
    pub(crate) async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The request gave up while this waited (client gone, budget spent): skip the
            // hash rather than spend ~20 ms of CPU on an answer nobody reads.
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(job());
        });
        let slot = Arc::new(Slot { claimed: AtomicBool::new(false), job: Mutex::new(Some(job)) });
        self.idle.send(slot.clone()).ok()?;
        tokio::select! {
            done = &mut answer => return done.ok(),
            () = tokio::time::sleep(self.rescue_after) => {}
        }
        if !slot.claimed() {
            self.rescue.send(slot).ok()?;
        }
        answer.await.ok()
    }
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().name(name).spawn(body).expect("start a password hashing thread");
}

#[cfg(target_os = "linux")]
fn idle_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) =
        thread_priority::set_thread_priority_and_policy(thread_priority::thread_native_id(), ThreadPriority::Min, idle)
    {
        // Refused (a seccomp filter, say): nice 10 is the next best thing.
        tracing::debug!(error = ?e, "password hashing thread cannot take idle priority");
        rescue_priority();
    }
}

#[cfg(target_os = "linux")]
fn rescue_priority() {
    // On Linux a thread id names one thread for setpriority, so only this thread is niced.
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), RESCUE_NICE) {
        tracing::debug!(error = %e, "password hashing thread keeps normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn idle_priority() {}

#[cfg(not(target_os = "linux"))]
fn rescue_priority() {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn current_thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn runs_jobs_on_idle_priority_threads() {
        let pool = HashPool::new(2);
        assert_eq!(pool.capacity(), 3);
        let name = pool.run(current_thread_name).await.unwrap();
        assert!(name.starts_with("warden-hash-") && name != "warden-hash-rescue", "{name}");
        #[cfg(target_os = "linux")]
        {
            use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
            let policy = pool.run(thread_priority::thread_schedule_policy).await.unwrap().unwrap();
            assert_eq!(policy, ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle));
        }
        let sum: u64 = pool.run(|| (1..=10u64).sum()).await.unwrap();
        assert_eq!(sum, 55);
    }

    #[tokio::test]
    async fn a_job_left_waiting_is_rescued_at_low_normal_priority() {
        let pool = HashPool::with_rescue_after(1, Duration::from_millis(200));
        let pool = std::sync::Arc::new(pool);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        // Occupy the only idle-priority worker, as a busy CPU would.
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || gate.recv().is_ok()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let (name, nice) = pool
            .run(|| (current_thread_name(), rustix::process::getpriority_process(Some(rustix::thread::gettid()))))
            .await
            .unwrap();
        assert_eq!(name, "warden-hash-rescue");
        assert!(started.elapsed() >= Duration::from_millis(200), "rescued before it waited");
        #[cfg(target_os = "linux")]
        assert!(nice.unwrap() >= RESCUE_NICE);
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Some(true));
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_is_skipped() {
        let pool = std::sync::Arc::new(HashPool::new(1));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        // Occupy the only thread, then queue a job and drop its caller before it starts.
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || gate.recv().is_ok()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let abandoned = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        abandoned.abort();
        let _ = abandoned.await;
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Some(true));
        // A job queued after the abandoned one runs, so the abandoned one was taken and skipped.
        assert_eq!(pool.run(|| 1).await, Some(1));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "the abandoned job ran");
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_shrink_the_pool() {
        let pool = HashPool::new(1);
        assert!(pool.run(|| -> u8 { panic!("argon2 failed") }).await.is_none());
        assert_eq!(pool.run(|| 7).await, Some(7));
    }
}
