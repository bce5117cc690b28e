//! Argon2 computed a slice at a time, with a call between slices: the only `unsafe` code in
//! Warden (the workspace denies it everywhere else, and `.ci/run` checks that this file is the
//! only one allowed it).
//!
//! Why: an idle-priority hashing thread keeps its core from looking idle to the kernel, so a
//! request thread queued behind another on the other core is not pulled over until the next
//! load balancing, a tick later (BENCHMARKS.md, session 8). A hash that gives up its core for a
//! moment between slices, when other work crowds the cores (`hash_crowding.rs`), lets the
//! kernel move that thread at once. In the embedded login flood the protected p99 then rose
//! 1.0-1.9x instead of 2.5-8.8x (six paired runs, BENCHMARKS.md, session 13).
//!
//! argon2-rust computes a whole hash in one call; its `internal-api` feature exposes the steps
//! (initial hash, first blocks, one segment, finalize) that its own `Hasher` runs, and this
//! module runs the same steps in the same order, with `between_slices` after each slice but
//! the last. The tests check every variant against the crate's `Hasher` and RustCrypto.
use crate::hash_memory::HashMemory;
use argon2_rust::__internal::{
    Instance, Position, backend, clear_internal_memory, fill_first_blocks, fill_segment_fn, finalize, initial_hash,
};
use argon2_rust::Argon2;

/// Argon2's synchronisation points per pass: every lane's segment of a slice is complete
/// before any block of the next slice is computed.
const SLICES_PER_PASS: u32 = 4;

