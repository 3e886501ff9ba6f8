//! The connection to the console: mutual TLS with the device certificate,
//! the console CA pinned; spooled records sent in order within the
//! console's window; removed only when acked; heartbeats; policies saved
//! and handed on; reconnects with equal-jitter backoff.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use protocol::device_link::DeviceLink;
use protocol::{AgentMessage, ConsoleMessage, Policy, ProtocolError, RecordId};
use tokio::sync::{Notify, watch};

use crate::backoff::Backoff;
use crate::heartbeat::HealthProbe;
use crate::spool::Spool;
use crate::state_dir::{Enrollment, StateDir};

/// What the uplink shares with the rest of the service.
#[derive(Debug, Clone)]
pub struct UplinkShared {
    pub spool: Arc<Spool>,
    /// Woken when a record is spooled.
    pub spooled: Arc<Notify>,
    /// The policy in force; the uplink sends new versions into it.
    pub policy: watch::Sender<Arc<Policy>>,
    /// The policy's layers for groups, as the console last sent them.
    pub layers: watch::Sender<Arc<protocol::layers::GroupLayers>>,
    /// The user of the most recent session helper, for heartbeats.
    pub user: watch::Receiver<Option<String>>,
    /// Whether a session with the console is open (for `agent status`).
    pub connected: watch::Sender<bool>,
    /// What monitors the sessions now, sent after every heartbeat.
    pub health: HealthSource,
}

/// Where the uplink reads the sessions' health from (the service), and
/// what wakes it to send it at once (a session came or went).
#[derive(Clone)]
pub struct HealthSource(
    pub Arc<dyn Fn() -> protocol::DeviceHealth + Send + Sync>,
    pub Arc<Notify>,
);

impl std::fmt::Debug for HealthSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthSource")
    }
}

/// How a session with the console ended.
enum Ended {
    /// The connection broke or the console went away: reconnect.
    Lost(String),
    /// The console asked to be tried again after this many seconds.
    Busy(u32),
    /// The console revoked this device: stop for good.
    Revoked(String),
    Shutdown,
}

