//! Redis connection with explicit, short timeouts: a slow or dead Redis must turn into a
//! fast 503, not a hung request (fred's defaults wait far too long).
use fred::prelude::*;
use std::time::Duration;

pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);

pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let config = Config::from_url(url)?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = COMMAND_TIMEOUT;
            // Every request waits on small Redis replies: no Nagle delay on them.
            c.tcp.nodelay = Some(true);
        })
        .with_performance_config(|p| {
            p.default_command_timeout = COMMAND_TIMEOUT;
        })
        .set_policy(ReconnectPolicy::new_constant(0, 200))
        .build()?;
    // Fail fast at start, but keep reconnecting in the background afterwards.
    client.init().await?;
    Ok(client)
}

pub async fn ping(client: &Client) -> bool {
    client.ping::<String>(None).await.is_ok()
}
