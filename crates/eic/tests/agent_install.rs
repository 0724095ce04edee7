//! `eic agent install|uninstall` against a real sshd's reading of the
//! result (`sshd -T`), all under a temporary directory. Runs as root (it
//! chowns the agent configuration); needs openssh-server.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const SSHD: &str = "/usr/sbin/sshd";
const DROP_IN: &str = "60-eic-instance-connect.conf";

struct Setup {
    _dir: tempfile::TempDir,
    sshd_config: PathBuf,
    drop_ins: PathBuf,
    agent_config: PathBuf,
    host_key: PathBuf,
}

impl Setup {
    /// A main configuration whose `Include` reads the drop-in directory,
    /// with `extra` lines after it.
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let drop_ins = dir.path().join("sshd_config.d");
        std::fs::create_dir(&drop_ins).unwrap();
        let host_key = dir.path().join("host_ed25519");
        assert!(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .status()
            .unwrap()
            .success());
        let sshd_config = dir.path().join("sshd_config");
        std::fs::write(
            &sshd_config,
            format!(
                "# as Debian's\nInclude {}/*.conf\nHostKey {}\nPidFile none\n{extra}",
                drop_ins.display(),
                host_key.display()
            ),
        )
        .unwrap();
        let agent_config = dir.path().join("agent.toml");
        std::fs::write(
            &agent_config,
            "endpoint = \"http://127.0.0.1:8081\"\ninstance_id = \"i-abcd1234\"\n\
             credential = \"secret\"\nsigner_cn = \"managed-ssh-signer.us-west-2.eic.internal\"\n\
             trust_anchor = \"\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&agent_config, std::fs::Permissions::from_mode(0o644)).unwrap();
        Setup {
            _dir: dir,
            sshd_config,
            drop_ins,
            agent_config,
            host_key,
        }
    }

    fn install(&self) -> (i32, String, String) {
        eic(&[
            "agent",
            "install",
            "--agent-config",
            self.agent_config.to_str().unwrap(),
            "--sshd-config-dir",
            self.drop_ins.to_str().unwrap(),
            "--sshd-config",
            self.sshd_config.to_str().unwrap(),
            "--user",
            "nobody",
        ])
    }

    fn uninstall(&self) -> (i32, String, String) {
        eic(&[
            "agent",
            "uninstall",
            "--sshd-config-dir",
            self.drop_ins.to_str().unwrap(),
        ])
    }

    fn drop_in(&self) -> PathBuf {
        self.drop_ins.join(DROP_IN)
    }

    /// What sshd makes of the configuration: `sshd -T`'s lowercase lines.
    fn effective(&self) -> String {
        let out = Command::new(SSHD)
            .arg("-T")
            .arg("-f")
            .arg(&self.sshd_config)
            .arg("-o")
            .arg(format!("HostKey={}", self.host_key.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn eic(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_eic"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sshd_present() {
    // CI installs openssh-server: its absence is a broken setup, not a skip.
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install openssh-server"
    );
    std::fs::create_dir_all("/run/sshd").unwrap();
}

#[test]
fn install_is_read_by_sshd_idempotent_and_uninstalls() {
    sshd_present();
    let setup = Setup::new("");
    let (code, out, err) = setup.install();
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(setup.drop_in()).unwrap();
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_eic")).unwrap();
    let config = std::fs::canonicalize(&setup.agent_config).unwrap();
    let command = format!(
        "{} authorized-keys --config {} %u %f",
        binary.display(),
        config.display()
    );
    assert!(
        text.contains(&format!("AuthorizedKeysCommand {command}\n")),
        "{text}"
    );
    let effective = setup.effective();
    assert!(
        effective
            .lines()
            .any(|l| l == format!("authorizedkeyscommand {command}")),
        "{effective}"
    );
    assert!(
        effective
            .lines()
            .any(|l| l == "authorizedkeyscommanduser nobody"),
        "{effective}"
    );
    // The credential is readable by the command's user only.
    let meta = std::fs::metadata(&setup.agent_config).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 65534, 0o640)
    );

    // Again, the same: nothing changes.
    let modified = std::fs::metadata(setup.drop_in())
        .unwrap()
        .modified()
        .unwrap();
    let (code, out, err) = setup.install();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(std::fs::read_to_string(setup.drop_in()).unwrap(), text);
    assert_eq!(
        std::fs::metadata(setup.drop_in())
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );

    let (code, out, err) = setup.uninstall();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nobody is left in place"), "{out}");
    assert!(!setup.drop_in().exists());
    let effective = setup.effective();
    assert!(
        effective.lines().any(|l| l == "authorizedkeyscommand none"),
        "{effective}"
    );
    // Nothing installed: still a success.
    let (code, out, _) = setup.uninstall();
    assert_eq!(code, 0);
    assert!(out.contains("nothing to uninstall"), "{out}");
}

#[test]
fn install_never_clobbers_an_existing_command() {
    sshd_present();
    let main = Setup::new("AuthorizedKeysCommand /bin/other %u\n");
    let other_drop_in = Setup::new("");
    std::fs::write(
        other_drop_in.drop_ins.join("50-sssd.conf"),
        "# a comment: AuthorizedKeysCommand /bin/commented\nauthorizedkeyscommanduser=sssd\n",
    )
    .unwrap();
    for (name, setup) in [("main", &main), ("drop-in", &other_drop_in)] {
        let (code, out, err) = setup.install();
        assert_ne!(code, 0, "{name}: {out}");
        assert!(
            err.contains("already has an AuthorizedKeysCommand"),
            "{name}: {err}"
        );
        assert!(!setup.drop_in().exists(), "{name}");
        let meta = std::fs::metadata(&setup.agent_config).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o644, "{name}");
    }
    // Only the uncommented line counts.
    let (_, _, err) = other_drop_in.install();
    assert!(err.contains("authorizedkeyscommanduser=sssd"), "{err}");
    assert!(!err.contains("/bin/commented"), "{err}");
}

#[test]
fn install_refuses_when_sshd_config_does_not_include_the_directory() {
    sshd_present();
    let setup = Setup::new("");
    let text = std::fs::read_to_string(&setup.sshd_config).unwrap();
    std::fs::write(&setup.sshd_config, text.replace("Include", "# Include")).unwrap();
    let (code, _, err) = setup.install();
    assert_ne!(code, 0);
    assert!(err.contains("does not Include"), "{err}");
    assert!(!setup.drop_in().exists());
}

#[test]
fn install_rolls_back_what_sshd_rejects() {
    sshd_present();
    let setup = Setup::new("NoSuchKeyword yes\n");
    let (code, _, err) = setup.install();
    assert_ne!(code, 0);
    assert!(err.contains("rolled back"), "{err}");
    assert!(!setup.drop_in().exists());
    let meta = std::fs::metadata(&setup.agent_config).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o644);
}

#[test]
fn install_warns_about_a_binary_sshd_would_not_run() {
    sshd_present();
    let setup = Setup::new("");
    // Under /tmp, which everyone may write to: sshd refuses such a command.
    let binary = setup.drop_ins.parent().unwrap().join("eic");
    std::fs::copy(env!("CARGO_BIN_EXE_eic"), &binary).unwrap();
    let (code, out, err) = eic(&[
        "agent",
        "install",
        "--agent-config",
        setup.agent_config.to_str().unwrap(),
        "--sshd-config-dir",
        setup.drop_ins.to_str().unwrap(),
        "--sshd-config",
        setup.sshd_config.to_str().unwrap(),
        "--user",
        "nobody",
        "--binary",
        binary.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("sshd will refuse to run"), "{err}");
}
