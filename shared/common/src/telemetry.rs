//! Tracing setup shared by every process: an `EnvFilter` (`RUST_LOG`, default `info`),
//! text or JSON output, and an OTLP exporter only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! W3C trace context (`traceparent`) travels in HTTP headers and gRPC metadata:
//! [`inject_current`] on the way out, [`set_parent`] on the way in.
use crate::config::LogFormat;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Keeps the exporter alive; flushes spans when dropped.
#[derive(Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

pub fn init(format: LogFormat, service_name: &str) -> TelemetryGuard {
    install_propagator();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Json => {
            Box::new(tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(false))
        }
        LogFormat::Text => Box::new(tracing_subscriber::fmt::layer().with_target(true)),
    };
    let mut guard = TelemetryGuard::default();
    let otel_layer = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.is_empty()).and_then(|_| {
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build().ok()?;
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build();
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        let tracer = provider.tracer("warden");
        opentelemetry::global::set_tracer_provider(provider.clone());
        guard.provider = Some(provider);
        enable_request_spans();
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    });
    // A second init (tests start many servers in one process) is harmless.
    let _ = tracing_subscriber::registry().with(fmt_layer).with(otel_layer).with(filter).try_init();
    guard
}

static REQUEST_SPANS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether each HTTP request and RPC gets its own span. Only when spans are exported: a
/// span per request costs about a fifth of the throughput of a cached protected request
/// (BENCHMARKS.md), and without an exporter nobody reads it (JSON logs carry no span).
pub fn request_spans() -> bool {
    REQUEST_SPANS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Turns on [`request_spans`]; [`init`] does it when it installs the OTLP exporter, tests
/// that install their own exporter call it themselves.
pub fn enable_request_spans() {
    REQUEST_SPANS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Registers the W3C trace-context propagator (idempotent). [`init`] does it; tests that
/// build their own subscriber call it themselves.
pub fn install_propagator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new()));
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes the current span's trace context (`traceparent`, `tracestate`) into outgoing
/// headers; writes nothing when no trace is being recorded.
pub fn inject_current(headers: &mut HeaderMap) {
    if !request_spans() {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeaderInjector(headers)));
}

/// Makes `span` a child of the caller's trace when the request carries a `traceparent`.
pub fn set_parent(span: &tracing::Span, headers: &HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
}
