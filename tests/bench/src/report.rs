//! The run's results as markdown: ceilings, one table per mode, and the issue's targets.
use crate::ceiling::ArgonRate;
use crate::fleet::Mode;
use crate::growth::{self, GrowthReport};
use crate::login_rounds::LoginRounds;
use crate::redis_mem::SessionBytes;
use crate::scenarios::{self as sc, Phase, ScenarioResult};
use crate::steadiness::{self, Steadiness};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Debug, Serialize)]
pub struct ModeReport {
    pub mode: Mode,
    pub processes: Vec<String>,
    /// VmRSS once listening, before any request.
    pub rss_start_mib: Vec<f64>,
    /// VmRSS after the fixtures (a login, an API key), a second later.
    pub rss_idle_mib: Vec<f64>,
    pub scenarios: Vec<ScenarioResult>,
    pub session_bytes: Option<SessionBytes>,
    /// The bare static handler at bearer `/verify`'s half-peak rate (embedded mode).
    pub static_floor: Option<Phase>,
    /// Login windows alternating with the argon2 references: the login target is judged on them.
    pub login_rounds: Option<LoginRounds>,
    /// The same rounds for the mode's shape doing the least a login must: its stores around
    /// one hash per request (`floor.rs`): the best ratio a login of that shape can reach here.
    pub login_floor: Option<LoginRounds>,
    /// The login flood's rounds for the mode's bare shape (`scenarios::flood_floor_shape`):
    /// what the hashing (and in split mode a login's least store work) alone costs the
    /// fastest server of that shape on these cores.
    pub flood_floor: Option<sc::Flood>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub settings: String,
    pub argon2: Vec<ArgonRate>,
    /// How steady the cores' speed was with nothing else running, before each mode (`steadiness.rs`).
    pub steadiness: Vec<Steadiness>,
    pub ceilings: Vec<ScenarioResult>,
    pub modes: Vec<ModeReport>,
    /// The cost-growth comparison (`--growth`, and in smoke runs), per mode.
    pub growth: Vec<GrowthReport>,
    /// Parts of the run that failed (the run then fails too).
    pub failures: Vec<String>,
}

fn f0(x: f64) -> String {
    format!("{x:.0}")
}

fn f1(x: f64) -> String {
    format!("{x:.1}")
}

