//! Mutual TLS between services, with a CA and certificates made at test time: a client with
//! a CA-signed certificate is served, one without a certificate, one with a certificate of
//! another CA and a plaintext one are refused; a whole split deployment logs in over mTLS;
//! in prod a split service refuses to start without TLS and serves no reflection.
//!
//! Reloading (cert-manager renewals, written the way the kubelet updates a Secret volume): a
//! renewed certificate is presented to new connections without a restart, while garbage, a
//! half-written set or a key of another certificate leaves the service on its old material; a
//! client presents its renewed certificate on new connections of the same channel; a whole
//! split deployment moves from CA A to CA B through a trust bundle holding both, and ends
//! trusting B only, with no process restarted.
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use warden::{ServiceRole, Warden};
use warden_common::clock::{OffsetClock, SharedClock};
use warden_common::config::Mode;
use warden_common::tls::Tls;
use warden_common::{Config, ErrorCode, grpc};
use warden_proto::token::v1 as pb;
use warden_proto::token::v1::token_service_client::TokenServiceClient;
use warden_tests::proxy::{Fault, FaultProxy};
use warden_tests::{ADMIN_PASSWORD, Backend, backend_urls, base_config};
use warden_token::TokenApi;
use warden_token::grpc::RemoteTokens;

/// A certificate authority for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("warden-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.crt"), issuer.pem()).unwrap();
        Ca { issuer, dir }
    }

    /// A certificate for `name`, valid for 127.0.0.1 and localhost, as server and client.
    fn leaf(&self, name: &str) -> Leaf {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert: cert.pem(), key: key.serialize_pem(), der: cert.der().to_vec() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues a certificate for `name` and puts its files, cert-manager style, in a
    /// directory of their own.
    fn issue(&self, name: &str) -> (String, String, String) {
        let leaf = self.leaf(name);
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), &leaf.cert).unwrap();
        std::fs::write(dir.join("tls.key"), &leaf.key).unwrap();
        std::fs::write(dir.join("ca.crt"), self.issuer.pem()).unwrap();
        let path = |f: &str| dir.join(f).display().to_string();
        (path("tls.crt"), path("tls.key"), path("ca.crt"))
    }

    fn configure(&self, name: &str, config: &mut Config) {
        let (cert, key, ca) = self.issue(name);
        (config.tls_cert, config.tls_key, config.tls_ca) = (Some(cert), Some(key), Some(ca));
    }

    fn client(&self, name: &str) -> Tls {
        let mut config = Config::default();
        self.configure(name, &mut config);
        Tls::load(&config).unwrap().expect("tls configured")
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn clock() -> SharedClock {
    Arc::new(OffsetClock::default())
}

async fn jwks_over(channel: grpc::PeerChannel) -> warden_common::Result<usize> {
    let defaults = Config::default();
    RemoteTokens::new(channel, &defaults.issuer, &defaults.audience, clock()).jwks().await.map(|keys| keys.len())
}

#[tokio::test]
async fn the_grpc_port_serves_ca_signed_clients_only() {
    let ca = Ca::new("warden test CA");
    let mut config = base_config(warden_common::testing::sqlite_url(), None);
    ca.configure("token", &mut config);
    config.health_addr = Some("127.0.0.1:0".into());
    let token = Warden::start(config, ServiceRole::Token, clock()).await.expect("token service over mTLS");
    let endpoint = vec![format!("http://{}", token.grpc_addr.unwrap())];

    // A CA-signed client certificate: served (the http:// endpoint is upgraded to TLS).
    let trusted = ca.client("auth");
    let channel = grpc::channel("WARDEN_TOKEN_ENDPOINTS", &endpoint, Some(&trusted)).unwrap();
    assert!(jwks_over(channel).await.expect("served over mTLS") >= 1);

    // Plaintext: refused.
    let plaintext = grpc::channel("WARDEN_TOKEN_ENDPOINTS", &endpoint, None).unwrap();
    assert_eq!(jwks_over(plaintext).await.unwrap_err().code, ErrorCode::Unavailable);

    // TLS that trusts the server but presents no certificate: refused.
    let https = format!("https://{}", token.grpc_addr.unwrap());
    let no_cert = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.issuer.pem()));
    let channel = Endpoint::from_shared(https).unwrap().tls_config(no_cert).unwrap().connect_lazy();
    assert!(TokenServiceClient::new(channel).get_jwks(pb::GetJwksRequest {}).await.is_err());

    // A certificate from another CA: refused (and that client does not trust the server).
    let stranger = Ca::new("someone else's CA").client("intruder");
    let channel = grpc::channel("WARDEN_TOKEN_ENDPOINTS", &endpoint, Some(&stranger)).unwrap();
    assert_eq!(jwks_over(channel).await.unwrap_err().code, ErrorCode::Unavailable);

    // Probes that cannot present a certificate use the plaintext health-only listener.
    let health = Endpoint::from_shared(format!("http://{}", token.health_addr.expect("health listener")))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = HealthCheckRequest { service: "warden.liveness".into() };
    assert_eq!(HealthClient::new(health.clone()).check(request).await.unwrap().into_inner().status, 1);
    let jwks = TokenServiceClient::new(health).get_jwks(pb::GetJwksRequest {}).await;
    assert_eq!(jwks.unwrap_err().code(), tonic::Code::Unimplemented, "only health on the plaintext port");
    token.shutdown().await;
}

