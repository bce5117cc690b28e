//! The command line and the run: ceilings, then each mode's scenarios, then the report.
use crate::fleet::{Fleet, Mode, Setup};
use crate::growth::{self, GrowthPlan};
use crate::process_args::{Defaults, ProcessArgs};
use crate::report::{ModeReport, Report};
use crate::scenarios::{self, Concurrency, Phase, Runner, ScenarioResult};
use crate::seed::Population;
use crate::{ceiling, fixtures, login_rounds, procs, redis_mem, relay, steadiness};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Redis database 13 (14 is the drill's); `info` logs, the audit log being part of the cost.
const DEFAULTS: Defaults = Defaults { redis_db: 13, rust_log: "info" };

#[derive(Debug, Parser)]
#[command(name = "warden-bench", about = "Load benchmark of Warden (issue 11)")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// The bare axum ceiling server (started by the bench itself).
    #[command(hide = true)]
    CeilingServer(ceiling::ServerArgs),
    /// A gRPC server answering health checks only (the relay ceiling's backend).
    #[command(hide = true)]
    CeilingBackend(relay::BackendArgs),
    /// The bare relay: two gRPC calls per HTTP request (the split-mode ceiling).
    #[command(hide = true)]
    CeilingRelay(relay::RelayArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Embedded,
    Split,
    Both,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Which deployment to measure.
    #[arg(long, value_enum, default_value = "both")]
    mode: ModeArg,
    /// Measured seconds per phase (each scenario has a saturation and a fixed-rate phase).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warm-up before each measured phase (default: a fifth of the duration, at most 2).
    #[arg(long)]
    warmup: Option<f64>,
    /// Seconds, short and small: checks that every scenario still runs. No thresholds.
    #[arg(long)]
    smoke: bool,
    /// Connections (or gRPC in-flight calls) for protected requests, refresh and mixed.
    #[arg(long)]
    connections: Option<usize>,
    /// Connections for logins and the login flood.
    #[arg(long)]
    login_connections: Option<usize>,
    /// Protected requests/s offered in the login-flood scenario [default: half the bearer
    /// `/verify` peak measured in the same run]. A fixed rate makes runs comparable with each
    /// other, and lets the flood run alone (`--only flood`).
    #[arg(long)]
    flood_rate: Option<f64>,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    #[command(flatten)]
    process: ProcessArgs,
    /// Extra environment for every Warden process, e.g. `--warden-env WARDEN_HASH_CONCURRENCY=1`.
    #[arg(long, value_parser = parse_env)]
    warden_env: Vec<(String, String)>,
    /// Run only scenarios whose name contains one of these (comma-separated), e.g. `bearer,gRPC`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Skip the argon2 and bare-axum ceilings.
    #[arg(long)]
    skip_ceilings: bool,
    /// Also write the markdown to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run only the cost-growth comparison (issue 11): per mode, two fleets seeded with a small
    /// and a large population, bearer and API-key `/verify`, CheckPermissions and login
    /// measured on both in alternating rounds. Smoke runs include it with tiny populations.
    #[arg(long)]
    growth: bool,
    /// Users (each with a live session, an API key and a role) in the small and the large
    /// population [default: 1000,1000000; smoke: 100,2000].
    #[arg(long, value_delimiter = ',')]
    growth_users: Vec<u64>,
    /// Roles defined in the small and the large population [default: 10,10000; smoke: 10,100].
    #[arg(long, value_delimiter = ',')]
    growth_roles: Vec<u64>,
    /// Saturation windows per figure and population [default: 5; smoke: 1].
    #[arg(long)]
    growth_rounds: Option<usize>,
}

/// Runs the parsed command line.
pub fn run_cli(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Some(Sub::CeilingServer(args)) => ceiling::serve(args).map(|()| true),
        Some(Sub::CeilingBackend(args)) => relay::serve_backend(args).map(|()| true),
        Some(Sub::CeilingRelay(args)) => relay::serve_relay(args).map(|()| true),
        None => bench(cli.run),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("warden-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s}: expected KEY=VALUE"))
}

/// Everything a run is configured with.
struct Plan {
    args: RunArgs,
    setup: Setup,
    duration: Duration,
    warmup: Duration,
    argon_duration: Duration,
    /// Rounds of the login judgement, and the seconds of each login window and reference.
    login_rounds: (usize, Duration),
    concurrency: Concurrency,
    session_logins: usize,
    cores: usize,
    /// The cost-growth comparison, when it runs.
    growth: Option<GrowthPlan>,
}

