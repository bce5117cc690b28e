//! Mutual TLS between services, with a CA and certificates made at test time: a client with
//! a CA-signed certificate is served, one without a certificate, one with a certificate of
//! another CA and a plaintext one are refused; a whole split deployment logs in over mTLS;
//! in prod a split service refuses to start without TLS and serves no reflection.
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::PathBuf;
use std::sync::Arc;
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

    /// Issues a certificate for `name` (valid for 127.0.0.1 and localhost, as server and
    /// client) and puts its files, cert-manager style, in a directory of their own.
    fn issue(&self, name: &str) -> (String, String, String) {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
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
