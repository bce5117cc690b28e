//! Cost growth (issue 11): the protected-request, API-key, CheckPermissions and login figures
//! with a small and a large population in the stores.
//!
//! Per mode, two fleets run side by side: one seeded with the small population, one with the
//! large (see `seed.rs`). Each figure is then measured at saturation on both, alternating
//! (small then large in even rounds, large then small in odd ones), and the report compares
//! the medians over the rounds. Both fleets are equally old and have served the same requests,
//! so the only difference between them is what their stores hold; a disturbance of the shared
//! machine lands on both in turn instead of on one side of the comparison.
//!
//! The measured credentials are the same kind on both fleets: the bench admin's bearer token
//! and API key, a seeded user's password for logins. The bench admin also holds a seeded role
//! at the end of a ten-role chain, so each decision walks 51 entries on both fleets: the figures
//! compare stores of different size, not users with different amounts of policy.
use crate::fixtures::{self, Fixture};
use crate::fleet::{Fleet, Mode, Setup};
use crate::h2::H2;
use crate::scenarios::{self, Concurrency, Phase, Runner, Spec};
use crate::seed::{self, Population, Seeded, Stores};
use crate::workers::{self, PERMISSION};
use anyhow::{Context, bail, ensure};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use uuid::Uuid;
use warden_common::secret::Secret;
use warden_proto::rbac::v1::CheckPermissionsRequest;
use warden_proto::rbac::v1::rbac_service_client::RbacServiceClient;

/// The seeded user whose password the login figure uses.
pub const LOGIN_USER: u64 = 7;
/// Fewest users and roles a population may have (the checks use user 7 and role 9).
pub const MIN_USERS: u64 = 10;
pub const MIN_ROLES: u64 = seed::CHAIN;

/// The figures compared, in the order they run, with what each one's cost may grow with and
/// whether the "at most 10 % slower" target applies to it.
pub const FIGURES: [(&str, &str, bool); 4] = [
    (scenarios::BEARER_VERIFY, "live sessions (users, roles)", true),
    (scenarios::KEY_VERIFY, "API keys (roles)", true),
    (scenarios::GRPC_CHECK, "roles, role assignments", true),
    (scenarios::LOGIN, "users (sessions written)", false),
];

/// The slowdown the issue allows from the small to the large population.
pub const TARGET_SLOWDOWN: f64 = 0.10;

pub struct GrowthPlan {
    /// Setups of the small and the large fleet (split mode: different Redis databases).
    pub setups: [Setup; 2],
    pub populations: [Population; 2],
    pub rounds: usize,
    /// Role creations timed per fleet (the first CheckPermissions after each).
    pub probes: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub concurrency: Concurrency,
    /// Which figures to run (the run's `--only`).
    pub only: Vec<String>,
}

impl GrowthPlan {
    /// Whether `--only` leaves anything of the comparison to run.
    pub fn any_wanted(&self) -> bool {
        FIGURES.iter().any(|(name, _, _)| self.wanted(name))
    }

    fn wanted(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| name.to_lowercase().contains(&o.to_lowercase()))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct GrowthReport {
    pub mode: Mode,
    /// Small, then large.
    pub populations: [Population; 2],
    pub seed_seconds: [f64; 2],
    pub rounds: usize,
    pub processes: Vec<String>,
    /// VmRSS of each process after the measurements, small and large fleet.
    pub rss_mib: [Vec<f64>; 2],
    pub figures: Vec<Figure>,
    /// Milliseconds from sending to answer of the first CheckPermissions after a role was
    /// created (the role graph is read again), per probe, small and large fleet.
    pub reload_ms: [Vec<f64>; 2],
}

#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub name: &'static str,
    pub grows_with: &'static str,
    pub has_target: bool,
    /// One saturation window per round, small and large fleet.
    pub phases: [Vec<Phase>; 2],
}

pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

impl Figure {
    pub fn median_of(&self, side: usize, f: impl Fn(&Phase) -> f64) -> f64 {
        median(self.phases[side].iter().map(f))
    }