impl Plan {
    fn new(args: RunArgs) -> anyhow::Result<Plan> {
        if let Some(rate) = args.flood_rate {
            anyhow::ensure!(rate.is_finite() && rate > 0.0, "--flood-rate must be a positive number of requests/s");
        }
        let duration = if args.smoke { 0.8 } else { args.duration };
        let warmup = args.warmup.unwrap_or(if args.smoke { 0.2 } else { (duration / 5.0).min(2.0) });
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let concurrency = Concurrency {
            requests: args.connections.unwrap_or(if args.smoke { 4 } else { 32 }),
            logins: args.login_connections.unwrap_or(if args.smoke { 2 } else { 2 * cores + 2 }),
        };
        let setup = args.process.setup(DEFAULTS, args.warden_env.clone())?;
        let growth = (args.growth || args.smoke)
            .then(|| growth_plan(&args, &setup, concurrency, duration, warmup))
            .transpose()?;
        Ok(Plan {
            growth,
            duration: Duration::from_secs_f64(duration),
            warmup: Duration::from_secs_f64(warmup),
            argon_duration: Duration::from_secs_f64(if args.smoke { 0.5 } else { duration.min(5.0) }),
            session_logins: if args.smoke { 3 } else { 50 },
            // Four rounds: R L, L R, R L, L R.
            login_rounds: if args.smoke { (2, Duration::from_millis(300)) } else { (4, Duration::from_secs(2)) },
            concurrency,
            cores,
            setup,
            args,
        })
    }

    fn wanted(&self, name: &str) -> bool {
        self.args.only.is_empty() || self.args.only.iter().any(|o| name.to_lowercase().contains(&o.to_lowercase()))
    }

    fn modes(&self) -> Vec<Mode> {
        match self.args.mode {
            ModeArg::Embedded => vec![Mode::Embedded],
            ModeArg::Split => vec![Mode::Split],
            ModeArg::Both => vec![Mode::Embedded, Mode::Split],
        }
    }
}

/// Sizes and fleets of the cost-growth comparison.
fn growth_plan(
    args: &RunArgs,
    setup: &Setup,
    concurrency: Concurrency,
    duration: f64,
    warmup: f64,
) -> anyhow::Result<GrowthPlan> {
    let pair = |flag: &str, given: &[u64], full: [u64; 2], smoke: [u64; 2]| match given {
        [small, large] => Ok([*small, *large]),
        [] if args.smoke => Ok(smoke),
        [] => Ok(full),
        _ => Err(anyhow::anyhow!("{flag} takes two numbers, SMALL,LARGE")),
    };
    let users = pair("--growth-users", &args.growth_users, [1_000, 1_000_000], [100, 2_000])?;
    let roles = pair("--growth-roles", &args.growth_roles, [10, 10_000], [10, 100])?;
    anyhow::ensure!(
        users.iter().all(|u| *u >= growth::MIN_USERS) && roles.iter().all(|r| *r >= growth::MIN_ROLES),
        "--growth-users needs at least {} and --growth-roles at least {}",
        growth::MIN_USERS,
        growth::MIN_ROLES
    );
    // The large fleet's data must not share a store with the small one's: a private
    // redis-server per fleet, or another database index of the shared Redis.
    let mut large = setup.clone();
    if !args.process.private_redis {
        let db = (args.process.redis_db(DEFAULTS) + 1) % 16;
        large.redis_url = Some(redis_mem::with_db(&args.process.redis_url, db));
    }
    Ok(GrowthPlan {
        setups: [setup.clone(), large],
        populations: [Population { users: users[0], roles: roles[0] }, Population { users: users[1], roles: roles[1] }],
        rounds: args.growth_rounds.unwrap_or(if args.smoke { 1 } else { 5 }).max(1),
        probes: if args.smoke { 1 } else { 5 },
        warmup: Duration::from_secs_f64(warmup),
        duration: Duration::from_secs_f64(duration),
        concurrency,
        only: args.only.clone(),
    })
}

fn bench(args: RunArgs) -> anyhow::Result<bool> {
    let plan = Plan::new(args)?;
    // The load generator gets a runtime of its own; the orchestration stays off its threads.
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.args.client_threads.max(1))
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let main = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let report = main.block_on(run(&plan, client.handle().clone()))?;
    let md = report.markdown();
    println!("{md}");
    if let Some(path) = &plan.args.output {
        std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &plan.args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    client.shutdown_timeout(Duration::from_secs(1));
    Ok(all_ran(&report))
}

