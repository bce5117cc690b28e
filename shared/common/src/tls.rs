//! Mutual TLS between services: one certificate and key for this process (presented as a
//! server and as a client) and the CA that signs every peer's certificate, read from PEM
//! files (`WARDEN_TLS_CERT`, `WARDEN_TLS_KEY`, `WARDEN_TLS_CA`; cert-manager's `tls.crt`,
//! `tls.key` and `ca.crt`). A server with TLS refuses plaintext and any client without a
//! certificate signed by the CA; a client with TLS reaches its peers only over TLS and
//! checks their certificates against the same CA.
//!
//! The files are reloaded while the process runs (cert-manager renews a certificate by
//! rewriting the mounted Secret): [`Tls::watch`] looks at them every few seconds, and a new
//! set replaces the one in use only if it is whole and usable (every file parses, the key
//! belongs to the certificate, the CA file holds usable CA certificates). Anything else is
//! logged as an error and the previous set stays in use. Each set becomes one rustls
//! `ServerConfig` and one `ClientConfig`; every handshake, on either side, takes the set
//! current at that moment, so new connections use new material while established ones keep
//! their session. Sessions of an older set are never resumed under a newer one (each set has
//! its own session cache), so a client certificate whose CA was dropped from the trust bundle
//! cannot come back through resumption.
//!
//! rustls uses the `ring` provider, selected explicitly for every configuration here (never
//! the process-wide default), so the outcome does not depend on which providers other crates
//! enable or install.
use crate::Config;
use anyhow::{Context as _, anyhow};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio_rustls::rustls::{self, ClientConfig, InconsistentKeys, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Endpoint, Uri};

/// How often the files are looked at for a renewal (`Config::tls_reload_interval`).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// Longest a connection may take over its TLS handshake, on either side.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// gRPC is HTTP/2 only.
const ALPN_H2: &[u8] = b"h2";

/// This process's TLS material: the set in use, swapped whole when the files change.
/// Clones share it.
#[derive(Clone)]
pub struct Tls {
    shared: Arc<Shared>,
}

struct Shared {
    files: Files,
    current: RwLock<Arc<Material>>,
    reloaded: AtomicU64,
    rejected: AtomicU64,
}

/// Where the three PEM files are.
struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// The contents of the three files, as read.
#[derive(Clone, PartialEq, Eq)]
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

/// One usable set, and the configurations made of it.
struct Material {
    pem: Pem,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    /// SHA-256 of the leaf certificate (hex), for the logs.
    fingerprint: String,
}

/// What the reloader did so far (tests; `warden_tls_reloads_total` for operators).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reloads {
    /// New sets put in use.
    pub reloaded: u64,
    /// Changed files left unused (unreadable, unparsable, key not matching the certificate).
    pub rejected: u64,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.shared.files.cert)
            .field("fingerprint", &self.current().fingerprint)
            .finish_non_exhaustive()
    }
}

/// The one rustls crypto provider Warden uses.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

