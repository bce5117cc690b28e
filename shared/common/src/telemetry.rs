//! Tracing setup shared by every process: an `EnvFilter` (`RUST_LOG`, default `info`),
//! text or JSON output, and an OTLP exporter only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
use crate::config::LogFormat;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
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
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    });
    // A second init (tests start many servers in one process) is harmless.
    let _ = tracing_subscriber::registry().with(fmt_layer).with(otel_layer).with(filter).try_init();
    guard
}
