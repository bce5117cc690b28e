//! Replicas on one PostgreSQL database with per-user view caches (`with_listener`): a change
//! made through one replica reaches another's cached views by notification, and while a
//! replica's listener is down it decides from the database.
use crate::harness::{Backend, check, connect, create};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;
use warden_rbac::{LISTENER_APPLICATION_NAME, RbacService, SharedRbac};

/// Longest wait for a notification to reach the other replica.
const NOTIFICATION_DEADLINE: Duration = Duration::from_secs(2);

/// A fresh database where `viewer` grants `docs:read`, a replica A with a view cache, and a
/// plain connection for writes behind the replicas' back.
struct Setup {
    a: SharedRbac,
    raw: DatabaseConnection,
    url: String,
}

async fn setup(test: &str) -> Option<Setup> {
    let url = Backend::Postgres.url(test).await?;
    let a: SharedRbac = cached_replica(&url, &url).await;
    create(&a, "viewer", &["docs:read"], &[]).await;
    Some(Setup { a, raw: connect(&url).await, url })
}

/// A replica whose listener connects to `listen_url`, once it has subscribed.
async fn cached_replica(url: &str, listen_url: &str) -> Arc<RbacService> {
    let replica = Arc::new(RbacService::new(connect(url).await).with_listener(listen_url));
    eventually("subscribing", Duration::from_secs(10), || replica.view_cache_enabled()).await;
    replica
}

/// Polls until `permission` is decided as `allowed` on `api`, and returns how long it took.
async fn reaches(api: &SharedRbac, user: Uuid, permission: &str, allowed: bool, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        if check(api, user, permission, None).await.allowed == allowed {
            let took = started.elapsed();
            println!("{what}: replica B decided {permission} = {allowed} after {took:?}");
            return took;
        }
        assert!(started.elapsed() < NOTIFICATION_DEADLINE, "{what}: replica B still decides on the old view");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn sql(db: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) -> u64 {
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    db.execute_raw(statement).await.unwrap_or_else(|e| panic!("{sql}: {e}")).rows_affected()
}

/// Writes an assignment behind the services' back: no notification, so only a replica that
/// reads the database sees it.
async fn raw_assign(db: &DatabaseConnection, user: Uuid, role: &str, assigned: bool) {
    if assigned {
        let insert = "INSERT INTO user_roles (user_id, role, created_at) VALUES ($1, $2, now())";
        sql(db, insert, vec![user.into(), role.into()]).await;
    } else {
        sql(db, "DELETE FROM user_roles WHERE user_id = $1 AND role = $2", vec![user.into(), role.into()]).await;
    }
}

/// Asserts `api` keeps deciding `allowed` although the database says otherwise: it decides
/// from its cache.
async fn decides_from_cache(api: &SharedRbac, user: Uuid, permission: &str, allowed: bool) {
    assert_eq!(check(api, user, permission, None).await.allowed, allowed, "{permission} must come from the cache");
}

/// A user without roles whose view `api` has cached, proven by an assignment written behind
/// its back and not seen. Notifications of earlier changes may still be on their way and empty
/// the cache in between, hence the retries, each with a new user (the old one may be cached
/// with the assignment).
async fn user_cached_by(api: &SharedRbac, raw: &DatabaseConnection) -> Uuid {
    let started = Instant::now();
    loop {
        let user = Uuid::new_v4();
        assert!(!check(api, user, "docs:read", None).await.allowed);
        raw_assign(raw, user, "viewer", true).await;
        let cached = !check(api, user, "docs:read", None).await.allowed;
        raw_assign(raw, user, "viewer", false).await;
        if cached {
            return user;
        }
        assert!(started.elapsed() < NOTIFICATION_DEADLINE, "views are never served from the cache");
    }
}

async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn changes_through_one_replica_reach_another_replicas_cache() {
    let Some(Setup { a, raw, url }) = setup("changes_through_one_replica_reach_another_replicas_cache").await else {
        return;
    };
    let b: SharedRbac = cached_replica(&url, &url).await;
    create(&a, "editor", &["docs:write"], &["viewer"]).await;
    let user = user_cached_by(&b, &raw).await;

    let mut delays = Vec::new();
    a.assign_role(user, "editor").await.expect("assign");
    delays.push(reaches(&b, user, "docs:write", true, "assign").await);

    // Only a definition changes: the user's assignments stay the same.
    decides_from_cache(&b, user, "docs:read", true).await;
    a.delete_role("viewer").await.expect("delete viewer");
    delays.push(reaches(&b, user, "docs:read", false, "inherited role deleted").await);

    // Changing a role's permissions is deleting and recreating it.
    a.delete_role("editor").await.expect("delete editor");
    delays.push(reaches(&b, user, "docs:write", false, "assigned role deleted").await);
    create(&a, "editor", &["docs:read"], &[]).await;
    a.assign_role(user, "editor").await.expect("assign again");
    delays.push(reaches(&b, user, "docs:read", true, "role recreated with other permissions").await);
    assert!(!check(&b, user, "docs:write", None).await.allowed);

    a.unassign_role(user, "editor").await.expect("unassign");
    delays.push(reaches(&b, user, "docs:read", false, "unassign").await);
    println!("invalidation delays: max {:?}", delays.iter().max().expect("some"));
}

/// A TCP forwarder to the database that can be shut: then it refuses new connections (it
/// closes them at once), standing in for a network that keeps the listener out while the
/// pools keep their connections.
struct Gate {
    open: Arc<AtomicBool>,
    /// `url` with the gate's address in place of the server's.
    url: String,
}

async fn gate(url: &str) -> Gate {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').expect("a database name");
    let (user, server) = authority.rsplit_once('@').expect("a user");
    let server = if server.contains(':') { server.to_owned() } else { format!("{server}:5432") };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gate = Gate {
        open: Arc::new(AtomicBool::new(true)),
        url: format!("{scheme}://{user}@{}/{path}", listener.local_addr().expect("address")),
    };
    let open = gate.open.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !open.load(Ordering::SeqCst) {
                continue;
            }
            let server = server.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&server).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    gate
}

