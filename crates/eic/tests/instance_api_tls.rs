//! The instance-facing listener over HTTPS with `[instance_api] tls =
//! "auto"`: `eic agent-config` writes the TLS CA as `tls_ca`, a real sshd
//! logs in with a pushed key fetched over https, another CA (or none) is
//! refused, and a restart keeps the same TLS CA.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::sshd::{ssh, start_sshd, RootDir};
use common::{eic, push_with_boto3, ssh_keygen, Server};

const AUTO_TLS: (&str, &str) = (
    "domain = \"eic.internal\"",
    "domain = \"eic.internal\"\ntls = \"auto\"",
);

fn start(data_dir: &Path) -> Server {
    Server::start_with(data_dir, &[AUTO_TLS], "")
}

/// `eic agent-config` for i-abcd1234, with `endpoint` if given.
fn agent_config(server: &Server, endpoint: Option<&str>) -> String {
    let mut args = vec![
        "agent-config".to_owned(),
        "--config".into(),
        server.config.to_str().unwrap().into(),
        "--data-dir".into(),
        server.data_dir.to_str().unwrap().into(),
        "--instance-id".into(),
        "i-abcd1234".into(),
    ];
    if let Some(endpoint) = endpoint {
        args.extend(["--endpoint".into(), endpoint.into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = eic(&args);
    assert_eq!(code, 0, "{err}");
    out
}

fn field(agent_toml: &str, name: &str) -> Option<String> {
    let value: toml::Value = toml::from_str(agent_toml).unwrap();
    value.get(name).map(|v| v.as_str().unwrap().to_owned())
}

/// `eic authorized-keys --config <agent_toml> root`: (exit code, stdout).
fn authorized_keys(dir: &Path, name: &str, agent_toml: &str) -> (i32, String) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, agent_toml).unwrap();
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        path.to_str().unwrap(),
        "root",
    ]);
    (code, out)
}

#[test]
fn auto_tls_serves_keys_over_https_to_real_sshd_under_its_own_ca_only() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path());
    let dir = RootDir::new("instance-tls");
    let endpoint = format!("https://{}", server.instance_api);

    // By default the endpoint is https, and tls_ca the TLS CA: not the
    // blob signing CA.
    let default = agent_config(&server, None);
    assert!(field(&default, "endpoint").unwrap().starts_with("https://"));
    let agent_toml = agent_config(&server, Some(&endpoint));
    let tls_ca = field(&agent_toml, "tls_ca").unwrap();
    let pki = data.path().join("pki");
    assert_eq!(
        tls_ca,
        std::fs::read_to_string(pki.join("tls-ca.pem")).unwrap()
    );
    assert_ne!(tls_ca, field(&agent_toml, "trust_anchor").unwrap());
    let mode = std::fs::metadata(pki.join("tls-ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let agent = dir.0.join("agent.toml");
    std::fs::write(&agent, &agent_toml).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_sshd, port) = start_sshd(&dir.0, &agent);
    let keys = tempfile::tempdir().unwrap();
    let mine = ssh_keygen(keys.path(), "mine");
    assert_eq!(ssh(port, &mine, "root").0, 255);
    push_with_boto3(&server, "i-abcd1234", "root", &mine.with_extension("pub"));
    let (code, out) = ssh(port, &mine, "root");
    assert_eq!((code, out.trim()), (0, "logged-in-as-root"));
    let key_line = std::fs::read_to_string(mine.with_extension("pub")).unwrap();
    assert_eq!(
        authorized_keys(&dir.0, "right", &agent_toml),
        (0, key_line.clone())
    );

    // Another server's TLS CA, no tls_ca at all, or the TLS listener
    // asked in plain http with a tls_ca: nothing printed.
    let other_data = tempfile::tempdir().unwrap();
    let other = start(other_data.path());
    let other_ca = field(&agent_config(&other, Some(&endpoint)), "tls_ca").unwrap();
    assert_ne!(other_ca, tls_ca);
    let wrong_ca = agent_toml.replace(&tls_ca, &other_ca);
    let no_ca: String = {
        let mut value: toml::Table = toml::from_str(&agent_toml).unwrap();
        value.remove("tls_ca");
        toml::to_string(&value).unwrap()
    };
    let plain = agent_toml.replace("https://", "http://");
    for (name, text) in [("wrong-ca", wrong_ca), ("no-ca", no_ca), ("plain", plain)] {
        assert_ne!(text, agent_toml, "{name}");
        assert_eq!(
            authorized_keys(&dir.0, name, &text),
            (1, String::new()),
            "{name}"
        );
    }

    // A restart keeps the TLS CA: the agent config written before it still
    // trusts the server (on its new port).
    let fingerprint = eic::tls_ca::instance_api_trust(
        &eic::config::Config::load_with_data_dir(&server.config, Some(data.path())).unwrap(),
        &eic::data_dir::DataDir::for_command(data.path()).unwrap(),
    )
    .unwrap()
    .unwrap()
    .fingerprint;
    assert!(fingerprint.starts_with("sha256:"));
    assert!(server.terminate().success());
    let restarted = start(data.path());
    let moved = agent_toml.replace(&endpoint, &format!("https://{}", restarted.instance_api));
    assert_eq!(
        field(&agent_config(&restarted, Some(&endpoint)), "tls_ca").unwrap(),
        tls_ca
    );
    let again = eic::tls_ca::instance_api_trust(
        &eic::config::Config::load_with_data_dir(&restarted.config, Some(data.path())).unwrap(),
        &eic::data_dir::DataDir::for_command(data.path()).unwrap(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(again.fingerprint, fingerprint);
    assert_eq!(authorized_keys(&dir.0, "moved", &moved), (0, key_line));
}
