//! Opening a tunnel as a client does, the CLI v2's `open-tunnel` among
//! them: the `/openTunnel` URL presigned with SigV4 in its query (service
//! `ec2-instance-connect`, 60 s, `host` the one signed header), TLS to port
//! 443 of the endpoint's DNS name, and the WebSocket handshake. The user
//! side (`client::tunnel`: `eic open-tunnel`, `eic ssh`, `eic proxy`)
//! dials with the caller's AWS credentials; the browser console with a
//! short-lived credential of its signed-in principal, so the endpoint's
//! node authorizes and audits the tunnel as that principal.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context};
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// The CLI v2 dials this port whatever the DNS name says.
pub const TUNNEL_PORT: u16 = 443;
/// How long a presigned URL is good for, as the CLI signs it.
const PRESIGN_LIFETIME: Duration = Duration::from_secs(60);
/// The CLI's frame size, which the server's relay also uses.
pub const MAX_FRAME_BYTES: usize = 65_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// An endpoint that reaches an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub dns_name: String,
}

/// An open tunnel: a WebSocket over TLS to the endpoint.
pub type Tunnel = WebSocketStream<TlsStream<TcpStream>>;

/// Who signs a tunnel request, and where.
pub struct Signer<'a> {
    pub identity: &'a Identity,
    pub region: &'a str,
    pub now: SystemTime,
}

/// `wss://DNS/openTunnel?…` signed in its query: the empty payload's hash,
/// `host` the one signed header, 60 s.
pub fn presigned_url(
    signer: &Signer<'_>,
    endpoint: &Endpoint,
    address: IpAddr,
    port: u16,
) -> anyhow::Result<String> {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("instanceConnectEndpointId", &endpoint.id)
        .append_pair("remotePort", &port.to_string())
        .append_pair("privateIpAddress", &address.to_string())
        .finish();
    let mut url = format!("wss://{}/openTunnel?{query}", endpoint.dns_name);
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_LIFETIME);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(signer.identity)
        .region(signer.region)
        .name("ec2-instance-connect")
        .time(signer.now)
        .settings(settings)
        .build()
        .context("cannot sign the tunnel request")?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::once(("host", endpoint.dns_name.as_str())),
        SignableBody::Bytes(b""),
    )
    .context("cannot sign the tunnel request")?;
    let (instructions, _signature) = sign(signable, &params)
        .context("cannot sign the tunnel request")?
        .into_parts();
    for (name, value) in instructions.params() {
        url.push('&');
        url.push_str(&form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>());
        url.push('=');
        url.push_str(&form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>());
    }
    Ok(url)
}

/// The TLS trust a tunnel is opened with: the system's store (as the CLI's
/// awscrt uses it; `SSL_CERT_FILE` and `SSL_CERT_DIR` honoured) and
/// `extra` (the console adds eic's own TLS CA, which certifies the
/// endpoints' names under `[tunnel] tls = "auto"`).
pub fn client_tls(extra: &[CertificateDer<'static>]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for cert in extra {
        roots
            .add(cert.clone())
            .context("a trust anchor is not a usable certificate")?;
    }
    if roots.is_empty() {
        anyhow::bail!("no trusted certificates found (system store, SSL_CERT_FILE, SSL_CERT_DIR)");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("no TLS versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Opens the presigned `url` on `endpoint`: TCP to port 443 of its DNS
/// name, TLS under `tls`, the handshake with `user_agent`. A refusal reads
/// as the endpoint's `Message`.
pub async fn open(
    url: &str,
    endpoint: &Endpoint,
    tls: Arc<rustls::ClientConfig>,
    user_agent: &str,
) -> anyhow::Result<Tunnel> {
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((endpoint.dns_name.as_str(), TUNNEL_PORT)),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "connecting to {}:{TUNNEL_PORT} timed out",
            endpoint.dns_name
        )
    })?
    .with_context(|| format!("cannot connect to {}:{TUNNEL_PORT}", endpoint.dns_name))?;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(endpoint.dns_name.clone())
        .with_context(|| format!("{} is not a DNS name", endpoint.dns_name))?;
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .with_context(|| {
            format!(
                "TLS with {} failed (its certificate must be trusted by the system store or SSL_CERT_FILE)",
                endpoint.dns_name
            )
        })?;
    let request = tungstenite::handshake::client::Request::builder()
        .uri(url)
        .header("Host", &endpoint.dns_name)
        .header("User-Agent", user_agent)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .context("cannot build the tunnel request")?;
    match tokio_tungstenite::client_async_with_config(
        request,
        tls,
        Some(super::relay::websocket_config()),
    )
    .await
    {
        Ok((websocket, _)) => Ok(websocket),
        Err(tungstenite::Error::Http(response)) => Err(anyhow!(
            "{} refused the tunnel ({}): {}",
            endpoint.id,
            response.status(),
            refusal_message(response.body().as_deref().unwrap_or_default())
        )),
        Err(e) => Err(anyhow!("opening the tunnel through {}: {e}", endpoint.id)),
    }
}

