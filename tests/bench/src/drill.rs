//! The scale-out drill (issue 6): two replicas of every service (gateways included) as
//! separate processes on one PostgreSQL and one Redis; a mixed load (logins, refreshes,
//! bearer and API-key protected requests) spread over the gateways; one replica of each
//! service stopped at once mid-run (SIGKILL by default: a crash) and started again later;
//! and, before the stop and after the restart, the time a logout and an API-key revocation
//! made through one gateway take to hold on every gateway.
//!
//! The load client plays the part of the ingress in front of the gateways: a request whose
//! connection failed before an answer came goes to the other gateway (ingress-nginx's
//! `proxy_next_upstream error timeout non_idempotent`). Every request of the mix is safe to
//! send twice (a refresh inside the replay window yields the same successor). An answer is
//! never retried: a 5xx counts as a failed request. The drill passes only with zero failed
//! requests.
use crate::fleet::{self, Fleet, Setup};
use crate::http::{Conn, Req};
use crate::process_args::{Defaults, ProcessArgs};
use anyhow::{Context, bail};
use hyper::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The services stopped (one replica each) mid-run.
const SERVICES: [&str; 5] = ["auth", "token", "key", "rbac", "gateway"];
/// Longest a revocation may take to hold on every gateway before the drill fails.
const REVOCATION_LIMIT: Duration = Duration::from_secs(5);

/// How a replica is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stop {
    /// SIGKILL: a crash; nothing is drained.
    Kill,
    /// SIGTERM: what Kubernetes sends a pod it deletes; in-flight requests drain.
    Term,
}

#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    /// Seconds of load in all; the stop comes at 35 % of it, the restart at 65 %.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Concurrent client connections (each sends one request at a time).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// How one replica of each service is stopped.
    #[arg(long, value_enum, default_value = "kill")]
    pub stop: Stop,
    /// Replicas of every service.
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,
}

/// Which part of the run a request fell in.
#[derive(Clone, Copy)]
enum Phase {
    AllUp = 0,
    OneOfEachDown = 1,
    Restarted = 2,
}

const PHASES: [&str; 3] = ["all replicas up", "one replica of each service down", "restarted"];

#[derive(Default)]
struct Counters {
    phase: AtomicUsize,
    ok: [AtomicU64; 3],
    failed: [AtomicU64; 3],
    /// Requests sent to a second gateway after the first one's connection failed.
    rerouted: [AtomicU64; 3],
    /// Answers per gateway and phase (at most 4 gateways are counted).
    served: [[AtomicU64; 4]; 3],
    /// The slowest call per phase and operation (in [`MIX`]'s order), in microseconds.
    slowest_us: [[AtomicU64; MIX.len()]; 3],
    failures: Mutex<Vec<String>>,
}

impl Counters {
    fn phase(&self) -> usize {
        self.phase.load(Ordering::Relaxed)
    }

    fn fail(&self, what: String) {
        self.failed[self.phase()].fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() < 10 {
            failures.push(what);
        }
    }
}

/// One client connection per gateway; requests go to the worker's own gateway and, when
/// its connection fails, to the next one.
struct Front {
    conns: Vec<Conn>,
    home: usize,
    using: usize,
    sent: u64,
}

impl Front {
    async fn open(gateways: &[SocketAddr], home: usize) -> anyhow::Result<Front> {
        Ok(Front { conns: probe_conns(gateways).await?, home, using: home, sent: 0 })
    }

