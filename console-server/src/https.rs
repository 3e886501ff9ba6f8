//! HTTPS for the web listener: TCP connections are accepted and their TLS
//! handshakes run concurrently (each with a deadline, at most
//! [`MAX_HANDSHAKES`] at once, and at most [`MAX_HANDSHAKES_PER_PEER`] from
//! one address: more from that address are closed at once), and finished
//! streams are handed to axum. A slow or broken client, or one laptop
//! opening hundreds of silent connections, never holds up the others.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// TLS handshakes in progress at once.
pub const MAX_HANDSHAKES: usize = 2048;
/// TLS handshakes in progress at once from one address.
pub const MAX_HANDSHAKES_PER_PEER: usize = 32;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS listener for [`axum::serve`].
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsListener {
    /// Starts accepting on `tcp`.
    ///
    /// # Errors
    /// If the socket's address cannot be read.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let limit = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let per_peer: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accepting a web connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let ip = peer.ip();
                {
                    let mut open = per_peer.lock().unwrap_or_else(|p| p.into_inner());
                    let n = open.entry(ip).or_default();
                    if *n >= MAX_HANDSHAKES_PER_PEER {
                        tracing::debug!(
                            "{ip} already has {MAX_HANDSHAKES_PER_PEER} TLS handshakes open; a new connection is closed"
                        );
                        continue;
                    }
                    *n += 1;
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let per_peer = per_peer.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("web TLS handshake from {peer} failed: {e}"),
                        Err(_) => tracing::debug!("web TLS handshake from {peer} timed out"),
                    }
                    let mut open = per_peer.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(n) = open.get_mut(&ip) {
                        *n -= 1;
                        if *n == 0 {
                            open.remove(&ip);
                        }
                    }
                    drop(permit);
                });
            }
        });
        Ok(TlsListener { ready, local, task })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept task only ends if the runtime is shutting down.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The client's address, for handlers (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}
