//! A cache of verified tokens (as Envoy's jwt_authn keeps one): signature verification is
//! the dominant cost of a protected request, and the same token is presented many times.
//! Keyed by the SHA-256 of the whole token, so a token differing in any byte misses; an
//! entry is used only until the token's `exp` (plus leeway) and only while its signing key
//! is still in the key set. Session liveness is not cached here: revocation stays immediate.
use crate::api::VerifiedToken;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept at most; beyond it expired entries are dropped, then the oldest half.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub(crate) struct VerifiedCache {
    entries: Mutex<HashMap<[u8; 32], VerifiedToken>>,
}

pub(crate) fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedCache {
    /// The cached result if still usable at `now` (unix seconds, leeway included).
    pub(crate) fn get(
        &self,
        key: &[u8; 32],
        now: i64,
        leeway: i64,
        kid_live: impl Fn(&str) -> bool,
    ) -> Option<VerifiedToken> {
        let mut entries = self.entries.lock().expect("token cache lock");
        let hit = entries.get(key)?;
        if now > hit.expires_at.unix_timestamp() + leeway || !kid_live(&hit.kid) {
            entries.remove(key);
            return None;
        }
        Some(hit.clone())
    }

    pub(crate) fn insert(&self, key: [u8; 32], token: VerifiedToken, now: i64) {
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.len() >= CAPACITY {
            entries.retain(|_, t| t.expires_at.unix_timestamp() > now);
            if entries.len() >= CAPACITY {
                let mut by_expiry: Vec<i64> = entries.values().map(|t| t.expires_at.unix_timestamp()).collect();
                let (_, median, _) = by_expiry.select_nth_unstable(CAPACITY / 2);
                let cutoff = *median;
                entries.retain(|_, t| t.expires_at.unix_timestamp() > cutoff);
            }
        }
        entries.insert(key, token);
    }
}