impl Tls {
    /// Reads the files named by the configuration; `None` when TLS is not configured. An
    /// unusable set stops the start with a line naming the setting.
    /// [`Config::validate`] has already checked that the three settings come together.
    pub fn load(config: &Config) -> anyhow::Result<Option<Tls>> {
        let (Some(cert), Some(key), Some(ca)) = (&config.tls_cert, &config.tls_key, &config.tls_ca) else {
            return Ok(None);
        };
        let files = Files { cert: cert.into(), key: key.into(), ca: ca.into() };
        let material = files.read().and_then(Material::build).map_err(|e| anyhow!("invalid configuration: {e:#}"))?;
        Ok(Some(Tls {
            shared: Arc::new(Shared {
                files,
                current: RwLock::new(Arc::new(material)),
                reloaded: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
        }))
    }

    fn current(&self) -> Arc<Material> {
        self.shared.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What the reloader did so far.
    pub fn reloads(&self) -> Reloads {
        Reloads {
            reloaded: self.shared.reloaded.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
        }
    }

    /// Looks at the files every `every` until `stop`, and puts a changed set in use when it
    /// is usable; otherwise logs why and keeps the set in use. Each distinct change is
    /// judged (and logged) once.
    pub async fn watch(&self, every: Duration, stop: impl Future<Output = ()>) {
        let every = every.max(Duration::from_millis(10));
        let poll = async {
            let mut last: Result<Pem, String> = Ok(self.current().pem.clone());
            loop {
                tokio::time::sleep(every).await;
                let shared = self.shared.clone();
                let Ok(Some(seen)) = tokio::task::spawn_blocking(move || shared.files.read_settled()).await else {
                    // Being written right now: look again next time.
                    continue;
                };
                let seen = seen.map_err(|e| format!("{e:#}"));
                if seen == last {
                    continue;
                }
                last = seen.clone();
                self.consider(seen);
            }
        };
        tokio::select! {
            () = poll => {}
            () = stop => {}
        }
    }

    /// Puts a newly read set in use if it is usable.
    fn consider(&self, seen: Result<Pem, String>) {
        let built = match seen {
            Ok(pem) if pem == self.current().pem => return,
            Ok(pem) => Material::build(pem).map_err(|e| format!("{e:#}")),
            Err(e) => Err(e),
        };
        match built {
            Ok(material) => {
                let fingerprint = material.fingerprint.clone();
                *self.shared.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(material);
                self.shared.reloaded.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("warden_tls_reloads_total", "outcome" => "reloaded").increment(1);
                tracing::info!(
                    cert = %self.shared.files.cert.display(),
                    sha256 = %fingerprint,
                    "TLS certificate, key and CA reloaded; new connections use them"
                );
            }
            Err(error) => {
                self.shared.rejected.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("warden_tls_reloads_total", "outcome" => "rejected").increment(1);
                tracing::error!(
                    %error,
                    in_use = %self.current().fingerprint,
                    "TLS files changed but are not usable; still using the previous certificate, key and CA"
                );
            }
        }
    }

    /// Server side: TLS connections accepted on `listener`, each handshake with the set
    /// current when the connection came (TCP_NODELAY on every socket). Connections that fail
    /// the handshake (plaintext, no client certificate, one the CA did not sign) never reach
    /// the server. Accepting stops when the stream is dropped (the server shuts down).
    pub fn incoming(
        &self,
        listener: TcpListener,
    ) -> ReceiverStream<io::Result<tokio_rustls::server::TlsStream<TcpStream>>> {
        let (ready, incoming) = mpsc::channel(64);
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = ready.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::error!(error = %e, "grpc: cannot accept connections");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                // Small request/response pairs: without TCP_NODELAY, Nagle + delayed ACK holds
                // each reply ~40 ms on a busy connection.
                let _ = tcp.set_nodelay(true);
                let acceptor = TlsAcceptor::from(tls.current().server.clone());
                let ready = ready.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready.send(Ok(stream)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "grpc: TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "grpc: TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(incoming)
    }

    /// Client side: the endpoint for `url` (`https://host:port`, or `http://`, which is
    /// reached over TLS all the same) to be connected with [`Tls::connector`]. Its requests
    /// carry the `https` scheme; tonic itself sees `http://` and adds no TLS of its own.
    pub fn endpoint(&self, url: &str) -> anyhow::Result<Endpoint> {
        let uri: Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            anyhow::bail!("not an absolute URL: {url}");
        };
        if scheme != "https" && scheme != "http" {
            anyhow::bail!("not an http(s) URL: {url}");
        }
        let port = uri.port_u16().unwrap_or(443);
        let authority = uri.authority().map_or(host, |a| a.as_str());
        let origin: Uri = format!("https://{authority}").parse().context("origin")?;
        Ok(Endpoint::from_shared(format!("http://{host}:{port}"))?.origin(origin))
    }

    /// Client side: makes each new connection over TCP (TCP_NODELAY) and TLS with the set
    /// current at that moment: presents this certificate, trusts peers signed by this CA.
    pub fn connector(&self) -> Connector {
        Connector { tls: self.clone() }
    }
}

/// Errors of one accepted connection, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Connects a channel made by [`Tls::endpoint`] (see [`Tls::connector`]).
#[derive(Clone, Debug)]
pub struct Connector {
    tls: Tls,
}

type Connected = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

impl tower::Service<Uri> for Connector {
    type Response = Connected;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Connected>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.tls.current().client.clone();
        Box::pin(async move {
            let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {uri}"));
            let host = uri.host().ok_or_else(|| invalid("no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
            let name = ServerName::try_from(host.clone()).map_err(|_| invalid("not a host name"))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsConnector::from(config).connect(name, tcp))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
            if stream.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "the peer did not negotiate HTTP/2 (ALPN h2)"));
            }
            Ok(TokioIo::new(stream))
        })
    }
}

