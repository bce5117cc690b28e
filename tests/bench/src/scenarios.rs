//! The scenarios and how one is run: a saturation phase (closed loop), then a phase at half
//! the measured peak (open loop, latency corrected for coordinated omission), with the Warden
//! processes' CPU time and peak RSS read from `/proc` around the measured window.
use crate::fixtures::Fixture;
use crate::fleet::Mode;
use crate::load::{self, Pace, Stats, Window};
use crate::procs;
use crate::workers::{AnyWorker, Grpc, GrpcConn, Rest, RestKind, Templates, connections};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    Rest(RestKind),
    CheckPermissions,
    Authorize,
    /// A unary health check against the bare tonic ceiling.
    CeilingGrpc,
}

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub load: Load,
    pub connections: usize,
}

/// Connection counts for a run.
#[derive(Clone, Copy, Debug)]
pub struct Concurrency {
    /// Protected REST requests, refresh, mixed and gRPC calls.
    pub requests: usize,
    /// Logins (the hash pool has one permit per core; a few more keep it busy).
    pub logins: usize,
}

pub const LOGIN: &str = "login (POST /auth/login)";
pub const REFRESH: &str = "refresh (POST /auth/refresh)";
pub const BEARER_ME: &str = "bearer GET /auth/me";
pub const BEARER_VERIFY: &str = "bearer GET /auth/verify?permission";
pub const KEY_ME: &str = "api-key GET /auth/me";
pub const KEY_VERIFY: &str = "api-key GET /auth/verify?permission";
pub const GRPC_CHECK: &str = "gRPC RbacService.CheckPermissions";
pub const GRPC_AUTHORIZE: &str = "gRPC AuthService.Authorize (bearer)";
pub const MIXED: &str = "mixed";
pub const FLOOD: &str = "bearer /verify during a login flood";
pub const CEILING_STATIC: &str = "bare axum, static body";
pub const CEILING_JWT: &str = "bare axum, EdDSA verify (jsonwebtoken)";
pub const CEILING_GRPC: &str = "bare tonic, unary health check (same runtime shape as warden)";
pub const CEILING_RELAY: &str = "bare relay: axum, then two gRPC health checks in two processes (1 thread each)";
pub const FLOOR_EMBEDDED: &str = "bare axum answering after a SQLite read, one Warden hash and a SQLite write";
pub const FLOOR_FLOOD: &str = "bare axum: static body during a flood of one-hash requests";
pub const FLOOR_FLOOD_SPLIT: &str = "bare relay: `/relay` during a flood of its `/login`";
pub const FLOOR_SPLIT: &str =
    "bare relay whose first backend reads PostgreSQL and Redis, hashes once (Warden's hasher) and writes Redis";

/// Every Warden scenario but the flood, in the order they run.
pub fn specs(c: Concurrency) -> Vec<Spec> {
    let r = c.requests;
    vec![
        Spec { name: LOGIN, load: Load::Rest(RestKind::Login), connections: c.logins },
        Spec { name: REFRESH, load: Load::Rest(RestKind::Refresh), connections: r },
        Spec { name: BEARER_ME, load: Load::Rest(RestKind::BearerMe), connections: r },
        Spec { name: BEARER_VERIFY, load: Load::Rest(RestKind::BearerVerify), connections: r },
        Spec { name: KEY_ME, load: Load::Rest(RestKind::KeyMe), connections: r },
        Spec { name: KEY_VERIFY, load: Load::Rest(RestKind::KeyVerify), connections: r },
        Spec { name: GRPC_CHECK, load: Load::CheckPermissions, connections: r },
        Spec { name: GRPC_AUTHORIZE, load: Load::Authorize, connections: r },
        Spec { name: MIXED, load: Load::Rest(RestKind::Mixed), connections: r },
    ]
}

pub fn ceiling_specs(c: Concurrency) -> Vec<Spec> {
    vec![
        Spec { name: CEILING_STATIC, load: Load::Rest(RestKind::CeilingStatic), connections: c.requests },
        Spec { name: CEILING_JWT, load: Load::Rest(RestKind::CeilingJwt), connections: c.requests },
        Spec { name: CEILING_GRPC, load: Load::CeilingGrpc, connections: c.requests },
    ]
}

/// The split-mode ceiling (`relay.rs`): three processes of its own.
pub fn relay_spec(c: Concurrency) -> Spec {
    Spec { name: CEILING_RELAY, load: Load::Rest(RestKind::CeilingRelay), connections: c.requests }
}