/// Runs until shutdown or revocation.
pub async fn run(
    enrollment: Enrollment,
    state: StateDir,
    shared: UplinkShared,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    let mut probe = HealthProbe::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let policy_version = shared.policy.borrow().version;
        let connect = DeviceLink::connect(
            &enrollment.console_address,
            &enrollment.identity,
            crate::AGENT_VERSION,
            policy_version,
        );
        let ended = match tokio::time::timeout(Duration::from_secs(30), connect).await {
            Ok(Ok(mut link)) => {
                let began = tokio::time::Instant::now();
                let mut progressed = false;
                tracing::info!(
                    "connected to the console at {} (console {}, policy {})",
                    enrollment.console_address,
                    link.welcome.console_version,
                    link.welcome.policy_version
                );
                if let Some(policy) = link.policy.take() {
                    adopt_policy(&state, &shared, policy);
                }
                if let Some(layers) = link.layers.take() {
                    adopt_layers(&state, &shared, layers);
                }
                let _ = shared.connected.send(true);
                let ended = session(
                    link,
                    &shared,
                    &state,
                    &mut probe,
                    &mut shutdown,
                    &mut progressed,
                )
                .await;
                let _ = shared.connected.send(false);
                // Only a session that did something, or lasted, earns a
                // quick reconnect: a link that is cut as soon as it opens
                // must not make the laptop knock every second.
                if progressed || began.elapsed() >= STABLE {
                    backoff.reset();
                }
                ended
            }
            Ok(Err(ProtocolError::Busy {
                retry_after_seconds,
            })) => Ended::Busy(retry_after_seconds),
            Ok(Err(e)) => Ended::Lost(describe(&e, &enrollment.console_address)),
            Err(_) => Ended::Lost(format!(
                "the console at {} did not answer within 30 s",
                enrollment.console_address
            )),
        };
        let (why, delay) = match ended {
            Ended::Shutdown => return,
            Ended::Revoked(reason) => {
                tracing::error!(
                    "the console revoked this laptop ({reason}); nothing more is sent. Enroll it again to resume."
                );
                return;
            }
            Ended::Busy(after) => (
                format!("the console at {} is busy", enrollment.console_address),
                busy_delay(&mut backoff, after),
            ),
            Ended::Lost(why) => (why, backoff.next_delay()),
        };
        tracing::warn!("{why}; trying again in {:.1} s", delay.as_secs_f32());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The wait after the console said it is busy: the time it asked for,
/// spread by ±25% so the laptops it turned away do not return together, and
/// never less than the backoff's own next delay.
pub fn busy_delay(backoff: &mut Backoff, retry_after_seconds: u32) -> Duration {
    let asked = Duration::from_secs(u64::from(retry_after_seconds.clamp(1, 3600)));
    let spread = asked.mul_f64(0.75 + crate::backoff::random_fraction() * 0.5);
    spread.max(backoff.next_delay())
}

fn describe(e: &ProtocolError, address: &str) -> String {
    format!("cannot reach the console at {address}: {e}")
}

fn adopt_policy(state: &StateDir, shared: &UplinkShared, policy: Policy) {
    if policy.version <= shared.policy.borrow().version {
        return;
    }
    tracing::info!("policy version {} received", policy.version);
    if let Err(e) = state.save_policy(&policy) {
        tracing::error!("{e:#}; the new policy is used but not saved");
    }
    let _ = shared.policy.send(Arc::new(policy));
}

fn adopt_layers(state: &StateDir, shared: &UplinkShared, layers: protocol::layers::GroupLayers) {
    if **shared.layers.borrow() == layers {
        return;
    }
    tracing::info!(
        "policy layers version {} received ({} layers)",
        layers.version,
        layers.layers.len()
    );
    if let Err(e) = state.save_layers(&layers) {
        tracing::error!("{e:#}; the new layers are used but not saved");
    }
    let _ = shared.layers.send(Arc::new(layers));
}

/// A session that lasted this long resets the reconnect backoff.
const STABLE: Duration = Duration::from_secs(30);
/// Records sent and not acknowledged for this long (with nothing else
/// acknowledged meanwhile) mean the connection is dead though still open
/// (a black hole on the path): it is dropped and the records are sent again
/// on a new one.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// A send that cannot finish in this long (the console or the path stopped
/// taking bytes) ends the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one message, within [`WRITE_TIMEOUT`].
async fn send<S>(
    writer: &mut protocol::Connection<S>,
    message: &AgentMessage,
    what: &str,
) -> Result<(), Ended>
where
    S: tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(WRITE_TIMEOUT, writer.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Ended::Lost(format!(
            "sending {what} to the console failed: {e}"
        ))),
        Err(_) => Err(Ended::Lost(format!(
            "sending {what} to the console did not finish within {} s",
            WRITE_TIMEOUT.as_secs()
        ))),
    }
}