impl Files {
    fn read(&self) -> anyhow::Result<Pem> {
        let read = |setting: &str, path: &Path| {
            std::fs::read(path).with_context(|| format!("{setting}: cannot read {}", path.display()))
        };
        Ok(Pem {
            cert: read("WARDEN_TLS_CERT", &self.cert)?,
            key: read("WARDEN_TLS_KEY", &self.key)?,
            ca: read("WARDEN_TLS_CA", &self.ca)?,
        })
    }

    /// The files, read twice: `None` when the two reads differ, i.e. the files are being
    /// replaced right now (a read across a swap could mix old and new files).
    fn read_settled(&self) -> Option<anyhow::Result<Pem>> {
        let first = self.read();
        let second = self.read();
        match (first, second) {
            (Ok(a), Ok(b)) if a == b => Some(Ok(a)),
            (Err(a), Err(b)) if format!("{a:#}") == format!("{b:#}") => Some(Err(a)),
            _ => None,
        }
    }
}

impl Material {
    /// Checks a set and makes its configurations; errors name the setting at fault.
    fn build(pem: Pem) -> anyhow::Result<Material> {
        let provider = provider();
        let chain = certificates("WARDEN_TLS_CERT", &pem.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&pem.key)
            .map_err(|e| anyhow!("WARDEN_TLS_KEY: not a PEM file with a PRIVATE KEY ({e})"))?;
        let key = provider.key_provider.load_private_key(key).context("WARDEN_TLS_KEY: unusable private key")?;
        let fingerprint = hex::encode(Sha256::digest(&chain[0]));
        let certified = CertifiedKey::new(chain, key);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                anyhow::bail!("WARDEN_TLS_KEY: the key does not belong to the certificate in WARDEN_TLS_CERT")
            }
            Err(e) => anyhow::bail!("WARDEN_TLS_CERT: unusable certificate ({e})"),
        }
        let certified = Arc::new(certified);

        let mut roots = RootCertStore::empty();
        for ca in certificates("WARDEN_TLS_CA", &pem.ca)? {
            roots.add(ca).context("WARDEN_TLS_CA: unusable CA certificate")?;
        }
        let roots = Arc::new(roots);

        let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .context("WARDEN_TLS_CA: cannot verify clients with it")?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(clients)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone())));
        server.alpn_protocols = vec![ALPN_H2.to_vec()];

        let servers = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .context("WARDEN_TLS_CA: cannot verify servers with it")?;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_webpki_verifier(servers)
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        client.alpn_protocols = vec![ALPN_H2.to_vec()];

        Ok(Material { pem, server: Arc::new(server), client: Arc::new(client), fingerprint })
    }
}

/// The certificates of a PEM file: at least one, every one readable.
fn certificates(setting: &str, pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{setting}: not a PEM file of certificates ({e})"))?;
    if certs.is_empty() {
        anyhow::bail!("{setting}: not a PEM file with a CERTIFICATE");
    }
    Ok(certs)
}
