//! The agent listener: laptops connect here over TLS. A laptop with a
//! device certificate (checked in the handshake against the console CA and
//! the revocation list) opens a device session; one without may only enroll.
//!
//! Limits, all from [`crate::settings::Limits`]: a semaphore caps open
//! connections (one over the cap is told `Busy` and closed: load is shed,
//! politely); the handshake and Hello have a deadline; a frame's length is
//! checked before its body is read, and its bytes are taken from a budget
//! shared by all connections before they are buffered, so memory stays
//! bounded whatever agents send; each connection has a token-bucket rate
//! limit and an idle timeout; and each may have at most `window` records
//! unacked. A bad frame closes that connection only.
//!
//! Shutdown: the listener stops accepting, each session stops reading new
//! records, the records already read are stored and acked, then the
//! connections close.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use protocol::handshake::{LAYERS_SINCE, TERMS_SINCE, check_version};
use protocol::pki::{Authority, device_id_of};
use protocol::{
    AgentMessage, Connection, ConsoleMessage, EnrollRequest, EnrollResponse, PROTOCOL_VERSION,
    Refusal, Rejected, UnixMillis, Welcome,
};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep, timeout};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use uuid::Uuid;

use crate::ingest::{self, IngestHandle, Job, Reply};
use crate::policy::PolicyWatch;
use crate::rate::Bucket;
use crate::settings::Limits;
use crate::store::AuditAction;
use crate::store::tokens::NewDevice;
use crate::store::{Incoming, Store};

/// Unacked records one connection may have in flight.
pub const WINDOW: u32 = 64;
/// At shutdown: how long a quiet line is waited on for more records, and
/// the most time spent draining one connection.
const DRAIN_QUIET: Duration = Duration::from_millis(500);
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// Longest a write to an agent may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections over the limit being told "busy" at once.
const SHED_AT_ONCE: usize = 64;
/// What a laptop turned away is asked to wait (it adds ±25%).
pub const BUSY_RETRY_SECONDS: u32 = 30;
/// Time allowed to tell a laptop it is turned away.
const SHED_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest enrollment request (a CSR and a few names).
const MAX_ENROLL_FRAME: u32 = 64 * 1024;

/// Devices refused at the handshake, by id. Shared with the TLS verifier.
#[derive(Debug, Clone, Default)]
pub struct Revoked(Arc<RwLock<HashSet<String>>>);

impl Revoked {
    pub fn contains(&self, device: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(device)
    }

    pub fn replace(&self, set: HashSet<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = set;
    }

    /// The gate the TLS verifier consults.
    pub fn gate(&self) -> protocol::tls::DeviceGate {
        let me = self.clone();
        Arc::new(move |device: &str| {
            me.contains(device).then(|| {
                tracing::info!(
                    "refused device {device} at the handshake: it has been revoked \
                     (enroll the laptop again with a new token to readmit it)"
                );
                "revoked".into()
            })
        })
    }
}

/// Everything a connection needs, shared.
pub struct Context {
    pub acceptor: TlsAcceptor,
    pub store: Arc<dyn Store>,
    pub authority: Arc<Authority>,
    pub ingest: IngestHandle,
    pub policy: PolicyWatch,
    /// The layers' version (see [`crate::store::groups`]): each laptop of
    /// protocol 5 or later is sent its layers again when it changes.
    pub layers: watch::Receiver<u64>,
    /// What every laptop is sent of the layers, read once per version.
    pub layers_cache: Arc<crate::layers_cache::LayersCache>,
    pub revoked: Revoked,
    pub limits: Limits,
    pub connections: Arc<Semaphore>,
    pub budget: Arc<Semaphore>,
    pub shutdown: watch::Receiver<bool>,
}

