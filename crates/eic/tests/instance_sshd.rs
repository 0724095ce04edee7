//! The instance side end to end: keys pushed with boto3 let `ssh` into a
//! real OpenSSH sshd whose AuthorizedKeysCommand is `eic authorized-keys`,
//! for that user on that instance only, for 60 seconds.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::sshd::{ssh, start_sshd, RootDir};
use common::{eic, push_with_boto3, ssh_keygen, Server};

#[test]
fn pushed_keys_log_in_through_real_sshd_for_sixty_seconds() {
    let server = Server::start("");
    let dir = RootDir::new("sshd");
    let data = server.data_dir.to_str().unwrap().to_owned();
    let config = server.config.to_str().unwrap().to_owned();
    let endpoint = format!("http://{}", server.instance_api);
    let (code, agent_toml, err) = eic(&[
        "agent-config",
        "--config",
        &config,
        "--data-dir",
        &data,
        "--instance-id",
        "i-abcd1234",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(code, 0, "{err}");
    let agent = dir.0.join("agent.toml");
    std::fs::write(&agent, &agent_toml).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_sshd, port) = start_sshd(&dir.0, &agent);

    let keys = tempfile::tempdir().unwrap();
    let mine = ssh_keygen(keys.path(), "mine");
    let other_user = ssh_keygen(keys.path(), "other-user");
    let other_instance = ssh_keygen(keys.path(), "other-instance");
    let never = ssh_keygen(keys.path(), "never-pushed");

    // Nothing pushed yet: refused, and a clean exit 0 with no output.
    assert_eq!(ssh(port, &mine, "root").0, 255);
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        agent.to_str().unwrap(),
        "root",
    ]);
    assert_eq!((code, out.as_str()), (0, ""));

    let pushed_at = Instant::now();
    push_with_boto3(&server, "i-abcd1234", "root", &mine.with_extension("pub"));
    push_with_boto3(
        &server,
        "i-abcd1234",
        "ec2-user",
        &other_user.with_extension("pub"),
    );
    push_with_boto3(
        &server,
        "i-0123456789abcdef0",
        "root",
        &other_instance.with_extension("pub"),
    );

    let (code, out) = ssh(port, &mine, "root");
    assert_eq!((code, out.trim()), (0, "logged-in-as-root"));
    // Pushed for another user, another instance, or never: refused.
    assert_eq!(ssh(port, &other_user, "root").0, 255);
    assert_eq!(ssh(port, &other_instance, "root").0, 255);
    assert_eq!(ssh(port, &never, "root").0, 255);
    // Each of the four logins fetched keys from the instance API, answered 200.
    let fetched = server.metric(r#"eic_key_fetches_total{outcome="ok"}"#);
    assert!(fetched >= 4.0, "{fetched} key fetches");

    // The agent's own checks, without sshd in between.
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        agent.to_str().unwrap(),
        "root",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        std::fs::read_to_string(mine.with_extension("pub")).unwrap()
    );
    // A wrong CN, a CA other than the server's (another server's), or a
    // revoked credential: nothing printed.
    let anchor = |toml_text: &str| -> String {
        let value: toml::Value = toml::from_str(toml_text).unwrap();
        value["trust_anchor"].as_str().unwrap().to_owned()
    };
    let other = Server::start("");
    let (_, other_toml, _) = eic(&[
        "agent-config",
        "--config",
        other.config.to_str().unwrap(),
        "--data-dir",
        other.data_dir.to_str().unwrap(),
        "--instance-id",
        "i-abcd1234",
        "--endpoint",
        &endpoint,
    ]);
    let wrong_cn = agent_toml.replace(
        "managed-ssh-signer.us-west-2.eic.internal",
        "managed-ssh-signer.us-east-1.eic.internal",
    );
    let wrong_ca = agent_toml.replace(&anchor(&agent_toml), &anchor(&other_toml));
    assert_ne!(wrong_ca, agent_toml);
    for (name, text) in [("wrong-cn", wrong_cn), ("wrong-ca", wrong_ca)] {
        let path = dir.0.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let (code, out, _) = eic(&[
            "authorized-keys",
            "--config",
            path.to_str().unwrap(),
            "root",
        ]);
        assert_eq!((code, out.as_str()), (1, ""), "{name}");
    }

    // The IMDS-shaped paths, fed to the official parser's flags: the blob
    // verifies as served, and one changed byte refuses all of it.
    let credential = toml::from_str::<toml::Value>(&agent_toml).unwrap()["credential"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |path: &str| -> String {
        ureq::get(&format!("{endpoint}/latest/meta-data/{path}"))
            .header("X-aws-ec2-metadata-token", &credential)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let blob = get("managed-ssh-keys/active-keys/root/");
    let chain = get("managed-ssh-keys/signer-cert/");
    let staples = dir.0.join("ocsp");
    std::fs::create_dir_all(&staples).unwrap();
    for name in get("managed-ssh-keys/signer-ocsp/").split_whitespace() {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(get(&format!("managed-ssh-keys/signer-ocsp/{name}")).trim())
            .unwrap();
        std::fs::write(staples.join(name), der).unwrap();
    }
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, anchor(&agent_toml)).unwrap();
    let parse = |blob_text: &str| {
        let file = dir.0.join("blob");
        std::fs::write(&file, blob_text).unwrap();
        eic(&[
            "authorized-keys",
            "-x",
            "false",
            "-p",
            file.to_str().unwrap(),
            "-o",
            "openssl",
            "-d",
            "/nonexistent",
            "-s",
            &chain,
            "-i",
            "i-abcd1234",
            "-c",
            "managed-ssh-signer.us-west-2.eic.internal",
            "-a",
            ca.to_str().unwrap(),
            "-v",
            staples.to_str().unwrap(),
        ])
    };
    let (code, out, _) = parse(&blob);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            std::fs::read_to_string(mine.with_extension("pub"))
                .unwrap()
                .as_str()
        )
    );
    let tampered = blob.replace(" mine", " mind");
    assert_ne!(tampered, blob);
    let (code, out, _) = parse(&tampered);
    assert_eq!((code, out.as_str()), (1, ""));

    let (code, _, _) = eic(&[
        "instance-credential",
        "revoke",
        "--config",
        &config,
        "--data-dir",
        &data,
        "--instance-id",
        "i-abcd1234",
    ]);
    assert_eq!(code, 0);
    assert_eq!(ssh(port, &mine, "root").0, 255);
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        agent.to_str().unwrap(),
        "root",
    ]);
    assert_eq!((code, out.as_str()), (1, ""));
    let (code, rotated, _) = eic(&[
        "instance-credential",
        "rotate",
        "--config",
        &config,
        "--data-dir",
        &data,
        "--instance-id",
        "i-abcd1234",
    ]);
    assert_eq!(code, 0);
    std::fs::write(&agent, agent_toml.replace(&credential, rotated.trim())).unwrap();
    assert_eq!(ssh(port, &mine, "root").0, 0);

    // Past its 60 seconds the key no longer logs in: one real wait.
    let expiry = pushed_at + Duration::from_secs(61);
    std::thread::sleep(expiry.saturating_duration_since(Instant::now()));
    assert_eq!(ssh(port, &mine, "root").0, 255);
    let (code, out, _) = eic(&[
        "authorized-keys",
        "--config",
        agent.to_str().unwrap(),
        "root",
    ]);
    assert_eq!((code, out.as_str()), (0, ""));
}
