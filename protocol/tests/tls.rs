//! Mutual TLS over real loopback sockets: the console CA, device
//! certificates, CSR signing, and the CA pin used at enrollment.

use std::sync::Arc;

use protocol::pki::{Authority, device_key_and_csr};
use protocol::tls::{self, console_server_name};
use protocol::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Duration, timeout};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const WAIT: Duration = Duration::from_secs(10);

/// Starts a one-connection TLS server; returns its address and a handle
/// that yields the server side's outcome (the peer's certificate count).
async fn serve_once(
    config: Arc<rustls::ServerConfig>,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<usize, String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let tls = TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let peer_certs = tls.get_ref().1.peer_certificates().map_or(0, |c| c.len());
        let mut conn = Connection::new(tls);
        let msg: ConsoleMessage = conn.recv("test").await.map_err(|e| e.to_string())?;
        conn.send(&msg).await.map_err(|e| e.to_string())?;
        Ok(peer_certs)
    });
    (addr, handle)
}

/// Connects, sends one message and expects it echoed back.
async fn echo(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(config)
        .connect(console_server_name(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut conn = Connection::new(tls);
    let msg = ConsoleMessage::Revoke {
        reason: "echo".into(),
    };
    conn.send(&msg).await.map_err(|e| e.to_string())?;
    let back: ConsoleMessage = conn.recv("echo").await.map_err(|e| e.to_string())?;
    assert_eq!(back, msg);
    Ok(())
}

struct Pki {
    ca: Authority,
    server: pki::Issued,
}

fn pki() -> Pki {
    let ca = Authority::generate("Test School CA").unwrap();
    let server = ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
    Pki { ca, server }
}

fn mtls_server(p: &Pki) -> Arc<rustls::ServerConfig> {
    tls::server_config_mtls(
        p.ca.cert_pem(),
        &p.server.cert_pem,
        p.server.key_pem.expose(),
    )
    .unwrap()
}

#[tokio::test]
async fn device_with_a_certificate_from_the_console_ca_is_accepted() {
    let p = pki();
    let device = p.ca.issue_client("device-1").unwrap();
    let (addr, server) = serve_once(mtls_server(&p)).await;
    let client =
        tls::client_config_mtls(p.ca.cert_pem(), &device.cert_pem, device.key_pem.expose())
            .unwrap();
    timeout(WAIT, echo(addr, client)).await.unwrap().unwrap();
    assert_eq!(
        server.await.unwrap().unwrap(),
        1,
        "the console sees the device certificate"
    );
}

#[tokio::test]
async fn device_without_a_certificate_is_refused() {
    let p = pki();
    let (addr, server) = serve_once(mtls_server(&p)).await;
    let client = tls::client_config(p.ca.cert_pem()).unwrap();
    let _ = timeout(WAIT, echo(addr, client)).await.unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}

#[tokio::test]
async fn device_certificate_from_another_ca_is_refused() {
    let p = pki();
    let rogue = Authority::generate("Rogue CA").unwrap();
    let device = rogue.issue_client("device-1").unwrap();
    let (addr, server) = serve_once(mtls_server(&p)).await;
    // The rogue client trusts the real CA, so only the console can say no.
    let client =
        tls::client_config_mtls(p.ca.cert_pem(), &device.cert_pem, device.key_pem.expose())
            .unwrap();
    let _ = timeout(WAIT, echo(addr, client)).await.unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert!(
        err.to_lowercase().contains("unknown") || err.contains("issuer"),
        "{err}"
    );
}

#[tokio::test]
async fn agent_refuses_a_console_signed_by_another_ca() {
    let p = pki();
    let other = Authority::generate("Impostor CA").unwrap();
    let impostor = other.issue_server(&["localhost"]).unwrap();
    let device = p.ca.issue_client("device-1").unwrap();
    let config = tls::server_config_mtls(
        other.cert_pem(),
        &impostor.cert_pem,
        impostor.key_pem.expose(),
    )
    .unwrap();
    let (addr, _server) = serve_once(config).await;
    let client =
        tls::client_config_mtls(p.ca.cert_pem(), &device.cert_pem, device.key_pem.expose())
            .unwrap();
    let err = timeout(WAIT, echo(addr, client))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("invalid peer certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn csr_signed_by_the_ca_gives_a_working_device_certificate() {
    let p = pki();
    let (key, csr) = device_key_and_csr().unwrap();
    let cert = p.ca.sign_csr(&csr, "0199-device").unwrap();
    let (addr, server) = serve_once(mtls_server(&p)).await;
    let client = tls::client_config_mtls(p.ca.cert_pem(), &cert, key.expose()).unwrap();
    timeout(WAIT, echo(addr, client)).await.unwrap().unwrap();
    assert_eq!(server.await.unwrap().unwrap(), 1);
}

#[test]
fn garbage_csr_is_refused_with_a_reason() {
    let p = pki();
    let err =
        p.ca.sign_csr(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "d",
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("certificate signing request is invalid"),
        "{err}"
    );
}

#[tokio::test]
async fn reloaded_ca_issues_certificates_the_original_accepts() {
    let p = pki();
    let reloaded = Authority::from_pem(p.ca.cert_pem(), p.ca.key_pem().expose()).unwrap();
    let device = reloaded.issue_client("device-2").unwrap();
    let (addr, server) = serve_once(mtls_server(&p)).await;
    let client =
        tls::client_config_mtls(p.ca.cert_pem(), &device.cert_pem, device.key_pem.expose())
            .unwrap();
    timeout(WAIT, echo(addr, client)).await.unwrap().unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn enrollment_pin_accepts_the_right_ca_and_refuses_another() {
    let p = pki();
    let server_config = tls::server_config(&p.server.cert_pem, p.server.key_pem.expose()).unwrap();

    let pin = tls::pem_fingerprint(p.ca.cert_pem()).unwrap();
    let (addr, server) = serve_once(server_config.clone()).await;
    timeout(WAIT, echo(addr, tls::client_config_pinned(&pin).unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server.await.unwrap().unwrap(),
        0,
        "enrollment needs no client certificate"
    );

    let wrong = tls::pem_fingerprint(Authority::generate("Other").unwrap().cert_pem()).unwrap();
    let (addr, _server) = serve_once(server_config).await;
    let err = timeout(WAIT, echo(addr, tls::client_config_pinned(&wrong).unwrap()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.contains("did not present the CA pinned"), "{err}");
}

#[test]
fn malformed_pin_and_pem_are_refused_with_reasons() {
    let err = tls::client_config_pinned("abc").unwrap_err();
    assert!(
        err.to_string().contains("not 64 hexadecimal digits"),
        "{err}"
    );
    let err = tls::client_config("not a certificate").unwrap_err();
    assert!(err.to_string().contains("holds no certificate"), "{err}");
    let err = tls::server_config(pki().server.cert_pem.as_str(), "nope").unwrap_err();
    assert!(err.to_string().contains("no usable private key"), "{err}");
    let p = pki();
    let other = p.ca.issue_client("x").unwrap();
    let err = tls::server_config(&p.server.cert_pem, other.key_pem.expose()).unwrap_err();
    assert!(err.to_string().contains("do not fit together"), "{err}");
}

#[test]
fn secret_keys_never_print() {
    let p = pki();
    let printed = format!("{:?} {:?}", p.server, p.ca);
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
    assert!(printed.contains("redacted"));
}