    /// How much slower the large population is: small throughput over large, minus one.
    pub fn slowdown(&self) -> f64 {
        let (small, large) = (self.median_of(0, |p| p.rps), self.median_of(1, |p| p.rps));
        if large > 0.0 { small / large - 1.0 } else { f64::INFINITY }
    }

    /// Within the target, and measured without a failed request (a window with errors
    /// measured something else).
    pub fn met(&self) -> bool {
        self.slowdown() <= TARGET_SLOWDOWN && self.errors(0) + self.errors(1) == 0
    }

    /// Failed requests in all windows of one side.
    pub fn errors(&self, side: usize) -> u64 {
        self.phases[side].iter().map(|p| p.errors).sum()
    }

    /// The busiest "other" (noise) reading of all its windows.
    pub fn max_other_cores(&self) -> f64 {
        self.phases.iter().flatten().map(|p| p.other_cores).fold(0.0, f64::max)
    }
}

/// Runs the comparison for one mode: two fleets, seeding, checks, rounds, role-change probes.
pub async fn run(plan: &GrowthPlan, mode: Mode, client: &Handle) -> anyhow::Result<GrowthReport> {
    eprintln!("warden-bench: [growth {}] starting the small and the large fleet", short(mode));
    let mut small = Fleet::start(mode, &plan.setups[0]).await?;
    let mut large = match Fleet::start(mode, &plan.setups[1]).await {
        Ok(f) => f,
        Err(e) => {
            small.stop().await;
            return Err(e);
        }
    };
    let result = run_fleets(plan, mode, client, [&mut small, &mut large]).await;
    small.stop().await;
    large.stop().await;
    result
}

fn short(mode: Mode) -> &'static str {
    match mode {
        Mode::Embedded => "embedded",
        Mode::Split => "split",
    }
}

/// A seeded fleet with what the scenarios need.
struct Side {
    fx: Fixture,
    login_fx: Fixture,
    seeded: Seeded,
    stores: Stores,
}

/// Closes the idle PostgreSQL connections of the fleet that is not being measured and returns
/// how many. Two split fleets do not fit in PostgreSQL's default `max_connections` (100) at
/// once: each service process pools up to 32 connections and keeps them for minutes after a
/// load, and the first runs of this comparison had the measured fleet's new connections
/// refused ("too many clients": 503s and retries inside the measured windows). sqlx tests a
/// pooled connection before handing it out, so the idle fleet opens new ones (in the warm-up)
/// when it is measured next.
async fn close_idle_connections(stores: &Stores) -> anyhow::Result<u64> {
    if stores.mode != Mode::Split {
        return Ok(0);
    }
    let db = Database::connect(stores.database_url.as_str()).await?;
    let sql = "SELECT count(pg_terminate_backend(pid)) AS closed FROM pg_stat_activity \
               WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'";
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await;
    db.close().await.ok();
    Ok(row?.map(|r| r.try_get::<i64>("", "closed")).transpose()?.unwrap_or(0).max(0) as u64)
}

