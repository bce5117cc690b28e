//! Password hashing: Argon2id with OWASP parameters (computed by `argon.rs`), run on dedicated
//! idle-priority threads (`hash_pool.rs`) behind a bounded queue, so a login flood waits here
//! instead of starving the async runtime and every other route.
use crate::argon;
use crate::hash_memory::{HashMemory, with_thread_memory};
use crate::hash_pool::{self, HashPool};
use argon2::Params;
use argon2::password_hash::phc::PasswordHash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Semaphore;
use warden_common::secret::Secret;
use warden_common::{Error, ErrorCode, Result};

/// OWASP minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;
/// Longer input is refused before hashing, so it cannot be used to burn CPU.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The engine configured with Warden's parameters (the bench's argon2 reference uses it too).
pub fn engine() -> argon2_rust::Argon2 {
    argon::current(MEMORY_KIB, ITERATIONS, PARALLELISM)
}

/// Warden's computation of a hash without its pool: argon2-rust's steps in one arena kept
/// from hash to hash and wiped when dropped, as a hashing thread keeps it while hashes queue
/// (`hash_memory.rs`). The benchmark measures it as an argon2 ceiling beside the crate's own
/// `Hasher`, which wipes its arena after every hash and is slower for it.
pub struct KeptArenaHasher {
    argon: argon2_rust::Argon2,
    memory: HashMemory,
}

impl KeptArenaHasher {
    pub fn new() -> Self {
        KeptArenaHasher { argon: engine(), memory: HashMemory::new() }
    }

    /// Writes the tag of `password` and `salt` (at least 8 bytes) into `out` (32 bytes);
    /// false if Argon2 refuses the inputs.
    pub fn hash_into(&mut self, password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
        crate::argon_fill::hash_into(&mut self.memory, &self.argon, password, salt, out, &mut || {})
    }
}

impl Default for KeptArenaHasher {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon: argon2_rust::Argon2,
    permits: Semaphore,
    /// Verified against when the user does not exist, so that costs the same.
    dummy_hash: String,
    workers: usize,
    /// Hashes waiting for a permit.
    waiting: AtomicUsize,
    pool: HashPool,
}

/// Hashes allowed to wait per worker before new ones are refused.
const QUEUE_PER_WORKER: usize = 64;

/// Counts a waiting hash for as long as it waits, even if the request is dropped meanwhile.
struct Waiting<'a> {
    counter: &'a AtomicUsize,
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let ahead = counter.fetch_add(1, Ordering::SeqCst);
        metrics::gauge!("warden_password_hash_queue_depth").increment(1.0);
        Waiting { counter, ahead }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("warden_password_hash_queue_depth").decrement(1.0);
    }
}

/// Outcome of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash uses weaker parameters than today's: rehash on success.
    pub needs_rehash: bool,
}

impl PasswordHasher {
    pub fn new(workers: usize) -> Self {
        let argon = engine();
        let dummy_hash = argon::hash_in(&mut HashMemory::new(), &argon, b"warden-dummy-password", &mut || {})
            .expect("hash the dummy password");
        let workers = workers.max(1);
        let waiting = AtomicUsize::new(0);
        let pool = HashPool::new(workers);
        // One more than the idle-priority workers, so a rescue worker finds a job that they
        // left waiting (see `hash_pool.rs`).
        let permits = Semaphore::new(pool.capacity());
        let inner = Arc::new(Inner { argon, permits, dummy_hash, workers, waiting, pool });
        PasswordHasher { inner }
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &Secret) -> Result<String> {
        check_length(password)?;
        let password = password.clone();
        self.run(move |inner| {
            with_thread_memory(|memory| {
                argon::hash_in(memory, &inner.argon, password.expose().as_bytes(), &mut hash_pool::between_slices)
            })
        })
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("argon2 could not hash the password")))
    }

    /// Verifies against `stored`, or against the dummy hash when there is no user.
    pub async fn verify(&self, password: &Secret, stored: Option<String>) -> Result<Verified> {
        let too_long = password.expose().len() > MAX_PASSWORD_BYTES;
        let user_exists = stored.is_some();
        let password = password.clone();
        self.run(move |inner| {
            let phc = stored.as_deref().unwrap_or(&inner.dummy_hash);
            let Ok(parsed) = PasswordHash::new(phc) else {
                return Verified { matches: false, needs_rehash: false };
            };
            // An overlong password still costs one verify, so its answer is not faster.
            let input: &[u8] = if too_long { b"" } else { password.expose().as_bytes() };
            let matches = inner.verify_in_thread_memory(input, &parsed) && user_exists && !too_long;
            Verified { matches, needs_rehash: matches && weaker_than_current(&parsed) }
        })
        .await
    }

    /// Runs `job` on the hashing pool, which may run it twice (see `hash_pool.rs`).
    async fn run<T: Send + 'static>(&self, job: impl Fn(&Inner) -> T + Send + Sync + 'static) -> Result<T> {
        // A flood of logins waits here, bounded: past the queue limit the answer is a fast
        // 503 with Retry-After instead of an ever longer wait.
        let waiting = Waiting::enter(&self.inner.waiting);
        let permit = if waiting.ahead >= self.inner.workers * QUEUE_PER_WORKER {
            None
        } else {
            self.inner.permits.acquire().await.ok()
        };
        drop(waiting);
        let Some(_permit) = permit else {
            let mut e = Error::new(ErrorCode::Unavailable, "too many logins in progress; retry shortly");
            e.retry_after = Some(1);
            return Err(e);
        };
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        self.inner
            .pool
            .run(move || span.in_scope(|| job(&inner)))
            .await
            .ok_or_else(|| Error::internal(anyhow::anyhow!("password hashing thread stopped")))
    }
}