#[tokio::test]
async fn while_the_listener_is_down_decisions_read_the_database() {
    let Some(Setup { a, raw, url }) = setup("while_the_listener_is_down_decisions_read_the_database").await else {
        return;
    };
    // B listens through the gate; its pool connects directly.
    let gate = gate(&url).await;
    let b_service = cached_replica(&url, &gate.url).await;
    let b: SharedRbac = b_service.clone();
    let user = user_cached_by(&b, &raw).await;

    // Shut the gate, then end the listeners' sessions, found by their application_name: B's
    // cannot come back.
    gate.open.store(false, Ordering::SeqCst);
    let terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND application_name = $1";
    let ended = sql(&raw, terminate, vec![LISTENER_APPLICATION_NAME.into()]).await;
    assert!(ended >= 2, "the listeners' sessions are found ({ended})");
    let noticed = eventually("disabling the cache", Duration::from_secs(2), || !b_service.view_cache_enabled()).await;
    println!("listener loss noticed after {noticed:?}");

    // No notification reaches B now, yet every change shows at once.
    raw_assign(&raw, user, "viewer", true).await;
    assert!(check(&b, user, "docs:read", None).await.allowed, "a write without notification is read");
    a.unassign_role(user, "viewer").await.expect("unassign");
    assert!(!check(&b, user, "docs:read", None).await.allowed, "a change whose notification was lost is read");
    a.assign_role(user, "viewer").await.expect("assign");
    assert!(check(&b, user, "docs:read", None).await.allowed);
    assert!(!b_service.view_cache_enabled(), "still disconnected");

    gate.open.store(true, Ordering::SeqCst);
    let recovered = eventually("recovering", Duration::from_secs(15), || b_service.view_cache_enabled()).await;
    println!("listener resubscribed {recovered:?} after the gate opened");
    // Caching again, and invalidated again.
    assert!(check(&b, user, "docs:read", None).await.allowed);
    raw_assign(&raw, user, "viewer", false).await;
    decides_from_cache(&b, user, "docs:read", true).await;
    a.unassign_role(user, "viewer").await.expect("unassign");
    reaches(&b, user, "docs:read", false, "unassign after recovery").await;
}