/// Every scenario that ran had successes (the smoke criterion; also checked on full runs).
fn all_ran(report: &Report) -> bool {
    let mut ok = report.argon2.iter().all(|a| a.per_second > 0.0) && report.failures.is_empty();
    let phases = report.ceilings.iter().chain(report.modes.iter().flat_map(|m| m.scenarios.iter()));
    for s in phases {
        let fixed_ok = s.fixed.as_ref().is_none_or(|f| f.ok > 0);
        if s.saturation.ok == 0 || !fixed_ok {
            eprintln!("warden-bench: scenario `{}` had no successful request", s.name);
            ok = false;
        }
    }
    ok
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1).map(str::trim))
        .unwrap_or("unknown CPU")
        .to_owned();
    let mem = procs::status_kib_file("/proc/meminfo", "MemTotal").map(|k| k / 1024 / 1024).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{model}, {cores} cores, {mem} GiB RAM, Linux {}", kernel.trim())
}

async fn run(plan: &Plan, client: tokio::runtime::Handle) -> anyhow::Result<Report> {
    let c = plan.concurrency;
    let settings = format!(
        "{} s measured + {} s warm-up per phase; {} connections for requests, {} for logins; load generator: {} \
         thread(s) in the bench process ({} build); warden: `{}`; RUST_LOG={}{}; split-mode Redis: {}",
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        c.requests,
        c.logins,
        plan.args.client_threads,
        if cfg!(debug_assertions) { "debug" } else { "release" },
        plan.setup.warden.display(),
        plan.setup.rust_log,
        plan.setup.extra_env.iter().map(|(k, v)| format!(", {k}={v}")).collect::<String>(),
        if plan.setup.private_redis {
            "a private redis-server".to_owned()
        } else {
            format!("db {} of {}", plan.args.process.redis_db(DEFAULTS), plan.args.process.redis_url)
        }
    );
    eprintln!("warden-bench: {settings}");
    let mut report = Report {
        machine: machine(),
        settings,
        argon2: Vec::new(),
        steadiness: Vec::new(),
        ceilings: Vec::new(),
        modes: Vec::new(),
        growth: Vec::new(),
        failures: Vec::new(),
    };
    // `--growth` runs the comparison alone; a smoke run runs it after everything else.
    let regular = !plan.args.growth;
    if regular && !plan.args.skip_ceilings {
        eprintln!("warden-bench: argon2id ceilings on {} threads", plan.cores);
        let (threads, duration) = (plan.cores, plan.argon_duration);
        report.argon2 = tokio::task::spawn_blocking(move || ceiling::argon2_rates(threads, duration)).await??;
    }
    for mode in plan.modes().into_iter().filter(|_| regular) {
        if !plan.args.skip_ceilings {
            let (threads, duration, when) = (plan.cores, plan.argon_duration, format!("before {}", short(mode)));
            eprintln!("warden-bench: the cores' steadiness on {threads} threads, {when}");
            report
                .steadiness
                .push(tokio::task::spawn_blocking(move || steadiness::measure(threads, duration, &when)).await?);
        }
        eprintln!("warden-bench: starting {mode}");
        let mut fleet = Fleet::start(mode, &plan.setup).await?;
        let result = run_mode(plan, &client, &mut fleet, &mut report).await;
        fleet.stop().await;
        report.modes.push(result?);
    }
    if let Some(growth_plan) = plan.growth.as_ref().filter(|g| g.any_wanted()) {
        for mode in plan.modes() {
            let started = std::time::Instant::now();
            // A failure in one mode keeps what the other measured (and fails the run).
            match growth::run(growth_plan, mode, &client).await {
                Ok(g) => report.growth.push(g),
                Err(e) => {
                    eprintln!("warden-bench: [growth] {mode} failed: {e:#}");
                    report.failures.push(format!("cost growth, {mode}: {e:#}"));
                }
            }
            eprintln!("warden-bench: [growth] {mode} took {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    Ok(report)
}

async fn run_mode(
    plan: &Plan,
    client: &tokio::runtime::Handle,
    fleet: &mut Fleet,
    report: &mut Report,
) -> anyhow::Result<ModeReport> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_start_mib = fleet.rss_mib();
    let fx = fleet.fixture().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle_mib = fleet.rss_mib();
    let session_bytes = match &fleet.redis_url {
        Some(url) => Some(redis_mem::session_bytes(url, &fx, plan.session_logins).await?),
        None => None,
    };
    if !plan.args.skip_ceilings && report.ceilings.is_empty() {
        report.ceilings = ceilings(plan, client, &fx).await?;
    }
    let runner = Runner::new(client.clone(), fleet.pids(), plan.warmup, plan.duration, fx.clone());
    let mut results: Vec<ScenarioResult> = Vec::new();
    let (mut login_rounds, mut login_floor, mut flood_floor) = (None, None, None);
    for spec in scenarios::specs(plan.concurrency).into_iter().filter(|s| plan.wanted(s.name)) {
        eprintln!("warden-bench: [{}] {}", short(fleet.mode), spec.name);
        let result = runner.scenario(spec).await?;
        fleet.check_alive()?;
        results.push(result);
        if spec.name == scenarios::LOGIN && !plan.args.skip_ceilings {
            let (rounds, window) = plan.login_rounds;
            eprintln!("warden-bench: [{}] {rounds} login rounds next to the argon2 references", short(fleet.mode));
            let warmup = plan.warmup.min(Duration::from_millis(500));
            login_rounds = Some(login_rounds::judge(&runner, spec, rounds, warmup, window, plan.cores).await?);
            fleet.check_alive()?;
            login_floor = Some(judge_login_floor(plan, client, &fx, fleet, warmup).await?);
        }
    }
    if plan.wanted(scenarios::FLOOD) {
        eprintln!("warden-bench: [{}] {}", short(fleet.mode), scenarios::FLOOD);
        // As asked, else half the protected peak measured above, else a modest rate.
        let peak = results.iter().find(|r| r.name == scenarios::BEARER_VERIFY).map(|r| r.saturation.rps);
        let half_peak = peak.filter(|p| *p > 0.0).map(|p| p / 2.0);
        let rate = plan.args.flood_rate.or(half_peak).unwrap_or(if plan.args.smoke { 50.0 } else { 1000.0 });
        // In rounds as the logins are, with windows of the same length.
        let (rounds, window) = plan.login_rounds;
        let judged = (rounds, plan.warmup.min(Duration::from_millis(500)), window);
        let c = plan.concurrency;
        results.push(runner.flood(scenarios::WARDEN_FLOOD, rate, c.requests, c.logins, judged).await?);
        fleet.check_alive()?;
        if !plan.args.skip_ceilings {
            eprintln!("warden-bench: [floor] {} at {rate:.0}/s", scenarios::flood_floor_shape(fleet.mode).name);
            flood_floor = Some(judge_flood_floor(plan, client, &fx, fleet, rate, judged).await?);
        }
    }
    let static_floor = match results.iter().find(|r| r.name == scenarios::BEARER_VERIFY).and_then(|r| r.fixed.as_ref())
    {
        Some(verify) if fleet.mode == Mode::Embedded && !plan.args.skip_ceilings => {
            let rate = verify.offered.unwrap_or(verify.rps);
            eprintln!("warden-bench: [ceiling] {} at {rate:.0}/s", scenarios::CEILING_STATIC);
            Some(static_floor(plan, client, &fx, rate).await?)
        }
        _ => None,
    };
    Ok(ModeReport {
        mode: fleet.mode,
        processes: fleet.names(),
        rss_start_mib,
        rss_idle_mib,
        scenarios: results,
        session_bytes,
        static_floor,
        login_rounds,
        login_floor,
        flood_floor,
    })
}

fn short(mode: Mode) -> &'static str {
    match mode {
        Mode::Embedded => "embedded",
        Mode::Split => "split",
    }
}

/// The bare axum server (this binary, `ceiling-server`) in its own process, and a runner
/// that measures it.
struct CeilingServer {
    server: procs::Proc,
    runner: Runner,
    /// Holds the login floor's SQLite store; removed with the server.
    store_dir: PathBuf,
}

impl CeilingServer {
    async fn start(plan: &Plan, client: &tokio::runtime::Handle, fx: &fixtures::Fixture) -> anyhow::Result<Self> {
        let (addr, grpc) = (procs::free_addr()?, procs::free_addr()?);
        let exe = std::env::current_exe()?;
        let dir = std::env::temp_dir();
        let store_dir = dir.join(format!("warden-bench-floor-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store_dir)?;
        let args = ceiling_server_args(addr, grpc, &fx.jwk_x, &fx.issuer, &store_dir.join("floor.db"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = procs::Proc::spawn("bare-axum", &exe, &args, &Default::default(), &dir)?;
        procs::wait_listening(&mut server, addr, Duration::from_secs(10)).await?;
        procs::wait_listening(&mut server, grpc, Duration::from_secs(10)).await?;
        let fx =
            fixtures::Fixture { ceiling_http: Some(addr), ceiling_grpc: Some(format!("http://{grpc}")), ..fx.clone() };
        let runner = Runner::new(client.clone(), vec![server.pid], plan.warmup, plan.duration, fx);
        Ok(CeilingServer { server, runner, store_dir })
    }

    async fn stop(self) {
        self.server.stop().await;
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

/// The bare relay (`relay.rs`), split mode's shape, with its first backend doing what it is
/// asked (nothing for the relay ceiling, a login's least work for the floor), and a runner
/// that measures it.
struct RelayServer {
    fleet: relay::RelayFleet,
    runner: Runner,
}

impl RelayServer {
    async fn start(
        plan: &Plan,
        client: &tokio::runtime::Handle,
        fx: &fixtures::Fixture,
        first_backend: &relay::FirstBackend,
    ) -> anyhow::Result<Self> {
        let fleet = relay::RelayFleet::start(first_backend).await?;
        let fx = fixtures::Fixture { ceiling_http: Some(fleet.addr), ..fx.clone() };
        let runner = Runner::new(client.clone(), fleet.pids(), plan.warmup, plan.duration, fx);
        Ok(RelayServer { fleet, runner })
    }

    async fn stop(self) {
        self.fleet.stop().await;
    }
}

/// The `ceiling-server` command line. `--x=…` in one piece: a base64url key may begin with
/// `-`, which clap would otherwise take for a flag (a run failed so, session 17).
fn ceiling_server_args(addr: SocketAddr, grpc: SocketAddr, x: &str, issuer: &str, store: &Path) -> Vec<String> {
    let (addr, grpc, store) = (addr.to_string(), grpc.to_string(), store.display().to_string());
    let args = ["ceiling-server", "--addr", &addr, "--grpc-addr", &grpc, "--issuer", issuer, "--store", &store]
        .map(str::to_owned);
    [args.as_slice(), &[format!("--x={x}")]].concat()
}

/// Each ceiling at saturation and at half its own peak.
async fn ceilings(
    plan: &Plan,
    client: &tokio::runtime::Handle,
    fx: &fixtures::Fixture,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let ceiling = CeilingServer::start(plan, client, fx).await?;
    let mut out = Vec::new();
    for spec in scenarios::ceiling_specs(plan.concurrency) {
        eprintln!("warden-bench: [ceiling] {}", spec.name);
        match ceiling.runner.scenario(spec).await {
            Ok(r) => out.push(r),
            Err(e) => {
                ceiling.stop().await;
                return Err(e);
            }
        }
    }
    ceiling.stop().await;
    out.push(relay_ceiling(plan, client, fx).await?);
    Ok(out)
}

/// The split shape with no work (see `relay.rs`), at saturation and at half its peak.
async fn relay_ceiling(
    plan: &Plan,
    client: &tokio::runtime::Handle,
    fx: &fixtures::Fixture,
) -> anyhow::Result<ScenarioResult> {
    let spec = scenarios::relay_spec(plan.concurrency);
    eprintln!("warden-bench: [ceiling] {}", spec.name);
    let relay = RelayServer::start(plan, client, fx, &relay::FirstBackend::Nothing).await?;
    let result = relay.runner.scenario(spec).await;
    relay.stop().await;
    result
}

/// The server of a floor of the fleet's shape (`floor.rs`): the bare axum server in embedded
/// mode; in split mode the bare relay whose first backend does a split login's least work
/// against the fleet's own PostgreSQL database and Redis.
enum FloorServer {
    Embedded(Box<CeilingServer>),
    Split(RelayServer),
}

impl FloorServer {
    async fn start(
        plan: &Plan,
        client: &tokio::runtime::Handle,
        fx: &fixtures::Fixture,
        fleet: &Fleet,
    ) -> anyhow::Result<Self> {
        Ok(match fleet.mode {
            Mode::Embedded => FloorServer::Embedded(Box::new(CeilingServer::start(plan, client, fx).await?)),
            Mode::Split => {
                let login = relay::FirstBackend::Login {
                    database_url: fleet.database_url().context("split mode has a PostgreSQL database")?,
                    redis_url: fleet.redis_url.clone().context("split mode has a Redis")?,
                };
                FloorServer::Split(RelayServer::start(plan, client, fx, &login).await?)
            }
        })
    }

    fn runner(&self) -> &Runner {
        match self {
            FloorServer::Embedded(server) => &server.runner,
            FloorServer::Split(relay) => &relay.runner,
        }
    }

    async fn stop(self) {
        match self {
            FloorServer::Embedded(server) => server.stop().await,
            FloorServer::Split(relay) => relay.stop().await,
        }
    }
}

/// The login floor of the fleet's shape (`floor.rs`), judged in rounds as the logins are.
async fn judge_login_floor(
    plan: &Plan,
    client: &tokio::runtime::Handle,
    fx: &fixtures::Fixture,
    fleet: &Fleet,
    warmup: Duration,
) -> anyhow::Result<login_rounds::LoginRounds> {
    let spec = scenarios::floor_spec(plan.concurrency, fleet.mode);
    let (rounds, window) = plan.login_rounds;
    eprintln!("warden-bench: [floor] {}: {rounds} rounds next to the argon2 references", spec.name);
    let floor = FloorServer::start(plan, client, fx, fleet).await?;
    let judged = login_rounds::judge(floor.runner(), spec, rounds, warmup, window, plan.cores).await;
    floor.stop().await;
    judged
}

/// The login flood's floor of the fleet's shape (`scenarios::flood_floor_shape`), in the same
/// rounds at the same rate as Warden's flood.
async fn judge_flood_floor(
    plan: &Plan,
    client: &tokio::runtime::Handle,
    fx: &fixtures::Fixture,
    fleet: &Fleet,
    rate: f64,
    judged: (usize, Duration, Duration),
) -> anyhow::Result<scenarios::Flood> {
    let floor = FloorServer::start(plan, client, fx, fleet).await?;
    let (c, shape) = (plan.concurrency, scenarios::flood_floor_shape(fleet.mode));
    let result = floor.runner().flood(shape, rate, c.requests, c.logins, judged).await;
    floor.stop().await;
    result?.flood.context("a flood scenario has rounds")
}

/// The floor under Warden's latency at a fixed rate: the bare static handler offered the
/// same rate on the same cores by the same load generator. Warden cannot answer faster
/// than a server that does nothing.
async fn static_floor(
    plan: &Plan,
    client: &tokio::runtime::Handle,
    fx: &fixtures::Fixture,
    rate: f64,
) -> anyhow::Result<Phase> {
    let ceiling = CeilingServer::start(plan, client, fx).await?;
    let spec = scenarios::ceiling_specs(plan.concurrency).into_iter().find(|s| s.name == scenarios::CEILING_STATIC);
    let phase = ceiling.runner.fixed(spec.expect("the static ceiling is a ceiling spec"), rate).await;
    ceiling.stop().await;
    phase
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_server_gets_a_key_that_begins_with_a_dash() {
        let (addr, grpc) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        let args = ceiling_server_args(addr, grpc, "-_key", "http://warden", Path::new("/tmp/floor.db"));
        let cli = Cli::try_parse_from(std::iter::once("warden-bench".to_owned()).chain(args)).unwrap();
        let Some(Sub::CeilingServer(server)) = cli.command else { panic!("not the ceiling server: {cli:?}") };
        assert_eq!((server.x.as_str(), server.issuer.as_str(), server.addr), ("-_key", "http://warden", addr));
    }

    /// The split floor's backend touches the stores only around a hash, and needs both.
    #[test]
    fn the_floor_backend_takes_both_stores_with_a_hash() {
        let parse = |args: &[&str]| {
            let line = ["warden-bench", "ceiling-backend", "--addr", "127.0.0.1:1"].iter().chain(args);
            Cli::try_parse_from(line).map(|cli| match cli.command {
                Some(Sub::CeilingBackend(b)) => (b.hash, b.postgres, b.redis),
                other => panic!("not the backend: {other:?}"),
            })
        };
        let (db, redis) = ("postgres://h/d".to_owned(), "redis://h".to_owned());
        let login = parse(&["--hash", "--postgres", &db, "--redis", &redis]).unwrap();
        assert_eq!(login, (true, Some(db.clone()), Some(redis.clone())));
        assert_eq!(parse(&["--hash"]).unwrap(), (true, None, None));
        assert!(parse(&["--postgres", &db, "--redis", &redis]).is_err(), "stores without a hash");
        assert!(parse(&["--hash", "--postgres", &db]).is_err(), "PostgreSQL without Redis");
        assert!(parse(&["--hash", "--redis", &redis]).is_err(), "Redis without PostgreSQL");
    }
}
