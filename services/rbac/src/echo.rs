//! Writes wait (briefly) until their own notification comes back through this process's
//! listener. PostgreSQL signals every listener at the same commit, so by then the other
//! replicas have all but certainly heard it too: a request sent to another replica right
//! after a change returns sees the change, as it did before views were cached. This narrows
//! the window, it does not close it (each replica's delivery is independent); correctness
//! never depends on it.
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Longest a write waits for its echo; a slow listener delays writes by at most this much.
const ECHO_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct Echoes {
    /// Payloads of committed or committing changes not heard back yet.
    awaited: Mutex<HashSet<String>>,
    arrived: Notify,
}

impl Echoes {
    fn awaited(&self) -> MutexGuard<'_, HashSet<String>> {
        self.awaited.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A change about to be written, whose notification carries a payload of its own.
    pub(crate) fn expect(self: &Arc<Self>) -> Change {
        let payload = Uuid::new_v4().simple().to_string();
        self.awaited().insert(payload.clone());
        Change { payload, echoes: Some(Arc::clone(self)) }
    }

    /// The listener heard `payload`.
    pub(crate) fn heard(&self, payload: &str) {
        if self.awaited().remove(payload) {
            self.arrived.notify_waiters();
        }
    }

    /// The listener is down: no echo will come, so nobody waits for one.
    pub(crate) fn release_all(&self) {
        self.awaited().clear();
        self.arrived.notify_waiters();
    }
}

/// One change's notification payload; dropping it stops expecting the echo.
pub(crate) struct Change {
    payload: String,
    echoes: Option<Arc<Echoes>>,
}

impl Change {
    /// A change nobody waits for (no listener in this process); its payload is empty.
    pub(crate) fn unawaited() -> Self {
        Change { payload: String::new(), echoes: None }
    }

    pub(crate) fn payload(&self) -> &str {
        &self.payload
    }

    /// Waits until the listener heard this change, at most [`ECHO_TIMEOUT`].
    pub(crate) async fn echoed(self) {
        let Some(echoes) = &self.echoes else { return };
        let heard = async {
            loop {
                // Registered before checking, so an arrival in between is not missed.
                let arrived = echoes.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                if !echoes.awaited().contains(&self.payload) {
                    return;
                }
                arrived.await;
            }
        };
        if tokio::time::timeout(ECHO_TIMEOUT, heard).await.is_err() {
            tracing::debug!("rbac change not heard back in time");
        }
    }
}

impl Drop for Change {
    fn drop(&mut self) {
        if let Some(echoes) = &self.echoes {
            echoes.awaited().remove(&self.payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_waits_for_its_own_echo_only() {
        let echoes = Arc::new(Echoes::default());
        let change = echoes.expect();
        let payload = change.payload().to_owned();
        let waiting = tokio::spawn(change.echoed());
        echoes.heard("someone else's");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        echoes.heard(&payload);
        tokio::time::timeout(Duration::from_millis(500), waiting).await.expect("released").expect("no panic");
        assert!(echoes.awaited().is_empty());
    }

    #[tokio::test]
    async fn a_lost_listener_releases_every_waiter() {
        let echoes = Arc::new(Echoes::default());
        let waiting = tokio::spawn(echoes.expect().echoed());
        tokio::time::sleep(Duration::from_millis(20)).await;
        echoes.release_all();
        tokio::time::timeout(Duration::from_millis(500), waiting).await.expect("released").expect("no panic");
    }
}
