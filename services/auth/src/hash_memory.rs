//! A hashing thread's Argon2 memory: a 19 MiB arena, reused by the thread's hashes as they
//! follow each other and wiped before the thread waits for work.
//!
//! Why not wipe after every hash, as argon2-rust's own `Hasher` does: in a login-saturated
//! process the wipe was 4 % of all CPU (perf, BENCHMARKS.md, session 14), and more in cache
//! misses, and a hash that follows at once overwrites every block of a same-sized arena in its
//! first pass anyway (Argon2 writes each block of pass 0 before reading it). So a thread with
//! the next hash already queued hands it the arena as the last hash left it; a thread that runs
//! out of work wipes it before it waits (`hash_pool.rs`). A password's blocks thus outlive its
//! hash only while the next hash of the same thread overwrites them, never while it is idle.
//! An arena of another size, and one freed, is wiped on the way (the crate's `Arena` wipes on
//! drop and on release unless known to be zero; handing out its pointer marks it dirty).
//!
//! A wiped arena goes back to a spare shared by the hashing threads, so logins one at a time
//! use one arena whichever thread computes them; spares unused for 10 s are freed
//! (`hash_pool.rs`).
//!
//! A pool's threads hold at most one arena per job it admits ([`ArenaBudget`]). Without that
//! bound a crowded process held four on 2 cores: two idle-priority workers starved in the
//! middle of a hash, and the two rescue workers computing the same jobs, 108 MiB in all under
//! the mixed load against the target's 100 (BENCHMARKS.md, session 17).
use argon2_rust::__internal::{Arena, Workspace};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arenas larger than Warden's own (a stronger stored hash grew one) are freed once used:
/// a block is 1 KiB.
const KEPT_BLOCKS: usize = crate::password::MEMORY_KIB as usize;

/// Wiped arenas kept for the next hash: one per hashing thread is plenty.
const SPARES_KEPT: usize = 4;

/// How often a thread that waits for its pool's budget looks again.
const BUDGET_STEP: Duration = Duration::from_millis(1);

thread_local! {
    /// This thread's memory while it hashes; None while it waits (the arena is then wiped and
    /// spare).
    static MEMORY: RefCell<Option<HashMemory>> = const { RefCell::new(None) };
    /// The budget of this thread's pool; none outside a pool.
    static BUDGET: RefCell<Option<Arc<ArenaBudget>>> = const { RefCell::new(None) };
}

/// How many arenas the threads of one pool may hold at once. A thread takes its share before
/// it first needs memory and gives it back once its arena is spare again; a thread over the
/// budget waits, holding nothing, so the holders (each hashing, or about to) always finish.
/// Only atomics: a thread that waits must never hold a lock an idle-priority thread wants.
pub(crate) struct ArenaBudget {
    limit: usize,
    held: AtomicUsize,
}

