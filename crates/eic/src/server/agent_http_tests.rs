//! The agent's HTTPS client (eic-agent's `http`) against the server's own
//! listener: pinning for a join, the anchors the agent config names, and
//! plain http only when allowed. Here rather than in eic-agent because the
//! listener is the server's.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::server::listen::{serve_http, HttpListener};
use crate::server::tls::Tls;
use crate::tls_ca::AutoCertificate;
use bytes::Bytes;
use eic_agent::http::{Client, Reply, Trust};
use http::{Request, Response};
use http_body_util::Full;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS CA, and a leaf for `names` under it.
struct Pki {
    _dir: tempfile::TempDir,
    auto: AutoCertificate,
    ca_pem: String,
}

fn pki(names: &[&str]) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let auto = AutoCertificate::load_or_create(
        dir.path(),
        names.iter().map(|n| n.to_string()).collect(),
        SystemTime::now(),
    )
    .unwrap();
    let ca_pem = std::fs::read_to_string(dir.path().join(crate::tls_ca::CERT_FILE)).unwrap();
    Pki {
        _dir: dir,
        auto,
        ca_pem,
    }
}

/// An HTTPS listener on loopback serving `pki`'s leaf, answering
/// `hello` to everything, for the rest of the test process.
fn serve(pki: &Pki) -> SocketAddr {
    let tls = Tls::serving(pki.auto.issue(SystemTime::now()).unwrap().key).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(tcp.local_addr().unwrap()).unwrap();
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            serve_http(
                HttpListener {
                    tcp,
                    tls: Some(tls),
                    max_connections: 8,
                    aws_errors: false,
                },
                |_, _| async { Ok(Response::new(Full::new(Bytes::from("hello")))) },
                stop_rx,
            )
            .await;
        });
    });
    rx.recv().unwrap()
}

fn get(client: &Client, url: &str) -> anyhow::Result<Reply> {
    client.send(Request::get(url).body(Vec::new()).unwrap())
}

#[test]
fn a_pinned_ca_is_trusted_and_returned() {
    let pki = pki(&["127.0.0.1"]);
    let addr = serve(&pki);
    let client = Client::new(Trust::Pinned(pki.auto.fingerprint()), false, TIMEOUT).unwrap();
    let reply = get(&client, &format!("https://{addr}/eic/v1/x")).unwrap();
    assert_eq!(reply.response.body().as_slice(), b"hello");
    let pinned = reply.pinned.unwrap();
    assert_eq!(pinned.fingerprint, pki.auto.fingerprint());
    assert_eq!(pinned.pem, pki.ca_pem);
    // The pin as kubeadm prints it, in either case.
    let upper = pki
        .auto
        .fingerprint()
        .to_uppercase()
        .replace("SHA256:", "sha256:");
    let client = Client::new(Trust::Pinned(upper), false, TIMEOUT).unwrap();
    assert!(get(&client, &format!("https://{addr}/")).is_ok());
}

#[test]
fn another_ca_with_the_same_names_is_refused_under_a_pin() {
    let right = pki(&["127.0.0.1"]);
    let other = pki(&["127.0.0.1"]);
    let addr = serve(&other);
    let client = Client::new(Trust::Pinned(right.auto.fingerprint()), false, TIMEOUT).unwrap();
    let e = get(&client, &format!("https://{addr}/")).unwrap_err();
    assert!(format!("{e:#}").contains("pinned CA fingerprint"), "{e:#}");
}

#[test]
fn the_pinned_ca_for_another_name_is_refused() {
    let pki = pki(&["instance-api.example"]);
    let addr = serve(&pki);
    let client = Client::new(Trust::Pinned(pki.auto.fingerprint()), false, TIMEOUT).unwrap();
    let e = get(&client, &format!("https://{addr}/")).unwrap_err();
    assert!(format!("{e:#}").contains("not valid for name"), "{e:#}");
}

#[test]
fn anchors_are_the_only_cas_trusted() {
    let right = pki(&["127.0.0.1"]);
    let other = pki(&["127.0.0.1"]);
    let addr = serve(&right);
    let url = format!("https://{addr}/");
    let trusting = |pem: &str| Client::new(Trust::Anchors(pem.to_owned()), false, TIMEOUT);
    let reply = get(&trusting(&right.ca_pem).unwrap(), &url).unwrap();
    assert_eq!(reply.response.body().as_slice(), b"hello");
    assert!(reply.pinned.is_none());
    // Both CAs have the same name: the other's key fails the signature.
    let e = get(&trusting(&other.ca_pem).unwrap(), &url).unwrap_err();
    assert!(
        format!("{e:#}").contains("invalid peer certificate"),
        "{e:#}"
    );
    assert!(trusting("no PEM here").is_err());
}

#[test]
fn plain_http_only_when_allowed_and_https_still_verified() {
    let right = pki(&["127.0.0.1"]);
    let other = pki(&["127.0.0.1"]);
    let addr = serve(&other);
    let pinned = |allow_http| {
        Client::new(Trust::Pinned(right.auto.fingerprint()), allow_http, TIMEOUT).unwrap()
    };
    // Refused before any connection: the port here serves TLS anyway.
    let e = get(&pinned(false), &format!("http://{addr}/")).unwrap_err();
    assert!(e.to_string().contains("refusing plain http://"), "{e}");
    assert!(get(&pinned(true), &format!("https://{addr}/")).is_err());
    assert!(get(&Client::plain_http(TIMEOUT), &format!("https://{addr}/")).is_err());
    assert!(Client::new(Trust::Pinned("sha256:abc".into()), false, TIMEOUT).is_err());
}
