//! Who is really on the other end of a web request. Behind a reverse proxy
//! every request comes from the proxy, so one pupil's failed sign-ins would
//! lock out the whole school and the audit log would name only the proxy.
//! When the peer is a proxy the school listed in `trusted_proxies`, the
//! client is the right-most address in `X-Forwarded-For` that is not itself
//! a trusted proxy; from anyone else the header is ignored (a client could
//! write anything there).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::https::Peer;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<Vec<IpAddr>>);

/// The client's address: `peer`, or, if `peer` is a trusted proxy, the
/// address it says it forwarded for.
pub fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(peer)
}

/// Middleware: replaces the request's `ConnectInfo<Peer>` with the real
/// client's address, so every handler, the sign-in throttle and the audit
/// log see it.
pub async fn real_client(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    if !trusted.0.is_empty()
        && let Some(ConnectInfo(Peer(peer))) =
            request.extensions().get::<ConnectInfo<Peer>>().copied()
    {
        let ip = client(peer.ip(), request.headers(), &trusted.0);
        if ip != peer.ip() {
            request
                .extensions_mut()
                .insert(ConnectInfo(Peer(SocketAddr::new(ip, 0))));
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_a_trusted_proxy_is_believed() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let inner: IpAddr = "10.0.0.3".parse().unwrap();
        let pupil: IpAddr = "192.0.2.7".parse().unwrap();
        let trusted = [proxy, inner];
        // From a stranger the header is ignored.
        assert_eq!(client(pupil, &headers(&["203.0.113.1"]), &trusted), pupil);
        // Through the proxy: the client it names.
        assert_eq!(client(proxy, &headers(&["192.0.2.7"]), &trusted), pupil);
        // A client that wrote its own header first: the right-most address
        // not a trusted proxy is the one the proxy saw.
        assert_eq!(
            client(proxy, &headers(&["203.0.113.1, 192.0.2.7"]), &trusted),
            pupil
        );
        assert_eq!(
            client(
                proxy,
                &headers(&["203.0.113.1", "192.0.2.7, 10.0.0.3"]),
                &trusted
            ),
            pupil
        );
        // Nothing usable: the proxy itself.
        assert_eq!(client(proxy, &headers(&[]), &trusted), proxy);
        assert_eq!(
            client(proxy, &headers(&["not an address"]), &trusted),
            proxy
        );
    }
}
