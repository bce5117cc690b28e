//! Dedicated threads for password hashing, scheduled only when nothing else wants the CPU.
//!
//! Argon2 is pure CPU for 5-9 ms a call here (argon2-rust; 14-21 ms with RustCrypto's
//! crate). On tokio's blocking pool it competes as an equal with the runtime threads, so a
//! login flood on 2 cores stretches every other request's latency. Here the hashing threads
//! run under Linux's `SCHED_IDLE` policy: when nothing else wants the CPU (a login-only load)
//! they still get all of it, and when a request thread wakes the kernel preempts a hashing
//! thread at once and places the woken thread on a core that is only hashing as if that
//! core were idle. A niced thread gets neither: at nice 10 a woken request thread still
//! waited out the hashing thread's time slice (in paired runs of the login flood, the
//! protected p99 rose 5.0× at nice 10 against 3.0× at idle priority, medians;
//! BENCHMARKS.md, session 5).
//!
//! Idle priority has a cost: against busy threads of the same CPU cgroup (in Kubernetes,
//! the pod's own; on a host without one, every process of the session) a hashing thread
//! gets almost nothing (weight 3 against 1024). So as many rescue workers run at nice 10,
//! and take any job not answered within [`RESCUE_AFTER`], whether still queued or started
//! by an idle worker that the cores then starved (the first answer wins). From then on the
//! pool counts as starving, and new jobs go to the rescue workers at once, until an idle
//! worker finishes a job again. On busy cores logins thus move as they did when every
//! hashing thread ran at nice 10. In a login flood that the CPU can serve, jobs never wait
//! that long and the rescue workers sleep. And while other work crowds the cores, only one
//! idle worker hashes at a time (`hash_crowding.rs`).
//!
//! (The first version had one rescue worker, which took only jobs still queued, each after
//! its own second. The scale-out drill keeps both cores busy. There, the three jobs
//! admitted at a time held logins to about three a second per process, some logins took
//! 3.5 s, and one passed the 5 s call deadline.)
use crate::hash_crowding::Crowding;
use crate::hash_memory::{ArenaBudget, free_idle_memory, join_budget, release_thread_memory};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

/// A job as the threads see it: runs the hash unless the answer is already given or no
/// longer wanted, and delivers it if it is the first to finish; `true` when it delivered.
type Job = Box<dyn Fn() -> bool + Send + Sync>;

/// How long a job waits for an idle-priority worker before the rescue workers are offered it.
const RESCUE_AFTER: Duration = Duration::from_secs(1);

/// The rescue workers' niceness: below the request threads (nice 0), above idle priority.
const RESCUE_NICE: i32 = 10;

/// The rescue workers' names start with this.
const RESCUE_THREAD: &str = "warden-hash-rescue";

/// How long the hashing threads' spare Argon2 memory stays unused before it is freed.
const MEMORY_IDLE: Duration = Duration::from_secs(10);

thread_local! {
    /// On an idle-priority worker, its pool's crowding; `None` on every other thread.
    static CROWDING: RefCell<Option<Arc<Crowding>>> = const { RefCell::new(None) };
}

/// Runs between the slices of a hash (`argon_fill.rs`): on an idle-priority worker while other
/// work crowds the cores, gives the core up for a moment; elsewhere, nothing.
pub(crate) fn between_slices() {
    CROWDING.with_borrow(|crowding| {
        if let Some(crowding) = crowding {
            crowding.rest_if_crowded();
        }
    });
}

/// Jobs reach the workers through channels whose send takes no lock: a request thread must
/// never wait on a lock that an idle-priority thread may hold, because that thread gets no
/// CPU back until the cores have nothing else to do (priority inversion).
pub(crate) struct HashPool {
    idle: mpsc::Sender<Arc<Slot>>,
    rescue: mpsc::Sender<Arc<Slot>>,
    workers: usize,
    rescue_after: Duration,
    /// A job went unanswered for `rescue_after` and no idle worker has finished one since:
    /// the cores are busy, so new jobs go to the rescue workers at once instead of each
    /// waiting out its own `rescue_after` (which held logins to a few per second).
    starving: Arc<AtomicBool>,
}

