//! The wire between the agent on a laptop and the school's console.
//!
//! - [`message`]: every message, both directions, and enrollment;
//! - [`frame`]: the byte layout of one message on the wire (pure functions);
//! - [`connection`]: framing over an async socket;
//! - [`handshake`]: the version check that opens a device connection;
//! - [`tls`]: the rustls configuration both sides share;
//! - [`device_link`]: a device's mutual-TLS session with the console;
//! - [`enroll`]: the one-time enrollment token and the laptop's side of enrollment;
//! - [`pki`]: the console's certificate authority, and test certificates;
//! - [`layers`]: the policy changed for groups, and what applies to whom;
//! - [`policy_v6`], [`health_v6`]: the policy and a laptop's health in the
//!   shapes peers of protocols before 7 read.
//!
//! No business logic lives here, beyond what a policy means ([`layers`]:
//! the console and the agent must read it alike). Serialisation is
//! postcard over serde: its wire format is specified and stable.

pub mod connection;
pub mod device_link;
pub mod enroll;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod health_v6;
pub mod layers;
pub mod message;
pub mod pki;
pub mod policy_v6;
pub mod tls;

#[cfg(test)]
mod arbitrary;

pub use connection::Connection;
pub use error::ProtocolError;
pub use handshake::{MIN_SUPPORTED_VERSION, PROTOCOL_VERSION};
pub use message::*;
#[cfg(test)]
mod roundtrip_tests;
