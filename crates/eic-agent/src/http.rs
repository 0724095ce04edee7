//! The agent's HTTP client for eic's instance-facing listener, TLS on rustls
//! with the aws-lc-rs provider, trusting only what [`Trust`] says:
//!
//! - [`Trust::Anchors`]: only these CA certificates (the agent config's
//!   `tls_ca`), for `authorized-keys` and heartbeats, on ureq;
//! - [`Trust::Pinned`]: for the join, before the agent knows the CA: the
//!   server is accepted only if a certificate of the chain it presents has
//!   the pinned fingerprint, and the leaf then verifies (names included)
//!   under that certificate as the only root. ureq cannot take a custom
//!   verifier, so this request goes over hyper and tokio-rustls.
//!
//! Plain `http://` is refused unless the caller allows it (`--insecure-http`,
//! or a listener configured without TLS); an `https://` URL is verified
//! either way. Redirects are not followed, and answers are bounded by
//! [`MAX_RESPONSE_BYTES`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::MAX_RESPONSE_BYTES;
use crate::trust::{fingerprint, pem_certificate, TrustAnchor};

/// What the client trusts for `https://`.
#[derive(Debug, Clone)]
pub enum Trust {
    /// PEM text of the only CA certificates trusted.
    Anchors(String),
    /// `sha256:<hex>` ([`crate::trust::fingerprint`]) of a certificate
    /// the server's chain must hold.
    Pinned(String),
    /// The machine's trusted roots (and `SSL_CERT_FILE`/`SSL_CERT_DIR`), as
    /// the AWS SDK trusts them: for the user side's calls to the API.
    System,
}

/// An answer, and with [`Trust::Pinned`] over https the certificate that
/// matched the pin (the CA to write into the agent config as `tls_ca`).
pub struct Reply {
    pub response: Response<Vec<u8>>,
    pub pinned: Option<TrustAnchor>,
}

impl std::fmt::Debug for Reply {
    /// The status only: a body can carry a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.response.status())
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

/// Sends requests to the instance-facing listener.
pub struct Client {
    https: Https,
    allow_http: bool,
    timeout: Duration,
}

enum Https {
    Anchors(ureq::Agent),
    Pinned(String),
    Refused,
}

impl Client {
    /// Trusting `trust` for https; `http://` URLs only if `allow_http`.
    /// `timeout` bounds each request as a whole.
    pub fn new(trust: Trust, allow_http: bool, timeout: Duration) -> anyhow::Result<Client> {
        let https = match trust {
            Trust::Anchors(pem) => {
                let roots = CertificateDer::pem_slice_iter(pem.as_bytes())
                    .map(|der| der.map(|der| ureq::tls::Certificate::from_der(&der).to_owned()))
                    .collect::<Result<Vec<_>, _>>()
                    .context("the trusted CA certificates are not PEM")?;
                anyhow::ensure!(
                    !roots.is_empty(),
                    "no CA certificate to trust (the agent config's tls_ca is empty)"
                );
                Https::Anchors(ureq_agent(roots, timeout))
            }
            Trust::Pinned(pin) => Https::Pinned(parse_pin(&pin)?),
            Trust::System => {
                let roots = rustls_native_certs::load_native_certs()
                    .certs
                    .into_iter()
                    .map(|der| ureq::tls::Certificate::from_der(&der).to_owned())
                    .collect();
                Https::Anchors(ureq_agent(roots, timeout))
            }
        };
        Ok(Client {
            https,
            allow_http,
            timeout,
        })
    }

    /// For a listener configured without TLS: `http://` only.
    pub fn plain_http(timeout: Duration) -> Client {
        Client {
            https: Https::Refused,
            allow_http: true,
            timeout,
        }
    }

    /// Sends `request` (an absolute URL) and reads the whole answer.
    pub fn send(&self, request: Request<Vec<u8>>) -> anyhow::Result<Reply> {
        let uri = request.uri().clone();
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if self.allow_http => {
                // No TLS at all: an agent that trusts nothing.
                let response = ureq_send(&ureq_agent(Vec::new(), self.timeout), request)?;
                return Ok(Reply {
                    response,
                    pinned: None,
                });
            }
            Some("http") => anyhow::bail!(
                "refusing plain http:// to {}: credentials and keys would cross the network unauthenticated; use the https:// URL of a listener with [instance_api] tls (or allow plain HTTP with --insecure-http)",
                authority(&uri)
            ),
            _ => anyhow::bail!("{uri} is not an http:// or https:// URL"),
        }
        match &self.https {
            Https::Anchors(agent) => Ok(Reply {
                response: ureq_send(agent, request)?,
                pinned: None,
            }),
            Https::Pinned(pin) => send_pinned(request, pin, self.timeout),
            Https::Refused => anyhow::bail!(
                "{} is https but no CA is configured to trust for it",
                authority(&uri)
            ),
        }
    }
}