    async fn send(&mut self, req: &Req, counters: &Counters) -> Result<(StatusCode, Value), String> {
        self.sent += 1;
        // Back home now and then, so a restarted gateway takes its share again.
        if self.sent.is_multiple_of(50) {
            self.using = self.home;
        }
        let n = self.conns.len();
        let mut last = String::new();
        for k in 0..n {
            let g = (self.using + k) % n;
            match self.conns[g].send(req).await {
                Ok((status, body)) => {
                    let phase = counters.phase();
                    if k > 0 {
                        counters.rerouted[phase].fetch_add(1, Ordering::Relaxed);
                        self.using = g;
                    }
                    if let Some(slot) = counters.served[phase].get(g) {
                        slot.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                }
                Err(e) => last = format!("gateway {g}: {e:#}"),
            }
        }
        Err(format!("no gateway answered: {last}"))
    }
}

/// A worker's session: it logs in, refreshes its own chain and calls protected routes with
/// its own access token.
struct Client {
    front: Front,
    username: String,
    password: String,
    api_key: String,
    access: String,
    refresh: String,
}

/// Per 100 requests.
const MIX: [(Op, u64); 5] =
    [(Op::Login, 1), (Op::Refresh, 10), (Op::BearerMe, 20), (Op::KeyVerify, 24), (Op::BearerVerify, 45)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Login,
    Refresh,
    BearerMe,
    BearerVerify,
    KeyVerify,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Refresh => "refresh",
            Op::BearerMe => "bearer /me",
            Op::BearerVerify => "bearer /verify",
            Op::KeyVerify => "api-key /verify",
        }
    }
}

const VERIFY: &str = "/api/v1/auth/verify?permission=users:read";

impl Client {
    async fn login(&mut self, counters: &Counters) -> Result<(), String> {
        let req =
            Req::post_json("/api/v1/auth/login", &json!({ "username": self.username, "password": self.password }));
        let body = expect(self.front.send(&req, counters).await, StatusCode::OK, "login")?;
        self.take_pair(&body)
    }

    fn take_pair(&mut self, body: &Value) -> Result<(), String> {
        let field = |name: &str| body[name].as_str().map(str::to_owned).ok_or_else(|| format!("no {name} in {body}"));
        self.access = field("access_token")?;
        self.refresh = field("refresh_token")?;
        Ok(())
    }

    async fn call(&mut self, op: Op, counters: &Counters) -> Result<(), String> {
        match op {
            Op::Login => self.login(counters).await,
            Op::Refresh => {
                let req = Req::post_json("/api/v1/auth/refresh", &json!({ "refresh_token": self.refresh }));
                let body = expect(self.front.send(&req, counters).await, StatusCode::OK, "refresh")?;
                self.take_pair(&body)
            }
            Op::BearerMe => {
                let req = Req::get("/api/v1/auth/me").bearer(&self.access);
                expect(self.front.send(&req, counters).await, StatusCode::OK, "bearer /me").map(drop)
            }
            Op::BearerVerify => {
                let req = Req::get(VERIFY).bearer(&self.access);
                expect(self.front.send(&req, counters).await, StatusCode::OK, "bearer /verify").map(drop)
            }
            Op::KeyVerify => {
                let req = Req::get(VERIFY).header("x-api-key", &self.api_key);
                expect(self.front.send(&req, counters).await, StatusCode::OK, "api-key /verify").map(drop)
            }
        }
    }
}