async fn run_fleets(
    plan: &GrowthPlan,
    mode: Mode,
    client: &Handle,
    fleets: [&mut Fleet; 2],
) -> anyhow::Result<GrowthReport> {
    let [small, large] = fleets;
    let password = format!("growth-{}", Uuid::new_v4().simple());
    // One real hash from Warden's own hasher (same parameters, same PHC string), for every user.
    let hasher = warden_auth::password::PasswordHasher::new(1);
    let password_hash = hasher.hash(&Secret::new(password.clone())).await?;
    drop(hasher);

    let mut sides = Vec::new();
    for (fleet, population) in [(&mut *small, plan.populations[0]), (&mut *large, plan.populations[1])] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fx = fleet.fixture().await?;
        let stores = Stores::of(fleet)?;
        let owner = Uuid::parse_str(&fx.user_id)?;
        eprintln!("warden-bench: [growth {}] seeding {}", short(mode), population.describe(mode));
        let seeded = seed::seed(&stores, population, owner, &password_hash).await?;
        eprintln!("warden-bench: [growth {}] seeded in {:.1} s", short(mode), seeded.seconds);
        check_seeded(&fx, &seeded, &password).await.context("the services do not see the seeded rows")?;
        fleet.check_alive()?;
        let login_fx = Fixture { username: seed::username(LOGIN_USER), password: password.clone(), ..fx.clone() };
        sides.push(Side { fx, login_fx, seeded, stores });
    }

    // Role changes first, while every pool still holds its connections (see
    // `close_idle_connections`), so a probe times the graph reload, not a reconnection.
    let mut reload_ms: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    if plan.wanted(scenarios::GRPC_CHECK) {
        for probe in 0..plan.probes {
            for (side, fx) in sides.iter().map(|s| &s.fx).enumerate() {
                reload_ms[side].push(role_change_probe(fx, probe).await?);
            }
        }
    }
    let fleets = [&mut *small, &mut *large];
    let runners: Vec<(Runner, Runner)> = fleets
        .iter()
        .zip(&sides)
        .map(|(fleet, side)| {
            let runner =
                |fx: &Fixture| Runner::new(client.clone(), fleet.pids(), plan.warmup, plan.duration, fx.clone());
            (runner(&side.fx), runner(&side.login_fx))
        })
        .collect();
    let specs = scenarios::specs(plan.concurrency);
    let mut figures = Vec::new();
    for (name, grows_with, has_target) in FIGURES.into_iter().filter(|(n, _, _)| plan.wanted(n)) {
        let spec: Spec = *specs.iter().find(|s| s.name == name).context("growth figure without a scenario")?;
        let mut phases: [Vec<Phase>; 2] = [Vec::new(), Vec::new()];
        for round in 0..plan.rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                eprintln!(
                    "warden-bench: [growth {}] {name}, round {}, {} population",
                    short(mode),
                    round + 1,
                    if side == 0 { "small" } else { "large" }
                );
                if let Err(e) = close_idle_connections(&sides[1 - side].stores).await {
                    // The window may then see refused connections; its errors say so.
                    eprintln!("warden-bench: [growth] could not close the idle fleet's connections: {e:#}");
                }
                let (runner, login_runner) = &runners[side];
                let runner = if spec.name == scenarios::LOGIN { login_runner } else { runner };
                let phase = runner.saturation(spec).await?.saturation;
                if phase.ok == 0 {
                    bail!("growth: {name} had no successful request: {:?}", phase.first_error);
                }
                phases[side].push(phase);
            }
            for fleet in [&mut *small, &mut *large] {
                fleet.check_alive()?;
            }
        }
        figures.push(Figure { name, grows_with, has_target, phases });
    }

    Ok(GrowthReport {
        mode,
        populations: plan.populations,
        seed_seconds: [sides[0].seeded.seconds, sides[1].seeded.seconds],
        rounds: plan.rounds,
        processes: small.names(),
        rss_mib: [small.rss_mib(), large.rss_mib()],
        figures,
        reload_ms,
    })
}

async fn rbac(fx: &Fixture) -> anyhow::Result<RbacServiceClient<H2>> {
    let (h2, origin) = workers::connections(&fx.grpc_rbac, 1).await?.pop().context("no connection")?;
    Ok(RbacServiceClient::with_origin(h2, origin))
}

