//! The token service's public keys as a remote verifier holds them, so that split-mode
//! callers verify tokens without a round trip. The JWKS is fetched at first use, again in
//! the background once older than [`RELOAD_INTERVAL`] (retired keys leave it), and when a
//! token names a `kid` we do not know (a rotation), at most once per
//! [`UNKNOWN_KID_RELOAD_GAP`]. Without a usable key set verification fails closed.
use crate::api::Jwk;
use crate::keyset::KeySet;
use crate::verifier::{KeySource, RELOAD_INTERVAL, UNKNOWN_KID_RELOAD_GAP};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::Mutex;
use warden_common::grpc::PeerChannel;
use warden_common::{Error, Result};
use warden_proto::token::v1 as pb;
use warden_proto::token::v1::token_service_client::TokenServiceClient;

#[derive(Clone)]
pub(crate) struct JwksKeys(Arc<Inner>);

struct Inner {
    client: TokenServiceClient<PeerChannel>,
    state: RwLock<State>,
    /// Held for the whole of a fetch, so fetches apply in the order they started and a
    /// caller that waited sees what the fetch before it brought. Inside: when a fetch was
    /// last made for an unknown kid.
    fetching: Mutex<Option<Instant>>,
}

struct State {
    /// Never goes back to `None`: a failed refresh keeps the keys we have.
    keys: Option<Arc<KeySet>>,
    /// When the last fetch started, successful or not, so a down token service is asked
    /// once per interval rather than on every request.
    fetched_at: Instant,
}

impl JwksKeys {
    pub(crate) fn new(client: TokenServiceClient<PeerChannel>) -> Self {
        let state = RwLock::new(State { keys: None, fetched_at: Instant::now() });
        JwksKeys(Arc::new(Inner { client, state, fetching: Mutex::new(None) }))
    }

    /// The published keys as the token service returns them (GetJwks).
    pub(crate) async fn published(&self) -> Result<Vec<Jwk>> {
        let keys = self.0.client.clone().get_jwks(pb::GetJwksRequest {}).await?.into_inner().keys;
        Ok(keys.into_iter().map(Into::into).collect())
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.0.state.read().expect("jwks state lock").keys.clone()
    }

    fn stale(&self) -> bool {
        self.0.state.read().expect("jwks state lock").fetched_at.elapsed() >= RELOAD_INTERVAL
    }

    /// Fetches and installs the key set; any failure is `unavailable` (the caller cannot
    /// verify, which says nothing about the token).
    async fn fetch(&self) -> Result<Arc<KeySet>> {
        self.0.state.write().expect("jwks state lock").fetched_at = Instant::now();
        let jwks = self.published().await.map_err(|e| Error::unavailable("the token service", e))?;
        let keys = KeySet::from_jwks(&jwks);
        if keys.is_empty() {
            // The token service always publishes its current key: this is not a key set.
            return Err(Error::unavailable("the token service", anyhow::anyhow!("JWKS has no Ed25519 key")));
        }
        tracing::debug!(keys = keys.len(), "token service JWKS fetched");
        let keys = Arc::new(keys);
        self.0.state.write().expect("jwks state lock").keys = Some(keys.clone());
        Ok(keys)
    }

    /// Starts a refresh unless one started less than an interval ago; requests keep using
    /// the keys they have meanwhile, so none waits on the token service.
    fn refresh_in_background(&self) {
        {
            let mut state = self.0.state.write().expect("jwks state lock");
            if state.fetched_at.elapsed() < RELOAD_INTERVAL {
                return;
            }
            state.fetched_at = Instant::now();
        }
        let keys = self.clone();
        tokio::spawn(async move {
            let _fetching = keys.0.fetching.lock().await;
            if let Err(e) = keys.fetch().await {
                tracing::warn!(error = %e, "token service JWKS refresh failed; keeping the keys in memory");
            }
        });
    }
}

#[async_trait::async_trait]
impl KeySource for JwksKeys {
    async fn keys(&self) -> Result<Arc<KeySet>> {
        if let Some(keys) = self.current() {
            if self.stale() {
                self.refresh_in_background();
            }
            return Ok(keys);
        }
        let _fetching = self.0.fetching.lock().await;
        match self.current() {
            Some(keys) => Ok(keys),
            None => self.fetch().await,
        }
    }

    async fn keys_for_unknown(&self, kid: &str) -> Result<Arc<KeySet>> {
        let mut last_unknown = self.0.fetching.lock().await;
        let current = self.current();
        if let Some(keys) = current.as_ref().filter(|keys| keys.contains(kid)) {
            return Ok(keys.clone());
        }
        // Measured from the last fetch for an unknown kid only, so a rotation just after
        // the first fetch or a periodic one is still picked up at once.
        if let (Some(keys), Some(at)) = (current, *last_unknown)
            && at.elapsed() < UNKNOWN_KID_RELOAD_GAP
        {
            return Ok(keys);
        }
        *last_unknown = Some(Instant::now());
        self.fetch().await
    }
}