/// One job, offered to the idle workers and, once it has waited, to the rescue workers too.
/// An idle worker may have started it and then been starved by busy cores: a rescue
/// worker then computes it as well, and the first answer wins (a hash is a pure function of
/// its inputs; a starved duplicate only ever used CPU nobody else wanted).
struct Slot {
    /// Taken by the first idle worker, so two of them never compute the same job.
    claimed: AtomicBool,
    job: Job,
}

impl Slot {
    /// Runs the job on an idle worker unless another one claimed it; `true` if it ran.
    fn run_idle(&self) -> bool {
        if self.claimed.swap(true, Ordering::AcqRel) {
            return false;
        }
        (self.job)();
        true
    }
}

/// The answer's way back: the first finisher wins the `answered` flag and only then takes
/// the lock, so no thread ever waits on it.
struct Reply<T> {
    answered: AtomicBool,
    sender: Mutex<Option<tokio::sync::oneshot::Sender<T>>>,
}

impl<T> Reply<T> {
    /// Nobody waits for this answer any more: given already, or its caller left (its
    /// request gave up: client gone, budget spent), so the hash's CPU is not spent.
    fn unwanted(&self) -> bool {
        self.answered.load(Ordering::Acquire)
            || self.sender.try_lock().map_or(true, |s| s.as_ref().is_none_or(|s| s.is_closed()))
    }

    /// Delivers `answer` if nobody did; a panicked job (`None`) ends the wait empty-handed.
    fn deliver(&self, answer: Option<T>) -> bool {
        if self.answered.swap(true, Ordering::AcqRel) {
            return false;
        }
        let sender = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let (Some(sender), Some(answer)) = (sender, answer) {
            let _ = sender.send(answer);
        }
        true
    }
}

impl HashPool {
    /// Starts `workers` idle-priority threads and as many rescue workers; they exit once the pool
    /// is dropped and their queue is empty.
    pub(crate) fn new(workers: usize) -> Self {
        Self::with_rescue_after(workers, RESCUE_AFTER)
    }

    fn with_rescue_after(workers: usize, rescue_after: Duration) -> Self {
        let workers = workers.max(1);
        let starving = Arc::new(AtomicBool::new(false));
        // While other work crowds the cores, one idle worker hashes at a time.
        let crowding = Arc::new(Crowding::new());
        // One arena per job admitted, however many threads compute them (`hash_memory.rs`).
        let budget = ArenaBudget::new(admitted(workers));
        // The idle workers share one queue, the rescue workers another.
        let (idle, queue) = mpsc::channel::<Arc<Slot>>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers {
            let (queue, starving, crowding, budget) =
                (queue.clone(), starving.clone(), crowding.clone(), budget.clone());
            spawn(format!("warden-hash-{n}"), move || {
                idle_priority();
                join_budget(budget);
                CROWDING.set(Some(crowding.clone()));
                serve(&queue, release_thread_memory, |slot| {
                    // A worker kept waiting gives its memory up meanwhile: the rescue workers
                    // may need an arena while it waits, and one arena a waiting worker keeps
                    // plus one per rescue worker took a crowded process past 100 MiB
                    // (BENCHMARKS.md, session 17).
                    let started = crowding.enter(release_thread_memory);
                    let ran = slot.run_idle();
                    crowding.leave(started);
                    // Finishing a job at idle priority shows the cores have room again, even
                    // if a rescue worker answered it first. (Waiting for an idle worker to
                    // answer first kept the pool starving through a whole login flood: the
                    // rescue workers, at nice 10, nearly always win. The protected p99 then
                    // rose 6.8x embedded and 9.7x split, against 2-3x and 1.3-1.6x.)
                    if ran {
                        starving.store(false, Ordering::Release);
                    }
                });
            });
        }
        // As many rescue workers as idle ones: on busy cores logins then get what a pool of
        // nice-10 threads got before idle priority, and no less.
        let (rescue, rescued) = mpsc::channel::<Arc<Slot>>();
        let rescued = Arc::new(Mutex::new(rescued));
        for n in 0..workers {
            let (rescued, budget) = (rescued.clone(), budget.clone());
            spawn(format!("{RESCUE_THREAD}-{n}"), move || {
                rescue_priority();
                join_budget(budget);
                serve(&rescued, release_thread_memory, |slot| {
                    if (slot.job)() {
                        metrics::counter!("warden_password_hash_rescued_total").increment(1);
                    }
                });
            });
        }
        HashPool { idle, rescue, workers, rescue_after, starving }
    }

