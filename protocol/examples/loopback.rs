//! The wire protocol end to end on this machine: a console CA is made, a
//! listener demands device certificates from it, and an "agent" connects
//! over mutual TLS, shakes hands and delivers one capture that is acked.
//!
//! `cargo run -p protocol --example loopback`

use std::error::Error;

use protocol::handshake::{agent_hello, console_accept};
use protocol::pki::Authority;
use protocol::{tls, *};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let ca = Authority::generate("Example School console CA")?;
    let server = ca.issue_server(&["localhost"])?;
    let device = ca.issue_client("laptop-01")?;
    println!(
        "made a console CA (fingerprint {})",
        tls::pem_fingerprint(ca.cert_pem())?
    );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(tls::server_config_mtls(
        ca.cert_pem(),
        &server.cert_pem,
        server.key_pem.expose(),
    )?);
    let console = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut conn = Connection::new(acceptor.accept(tcp).await?);
        let hello = console_accept(&mut conn).await?;
        println!(
            "console: agent {} speaks protocol {}",
            hello.device_id, hello.protocol_version
        );
        conn.send(&ConsoleMessage::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            console_version: env!("CARGO_PKG_VERSION").into(),
            policy_version: 1,
            window: 64,
        }))
        .await?;
        let msg: AgentMessage = conn.recv("waiting for a capture").await?;
        if let AgentMessage::Capture(c) = &msg {
            println!(
                "console: stored capture {} ({} / {}: {:?})",
                c.id, c.category, c.term, c.context
            );
            conn.send(&ConsoleMessage::Ack(vec![c.id])).await?;
        }
        Ok::<_, Box<dyn Error + Send + Sync>>(())
    });

    let connector = TlsConnector::from(tls::client_config_mtls(
        ca.cert_pem(),
        &device.cert_pem,
        device.key_pem.expose(),
    )?);
    let tcp = TcpStream::connect(addr).await?;
    let mut conn = Connection::new(connector.connect(tls::console_server_name(), tcp).await?);
    let welcome = agent_hello(
        &mut conn,
        &Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            device_id: uuid::Uuid::now_v7(),
            policy_version: 0,
        },
    )
    .await?;
    println!(
        "agent: welcomed by console {} (policy {})",
        welcome.console_version, welcome.policy_version
    );
    let capture = Capture {
        id: uuid::Uuid::now_v7(),
        time: UnixMillis::now(),
        user: "pupil1".into(),
        source: Source::Typed,
        app: "example".into(),
        window_title: "Notes".into(),
        url: None,
        term: "kill myself".into(),
        category: "self-harm".into(),
        severity: 5,
        context: "i want to kill myself tonight".into(),
        context_match: (7, 21),
        screenshot: Screenshot::Missing("example: no display".into()),
    };
    conn.send(&AgentMessage::Capture(capture.clone())).await?;
    match conn.recv::<ConsoleMessage>("waiting for the ack").await? {
        ConsoleMessage::Ack(ids) if ids == [capture.id] => {
            println!("agent: capture acked; it may leave the spool")
        }
        other => return Err(format!("unexpected reply {other:?}").into()),
    }
    console.await?.map_err(|e| e as Box<dyn Error>)?;
    Ok(())
}
