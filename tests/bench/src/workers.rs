//! The scenarios' requests: REST calls over [`Conn`] and gRPC calls over [`H2`] connections.
use crate::fixtures::Fixture;
use crate::h2::{self, H2};
use crate::http::{Conn, Req, expect_success};
use crate::load::Worker;
use serde::Deserialize;
use std::sync::Arc;
use tonic::codegen::http::Uri;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use warden_proto::auth::v1::auth_service_client::AuthServiceClient;
use warden_proto::auth::v1::{AuthorizeRequest, authorize_request};
use warden_proto::rbac::v1::CheckPermissionsRequest;
use warden_proto::rbac::v1::rbac_service_client::RbacServiceClient;

/// The permission every protected scenario asks for; the bench admin holds it.
pub const PERMISSION: &str = "users:read";

/// What a REST worker sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestKind {
    Login,
    Refresh,
    BearerMe,
    BearerVerify,
    KeyMe,
    KeyVerify,
    /// Static body from the bare axum ceiling server.
    CeilingStatic,
    /// EdDSA verification in the bare axum ceiling server.
    CeilingJwt,
    /// Two gRPC calls behind the bare relay (`relay.rs`).
    CeilingRelay,
    /// One Warden hash in the bare axum ceiling server (what floods the embedded flood's floor).
    CeilingHash,
    /// A login's least work in a floor's shape (`floor.rs`): in the bare axum ceiling server a
    /// SQLite read, one Warden hash and a SQLite write; behind the bare relay its first
    /// backend's stores around one hash.
    CeilingLogin,
    Mixed,
}

/// The mixed scenario, per mille of requests: mostly protected reads, some refreshes, rare logins.
pub const MIX: [(RestKind, u64); 5] = [
    (RestKind::Login, 1),
    (RestKind::Refresh, 49),
    (RestKind::KeyMe, 150),
    (RestKind::BearerMe, 200),
    (RestKind::BearerVerify, 600),
];

/// Request templates shared by all workers of a run.
pub struct Templates {
    login: Req,
    bearer_me: Req,
    bearer_verify: Req,
    key_me: Req,
    key_verify: Req,
    ceiling_static: Req,
    ceiling_jwt: Req,
    ceiling_relay: Req,
    ceiling_hash: Req,
    ceiling_login: Req,
}

impl Templates {
    pub fn new(fx: &Fixture) -> Templates {
        let verify = format!("/api/v1/auth/verify?permission={PERMISSION}");
        Templates {
            login: Req::post_json(
                "/api/v1/auth/login",
                &serde_json::json!({ "username": fx.username, "password": fx.password }),
            ),
            bearer_me: Req::get("/api/v1/auth/me").bearer(&fx.access_token),
            bearer_verify: Req::get(verify.clone()).bearer(&fx.access_token),
            key_me: Req::get("/api/v1/auth/me").header("x-api-key", &fx.api_key),
            key_verify: Req::get(verify).header("x-api-key", &fx.api_key),
            ceiling_static: Req::get("/static"),
            ceiling_jwt: Req::get("/verify").bearer(&fx.access_token),
            ceiling_relay: Req::get("/relay"),
            ceiling_hash: Req::get("/hash"),
            ceiling_login: Req::get("/login"),
        }
    }
}

#[derive(Deserialize)]
struct TokenPair {
    refresh_token: String,
}

pub struct Rest {
    conn: Conn,
    kind: RestKind,
    templates: Arc<Templates>,
    /// This worker's own refresh-token chain (refresh and mixed).
    refresh_token: Option<String>,
    sent: u64,
    slot_offset: u64,
}

impl Rest {
    pub async fn new(fx: &Fixture, kind: RestKind, templates: Arc<Templates>, index: usize) -> anyhow::Result<Rest> {
        let addr = match kind {
            RestKind::CeilingStatic
            | RestKind::CeilingJwt
            | RestKind::CeilingRelay
            | RestKind::CeilingHash
            | RestKind::CeilingLogin => fx.ceiling_http.expect("ceiling server running"),
            _ => fx.http,
        };
        let conn = Conn::open(addr).await?;
        let mut worker =
            Rest { conn, kind, templates, refresh_token: None, sent: 0, slot_offset: (index as u64 * 397) % 1000 };
        if matches!(kind, RestKind::Refresh | RestKind::Mixed) {
            worker.start_chain().await.map_err(anyhow::Error::msg)?;
        }
        Ok(worker)
    }

    async fn start_chain(&mut self) -> Result<(), String> {
        let (status, body) = self.conn.send(&self.templates.login).await.map_err(|e| e.to_string())?;
        expect_success(status, &body)?;
        let pair: TokenPair = serde_json::from_slice(&body).map_err(|e| format!("login answer: {e}"))?;
        self.refresh_token = Some(pair.refresh_token);
        Ok(())
    }

    async fn refresh(&mut self) -> Result<(), String> {
        let Some(token) = self.refresh_token.take() else {
            self.start_chain().await?;
            return Err("refresh chain was broken; logged in again".into());
        };
        let req = Req::post_json("/api/v1/auth/refresh", &serde_json::json!({ "refresh_token": token }));
        let (status, body) = self.conn.send(&req).await.map_err(|e| e.to_string())?;
        expect_success(status, &body)?;
        let pair: TokenPair = serde_json::from_slice(&body).map_err(|e| format!("refresh answer: {e}"))?;
        self.refresh_token = Some(pair.refresh_token);
        Ok(())
    }