/// The `Message` of the endpoint's JSON refusal, else its text.
fn refusal_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("Message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

/// The tunnel as a byte stream, for an SSH client that wants one (the
/// console's russh): a task carries each write as a binary frame and each
/// binary frame to the reader, one frame in flight each way, through an
/// in-memory pipe of one frame. The stream ends when the tunnel closes
/// (the instance closed, or the endpoint's limits), and dropping it closes
/// the tunnel.
pub fn into_stream(tunnel: Tunnel) -> DuplexStream {
    let (near, far) = tokio::io::duplex(MAX_FRAME_BYTES);
    tokio::spawn(carry(tunnel, far));
    near
}

async fn carry(tunnel: Tunnel, pipe: DuplexStream) {
    let (mut from_client, mut to_client) = tokio::io::split(pipe);
    let (mut to_endpoint, mut from_endpoint) = tunnel.split();
    let upstream = async {
        let mut buffer = vec![0u8; MAX_FRAME_BYTES];
        loop {
            match from_client.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let frame = Message::Binary(Bytes::copy_from_slice(&buffer[..n]));
                    if to_endpoint.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = to_endpoint.close().await;
    };
    let downstream = async {
        while let Some(Ok(message)) = from_endpoint.next().await {
            match message {
                // Written in the guard: a reader gone ends the carry.
                Message::Binary(data) if to_client.write_all(&data).await.is_err() => return,
                Message::Binary(_) => {}
                // Text is not part of the protocol: the stream ends.
                Message::Close(_) | Message::Text(_) => break,
                _ => {}
            }
        }
        let _ = to_client.shutdown().await;
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    #[test]
    fn a_presigned_url_names_the_target_and_signs_only_host() {
        let identity: Identity =
            Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test").into();
        let signer = Signer {
            identity: &identity,
            region: "us-west-2",
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        let endpoint = Endpoint {
            id: "eice-0de00000000000001".into(),
            dns_name: "eice.example.com".into(),
        };
        let url = presigned_url(&signer, &endpoint, "10.1.2.3".parse().unwrap(), 22).unwrap();
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "wss://eice.example.com/openTunnel");
        let pairs: std::collections::HashMap<String, String> =
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(pairs["instanceConnectEndpointId"], "eice-0de00000000000001");
        assert_eq!(pairs["remotePort"], "22");
        assert_eq!(pairs["privateIpAddress"], "10.1.2.3");
        assert_eq!(pairs["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            pairs["X-Amz-Credential"],
            "AKIDEXAMPLE/20231114/us-west-2/ec2-instance-connect/aws4_request"
        );
        assert_eq!(pairs["X-Amz-Date"], "20231114T221320Z");
        assert_eq!(pairs["X-Amz-Expires"], "60");
        assert_eq!(pairs["X-Amz-SignedHeaders"], "host");
        assert_eq!(pairs["X-Amz-Security-Token"], "token");
        assert_eq!(pairs["X-Amz-Signature"].len(), 64);
    }

    #[test]
    fn a_refusal_reads_as_its_message() {
        assert_eq!(
            refusal_message(br#"{"ErrorCode":"AccessDenied","Message":"not allowed"}"#),
            "not allowed"
        );
        assert_eq!(refusal_message(b" plain text \n"), "plain text");
    }
}
