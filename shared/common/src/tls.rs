//! Mutual TLS between services: one certificate and key for this process (presented as a
//! server and as a client) and the CA that signs every peer's certificate, read from PEM
//! files (`WARDEN_TLS_CERT`, `WARDEN_TLS_KEY`, `WARDEN_TLS_CA`; cert-manager's `tls.crt`,
//! `tls.key` and `ca.crt`). A server with TLS refuses plaintext and any client without a
//! certificate signed by the CA; a client with TLS reaches its peers only over TLS and
//! checks their certificates against the same CA.
use crate::Config;
use anyhow::Context;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// This process's TLS material, loaded once at start.
#[derive(Clone, Debug)]
pub struct Tls {
    identity: Identity,
    ca: Certificate,
}

impl Tls {
    /// Reads the files named by the configuration; `None` when TLS is not configured.
    /// [`Config::validate`] has already checked that the three settings come together.
    pub fn load(config: &Config) -> anyhow::Result<Option<Tls>> {
        let (Some(cert), Some(key), Some(ca)) = (&config.tls_cert, &config.tls_key, &config.tls_ca) else {
            return Ok(None);
        };
        let read = |setting: &str, path: &str| {
            std::fs::read(path).with_context(|| format!("invalid configuration: {setting}: cannot read {path}"))
        };
        let (cert, key, ca) =
            (read("WARDEN_TLS_CERT", cert)?, read("WARDEN_TLS_KEY", key)?, read("WARDEN_TLS_CA", ca)?);
        for (setting, pem, what) in [
            ("WARDEN_TLS_CERT", &cert, "CERTIFICATE"),
            ("WARDEN_TLS_KEY", &key, "PRIVATE KEY"),
            ("WARDEN_TLS_CA", &ca, "CERTIFICATE"),
        ] {
            if !String::from_utf8_lossy(pem).contains(&format!("{what}-----")) {
                anyhow::bail!("invalid configuration: {setting}: not a PEM file with a {what}");
            }
        }
        Ok(Some(Tls { identity: Identity::from_pem(cert, key), ca: Certificate::from_pem(ca) }))
    }

    /// Server side: this identity; clients must present a certificate signed by the CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone()).client_ca_root(self.ca.clone())
    }

    /// Client side: this identity, and peers verified against the CA only.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().identity(self.identity.clone()).ca_certificate(self.ca.clone())
    }
}
