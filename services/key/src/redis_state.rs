//! State shared by every replica through Redis: the per-key rate limit, revocation markers,
//! and the revocation channel that lets each replica drop its cached row at once.
use crate::cache::KeyCache;
use crate::limiter::{self, Verdict};
use fred::prelude::*;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use uuid::Uuid;
use warden_common::Error;

pub(crate) const REVOCATIONS_CHANNEL: &str = "warden:revocations:keys";
/// How long a revocation marker lives. It only has to outlive every cached copy of the row
/// (cache TTL: seconds); after that the database answers.
const MARKER_TTL_SECS: i64 = 600;

pub(crate) struct RedisState {
    client: Client,
}

impl RedisState {
    pub(crate) fn new(client: Client) -> Self {
        RedisState { client }
    }

    /// Checks the revocation marker and takes one unit of the key's limit, atomically.
    pub(crate) async fn check(&self, id: Uuid, limit: u32, now_us: i64) -> Result<Verdict, Error> {
        let keys = vec![limiter::revoked_key(id), limiter::rate_key(id)];
        let reply: Vec<i64> = self.client.eval(limiter::SCRIPT, keys, limiter::script_args(limit, now_us)).await?;
        limiter::script_verdict(limit, &reply)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("unexpected rate-limit script reply {reply:?}")))
    }

    /// Marks the key revoked for every replica, then tells them to drop their cached row.
    pub(crate) async fn announce_revocation(&self, id: Uuid) -> Result<(), Error> {
        let _: () =
            self.client.set(limiter::revoked_key(id), "1", Some(Expiration::EX(MARKER_TTL_SECS)), None, false).await?;
        let _: i64 = self.client.publish(REVOCATIONS_CHANNEL, id.to_string()).await?;
        Ok(())
    }

    pub(crate) async fn ping(&self) -> bool {
        warden_common::redis::ping(&self.client).await
    }

    /// Subscribes a dedicated connection to the revocation channel and spawns the task that
    /// applies messages to `cache` until `shutdown` is dropped.
    pub(crate) async fn listen(
        &self,
        cache: Arc<KeyCache>,
        mut shutdown: watch::Receiver<()>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let subscriber = self.client.clone_new();
        subscriber.init().await?;
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        subscriber.subscribe(REVOCATIONS_CHANNEL).await?;
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    message = messages.recv() => match message {
                        Ok(message) => match message.value.as_string().and_then(|s| Uuid::parse_str(&s).ok()) {
                            Some(id) => cache.invalidate(id),
                            None => cache.clear(),
                        },
                        Err(RecvError::Lagged(_)) => cache.clear(),
                        Err(RecvError::Closed) => break,
                    },
                    reconnect = reconnects.recv() => {
                        if matches!(reconnect, Err(RecvError::Closed)) {
                            break;
                        }
                        // Messages sent while we were away are lost: start from the database.
                        cache.clear();
                        if let Err(e) = subscriber.subscribe(REVOCATIONS_CHANNEL).await {
                            tracing::warn!(error = %e, "resubscribing to api key revocations failed");
                        }
                    }
                }
            }
            let _ = subscriber.quit().await;
        }))
    }
}
