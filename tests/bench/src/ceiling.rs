//! Ceilings: what this machine can do at best, so every Warden figure can be read as a
//! ratio. Argon2id verification with Warden's parameters on all cores (seven ways, two crates),
//! and a bare axum server (its own process, started from this binary) answering a static
//! body or verifying the same EdDSA token with jsonwebtoken, beside a bare tonic server in the
//! same runtime answering unary health checks. The same server answers the embedded floors
//! (`floor.rs`): `GET /hash` after one Warden hash, `GET /login` after a login at its barest.
use crate::floor::{LoginStore, OneHash};
use crate::procs;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warden_auth::password::{ITERATIONS, MEMORY_KIB, PARALLELISM};
use warden_common::secret::Secret;

const PASSWORD: &str = "bench-correct-horse-battery";

#[derive(Clone, Debug, serde::Serialize)]
pub struct ArgonRate {
    pub name: String,
    pub threads: usize,
    pub per_second: f64,
    /// Wall time of one verification on one core.
    pub ms_each: f64,
    /// Minor page faults per verification (fresh 19 MiB allocations fault every page in).
    pub faults_each: f64,
    /// Cores that other processes used meanwhile (noise).
    pub other_cores: f64,
}

fn params() -> Params {
    Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).expect("warden's argon2 parameters")
}

fn argon() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// Runs `job` on `threads` OS threads for `duration`, each with a 19 MiB block of its own;
/// returns completed jobs and elapsed seconds.
fn on_threads(threads: usize, duration: Duration, job: impl Fn(&mut Vec<Block>) + Sync) -> (u64, f64) {
    on_threads_with(threads, duration, || vec![Block::new(); params().block_count()], job)
}