fn prod(config: &mut Config) {
    config.mode = Mode::Prod;
    config.api_key_pepper = Some("p".repeat(32));
    config.signing_key_secret = Some("s".repeat(32));
}

#[tokio::test]
async fn in_prod_a_split_service_needs_tls_and_serves_no_reflection() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let mut config = base_config(warden_common::testing::sqlite_url(), None);
    prod(&mut config);
    let refused = Warden::start(config.clone(), ServiceRole::Token, clock()).await.err().expect("no TLS, no start");
    assert!(refused.to_string().starts_with("invalid configuration: WARDEN_TLS_CERT:"), "{refused}");

    let ca = Ca::new("warden test CA");
    ca.configure("token", &mut config);
    let token = Warden::start(config, ServiceRole::Token, clock()).await.expect("prod with TLS starts");
    let client = ca.client("auth");
    let endpoint = vec![format!("https://{}", token.grpc_addr.unwrap())];
    let channel = grpc::channel("WARDEN_TOKEN_ENDPOINTS", &endpoint, Some(&client)).unwrap();
    assert!(jwks_over(channel.clone()).await.is_ok());
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let answer = ServerReflectionClient::new(channel).server_reflection_info(tokio_stream::iter([list])).await;
    assert_eq!(answer.err().map(|s| s.code()), Some(tonic::Code::Unimplemented));
    token.shutdown().await;
}

/// Every service its own server, every hop over mTLS: a REST login through the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_deployment_works_over_mutual_tls() {
    let Some((db, redis)) = backend_urls(Backend::PostgresRedis, "split_mtls").await else { return };
    let ca = Ca::new("warden test CA");
    let config = base_config(db, redis);
    let mut processes = Vec::new();
    let mut start = async |role: ServiceRole, mut config: Config| {
        ca.configure(&role.to_string(), &mut config);
        let w = Warden::start(config, role, clock()).await.expect("start over mTLS");
        let url = w.grpc_addr.map(|a| format!("https://{a}"));
        let http = w.http_addr;
        processes.push(w);
        (url, http)
    };
    let token = start(ServiceRole::Token, config.clone()).await.0;
    let rbac = start(ServiceRole::Rbac, config.clone()).await.0;
    let key = start(ServiceRole::Key, config.clone()).await.0;
    let peers = Config { token_endpoints: token, rbac_endpoints: rbac, key_endpoints: key, ..config };
    let auth = start(ServiceRole::Auth, peers.clone()).await.0;
    let gateway = start(ServiceRole::Gateway, Config { auth_endpoints: auth, ..peers.clone() }).await.1;
    let login = format!("http://{}/api/v1/auth/login", gateway.expect("gateway"));
    let body = serde_json::json!({"username": peers.bootstrap_admin_username, "password": ADMIN_PASSWORD});
    let http = reqwest::Client::new();
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The bootstrap admin appears once the auth service reaches RBAC.
    while http.post(&login).json(&body).send().await.unwrap().status() != 200 {
        assert!(std::time::Instant::now() < give_up, "login through the mTLS deployment");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for p in processes {
        p.shutdown().await;
    }
}

