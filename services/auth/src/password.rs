//! Password hashing: Argon2id with OWASP parameters, run on the blocking pool behind a
//! semaphore so a login flood queues here instead of starving the async runtime.
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;
use warden_common::secret::Secret;
use warden_common::{Error, Result};

/// OWASP minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;
/// Longer input is refused before hashing, so it cannot be used to burn CPU.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon: Argon2<'static>,
    permits: Semaphore,
    /// Verified against when the user does not exist, so that costs the same.
    dummy_hash: String,
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
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).expect("valid argon2 parameters");
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon.hash_password(b"warden-dummy-password").expect("hash the dummy password").to_string();
        PasswordHasher { inner: Arc::new(Inner { argon, permits: Semaphore::new(workers.max(1)), dummy_hash }) }
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &Secret) -> Result<String> {
        check_length(password)?;
        let password = password.clone();
        self.run(move |inner| inner.argon.hash_password(password.expose().as_bytes()).map(|h| h.to_string()))
            .await?
            .map_err(Error::internal)
    }

    /// Verifies against `stored`, or against the dummy hash when there is no user.
    pub async fn verify(&self, password: &Secret, stored: Option<String>) -> Result<Verified> {
        let too_long = password.expose().len() > MAX_PASSWORD_BYTES;
        let user_exists = stored.is_some();
        let password = password.clone();
        self.run(move |inner| {
            let phc = stored.unwrap_or_else(|| inner.dummy_hash.clone());
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Verified { matches: false, needs_rehash: false };
            };
            // An overlong password still costs one verify, so its answer is not faster.
            let input: &[u8] = if too_long { b"" } else { password.expose().as_bytes() };
            let matches = inner.argon.verify_password(input, &parsed).is_ok() && user_exists && !too_long;
            Verified { matches, needs_rehash: matches && weaker_than_current(&parsed) }
        })
        .await
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce(&Inner) -> T + Send + 'static) -> Result<T> {
        let _permit = self.inner.permits.acquire().await.map_err(Error::internal)?;
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| job(&inner))).await.map_err(Error::internal)
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

    #[tokio::test]
    async fn weaker_hash_needs_rehash_and_oversized_is_refused() {
        let hasher = PasswordHasher::new(1);
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap());
        let stored = weak.hash_password(b"correct horse battery").unwrap().to_string();
        let v = hasher.verify(&Secret::new("correct horse battery"), Some(stored)).await.unwrap();
        assert_eq!(v, Verified { matches: true, needs_rehash: true });
        let huge = Secret::new("y".repeat(MAX_PASSWORD_BYTES + 1));
        assert_eq!(hasher.hash(&huge).await.unwrap_err().code, warden_common::ErrorCode::ValidationError);
    }
}
