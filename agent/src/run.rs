//! Running the roles until shutdown: the service alone (`agent service`),
//! or the service with a session helper in the same process (`agent run`,
//! and the console's demo).

use std::time::Duration;

use tokio::sync::watch;

use crate::service::{Service, ServiceOptions};
use crate::session::{self, SessionOptions};
use crate::state_dir::StateDir;

/// Runs the service (and the session helper, if given) until `shutdown`
/// turns true, then stops the uplink cleanly and removes the socket.
///
/// # Errors
/// The service cannot start (not enrolled, spool unusable, socket taken).
pub async fn run(
    state: StateDir,
    options: ServiceOptions,
    session: Option<SessionOptions>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let running = Service::start(state.clone(), options, shutdown.clone()).await?;
    if let Some(options) = session {
        let session_shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = session::run(options, session_shutdown).await {
                tracing::error!("the session helper stopped: {e:#}");
            }
        });
    }
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), running.uplink).await;
    running.listener.abort();
    let _ = std::fs::remove_file(state.socket());
    Ok(())
}
