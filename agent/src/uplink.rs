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
use crate::state_dir::{Enrolment, StateDir};

/// What the uplink shares with the rest of the service.
#[derive(Debug, Clone)]
pub struct UplinkShared {
    pub spool: Arc<Spool>,
    /// Woken when a record is spooled.
    pub spooled: Arc<Notify>,
    /// The policy in force; the uplink sends new versions into it.
    pub policy: watch::Sender<Arc<Policy>>,
    /// The user of the most recent session helper, for heartbeats.
    pub user: watch::Receiver<Option<String>>,
    /// Whether a session with the console is open (for `agent status`).
    pub connected: watch::Sender<bool>,
}

/// How a session with the console ended.
enum Ended {
    /// The connection broke or the console went away: reconnect.
    Lost(String),
    /// The console revoked this device: stop for good.
    Revoked(String),
    Shutdown,
}

/// Runs until shutdown or revocation.
pub async fn run(
    enrolment: Enrolment,
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
            &enrolment.console_address,
            &enrolment.identity,
            crate::AGENT_VERSION,
            policy_version,
        );
        let ended = match tokio::time::timeout(Duration::from_secs(30), connect).await {
            Ok(Ok(mut link)) => {
                backoff.reset();
                tracing::info!(
                    "connected to the console at {} (console {}, policy {})",
                    enrolment.console_address,
                    link.welcome.console_version,
                    link.welcome.policy_version
                );
                if let Some(policy) = link.policy.take() {
                    adopt_policy(&state, &shared, policy);
                }
                let _ = shared.connected.send(true);
                let ended = session(link, &shared, &state, &mut probe, &mut shutdown).await;
                let _ = shared.connected.send(false);
                ended
            }
            Ok(Err(e)) => Ended::Lost(describe(&e, &enrolment.console_address)),
            Err(_) => Ended::Lost(format!(
                "the console at {} did not answer within 30 s",
                enrolment.console_address
            )),
        };
        match ended {
            Ended::Shutdown => return,
            Ended::Revoked(reason) => {
                tracing::error!(
                    "the console revoked this laptop ({reason}); nothing more is sent. Enrol it again to resume."
                );
                return;
            }
            Ended::Lost(why) => {
                let delay = backoff.next_delay();
                tracing::warn!("{why}; trying again in {:.1} s", delay.as_secs_f32());
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
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

/// One session: send, read acks and policies, beat.
async fn session(
    link: DeviceLink,
    shared: &UplinkShared,
    state: &StateDir,
    probe: &mut HealthProbe,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let DeviceLink {
        welcome,
        mut reader,
        mut writer,
        ..
    } = link;
    let window = welcome.window.clamp(1, 1024) as usize;
    let mut in_flight: HashSet<RecordId> = HashSet::new();
    let mut cursor: i64 = 0;
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
                }
                if let Err(e) = writer.send(&message).await {
                    return Ended::Lost(format!("sending to the console failed: {e}"));
                }
            }
        }
        let room = in_flight.len() < window;
        tokio::select! {
            got = reader.read::<ConsoleMessage>() => match got {
                Ok(Some(message)) => {
                    if let Some(ended) = handle(message, shared, state, &mut in_flight).await {
                        return ended;
                    }
                }
                Ok(None) => return Ended::Lost("the console closed the connection".into()),
                Err(e) => return Ended::Lost(format!("the connection to the console failed: {e}")),
            },
            () = shared.spooled.notified(), if room => {}
            _ = beat.tick() => {
                let spool = shared.spool.clone();
                let stats = tokio::task::spawn_blocking(move || spool.stats()).await;
                let stats = stats.ok().and_then(Result::ok).unwrap_or_default();
                let user = shared.user.borrow().clone();
                let hb = probe.heartbeat(user, stats, shared.policy.borrow().version);
                if let Err(e) = writer.send(&AgentMessage::Heartbeat(hb)).await {
                    return Ended::Lost(format!("sending a heartbeat failed: {e}"));
                }
            }
            _ = shutdown.changed() => {
                let _ = writer.shutdown().await;
                return Ended::Shutdown;
            }
        }
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
        ConsoleMessage::Policy(policy) => {
            adopt_policy(state, shared, policy);
            return None;
        }
        ConsoleMessage::Revoke { reason } => return Some(Ended::Revoked(reason)),
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