/// Accepts connections until shutdown, then waits (up to `drain`) for the
/// open ones to finish.
pub async fn run(listener: TcpListener, ctx: Arc<Context>, drain: Duration) {
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = Duration::from_millis(10);
    let shed_slots = Arc::new(Semaphore::new(SHED_AT_ONCE));
    let mut shed_count: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = Duration::from_millis(10);
                if let Ok(permit) = ctx.connections.clone().try_acquire_owned() {
                    if shed_count > 0 {
                        tracing::info!(
                            "agent connections below the limit again; {shed_count} were asked to come back later"
                        );
                        shed_count = 0;
                    }
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        handle(tcp, peer, &ctx).await;
                        drop(permit);
                    });
                    continue;
                }
                if shed_count == 0 {
                    tracing::warn!(
                        "{} agent connections are open, the most allowed ([limits] max_connections); laptops that connect now are asked to come back later",
                        ctx.limits.max_connections
                    );
                }
                shed_count += 1;
                // At most a few refusals are explained at once; beyond
                // that a connection is simply closed (the agent backs off
                // either way).
                if let Ok(slot) = shed_slots.clone().try_acquire_owned() {
                    let acceptor = ctx.acceptor.clone();
                    tokio::spawn(async move {
                        shed(tcp, peer, acceptor).await;
                        drop(slot);
                    });
                }
            }
            Err(e) => {
                // Out of file descriptors, usually: wait, then try again.
                tracing::warn!("accepting an agent connection failed: {e}; retrying");
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    drop(listener);
    let all = ctx.limits.max_connections;
    if timeout(drain, ctx.connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some agent connections were still open after {drain:?}; closing anyway");
    }
}

/// Over the connection limit: finish the TLS handshake, read the Hello,
/// answer `Busy` and close, all within [`SHED_TIMEOUT`].
async fn shed(tcp: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor) {
    let told = timeout(SHED_TIMEOUT, async {
        let tls = acceptor.accept(tcp).await.ok()?;
        let mut conn = Connection::with_max_frame(tls, MAX_ENROLL_FRAME);
        match conn
            .recv::<AgentMessage>("waiting for the agent's Hello")
            .await
        {
            Ok(AgentMessage::Hello(_)) => {}
            _ => return None,
        }
        conn.send(&ConsoleMessage::Refuse(Refusal::Busy {
            retry_after_seconds: BUSY_RETRY_SECONDS,
        }))
        .await
        .ok()?;
        let _ = conn.shutdown().await;
        Some(())
    })
    .await;
    if !matches!(told, Ok(Some(()))) {
        tracing::debug!("{peer}: over the connection limit and closed without a word");
    }
}

async fn handle(tcp: TcpStream, peer: SocketAddr, ctx: &Context) {
    let _ = tcp.set_nodelay(true);
    let deadline = Duration::from_secs(ctx.limits.handshake_timeout_seconds.into());
    let tls = match timeout(deadline, ctx.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!("refused a TLS handshake from {peer}: {e}");
            return;
        }
        Err(_) => {
            tracing::info!("TLS handshake from {peer} timed out after {deadline:?}");
            return;
        }
    };
    let device = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| device_id_of(cert));
    match device {
        None => enroll(tls, peer, ctx).await,
        Some(Ok(device)) => match Uuid::parse_str(&device) {
            Ok(device) => session(tls, peer, device, ctx).await,
            Err(_) => tracing::warn!("{peer}: certificate names {device:?}, not a device id"),
        },
        Some(Err(e)) => tracing::warn!("{peer}: {e}"),
    }
}

async fn enroll(tls: TlsStream<TcpStream>, peer: SocketAddr, ctx: &Context) {
    let deadline = Duration::from_secs(ctx.limits.handshake_timeout_seconds.into());
    let mut conn = Connection::with_max_frame(tls, MAX_ENROLL_FRAME);
    let request: EnrollRequest =
        match timeout(deadline, conn.recv("waiting for an enrollment request")).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::info!(
                    "{peer} connected without a device certificate and did not enroll: {e}"
                );
                return;
            }
            Err(_) => {
                tracing::info!("{peer} connected without a device certificate and sent nothing");
                return;
            }
        };
    let response = if let Err(e) = check_version(request.protocol_version) {
        EnrollResponse::Refused {
            reason: e.to_string(),
        }
    } else {
        let store = ctx.store.clone();
        let authority = ctx.authority.clone();
        tokio::task::spawn_blocking(move || enroll_device(&*store, &authority, &request, peer))
            .await
            .unwrap_or_else(|e| EnrollResponse::Refused {
                reason: format!("the console failed while enrolling: {e}"),
            })
    };
    let _ = conn.send(&response).await;
    let _ = conn.shutdown().await;
}