/// Computes `argon`'s tag of `password` and `salt` into `out` (as long as `argon`'s tag) in an
/// arena from `memory`, calling `between_slices` between slices. False if `argon` rejects the
/// inputs or the arena cannot be allocated.
pub(crate) fn hash_into(
    memory: &mut HashMemory,
    argon: &Argon2,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    between_slices: &mut dyn FnMut(),
) -> bool {
    let (algorithm, version, params) = (argon.algorithm(), argon.version(), argon.params());
    if params.validate_for(password.len(), salt.len(), 0, 0).is_err() || out.len() != params.tag_len_bytes() {
        return false;
    }
    let (memory_blocks, _, lane_length) = params.memory_layout();
    // `memory` keeps the arena, and wipes it before its thread waits (`hash_memory.rs`).
    let Some(arena) = memory.arena(memory_blocks as usize) else { return false };
    if arena.len() != memory_blocks as usize {
        return false;
    }
    let Ok(mut seed) = initial_hash(algorithm, version, params, password, salt, &[], &[]) else { return false };
    let first = fill_first_blocks(&mut seed, arena.as_mut_slice(), params.lanes(), lane_length);
    clear_internal_memory(&mut seed);
    if first.is_err() {
        return false;
    }
    // SAFETY: `Instance::new` wants memory valid for reads and writes of `memory_len` blocks,
    // 64-byte aligned, outliving the instance, and `memory_len == params.memory_blocks()`.
    // The arena is the crate's `Arena` (initialised, `ARENA_ALIGN`-aligned blocks: its
    // invariant), its length was checked against the layout just above, it is borrowed
    // mutably from `memory` for this whole function, and `instance` does not leave it.
    #[allow(unsafe_code)]
    let instance = unsafe { Instance::new(arena.as_mut_ptr(), arena.len(), algorithm, version, params) };
    let fill = fill_segment_fn(backend());
    let slices = params.passes() * SLICES_PER_PASS;
    for n in 0..slices {
        for lane in 0..params.lanes() {
            let position = Position::new(n / SLICES_PER_PASS, lane, n % SLICES_PER_PASS, 0);
            // SAFETY: `fill` comes from `fill_segment_fn(backend())`, and `backend()` only
            // names a fill this CPU was detected to run. `instance` holds a valid arena (see
            // above). Pass, lane and slice are in range by construction, the slices go in
            // order, and this thread alone touches the arena, as in the crate's own
            // single-threaded fill (`fill_slice_st`).
            #[allow(unsafe_code)]
            unsafe {
                fill(&instance, position)
            };
        }
        if n + 1 < slices {
            between_slices();
        }
    }
    finalize(&instance, out).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2_rust::params::{Memory, TagLen};
    use argon2_rust::{Algorithm, Params, Version};

    fn engine(algorithm: Algorithm, version: Version, kib: u64, passes: u32, lanes: u32, tag: u64) -> Argon2 {
        let params = Params::builder()
            .memory(Memory::kib(kib))
            .passes(passes)
            .lanes(lanes)
            .tag_len(TagLen::bytes(tag))
            .build()
            .unwrap();
        Argon2::new(algorithm, version, params)
    }

    #[test]
    fn computes_the_same_tags_as_the_crates_own_hasher_in_every_variant() {
        let mut memory = HashMemory::new();
        for algorithm in [Algorithm::Argon2d, Algorithm::Argon2i, Algorithm::Argon2id] {
            for version in [Version::V0x10, Version::V0x13] {
                for (kib, passes, lanes) in [(64, 1, 1), (256, 3, 1), (512, 2, 4)] {
                    let argon = engine(algorithm, version, kib, passes, lanes, 32);
                    let mut sliced = [0u8; 32];
                    let mut pauses = 0;
                    let done =
                        hash_into(&mut memory, &argon, b"password", b"somesalt", &mut sliced, &mut || pauses += 1);
                    assert!(done);
                    assert_eq!(pauses, passes * SLICES_PER_PASS - 1);
                    let mut whole = [0u8; 32];
                    argon.hasher().hash_into(b"password", b"somesalt", &mut whole).unwrap();
                    assert_eq!(sliced, whole, "{algorithm:?} {version:?} m={kib} t={passes} p={lanes}");
                }
            }
        }
    }

    #[test]
    fn an_arena_left_dirty_by_the_last_hash_gives_the_same_tags() {
        // Never wiped in between: every hash below reuses the arena as the one before left it.
        let mut memory = HashMemory::new();
        for algorithm in [Algorithm::Argon2d, Algorithm::Argon2i, Algorithm::Argon2id] {
            for version in [Version::V0x10, Version::V0x13] {
                let argon = engine(algorithm, version, 256, 3, 1, 32);
                for password in [b"first password".as_slice(), b"second"] {
                    let mut sliced = [0u8; 32];
                    assert!(hash_into(&mut memory, &argon, password, b"somesalt", &mut sliced, &mut || {}));
                    let mut whole = [0u8; 32];
                    argon.hasher().hash_into(password, b"somesalt", &mut whole).unwrap();
                    assert_eq!(sliced, whole, "{algorithm:?} {version:?}");
                }
            }
        }
    }

    #[test]
    fn matches_rustcrypto_on_warden_parameters() {
        use argon2::password_hash::phc::PasswordHash;
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let rustcrypto = argon2::Argon2::default();
        let phc = rustcrypto.hash_password(b"correct horse").unwrap().to_string();
        let parsed = PasswordHash::new(&phc).unwrap();
        let expected = parsed.hash.unwrap();
        let argon = crate::argon::of_stored(&parsed).unwrap();
        let mut out = vec![0u8; expected.len()];
        assert!(hash_into(
            &mut HashMemory::new(),
            &argon,
            b"correct horse",
            parsed.salt.unwrap().as_ref(),
            &mut out,
            &mut || {}
        ));
        assert_eq!(out, expected.as_bytes());
        assert!(rustcrypto.verify_password(b"correct horse", &parsed).is_ok());
    }

    #[test]
    fn refuses_inputs_argon2_forbids_and_a_wrong_tag_length() {
        let argon = engine(Algorithm::Argon2id, Version::V0x13, 64, 1, 1, 32);
        let mut memory = HashMemory::new();
        // A salt below Argon2's minimum of 8 bytes.
        assert!(!hash_into(&mut memory, &argon, b"pw", b"short", &mut [0u8; 32], &mut || {}));
        // An output buffer that is not the configured tag length.
        assert!(!hash_into(&mut memory, &argon, b"pw", b"somesalt", &mut [0u8; 16], &mut || {}));
    }
}