impl Inner {
    /// Verifies like `Argon2::verify_password`, in this hashing thread's memory; a
    /// constant-time comparison decides.
    fn verify_in_thread_memory(&self, password: &[u8], hash: &PasswordHash) -> bool {
        with_thread_memory(|memory| argon::verify_in(memory, password, hash, &mut hash_pool::between_slices))
    }
}

pub fn check_length(password: &Secret) -> Result<()> {
    if password.expose().len() > MAX_PASSWORD_BYTES {
        return Err(Error::validation(format!("password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

fn weaker_than_current(hash: &PasswordHash) -> bool {
    let Ok(params) = Params::try_from(hash) else { return true };
    hash.algorithm.as_str() != "argon2id"
        || params.m_cost() < MEMORY_KIB
        || params.t_cost() < ITERATIONS
        || params.p_cost() < PARALLELISM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let hasher = PasswordHasher::new(2);
        let long = Secret::new("x".repeat(200));
        let hash = hasher.hash(&long).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify(&long, Some(hash.clone())).await.unwrap().matches);
        // No truncation: a prefix of a long password does not match.
        let prefix = Secret::new("x".repeat(199));
        assert!(!hasher.verify(&prefix, Some(hash.clone())).await.unwrap().matches);
        // Unknown user never matches, even with the dummy password.
        let dummy = Secret::new("warden-dummy-password");
        assert!(!hasher.verify(&dummy, None).await.unwrap().matches);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_past_the_queue_is_refused_fast() {
        let hasher = PasswordHasher::new(1);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..(QUEUE_PER_WORKER + 20) {
            let hasher = hasher.clone();
            tasks.spawn(async move { hasher.verify(&Secret::new("guess-password"), None).await });
        }
        let (mut refused, mut verified) = (0, 0);
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(_) => verified += 1,
                Err(e) => {
                    assert_eq!(e.code, warden_common::ErrorCode::Unavailable);
                    assert_eq!(e.retry_after, Some(1));
                    refused += 1;
                }
            }
        }
        assert!(refused > 0 && verified > 0, "refused {refused}, verified {verified}");
        // Once drained, new work is accepted again.
        hasher.verify(&Secret::new("guess-password"), None).await.unwrap();
    }

    #[tokio::test]
    async fn weaker_hash_needs_rehash_and_oversized_is_refused() {
        let hasher = PasswordHasher::new(1);
        use argon2::{Algorithm, Argon2, PasswordHasher as _, Version};
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap());
        let stored = weak.hash_password(b"correct horse battery").unwrap().to_string();
        let v = hasher.verify(&Secret::new("correct horse battery"), Some(stored)).await.unwrap();
        assert_eq!(v, Verified { matches: true, needs_rehash: true });
        let huge = Secret::new("y".repeat(MAX_PASSWORD_BYTES + 1));
        assert_eq!(hasher.hash(&huge).await.unwrap_err().code, warden_common::ErrorCode::ValidationError);
    }
}