fn enroll_device(
    store: &dyn Store,
    authority: &Authority,
    request: &EnrollRequest,
    peer: SocketAddr,
) -> EnrollResponse {
    let refused = |reason: String| {
        tracing::info!("refused enrollment from {peer}: {reason}");
        EnrollResponse::Refused { reason }
    };
    for (what, value) in [
        ("hostname", &request.hostname),
        ("os", &request.os),
        ("agent version", &request.agent_version),
    ] {
        if value.len() > ingest::limits::NAME {
            return refused(format!("the {what} is too long"));
        }
    }
    let device = Uuid::now_v7();
    // The CSR is checked before the token is used up, so a broken agent
    // does not waste a token.
    let certificate_pem = match authority.sign_csr(&request.csr_pem, &device.to_string()) {
        Ok(pem) => pem,
        Err(e) => return refused(e.to_string()),
    };
    let hash = crate::secret::token_hash(&request.token_secret);
    let now = UnixMillis::now();
    let detail = format!("{} ({}) from {peer}", request.hostname, request.os);
    // The token is used up, the device recorded and the audit line written
    // together: if any fails, the token still works.
    let enrolled = store.enroll_device(
        &hash,
        &NewDevice {
            id: device,
            hostname: &request.hostname,
            os: &request.os,
            agent_version: &request.agent_version,
        },
        &crate::store::AuditEntry {
            time: now,
            actor: "enrollment",
            action: AuditAction::EnrollDevice,
            target: &device.to_string(),
            detail: &detail,
            origin: &peer.to_string(),
        },
        now,
    );
    match enrolled {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => return refused(refusal.to_string()),
        Err(e) => {
            tracing::error!("enrolling a device from {peer} failed: {e}");
            return refused(format!(
                "the console could not record the enrollment ({e}); the token is still good, try again"
            ));
        }
    }
    tracing::info!("enrolled device {device}: {detail}");
    EnrollResponse::Enrolled {
        device_id: device,
        certificate_pem,
        ca_pem: authority.cert_pem().to_owned(),
    }
}

type Replies = mpsc::UnboundedReceiver<(Reply, Option<tokio::sync::OwnedSemaphorePermit>)>;

/// What the reader tells the writer besides replies.
enum Control {
    Send(ConsoleMessage),
}

async fn session(tls: TlsStream<TcpStream>, peer: SocketAddr, device: Uuid, ctx: &Context) {
    let (read, write) = tokio::io::split(tls);
    let mut reader = Connection::with_max_frame(read, ctx.limits.max_frame_bytes);
    let mut writer = Connection::with_max_frame(write, ctx.limits.max_frame_bytes);
    let deadline = Duration::from_secs(ctx.limits.handshake_timeout_seconds.into());

    let hello = match timeout(
        deadline,
        reader.recv::<AgentMessage>("waiting for the agent's Hello"),
    )
    .await
    {
        Ok(Ok(AgentMessage::Hello(hello))) => hello,
        Ok(Ok(other)) => {
            tracing::info!("{peer} ({device}): sent {} before Hello", other.kind_name());
            return;
        }
        Ok(Err(e)) => {
            tracing::info!("{peer} ({device}): {e}");
            return;
        }
        Err(_) => {
            tracing::info!("{peer} ({device}): no Hello within {deadline:?}");
            return;
        }
    };
    let refuse = |refusal| ConsoleMessage::Refuse(refusal);
    if check_version(hello.protocol_version).is_err() {
        let _ = writer
            .send(&refuse(Refusal::IncompatibleVersion {
                console: PROTOCOL_VERSION,
                agent: hello.protocol_version,
            }))
            .await;
        return;
    }
    if hello.device_id != device {
        let _ = writer
            .send(&refuse(Refusal::Other(format!(
                "the Hello names device {} but the certificate is for {device}",
                hello.device_id
            ))))
            .await;
        return;
    }
    let store = ctx.store.clone();
    let version = hello.agent_version.clone();
    let connected = tokio::task::spawn_blocking(move || {
        store.device_connected(device, &version, UnixMillis::now())
    })
    .await;
    if !matches!(connected, Ok(Ok(()))) {
        tracing::error!("{peer} ({device}): cannot record the connection: {connected:?}");
        let _ = writer
            .send(&refuse(Refusal::Busy {
                retry_after_seconds: 30,
            }))
            .await;
        return;
    }
    let mut policy = ctx.policy.clone();
    let current = policy.borrow_and_update().clone();
    let welcome = ConsoleMessage::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        console_version: env!("CARGO_PKG_VERSION").into(),
        policy_version: current.version,
        window: WINDOW,
    });
    if writer.send(&welcome).await.is_err() {
        return;
    }
    if current.version > hello.policy_version
        && writer
            .send(&ConsoleMessage::policy_for(
                hello.protocol_version,
                (*current).clone(),
            ))
            .await
            .is_err()
    {
        return;
    }
    // Layers only to agents that can read them.
    let layers = (hello.protocol_version >= LAYERS_SINCE).then(|| DeviceLayers {
        version: ctx.layers.clone(),
        store: ctx.store.clone(),
        cache: ctx.layers_cache.clone(),
        device,
        protocol: hello.protocol_version,
    });
    if let Some(l) = &layers {
        match l.build().await {
            Some(m) => {
                if writer.send(&m).await.is_err() {
                    return;
                }
            }
            None => return,
        }
    }
    tracing::debug!("{peer}: device {device} connected");

    let (reply_tx, replies) = mpsc::unbounded_channel();
    let (control_tx, control) = mpsc::unbounded_channel();
    let write_task = tokio::spawn(write_loop(
        writer,
        replies,
        control,
        policy,
        layers,
        hello.protocol_version,
    ));
    read_loop(&mut reader, peer, device, ctx, reply_tx, &control_tx).await;
    drop(control_tx);
    let _ = write_task.await;
}