    /// Jobs admitted at once (see [`admitted`]).
    pub(crate) fn capacity(&self) -> usize {
        admitted(self.workers)
    }

    /// Runs `job` on a hashing thread; `None` if the pool has stopped or the job panicked.
    /// `job` may run twice (see [`Slot`]), so it must be free of side effects.
    pub(crate) async fn run<T: Send + 'static>(&self, job: impl Fn() -> T + Send + Sync + 'static) -> Option<T> {
        let (sender, mut answer) = tokio::sync::oneshot::channel();
        let reply = Reply { answered: AtomicBool::new(false), sender: Mutex::new(Some(sender)) };
        let job: Job = Box::new(move || {
            if reply.unwanted() {
                return false;
            }
            // A panicking job loses its answer (the caller sees an internal error), not the
            // thread: the pool keeps its size.
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&job)).ok();
            reply.deliver(answer)
        });
        let slot = Arc::new(Slot { claimed: AtomicBool::new(false), job });
        self.idle.send(slot.clone()).ok()?;
        if !self.starving.load(Ordering::Acquire) {
            tokio::select! {
                done = &mut answer => return done.ok(),
                () = tokio::time::sleep(self.rescue_after) => {}
            }
            // Not answered yet: still queued, or started by an idle worker the cores starve.
            self.starving.store(true, Ordering::Release);
        }
        self.rescue.send(slot).ok()?;
        answer.await.ok()
    }
}

/// Jobs a pool of `workers` idle-priority workers admits at once: one more than they are, so
/// that when they are starved a rescue worker finds a job. Each rescue worker may compute a
/// job that a starved idle worker holds too, but no more hashes hold memory at once than
/// this (the arena budget).
fn admitted(workers: usize) -> usize {
    workers + 1
}

