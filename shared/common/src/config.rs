//! Configuration: defaults, then an optional TOML file, then `WARDEN_*` environment
//! variables, then [`Config::validate`]. A bad setting stops start-up with one line that
//! names it.
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// How strict the process is about secrets and transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Embedded default: generated secrets may live in the database.
    Dev,
    /// Secrets must come from the environment.
    Prod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub mode: Mode,
    pub database_url: String,
    /// Most PostgreSQL connections this process holds (each service replica has its own
    /// pool: size the server's `max_connections` for replicas × services × this).
    pub database_max_connections: i64,
    pub redis_url: Option<String>,
    pub http_addr: String,
    pub grpc_addr: String,
    /// Where a process without a gateway serves Prometheus `GET /metrics`; unset: nowhere.
    pub metrics_addr: Option<String>,
    /// A plaintext gRPC listener with only grpc.health.v1, for probes that cannot present a
    /// client certificate when the gRPC port requires mTLS; unset: none.
    pub health_addr: Option<String>,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub session_max_age: i64,
    /// Seconds after a rotation during which the old refresh token returns the same
    /// successor instead of counting as reuse (lost answers, concurrent refreshes).
    pub refresh_replay_window: i64,
    pub lockout_threshold: i64,
    pub lockout_seconds: i64,
    pub lockout_max_seconds: i64,
    pub bootstrap_admin_username: Option<String>,
    pub bootstrap_admin_password: Option<String>,
    pub password_min_length: i64,
    pub password_min_strength: i64,
    pub client_rate_limit: i64,
    pub trusted_proxies: Option<String>,
    /// Comma-separated gRPC endpoints of peer services in split mode.
    pub auth_endpoints: Option<String>,
    pub token_endpoints: Option<String>,
    pub key_endpoints: Option<String>,
    pub rbac_endpoints: Option<String>,
    /// Seals signing keys at rest (XChaCha20-Poly1305); required in prod.
    pub signing_key_secret: Option<String>,
    /// Seconds between automatic signing-key rotations; 0 turns it off.
    pub signing_key_rotation: i64,
    /// Server-side secret mixed into API-key hashes (HMAC-SHA-256); required in prod.
    pub api_key_pepper: Option<String>,
    /// Mutual TLS between services: this process's certificate and key, and the CA that
    /// signs every service's certificate (PEM files). All three or none; required in prod
    /// by every process of a split deployment.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub tls_ca: Option<String>,
    /// How often the TLS files are looked at for a renewal. Not a setting (no variable):
    /// tests shorten it.
    #[serde(skip, default = "default_tls_reload_interval")]
    pub tls_reload_interval: std::time::Duration,
    /// Concurrent password hashes; 0 means one per CPU core.
    pub hash_concurrency: i64,
    /// Threads that serve requests; 0 means one per CPU the process may use (a container's
    /// CPU limit included). Read before the async runtime is built (`warden`'s `main`).
    pub worker_threads: i64,
    pub log_format: LogFormat,
    /// Run database migrations at start (takes a lock on PostgreSQL).
    pub auto_migrate: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Dev,
            database_url: "sqlite://warden.db?mode=rwc".into(),
            database_max_connections: 32,
            redis_url: None,
            http_addr: "127.0.0.1:8080".into(),
            grpc_addr: "127.0.0.1:50051".into(),
            metrics_addr: None,
            health_addr: None,
            issuer: "http://127.0.0.1:8080".into(),
            audience: "warden".into(),
            access_token_ttl: 900,
            refresh_token_ttl: 1_209_600,
            session_max_age: 2_592_000,
            refresh_replay_window: 10,
            lockout_threshold: 5,
            lockout_seconds: 60,
            lockout_max_seconds: 900,
            bootstrap_admin_username: None,
            bootstrap_admin_password: None,
            password_min_length: 12,
            password_min_strength: 3,
            client_rate_limit: 60,
            trusted_proxies: None,
            auth_endpoints: None,
            token_endpoints: None,
            key_endpoints: None,
            rbac_endpoints: None,
            signing_key_secret: None,
            signing_key_rotation: 2_592_000,
            api_key_pepper: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_reload_interval: default_tls_reload_interval(),
            hash_concurrency: 0,
            worker_threads: 0,
            log_format: LogFormat::Text,
            auto_migrate: true,
        }
    }
}

fn default_tls_reload_interval() -> std::time::Duration {
    crate::tls::RELOAD_INTERVAL
}