async fn read_loop(
    reader: &mut Connection<ReadHalf<TlsStream<TcpStream>>>,
    peer: SocketAddr,
    device: Uuid,
    ctx: &Context,
    reply_tx: mpsc::UnboundedSender<(Reply, Option<tokio::sync::OwnedSemaphorePermit>)>,
    control: &mpsc::UnboundedSender<Control>,
) {
    let limits = &ctx.limits;
    let idle = Duration::from_secs(limits.idle_timeout_seconds.into());
    let mut messages = Bucket::new(
        limits.messages_per_second.into(),
        u64::from(limits.messages_per_second) * 4,
    );
    let mut bytes = Bucket::new(
        limits.bytes_per_second,
        limits.bytes_per_second.max(limits.max_frame_bytes.into()),
    );
    let window = Arc::new(Semaphore::new(WINDOW as usize));
    let mut shutdown = ctx.shutdown.clone();
    // At shutdown, records the agent has already sent are still read (until
    // the line is quiet for DRAIN_QUIET, or DRAIN_LIMIT passes), stored and
    // acked, so a restart costs the agent no resends.
    let mut drain_until: Option<Instant> = None;
    loop {
        let wait = match drain_until {
            None => idle,
            Some(limit) => DRAIN_QUIET.min(limit.saturating_duration_since(Instant::now())),
        };
        let len = tokio::select! {
            _ = shutdown.wait_for(|s| *s), if drain_until.is_none() => {
                drain_until = Some(Instant::now() + DRAIN_LIMIT);
                continue;
            }
            r = timeout(wait, reader.next_frame_len()) => match r {
                Err(_) if drain_until.is_some() => return,
                Err(_) => {
                    tracing::info!("{peer} ({device}): idle for {idle:?}; closing");
                    return;
                }
                Ok(Ok(None)) => return,
                Ok(Ok(Some(len))) => len,
                Ok(Err(e)) => {
                    tracing::warn!("{peer} ({device}): {e}; closing this connection");
                    return;
                }
            },
        };
        let now = Instant::now();
        let wait = messages.take(1, now).max(bytes.take(len as u64, now));
        if !wait.is_zero() {
            sleep(wait).await;
        }
        // Frames are at most `max_frame_bytes`, which the settings check
        // holds within the budget, so this cannot wait forever.
        let Ok(budget) = ctx
            .budget
            .clone()
            .acquire_many_owned(u32::try_from(len).unwrap_or(u32::MAX))
            .await
        else {
            return;
        };
        let message = match timeout(idle, reader.read::<AgentMessage>()).await {
            Err(_) => {
                tracing::info!("{peer} ({device}): stalled inside a frame; closing");
                return;
            }
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!("{peer} ({device}): {e}; closing this connection");
                return;
            }
        };
        if ctx.revoked.contains(&device.to_string()) {
            let _ = control.send(Control::Send(ConsoleMessage::Revoke {
                reason: "this laptop's certificate has been revoked by the school".into(),
            }));
            return;
        }
        if let Err(reason) = ingest::check(&message) {
            tracing::warn!(
                "{peer} ({device}): rejected a {}: {reason}",
                message.kind_name()
            );
            match message.record_id() {
                Some(id) => {
                    let _ = control.send(Control::Send(ConsoleMessage::Reject(vec![Rejected {
                        id,
                        reason,
                    }])));
                }
                // A second Hello, or a malformed heartbeat: not a record to
                // reject, a peer that does not follow the protocol.
                None => return,
            }
            continue;
        }
        let Ok(slot) = window.clone().acquire_owned().await else {
            return;
        };
        let job = Job {
            item: Incoming {
                device,
                received: UnixMillis::now(),
                message,
            },
            reply: reply_tx.clone(),
            budget: Some(budget),
            window: Some(slot),
        };
        if ctx.ingest.submit(job).await.is_err() {
            return;
        }
    }
}

