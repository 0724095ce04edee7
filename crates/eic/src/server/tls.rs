//! HTTPS for the API listener, on rustls with the aws-lc-rs provider (the
//! crypto library the rest of eic already links).
//!
//! The certificate is served through a resolver that SIGHUP can swap, so a
//! renewed certificate (every 90 days or less with ACME) is picked up without
//! dropping a connection. A reload that fails keeps the certificate in use.

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

/// The API listener's TLS: an acceptor and the certificate it serves.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certificate: Arc<ReloadableCertificate>,
}

impl Tls {
    pub fn load(config: &TlsConfig) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certificate = Arc::new(ReloadableCertificate {
            current: RwLock::new(load_certified_key(config, &provider)?),
            config: config.clone(),
            provider: provider.clone(),
        });
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        // The API speaks HTTP/1.1 only; saying so lets clients that offer
        // h2 settle on it in the handshake.
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
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))?
    }

    /// Reads the certificate and key files again (on SIGHUP).
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = load_certified_key(&self.certificate.config, &self.certificate.provider)?;
        *self
            .certificate
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

struct ReloadableCertificate {
    current: RwLock<Arc<CertifiedKey>>,
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for ReloadableCertificate {
    /// Names the files, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCertificate")
            .field("certificate", &self.config.certificate)
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