/// Takes slots from a queue its workers share until the pool is dropped. A job already
/// waiting runs at once, in the memory the last hash left (`hash_memory.rs`); before a worker
/// waits for one it runs `before_waiting` (which wipes that memory and makes it spare), and
/// after waiting `MEMORY_IDLE` it frees the spare memory if no other thread used it meanwhile.
fn serve(queue: &Mutex<mpsc::Receiver<Arc<Slot>>>, before_waiting: fn(), each: impl Fn(Arc<Slot>)) {
    loop {
        // Only tried: while another worker holds the queue, it waits there, so it is empty.
        let ready = match queue.try_lock() {
            Ok(receiver) => receiver.try_recv(),
            Err(_) => Err(mpsc::TryRecvError::Empty),
        };
        let slot = match ready {
            Ok(slot) => slot,
            Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => {
                before_waiting();
                // Waiting for the queue counts: the other worker may hold it, waiting too.
                let since = Instant::now();
                let receiver = queue.lock().unwrap_or_else(PoisonError::into_inner);
                match receiver.recv_timeout(MEMORY_IDLE.saturating_sub(since.elapsed())) {
                    Ok(slot) => slot,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        drop(receiver);
                        free_idle_memory(MEMORY_IDLE);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        };
        each(slot);
    }
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().name(name).spawn(body).expect("start a password hashing thread");
}

#[cfg(target_os = "linux")]
fn idle_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    // A rest between slices is short (`hash_crowding.rs`); the default 50 µs of timer slack
    // would double it.
    if let Err(e) = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1_000)) {
        tracing::debug!(error = %e, "password hashing thread keeps the default timer slack");
    }
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

    fn current_thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn runs_jobs_on_idle_priority_threads() {
        let pool = HashPool::new(2);
        assert_eq!(pool.capacity(), 3);
        let name = pool.run(current_thread_name).await.unwrap();
        assert!(name.starts_with("warden-hash-") && !name.starts_with(RESCUE_THREAD), "{name}");
        #[cfg(target_os = "linux")]
        {
            use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
            let policy = pool.run(thread_priority::thread_schedule_policy).await.unwrap().unwrap();
            assert_eq!(policy, ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle));
        }
        let sum: u64 = pool.run(|| (1..=10u64).sum()).await.unwrap();
        assert_eq!(sum, 55);
    }

    /// Holds the idle workers that run a job built with [`Gate::hold`] (as busy cores starve
    /// them) until released; the rescue worker passes straight through.
    #[derive(Clone, Default)]
    struct Gate(Arc<AtomicBool>);

    impl Gate {
        fn hold<T, F>(&self, then: F) -> impl Fn() -> T + Send + Sync + use<T, F>
        where
            F: Fn() -> T + Send + Sync,
        {
            let open = self.0.clone();
            move || {
                while !current_thread_name().starts_with(RESCUE_THREAD) && !open.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(2));
                }
                then()
            }
        }

        fn release(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    const PATIENCE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_job_left_waiting_is_rescued_at_low_normal_priority() {
        let pool = Arc::new(HashPool::with_rescue_after(1, Duration::from_millis(200)));
        let gate = Gate::default();
        // Occupy the only idle-priority worker with a job whose caller then leaves.
        let busy = tokio::spawn({
            let (pool, held) = (pool.clone(), gate.hold(|| ()));
            async move { pool.run(held).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        busy.abort();
        let started = Instant::now();
        let nice = || rustix::process::getpriority_process(Some(rustix::thread::gettid()));
        let (name, nice) =
            tokio::time::timeout(PATIENCE, pool.run(move || (current_thread_name(), nice()))).await.unwrap().unwrap();
        assert!(name.starts_with(RESCUE_THREAD), "{name}");
        assert!(started.elapsed() >= Duration::from_millis(200), "rescued before it waited");
        #[cfg(target_os = "linux")]
        assert!(nice.unwrap() >= RESCUE_NICE);
        gate.release();
    }

    #[tokio::test]
    async fn a_job_started_by_a_starved_idle_worker_is_computed_by_the_rescue_worker() {
        let pool = HashPool::with_rescue_after(1, Duration::from_millis(200));
        let gate = Gate::default();
        let started = Instant::now();
        let name = tokio::time::timeout(PATIENCE, pool.run(gate.hold(current_thread_name))).await.unwrap().unwrap();
        assert!(name.starts_with(RESCUE_THREAD), "{name}");
        assert!(started.elapsed() >= Duration::from_millis(200), "rescued before it waited");
        // The idle worker finishes its copy later; its answer is dropped and the pool goes on.
        gate.release();
        assert_eq!(tokio::time::timeout(PATIENCE, pool.run(|| 3)).await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn once_starving_new_jobs_go_to_the_rescue_worker_without_waiting() {
        // A long wait before rescue, so "without waiting" holds on any machine.
        let rescue_after = Duration::from_secs(2);
        let pool = HashPool::with_rescue_after(1, rescue_after);
        let gate = Gate::default();
        let first = tokio::time::timeout(PATIENCE, pool.run(gate.hold(current_thread_name))).await.unwrap();
        assert!(first.unwrap().starts_with(RESCUE_THREAD));
        let started = Instant::now();
        let second = tokio::time::timeout(PATIENCE, pool.run(current_thread_name)).await.unwrap();
        assert!(second.unwrap().starts_with(RESCUE_THREAD));
        assert!(started.elapsed() < rescue_after, "the second job waited out its own rescue delay");
        // The idle worker finishes its copy of the first job: the cores have room again, and
        // the next job goes to the idle worker alone.
        gate.release();
        let waited = Instant::now();
        while pool.starving.load(Ordering::Acquire) {
            assert!(waited.elapsed() < PATIENCE, "the idle worker never finished its job");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let third = tokio::time::timeout(PATIENCE, pool.run(current_thread_name)).await.unwrap();
        assert_eq!(third.as_deref(), Some("warden-hash-0"));
    }

    /// Jobs inside their memory now, and the most there were at once (the test below).
    static IN_MEMORY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static MOST_IN_MEMORY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[tokio::test]
    async fn hashes_that_hold_memory_at_once_are_no_more_than_the_jobs_admitted() {
        let pool = Arc::new(HashPool::with_rescue_after(2, Duration::from_millis(50)));
        // Each job holds its thread's memory for 300 ms. Both idle workers start one and
        // outlast the rescue delay, so the rescue workers compute the same two jobs as well:
        // four threads want memory at once, and the pool admits three jobs.
        let job = || {
            crate::hash_memory::with_thread_memory(|_| {
                let now = IN_MEMORY.fetch_add(1, Ordering::AcqRel) + 1;
                MOST_IN_MEMORY.fetch_max(now, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(300));
                IN_MEMORY.fetch_sub(1, Ordering::AcqRel);
            })
        };
        let jobs: Vec<_> = (0..pool.capacity())
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { tokio::time::timeout(PATIENCE, pool.run(job)).await })
            })
            .collect();
        for done in jobs {
            assert_eq!(done.await.unwrap().expect("answered in time"), Some(()));
        }
        assert!(MOST_IN_MEMORY.load(Ordering::Acquire) <= pool.capacity(), "more arenas than jobs admitted");
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_is_skipped() {
        let pool = Arc::new(HashPool::new(1));
        let gate = Gate::default();
        // Occupy the only idle worker, then queue a job and drop its caller before it starts.
        let busy = tokio::spawn({
            let (pool, held) = (pool.clone(), gate.hold(|| true));
            async move { pool.run(held).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let abandoned = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || flag.store(true, Ordering::SeqCst)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        abandoned.abort();
        let _ = abandoned.await;
        gate.release();
        assert_eq!(busy.await.unwrap(), Some(true));
        // A job queued after the abandoned one runs, so the abandoned one was taken and skipped.
        assert_eq!(pool.run(|| 1).await, Some(1));
        assert!(!ran.load(Ordering::SeqCst), "the abandoned job ran");
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_shrink_the_pool() {
        let pool = HashPool::new(1);
        assert!(pool.run(|| -> u8 { panic!("argon2 failed") }).await.is_none());
        assert_eq!(pool.run(|| 7).await, Some(7));
    }

    /// Writes into the first 64 blocks of this thread's Argon2 memory after reading whether
    /// they were all zero.
    fn dirty_thread_memory() -> bool {
        use crate::hash_memory::tests::{is_zero, write};
        crate::hash_memory::with_thread_memory(|memory| {
            let arena = memory.arena(64).expect("an arena");
            let zero = is_zero(arena);
            write(arena);
            zero
        })
    }

    /// Times the worker below went to wait for work.
    static WAITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn wipe_and_count() {
        release_thread_memory();
        WAITS.fetch_add(1, Ordering::SeqCst);
    }

    fn until_waits(n: usize) {
        let started = Instant::now();
        while WAITS.load(Ordering::SeqCst) < n {
            assert!(started.elapsed() < PATIENCE, "the worker never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_worker_wipes_its_memory_before_it_waits_not_between_queued_jobs() {
        let (jobs, queue) = mpsc::channel::<Arc<Slot>>();
        let worker = std::thread::spawn(move || {
            serve(&Mutex::new(queue), wipe_and_count, |slot| {
                slot.run_idle();
            })
        });
        let (answer, answers) = mpsc::channel::<bool>();
        // A job that reports whether it found the memory wiped, once `gate` (if any) opens.
        let slot = |gate: Option<mpsc::Receiver<()>>| {
            let (answer, gate) = (answer.clone(), Mutex::new(gate));
            let job: Job = Box::new(move || {
                if let Some(gate) = &*gate.lock().unwrap() {
                    gate.recv().unwrap();
                }
                answer.send(dirty_thread_memory()).unwrap();
                true
            });
            Arc::new(Slot { claimed: AtomicBool::new(false), job })
        };
        until_waits(1);
        jobs.send(slot(None)).unwrap();
        assert!(answers.recv().unwrap(), "a fresh arena is zero");
        until_waits(2);
        jobs.send(slot(None)).unwrap();
        assert!(answers.recv().unwrap(), "wiped before the worker waited");
        until_waits(3);
        // The second job is queued while the first runs: it gets the memory as the first left it.
        let (open, gate) = mpsc::channel();
        jobs.send(slot(Some(gate))).unwrap();
        jobs.send(slot(None)).unwrap();
        open.send(()).unwrap();
        assert!(answers.recv().unwrap());
        assert!(!answers.recv().unwrap(), "not wiped between queued jobs");
        until_waits(4);
        drop(jobs);
        worker.join().unwrap();
    }
}