/// Runs `job` on `threads` OS threads for `duration`, each with its own `state`.
fn on_threads_with<S>(
    threads: usize,
    duration: Duration,
    state: impl Fn() -> S + Sync,
    job: impl Fn(&mut S) + Sync,
) -> (u64, f64) {
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut state = state();
                while start.elapsed() < duration {
                    job(&mut state);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    (done.into_inner(), start.elapsed().as_secs_f64())
}

fn rate(name: String, threads: usize, (ops, seconds): (u64, f64), faults: u64, other_cores: f64) -> ArgonRate {
    let per_second = ops as f64 / seconds.max(1e-9);
    ArgonRate {
        name,
        threads,
        per_second,
        ms_each: if per_second > 0.0 { 1000.0 * threads as f64 / per_second } else { 0.0 },
        faults_each: faults as f64 / ops.max(1) as f64,
        other_cores,
    }
}

fn measured(name: impl Into<String>, threads: usize, run: impl FnOnce() -> (u64, f64)) -> ArgonRate {
    let pid = std::process::id();
    let before = procs::minor_faults(pid).unwrap_or(0);
    let cpu_before = procs::snapshot(&[]);
    let result = run();
    let cpu = procs::delta(&cpu_before, &procs::snapshot(&[]), result.1);
    let faults = procs::minor_faults(pid).unwrap_or(0).saturating_sub(before);
    rate(name.into(), threads, result, faults, cpu.other_cores)
}

/// Argon2id verifications per second on `threads` threads, seven ways: RustCrypto's `argon2`
/// and `argon2-rust` (the engine of @node-rs/argon2, which Warden computes with).
pub fn argon2_rates(threads: usize, duration: Duration) -> anyhow::Result<Vec<ArgonRate>> {
    let argon = argon();
    let phc = argon.hash_password(PASSWORD.as_bytes()).map_err(anyhow::Error::msg)?.to_string();
    let salt = PasswordHash::new(&phc)
        .ok()
        .and_then(|h| h.salt.map(|s| s.as_ref().to_vec()))
        .ok_or_else(|| anyhow::anyhow!("no salt in {phc}"))?;
    let mut out = Vec::new();

    // Warden's own hasher as login calls it: bounded queue, idle-priority hashing threads, PHC parse, pooled memory.
    out.push(measured("Warden PasswordHasher::verify (its hashing threads)", threads, || {
        warden_hasher_rate(threads, duration, &phc)
    }));
    out.push(measured("RustCrypto argon2 verify_password (PHC string, fresh memory)", threads, || {
        on_threads(threads, duration, |_| {
            let parsed = PasswordHash::new(&phc).expect("phc");
            assert!(argon.verify_password(PASSWORD.as_bytes(), &parsed).is_ok());
        })
    }));
    out.push(measured("RustCrypto argon2 hash_password_into (fresh memory)", threads, || {
        on_threads(threads, duration, |_| {
            let mut hash = [0u8; 32];
            argon.hash_password_into(PASSWORD.as_bytes(), &salt, &mut hash).expect("hash");
        })
    }));
    out.push(measured("RustCrypto argon2 hash_password_into_with_memory (reused memory)", threads, || {
        on_threads(threads, duration, |memory| {
            let mut hash = [0u8; 32];
            argon
                .hash_password_into_with_memory(PASSWORD.as_bytes(), &salt, &mut hash, memory.as_mut_slice())
                .expect("hash");
        })
    }));
    let fill = argon2_rust::detected_backend();
    out.push(measured(
        format!("argon2-rust verify_password (PHC string, fresh arena, {fill:?} fill)"),
        threads,
        || {
            on_threads(threads, duration, |_| {
                let verified =
                    argon2_rust::Argon2::verify_password(&phc, PASSWORD.as_bytes(), argon2_rust::Algorithm::Argon2id);
                assert!(verified.is_ok());
            })
        },
    ));
    out.extend(argon2_references(threads, duration, &salt));
    Ok(out)
}

/// The fastest implementations found, on `threads` threads: `argon2-rust`'s hash in a
/// reused arena that its `Hasher` wipes after every hash, and the same steps in an arena kept
/// unwiped from hash to hash (as Warden's hashing threads keep it while hashes queue, which
/// also keeps it in the cache). Measured with the other ceilings, and again in each round of
/// the login judgement (`login_rounds.rs`: the host's speed drifts by a third within minutes).
pub fn argon2_references(threads: usize, duration: Duration, salt: &[u8]) -> [ArgonRate; 2] {
    let fast = warden_auth::password::engine();
    let fill = argon2_rust::detected_backend();
    let wiped = measured(format!("argon2-rust Hasher::hash_into (reused arena, {fill:?} fill)"), threads, || {
        on_threads_with(
            threads,
            duration,
            || fast.hasher(),
            |hasher| {
                let mut hash = [0u8; 32];
                hasher.hash_into(PASSWORD.as_bytes(), salt, &mut hash).expect("hash");
            },
        )
    });
    let kept = measured(format!("argon2-rust's steps, arena kept between hashes ({fill:?} fill)"), threads, || {
        on_threads_with(threads, duration, warden_auth::password::KeptArenaHasher::new, |hasher| {
            let mut hash = [0u8; 32];
            assert!(hasher.hash_into(PASSWORD.as_bytes(), salt, &mut hash), "hash");
        })
    });
    [wiped, kept]
}

fn warden_hasher_rate(threads: usize, duration: Duration, phc: &str) -> (u64, f64) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let hasher = warden_auth::password::PasswordHasher::new(threads);
        let done = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..threads * 2)
            .map(|_| {
                let (hasher, done, phc) = (hasher.clone(), done.clone(), phc.to_owned());
                tokio::spawn(async move {
                    let password = Secret::new(PASSWORD);
                    while start.elapsed() < duration {
                        let v = hasher.verify(&password, Some(phc.clone())).await.expect("verify");
                        assert!(v.matches);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("hasher task");
        }
        (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
    })
}

/// Arguments of the `ceiling-server` subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct ServerArgs {
    #[arg(long)]
    pub addr: SocketAddr,
    /// The Ed25519 public key (JWK `x`, base64url) that signed the tokens.
    #[arg(long)]
    pub x: String,
    #[arg(long)]
    pub issuer: String,
    #[arg(long, default_value = "warden")]
    pub audience: String,
    /// Also answer `grpc.health.v1.Health/Check` here: the bare unary RPC that bounds
    /// Warden's gRPC scenarios.
    #[arg(long)]
    pub grpc_addr: Option<SocketAddr>,
    /// The SQLite file of the embedded login floor's store (`floor::LoginStore`), made on the
    /// first `GET /login`.
    #[arg(long)]
    pub store: PathBuf,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

/// The bare axum server: the same runtime shape as `warden` (multi-threaded, one worker per core).
pub fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let key = DecodingKey::from_ed_components(&args.x)?;
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[&args.issuer]);
    validation.set_audience(&[&args.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    validation.leeway = 10;
    let verifier = Arc::new(Verifier { key, validation });
    // The floors' hasher and store, made on first use, so that the hasher's threads and arenas
    // stay out of the other ceilings.
    let hasher = Arc::new(tokio::sync::OnceCell::new());
    let store = Arc::new(tokio::sync::OnceCell::new());
    let login = (hasher.clone(), store, args.store);
    let app = Router::new()
        .route("/static", get(|| async { "ok" }))
        .route("/verify", get(move |headers: HeaderMap| verify(verifier.clone(), headers)))
        .route("/hash", get(move || hash_once(hasher.clone())))
        .route("/login", get(move || login_once(login.clone())));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        if let Some(addr) = args.grpc_addr {
            tokio::spawn(async move {
                if let Err(e) = serve_health(addr).await {
                    eprintln!("bare tonic ceiling: {e}");
                    std::process::exit(1);
                }
            });
        }
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// A gRPC server that answers `grpc.health.v1.Health/Check` and nothing else: the bare tonic
/// ceiling, and the relay ceiling's backends.
pub async fn serve_health(addr: SocketAddr) -> anyhow::Result<()> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder().add_service(health).serve(addr).await?;
    Ok(())
}

type Lazy<T> = Arc<tokio::sync::OnceCell<T>>;

/// One Warden hash, then the static body (`floor.rs`).
async fn hash_once(hasher: Lazy<OneHash>) -> Result<&'static str, StatusCode> {
    let hasher = hasher.get_or_try_init(OneHash::new).await.map_err(floor_failed)?;
    hasher.verify().await.map_err(floor_failed)?;
    Ok("ok")
}

/// A floor request that failed: said in the server's log (`bare-axum.log` in the temporary
/// directory), answered 500, and counted as an error by the load generator.
fn floor_failed(e: anyhow::Error) -> StatusCode {
    eprintln!("bare axum, floor: {e:#}");
    StatusCode::INTERNAL_SERVER_ERROR
}

/// One embedded login at its barest: a SQLite read, one Warden hash, a SQLite write, then the
/// static body (`floor.rs`).
async fn login_once(
    (hasher, store, path): (Lazy<OneHash>, Lazy<LoginStore>, PathBuf),
) -> Result<&'static str, StatusCode> {
    let hasher = hasher.get_or_try_init(OneHash::new).await.map_err(floor_failed)?;
    let store = store.get_or_try_init(|| LoginStore::open(&path)).await.map_err(floor_failed)?;
    store.login(hasher).await.map_err(floor_failed)?;
    Ok("ok")
}

async fn verify(verifier: Arc<Verifier>, headers: HeaderMap) -> Result<String, StatusCode> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let data = jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation)
        .map_err(|_| StatusCode::UNAUTHORIZED)?;
    Ok(data.claims.sub)
}