fn expect(answer: Result<(StatusCode, Value), String>, want: StatusCode, what: &str) -> Result<Value, String> {
    match answer {
        Ok((status, body)) if status == want => Ok(body),
        Ok((status, body)) => Err(format!("{what}: HTTP {}: {}", status.as_u16(), body)),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Where an operation sits in [`MIX`].
fn op_index(op: Op) -> usize {
    MIX.iter().position(|(o, _)| *o == op).expect("every op is in MIX")
}

fn op_at(slot: u64) -> Op {
    let mut edge = 0;
    for (op, share) in MIX {
        edge += share;
        if slot < edge {
            return op;
        }
    }
    Op::BearerVerify
}

async fn worker(mut client: Client, index: u64, counters: Arc<Counters>, running: Arc<AtomicBool>) {
    let mut sent = 0u64;
    while running.load(Ordering::Relaxed) {
        let op = op_at((sent * 37 + index * 13) % 100);
        sent += 1;
        let started = Instant::now();
        let answer = client.call(op, &counters).await;
        counters.slowest_us[counters.phase()][op_index(op)]
            .fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match answer {
            Ok(()) => {
                counters.ok[counters.phase()].fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.fail(e);
                // A broken refresh chain starts again from a login (counted if it fails).
                if matches!(op, Op::Refresh) && client.login(&counters).await.is_err() {
                    counters.fail("login after a failed refresh".into());
                }
            }
        }
    }
}

/// How long a logout and a key revocation made through one gateway took to hold on each.
struct Revocation {
    /// Per gateway: milliseconds until it refused, answers that still accepted.
    logout: Vec<(f64, u32)>,
    key: Vec<(f64, u32)>,
}

/// One connection to each gateway.
async fn probe_conns(gateways: &[SocketAddr]) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::new();
    for g in gateways {
        conns.push(Conn::open(*g).await?);
    }
    Ok(conns)
}

async fn json_call(conn: &mut Conn, req: &Req, want: StatusCode) -> anyhow::Result<Value> {
    let (status, body) = conn.send(req).await?;
    if status != want {
        bail!("{} {}: HTTP {} (wanted {}): {}", req.method, req.path, status, want, String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Polls `req` on every gateway at once until each answers 401: per gateway, the time from
/// `since` to its first 401 and how many answers before it still accepted the credential.
async fn until_refused(gateways: &[SocketAddr], req: &Req, since: Instant) -> anyhow::Result<Vec<(f64, u32)>> {
    let polls = gateways.iter().map(|g| {
        let (g, req) = (*g, req.clone());
        tokio::spawn(async move {
            let mut conn = Conn::open(g).await?;
            let mut stale = 0;
            loop {
                let (status, _) = conn.send(&req).await?;
                if status == StatusCode::UNAUTHORIZED {
                    return anyhow::Ok((since.elapsed().as_secs_f64() * 1000.0, stale));
                }
                stale += 1;
                if since.elapsed() > REVOCATION_LIMIT {
                    bail!("gateway {g} still answers {status} {REVOCATION_LIMIT:?} after the revocation");
                }
            }
        })
    });
    let mut out = Vec::new();
    for poll in polls.collect::<Vec<_>>() {
        out.push(poll.await??);
    }
    Ok(out)
}

async fn revocation(gateways: &[SocketAddr], username: &str, password: &str) -> anyhow::Result<Revocation> {
    let mut conns = probe_conns(gateways).await?;
    let login = Req::post_json("/api/v1/auth/login", &json!({ "username": username, "password": password }));
    let session = json_call(&mut conns[0], &login, StatusCode::OK).await?;
    let admin = json_call(&mut conns[0], &login, StatusCode::OK).await?;
    let token = |v: &Value, k: &str| v[k].as_str().map(str::to_owned).context("login answer");
    let (access, refresh) = (token(&session, "access_token")?, token(&session, "refresh_token")?);
    let admin_access = token(&admin, "access_token")?;
    let me = Req::get("/api/v1/auth/me").bearer(&access);
    for conn in &mut conns {
        json_call(conn, &me, StatusCode::OK).await?;
    }
    // Logout through the first gateway; every gateway must refuse the access token.
    let logout = Req::post_json("/api/v1/auth/logout", &json!({ "refresh_token": refresh }));
    let (status, _) = conns[0].send(&logout).await?;
    anyhow::ensure!(status.is_success(), "logout answered {status}");
    let logout = until_refused(gateways, &me, Instant::now()).await?;

    // An API key revoked through the last gateway; every gateway must refuse the key.
    let created = json_call(
        &mut conns[0],
        &Req::post_json("/api/v1/auth/api-key", &json!({ "name": "drill", "scopes": ["users:read"] }))
            .bearer(&admin_access),
        StatusCode::CREATED,
    )
    .await?;
    let (id, key) = (token(&created, "id")?, token(&created, "key")?);
    let verify = Req::get(VERIFY).header("x-api-key", &key);
    for conn in &mut conns {
        let (status, _) = conn.send(&verify).await?;
        anyhow::ensure!(status == StatusCode::OK, "a fresh key answered {status}");
    }
    let revoke =
        Req { method: hyper::Method::DELETE, ..Req::get(format!("/api/v1/auth/api-keys/{id}")) }.bearer(&admin_access);
    let last = conns.len() - 1;
    let (status, _) = conns[last].send(&revoke).await?;
    anyhow::ensure!(status.is_success(), "key revocation answered {status}");
    let key = until_refused(gateways, &verify, Instant::now()).await?;
    Ok(Revocation { logout, key })
}

/// Runs the drill; the report goes to stdout. Fails when any request failed, a revocation
/// did not reach every gateway in time, or a restarted gateway took no traffic.
pub async fn run(args: &DrillArgs, setup: &Setup) -> anyhow::Result<()> {
    let mut fleet = Fleet::start_replicated(setup, args.replicas).await?;
    let result = drive(args, setup, &mut fleet).await;
    if result.is_err() {
        // What the processes said is the only trace of why a request failed.
        for proc in &fleet.procs {
            for line in proc.warnings(20) {
                eprintln!("[{}] {line}", proc.name);
            }
        }
    }
    fleet.stop().await;
    result
}

async fn drive(args: &DrillArgs, setup: &Setup, fleet: &mut Fleet) -> anyhow::Result<()> {
    let gateways = fleet.gateways.clone();
    let fixture = fleet.fixture().await?;
    let counters = Arc::new(Counters::default());
    let running = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for i in 0..args.connections.max(1) {
        let front = Front::open(&gateways, i % gateways.len()).await?;
        let mut client = Client {
            front,
            username: fleet::ADMIN.into(),
            password: fleet.password.clone(),
            api_key: fixture.api_key.clone(),
            access: String::new(),
            refresh: String::new(),
        };
        client.login(&counters).await.map_err(anyhow::Error::msg)?;
        workers.push(tokio::spawn(worker(client, i as u64, counters.clone(), running.clone())));
    }
    let start = Instant::now();
    let at = |share: f64| start + Duration::from_secs_f64(args.duration * share);

    sleep_until(at(0.2)).await;
    let before = revocation(&gateways, fleet::ADMIN, &fleet.password).await.context("revocation, all replicas up")?;

    sleep_until(at(0.35)).await;
    let victims: Vec<usize> = SERVICES
        .iter()
        .map(|s| fleet.index_of(&format!("{s}-0")).with_context(|| format!("no replica {s}-0")))
        .collect::<anyhow::Result<_>>()?;
    counters.phase.store(Phase::OneOfEachDown as usize, Ordering::Relaxed);
    let stopping = Instant::now();
    for &v in &victims {
        match args.stop {
            Stop::Kill => fleet.kill_one(v, Duration::from_secs(5)).await?,
            // At once, as a rollout's deletions would: each drains in parallel.
            Stop::Term => fleet.procs[v].terminate(),
        }
    }
    if args.stop == Stop::Term {
        for &v in &victims {
            fleet.procs[v].wait_exit(Duration::from_secs(30)).await?;
        }
    }
    let stopped_in = stopping.elapsed();

    sleep_until(at(0.65)).await;
    for &v in &victims {
        fleet.restart(v, &setup.warden).await?;
    }
    counters.phase.store(Phase::Restarted as usize, Ordering::Relaxed);

    sleep_until(at(0.8)).await;
    let after = revocation(&gateways, fleet::ADMIN, &fleet.password).await.context("revocation, after the restart")?;

    sleep_until(at(1.0)).await;
    running.store(false, Ordering::Relaxed);
    for w in workers {
        w.await?;
    }
    fleet.check_alive()?;
    report(args, &counters, gateways.len(), stopped_in, &before, &after)
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(t.into()).await;
}

fn report(
    args: &DrillArgs,
    c: &Counters,
    gateways: usize,
    stopped_in: Duration,
    before: &Revocation,
    after: &Revocation,
) -> anyhow::Result<()> {
    let load = |a: &[AtomicU64; 3], p: usize| a[p].load(Ordering::Relaxed);
    println!("## Scale-out drill\n");
    println!(
        "{} replicas of every service, {} connections over {:.0} s; one replica of each of {} stopped by {} at 35 %, started again at 65 %.\n",
        args.replicas,
        args.connections,
        args.duration,
        SERVICES.join(", "),
        match args.stop {
            Stop::Kill => "SIGKILL",
            Stop::Term => "SIGTERM",
        },
    );
    println!("| phase | ok | failed | rerouted at the front | answers per gateway |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for (p, name) in PHASES.iter().enumerate() {
        let served: Vec<String> =
            (0..gateways.min(4)).map(|g| c.served[p][g].load(Ordering::Relaxed).to_string()).collect();
        println!(
            "| {name} | {} | {} | {} | {} |",
            load(&c.ok, p),
            load(&c.failed, p),
            load(&c.rerouted, p),
            served.join(" / ")
        );
    }
    println!("\n| slowest answer, ms | {} |", MIX.iter().map(|(op, _)| op.name()).collect::<Vec<_>>().join(" | "));
    println!("| --- |{}", " ---: |".repeat(MIX.len()));
    for (p, name) in PHASES.iter().enumerate() {
        let slowest: Vec<String> =
            c.slowest_us[p].iter().map(|us| format!("{:.1}", us.load(Ordering::Relaxed) as f64 / 1000.0)).collect();
        println!("| {name} | {} |", slowest.join(" | "));
    }
    // The slowest gateway's time, and the answers (all gateways) that still accepted.
    let cell = |v: &[(f64, u32)]| {
        let ms = v.iter().map(|(ms, _)| *ms).fold(0.0, f64::max);
        let stale: u32 = v.iter().map(|(_, n)| n).sum();
        format!("{ms:.1} ms, {stale} stale")
    };
    println!("\nStopping the five replicas took {:.0} ms.", stopped_in.as_secs_f64() * 1000.0);
    println!("\n| revocation reaches every gateway | all replicas up | after the restart |");
    println!("| --- | ---: | ---: |");
    println!("| logout (session) | {} | {} |", cell(&before.logout), cell(&after.logout));
    println!("| API key revoked | {} | {} |", cell(&before.key), cell(&after.key));
    println!(
        "\n(time from the revoking answer to the first 401 on the slowest gateway, polled on all at once; \
         \"stale\" counts answers that still accepted the credential after the revocation was answered)"
    );

    let failed: u64 = (0..3).map(|p| load(&c.failed, p)).sum();
    let ok: u64 = (0..3).map(|p| load(&c.ok, p)).sum();
    if failed > 0 {
        let failures = c.failures.lock().expect("failures lock");
        bail!("{failed} of {} requests failed; first: {:#?}", ok + failed, *failures);
    }
    if load(&c.ok, Phase::OneOfEachDown as usize) == 0 || load(&c.ok, Phase::AllUp as usize) == 0 {
        bail!("a phase of the drill had no successful request");
    }
    let restarted_home = c.served[Phase::Restarted as usize][0].load(Ordering::Relaxed);
    if restarted_home == 0 {
        bail!("the restarted gateway took no request");
    }
    println!("\ndrill: passed ({ok} requests, none failed)");
    Ok(())
}

#[derive(Debug, clap::Parser)]
#[command(name = "warden-drill", about = "Scale-out drill of Warden in split mode (issue 6)")]
pub struct DrillCli {
    #[command(flatten)]
    drill: DrillArgs,
    #[command(flatten)]
    process: ProcessArgs,
}

/// Redis database 14 (13 is warden-bench's); warnings only.
const DEFAULTS: Defaults = Defaults { redis_db: 14, rust_log: "warn" };

pub fn run_cli(cli: DrillCli) -> std::process::ExitCode {
    let setup = match cli.process.setup(DEFAULTS, Vec::new()) {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("warden-drill: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    match runtime.block_on(run(&cli.drill, &setup)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-drill: FAILED: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
