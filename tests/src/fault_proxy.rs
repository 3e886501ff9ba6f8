//! A TCP proxy that puts a bad network between an agent and the console:
//! each new connection gets a [`Fault`] chosen by a schedule (by the
//! connection's number), and every connection's opening time is logged so a
//! test can measure how often the agent knocks. It runs on its own thread
//! and runtime, so blocking tests can use it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What happens to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bytes pass untouched.
    Pass,
    /// Closed as soon as it is accepted.
    Refuse,
    /// Every chunk, both ways, is held this long first.
    Delay(Duration),
    /// Both sides are closed after this long.
    CutAfter(Duration),
    /// This many bytes from the agent reach the console, then both sides
    /// are closed: a frame cut in the middle.
    TruncateUp(usize),
    /// What the console sends reaches the agent for this long; everything
    /// after is thrown away while the connection stays open (acks lost in a
    /// black hole).
    SilenceDownAfter(Duration),
}

type Schedule = Box<dyn Fn(usize) -> Fault + Send + Sync>;

/// A running proxy; stopped on drop.
pub struct FaultProxy {
    pub addr: SocketAddr,
    schedule: Arc<Mutex<Schedule>>,
    opened: Arc<Mutex<Vec<(Instant, Fault)>>>,
    cut: watch::Sender<u64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream`.
    ///
    /// # Errors
    /// The listener cannot be bound.
    pub fn start(upstream: &str, schedule: Schedule) -> anyhow::Result<FaultProxy> {
        let upstream: SocketAddr = upstream.parse()?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let schedule = Arc::new(Mutex::new(schedule));
        let opened: Arc<Mutex<Vec<(Instant, Fault)>>> = Arc::default();
        let (cut, cut_rx) = watch::channel(0u64);
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let (sched, log) = (schedule.clone(), opened.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the proxy");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("a tokio listener");
                let accept = async {
                    let mut n = 0usize;
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        let fault = (sched.lock().unwrap())(n);
                        n += 1;
                        log.lock().unwrap().push((Instant::now(), fault));
                        tokio::spawn(relay(client, upstream, fault, cut_rx.clone()));
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stop_rx => {}
                }
            });
        });
        Ok(FaultProxy {
            addr,
            schedule,
            opened,
            cut,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Replaces the schedule for connections opened from now on.
    pub fn set_schedule(&self, schedule: Schedule) {
        *self.schedule.lock().unwrap() = schedule;
    }

    /// Closes every open connection.
    pub fn cut_all(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// When each connection was opened, and its fault.
    pub fn opened(&self) -> Vec<(Instant, Fault)> {
        self.opened.lock().unwrap().clone()
    }

    /// Connections opened at or after `since`.
    pub fn opened_since(&self, since: Instant) -> usize {
        self.opened().iter().filter(|(t, _)| *t >= since).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    fault: Fault,
    mut cut: watch::Receiver<u64>,
) {
    if fault == Fault::Refuse {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let delay = match fault {
        Fault::Delay(d) => d,
        _ => Duration::ZERO,
    };
    let up_limit = match fault {
        Fault::TruncateUp(n) => Some(n),
        _ => None,
    };
    let silence_at = match fault {
        Fault::SilenceDownAfter(d) => Some(tokio::time::Instant::now() + d),
        _ => None,
    };
    let life = match fault {
        Fault::CutAfter(d) => d,
        _ => Duration::from_secs(24 * 3600),
    };
    let generation = *cut.borrow_and_update();
    tokio::select! {
        () = pump(cr, sw, delay, up_limit, None) => {}
        () = pump(sr, cw, delay, None, silence_at) => {}
        () = tokio::time::sleep(life) => {}
        _ = cut.wait_for(|g| *g != generation) => {}
    }
}

/// Copies `from` to `to`: closing after `limit` bytes, or from
/// `silence_at` on swallowing everything while staying open.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    limit: Option<usize>,
    silence_at: Option<tokio::time::Instant>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut passed = 0usize;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if silence_at.is_some_and(|t| tokio::time::Instant::now() >= t) {
            continue;
        }
        let room = limit.map_or(n, |l| l.saturating_sub(passed).min(n));
        if room > 0 && to.write_all(&buf[..room]).await.is_err() {
            return;
        }
        passed += room;
        if room < n {
            return;
        }
    }
}