/// A configuration error: always names the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {reason}")]
pub struct ConfigError {
    pub setting: String,
    pub reason: String,
}

fn bad(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { setting: setting.to_owned(), reason: reason.into() }
}

impl Config {
    /// Loads defaults, `warden.toml` (or the file named by `WARDEN_CONFIG`), then env.
    pub fn load() -> Result<Config, ConfigError> {
        let file = std::env::var("WARDEN_CONFIG").unwrap_or_else(|_| "warden.toml".into());
        if std::env::var_os("WARDEN_CONFIG").is_some() && !Path::new(&file).exists() {
            return Err(bad("WARDEN_CONFIG", format!("file {file} does not exist")));
        }
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&file))
            .merge(Env::prefixed("WARDEN_").ignore(&["config"]))
            .extract()
            .map_err(|e| {
                let setting =
                    e.path.last().map(|k| format!("WARDEN_{}", k.to_uppercase())).unwrap_or_else(|| file.clone());
                bad(&setting, e.kind.to_string())
            })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("WARDEN_ACCESS_TOKEN_TTL", self.access_token_ttl),
            ("WARDEN_REFRESH_TOKEN_TTL", self.refresh_token_ttl),
            ("WARDEN_SESSION_MAX_AGE", self.session_max_age),
            ("WARDEN_LOCKOUT_THRESHOLD", self.lockout_threshold),
            ("WARDEN_LOCKOUT_SECONDS", self.lockout_seconds),
            ("WARDEN_LOCKOUT_MAX_SECONDS", self.lockout_max_seconds),
            ("WARDEN_PASSWORD_MIN_LENGTH", self.password_min_length),
        ];
        for (name, value) in positive {
            if value <= 0 {
                return Err(bad(name, format!("must be greater than 0 (got {value})")));
            }
        }
        if self.lockout_max_seconds < self.lockout_seconds {
            return Err(bad("WARDEN_LOCKOUT_MAX_SECONDS", "must be at least WARDEN_LOCKOUT_SECONDS"));
        }
        if !(0..=300).contains(&self.refresh_replay_window) {
            return Err(bad("WARDEN_REFRESH_REPLAY_WINDOW", "must be between 0 and 300 seconds"));
        }
        if !(0..=4).contains(&self.password_min_strength) {
            return Err(bad("WARDEN_PASSWORD_MIN_STRENGTH", "must be between 0 and 4"));
        }
        if self.password_min_length > 1024 {
            return Err(bad("WARDEN_PASSWORD_MIN_LENGTH", "must be at most 1024"));
        }
        if !(1..=1000).contains(&self.database_max_connections) {
            return Err(bad("WARDEN_DATABASE_MAX_CONNECTIONS", "must be between 1 and 1000"));
        }
        if self.client_rate_limit < 0 || self.hash_concurrency < 0 {
            let name = if self.client_rate_limit < 0 { "WARDEN_CLIENT_RATE_LIMIT" } else { "WARDEN_HASH_CONCURRENCY" };
            return Err(bad(name, "must not be negative"));
        }
        if !(0..=1024).contains(&self.worker_threads) {
            return Err(bad("WARDEN_WORKER_THREADS", "must be between 0 (one per CPU) and 1024"));
        }
        self.http_socket_addr()?;
        self.grpc_socket_addr()?;
        self.metrics_socket_addr()?;
        self.health_socket_addr()?;
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(bad("WARDEN_DATABASE_URL", "must start with sqlite:, postgres:// or postgresql://"));
        }
        if let Some(url) = &self.redis_url {
            fred::types::config::Config::from_url(url).map_err(|e| bad("WARDEN_REDIS_URL", e.details().to_string()))?;
        }
        for (name, value) in [
            ("WARDEN_AUTH_ENDPOINTS", &self.auth_endpoints),
            ("WARDEN_TOKEN_ENDPOINTS", &self.token_endpoints),
            ("WARDEN_KEY_ENDPOINTS", &self.key_endpoints),
            ("WARDEN_RBAC_ENDPOINTS", &self.rbac_endpoints),
        ] {
            for endpoint in split_list(value.as_deref()) {
                endpoint
                    .parse::<tonic::transport::Uri>()
                    .ok()
                    .filter(|u| u.scheme().is_some() && u.host().is_some())
                    .ok_or_else(|| bad(name, format!("{endpoint} is not a URL like http://host:port")))?;
            }
        }
        crate::net::parse_list(self.trusted_proxies.as_deref()).map_err(|e| bad("WARDEN_TRUSTED_PROXIES", e))?;
        if self.issuer.is_empty() {
            return Err(bad("WARDEN_ISSUER", "must not be empty"));
        }
        if self.audience.is_empty() {
            return Err(bad("WARDEN_AUDIENCE", "must not be empty"));
        }
        if self.mode == Mode::Prod && self.api_key_pepper.as_deref().is_none_or(|p| p.len() < 32) {
            return Err(bad("WARDEN_API_KEY_PEPPER", "prod mode needs a secret of at least 32 characters"));
        }
        if self.mode == Mode::Prod && self.signing_key_secret.as_deref().is_none_or(|p| p.len() < 32) {
            return Err(bad("WARDEN_SIGNING_KEY_SECRET", "prod mode needs a secret of at least 32 characters"));
        }
        let tls = [&self.tls_cert, &self.tls_key, &self.tls_ca].map(Option::is_some);
        if tls.contains(&true) && tls.contains(&false) {
            let missing =
                ["WARDEN_TLS_CERT", "WARDEN_TLS_KEY", "WARDEN_TLS_CA"][tls.iter().position(|set| !set).unwrap_or(0)];
            return Err(bad(missing, "set WARDEN_TLS_CERT, WARDEN_TLS_KEY and WARDEN_TLS_CA together, or none"));
        }
        if self.signing_key_rotation < 0 {
            return Err(bad("WARDEN_SIGNING_KEY_ROTATION", "must not be negative"));
        }
        if self.bootstrap_admin_username.is_some() != self.bootstrap_admin_password.is_some() {
            return Err(bad(
                "WARDEN_BOOTSTRAP_ADMIN_PASSWORD",
                "set both the bootstrap username and password, or neither",
            ));
        }
        Ok(())
    }

    pub fn http_socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http_addr.parse().map_err(|_| bad("WARDEN_HTTP_ADDR", format!("{} is not host:port", self.http_addr)))
    }

    pub fn grpc_socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.grpc_addr.parse().map_err(|_| bad("WARDEN_GRPC_ADDR", format!("{} is not host:port", self.grpc_addr)))
    }

    pub fn metrics_socket_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(addr) = &self.metrics_addr else { return Ok(None) };
        addr.parse().map(Some).map_err(|_| bad("WARDEN_METRICS_ADDR", format!("{addr} is not host:port")))
    }

    pub fn health_socket_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(addr) = &self.health_addr else { return Ok(None) };
        addr.parse().map(Some).map_err(|_| bad("WARDEN_HEALTH_ADDR", format!("{addr} is not host:port")))
    }

    pub fn hash_workers(&self) -> usize {
        match self.hash_concurrency {
            0 => default_hash_workers(),
            n => n as usize,
        }
    }
}

