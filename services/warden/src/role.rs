//! Which services a process runs.
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceRole {
    /// Every service in one process (the embedded default).
    All,
    Auth,
    Token,
    Key,
    Rbac,
    Gateway,
}

impl FromStr for ServiceRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(ServiceRole::All),
            "auth" => Ok(ServiceRole::Auth),
            "token" => Ok(ServiceRole::Token),
            "key" => Ok(ServiceRole::Key),
            "rbac" => Ok(ServiceRole::Rbac),
            "gateway" => Ok(ServiceRole::Gateway),
            other => Err(format!("unknown service {other:?}; expected auth, token, key, rbac or gateway")),
        }
    }
}

impl fmt::Display for ServiceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceRole::All => "all",
            ServiceRole::Auth => "auth",
            ServiceRole::Token => "token",
            ServiceRole::Key => "key",
            ServiceRole::Rbac => "rbac",
            ServiceRole::Gateway => "gateway",
        })
    }
}
