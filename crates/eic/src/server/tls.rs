//! HTTPS for the API and instance-facing listeners, on rustls with the
//! aws-lc-rs provider (the crypto library the rest of eic already links).
//!
//! The certificate is served through a resolver that can be swapped, so a
//! renewed certificate (every 90 days or less with ACME, read again on
//! SIGHUP; or issued by eic itself for `[instance_api] tls = "auto"`) is
//! picked up without dropping a connection. A reload that fails keeps the
//! certificate in use.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// How long a client may take to complete the handshake: a connection that
/// never finishes one must not hold a task and a descriptor forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Plaintext rustls takes before it must send: a tunnel's largest frame
/// and then some (`tunnel::relay::MAX_FRAME_BYTES`).
const SEND_BUFFER_LIMIT: usize = 128 * 1024;

/// A listener's TLS: an acceptor and the certificate it serves.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certificate: Arc<ReloadableCertificate>,
}

impl Tls {
    /// Serves the operator's files, read again by [`Tls::reload`].
    pub fn load(config: &TlsConfig) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = load_certified_key(config, &provider)?;
        Tls::build(key, Some(config.clone()), provider)
    }

    /// Serves `key` until [`Tls::replace`] swaps it.
    pub fn serving(key: Arc<CertifiedKey>) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Tls::build(key, None, provider)
    }

    fn build(
        key: Arc<CertifiedKey>,
        files: Option<TlsConfig>,
        provider: Arc<CryptoProvider>,
    ) -> anyhow::Result<Tls> {
        let certificate = Arc::new(ReloadableCertificate {
            current: RwLock::new(key),
            files,
            provider: provider.clone(),
        });
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        // The listeners speak HTTP/1.1 only; saying so lets clients that
        // offer h2 settle on it in the handshake.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            certificate,
        })
    }

    /// Completes the server side of the handshake, within a time bound.
    pub async fn accept<S>(&self, stream: S) -> std::io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
        // Room for one whole WebSocket frame of a tunnel (its relay flushes
        // each before the next, so no more is ever queued): with rustls's
        // 64 KiB default, a frame went in piecemeal and tungstenite moved
        // the rest of its buffer down after every piece, half the
        // server's CPU in a bulk transfer.
        stream.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        Ok(stream)
    }

    /// Whether the certificate comes from the operator's files (and
    /// [`Tls::reload`] reads them).
    pub fn has_files(&self) -> bool {
        self.certificate.files.is_some()
    }

    /// Reads the certificate and key files again (on SIGHUP); a
    /// certificate eic issued itself has none and is left as it is.
    pub fn reload(&self) -> anyhow::Result<()> {
        let Some(files) = &self.certificate.files else {
            return Ok(());
        };
        self.replace(load_certified_key(files, &self.certificate.provider)?);
        Ok(())
    }

    /// Serves `key` from the next handshake on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self
            .certificate
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = key;
    }
}

struct ReloadableCertificate {
    current: RwLock<Arc<CertifiedKey>>,
    /// The operator's files, or `None` for a certificate eic issued.
    files: Option<TlsConfig>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for ReloadableCertificate {
    /// Names the files, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCertificate")
            .field("certificate", &self.files.as_ref().map(|f| &f.certificate))
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadableCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn load_certified_key(
    config: &TlsConfig,
    provider: &CryptoProvider,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_file_iter(&config.certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read {}", config.certificate.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate",
        config.certificate.display()
    );
    // The error names the file only: a key parser's message could quote
    // what it failed to parse.
    let key = PrivateKeyDer::from_pem_file(&config.private_key).map_err(|_| {
        anyhow::anyhow!(
            "cannot read a private key from {}",
            config.private_key.display()
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "the key in {} does not fit the certificate in {}",
            config.private_key.display(),
            config.certificate.display()
        )
    })?;
    Ok(Arc::new(certified))
}