impl ArenaBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(ArenaBudget { limit: limit.max(1), held: AtomicUsize::new(0) })
    }

    fn take(&self) {
        while self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.limit).then_some(n + 1))
            .is_err()
        {
            std::thread::sleep(BUDGET_STEP);
        }
    }

    fn give_back(&self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Makes the calling thread hold its arenas within `budget` (a pool's threads call it first).
pub(crate) fn join_budget(budget: Arc<ArenaBudget>) {
    BUDGET.set(Some(budget));
}

fn with_budget(f: impl FnOnce(&ArenaBudget)) {
    BUDGET.with_borrow(|budget| {
        if let Some(budget) = budget {
            f(budget);
        }
    });
}

/// Wiped arenas (each parked in its workspace) that no thread holds, and when one was last
/// taken or given back. Only ever tried, never waited for: an idle-priority thread that the
/// kernel preempts while holding the lock may not run again for seconds on busy cores.
static SPARES: Mutex<Spares> = Mutex::new(Spares { workspaces: Vec::new(), last_used: None });

struct Spares {
    workspaces: Vec<Workspace>,
    last_used: Option<Instant>,
}

/// Runs `f` with this thread's memory: the arena its last hash left, else a spare one.
pub(crate) fn with_thread_memory<T>(f: impl FnOnce(&mut HashMemory) -> T) -> T {
    MEMORY.with_borrow_mut(|memory| {
        f(memory.get_or_insert_with(|| {
            with_budget(ArenaBudget::take);
            take_spare()
        }))
    })
}

/// Wipes this thread's arena and gives it to the spares (on contention, or past
/// `SPARES_KEPT`, it is freed).
pub(crate) fn release_thread_memory() {
    let Some(mut memory) = MEMORY.with_borrow_mut(Option::take) else { return };
    memory.wipe();
    if let Ok(mut spares) = SPARES.try_lock()
        && spares.workspaces.len() < SPARES_KEPT
        && memory.workspace.capacity() > 0
    {
        spares.workspaces.push(memory.workspace);
        spares.last_used = Some(Instant::now());
    } else {
        drop(memory);
    }
    // Only now: the next thread in takes this arena from the spares instead of a new one.
    with_budget(ArenaBudget::give_back);
}

/// Frees the spare arenas if none was taken or given back for `idle`.
pub(crate) fn free_idle_memory(idle: Duration) {
    if let Ok(mut spares) = SPARES.try_lock()
        && spares.last_used.is_none_or(|at| at.elapsed() >= idle)
    {
        spares.workspaces.clear();
    }
}

fn take_spare() -> HashMemory {
    let spare = SPARES.try_lock().ok().and_then(|mut spares| {
        spares.last_used = Some(Instant::now());
        spares.workspaces.pop()
    });
    HashMemory { workspace: spare.unwrap_or_default(), used: None }
}

pub(crate) struct HashMemory {
    /// Where wiped arenas wait.
    workspace: Workspace,
    /// The arena the last hash used, not yet wiped.
    used: Option<Arena>,
}

impl HashMemory {
    pub(crate) fn new() -> Self {
        HashMemory { workspace: Workspace::new(), used: None }
    }

    /// An arena of exactly `blocks` blocks: the last hash's when it has that size, else a
    /// wiped one. None if it cannot be allocated.
    pub(crate) fn arena(&mut self, blocks: usize) -> Option<&mut Arena> {
        if self.used.as_ref().is_some_and(|arena| arena.len() != blocks) {
            self.wipe();
        }
        if self.used.is_none() {
            self.used = Some(self.workspace.acquire_owned(blocks).ok()?);
        }
        self.used.as_mut()
    }

    /// Wipes the last hash's arena and keeps it for the next one (unless it is larger than
    /// Warden's own).
    pub(crate) fn wipe(&mut self) {
        if let Some(arena) = self.used.take() {
            self.workspace.release(arena);
        }
        if self.workspace.capacity() > KEPT_BLOCKS {
            self.workspace.clear();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use argon2_rust::__internal::Block;

    /// Overwrites every visible block, as a hash would.
    pub(crate) fn write(arena: &mut Arena) {
        arena.as_mut_slice().iter_mut().for_each(|block| *block = Block([u64::MAX; 128]));
    }

    pub(crate) fn is_zero(arena: &Arena) -> bool {
        arena.as_slice().iter().all(|block| *block == Block::ZERO)
    }

    #[test]
    fn a_thread_over_its_pools_budget_waits_until_an_arena_is_given_back() {
        let budget = ArenaBudget::new(1);
        let (held, is_held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let first = budget.clone();
            s.spawn(move || {
                join_budget(first);
                with_thread_memory(|_| ());
                held.send(()).unwrap();
                released.recv().unwrap();
                release_thread_memory();
            });
            is_held.recv().unwrap();
            let second = budget.clone();
            let second = s.spawn(move || {
                join_budget(second);
                let asked = Instant::now();
                // A thread holding memory already needs no more of the budget.
                with_thread_memory(|_| ());
                with_thread_memory(|_| ());
                let waited = asked.elapsed();
                release_thread_memory();
                waited
            });
            std::thread::sleep(Duration::from_millis(50));
            release.send(()).unwrap();
            let waited = second.join().unwrap();
            assert!(waited >= Duration::from_millis(40), "the second thread got memory after {waited:?}");
        });
        assert_eq!(budget.held.load(Ordering::Acquire), 0, "every share was given back");
    }

    #[test]
    fn the_next_hash_of_the_same_size_gets_the_arena_as_it_was_left() {
        let mut memory = HashMemory::new();
        write(memory.arena(64).unwrap());
        let again = memory.arena(64).unwrap();
        assert!(!is_zero(again), "not wiped between hashes that follow each other");
    }

    #[test]
    fn an_arena_is_wiped_before_waiting_and_before_a_hash_of_another_size() {
        let mut memory = HashMemory::new();
        write(memory.arena(64).unwrap());
        memory.wipe();
        assert!(memory.used.is_none());
        assert!(is_zero(memory.arena(64).unwrap()), "wiped before the thread waits");
        write(memory.arena(64).unwrap());
        let smaller = memory.arena(32).unwrap();
        assert_eq!(smaller.len(), 32);
        assert!(is_zero(smaller), "wiped before a hash of another size");
    }

    #[test]
    fn an_arena_larger_than_wardens_is_not_kept() {
        let mut memory = HashMemory::new();
        write(memory.arena(KEPT_BLOCKS + 1).unwrap());
        memory.wipe();
        assert_eq!(memory.workspace.capacity(), 0);
        write(memory.arena(KEPT_BLOCKS).unwrap());
        memory.wipe();
        assert_eq!(memory.workspace.capacity(), KEPT_BLOCKS);
    }
}
