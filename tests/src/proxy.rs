//! A fault-injection TCP proxy for tests: Warden talks to PostgreSQL or Redis through it, and
//! a test switches it to drop connections or to stall them, then back, without touching the
//! machine's shared servers.
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Bytes flow both ways.
    None,
    /// Every open connection is cut and the port is closed, so new connections are refused:
    /// the server is down (stopped, crashed, restarting).
    Refuse,
    /// Every open connection is cut and new ones are accepted and closed at once, before any
    /// byte: a server (or a pooler in front of it) that is up but drops everyone.
    Drop,
    /// Connections (open and new) stay up but nothing is forwarded until the fault ends, then
    /// everything held flows on: the server looks hung (a long GC pause, `CLIENT PAUSE`, a
    /// dead network path without resets).
    Stall,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: Arc<watch::Sender<Fault>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        let fault = Arc::new(watch::channel(Fault::None).0);
        let accept = tokio::spawn(accept_loop(listener, addr, upstream, fault.clone()));
        FaultProxy { addr, fault, accept }
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// `url` with its `host:port` replaced by this proxy's address.
    pub fn rewrite_url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
        let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
        let slash = if rest.contains('/') { "/" } else { "" };
        format!("{scheme}://{userinfo}{}{slash}{tail}", self.addr)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Cuts every forwarded connection.
        self.fault.send_replace(Fault::Refuse);
    }
}

/// The upstream address of a `scheme://[user@]host:port/…` URL.
pub fn upstream_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL with a scheme").1;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = host_port.replace("localhost", "127.0.0.1");
    std::net::ToSocketAddrs::to_socket_addrs(&host_port).expect("resolve upstream").next().expect("an address")
}

async fn accept_loop(first: TcpListener, addr: SocketAddr, upstream: SocketAddr, fault: Arc<watch::Sender<Fault>>) {
    let mut listener = Some(first);
    let mut changes = fault.subscribe();
    loop {
        let current = *changes.borrow_and_update();
        match (current, &listener) {
            // Down: no listener, so connecting is refused by the kernel.
            (Fault::Refuse, Some(_)) => listener = None,
            (Fault::Refuse, None) => {}
            (_, None) => match TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    // The port is briefly unavailable after a close; try again shortly.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            (_, Some(_)) => {}
        }
        let Some(l) = &listener else {
            if changes.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                let Ok((client, _)) = accepted else { continue };
                if matches!(*fault.borrow(), Fault::None | Fault::Stall) {
                    tokio::spawn(forward(client, upstream, fault.subscribe()));
                }
                // Fault::Drop: the client is dropped here, closed before any byte.
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, fault: watch::Receiver<Fault>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either direction ending (or a Refuse) ends both: dropping the halves closes the sockets.
    tokio::select! {
        _ = pipe(client_read, server_write, fault.clone()) => {}
        _ = pipe(server_read, client_write, fault) => {}
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = fault.wait_for(|f| matches!(f, Fault::Refuse | Fault::Drop)) => return,
        };
        // Hold the bytes while stalled; give up on them if the connection is cut meanwhile.
        match fault.wait_for(|f| *f != Fault::Stall).await {
            Ok(f) if *f == Fault::None => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
