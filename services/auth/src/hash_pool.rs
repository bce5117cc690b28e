//! Dedicated threads for password hashing, at the lowest CPU priority.
//!
//! Argon2 is pure CPU for ~10 ms a call. On tokio's blocking pool it competes as an equal
//! with the runtime threads, so a login flood on 2 cores stretches every other request's
//! latency. Here it runs on its own threads with nice 10: when nothing else wants the CPU
//! (a login-only load) hashing still gets all of it; when protected requests arrive, the
//! scheduler runs them first and logins queue (bounded, see `password.rs`).
//!
//! Why 10 and not 19: niceness weighs against every process in the same CPU cgroup. In a
//! container that is Warden alone, but on a shared host at nice 19 (weight 15 vs 1024) a
//! busy neighbour left logins a few percent of a core, seconds per login; at nice 10
//! (weight 110) they keep about a tenth.
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct HashPool {
    jobs: mpsc::Sender<Job>,
}

/// Below the request threads (nice 0); see the module comment for the value.
const NICE: i32 = 10;

impl HashPool {
    /// Starts `workers` threads; they exit once the pool is dropped and their queue is empty.
    pub(crate) fn new(workers: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("warden-hash-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job, never while hashing.
                        let next = queue.lock().expect("hash queue lock").recv();
                        match next {
                            // A panicking job loses its answer (the caller sees an internal
                            // error), not the thread: the pool keeps its size.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                })
                .expect("start a password hashing thread");
        }
        HashPool { jobs }
    }

    /// Runs `job` on a hashing thread; `None` if the pool has stopped.
    pub(crate) async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The request gave up while this waited (client gone, budget spent): skip the
            // hash rather than spend ~20 ms of CPU on an answer nobody reads.
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(job());
        });
        self.jobs.send(job).ok()?;
        answer.await.ok()
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux a thread id names one thread for setpriority, so only this thread is niced.
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        tracing::debug!(error = %e, "password hashing thread keeps normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_on_low_priority_threads() {
        let pool = HashPool::new(2);
        let name = pool.run(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert!(name.unwrap().starts_with("warden-hash-"));
        #[cfg(target_os = "linux")]
        {
            let nice = pool.run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid()))).await;
            // At least NICE: a process started niced already cannot go back up without privileges.
            assert!(nice.unwrap().unwrap() >= NICE);
        }
        let sum: u64 = pool.run(|| (1..=10u64).sum()).await.unwrap();
        assert_eq!(sum, 55);
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
