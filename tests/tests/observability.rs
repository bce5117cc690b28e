//! One trace per request across processes: a REST login with a known W3C `traceparent`
//! reaches the gateway, which calls the auth service over gRPC, which calls the token
//! service; every span they record carries the caller's trace id. Its own test binary,
//! because the tracing subscriber it installs is process-wide.
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;
use warden_tests::{ADMIN_PASSWORD, Backend, TestWarden, backend_urls};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

fn install_tracing() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this binary");
    warden_common::telemetry::install_propagator();
    (provider, exporter)
}

/// The finished spans named `name` (waits briefly: a server span ends as it answers).
async fn spans_named(exporter: &InMemorySpanExporter, name: &str, at_least: usize) -> Vec<SpanData> {
    for _ in 0..50 {
        let found: Vec<SpanData> =
            exporter.get_finished_spans().unwrap().into_iter().filter(|s| s.name == name).collect();
        if found.len() >= at_least {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no span named {name}; have {:?}",
        exporter.get_finished_spans().unwrap().iter().map(|s| s.name.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_one_trace_across_gateway_auth_and_token_services() {
    let (_provider, exporter) = install_tracing();
    let Some((db, redis)) = backend_urls(Backend::PostgresRedis, "trace_propagation").await else { return };
    let w = TestWarden::start_split(db, redis).await;
    // The bootstrap admin is created by the auth service once RBAC answers.
    let give_up = Instant::now() + Duration::from_secs(10);
    while w.login(&w.admin, ADMIN_PASSWORD).await.status() != 200 {
        assert!(Instant::now() < give_up, "bootstrap admin can log in");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    exporter.reset();

    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let body = serde_json::json!({"username": w.admin, "password": ADMIN_PASSWORD});
    let r = w.http.post(w.url("/api/v1/auth/login")).header("traceparent", traceparent).json(&body).send().await;
    assert_eq!(r.unwrap().status(), 200);

    let trace = TraceId::from_hex(TRACE_ID).unwrap();
    let gateway = spans_named(&exporter, "POST /api/v1/auth/login", 1).await;
    assert_eq!(gateway[0].span_context.trace_id(), trace, "the gateway continues the caller's trace");
    assert_eq!(gateway[0].parent_span_id, SpanId::from_hex(PARENT_SPAN).unwrap());
    let auth = spans_named(&exporter, "warden.auth.v1.AuthService/Login", 1).await;
    assert_eq!(auth[0].span_context.trace_id(), trace, "the auth service joins the gateway's trace");
    assert_eq!(auth[0].parent_span_id, gateway[0].span_context.span_id());
    let token = spans_named(&exporter, "warden.token.v1.TokenService/GenerateAccessToken", 1).await;
    assert!(token.iter().all(|s| s.span_context.trace_id() == trace), "the token service joins it too");
    assert!(token.iter().all(|s| s.parent_span_id == auth[0].span_context.span_id()));

    // Without a traceparent, the gateway starts a trace and the services join that one.
    exporter.reset();
    assert_eq!(w.login(&w.admin, ADMIN_PASSWORD).await.status(), 200);
    let gateway = spans_named(&exporter, "POST /api/v1/auth/login", 1).await;
    let auth = spans_named(&exporter, "warden.auth.v1.AuthService/Login", 1).await;
    assert_ne!(gateway[0].span_context.trace_id(), trace);
    assert_eq!(auth[0].span_context.trace_id(), gateway[0].span_context.trace_id());
    w.shutdown().await;
}
