//! A device's connection to the console: mutual TLS with the device
//! certificate, the console CA pinned, and the Hello/Welcome exchange. The
//! agent's uplink, the demo and the test tools all open connections this way.

use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use uuid::Uuid;

use crate::handshake::welcome_from;
use crate::{
    AgentMessage, Connection, ConsoleMessage, Hello, PROTOCOL_VERSION, Policy, ProtocolError,
    Welcome, tls,
};

/// What a device needs to connect.
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    pub device_id: Uuid,
    pub certificate_pem: String,
    pub key_pem: crate::pki::SecretPem,
    pub ca_pem: String,
}

/// An open device session, split so one task can send while another reads.
#[derive(Debug)]
pub struct DeviceLink {
    pub welcome: Welcome,
    /// The policy sent right after the Welcome, if the console's is newer
    /// than the one announced in the Hello.
    pub policy: Option<Policy>,
    /// The policy's layers, sent next by a console of protocol 5 or later
    /// (as protocol 6 has them, whichever shape was sent).
    pub layers: Option<crate::layers::GroupLayers>,
    pub reader: Connection<ReadHalf<TlsStream<TcpStream>>>,
    pub writer: Connection<WriteHalf<TlsStream<TcpStream>>>,
}

impl DeviceLink {
    /// Connects to `address`, shakes hands, and reads the policy if one
    /// follows. `policy_version` is the version the device already holds.
    ///
    /// # Errors
    /// A TLS failure (wrong CA, revoked or unknown certificate), a refusal,
    /// or a network error.
    pub async fn connect(
        address: &str,
        identity: &DeviceIdentity,
        agent_version: &str,
        policy_version: u64,
    ) -> Result<DeviceLink, ProtocolError> {
        Self::connect_speaking(
            PROTOCOL_VERSION,
            address,
            identity,
            agent_version,
            policy_version,
        )
        .await
    }

    /// [`DeviceLink::connect`] saying `protocol_version` in the Hello: how
    /// tests play an older agent.
    ///
    /// # Errors
    /// As [`DeviceLink::connect`].
    pub async fn connect_speaking(
        protocol_version: u16,
        address: &str,
        identity: &DeviceIdentity,
        agent_version: &str,
        policy_version: u64,
    ) -> Result<DeviceLink, ProtocolError> {
        let config = tls::client_config_mtls(
            &identity.ca_pem,
            &identity.certificate_pem,
            identity.key_pem.expose(),
        )?;
        let tcp = TcpStream::connect(address).await?;
        let _ = tcp.set_nodelay(true);
        let stream = TlsConnector::from(config)
            .connect(tls::console_server_name(), tcp)
            .await?;
        // Split before the first frame, so no byte the console sends after
        // the Welcome can be lost between two buffers.
        let (read, write) = tokio::io::split(stream);
        let mut reader = Connection::new(read);
        let mut writer = Connection::new(write);
        writer
            .send(&AgentMessage::Hello(Hello {
                protocol_version,
                agent_version: agent_version.to_owned(),
                device_id: identity.device_id,
                policy_version,
            }))
            .await?;
        let welcome = welcome_from(reader.recv("waiting for the console's Welcome").await?)?;
        let policy = if welcome.policy_version > policy_version {
            match reader
                .recv::<ConsoleMessage>("waiting for the policy")
                .await?
            {
                ConsoleMessage::Policy(p) | ConsoleMessage::PolicyV7(p) => Some(p),
                other => {
                    return Err(ProtocolError::Unexpected {
                        got: other.kind_name(),
                        during: "waiting for the policy after Welcome",
                    });
                }
            }
        } else {
            None
        };
        // Both sides must speak a version with layers for them to follow.
        let layers =
            if welcome.protocol_version.min(protocol_version) >= crate::handshake::LAYERS_SINCE {
                match reader
                    .recv::<ConsoleMessage>("waiting for the policy's layers")
                    .await?
                {
                    ConsoleMessage::Layers(l) => Some(l.into()),
                    ConsoleMessage::LayersV6(l) => Some(l),
                    other => {
                        return Err(ProtocolError::Unexpected {
                            got: other.kind_name(),
                            during: "waiting for the policy's layers after Welcome",
                        });
                    }
                }
            } else {
                None
            };
        Ok(DeviceLink {
            welcome,
            policy,
            layers,
            reader,
            writer,
        })
    }

    /// Sends one message.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub async fn send(&mut self, message: &AgentMessage) -> Result<(), ProtocolError> {
        self.writer.send(message).await
    }

    /// Reads the console's next message.
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub async fn recv(&mut self) -> Result<ConsoleMessage, ProtocolError> {
        self.reader.recv("waiting for the console").await
    }
}
