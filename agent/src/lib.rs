//! The safeguarding agent on each school laptop.
//!
//! Two roles of one binary, joined by a Unix socket:
//! - the **service** ([`service`], root): the device identity, the durable
//!   [`spool`], the [`uplink`] to the console, the policy;
//! - the **session helper** ([`session`], one per logged-in desktop, as the
//!   user): the [`platform`] layer (X11 over `x11rb`), the text sources
//!   ([`browser_history`], [`search_query`]), matching and the capture
//!   [`pipeline`], [`screenshot`]s, and the agent's own [`window`]s (the
//!   Acceptable Use Policy, "Report a concern"), run by [`prompts`].
//!
//! `agent run` starts both in one process.

pub mod accessibility;
pub mod backoff;
pub mod browser_history;
pub mod browser_integration;
pub mod group_policy;
pub mod heartbeat;
pub mod ipc;
pub mod native_host;
pub mod page_readers;
pub mod pending;
pub mod pipeline;
pub mod platform;
pub mod prompts;
pub mod run;
pub mod screen_reader;
pub mod screenshot;
pub mod search_query;
pub mod semantic_layer;
pub mod service;
pub mod session;
pub mod sessions;
pub mod site_activity;
pub mod spool;
pub mod state_dir;
pub mod supervisor;
pub mod uplink;
pub mod window;

/// This agent's version, sent in Hello and heartbeats.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