/// A certificate and its key, PEM, and the certificate's DER (what a peer is presented).
#[derive(Clone)]
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
}

/// The files of a Secret volume as the kubelet keeps them: `tls.crt`, `tls.key` and `ca.crt`
/// are symlinks through `..data` to a versioned directory, and an update writes a new
/// directory, then swaps `..data` to it in one rename (cert-manager's renewals arrive so).
struct Mount {
    dir: PathBuf,
    version: usize,
}

impl Mount {
    fn new(dir: PathBuf) -> Mount {
        std::fs::create_dir_all(&dir).unwrap();
        Mount { dir, version: 0 }
    }

    /// A mount holding `leaf` and the CA bundle `ca`.
    fn with(dir: PathBuf, leaf: &Leaf, ca: &str) -> Mount {
        let mut mount = Mount::new(dir);
        mount.publish(leaf.cert.as_bytes(), leaf.key.as_bytes(), ca.as_bytes());
        mount
    }

    fn configure(&self, config: &mut Config) {
        let path = |f: &str| Some(self.dir.join(f).display().to_string());
        (config.tls_cert, config.tls_key, config.tls_ca) = (path("tls.crt"), path("tls.key"), path("ca.crt"));
        config.tls_reload_interval = Duration::from_millis(50);
    }

    /// Puts a new version of the three files in place, atomically.
    fn publish(&mut self, cert: &[u8], key: &[u8], ca: &[u8]) {
        use std::os::unix::fs::symlink;
        self.version += 1;
        let version = format!("..v{}", self.version);
        let files = self.dir.join(&version);
        std::fs::create_dir(&files).unwrap();
        for (name, content) in [("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)] {
            std::fs::write(files.join(name), content).unwrap();
        }
        let swap = self.dir.join("..data_tmp");
        symlink(&version, &swap).unwrap();
        std::fs::rename(&swap, self.dir.join("..data")).unwrap();
        for name in ["tls.crt", "tls.key", "ca.crt"] {
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
        if self.version > 1 {
            std::fs::remove_dir_all(self.dir.join(format!("..v{}", self.version - 1))).unwrap();
        }
    }

    fn renew(&mut self, leaf: &Leaf, ca: &str) {
        self.publish(leaf.cert.as_bytes(), leaf.key.as_bytes(), ca.as_bytes());
    }
}

/// A TLS handshake with the gRPC port at `addr`, as a client presenting `leaf` and trusting
/// only the CAs in `trusted`: the certificate the server presented. (With TLS 1.3 the
/// client's handshake ends before the server has judged the client certificate: a refusal
/// shows on the first call, see [`jwks_over`].)
async fn presented(addr: SocketAddr, trusted: &[&Ca], leaf: &Leaf) -> std::io::Result<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in trusted {
        roots.add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap()).unwrap();
    }
    let chain = vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    let (_, session) = tls.get_ref();
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]), "the server negotiates HTTP/2");
    Ok(session.peer_certificates().expect("a server certificate")[0].to_vec())
}

/// A fresh channel to `addr` for a client presenting `leaf` and trusting `ca` (a bundle).
fn fresh_client(dir: &Path, addr: SocketAddr, leaf: &Leaf, ca: &str) -> grpc::PeerChannel {
    let mount = Mount::with(dir.join(format!("client-{}", uuid::Uuid::new_v4().simple())), leaf, ca);
    let mut config = Config::default();
    mount.configure(&mut config);
    let tls = Tls::load(&config).unwrap().expect("tls configured");
    grpc::channel("WARDEN_TOKEN_ENDPOINTS", &[format!("https://{addr}")], Some(&tls)).unwrap()
}