fn lat(x: f64) -> String {
    if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

fn mib_list(names: &[String], values: &[f64]) -> String {
    if names.len() == 1 {
        return f1(values.first().copied().unwrap_or(0.0));
    }
    names.iter().zip(values).map(|(n, v)| format!("{n} {v:.1}")).collect::<Vec<_>>().join(", ")
}

impl Report {
    pub fn fastest_argon2(&self) -> Option<&ArgonRate> {
        self.argon2.iter().max_by(|a, b| a.per_second.total_cmp(&b.per_second))
    }

    /// Logins/s in `mode`, the argon2 rate they are judged against, and whether the login
    /// rounds measured both (their means: windows alternating with the references); else the
    /// saturation phase and the fastest of the run's ceilings.
    fn login_judgement(&self, mode: Mode) -> Option<(f64, f64, bool)> {
        let m = self.mode(mode)?;
        if let Some(r) = &m.login_rounds {
            return Some((r.logins_per_second(), r.reference_per_second(), true));
        }
        let login = m.scenarios.iter().find(|s| s.name == sc::LOGIN)?;
        Some((login.saturation.rps, self.fastest_argon2()?.per_second, false))
    }

    fn ceiling(&self, name: &str) -> Option<f64> {
        self.ceilings.iter().find(|c| c.name == name).map(|c| c.saturation.rps)
    }

    /// What the bare static handler's p99 was at a comparable fixed rate, for the half-peak rows.
    fn floor_note(&self, mode: Mode) -> String {
        let floor = self.mode(mode).and_then(|m| m.static_floor.as_ref());
        match floor {
            Some(f) => {
                format!(" (bare static handler at {}/s: {:.2} ms)", f0(f.offered.unwrap_or(f.rps)), f.p99_ms)
            }
            None => String::new(),
        }
    }

    /// How long the idle cores' slowest spell lasted in this run's probes, for the half-peak rows.
    fn stall_note(&self) -> String {
        let longest = self.steadiness.iter().map(|s| s.longest_slow_ms).fold(0.0, f64::max);
        if longest > 0.0 {
            format!(
                " (idle cores' longest spell at ≥ {:.0}× slower in this run's probes: {longest:.0} ms)",
                steadiness::SLOW
            )
        } else {
            String::new()
        }
    }

    /// The scenario's throughput as a fraction of the ceiling that bounds it.
    fn ratio(&self, mode: Mode, s: &ScenarioResult) -> String {
        let rps = s.saturation.rps;
        let of = |c: Option<f64>| c.filter(|c| *c > 0.0).map(|c| format!("{:.2}", rps / c));
        match s.name {
            // Judged on the login rounds where they ran, not on this row's saturation phase.
            sc::LOGIN => self.login_judgement(mode).filter(|(_, reference, _)| *reference > 0.0).map(
                |(logins, reference, rounds)| {
                    format!("{:.2} of argon2{}", logins / reference, if rounds { " (in rounds)" } else { "" })
                },
            ),
            // A unary RPC answered from memory: the bare tonic server bounds it.
            sc::GRPC_CHECK | sc::GRPC_AUTHORIZE => {
                of(self.ceiling(sc::CEILING_GRPC)).map(|r| format!("{r} of bare tonic"))
            }
            sc::FLOOD => None,
            _ => match (of(self.ceiling(sc::CEILING_JWT)), of(self.ceiling(sc::CEILING_STATIC))) {
                (Some(j), Some(s)) => {
                    // Split requests cross processes: the bare relay bounds them too.
                    let relay = of(self.ceiling(sc::CEILING_RELAY)).filter(|_| mode == Mode::Split);
                    Some(match relay {
                        Some(r) => format!("{j} of jwt, {s} of static, {r} of relay"),
                        None => format!("{j} of jwt, {s} of static"),
                    })
                }
                _ => None,
            },
        }
        .unwrap_or_else(|| "—".into())
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "**Machine:** {}\n\n**Settings:** {}\n", self.machine, self.settings);
        self.argon2_table(&mut md);
        self.steadiness_table(&mut md);
        self.ceiling_table(&mut md);
        for mode in &self.modes {
            self.mode_tables(&mut md, mode);
        }
        for g in &self.growth {
            growth_tables(&mut md, g);
        }
        for f in &self.failures {
            let _ = writeln!(md, "**Failed:** {f}\n");
        }
        self.targets(&mut md);
        md
    }

    fn argon2_table(&self, md: &mut String) {
        if self.argon2.is_empty() {
            return;
        }
        md.push_str("### Ceiling: Argon2id verification (m=19456 KiB, t=2, p=1), all cores\n\n");
        md.push_str(
            "| implementation | threads | verifications/s | ms each (one core) | minor page faults each \
             | other processes' cores |\n",
        );
        md.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
        for a in &self.argon2 {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {:.0} | {:.2} |",
                a.name,
                a.threads,
                f1(a.per_second),
                a.ms_each,
                a.faults_each,
                a.other_cores
            );
        }
        md.push('\n');
    }

    fn steadiness_table(&self, md: &mut String) {
        if self.steadiness.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "### The cores' steadiness\n\nWith nothing else running, one thread per core timed the same piece of \
             arithmetic over and over. Each 10 ms window's mean piece, over its thread's fastest piece: a steady \
             machine stays near 1.0×, and while a window is at 2× every server has half its capacity. A slow spell \
             is a run of windows at ≥ {:.0}×; a stalled window is at ≥ {:.0}× (the core mostly taken away).\n\n\
             | when | threads | seconds | fastest piece ms | windows | median | p99 | worst | stalled windows | \
             longest slow spell |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            steadiness::SLOW,
            steadiness::STALLED,
        );
        for s in &self.steadiness {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.3} | {} | {:.2}× | {:.2}× | {:.1}× | {} | {:.0} ms |",
                s.when,
                s.threads,
                s.seconds,
                s.fastest_ms,
                s.windows,
                s.median,
                s.p99,
                s.worst,
                share(s.stalled_share),
                s.longest_slow_ms
            );
        }
        md.push('\n');
    }

    fn ceiling_table(&self, md: &mut String) {
        if self.ceilings.is_empty() {
            return;
        }
        md.push_str(
            "### Ceiling: bare servers (axum and tonic: same runtime shape as warden, own process; the relay)\n\n",
        );
        md.push_str(
            "| server | conns | req/s | p50 ms | p99 ms | max ms | errors | server CPU µs/req | client CPU µs/req \
             | other processes' cores | at ½ peak: p50 / p99 / max ms |\n",
        );
        md.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
        for c in &self.ceilings {
            let s = &c.saturation;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
                c.name,
                c.connections,
                f0(s.rps),
                lat(s.p50_ms),
                lat(s.p99_ms),
                lat(s.max_ms),
                s.errors,
                f1(s.cpu_us_per_req),
                f1(s.client_us_per_req),
                s.other_cores,
                fixed_cell(c.fixed.as_ref())
            );
        }
        md.push('\n');
    }

    fn mode_tables(&self, md: &mut String, m: &ModeReport) {
        let _ = writeln!(md, "### {}\n", m.mode);
        let _ = writeln!(
            md,
            "Processes: {}. RSS MiB once listening: {}; idle after the fixtures: {}.\n",
            m.processes.join(", "),
            mib_list(&m.processes, &m.rss_start_mib),
            mib_list(&m.processes, &m.rss_idle_mib)
        );
        md.push_str(
            "| scenario | conns | req/s | p50 ms | p99 ms | max ms | errors | Warden CPU µs/req | PG+Redis CPU µs/req \
             | client CPU µs/req | cores busy (other) | peak RSS MiB | vs ceiling |\n",
        );
        md.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n");
        for s in m.scenarios.iter().filter(|s| s.flood.is_none()) {
            let p = &s.saturation;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} ({:.2}) | {} | {} |",
                s.name,
                s.connections,
                f0(p.rps),
                lat(p.p50_ms),
                lat(p.p99_ms),
                lat(p.max_ms),
                p.errors,
                f0(p.cpu_us_per_req),
                f0(p.stores_us_per_req),
                f0(p.client_us_per_req),
                p.machine_cores,
                p.other_cores,
                mib_list(&m.processes, &s.peak_rss_mib),
                self.ratio(m.mode, s)
            );
        }
        let list = |xs: &[f64]| xs.iter().map(|x| f0(*x)).collect::<Vec<_>>().join(", ");
        let failed = |r: &LoginRounds| if r.errors > 0 { format!(", {} failed", r.errors) } else { String::new() };
        if let Some(r) = &m.login_rounds {
            let _ = writeln!(
                md,
                "\nLogins are judged in {} rounds of {:.1} s, login windows alternating with the argon2 references \
                 (R L, L R, ...; `login_rounds.rs`): logins {}/s (mean {}{}); {} on {} threads {}/s (mean {}).",
                r.logins.len(),
                r.window_s,
                list(&r.logins),
                f1(r.logins_per_second()),
                failed(r),
                r.reference,
                r.threads,
                list(&r.references),
                f1(r.reference_per_second()),
            );
        }
        if let Some(f) = &m.login_floor {
            let _ = writeln!(
                md,
                "\nThe floor of this shape, in rounds the same way (`floor.rs`: {}): {}/s (mean {}{}) against \
                 {}/s (mean {}), **{} of argon2**. A login of this shape does all of this and more.",
                if m.mode == Mode::Embedded { sc::FLOOR_EMBEDDED } else { sc::FLOOR_SPLIT },
                list(&f.logins),
                f1(f.logins_per_second()),
                failed(f),
                list(&f.references),
                f1(f.reference_per_second()),
                f.ratio().map_or_else(|| "—".into(), |x| format!("{x:.2}")),
            );
        }
        md.push_str(
            "\nAt a fixed offered rate of half the measured peak (latency from the due time while the connection \
             was still busy with an earlier answer, else from the send):\n\n",
        );
        md.push_str("| scenario | offered/s | achieved/s | p50 ms | p99 ms | max ms | errors |\n");
        md.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        let mut fixed_row = |name: &str, f: &Phase| {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                name,
                f0(f.offered.unwrap_or(0.0)),
                f0(f.rps),
                lat(f.p50_ms),
                lat(f.p99_ms),
                lat(f.max_ms),
                f.errors
            );
        };
        for s in &m.scenarios {
            if let Some(f) = &s.fixed {
                fixed_row(s.name, f);
            }
        }
        if let Some(f) = &m.static_floor {
            fixed_row(&format!("floor: {}, at bearer `/verify`'s rate", sc::CEILING_STATIC), f);
        }
        if m.processes.len() > 1 {
            md.push_str("\nCPU µs per request by process (saturation):\n\n");
            let _ = writeln!(md, "| scenario | {} |", m.processes.join(" | "));
            let _ = writeln!(md, "| --- |{}", " ---: |".repeat(m.processes.len()));
            for s in m.scenarios.iter().filter(|s| s.flood.is_none()) {
                let p = &s.saturation;
                let cells: Vec<String> =
                    p.cores_by_proc.iter().map(|c| f0(if p.rps > 0.0 { c * 1e6 / p.rps } else { 0.0 })).collect();
                let _ = writeln!(md, "| {} | {} |", s.name, cells.join(" | "));
            }
        }
        for s in &m.scenarios {
            if let Some(f) = &s.flood {
                flood_table(
                    md,
                    s.connections,
                    f,
                    ("Login flood", "bearer `/verify`", "logging in (closed loop)", "logins/s"),
                );
                if let Some(floor) = &m.flood_floor {
                    let what = match m.mode {
                        Mode::Embedded => (
                            "The floor of this flood (bare axum in its own process: Warden's hasher and nothing else \
                             of a login or of a protected request)",
                            "the static body",
                            "asking it for one Warden hash each (`GET /hash`, closed loop)",
                            "hashes/s",
                        ),
                        Mode::Split => (
                            "The floor of this flood (the bare relay's three processes: a split request's two trips \
                             without their work, and a split login's least work around Warden's hasher)",
                            "`GET /relay`",
                            "logging in to it (`GET /login`: the first backend reads PostgreSQL and Redis, hashes, \
                             writes Redis; closed loop)",
                            "logins/s",
                        ),
                    };
                    flood_table(md, s.connections, floor, what);
                }
            }
        }
        if let Some(b) = &m.session_bytes {
            let _ = writeln!(
                md,
                "\nRedis per session: a user's only session {:.0} B (its `warden:sessions:<user>` hash, \
                 with {} B of keyspace overhead), each further session of a user {:.0} B ({} logins).",
                b.first,
                crate::redis_mem::KEYSPACE_OVERHEAD,
                b.further,
                b.sessions
            );
        }
        let errors: Vec<String> = m
            .scenarios
            .iter()
            .flat_map(|s| [Some(&s.saturation), s.fixed.as_ref()].into_iter().flatten().map(move |p| (s.name, p)))
            .filter_map(|(name, p)| p.first_error.as_ref().map(|e| format!("- {name}: {e}")))
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\nFirst error seen per scenario:\n\n{}", errors.join("\n"));
        }
        md.push('\n');
    }

    fn mode(&self, mode: Mode) -> Option<&ModeReport> {
        self.modes.iter().find(|m| m.mode == mode)
    }

    fn scenario(&self, mode: Mode, name: &str) -> Option<&ScenarioResult> {
        self.mode(mode)?.scenarios.iter().find(|s| s.name == name)
    }

    /// The issue's targets that this run measured.
    pub fn target_rows(&self) -> Vec<[String; 5]> {
        let mut rows = Vec::new();
        let mut row = |target: &str, mode: Mode, measured: String, wanted: String, met: bool| {
            let short = if mode == Mode::Embedded { "embedded" } else { "split" };
            rows.push([
                target.to_owned(),
                short.to_owned(),
                measured,
                wanted,
                if met { "met" } else { "MISSED" }.into(),
            ]);
        };
        let fastest = self.fastest_argon2().map(|a| a.per_second);
        for mode in [Mode::Embedded, Mode::Split] {
            if let Some((r, a, in_rounds)) = self.login_judgement(mode) {
                let reference = if in_rounds { "the reference in the same rounds" } else { "the ceilings' fastest" };
                // The run's fastest ceiling too, measured minutes away from the logins.
                let away = fastest
                    .filter(|f| *f != a)
                    .map(|f| format!("; the ceilings' fastest, minutes away: {f:.1}/s"))
                    .unwrap_or_default();
                let wanted = format!("≥ {:.1}/s (0.9 × {reference}: {a:.1}/s{away})", 0.9 * a);
                let floor = self.mode(mode).and_then(|m| m.login_floor.as_ref()).and_then(LoginRounds::ratio);
                let floor = floor.map(|f| format!(" (the shape's floor: {f:.2} of argon2)"));
                row(
                    "logins/s ≥ 0.9 × fastest argon2id verify/s",
                    mode,
                    format!("{r:.1}/s{}", floor.unwrap_or_default()),
                    wanted,
                    r >= 0.9 * a,
                );
            }
            let (floor, label) =
                if mode == Mode::Embedded { (30_000.0, "bearer") } else { (10_000.0, "split-mode bearer") };
            let mut protected: Vec<(&str, String)> =
                [sc::BEARER_ME, sc::BEARER_VERIFY].map(|n| (n, format!("{label}: {n} req/s"))).into();
            // All-in-one API-key requests: the all-in-one bearer rows' rate and "the same latency".
            if mode == Mode::Embedded {
                protected.extend([sc::KEY_ME, sc::KEY_VERIFY].map(|n| (n, format!("API key: {n} req/s"))));
            }
            for (name, target) in protected {
                if let Some(s) = self.scenario(mode, name) {
                    let r = s.saturation.rps;
                    row(&target, mode, f0(r), format!("≥ {floor:.0}"), r >= floor);
                    if mode == Mode::Embedded {
                        let p = s.saturation.p99_ms;
                        row(
                            &format!("{name} p99 at saturation"),
                            mode,
                            format!("{p:.2} ms"),
                            "≤ 10 ms".into(),
                            p <= 10.0,
                        );
                        if let Some(f) = &s.fixed {
                            row(
                                &format!("{name} p99 at half the peak rate"),
                                mode,
                                format!("{:.2} ms{}{}", f.p99_ms, self.floor_note(mode), self.stall_note()),
                                "≤ 2 ms".into(),
                                f.p99_ms <= 2.0,
                            );
                        }
                    }
                }
            }
            if let Some(s) = self.scenario(mode, sc::REFRESH) {
                let r = s.saturation.rps;
                row("refresh/s", mode, f0(r), "≥ 5000".into(), r >= 5_000.0);
            }
            if let Some(s) = self.scenario(mode, sc::GRPC_CHECK) {
                let (r, p) = (s.saturation.rps, s.saturation.p99_ms);
                row("CheckPermissions over gRPC/s", mode, f0(r), "≥ 40000".into(), r >= 40_000.0);
                row("CheckPermissions p99 at saturation", mode, format!("{p:.2} ms"), "≤ 5 ms".into(), p <= 5.0);
            }
            if let Some(s) = self.scenario(mode, sc::FLOOD)
                && let Some(f) = &s.flood
            {
                let (base, during) = f.p99_ms();
                let floor = self.mode(mode).and_then(|m| m.flood_floor.as_ref()).map(|floor| {
                    let (base, during) = floor.p99_ms();
                    format!("; the shape's floor: {:.1}×", during / base.max(1e-9))
                });
                row(
                    "protected p99 during login flood ≤ 2 × without",
                    mode,
                    format!(
                        "{during:.2} ms vs {base:.2} ms ({:.1}×; medians of {} rounds{})",
                        during / base.max(1e-9),
                        f.rounds.len(),
                        floor.unwrap_or_default()
                    ),
                    "≤ 2×".into(),
                    during <= 2.0 * base,
                );
            }
        }
        if let Some(m) = self.mode(Mode::Embedded) {
            let idle = m.rss_idle_mib.iter().sum::<f64>();
            row("all-in-one RSS idle", Mode::Embedded, format!("{idle:.1} MiB"), "≤ 64 MiB".into(), idle <= 64.0);
            if let Some(s) = m.scenarios.iter().find(|s| s.name == sc::MIXED) {
                let peak = s.peak_rss_mib.iter().sum::<f64>();
                row(
                    "all-in-one peak RSS under mixed load",
                    Mode::Embedded,
                    format!("{peak:.1} MiB"),
                    "≤ 100 MiB".into(),
                    peak <= 100.0,
                );
            }
        }
        if let Some(b) = self.modes.iter().find_map(|m| m.session_bytes.as_ref()) {
            let bytes = b.per_session();
            row("Redis bytes per session", Mode::Split, format!("{bytes:.0} B"), "≤ 512 B".into(), bytes <= 512.0);
        }
        for g in &self.growth {
            let [small, large] = g.populations;
            for f in g.figures.iter().filter(|f| f.has_target) {
                row(
                    &format!("cost growth: {}, {}", f.name, growth_span(small, large)),
                    g.mode,
                    format!(
                        "{} → {} req/s ({})",
                        f0(f.median_of(0, |p| p.rps)),
                        f0(f.median_of(1, |p| p.rps)),
                        percent(f.slowdown())
                    ),
                    format!("≤ {:.0} % slower", growth::TARGET_SLOWDOWN * 100.0),
                    f.met(),
                );
            }
        }
        rows
    }

    fn targets(&self, md: &mut String) {
        let rows = self.target_rows();
        if rows.is_empty() {
            return;
        }
        md.push_str("### Targets (issue 11)\n\n| target | mode | measured | wanted | verdict |\n| --- | --- | --- | --- | --- |\n");
        for r in rows {
            let _ = writeln!(md, "| {} |", r.join(" | "));
        }
        md.push('\n');
    }
}

