//! A lean HTTP/1.1 client for the load loops: one hyper connection per worker, kept alive,
//! reconnected after an error. No pool, no redirects, no decompression: as little client CPU
//! per request as hyper allows, since the load generator shares the machine's two cores.
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// A request template; cloned per send (headers and body are cheap `Bytes` clones).
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Req {
        Req { method: Method::GET, path: path.into(), headers: Vec::new(), body: Bytes::new() }
    }

    pub fn post_json(path: impl Into<String>, body: &serde_json::Value) -> Req {
        Req {
            method: Method::POST,
            path: path.into(),
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from(body.to_string()),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Req {
        self.headers.push((HeaderName::from_static(name), HeaderValue::from_str(value).expect("header value")));
        self
    }

    pub fn bearer(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }
}

/// One keep-alive connection.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let host = HeaderValue::from_str(&addr.to_string()).expect("socket address is ascii");
        let mut conn = Conn { addr, host, sender: None };
        conn.connect().await?;
        Ok(conn)
    }

    async fn connect(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr).await.with_context(|| format!("connect {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(self.sender.insert(sender))
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, req: &Req) -> anyhow::Result<(StatusCode, Bytes)> {
        let result = self.try_send(req).await;
        if result.is_err() {
            // The connection may be half-used; the next request gets a new one.
            self.sender = None;
        }
        result
    }

    async fn try_send(&mut self, req: &Req) -> anyhow::Result<(StatusCode, Bytes)> {
        let host = self.host.clone();
        let sender = match self.sender.as_mut() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await?;
        let mut builder = Request::builder().method(req.method.clone()).uri(req.path.as_str()).header(HOST, host);
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Full::new(req.body.clone()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Turns a non-2xx answer into an error naming the status.
pub fn expect_success(status: StatusCode, body: &[u8]) -> Result<(), String> {
    if status.is_success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&body[..body.len().min(160)]).into_owned();
        Err(format!("HTTP {}: {text}", status.as_u16()))
    }
}