/// Hashing threads where `WARDEN_HASH_CONCURRENCY` is unset: one per core.
pub fn default_hash_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// Splits a comma-separated setting, dropping blanks.
pub fn split_list(value: Option<&str>) -> Vec<String> {
    value.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_setting() {
        let c = Config { access_token_ttl: 0, ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("WARDEN_ACCESS_TOKEN_TTL"));
        let c = Config { database_url: "mysql://x".into(), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("WARDEN_DATABASE_URL"));
        let c = Config { grpc_addr: "nope".into(), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("WARDEN_GRPC_ADDR"));
        let c = Config { database_max_connections: 0, ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("WARDEN_DATABASE_MAX_CONNECTIONS"));
        let c = Config { mode: Mode::Prod, ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("WARDEN_API_KEY_PEPPER"));
        let c = Config { tls_cert: Some("c".into()), tls_key: Some("k".into()), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().starts_with("invalid configuration: WARDEN_TLS_CA:"));
        let c = Config { metrics_addr: Some("nope".into()), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("WARDEN_METRICS_ADDR"));
        let c = Config { health_addr: Some("nope".into()), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("WARDEN_HEALTH_ADDR"));
    }

    #[test]
    fn the_tls_reload_interval_is_not_a_setting() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        assert!(defaults.get("tls_reload_interval").is_none());
        let read: Config = serde_json::from_value(serde_json::json!({ "tls_reload_interval": 1 })).unwrap();
        assert_eq!(read.tls_reload_interval, crate::tls::RELOAD_INTERVAL);
    }
}