/// What a connection needs to send its laptop the layers.
struct DeviceLayers {
    version: watch::Receiver<u64>,
    store: Arc<dyn Store>,
    cache: Arc<crate::layers_cache::LayersCache>,
    device: Uuid,
    /// The agent's protocol version: the shape it reads the layers in.
    protocol: u16,
}

impl DeviceLayers {
    /// The laptop's layers as a message; `None` if they cannot be read
    /// (logged: the laptop keeps what it has).
    async fn build(&self) -> Option<ConsoleMessage> {
        let (store, cache, device) = (self.store.clone(), self.cache.clone(), self.device);
        match tokio::task::spawn_blocking(move || {
            cache.for_device(store.as_ref(), &device.to_string())
        })
        .await
        {
            Ok(Ok(l)) if self.protocol >= TERMS_SINCE => Some(ConsoleMessage::LayersV6(l)),
            Ok(Ok(l)) => Some(ConsoleMessage::Layers((&l).into())),
            Ok(Err(e)) => {
                tracing::error!("device {device}: cannot read its policy layers: {e}");
                None
            }
            Err(e) => {
                tracing::error!("device {device}: reading its policy layers failed: {e}");
                None
            }
        }
    }
}

async fn write_loop(
    mut writer: Connection<WriteHalf<TlsStream<TcpStream>>>,
    mut replies: Replies,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut policy: PolicyWatch,
    mut layers: Option<DeviceLayers>,
    protocol: u16,
) {
    let mut control_open = true;
    let mut policy_open = true;
    let mut layers_open = layers.is_some();
    loop {
        let message = tokio::select! {
            // Control first: a Revoke must go out before the connection ends.
            biased;
            c = control.recv(), if control_open => match c {
                Some(Control::Send(m)) => m,
                None => {
                    control_open = false;
                    continue;
                }
            },
            r = replies.recv() => match r {
                // Every sender is gone: the reader has stopped and every
                // record it read has been answered.
                None => break,
                Some((reply, slot)) => {
                    let mut acks = Vec::new();
                    let mut slots = vec![slot];
                    let mut failed = false;
                    let mut next = Some(reply);
                    while let Some(reply) = next.take() {
                        match reply {
                            Reply::Stored(id) => acks.push(id),
                            Reply::Applied => {}
                            Reply::Failed(_) => failed = true,
                        }
                        if let Ok((r, s)) = replies.try_recv() {
                            next = Some(r);
                            slots.push(s);
                        }
                    }
                    if failed {
                        // Storage is failing: ack what did get stored, then
                        // close, so the agent resends the rest later rather
                        // than waiting on acks that will not come.
                        if !acks.is_empty() {
                            let _ = timeout(WRITE_TIMEOUT, writer.send(&ConsoleMessage::Ack(acks))).await;
                        }
                        let _ = timeout(
                            WRITE_TIMEOUT,
                            writer.send(&ConsoleMessage::Refuse(Refusal::Busy {
                                retry_after_seconds: BUSY_RETRY_SECONDS,
                            })),
                        )
                        .await;
                        break;
                    }
                    if acks.is_empty() {
                        continue;
                    }
                    ConsoleMessage::Ack(acks)
                }
            },
            changed = policy.changed(), if policy_open => {
                if changed.is_err() {
                    policy_open = false;
                    continue;
                }
                let current = policy.borrow_and_update().clone();
                ConsoleMessage::policy_for(protocol, (*current).clone())
            },
            changed = async {
                match layers.as_mut() {
                    Some(l) => l.version.changed().await,
                    None => std::future::pending().await,
                }
            }, if layers_open => {
                let Some(l) = layers.as_mut() else { continue };
                if changed.is_err() {
                    layers_open = false;
                    continue;
                }
                l.version.borrow_and_update();
                match l.build().await {
                    Some(m) => m,
                    None => continue,
                }
            },
        };
        let revoke = matches!(message, ConsoleMessage::Revoke { .. });
        // An agent that stops reading must not hold the session open.
        match timeout(WRITE_TIMEOUT, writer.send(&message)).await {
            Ok(Ok(())) if !revoke => {}
            _ => break,
        }
    }
    let _ = writer.shutdown().await;
}
