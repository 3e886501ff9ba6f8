//! A TCP load balancer in front of several console instances, as a trust
//! runs one: each new connection goes to the next instance in turn that
//! accepts it, so when one instance dies its laptops' next connections
//! reach another. Bytes pass untouched (TLS is end to end). It runs on its
//! own thread and runtime, so blocking tests can use it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

/// A running balancer; stopped on drop.
pub struct Balancer {
    pub addr: SocketAddr,
    /// Connections each upstream took, in the order given.
    taken: Arc<Vec<AtomicUsize>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Balancer {
    /// Listens on `127.0.0.1:0` in front of `upstreams`.
    ///
    /// # Errors
    /// An address does not parse or the listener cannot be bound.
    pub fn start(upstreams: &[&str]) -> anyhow::Result<Balancer> {
        let upstreams: Vec<SocketAddr> = upstreams
            .iter()
            .map(|u| u.parse())
            .collect::<Result<_, _>>()?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let taken: Arc<Vec<AtomicUsize>> =
            Arc::new(upstreams.iter().map(|_| AtomicUsize::new(0)).collect());
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let counts = taken.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the balancer");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("a tokio listener");
                let next = Arc::new(AtomicUsize::new(0));
                let accept = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        let (upstreams, next, counts) =
                            (upstreams.clone(), next.clone(), counts.clone());
                        tokio::spawn(async move {
                            let first = next.fetch_add(1, Ordering::Relaxed);
                            for k in 0..upstreams.len() {
                                let i = (first + k) % upstreams.len();
                                if let Ok(mut server) = TcpStream::connect(upstreams[i]).await {
                                    counts[i].fetch_add(1, Ordering::Relaxed);
                                    let mut client = client;
                                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server)
                                        .await;
                                    return;
                                }
                            }
                            // No instance up: the laptop tries again later.
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stop_rx => {}
                }
            });
        });
        Ok(Balancer {
            addr,
            taken,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Connections each upstream has taken so far.
    pub fn taken(&self) -> Vec<usize> {
        self.taken
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