/// The login floor of `mode`'s shape (`floor.rs`), on the logins' connections.
pub fn floor_spec(c: Concurrency, mode: Mode) -> Spec {
    match mode {
        Mode::Embedded => {
            Spec { name: FLOOR_EMBEDDED, load: Load::Rest(RestKind::CeilingLogin), connections: c.logins }
        }
        Mode::Split => Spec { name: FLOOR_SPLIT, load: Load::Rest(RestKind::CeilingLogin), connections: c.logins },
    }
}

/// What a flood scenario protects and what floods it.
#[derive(Clone, Copy, Debug)]
pub struct FloodShape {
    pub name: &'static str,
    /// Offered at a fixed rate, alone and during the flood.
    pub protected: Load,
    /// Closed loop on the login connections, during the flood only.
    pub flooding: Load,
}

/// Warden's login flood: bearer `/verify` beside password logins.
pub const WARDEN_FLOOD: FloodShape =
    FloodShape { name: FLOOD, protected: Load::Rest(RestKind::BearerVerify), flooding: Load::Rest(RestKind::Login) };

/// The embedded flood's floor: the bare axum server's static body beside its one-hash answers
/// (`floor.rs`), so the hashing is Warden's own (its idle-priority threads and their crowding
/// rule) and nothing else of a login or a protected request runs. Warden's protected p99
/// during the flood cannot be lower than this shape's on the same cores.
pub const FLOOR_FLOOD_SHAPE: FloodShape = FloodShape {
    name: FLOOR_FLOOD,
    protected: Load::Rest(RestKind::CeilingStatic),
    flooding: Load::Rest(RestKind::CeilingHash),
};

/// The split flood's floor: the bare relay's two trips (`relay.rs`, a split bearer request's
/// hops without their work) beside its logins, whose first backend touches the fleet's own
/// PostgreSQL and Redis around one Warden hash (the split login floor, `floor.rs`). Split
/// mode runs the stores on the hashing cores, so their share of a login is part of the shape.
pub const FLOOR_FLOOD_SPLIT_SHAPE: FloodShape = FloodShape {
    name: FLOOR_FLOOD_SPLIT,
    protected: Load::Rest(RestKind::CeilingRelay),
    flooding: Load::Rest(RestKind::CeilingLogin),
};

/// The login flood's floor for `mode`'s shape.
pub fn flood_floor_shape(mode: Mode) -> FloodShape {
    match mode {
        Mode::Embedded => FLOOR_FLOOD_SHAPE,
        Mode::Split => FLOOR_FLOOD_SPLIT_SHAPE,
    }
}