/// `1,000 → 1,000,000 users, sessions, keys; 10 → 10,000 roles`.
fn growth_span(small: crate::seed::Population, large: crate::seed::Population) -> String {
    use crate::seed::thousands;
    format!(
        "{} → {} users, sessions, keys; {} → {} roles",
        thousands(small.users),
        thousands(large.users),
        thousands(small.roles),
        thousands(large.roles)
    )
}

/// A share as a percentage: "1.2 %".
fn share(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// A slowdown as a signed percentage (negative: the large population was faster).
fn percent(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let p = x * 100.0;
    if p >= 0.0 { format!("{p:.1} % slower") } else { format!("{:.1} % faster", -p) }
}

fn growth_tables(md: &mut String, g: &GrowthReport) {
    let [small, large] = g.populations;
    let _ = writeln!(md, "### Cost growth: {}\n", g.mode);
    let _ = writeln!(
        md,
        "Small population: {}. Large: {}. Seeded straight into the stores in {:.1} s and {:.1} s. Two fleets run \
         side by side, one per population; every figure is the median of {} saturation windows per fleet, the \
         fleets taking turns (small then large, then large then small, …), so a disturbance of the machine lands \
         on both.\n",
        small.describe(g.mode),
        large.describe(g.mode),
        g.seed_seconds[0],
        g.seed_seconds[1],
        g.rounds
    );
    if g.figures.is_empty() && g.reload_ms[0].is_empty() {
        return;
    }
    md.push_str(
        "| figure | cost may grow with | small | large | large vs small | Warden CPU µs/req small → large \
         | PG+Redis CPU µs/req small → large | p50 ms small → large | errors small / large | other cores (max) \
         | target | verdict |\n",
    );
    md.push_str("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |\n");
    for f in &g.figures {
        let m = |side: usize, get: fn(&Phase) -> f64| f.median_of(side, get);
        let (target, verdict) = if f.has_target {
            let verdict = match (f.met(), f.errors(0) + f.errors(1)) {
                (true, _) => "met",
                (false, 0) => "MISSED",
                (false, _) => "MISSED (errors)",
            };
            (format!("≤ {:.0} % slower", growth::TARGET_SLOWDOWN * 100.0), verdict)
        } else {
            ("none in the issue".to_owned(), "—")
        };
        let _ = writeln!(
            md,
            "| {} req/s | {} | {} | {} | {} | {} → {} | {} → {} | {} → {} | {} / {} | {:.2} | {} | {} |",
            f.name,
            f.grows_with,
            f0(m(0, |p| p.rps)),
            f0(m(1, |p| p.rps)),
            percent(f.slowdown()),
            f0(m(0, |p| p.cpu_us_per_req)),
            f0(m(1, |p| p.cpu_us_per_req)),
            f0(m(0, |p| p.stores_us_per_req)),
            f0(m(1, |p| p.stores_us_per_req)),
            lat(m(0, |p| p.p50_ms)),
            lat(m(1, |p| p.p50_ms)),
            f.errors(0),
            f.errors(1),
            f.max_other_cores(),
            target,
            verdict
        );
    }
    if !g.reload_ms[0].is_empty() {
        let (s, l) = (growth::median(g.reload_ms[0].iter().copied()), growth::median(g.reload_ms[1].iter().copied()));
        let _ = writeln!(
            md,
            "| first CheckPermissions after a role is created, ms (role graph read again; median of {}) | roles | \
             {} | {} | {:.1}× | — | — | — | — | — | none in the issue | — |",
            g.reload_ms[0].len(),
            lat(s),
            lat(l),
            l / s.max(1e-9)
        );
    }
    md.push_str("\nReq/s per round, small / large:\n\n");
    for f in &g.figures {
        let rounds: Vec<String> =
            f.phases[0].iter().zip(&f.phases[1]).map(|(s, l)| format!("{} / {}", f0(s.rps), f0(l.rps))).collect();
        let _ = writeln!(md, "- {}: {}", f.name, rounds.join("; "));
    }
    let _ = writeln!(
        md,
        "\nRSS after the measurements, MiB: small {}; large {}.\n",
        mib_list(&g.processes, &g.rss_mib[0]),
        mib_list(&g.processes, &g.rss_mib[1])
    );
}

/// A flood's rounds, each window on a row of its own, and the medians that are judged.
/// `(title, protected, flooding, unit)` say which flood, what is offered, what the flood's
/// connections do and what they count.
fn flood_table(md: &mut String, connections: usize, f: &sc::Flood, words: (&str, &str, &str, &str)) {
    let (title, protected, flooding, unit) = words;
    let offered = f.rounds.first().and_then(|r| r.without.offered).unwrap_or(0.0);
    let _ = writeln!(
        md,
        "\n{title}: {protected} offered {}/s on {connections} connections, alone and with {} connections \
         {flooding} alongside, in {} rounds of {:.1} s windows whose order alternates \
         (alone first, then flood first, ...):\n",
        f0(offered),
        f.login_connections,
        f.rounds.len(),
        f.window_s
    );
    let _ = writeln!(md, "| round | phase | achieved/s | p50 ms | p99 ms | max ms | errors | {unit} |");
    md.push_str("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (i, r) in f.rounds.iter().enumerate() {
        for (phase, p, logins) in [("without flood", &r.without, None), ("during flood", &r.during, Some(&r.logins))] {
            let _ = writeln!(
                md,
                "| {} | {phase} | {} | {} | {} | {} | {} | {} |",
                i + 1,
                f0(p.rps),
                lat(p.p50_ms),
                lat(p.p99_ms),
                lat(p.max_ms),
                p.errors,
                logins.map_or("—".to_owned(), |l| f1(l.rps))
            );
        }
    }
    let (without, during) = f.p99_ms();
    let _ = writeln!(
        md,
        "\nMedians over the rounds: protected p99 {} ms without the flood, {} ms during it ({:.1}×); {} {unit}.",
        lat(without),
        lat(during),
        during / without.max(1e-9),
        f1(f.logins_per_second())
    );
}

fn fixed_cell(p: Option<&Phase>) -> String {
    match p {
        Some(p) => format!("{} / {} / {}", lat(p.p50_ms), lat(p.p99_ms), lat(p.max_ms)),
        None => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of these ceilings and modes and nothing else.
    fn report(ceilings: Vec<ScenarioResult>, modes: Vec<ModeReport>) -> Report {
        Report {
            steadiness: Vec::new(),
            machine: String::new(),
            settings: String::new(),
            argon2: Vec::new(),
            ceilings,
            growth: Vec::new(),
            failures: Vec::new(),
            modes,
        }
    }

    fn scenario(name: &'static str, rps: f64, p99_ms: f64) -> ScenarioResult {
        let saturation = Phase { rps, ok: 1, p99_ms, ..Phase::default() };
        ScenarioResult { name, connections: 1, saturation, fixed: None, peak_rss_mib: vec![90.0], flood: None }
    }

    /// The flood's verdict compares the medians over its rounds, so one disturbed window on
    /// either side does not decide it.
    #[test]
    fn the_flood_is_judged_on_the_medians_of_its_rounds() {
        let at = |p99_ms: f64| Phase { offered: Some(1000.0), rps: 1000.0, ok: 1, p99_ms, ..Phase::default() };
        let round = |without: f64, during: f64| sc::FloodRound {
            without: at(without),
            during: at(during),
            logins: Phase { rps: 50.0, ..Phase::default() },
        };
        // A stalled baseline window (40 ms) and a stalled flood window (30 ms), one each.
        let rounds = vec![round(1.0, 1.8), round(40.0, 1.9), round(1.1, 30.0), round(0.9, 2.1)];
        let mut flood = scenario(sc::FLOOD, 1000.0, 2.1);
        flood.flood = Some(sc::Flood { rounds, login_connections: 6, window_s: 2.0 });
        // The bare shape beside the same flood: 1.5 ms against 1.0 ms.
        let floor_rounds = vec![round(1.0, 1.5), round(1.0, 1.4), round(0.9, 1.6), round(1.1, 1.5)];
        let mode = ModeReport {
            mode: Mode::Embedded,
            processes: vec!["gateway".into()],
            rss_start_mib: vec![10.0],
            rss_idle_mib: vec![10.0],
            scenarios: vec![flood],
            session_bytes: None,
            static_floor: None,
            login_rounds: None,
            login_floor: None,
            flood_floor: Some(sc::Flood { rounds: floor_rounds, login_connections: 6, window_s: 2.0 }),
        };
        let report = report(Vec::new(), vec![mode]);
        let row = report.target_rows().into_iter().find(|r| r[0].starts_with("protected p99 during")).unwrap();
        assert_eq!(row[2], "2.00 ms vs 1.05 ms (1.9×; medians of 4 rounds; the shape's floor: 1.5×)");
        assert_eq!(row[4], "met");
        let md = report.markdown();
        assert!(md.contains("| 2 | without flood | 1000 |"), "{md}");
        assert!(md.contains("1.05 ms without the flood, 2.00 ms during it (1.9×); 50.0 logins/s"), "{md}");
        assert!(md.contains("6 connections logging in (closed loop) alongside"), "{md}");
        assert!(md.contains("one Warden hash each (`GET /hash`, closed loop) alongside"), "{md}");
        assert!(md.contains("1.00 ms without the flood, 1.50 ms during it (1.5×); 50.0 hashes/s"), "{md}");
    }

    #[test]
    fn targets_are_judged_against_the_issue() {
        let argon = ArgonRate {
            name: "x".into(),
            threads: 2,
            per_second: 100.0,
            ms_each: 20.0,
            faults_each: 0.0,
            other_cores: 0.0,
        };
        let at_rate = |p99_ms: f64| Phase { offered: Some(15_500.0), rps: 15_500.0, ok: 1, p99_ms, ..Phase::default() };
        let mut me = scenario(sc::BEARER_ME, 31_000.0, 12.0);
        me.fixed = Some(at_rate(2.5));
        let mut key_me = scenario(sc::KEY_ME, 30_500.0, 4.0);
        key_me.fixed = Some(at_rate(1.5));
        let report = Report {
            machine: String::new(),
            settings: String::new(),
            steadiness: vec![Steadiness {
                when: "before embedded".into(),
                threads: 2,
                seconds: 5.0,
                fastest_ms: 0.07,
                windows: 1000,
                median: 1.1,
                p99: 12.0,
                worst: 13.0,
                stalled_share: 0.03,
                longest_slow_ms: 90.0,
            }],
            argon2: vec![argon],
            ceilings: vec![scenario(sc::CEILING_JWT, 40_000.0, 1.0), scenario(sc::CEILING_STATIC, 80_000.0, 1.0)],
            growth: Vec::new(),
            failures: Vec::new(),
            modes: vec![ModeReport {
                mode: Mode::Embedded,
                processes: vec!["warden".into()],
                rss_start_mib: vec![40.0],
                rss_idle_mib: vec![70.0],
                scenarios: vec![
                    scenario(sc::LOGIN, 95.0, 30.0),
                    me,
                    key_me,
                    scenario(sc::GRPC_CHECK, 41_000.0, 6.0),
                    scenario(sc::MIXED, 20_000.0, 5.0),
                ],
                session_bytes: None,
                static_floor: Some(at_rate(1.25)),
                login_rounds: None,
                login_floor: None,
                flood_floor: None,
            }],
        };
        let verdict =
            |target: &str| report.target_rows().into_iter().find(|r| r[0].starts_with(target)).map(|r| r[4].clone());
        assert_eq!(verdict("logins/s").as_deref(), Some("met"));
        assert_eq!(verdict("bearer: bearer GET /auth/me").as_deref(), Some("met"));
        assert_eq!(verdict("bearer GET /auth/me p99 at saturation").as_deref(), Some("MISSED"));
        assert_eq!(verdict("bearer GET /auth/me p99 at half the peak rate").as_deref(), Some("MISSED"));
        assert_eq!(verdict("API key: api-key GET /auth/me req/s").as_deref(), Some("met"));
        assert_eq!(verdict("api-key GET /auth/me p99 at saturation").as_deref(), Some("met"));
        assert_eq!(verdict("api-key GET /auth/me p99 at half the peak rate").as_deref(), Some("met"));
        assert_eq!(verdict("CheckPermissions over gRPC/s").as_deref(), Some("met"));
        assert_eq!(verdict("CheckPermissions p99 at saturation").as_deref(), Some("MISSED"));
        assert_eq!(verdict("all-in-one RSS idle").as_deref(), Some("MISSED"));
        assert_eq!(verdict("all-in-one peak RSS under mixed").as_deref(), Some("met"));
        assert_eq!(verdict("refresh/s"), None);
        let md = report.markdown();
        assert!(md.contains("0.78 of jwt, 0.39 of static"), "{md}");
        assert!(md.contains("| 0.95 of argon2 |"), "{md}");
        assert!(
            md.contains(
                "2.50 ms (bare static handler at 15500/s: 1.25 ms) (idle cores' longest spell at ≥ 2× slower in this \
                 run's probes: 90 ms)"
            ),
            "{md}"
        );
        assert!(
            md.contains("| before embedded | 2 | 5.0 | 0.070 | 1000 | 1.10× | 12.00× | 13.0× | 3.0 % | 90 ms |"),
            "{md}"
        );

        // The login rounds decide over the saturation phase and the run's fastest ceiling.
        let mut report = report;
        let reference = |per_second: f64| ArgonRate { name: "kept".into(), per_second, ..report.argon2[0].clone() };
        let rounds = vec![[reference(110.0), reference(100.0)], [reference(130.0), reference(90.0)]];
        report.modes[0].login_rounds =
            Some(LoginRounds::from_rounds(vec![100.0, 90.0], rounds, std::time::Duration::from_secs(2), 0));
        let verdict = report.target_rows().into_iter().find(|r| r[0].starts_with("logins/s")).unwrap();
        assert_eq!(verdict[4], "MISSED");
        assert_eq!(verdict[2], "95.0/s");
        let wanted =
            "≥ 108.0/s (0.9 × the reference in the same rounds: 120.0/s; the ceilings' fastest, minutes away: 100.0/s)";
        assert_eq!(verdict[3], wanted);
        let md = report.markdown();
        assert!(md.contains("| 0.79 of argon2 (in rounds) |"), "{md}");
        assert!(md.contains("logins 100, 90/s (mean 95.0); kept on 2 threads 110, 130/s (mean 120.0)"), "{md}");

        // The shape's floor is shown beside the logins; the verdict stays the target's.
        let rounds = vec![[reference(100.0), reference(120.0)], [reference(100.0), reference(120.0)]];
        report.modes[0].login_floor =
            Some(LoginRounds::from_rounds(vec![105.0, 111.0], rounds, std::time::Duration::from_secs(2), 0));
        let verdict = report.target_rows().into_iter().find(|r| r[0].starts_with("logins/s")).unwrap();
        assert_eq!(
            (verdict[2].as_str(), verdict[4].as_str()),
            ("95.0/s (the shape's floor: 0.90 of argon2)", "MISSED")
        );
        let md = report.markdown();
        assert!(md.contains("105, 111/s (mean 108.0) against 120, 120/s (mean 120.0), **0.90 of argon2**"), "{md}");
    }

    #[test]
    fn split_rows_are_read_against_the_relay_too() {
        let ceilings = vec![
            scenario(sc::CEILING_JWT, 40_000.0, 1.0),
            scenario(sc::CEILING_STATIC, 80_000.0, 1.0),
            scenario(sc::CEILING_RELAY, 16_000.0, 1.0),
        ];
        let mode = |mode: Mode| ModeReport {
            mode,
            processes: vec!["warden".into()],
            rss_start_mib: vec![40.0],
            rss_idle_mib: vec![40.0],
            scenarios: vec![scenario(sc::BEARER_ME, 8_000.0, 5.0)],
            session_bytes: None,
            static_floor: None,
            login_rounds: None,
            login_floor: None,
            flood_floor: None,
        };
        let report = report(ceilings, vec![mode(Mode::Embedded), mode(Mode::Split)]);
        assert_eq!(
            report.ratio(Mode::Split, &report.modes[1].scenarios[0]),
            "0.20 of jwt, 0.10 of static, 0.50 of relay"
        );
        // One process: the relay's trips are not the embedded request's.
        assert_eq!(report.ratio(Mode::Embedded, &report.modes[0].scenarios[0]), "0.20 of jwt, 0.10 of static");
    }

    #[test]
    fn grpc_rows_are_read_against_the_bare_tonic_server() {
        let ceilings = vec![scenario(sc::CEILING_STATIC, 80_000.0, 1.0), scenario(sc::CEILING_GRPC, 50_000.0, 1.0)];
        let report = report(ceilings, Vec::new());
        assert_eq!(report.ratio(Mode::Embedded, &scenario(sc::GRPC_CHECK, 40_000.0, 1.0)), "0.80 of bare tonic");
        assert_eq!(report.ratio(Mode::Split, &scenario(sc::GRPC_AUTHORIZE, 10_000.0, 1.0)), "0.20 of bare tonic");
        // Without the ceiling there is nothing to read them against.
        let report = Report { ceilings: Vec::new(), ..report };
        assert_eq!(report.ratio(Mode::Embedded, &scenario(sc::GRPC_CHECK, 40_000.0, 1.0)), "—");
    }
}
