//! gRPC plumbing shared by the remote clients: channels over one or more endpoints,
//! balanced client-side, with deadlines so a dead peer is a fast 503.
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Deadline for one internal call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a lazily connecting channel over every endpoint of a peer service; tonic
/// balances requests across them and routes around the ones that are down.
pub fn channel(setting: &str, endpoints: &[String]) -> anyhow::Result<Channel> {
    if endpoints.is_empty() {
        anyhow::bail!("invalid configuration: {setting}: split mode needs at least one endpoint");
    }
    let endpoints = endpoints
        .iter()
        .map(|e| {
            Ok(Endpoint::from_shared(e.clone())
                .map_err(|_| anyhow::anyhow!("invalid configuration: {setting}: bad endpoint {e}"))?
                .connect_timeout(Duration::from_secs(2))
                .timeout(CALL_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(if endpoints.len() == 1 {
        endpoints.into_iter().next().expect("one endpoint").connect_lazy()
    } else {
        Channel::balance_list(endpoints.into_iter())
    })
}