    async fn fixed(&mut self, kind: RestKind) -> Result<(), String> {
        let t = &self.templates;
        let req = match kind {
            RestKind::Login => &t.login,
            RestKind::BearerMe => &t.bearer_me,
            RestKind::BearerVerify => &t.bearer_verify,
            RestKind::KeyMe => &t.key_me,
            RestKind::KeyVerify => &t.key_verify,
            RestKind::CeilingStatic => &t.ceiling_static,
            RestKind::CeilingJwt => &t.ceiling_jwt,
            RestKind::CeilingRelay => &t.ceiling_relay,
            RestKind::CeilingHash => &t.ceiling_hash,
            RestKind::CeilingLogin => &t.ceiling_login,
            RestKind::Refresh | RestKind::Mixed => unreachable!("not a fixed request"),
        };
        let (status, body) = self.conn.send(req).await.map_err(|e| e.to_string())?;
        expect_success(status, &body)
    }

    /// Which request of the mix comes next: a fixed, evenly spread walk over 1000 slots.
    fn next_mixed(&mut self) -> RestKind {
        let slot = (self.sent * 7919 + self.slot_offset) % 1000;
        let mut edge = 0;
        for (kind, share) in MIX {
            edge += share;
            if slot < edge {
                return kind;
            }
        }
        RestKind::BearerVerify
    }
}

impl Worker for Rest {
    async fn call(&mut self) -> Result<(), String> {
        let kind = if self.kind == RestKind::Mixed { self.next_mixed() } else { self.kind };
        self.sent += 1;
        match kind {
            RestKind::Refresh => self.refresh().await,
            other => self.fixed(other).await,
        }
    }

    /// Each phase walks the mix from its start, where the connections' slot offsets spread
    /// the rare requests evenly over time. Carried over from a saturation phase, the walks
    /// had lined up: a closed loop holds each connection on its slow login while the others
    /// reach theirs, and the fixed-rate phase after it then sent the logins of nearly every
    /// connection within the same second, once per walk (BENCHMARKS.md, session 27).
    fn start_phase(&mut self) {
        self.sent = 0;
    }
}

/// gRPC calls; every worker shares one of a few HTTP/2 connections.
pub enum Grpc {
    CheckPermissions(RbacServiceClient<H2>, CheckPermissionsRequest),
    Authorize(AuthServiceClient<H2>, AuthorizeRequest),
    /// The bare tonic ceiling's health check.
    Health(HealthClient<H2>),
}

/// A connection to a gRPC server and the origin its calls name.
pub type GrpcConn = (H2, Uri);

pub async fn connections(url: &str, count: usize) -> anyhow::Result<Vec<GrpcConn>> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        out.push(h2::connect(url).await?);
    }
    Ok(out)
}

impl Grpc {
    pub fn check_permissions((h2, origin): GrpcConn, fx: &Fixture) -> Grpc {
        let req = CheckPermissionsRequest {
            user_id: fx.user_id.clone(),
            permissions: vec![PERMISSION.to_owned()],
            scopes: Vec::new(),
            has_scopes: false,
        };
        Grpc::CheckPermissions(RbacServiceClient::with_origin(h2, origin), req)
    }

    pub fn authorize((h2, origin): GrpcConn, fx: &Fixture) -> Grpc {
        let req = AuthorizeRequest {
            credential: Some(authorize_request::Credential::AccessToken(fx.access_token.clone())),
            permission: PERMISSION.to_owned(),
        };
        Grpc::Authorize(AuthServiceClient::with_origin(h2, origin), req)
    }

    pub fn health((h2, origin): GrpcConn) -> Grpc {
        Grpc::Health(HealthClient::with_origin(h2, origin))
    }
}

impl Worker for Grpc {
    async fn call(&mut self) -> Result<(), String> {
        let allowed = match self {
            Grpc::CheckPermissions(client, req) => {
                client.check_permissions(req.clone()).await.map_err(|s| s.to_string())?.into_inner().allowed
            }
            Grpc::Authorize(client, req) => {
                client.authorize(req.clone()).await.map_err(|s| s.to_string())?.into_inner().allowed
            }
            Grpc::Health(client) => {
                let request = HealthCheckRequest { service: String::new() };
                let status = client.check(request).await.map_err(|s| s.to_string())?.into_inner().status;
                return if status == ServingStatus::Serving as i32 { Ok(()) } else { Err("not serving".into()) };
            }
        };
        if allowed { Ok(()) } else { Err("answered not allowed".into()) }
    }
}

/// Any worker, so a scenario's workers are one type.
pub enum AnyWorker {
    Rest(Rest),
    Grpc(Grpc),
}

impl Worker for AnyWorker {
    async fn call(&mut self) -> Result<(), String> {
        match self {
            AnyWorker::Rest(w) => w.call().await,
            AnyWorker::Grpc(w) => w.call().await,
        }
    }

    fn start_phase(&mut self) {
        match self {
            AnyWorker::Rest(w) => w.start_phase(),
            AnyWorker::Grpc(w) => w.start_phase(),
        }
    }
}
