//! A simulated laptop that delivers captures exactly once through
//! whatever happens to the console: it reconnects (to whatever address it
//! is given now) whenever the connection fails and resends everything not
//! yet acked, as the agent's spool does.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::device_link::{DeviceIdentity, DeviceLink};
use protocol::{AgentMessage, Capture, ConsoleMessage};
use tokio::time::{Instant, timeout};

/// Unacked captures the laptop keeps in flight.
const IN_FLIGHT: usize = 32;

/// Delivers every capture, reconnecting (to whatever address the console
/// is at now) whenever the connection fails, and resending everything not
/// yet acked. Returns when all are acked.
pub async fn deliver(
    identity: DeviceIdentity,
    captures: Vec<Capture>,
    address: Arc<Mutex<String>>,
    acked: Arc<Mutex<HashSet<uuid::Uuid>>>,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reconnects = 0;
    loop {
        anyhow::ensure!(Instant::now() < deadline, "not delivered within 120 s");
        let addr = address.lock().unwrap().clone();
        let mut link = match timeout(
            Duration::from_secs(5),
            DeviceLink::connect(&addr, &identity, "test", 0),
        )
        .await
        {
            Ok(Ok(link)) => link,
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let pending: Vec<&Capture> = {
            let acked = acked.lock().unwrap();
            captures.iter().filter(|c| !acked.contains(&c.id)).collect()
        };
        if pending.is_empty() {
            return Ok(reconnects);
        }
        reconnects += 1;
        let mut next = 0;
        let mut in_flight = 0;
        let failed = loop {
            while in_flight < IN_FLIGHT && next < pending.len() {
                if link
                    .send(&AgentMessage::Capture(pending[next].clone()))
                    .await
                    .is_err()
                {
                    break;
                }
                next += 1;
                in_flight += 1;
            }
            if in_flight == 0 {
                break false;
            }
            match timeout(Duration::from_secs(10), link.recv()).await {
                Ok(Ok(ConsoleMessage::Ack(ids))) => {
                    in_flight = in_flight.saturating_sub(ids.len());
                    acked.lock().unwrap().extend(ids);
                }
                Ok(Ok(ConsoleMessage::Policy(_) | ConsoleMessage::PolicyV7(_))) => {}
                Ok(Ok(other)) => anyhow::bail!("unexpected {other:?}"),
                _ => break true,
            }
        };
        if !failed && acked.lock().unwrap().len() == captures.len() {
            return Ok(reconnects);
        }
    }
}
