//! The server's half of a WebSocket opening handshake (RFC 6455 §4.2),
//! shared by the Endpoint's tunnel and the console's terminals. Each role
//! answers a bad handshake in its own shape; the check and the 101 are the
//! same. tungstenite frames the connection once hyper has upgraded it.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Why a request is not a WebSocket handshake this server accepts.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// No `Upgrade: websocket` with `Connection: upgrade`.
    NotWebSocket,
    /// `Sec-WebSocket-Version` is not 13.
    Version,
    /// `Sec-WebSocket-Key` is not 16 bytes in base64.
    Key,
}

/// Checks the client's handshake before anything else is done for it.
pub fn check(headers: &HeaderMap) -> Result<(), HandshakeError> {
    let has = |name: &str, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return Err(HandshakeError::NotWebSocket);
    }
    if !has("sec-websocket-version", "13") {
        return Err(HandshakeError::Version);
    }
    let key_ok = headers
        .get("sec-websocket-key")
        .and_then(|k| k.to_str().ok())
        .and_then(|k| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, k).ok())
        .is_some_and(|k| k.len() == 16);
    if !key_ok {
        return Err(HandshakeError::Key);
    }
    Ok(())
}

/// The 101 that accepts the handshake whose request headers these are.
pub fn switching_protocols(request: &HeaderMap) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    let accept = request
        .get("sec-websocket-key")
        .map(|key| derive_accept_key(key.as_bytes()));
    if let Some(Ok(accept)) = accept.map(|a| HeaderValue::from_str(&a)) {
        headers.insert("sec-websocket-accept", accept);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    const GOOD: [(&str, &str); 4] = [
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn accepts_rfc_6455s_example_and_answers_its_accept_key() {
        let request = handshake(&GOOD);
        assert_eq!(check(&request), Ok(()));
        let response = switching_protocols(&request);
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455 §1.3's worked example.
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn refuses_each_missing_or_wrong_part() {
        let without = |name: &str| {
            handshake(
                &GOOD
                    .iter()
                    .copied()
                    .filter(|(n, _)| *n != name)
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            check(&without("upgrade")),
            Err(HandshakeError::NotWebSocket)
        );
        assert_eq!(
            check(&without("connection")),
            Err(HandshakeError::NotWebSocket)
        );
        assert_eq!(
            check(&without("sec-websocket-version")),
            Err(HandshakeError::Version)
        );
        assert_eq!(
            check(&without("sec-websocket-key")),
            Err(HandshakeError::Key)
        );
        let mut short_key = without("sec-websocket-key");
        short_key.insert("sec-websocket-key", HeaderValue::from_static("c2hvcnQ="));
        assert_eq!(check(&short_key), Err(HandshakeError::Key));
        let mut version_8 = without("sec-websocket-version");
        version_8.insert("sec-websocket-version", HeaderValue::from_static("8"));
        assert_eq!(check(&version_8), Err(HandshakeError::Version));
    }
}