fn check_request(user_id: &str, permissions: &[&str]) -> CheckPermissionsRequest {
    CheckPermissionsRequest {
        user_id: user_id.to_owned(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        scopes: Vec::new(),
        has_scopes: false,
    }
}

async fn json_ok(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    ensure!(status.is_success(), "{what} answered {status}: {body}");
    Ok(if body.is_empty() { Value::Null } else { serde_json::from_str(&body)? })
}

fn ids(list: &Value) -> Vec<String> {
    list["items"].as_array().into_iter().flatten().filter_map(|i| i["id"].as_str().map(str::to_owned)).collect()
}

/// Reads the seeded rows back through the public API, which also tells the services of the
/// role change: the bench admin is given the last role of the first chain through the API, as
/// an operator would, which ends every cached RBAC view in the embedded process.
async fn check_seeded(fx: &Fixture, seeded: &Seeded, password: &str) -> anyhow::Result<()> {
    let http = fixtures::client();
    let base = format!("http://{}", fx.http);
    let chain_end = seed::role(seed::CHAIN - 1);
    let assigned = http
        .put(format!("{base}/api/v1/admin/users/{}/roles/{chain_end}", fx.user_id))
        .bearer_auth(&fx.access_token)
        .send()
        .await?;
    json_ok(assigned, "assigning a seeded role").await?;

    let sessions = json_ok(
        http.get(format!("{base}/api/v1/auth/sessions")).bearer_auth(&fx.access_token).send().await?,
        "listing sessions",
    )
    .await?;
    let keys = json_ok(
        http.get(format!("{base}/api/v1/auth/api-keys")).bearer_auth(&fx.access_token).send().await?,
        "listing api keys",
    )
    .await?;
    let (sessions, keys) = (ids(&sessions), ids(&keys));
    for i in 0..seed::OWNER_SHARE {
        let (sid, kid) = (seeded.session_id(i).to_string(), seeded.key_id(i).to_string());
        ensure!(sessions.contains(&sid), "seeded session {sid} is not listed");
        ensure!(keys.contains(&kid), "seeded api key {kid} is not listed");
    }

    let user = json_ok(
        http.get(format!("{base}/api/v1/admin/users/{}", seeded.user_id(LOGIN_USER)))
            .bearer_auth(&fx.access_token)
            .send()
            .await?,
        "reading a seeded user",
    )
    .await?;
    let want = seed::role_of_user(LOGIN_USER, seeded.population.roles);
    ensure!(user["roles"] == json!([want]), "seeded user has roles {} instead of [{want}]", user["roles"]);
    fixtures::login(&http, &base, &seed::username(LOGIN_USER), password).await.context("a seeded user's login")?;

    // Granted through the chain (g-role-9 inherits … g-role-0), refused by g-role-9's deny.
    let answer = rbac(fx).await?.check_permissions(check_request(&fx.user_id, &["svc0:read", "svc9:delete"])).await?;
    let allowed: Vec<bool> = answer.into_inner().decisions.iter().map(|d| d.allowed).collect();
    ensure!(allowed == [true, false], "seeded role chain decided {allowed:?} instead of [true, false]");
    Ok(())
}

/// Creates a role through the API, then times the next CheckPermissions, which reads the
/// whole role graph again (the role generation moved).
async fn role_change_probe(fx: &Fixture, probe: usize) -> anyhow::Result<f64> {
    let mut client = rbac(fx).await?;
    let request = check_request(&fx.user_id, &[PERMISSION]);
    client.check_permissions(request.clone()).await?;
    let http = fixtures::client();
    let created = http
        .post(format!("http://{}/api/v1/admin/roles", fx.http))
        .bearer_auth(&fx.access_token)
        .json(&json!({ "name": format!("g-probe-{probe}"), "permissions": ["probe:read"] }))
        .send()
        .await?;
    json_ok(created, "creating a role").await?;
    let started = Instant::now();
    let answer = client.check_permissions(request).await?.into_inner();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    ensure!(answer.decisions.first().is_some_and(|d| d.allowed), "the probe's check was refused");
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(rps: f64) -> Phase {
        Phase { rps, ok: 1, ..Phase::default() }
    }

    #[test]
    fn slowdown_compares_medians() {
        let figure = Figure {
            name: scenarios::BEARER_VERIFY,
            grows_with: "",
            has_target: true,
            phases: [vec![phase(100.0), phase(10.0), phase(110.0)], vec![phase(95.0), phase(1000.0), phase(80.0)]],
        };
        assert_eq!(figure.median_of(0, |p| p.rps), 100.0);
        assert_eq!(figure.median_of(1, |p| p.rps), 95.0);
        assert!((figure.slowdown() - (100.0 / 95.0 - 1.0)).abs() < 1e-9);
        assert!(figure.met());
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median([]), 0.0);
    }
}