/// One session: send, read acks and policies, beat. `progressed` is set
/// once the console acknowledges a record.
async fn session(
    link: DeviceLink,
    shared: &UplinkShared,
    state: &StateDir,
    probe: &mut HealthProbe,
    shutdown: &mut watch::Receiver<bool>,
    progressed: &mut bool,
) -> Ended {
    let DeviceLink {
        welcome,
        mut reader,
        mut writer,
        ..
    } = link;
    let window = welcome.window.clamp(1, 1024) as usize;
    // Health in the shape this console reads.
    let console = welcome.protocol_version;
    let mut in_flight: HashSet<RecordId> = HashSet::new();
    let mut cursor: i64 = 0;
    // Since when records have waited for an ack with none coming.
    let mut waiting_since: Option<tokio::time::Instant> = None;
    let mut beat = tokio::time::interval(Duration::from_secs(u64::from(
        shared.policy.borrow().heartbeat_seconds.max(1),
    )));
    loop {
        // Fill the window from the spool.
        if in_flight.len() < window {
            let spool = shared.spool.clone();
            let want = window - in_flight.len();
            let batch = match tokio::task::spawn_blocking(move || spool.after(cursor, want)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Ended::Lost(format!("cannot read the spool: {e:#}")),
                Err(e) => return Ended::Lost(format!("spool reader failed: {e}")),
            };
            for (seq, message) in batch {
                cursor = seq;
                if let Some(id) = message.record_id() {
                    in_flight.insert(id);
                    waiting_since.get_or_insert_with(tokio::time::Instant::now);
                }
                if let Err(ended) = send(&mut writer, &message, "a record").await {
                    return ended;
                }
            }
        }
        let room = in_flight.len() < window;
        let ack_deadline = waiting_since.map(|t| t + ACK_TIMEOUT);
        tokio::select! {
            got = reader.read::<ConsoleMessage>() => match got {
                Ok(Some(message)) => {
                    let answered = matches!(message, ConsoleMessage::Ack(_) | ConsoleMessage::Reject(_));
                    if let Some(ended) = handle(message, shared, state, &mut in_flight).await {
                        return ended;
                    }
                    if answered {
                        *progressed = true;
                        waiting_since = (!in_flight.is_empty()).then(tokio::time::Instant::now);
                    }
                }
                Ok(None) => return Ended::Lost("the console closed the connection".into()),
                Err(e) => return Ended::Lost(format!("the connection to the console failed: {e}")),
            },
            () = shared.spooled.notified(), if room => {}
            () = sleep_until_or_never(ack_deadline) => {
                return Ended::Lost(format!(
                    "the console has acknowledged nothing for {} s though {} records wait; the connection is dropped and they will be sent again",
                    ACK_TIMEOUT.as_secs(),
                    in_flight.len()
                ));
            }
            () = shared.health.1.notified() => {
                let health = (shared.health.0)();
                if let Err(ended) = send(&mut writer, &AgentMessage::health_for(console, health), "the sessions' health").await {
                    return ended;
                }
            }
            _ = beat.tick() => {
                let spool = shared.spool.clone();
                let stats = tokio::task::spawn_blocking(move || spool.stats()).await;
                let stats = stats.ok().and_then(Result::ok).unwrap_or_default();
                let user = shared.user.borrow().clone();
                let hb = probe.heartbeat(user, stats, shared.policy.borrow().version);
                if let Err(ended) = send(&mut writer, &AgentMessage::Heartbeat(hb), "a heartbeat").await {
                    return ended;
                }
                let health = (shared.health.0)();
                if let Err(ended) = send(&mut writer, &AgentMessage::health_for(console, health), "the sessions' health").await {
                    return ended;
                }
            }
            _ = shutdown.changed() => {
                // Stopping in good order (a shutdown, or the administrator):
                // the console is told this laptop watches no session now,
                // so its silence is not taken for a pupil cutting it off.
                let mut health = (shared.health.0)();
                health.sessions.clear();
                health.page_readers.clear();
                let _ = send(&mut writer, &AgentMessage::health_for(console, health), "the last health").await;
                let _ = writer.shutdown().await;
                return Ended::Shutdown;
            }
        }
    }
}

async fn sleep_until_or_never(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Acts on one console message; `Some` ends the session.
async fn handle(
    message: ConsoleMessage,
    shared: &UplinkShared,
    state: &StateDir,
    in_flight: &mut HashSet<RecordId>,
) -> Option<Ended> {
    let done = match message {
        ConsoleMessage::Ack(ids) => ids,
        ConsoleMessage::Reject(rejected) => {
            for r in &rejected {
                tracing::error!(
                    "the console will never accept record {}: {}; it is dropped",
                    r.id,
                    r.reason
                );
            }
            rejected.into_iter().map(|r| r.id).collect()
        }
        ConsoleMessage::Policy(policy) | ConsoleMessage::PolicyV7(policy) => {
            adopt_policy(state, shared, policy);
            return None;
        }
        ConsoleMessage::Layers(layers) => {
            adopt_layers(state, shared, layers.into());
            return None;
        }
        ConsoleMessage::LayersV6(layers) => {
            adopt_layers(state, shared, layers);
            return None;
        }
        ConsoleMessage::Revoke { reason } => return Some(Ended::Revoked(reason)),
        ConsoleMessage::Refuse(protocol::Refusal::Busy {
            retry_after_seconds,
        }) => return Some(Ended::Busy(retry_after_seconds)),
        other => {
            return Some(Ended::Lost(format!(
                "the console sent an unexpected {} mid-session",
                other.kind_name()
            )));
        }
    };
    for id in &done {
        in_flight.remove(id);
    }
    let spool = shared.spool.clone();
    match tokio::task::spawn_blocking(move || spool.remove(&done)).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(Ended::Lost(format!("cannot remove acked records: {e:#}"))),
        Err(e) => Some(Ended::Lost(format!("spool writer failed: {e}"))),
    }
}
