//! `inventory`: the example service. Configuration from the environment:
//! `INVENTORY_ADDR` (default `127.0.0.1:3000`), `WARDEN_GRPC_URL` (`http://127.0.0.1:50051`),
//! `WARDEN_URL` (the gateway, for the JWKS; `http://127.0.0.1:8080`), `WARDEN_ISSUER`
//! (defaults to `WARDEN_URL`) and `WARDEN_AUDIENCE` (`warden`), as Warden is configured.
use anyhow::Context;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use warden_client::{ClientOptions, WardenClient};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let addr = env_or("INVENTORY_ADDR", "127.0.0.1:3000");
    let grpc = env_or("WARDEN_GRPC_URL", "http://127.0.0.1:50051");
    let http = env_or("WARDEN_URL", "http://127.0.0.1:8080");
    let options = ClientOptions::new(env_or("WARDEN_ISSUER", &http), env_or("WARDEN_AUDIENCE", "warden"));
    // Lazy: the service may start before Warden; until Warden answers, requests get 503.
    let warden = WardenClient::connect_lazy(grpc, &http, options).context("WARDEN_GRPC_URL")?;
    let listener =
        TcpListener::bind(&addr).await.with_context(|| format!("INVENTORY_ADDR: cannot listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "inventory is serving");
    axum::serve(listener, warden_example_inventory::router(&warden)).with_graceful_shutdown(stop_signal()).await?;
    Ok(())
}

/// SIGINT, or SIGTERM (what Kubernetes sends).
async fn stop_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("stopping");
}
