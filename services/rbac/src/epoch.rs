//! The RBAC change epoch, shared by every rbac replica through Redis. It lets each replica
//! keep users' views (direct roles and role graph) in memory and still decide every request
//! on the rules in force when that request began, whichever replica made the last change:
//!
//! - A change (role created or deleted, role assigned or removed) is committed to the
//!   database, then the epoch (`warden:rbac:epoch`) is set to a fresh random value, and only
//!   then answered.
//! - A decision reads the epoch first (one GET) and uses a view only if it was loaded under
//!   that very epoch; otherwise it loads the view from the database and files it under the
//!   epoch it read *before* loading. So no view is older than its epoch, and a change answered
//!   before a request began has already moved the epoch that request reads.
//! - Redis unreachable: no view is used or kept; every decision reads the database (slower,
//!   still exact). The key missing (Redis flushed or new): a reader creates a fresh random
//!   epoch if none exists, which no view kept before matches.
//! - A change whose epoch update failed after its commit is answered 503; views also expire
//!   after [`VIEW_MAX_AGE`], which bounds how long a replica that still reaches Redis may miss
//!   such a change.
//! - Concurrent decisions share reads: a decision waits for the next GET *sent after it
//!   asked*, never for one already on its way (that one may have left before a change was
//!   answered). Under load one GET serves every decision that arrived while the previous one
//!   was out, instead of one GET each (rbac CPU per CheckPermissions 28 → 24 µs).
use fred::prelude::*;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use warden_common::{Error, Result};

const KEY: &str = "warden:rbac:epoch";
/// Oldest a view may be, whatever the epoch says (see the module comment).
pub(crate) const VIEW_MAX_AGE: Duration = Duration::from_secs(5);
/// Attempts to publish a change before the change is answered 503.
const ADVANCE_ATTEMPTS: u32 = 3;

pub(crate) struct Epoch {
    client: Client,
    /// Decisions waiting for the next read, started on first use (inside the runtime).
    readers: OnceLock<mpsc::UnboundedSender<oneshot::Sender<Option<i64>>>>,
}

/// Like every key Warden writes, the epoch expires; a reader then starts a new one, which
/// only costs each replica one reload per user.
const TTL: Expiration = Expiration::EX(86_400);

fn fresh() -> i64 {
    // 63 random bits (Redis integers are signed): a new epoch never equals an earlier one.
    (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64
}

impl Epoch {
    pub(crate) fn new(client: Client) -> Self {
        Epoch { client, readers: OnceLock::new() }
    }

    /// The epoch now, read after this call began, or `None` when Redis cannot tell (then no
    /// view may be used).
    pub(crate) async fn current(&self) -> Option<i64> {
        let readers = self.readers.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(read_in_batches(self.client.clone(), rx));
            tx
        });
        let (answer, read) = oneshot::channel();
        readers.send(answer).ok()?;
        read.await.ok().flatten()
    }

    /// Announces a committed change: every view kept anywhere stops being used.
    pub(crate) async fn advance(&self) -> Result<()> {
        let mut last = None;
        for attempt in 0..ADVANCE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            match self.client.set::<(), _, _>(KEY, fresh(), Some(TTL), None, false).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        let e = last.map_or_else(|| anyhow::anyhow!("no attempt made"), anyhow::Error::from);
        tracing::error!(error = %e, "rbac change saved but not announced to the other replicas");
        Err(Error::unavailable("role change announcement (the change is saved; retry it)", e))
    }
}

/// Serves waiting decisions: takes every one queued so far, then sends one GET for them all.
/// Each was queued before that GET was sent, so it reads an epoch no older than its own start.
/// Ends when the [`Epoch`] is dropped.
async fn read_in_batches(client: Client, mut waiting: mpsc::UnboundedReceiver<oneshot::Sender<Option<i64>>>) {
    let mut batch = Vec::new();
    while waiting.recv_many(&mut batch, usize::MAX).await > 0 {
        let epoch = read(&client).await;
        for answer in batch.drain(..) {
            let _ = answer.send(epoch);
        }
    }
}

async fn read(client: &Client) -> Option<i64> {
    match client.get::<Option<i64>, _>(KEY).await {
        Ok(Some(epoch)) => Some(epoch),
        Ok(None) => create(client).await,
        Err(e) => {
            tracing::debug!(error = %e, "rbac epoch unreadable; deciding from the database");
            None
        }
    }
}

/// Starts an epoch where there is none (first use, or Redis lost its data).
async fn create(client: &Client) -> Option<i64> {
    let candidate = fresh();
    let set: std::result::Result<Option<String>, _> =
        client.set(KEY, candidate, Some(TTL), Some(SetOptions::NX), false).await;
    match set {
        Ok(Some(_)) => Some(candidate),
        // Another replica created it first: use theirs.
        Ok(None) => client.get::<Option<i64>, _>(KEY).await.ok().flatten(),
        Err(_) => None,
    }
}
