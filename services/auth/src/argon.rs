//! The Argon2 engine behind `password.rs`: `argon2-rust` computes (a slice at a time, see
//! `argon_fill.rs`), RustCrypto's `argon2` reads the PHC strings.
//!
//! Why two crates: `argon2-rust` (the engine inside @node-rs/argon2) picks an AVX-512, AVX2 or
//! SSE2 fill at run time and hashes Warden's parameters 2.4 times as fast as RustCrypto's
//! `argon2` on this project's machines (BENCHMARKS.md, session 7), and logins are capped by
//! the hash. RustCrypto's PHC parser keeps deciding what a stored hash says (algorithm,
//! version, parameters, salt), as it did for every hash already stored; the tests check that
//! each crate verifies the other's hashes.
use crate::argon_fill;
use crate::hash_memory::HashMemory;
use argon2::password_hash::phc::PasswordHash;
use argon2_rust::__internal::encode_string_alloc;
use argon2_rust::params::{Memory, TagLen};
use argon2_rust::{Algorithm, Argon2, Params, RANDOM_SALT_LEN, Version};

/// Warden's parameters (OWASP's Argon2id minimum) with a 32-byte tag.
pub(crate) fn current(memory_kib: u32, iterations: u32, parallelism: u32) -> Argon2 {
    let params = Params::builder()
        .memory(Memory::kib(memory_kib as u64))
        .passes(iterations)
        .lanes(parallelism)
        .build()
        .expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// What recomputing `hash` takes: its algorithm, version and parameters, and a tag as long
/// as the stored one. None for anything the engine cannot reproduce, which never matches.
pub(crate) fn of_stored(hash: &PasswordHash) -> Option<Argon2> {
    let params = argon2::Params::try_from(hash).ok()?;
    let algorithm = match argon2::Algorithm::try_from(hash.algorithm.as_str()).ok()? {
        argon2::Algorithm::Argon2d => Algorithm::Argon2d,
        argon2::Algorithm::Argon2i => Algorithm::Argon2i,
        argon2::Algorithm::Argon2id => Algorithm::Argon2id,
    };
    // Without `v=`, 0x13, as RustCrypto's verifier reads it (and so every stored hash was).
    let version = Version::from_u32(hash.version.unwrap_or(0x13))?;
    let tag_len = hash.hash.as_ref()?.len();
    let params = Params::builder()
        .memory(Memory::kib(params.m_cost() as u64))
        .passes(params.t_cost())
        .lanes(params.p_cost())
        .tag_len(TagLen::bytes(tag_len as u64))
        .build()
        .ok()?;
    Some(Argon2::new(algorithm, version, params))
}

/// Recomputes `hash`'s tag for `password` in an arena from `memory` and compares in
/// constant time; `between_slices` runs between the computation's slices.
pub(crate) fn verify_in(
    memory: &mut HashMemory,
    password: &[u8],
    hash: &PasswordHash,
    between_slices: &mut dyn FnMut(),
) -> bool {
    let (Some(salt), Some(expected), Some(argon)) = (&hash.salt, &hash.hash, of_stored(hash)) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let computed = argon_fill::hash_into(memory, &argon, password, salt.as_ref(), &mut out, between_slices);
    computed && bool::from(subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_bytes()))
}

/// Hashes `password` with `argon` and a fresh random salt into a PHC string, in an arena from
/// `memory`; `between_slices` runs between the computation's slices.
pub(crate) fn hash_in(
    memory: &mut HashMemory,
    argon: &Argon2,
    password: &[u8],
    between_slices: &mut dyn FnMut(),
) -> Option<String> {
    let salt = warden_common::secret::random_bytes::<RANDOM_SALT_LEN>();
    let mut tag = vec![0u8; argon.params().tag_len_bytes()];
    if !argon_fill::hash_into(memory, argon, password, &salt, &mut tag, between_slices) {
        return None;
    }
    encode_string_alloc(argon.algorithm(), argon.version(), argon.params(), &salt, &tag).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    fn small(algorithm: argon2::Algorithm, version: argon2::Version) -> argon2::Argon2<'static> {
        argon2::Argon2::new(algorithm, version, argon2::Params::new(64, 1, 2, Some(24)).unwrap())
    }

    #[test]
    fn verifies_what_rustcrypto_hashed_in_every_variant() {
        let mut memory = HashMemory::new();
        for algorithm in [argon2::Algorithm::Argon2d, argon2::Algorithm::Argon2i, argon2::Algorithm::Argon2id] {
            for version in [argon2::Version::V0x10, argon2::Version::V0x13] {
                let phc = small(algorithm, version).hash_password(b"correct horse").unwrap().to_string();
                let parsed = PasswordHash::new(&phc).unwrap();
                assert!(verify_in(&mut memory, b"correct horse", &parsed, &mut || {}), "{phc}");
                assert!(!verify_in(&mut memory, b"correct horsf", &parsed, &mut || {}), "{phc}");
            }
        }
    }

    #[test]
    fn rustcrypto_verifies_what_the_engine_hashed() {
        let mut memory = HashMemory::new();
        let phc = hash_in(&mut memory, &current(256, 2, 1), b"battery staple", &mut || {}).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=256,t=2,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        let rustcrypto = argon2::Argon2::default();
        assert!(rustcrypto.verify_password(b"battery staple", &parsed).is_ok());
        assert!(rustcrypto.verify_password(b"battery stapler", &parsed).is_err());
        assert!(verify_in(&mut memory, b"battery staple", &parsed, &mut || {}));
        // A fresh salt each time.
        assert_ne!(phc, hash_in(&mut memory, &current(256, 2, 1), b"battery staple", &mut || {}).unwrap());
    }

    #[test]
    fn a_hash_it_cannot_reproduce_never_matches() {
        let mut memory = HashMemory::new();
        // Parseable, but a 2-byte tag is below Argon2's minimum of 4.
        let phc = "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$AAA";
        if let Ok(parsed) = PasswordHash::new(phc) {
            assert!(!verify_in(&mut memory, b"", &parsed, &mut || {}));
        }
        // No salt at all.
        let parsed = PasswordHash::new("$argon2id$v=19$m=64,t=1,p=1").unwrap();
        assert!(!verify_in(&mut memory, b"", &parsed, &mut || {}));
    }
}
