//! When a cached entry of the request path is reloaded: by one caller, shortly before it
//! expires.
//!
//! A hot entry (an API key's row, a session, a user's roles) is read by every request in
//! flight. Had it simply expired, all of them would miss at the same moment and read the same
//! row from the database: 32 reads where one does, and a latency spike once per TTL on every
//! connection. Instead, in the last quarter of its life the first lookup is told to reload it,
//! while the others go on using it until the reload replaces it. An entry is still never used
//! past its TTL, so what the TTL bounds (how long a change made elsewhere can go unseen) is
//! unchanged. The caller told to reload answers from what it read, so a failed read fails its
//! request as a miss would; the entry then stays in use until it expires, after which every
//! lookup misses, as before.
use std::time::{Duration, Instant};

/// When an entry was loaded, and whether a caller has taken on reloading it.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    at: Instant,
    reloading: bool,
}

/// What a lookup may do with an entry (see [`Loaded::age`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Age {
    /// Use it.
    Fresh,
    /// Use it no longer: reload it and put the result back. Said to one caller per entry.
    Reload,
    /// Past its TTL: gone for everyone.
    Expired,
}

impl Loaded {
    /// Loaded just now.
    pub fn now() -> Self {
        Loaded::at(Instant::now())
    }

    /// Loaded at `at` (the start of the read, for a caller that wants the entry's age to
    /// count from before the database answered).
    pub fn at(at: Instant) -> Self {
        Loaded { at, reloading: false }
    }

    /// Classifies the entry for one lookup, given the longest it may be used. The first
    /// lookup in the last quarter of `ttl` is answered [`Age::Reload`] and marks the entry
    /// as being reloaded, so the next ones are answered [`Age::Fresh`] until it expires.
    pub fn age(&mut self, ttl: Duration) -> Age {
        let age = self.at.elapsed();
        if age >= ttl {
            Age::Expired
        } else if age >= ttl - ttl / 4 && !self.reloading {
            self.reloading = true;
            Age::Reload
        } else {
            Age::Fresh
        }
    }

    /// Still within `ttl` (a sweep's question; it claims nothing).
    pub fn is_within(&self, ttl: Duration) -> bool {
        self.at.elapsed() < ttl
    }

    /// A caller was told to reload this entry and has not replaced it yet.
    pub fn is_reloading(&self) -> bool {
        self.reloading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lookup_reloads_in_the_last_quarter_and_none_after_the_ttl() {
        let ttl = Duration::from_secs(4);
        let mut fresh = Loaded::now();
        assert_eq!(fresh.age(ttl), Age::Fresh);
        assert!(!fresh.is_reloading());

        let mut ageing = Loaded::at(Instant::now() - Duration::from_millis(3_100));
        assert_eq!(ageing.age(ttl), Age::Reload);
        assert!(ageing.is_reloading());
        assert_eq!(ageing.age(ttl), Age::Fresh, "the others keep using it while one reloads");
        assert_eq!(ageing.age(ttl), Age::Fresh);

        let mut expired = Loaded::at(Instant::now() - Duration::from_secs(4));
        assert_eq!(expired.age(ttl), Age::Expired);
        assert!(!expired.is_within(ttl));
        assert!(ageing.is_within(ttl));
    }
}
