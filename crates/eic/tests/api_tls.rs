//! The API listener over HTTPS: real clients (boto3, the AWS CLI) through
//! TLS with a CA the test creates with openssl, `aws:SecureTransport` in
//! policies, and a certificate renewed by SIGHUP without a restart.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_ec2instanceconnect as eic;
use common::{run_python_with, ssh_keygen, wait_until, Server, ED25519_KEY, NO_THROTTLING, REGION};

const SECURE_ONLY: (&str, &str) = (
    "AKIDSECUREONLYEXAMPLE",
    "secureOnlySecret/EXAMPLE000000000000000000",
);

/// A principal whose only permission requires TLS.
fn secure_only_principal() -> String {
    format!(
        r#"{NO_THROTTLING}
[[principals]]
arn = "arn:aws:iam::111122223333:user/secure-only"
access_keys = [{{ id = "{}", secret = "{}" }}]
policies = ['{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"ec2-instance-connect:SendSSHPublicKey","Resource":"*","Condition":{{"Bool":{{"aws:SecureTransport":"true"}}}}}}]}}']
"#,
        SECURE_ONLY.0, SECURE_ONLY.1
    )
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and leaves for 127.0.0.1 named `names`, signed by it.
fn make_pki(dir: &Path, names: &[&str]) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=eic-test-ca",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    for name in names {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ],
        );
    }
}

/// The subject CN of the certificate the server presents now.
fn served_cn(server: &Server) -> Option<String> {
    let script = format!(
        "openssl s_client -connect {} </dev/null 2>/dev/null | openssl x509 -noout -subject",
        server.api
    );
    let out = Command::new("sh").args(["-c", &script]).output().ok()?;
    let subject = String::from_utf8_lossy(&out.stdout).to_string();
    subject
        .trim()
        .rsplit_once("CN")
        .map(|(_, cn)| cn.trim_start_matches([' ', '=']).to_owned())
}

/// Makes `name`'s certificate and key the pair the server is configured
/// with (served.pem, served.key).
fn serve(pki: &Path, name: &str) {
    for ext in ["pem", "key"] {
        std::fs::copy(
            pki.join(format!("{name}.{ext}")),
            pki.join(format!("served.{ext}")),
        )
        .unwrap();
    }
}

fn start_tls(pki: &Path, extra: &str) -> (Server, PathBuf, PathBuf) {
    let (cert, key) = (pki.join("served.pem"), pki.join("served.key"));
    let tls = format!(
        "listen = \"127.0.0.1:8080\"\ntls = {{ certificate = \"{}\", private_key = \"{}\" }}",
        cert.display(),
        key.display()
    );
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &data.keep(),
        &[("listen = \"127.0.0.1:8080\"", &tls)],
        extra,
    );
    (server, cert, key)
}

#[test]
fn real_clients_push_over_https() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path(), &["eic-api-a"]);
    serve(pki.path(), "eic-api-a");
    let (server, _, _) = start_tls(pki.path(), &secure_only_principal());
    let key_file = ssh_keygen(pki.path(), "user");

    let endpoint = format!("https://{}", server.api);
    let ca = pki.path().join("ca.pem");
    let public_key = key_file.with_extension("pub");
    run_python_with(
        "api_tls_boto3.py",
        &server,
        &[
            ("EIC_ENDPOINT", endpoint.as_ref()),
            ("EIC_CA", ca.as_ref()),
            ("EIC_KEY_FILE", public_key.as_ref()),
        ],
    );
}

#[tokio::test]
async fn secure_transport_is_false_over_plain_http() {
    let server = Server::start(&secure_only_principal());
    let conf = eic::Config::builder()
        .behavior_version(eic::config::BehaviorVersion::latest())
        .region(eic::config::Region::new(REGION))
        .credentials_provider(eic::config::Credentials::new(
            SECURE_ONLY.0,
            SECURE_ONLY.1,
            None,
            None,
            "test",
        ))
        .endpoint_url(server.endpoint())
        .build();
    let err = eic::Client::from_conf(conf)
        .send_ssh_public_key()
        .instance_id("i-abcd1234")
        .instance_os_user("ec2-user")
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
        .expect_err("the policy requires TLS")
        .into_service_error();
    assert_eq!(err.meta().code(), Some("AccessDeniedException"), "{err:?}");
}

#[test]
fn sighup_serves_a_renewed_certificate_and_survives_a_bad_one() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path(), &["eic-api-a", "eic-api-b"]);
    serve(pki.path(), "eic-api-a");
    let (server, cert, key) = start_tls(pki.path(), "");
    assert_eq!(served_cn(&server).as_deref(), Some("eic-api-a"));
    let hup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap()
            .success());
    };

    serve(pki.path(), "eic-api-b");
    hup();
    wait_until(10, "the renewed certificate is served", || {
        served_cn(&server).as_deref() == Some("eic-api-b")
    });

    // A key that does not fit the certificate, then a file that is no
    // certificate: each reload is refused and the last good pair stays.
    // SIGHUP also reopens the audit log, after the certificate: a new
    // audit.log after moving the old one away says the reload ran.
    let audit = server.data_dir.join("audit.log");
    for n in 0..2 {
        if n == 0 {
            std::fs::copy(pki.path().join("eic-api-a.key"), &key).unwrap();
        } else {
            std::fs::write(&cert, "not a certificate").unwrap();
        }
        std::fs::rename(&audit, server.data_dir.join(format!("audit.log.{n}"))).unwrap();
        hup();
        wait_until(10, "the SIGHUP was handled", || audit.exists());
        assert_eq!(
            served_cn(&server).as_deref(),
            Some("eic-api-b"),
            "after a bad {}",
            ["key", "certificate"][n]
        );
    }
}
