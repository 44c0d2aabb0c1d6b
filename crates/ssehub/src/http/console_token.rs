//! `GET /console/dev-token`: the first-run token, for the console's "Use the first-run token"
//! button, answered only to a browser on this machine.
//!
//! `ssehub serve` without `--publisher-jwt-key` generates a key and prints a token allowed to
//! publish and subscribe to everything; anyone who can read the terminal has it already. The
//! console offers it so the defaults work on a first click. It is handed out only when every
//! sign says the asker is on this machine and not a page of another site:
//! - the connection comes from a loopback address;
//! - no forwarding header (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`): behind a reverse
//!   proxy on the same host every peer is loopback, so a proxied request is refused;
//! - `Host` names a loopback host (a DNS-rebinding page has its own name there);
//! - a cross-origin browser request (an `Origin` other than the hub's own, or
//!   `Sec-Fetch-Site` other than `same-origin`/`none`) is refused, even with `--cors-origins *`.
//!
//! Otherwise the answer is the ordinary 404 of an unknown path: a remote client learns nothing.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, header};

use super::AppState;
use super::error::ApiError;

/// The path the console asks.
pub(crate) const PATH: &str = "/console/dev-token";

/// `GET /console/dev-token`: `{"token": "..."}` to this machine, 404 to anyone else.
pub(crate) async fn dev_token(State(state): State<AppState>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match &state.config.load().console_token {
        Some(token) if from_this_machine(peer, request.headers()) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            axum::Json(serde_json::json!({ "token": token })),
        )
            .into_response(),
        _ => ApiError::NotFound(format!("no such resource: {PATH}")).into_response(),
    }
}

/// Whether a request comes from a browser or client on this machine, asking for itself. See
/// the module docs for each rule.
fn from_this_machine(peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    let Some(peer) = peer else { return false };
    if !peer.ip().to_canonical().is_loopback() {
        return false;
    }
    if [
        "forwarded",
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-host",
    ]
    .iter()
    .any(|h| headers.contains_key(*h))
    {
        return false;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    if !loopback_host(host) {
        return false;
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let same = [format!("http://{host}"), format!("https://{host}")];
        if !same.iter().any(|o| origin.as_bytes() == o.as_bytes()) {
            return false;
        }
    }
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        None | Some(b"same-origin" | b"none") => true,
        Some(_) => false,
    }
}

/// `localhost`, `127.0.0.1`, `[::1]` and the like, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    const LOCAL: &str = "127.0.0.1:50000";

    fn local(pairs: &[(&'static str, &'static str)]) -> bool {
        from_this_machine(Some(LOCAL.parse().unwrap()), &headers(pairs))
    }

    #[test]
    fn a_same_origin_request_from_loopback_gets_it() {
        assert!(local(&[("host", "127.0.0.1:8080")]));
        assert!(local(&[
            ("host", "localhost:8080"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(local(&[
            ("host", "[::1]:8080"),
            ("origin", "http://[::1]:8080")
        ]));
        let v6 = "[::1]:50000".parse().unwrap();
        assert!(from_this_machine(
            Some(v6),
            &headers(&[("host", "localhost")])
        ));
        let mapped = "[::ffff:127.0.0.1]:5".parse().unwrap();
        assert!(from_this_machine(
            Some(mapped),
            &headers(&[("host", "localhost")])
        ));
    }

    #[test]
    fn a_remote_peer_or_no_known_peer_is_refused() {
        let remote = "192.0.2.7:50000".parse().unwrap();
        assert!(!from_this_machine(
            Some(remote),
            &headers(&[("host", "localhost:8080")])
        ));
        let lan = "[fe80::1]:5".parse().unwrap();
        assert!(!from_this_machine(
            Some(lan),
            &headers(&[("host", "localhost")])
        ));
        assert!(!from_this_machine(None, &headers(&[("host", "localhost")])));
    }

    #[test]
    fn proxied_rebound_or_cross_site_requests_are_refused() {
        assert!(!local(&[
            ("host", "localhost"),
            ("x-forwarded-for", "192.0.2.7")
        ]));
        assert!(!local(&[
            ("host", "localhost"),
            ("forwarded", "for=192.0.2.7")
        ]));
        assert!(!local(&[("host", "localhost"), ("x-real-ip", "192.0.2.7")]));
        assert!(!local(&[("host", "hub.example.com")]));
        assert!(!local(&[("host", "evil.example:8080")]));
        assert!(!local(&[]));
        assert!(!local(&[
            ("host", "localhost:8080"),
            ("origin", "https://evil.example")
        ]));
        assert!(!local(&[
            ("host", "localhost:8080"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(!local(&[
            ("host", "localhost:8080"),
            ("sec-fetch-site", "same-site")
        ]));
    }
}
