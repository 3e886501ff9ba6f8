//! A laptop's health as protocols 4 to 6 send it: the shape consoles of
//! those versions decode (postcard is not self-describing).
//! [`crate::AgentMessage::Health`] is written and read in it; protocol 7
//! sends [`crate::AgentMessage::HealthV7`] with the semantic layer's state,
//! which this shape leaves out (read back, it is empty: not reported).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::message::{PageReaderHealth, SessionHealth, UnixMillis};

/// [`crate::DeviceHealth`] without `semantic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHealth {
    pub time: UnixMillis,
    pub supervising: bool,
    pub sessions: Vec<SessionHealth>,
    pub page_readers: Vec<PageReaderHealth>,
    pub refused: u64,
}

impl From<&crate::DeviceHealth> for DeviceHealth {
    fn from(h: &crate::DeviceHealth) -> DeviceHealth {
        DeviceHealth {
            time: h.time,
            supervising: h.supervising,
            sessions: h.sessions.clone(),
            page_readers: h.page_readers.clone(),
            refused: h.refused,
        }
    }
}

impl From<DeviceHealth> for crate::DeviceHealth {
    fn from(h: DeviceHealth) -> crate::DeviceHealth {
        crate::DeviceHealth {
            time: h.time,
            supervising: h.supervising,
            sessions: h.sessions,
            page_readers: h.page_readers,
            refused: h.refused,
            semantic: String::new(),
        }
    }
}

/// Writes a [`crate::DeviceHealth`] in this shape (`#[serde(with)]`).
///
/// # Errors
/// The serialiser's.
pub fn serialize<S: Serializer>(health: &crate::DeviceHealth, s: S) -> Result<S::Ok, S::Error> {
    DeviceHealth::from(health).serialize(s)
}

/// Reads a [`crate::DeviceHealth`] from this shape (`#[serde(with)]`).
///
/// # Errors
/// The deserialiser's.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<crate::DeviceHealth, D::Error> {
    DeviceHealth::deserialize(d).map(Into::into)
}