/// One measured phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Phase {
    /// Offered rate (open loop); `None` at saturation.
    pub offered: Option<f64>,
    pub rps: f64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU time of the measured processes per successful request.
    pub cpu_us_per_req: f64,
    /// Cores each measured process used on average.
    pub cores_by_proc: Vec<f64>,
    /// PostgreSQL + Redis CPU per request (machine-wide, so split mode's stores).
    pub stores_us_per_req: f64,
    /// The load generator's CPU per request.
    pub client_us_per_req: f64,
    /// Cores busy on the whole machine.
    pub machine_cores: f64,
    /// Cores used by anything else on the machine (noise).
    pub other_cores: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summarize(stats: &Stats, cpu: &procs::CpuDelta, offered: Option<f64>) -> Phase {
    let n = stats.ok.max(1) as f64;
    let secs = stats.seconds.max(1e-9);
    let per_req = |seconds: f64| seconds * 1e6 / n;
    Phase {
        offered,
        rps: stats.throughput(),
        ok: stats.ok,
        errors: stats.errors,
        first_error: stats.first_error.clone(),
        p50_ms: ms(stats.p(0.5)),
        p99_ms: ms(stats.p(0.99)),
        max_ms: ms(stats.max()),
        cpu_us_per_req: per_req(cpu.procs.iter().sum()),
        cores_by_proc: cpu.procs.iter().map(|s| s / secs).collect(),
        stores_us_per_req: per_req(cpu.stores),
        client_us_per_req: per_req(cpu.bench),
        machine_cores: cpu.machine_cores,
        other_cores: cpu.other_cores,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub name: &'static str,
    pub connections: usize,
    pub saturation: Phase,
    pub fixed: Option<Phase>,
    /// Peak RSS of each measured process during the scenario, MiB.
    pub peak_rss_mib: Vec<f64>,
    /// The flood scenario's rounds; its `saturation` is the last round's protected requests
    /// during the flood.
    pub flood: Option<Flood>,
}

/// The login flood, judged in rounds (see [`Runner::flood`]).
#[derive(Clone, Debug, Serialize)]
pub struct Flood {
    pub rounds: Vec<FloodRound>,
    pub login_connections: usize,
    /// Seconds measured in each window.
    pub window_s: f64,
}

/// One round: protected requests alone, then with logins alongside (or the other way round).
#[derive(Clone, Debug, Serialize)]
pub struct FloodRound {
    pub without: Phase,
    pub during: Phase,
    pub logins: Phase,
}

impl Flood {
    /// The protected p99 without and during the flood: each the median over the rounds, so
    /// one disturbed window does not decide the verdict.
    pub fn p99_ms(&self) -> (f64, f64) {
        (
            crate::growth::median(self.rounds.iter().map(|r| r.without.p99_ms)),
            crate::growth::median(self.rounds.iter().map(|r| r.during.p99_ms)),
        )
    }

    /// Logins per second during the flood, the median over the rounds.
    pub fn logins_per_second(&self) -> f64 {
        crate::growth::median(self.rounds.iter().map(|r| r.logins.rps))
    }
}

pub struct Runner {
    pub client: Handle,
    pub pids: Vec<u32>,
    pub warmup: Duration,
    pub duration: Duration,
    pub fx: Arc<Fixture>,
    pub templates: Arc<Templates>,
}

impl Runner {
    pub fn new(client: Handle, pids: Vec<u32>, warmup: Duration, duration: Duration, fx: Fixture) -> Runner {
        let templates = Arc::new(Templates::new(&fx));
        Runner { client, pids, warmup, duration, fx: Arc::new(fx), templates }
    }

    /// Opens the workers' connections on the load generator's runtime.
    async fn workers(&self, load: Load, count: usize) -> anyhow::Result<Vec<AnyWorker>> {
        let (fx, templates) = (self.fx.clone(), self.templates.clone());
        self.client
            .spawn(async move {
                let mut out = Vec::with_capacity(count);
                match load {
                    Load::Rest(kind) => {
                        for i in 0..count {
                            out.push(AnyWorker::Rest(Rest::new(&fx, kind, templates.clone(), i).await?));
                        }
                    }
                    Load::CheckPermissions | Load::Authorize | Load::CeilingGrpc => {
                        let (url, worker): (&str, fn(GrpcConn, &Fixture) -> Grpc) = match load {
                            Load::Authorize => (&fx.grpc_auth, Grpc::authorize),
                            Load::CeilingGrpc => {
                                (fx.ceiling_grpc.as_deref().expect("ceiling server running"), |c, _| Grpc::health(c))
                            }
                            _ => (&fx.grpc_rbac, Grpc::check_permissions),
                        };
                        // A few HTTP/2 connections, each multiplexing several workers.
                        let conns = connections(url, count.div_ceil(8).min(4)).await?;
                        for i in 0..count {
                            out.push(AnyWorker::Grpc(worker(conns[i % conns.len()].clone(), &fx)));
                        }
                    }
                }
                Ok(out)
            })
            .await?
    }

    /// Runs one phase of one or more worker groups at once; CPU is read around the window.
    async fn phases(&self, groups: Vec<(Vec<AnyWorker>, Pace)>) -> Vec<(Vec<AnyWorker>, Phase)> {
        self.phases_for(groups, self.warmup, self.duration).await
    }

    /// [`Runner::phases`] with a window of its own length.
    async fn phases_for(
        &self,
        groups: Vec<(Vec<AnyWorker>, Pace)>,
        warmup: Duration,
        duration: Duration,
    ) -> Vec<(Vec<AnyWorker>, Phase)> {
        let window = Window::after(warmup, duration);
        let handles: Vec<_> = groups
            .into_iter()
            .map(|(workers, pace)| (pace, self.client.spawn(load::run(workers, pace, window))))
            .collect();
        tokio::time::sleep_until(window.measure).await;
        let before = procs::snapshot(&self.pids);
        tokio::time::sleep_until(window.end).await;
        let after = procs::snapshot(&self.pids);
        let cpu = procs::delta(&before, &after, window.measured().as_secs_f64());
        let mut out = Vec::new();
        for (pace, handle) in handles {
            let (workers, stats) = handle.await.expect("load run panicked");
            let offered = match pace {
                Pace::Rate(r) => Some(r),
                Pace::Closed => None,
            };
            out.push((workers, summarize(&stats, &cpu, offered)));
        }
        out
    }

    async fn phase(&self, workers: Vec<AnyWorker>, pace: Pace) -> (Vec<AnyWorker>, Phase) {
        self.phases(vec![(workers, pace)]).await.pop().expect("one group")
    }

    /// Opens `spec`'s connections, for windows run one at a time by [`Runner::window`].
    pub async fn open(&self, spec: Spec) -> anyhow::Result<Vec<AnyWorker>> {
        self.workers(spec.load, spec.connections).await
    }

    /// One window on connections already open, at `pace`: `warmup`, then `duration` measured.
    pub async fn window(
        &self,
        workers: Vec<AnyWorker>,
        pace: Pace,
        warmup: Duration,
        duration: Duration,
    ) -> (Vec<AnyWorker>, Phase) {
        self.phases_for(vec![(workers, pace)], warmup, duration).await.pop().expect("one group")
    }

    fn reset_peaks(&self) {
        for pid in &self.pids {
            procs::reset_peak(*pid);
        }
    }

    fn peaks(&self) -> Vec<f64> {
        self.pids.iter().map(|p| procs::status_kib(*p, "VmHWM").unwrap_or(0) as f64 / 1024.0).collect()
    }

    /// Saturation, then half the measured peak with corrected latency.
    pub async fn scenario(&self, spec: Spec) -> anyhow::Result<ScenarioResult> {
        self.reset_peaks();
        let workers = self.workers(spec.load, spec.connections).await?;
        let (workers, saturation) = self.phase(workers, Pace::Closed).await;
        let fixed = if saturation.rps > 0.0 {
            Some(self.phase(workers, Pace::Rate(saturation.rps / 2.0)).await.1)
        } else {
            None
        };
        Ok(ScenarioResult {
            name: spec.name,
            connections: spec.connections,
            saturation,
            fixed,
            peak_rss_mib: self.peaks(),
            flood: None,
        })
    }

    /// One open-loop window at `rate`, latency from each request's intended send time.
    pub async fn fixed(&self, spec: Spec, rate: f64) -> anyhow::Result<Phase> {
        let workers = self.workers(spec.load, spec.connections).await?;
        Ok(self.phase(workers, Pace::Rate(rate)).await.1)
    }

    /// Saturation only, one closed-loop window (the cost-growth comparison runs many).
    pub async fn saturation(&self, spec: Spec) -> anyhow::Result<ScenarioResult> {
        self.reset_peaks();
        let workers = self.workers(spec.load, spec.connections).await?;
        let (_, saturation) = self.phase(workers, Pace::Closed).await;
        Ok(ScenarioResult {
            name: spec.name,
            connections: spec.connections,
            saturation,
            fixed: None,
            peak_rss_mib: self.peaks(),
            flood: None,
        })
    }

    /// The shape's protected requests (bearer `/verify` for Warden) at a fixed rate, alone and
    /// while `login_connections` flood it (with logins for Warden), in `rounds` rounds of two
    /// windows each whose order alternates (alone first, then flood first, ...), as the logins
    /// are judged (`login_rounds.rs`). A single pair of windows on this shared machine gave
    /// ratios from 0.2x to 12x for the same build (BENCHMARKS.md, session 20): drift and a
    /// disturbed window now weigh on both sides alike.
    pub async fn flood(
        &self,
        shape: FloodShape,
        rate: f64,
        connections: usize,
        login_connections: usize,
        (rounds, warmup, window): (usize, Duration, Duration),
    ) -> anyhow::Result<ScenarioResult> {
        self.reset_peaks();
        let mut protected = self.workers(shape.protected, connections).await?;
        let mut logins = self.workers(shape.flooding, login_connections).await?;
        let mut judged = Vec::with_capacity(rounds.max(1));
        for round in 0..rounds.max(1) {
            let alone_first = round % 2 == 0;
            let mut without = None;
            if alone_first {
                let (back, phase) = self.window(protected, Pace::Rate(rate), warmup, window).await;
                (protected, without) = (back, Some(phase));
            }
            let groups = vec![(protected, Pace::Rate(rate)), (logins, Pace::Closed)];
            let mut results = self.phases_for(groups, warmup, window).await.into_iter();
            let (back, during) = results.next().expect("protected group");
            protected = back;
            let (back, flooded) = results.next().expect("login group");
            logins = back;
            let without = match without {
                Some(phase) => phase,
                None => {
                    let (back, phase) = self.window(protected, Pace::Rate(rate), warmup, window).await;
                    protected = back;
                    phase
                }
            };
            judged.push(FloodRound { without, during, logins: flooded });
        }
        let last = judged.last().expect("at least one round").during.clone();
        Ok(ScenarioResult {
            name: shape.name,
            connections,
            saturation: last,
            fixed: None,
            peak_rss_mib: self.peaks(),
            flood: Some(Flood { rounds: judged, login_connections, window_s: window.as_secs_f64() }),
        })
    }
}