fn authority(uri: &Uri) -> String {
    uri.authority().map(|a| a.to_string()).unwrap_or_default()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A ureq agent trusting only `roots` (none: every https handshake fails).
fn ureq_agent(roots: Vec<ureq::tls::Certificate<'static>>, timeout: Duration) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider())
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // The listener never redirects; following one could carry the
        // credential elsewhere, or down to plain http.
        .max_redirects(0)
        .build()
        .new_agent()
}

fn ureq_send(agent: &ureq::Agent, request: Request<Vec<u8>>) -> anyhow::Result<Response<Vec<u8>>> {
    let authority = authority(request.uri());
    let response = agent
        .run(request)
        .with_context(|| format!("cannot reach {authority}"))?;
    let (parts, mut body) = response.into_parts();
    let body = body
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
        .context("unreadable answer from the server")?;
    Ok(Response::from_parts(parts, body))
}

/// `sha256:` and 64 hex digits, lowercased.
fn parse_pin(pin: &str) -> anyhow::Result<String> {
    let pin = pin.trim().to_ascii_lowercase();
    let valid = pin
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    anyhow::ensure!(
        valid,
        "a CA fingerprint is sha256: and 64 hex digits, not {pin:?}"
    );
    Ok(pin)
}

/// One request over a fresh connection whose certificate [`PinnedVerifier`]
/// checks, on a runtime of its own (the agent's commands are synchronous).
fn send_pinned(request: Request<Vec<u8>>, pin: &str, timeout: Duration) -> anyhow::Result<Reply> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let authority = authority(request.uri());
    runtime.block_on(async {
        tokio::time::timeout(timeout, exchange_pinned(request, pin))
            .await
            .map_err(|_| anyhow::anyhow!("{authority} did not answer within {timeout:?}"))?
    })
}

async fn exchange_pinned(request: Request<Vec<u8>>, pin: &str) -> anyhow::Result<Reply> {
    let (mut parts, body) = request.into_parts();
    let uri = parts.uri.clone();
    let authority = uri
        .authority()
        .with_context(|| format!("{uri} has no host"))?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(443);
    let name = ServerName::try_from(host.clone())
        .with_context(|| format!("{host:?} is not a DNS name or an IP address"))?;

    let verifier = Arc::new(PinnedVerifier {
        pin: pin.to_owned(),
        provider: provider(),
        matched: Mutex::new(None),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("cannot reach {authority}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with {authority} failed"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .with_context(|| format!("HTTP with {authority} failed"))?;
    tokio::spawn(connection);

    // On a connection of its own, HTTP/1.1 wants the path and a Host.
    parts.uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .context("the request's path")?;
    if !parts.headers.contains_key(http::header::HOST) {
        parts
            .headers
            .insert(http::header::HOST, authority.as_str().parse()?);
    }
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(Bytes::from(body))))
        .await
        .with_context(|| format!("no answer from {authority}"))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE_BYTES as usize)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("unreadable answer from the server: {e}"))?
        .to_bytes()
        .to_vec();
    let matched = verifier
        .matched
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .context("the TLS handshake completed without the pinned certificate")?;
    Ok(Reply {
        response: Response::from_parts(parts, body),
        pinned: Some(TrustAnchor {
            pem: pem_certificate(&matched),
            fingerprint: fingerprint(&matched),
        }),
    })
}

/// Accepts a server whose chain holds the certificate with the pinned
/// fingerprint, and whose leaf verifies under it as the only root.
#[derive(Debug)]
struct PinnedVerifier {
    pin: String,
    provider: Arc<CryptoProvider>,
    /// The certificate that matched, once a handshake verified.
    matched: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pinned = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| fingerprint(cert) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "no certificate the server presented has the pinned CA fingerprint".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(pinned.clone().into_owned())?;
        let verified =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        *self.matched.lock().unwrap_or_else(|p| p.into_inner()) = Some(pinned.clone().into_owned());
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
