//! Settings of a [`crate::WardenClient`].
use std::time::Duration;

/// How a client checks tokens and talks to Warden. `issuer` and `audience` must equal
/// Warden's `WARDEN_ISSUER` and `WARDEN_AUDIENCE`.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Expected `iss` of access tokens.
    pub issuer: String,
    /// Expected `aud` of access tokens.
    pub audience: String,
    /// How often the JWKS is fetched again in the background.
    pub jwks_refresh: Duration,
    /// An unknown `kid` fetches the JWKS again at most this often, so tokens with junk kids
    /// cannot turn into a flood of fetches. A request that finds the last fetch too recent
    /// waits out the rest of the gap (sharing one fetch with every other waiter) instead of
    /// being refused, so a freshly rotated key is never rejected.
    pub jwks_min_refresh_gap: Duration,
    /// Limit for establishing the gRPC connection.
    pub connect_timeout: Duration,
    /// Limit for each call to Warden (Authorize, the JWKS fetch). On expiry the request
    /// fails closed with `unavailable`.
    pub request_timeout: Duration,
    /// The `realm` of `WWW-Authenticate` challenges.
    pub realm: String,
}

impl ClientOptions {
    /// Defaults with this issuer and audience.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        ClientOptions { issuer: issuer.into(), audience: audience.into(), ..ClientOptions::default() }
    }
}

impl Default for ClientOptions {
    /// Warden's own defaults for issuer and audience.
    fn default() -> Self {
        ClientOptions {
            issuer: "http://127.0.0.1:8080".to_owned(),
            audience: "warden".to_owned(),
            jwks_refresh: Duration::from_secs(60),
            jwks_min_refresh_gap: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            realm: "warden".to_owned(),
        }
    }
}
