//! Keeps a [`ViewCache`] correct across replicas on PostgreSQL: every RBAC change commits
//! with `pg_notify(CHANNEL, payload)` (see `store::announce_change`; the payload only serves
//! `echo`), and each service listens on `CHANNEL` and forgets its views on every notification.
//!
//! A notification sent while the listener is not subscribed is lost, so the cache serves only
//! while it is. The task is a two-state machine:
//!
//! - **Disconnected** (the start, and after any error): the cache is disabled and empty, every
//!   decision reads the database. Reconnect with backoff.
//! - **Subscribed**: `LISTEN` succeeded, then the cache is emptied and enabled; enabling bumps
//!   the change counter, so a view read before the subscription is never kept. Any error,
//!   closed connection or missed heartbeat disables it again before anything else.
//!
//! Between a connection dying and the task noticing, changes can be missed: for a closed
//! connection that is immediate, for a silent one (half-open TCP) the heartbeat bounds it to
//! `HEARTBEAT + HEARTBEAT_TIMEOUT`.
use crate::echo::{Change, Echoes};
use crate::views::ViewCache;
use sea_orm::sqlx::Executor;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The notification channel of RBAC changes.
pub(crate) const CHANNEL: &str = "warden_rbac";
/// The listener's `application_name`, so operators (and tests) can tell its connection apart.
pub const APPLICATION_NAME: &str = "warden-rbac-listener";
/// How often the listener's own connection is checked while no notification arrives.
const HEARTBEAT: Duration = Duration::from_secs(5);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The running listener; dropping it stops the task (the cache then stays as it was last set,
/// which only matters for a service being dropped too).
pub(crate) struct Listener {
    task: JoinHandle<()>,
    echoes: Arc<Echoes>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Starts listening; the cache must start disabled and is enabled once subscribed.
    pub(crate) fn spawn(database_url: String, views: Arc<ViewCache>) -> Listener {
        let echoes = Arc::new(Echoes::default());
        Listener { task: tokio::spawn(run(database_url, views, Arc::clone(&echoes))), echoes }
    }

    /// A change whose notification this listener will report back (see `echo`).
    pub(crate) fn expect_change(&self) -> Change {
        self.echoes.expect()
    }
}

async fn run(database_url: String, views: Arc<ViewCache>, echoes: Arc<Echoes>) {
    metrics::gauge!("warden_rbac_view_cache_enabled").set(0.0);
    let mut backoff = BACKOFF_MIN;
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, subscribe(&database_url)).await {
            Ok(Ok(listener)) => {
                views.enable();
                metrics::gauge!("warden_rbac_view_cache_enabled").set(1.0);
                tracing::info!("rbac view cache enabled: listening for changes by other replicas");
                let since = Instant::now();
                let reason = follow(listener, &views, &echoes).await;
                views.disable();
                echoes.release_all();
                metrics::gauge!("warden_rbac_view_cache_enabled").set(0.0);
                tracing::warn!(%reason, "rbac change listener lost; view cache disabled until it reconnects");
                // A connection that held for a while was not the problem: retry quickly.
                if since.elapsed() >= BACKOFF_MAX {
                    backoff = BACKOFF_MIN;
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "rbac change listener cannot subscribe; retrying"),
            Err(_) => tracing::warn!("rbac change listener: connecting timed out; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A listener subscribed to [`CHANNEL`] on a connection of its own.
async fn subscribe(database_url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let options = database_url.parse::<PgConnectOptions>()?.application_name(APPLICATION_NAME);
    // A pool of one: PgListener takes its connection from a pool. Each attempt builds a new
    // one, so a dead connection is never reused.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(CONNECT_TIMEOUT)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // Report a lost connection instead of reconnecting inside `try_recv`: the cache must be
    // disabled before anything else happens.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Forgets views on every notification until the connection fails; returns why it did.
async fn follow(mut listener: PgListener, views: &ViewCache, echoes: &Echoes) -> String {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    loop {
        // `try_recv` is cancel-safe (a partly read message stays buffered), so the heartbeat
        // may interrupt it; notifications arriving during the heartbeat query are buffered.
        tokio::select! {
            message = listener.try_recv() => match message {
                Ok(Some(notification)) => {
                    views.forget();
                    echoes.heard(notification.payload());
                    heartbeat.reset();
                }
                Ok(None) => return "connection closed".into(),
                Err(e) => return e.to_string(),
            },
            _ = heartbeat.tick() => {
                match tokio::time::timeout(HEARTBEAT_TIMEOUT, listener.execute("SELECT 1")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("heartbeat failed: {e}"),
                    Err(_) => return "heartbeat timed out".into(),
                }
            }
        }
    }
}