/// Waits until every process has put `reloaded` new sets in use and rejected `rejected`.
async fn reloads(processes: &[&Warden], reloaded: u64, rejected: u64) {
    let give_up = Instant::now() + Duration::from_secs(10);
    for p in processes {
        let tls = p.tls.as_ref().expect("TLS configured");
        while tls.reloads().reloaded < reloaded || tls.reloads().rejected < rejected {
            assert!(Instant::now() < give_up, "reloads: {:?}, waiting for {reloaded} and {rejected}", tls.reloads());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = tls.reloads();
        assert_eq!((seen.reloaded, seen.rejected), (reloaded, rejected), "exactly these reloads");
    }
}

#[tokio::test]
async fn a_renewed_certificate_reaches_new_connections_without_a_restart() {
    let ca = Ca::new("warden test CA");
    let first = ca.leaf("token");
    let mut mount = Mount::with(ca.dir.join("token"), &first, &ca.pem());
    let mut config = base_config(warden_common::testing::sqlite_url(), None);
    mount.configure(&mut config);
    let token = Warden::start(config, ServiceRole::Token, clock()).await.expect("token service over mTLS");
    let addr = token.grpc_addr.unwrap();
    let client = ca.leaf("auth");
    assert_eq!(presented(addr, &[&ca], &client).await.unwrap(), first.der);
    let established = fresh_client(&ca.dir, addr, &client, &ca.pem());
    assert!(jwks_over(established.clone()).await.is_ok());

    // cert-manager renews: new connections get the new certificate, the process runs on.
    let renewed = ca.leaf("token");
    mount.renew(&renewed, &ca.pem());
    reloads(&[&token], 1, 0).await;
    assert_eq!(presented(addr, &[&ca], &client).await.unwrap(), renewed.der, "the renewed certificate");
    assert!(jwks_over(established.clone()).await.is_ok(), "an established connection goes on");
    assert!(jwks_over(fresh_client(&ca.dir, addr, &client, &ca.pem())).await.is_ok());

    // Garbage, a half-written certificate, a key of another certificate, an empty CA file:
    // each is refused (logged), and the service goes on with the renewed certificate.
    let other = ca.leaf("token");
    let half = &renewed.cert.as_bytes()[..renewed.cert.len() / 2];
    let ca_pem = ca.pem();
    let bad: [(&[u8], &[u8], &[u8]); 4] = [
        (b"not a certificate at all", renewed.key.as_bytes(), ca_pem.as_bytes()),
        (half, renewed.key.as_bytes(), ca_pem.as_bytes()),
        (other.cert.as_bytes(), renewed.key.as_bytes(), ca_pem.as_bytes()),
        (renewed.cert.as_bytes(), renewed.key.as_bytes(), b""),
    ];
    for (rejected, (cert, key, bundle)) in (1..).zip(bad) {
        mount.publish(cert, key, bundle);
        reloads(&[&token], 1, rejected).await;
        assert_eq!(presented(addr, &[&ca], &client).await.unwrap(), renewed.der, "still the renewed certificate");
        assert!(jwks_over(fresh_client(&ca.dir, addr, &client, &ca.pem())).await.is_ok(), "still serving");
    }

    // Fixed files are picked up again.
    mount.renew(&other, &ca.pem());
    reloads(&[&token], 2, 4).await;
    assert_eq!(presented(addr, &[&ca], &client).await.unwrap(), other.der);
    token.shutdown().await;
}

#[tokio::test]
async fn a_bad_set_at_start_stops_the_process_naming_the_setting() {
    let ca = Ca::new("warden test CA");
    let (leaf, other) = (ca.leaf("token"), ca.leaf("token"));
    let mut mount = Mount::with(ca.dir.join("token"), &leaf, &ca.pem());
    let mut config = base_config(warden_common::testing::sqlite_url(), None);
    mount.configure(&mut config);
    for (cert, key, ca_pem, setting) in [
        (leaf.cert.as_bytes(), other.key.as_bytes(), ca.pem(), "WARDEN_TLS_KEY"),
        (b"garbage".as_slice(), leaf.key.as_bytes(), ca.pem(), "WARDEN_TLS_CERT"),
        (leaf.cert.as_bytes(), leaf.key.as_bytes(), "garbage".to_owned(), "WARDEN_TLS_CA"),
    ] {
        mount.publish(cert, key, ca_pem.as_bytes());
        let refused = Warden::start(config.clone(), ServiceRole::Token, clock()).await.err().expect("no start");
        assert!(refused.to_string().starts_with(&format!("invalid configuration: {setting}:")), "{refused}");
    }
}

/// The client side: a channel made once reaches a server that trusts only CA B as soon as
/// its own files move to a certificate from B (its next connection presents it).
#[tokio::test]
async fn a_client_presents_its_renewed_certificate_on_new_connections() {
    let (a, b) = (Ca::new("CA A"), Ca::new("CA B"));
    let mut config = base_config(warden_common::testing::sqlite_url(), None);
    let server_files = Mount::with(b.dir.join("token"), &b.leaf("token"), &b.pem());
    server_files.configure(&mut config);
    let token = Warden::start(config, ServiceRole::Token, clock()).await.expect("token service trusting B");
    let endpoint = vec![format!("http://{}", token.grpc_addr.unwrap())];

    let mut mount = Mount::with(a.dir.join("auth"), &a.leaf("auth"), &a.pem());
    let mut config = Config::default();
    mount.configure(&mut config);
    let client = Tls::load(&config).unwrap().expect("tls configured");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .watch(Duration::from_millis(50), async move {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let channel = grpc::channel("WARDEN_TOKEN_ENDPOINTS", &endpoint, Some(&client)).unwrap();
    assert_eq!(jwks_over(channel.clone()).await.unwrap_err().code, ErrorCode::Unavailable, "A is not trusted");

    mount.renew(&b.leaf("auth"), &b.pem());
    let give_up = Instant::now() + Duration::from_secs(10);
    while client.reloads().reloaded < 1 {
        assert!(Instant::now() < give_up, "the client reloads");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(jwks_over(channel).await.expect("the same channel, connecting anew with B") >= 1);
    let _ = stop.send(());
    watcher.await.unwrap();
    token.shutdown().await;
}

/// A whole split deployment moves from CA A to CA B the way cert-manager users do it, with
/// no process restarted: first every trust bundle holds A and B, then every certificate is
/// reissued by B, then A leaves the bundles. Connections made after that use B only, both
/// ways: a client of A is refused, a client of B is served, and the auth service and the
/// gateway reconnect to the token service (all its connections cut) with their B certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_with_an_overlapping_trust_bundle_needs_no_restart() {
    let Some((db, redis)) = backend_urls(Backend::PostgresRedis, "tls_ca_rotation").await else { return };
    let (a, b) = (Ca::new("CA A"), Ca::new("CA B"));
    let config = base_config(db, redis);
    let roles = [ServiceRole::Token, ServiceRole::Rbac, ServiceRole::Key, ServiceRole::Auth, ServiceRole::Gateway];
    let mut mounts: Vec<Mount> = roles
        .iter()
        .map(|role| Mount::with(a.dir.join(role.to_string()), &a.leaf(&role.to_string()), &a.pem()))
        .collect();
    let tls = |i: usize, mut config: Config| {
        mounts[i].configure(&mut config);
        config
    };
    let token = Warden::start(tls(0, config.clone()), ServiceRole::Token, clock()).await.expect("token");
    let token_addr = token.grpc_addr.unwrap();
    let proxy = FaultProxy::start(token_addr).await;
    let rbac = Warden::start(tls(1, config.clone()), ServiceRole::Rbac, clock()).await.expect("rbac");
    let key = Warden::start(tls(2, config.clone()), ServiceRole::Key, clock()).await.expect("key");
    let peers = Config {
        token_endpoints: Some(format!("https://{}", proxy.addr)),
        rbac_endpoints: rbac.grpc_addr.map(|a| format!("https://{a}")),
        key_endpoints: key.grpc_addr.map(|a| format!("https://{a}")),
        ..config
    };
    let auth = Warden::start(tls(3, peers.clone()), ServiceRole::Auth, clock()).await.expect("auth");
    let gateway_config = Config { auth_endpoints: auth.grpc_addr.map(|a| format!("https://{a}")), ..peers.clone() };
    let gateway = Warden::start(tls(4, gateway_config), ServiceRole::Gateway, clock()).await.expect("gateway");
    let processes = [&token, &rbac, &key, &auth, &gateway];

    let login = format!("http://{}/api/v1/auth/login", gateway.http_addr.expect("gateway"));
    let body = serde_json::json!({"username": peers.bootstrap_admin_username, "password": ADMIN_PASSWORD});
    let http = reqwest::Client::new();
    let logs_in = async || {
        let give_up = Instant::now() + Duration::from_secs(10);
        // The bootstrap admin appears once the auth service reaches RBAC; after a cut, the
        // first calls may meet the proxy still refusing.
        while http.post(&login).json(&body).send().await.unwrap().status() != 200 {
            assert!(Instant::now() < give_up, "login through the mTLS deployment");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    logs_in().await;

    // 1. Every trust bundle holds A and B; the certificates stay.
    let both = format!("{}{}", a.pem(), b.pem());
    let current: Vec<Leaf> = mounts.iter().map(|m| read_leaf(&m.dir)).collect();
    for (mount, leaf) in mounts.iter_mut().zip(&current) {
        mount.renew(leaf, &both);
    }
    reloads(&processes, 1, 0).await;
    logs_in().await;

    // 2. Every certificate reissued by B (a service may go first: the others trust both).
    let renewed: Vec<Leaf> = roles.iter().map(|role| b.leaf(&role.to_string())).collect();
    for (mount, leaf) in mounts.iter_mut().zip(&renewed) {
        mount.renew(leaf, &both);
    }
    reloads(&processes, 2, 0).await;
    assert_eq!(presented(token_addr, &[&b], &b.leaf("client")).await.unwrap(), renewed[0].der);
    logs_in().await;

    // 3. A leaves the bundles.
    for (mount, leaf) in mounts.iter_mut().zip(&renewed) {
        mount.renew(leaf, &b.pem());
    }
    reloads(&processes, 3, 0).await;
    let of_a = fresh_client(&a.dir, token_addr, &a.leaf("client"), &both);
    assert_eq!(jwks_over(of_a).await.unwrap_err().code, ErrorCode::Unavailable, "a certificate of A is refused");
    let of_b = fresh_client(&b.dir, token_addr, &b.leaf("client"), &b.pem());
    assert!(jwks_over(of_b).await.expect("a client of B only is served") >= 1);
    assert_eq!(presented(token_addr, &[&b], &b.leaf("client")).await.unwrap(), renewed[0].der);

    // The auth service's and the gateway's connections to the token service are cut: they
    // connect again, now with their certificates of B (the token service trusts nothing else).
    proxy.set(Fault::Drop);
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.set(Fault::None);
    logs_in().await;
    for p in [gateway, auth, key, rbac, token] {
        p.shutdown().await;
    }
}

/// The certificate and key a mount holds now.
fn read_leaf(dir: &Path) -> Leaf {
    let cert = std::fs::read_to_string(dir.join("tls.crt")).unwrap();
    let key = std::fs::read_to_string(dir.join("tls.key")).unwrap();
    let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap().to_vec();
    Leaf { cert, key, der }
}
