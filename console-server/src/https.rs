//! HTTPS for the web listener. TCP connections are accepted and their TLS
//! handshakes run concurrently (each with a deadline, at most
//! [`MAX_HANDSHAKES`] at once, and at most [`MAX_HANDSHAKES_PER_PEER`] from
//! one address: more from that address are closed at once). Finished streams
//! are served by hyper with timers: a request's headers must arrive within
//! [`HEADER_TIMEOUT`] (which also closes a keep-alive connection idle that
//! long), a request must be read and answered within [`REQUEST_TIMEOUT`],
//! and one address holds at most [`MAX_CONNECTIONS_PER_PEER`] connections. A
//! slow or broken client, or one laptop opening hundreds of connections,
//! never holds up the others.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// TLS handshakes in progress at once.
pub const MAX_HANDSHAKES: usize = 2048;
/// TLS handshakes in progress at once from one address.
pub const MAX_HANDSHAKES_PER_PEER: usize = 32;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS connections whose handshakes have finished, for [`serve`].
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsListener {
    /// Starts accepting on `tcp`.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
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
        TlsListener { ready, task }
    }
}

/// The client's address, for handlers (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// HTTP connections open at once from one address; more are closed at once.
pub const MAX_CONNECTIONS_PER_PEER: usize = 64;
/// HTTP connections open at once in all.
pub const MAX_CONNECTIONS: usize = 4096;
/// Time allowed for a request's headers, and for a keep-alive connection to
/// start its next request.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for reading a request's body and producing its answer (a
/// streamed answer, such as live alerts, may then go on).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests at once on one HTTP/2 connection (tabs, their live streams,
/// images).
const H2_STREAMS: u32 = 100;
/// An idle HTTP/2 connection is pinged this often and closed when a ping
/// goes unanswered for [`HEADER_TIMEOUT`].
const H2_PING_EVERY: Duration = Duration::from_secs(30);
/// How long open connections get to finish when the console stops.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` turns true, then lets open
/// connections finish their requests (at most [`CLOSE_GRACE`]).
pub async fn serve(
    mut listener: TlsListener,
    app: axum::Router,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let per_peer: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tls, peer) = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            ready = listener.ready.recv() => match ready {
                Some(ready) => ready,
                None => break,
            },
        };
        if conns.len() >= MAX_CONNECTIONS {
            tracing::warn!("{MAX_CONNECTIONS} web connections are open; one from {peer} is closed");
            continue;
        }
        let Some(slot) = PeerSlot::take(&per_peer, peer.ip()) else {
            tracing::debug!(
                "{} already has {MAX_CONNECTIONS_PER_PEER} web connections open; a new one is closed",
                peer.ip()
            );
            continue;
        };
        let app = app.clone();
        let mut stop = shutdown.clone();
        conns.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(Peer(peer)));
                    // HTTP/2 names the host in the `:authority` of the URI,
                    // not in a Host header; the same-site check reads Host.
                    if !req.headers().contains_key(axum::http::header::HOST)
                        && let Some(host) = req
                            .uri()
                            .authority()
                            .and_then(|a| axum::http::HeaderValue::from_str(a.as_str()).ok())
                    {
                        req.headers_mut().insert(axum::http::header::HOST, host);
                    }
                    let call = tower_service::Service::call(&mut app.clone(), req);
                    async move {
                        match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
                            Ok(answer) => answer,
                            Err(_) => Ok(request_timed_out()),
                        }
                    }
                },
            );
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let io = hyper_util::rt::TokioIo::new(tls);
            if h2 {
                // One connection carries every tab's pages and live streams.
                let conn =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .timer(hyper_util::rt::TokioTimer::new())
                        .max_concurrent_streams(H2_STREAMS)
                        .keep_alive_interval(Some(H2_PING_EVERY))
                        .keep_alive_timeout(HEADER_TIMEOUT)
                        .serve_connection(io, service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    done = conn.as_mut() => {
                        if let Err(e) = done {
                            tracing::debug!("web connection (HTTP/2) from {peer} ended: {e}");
                        }
                        return;
                    }
                    _ = stop.wait_for(|s| *s) => {}
                }
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
            } else {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(io, service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    done = conn.as_mut() => {
                        if let Err(e) = done {
                            tracing::debug!("web connection from {peer} ended: {e}");
                        }
                        return;
                    }
                    _ = stop.wait_for(|s| *s) => {}
                }
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(CLOSE_GRACE + Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

fn request_timed_out() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::REQUEST_TIMEOUT,
        [(axum::http::header::CONNECTION, "close")],
        "the request took too long to arrive; try again",
    )
        .into_response()
}

/// One address's share of the open connections, given back on drop.
struct PeerSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PeerSlot {
    fn take(open: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<PeerSlot> {
        let mut map = open.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= MAX_CONNECTIONS_PER_PEER {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            open: open.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}
