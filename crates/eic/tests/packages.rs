//! The Debian packages (packaging/README.md), end to end on this machine:
//! cargo-deb builds `eic` and `eic-agent` from this build's own binaries
//! (`--no-build`, the test profile's: packaging is what is tested, and a
//! release build of eic would cost CI a quarter of an hour), lintian finds
//! nothing it is not told why about, dpkg installs them, the installed
//! binaries answer and the server starts as `eic` on the shipped config;
//! an upgrade keeps a changed conffile and the data; a remove keeps the
//! data and the user, a purge takes both.
//!
//! It needs root, dpkg, cargo-deb and lintian (scripts/test.sh installs
//! them) and skips, saying why, without them; it refuses to run where
//! either package is installed already, which it would replace and purge.
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PACKAGES: [&str; 2] = ["eic", "eic-agent"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `program args` must succeed; its stdout.
fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have(program: &str, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn installed(package: &str) -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", package])
        .stdout
        .starts_with(b"install ok")
}

fn getent(database: &str, key: &str) -> Option<String> {
    let out = run("getent", &[database, key]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Purges both packages when the test ends, passed or not.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "eic", "eic-agent"]);
    }
}

/// Both .debs at `version` (`0.1.0-1`…) in `out`, from the binaries
/// cargo test built (the eic-agent binary is built here if this test runs
/// alone).
fn build_debs(out: &Path, version: &str) -> Vec<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let eic = Path::new(env!("CARGO_BIN_EXE_eic"));
    let profile_dir = eic.parent().unwrap();
    let profile = profile_dir.file_name().unwrap().to_str().unwrap();
    let profile = if profile == "debug" { "dev" } else { profile };
    if !profile_dir.join("eic-agent").exists() {
        let status = Command::new(&cargo)
            .current_dir(repo_root())
            .args(["build", "--profile", profile, "-p", "eic-agent", "--bin"])
            .arg("eic-agent")
            .status()
            .unwrap();
        assert!(status.success());
    }
    PACKAGES
        .iter()
        .map(|package| {
            let deb = out.join(format!("{package}_{version}.deb"));
            let started = Instant::now();
            let status = Command::new(&cargo)
                .current_dir(repo_root())
                .args([
                    "deb",
                    "--no-build",
                    "--strip",
                    "--fast",
                    "--profile",
                    profile,
                    "-p",
                ])
                .arg(package)
                .arg("--deb-version")
                .arg(version)
                .arg("-o")
                .arg(&deb)
                .status()
                .unwrap();
            assert!(status.success(), "cargo deb -p {package}");
            eprintln!("cargo deb -p {package}: {:?}", started.elapsed());
            deb
        })
        .collect()
}

/// The help of one command as `binary` prints it, its own name taken out.
fn help(binary: &str, args: &[&str]) -> String {
    ok(binary, args)
        .replace("eic agent ", "")
        .replace("eic-agent ", "")
        .replace("eic ", "")
}

/// Starts the installed server as its unit would (user eic, the shipped
/// config; the API on a free port) and stops it once it listens.
fn the_server_starts_on_the_shipped_config() {
    // setpriv execs the server itself (runuser would fork and leave it
    // behind when killed), as user and group eic.
    let mut server = Command::new("setpriv")
        .args([
            "--reuid=eic",
            "--regid=eic",
            "--init-groups",
            "/usr/bin/eic",
            "server",
        ])
        .args([
            "--config",
            "/etc/eic/eic.toml",
            "--api-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let listening = rx
        .recv_timeout(Duration::from_secs(20))
        .is_ok_and(|line| line.starts_with("listening api 127.0.0.1:"));
    let _ = server.kill();
    let _ = server.wait();
    assert!(listening, "eic server did not listen on /etc/eic/eic.toml");
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

fn gid_of(group: &str) -> u32 {
    let entry = getent("group", group).unwrap_or_else(|| panic!("no group {group}"));
    entry.split(':').nth(2).unwrap().parse().unwrap()
}

fn unit_path(unit: &str) -> Option<PathBuf> {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(|dir| Path::new(dir).join(unit))
        .find(|p| p.exists())
}

fn sha256(path: &str) -> Option<String> {
    let out = run("sha256sum", &[path]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_packages_install_upgrade_and_purge() {
    let missing: Vec<&str> = [
        ("dpkg", &["--version"][..]),
        ("lintian", &["--version"][..]),
        ("cargo-deb", &["--version"][..]),
    ]
    .into_iter()
    .filter(|(program, probe)| !have(program, probe))
    .map(|(program, _)| program)
    .collect();
    if !missing.is_empty() || !is_root() {
        eprintln!(
            "skipped: packages need root, dpkg, lintian and cargo-deb (scripts/test.sh installs them); missing: {missing:?}"
        );
        return;
    }
    for package in PACKAGES {
        assert!(
            !installed(package),
            "{package} is installed on this machine: this test would replace and purge it"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let debs = build_debs(work.path(), "0.1.0-1");

    // lintian: every tag it reports is overridden in the package, with why
    // (packaging/debian/*.lintian-overrides, listed in packaging/README.md).
    for deb in &debs {
        let out = run(
            "lintian",
            &["--no-tag-display-limit", deb.to_str().unwrap()],
        );
        let report = String::from_utf8_lossy(&out.stdout);
        let complaints: Vec<&str> = report
            .lines()
            .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
            .collect();
        assert!(complaints.is_empty(), "{}:\n{report}", deb.display());
    }

    let sshd_config = sha256("/etc/ssh/sshd_config");
    let _purge = Purge;
    let deb_args = |debs: &[PathBuf], extra: &[&str]| {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend(debs.iter().map(|d| d.to_str().unwrap().to_owned()));
        args
    };
    let args = deb_args(&debs, &["-i"]);
    ok("dpkg", &args.iter().map(String::as_str).collect::<Vec<_>>());

    // The binaries answer, with the same commands and flags.
    assert_eq!(ok("/usr/bin/eic", &["--version"]).trim(), "eic 0.1.0");
    assert!(ok("/usr/bin/eic-agent", &["--help"]).contains("authorized-keys"));
    for (eic, agent) in [
        (
            &["authorized-keys", "--help"][..],
            &["authorized-keys", "--help"][..],
        ),
        (&["agent", "join", "--help"], &["join", "--help"]),
        (&["agent", "run", "--help"], &["run", "--help"]),
        (&["agent", "install", "--help"], &["install", "--help"]),
        (&["agent", "uninstall", "--help"], &["uninstall", "--help"]),
    ] {
        assert_eq!(
            help("/usr/bin/eic", eic),
            help("/usr/bin/eic-agent", agent),
            "{agent:?}"
        );
    }

    // The user, the data dir, the conffile and the units.
    let passwd = getent("passwd", "eic").expect("no user eic");
    assert!(passwd.contains(":/var/lib/eic:"), "{passwd}");
    let eic_gid = gid_of("eic");
    let data = std::fs::metadata("/var/lib/eic").unwrap();
    assert_eq!(data.gid(), eic_gid);
    assert_eq!(Some(data.uid().to_string()), getent_uid("eic"));
    assert_eq!(mode("/var/lib/eic"), 0o700);
    assert_eq!(mode("/etc/eic"), 0o750);
    assert_eq!(mode("/etc/eic/eic.toml"), 0o640);
    assert_eq!(
        std::fs::metadata("/etc/eic/eic.toml").unwrap().gid(),
        eic_gid
    );
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", "eic"]);
    assert!(conffiles.contains("/etc/eic/eic.toml"), "{conffiles}");
    for unit in ["eic.service", "eic-agent.service"] {
        assert!(unit_path(unit).is_some(), "{unit} not installed");
    }
    let agent_unit = std::fs::read_to_string(unit_path("eic-agent.service").unwrap()).unwrap();
    assert!(agent_unit.contains("ExecStart=/usr/bin/eic-agent run"));
    // eic-agent's postinst asked nothing of sshd.
    assert_eq!(sha256("/etc/ssh/sshd_config"), sshd_config);
    assert!(!Path::new("/etc/ssh/sshd_config.d/60-eic-instance-connect.conf").exists());

    the_server_starts_on_the_shipped_config();
    assert!(Path::new("/var/lib/eic/eic-data-dir").exists());

    // An upgrade keeps the operator's config and the data.
    let mut config = std::fs::read_to_string("/etc/eic/eic.toml").unwrap();
    config.push_str("# changed by the operator\n");
    std::fs::write("/etc/eic/eic.toml", &config).unwrap();
    let upgrade = build_debs(work.path(), "0.1.0-2");
    let args = deb_args(&upgrade, &["--force-confold", "-i"]);
    ok("dpkg", &args.iter().map(String::as_str).collect::<Vec<_>>());
    for package in PACKAGES {
        let version = ok("dpkg-query", &["-W", "-f=${Version}", package]);
        assert_eq!(version, "0.1.0-2", "{package}");
    }
    assert_eq!(
        std::fs::read_to_string("/etc/eic/eic.toml").unwrap(),
        config
    );
    assert_eq!(mode("/etc/eic/eic.toml"), 0o640);
    assert!(Path::new("/var/lib/eic/eic-data-dir").exists());
    assert!(getent("passwd", "eic").is_some());

    // A remove keeps the data and the user; a purge takes them.
    ok("dpkg", &["--remove", "eic", "eic-agent"]);
    assert!(!Path::new("/usr/bin/eic").exists());
    assert!(!Path::new("/usr/bin/eic-agent").exists());
    assert!(Path::new("/var/lib/eic/eic-data-dir").exists());
    assert!(getent("passwd", "eic").is_some());
    ok("dpkg", &["--purge", "eic", "eic-agent"]);
    for gone in ["/var/lib/eic", "/etc/eic"] {
        assert!(!Path::new(gone).exists(), "{gone} is still there");
    }
    assert!(unit_path("eic.service").is_none());
    assert!(unit_path("eic-agent.service").is_none());
    assert_eq!(getent("passwd", "eic"), None);
    assert_eq!(getent("group", "eic"), None);
    let overrides = ok("dpkg-statoverride", &["--list"]);
    assert!(!overrides.contains("/etc/eic"), "{overrides}");
    for package in PACKAGES {
        assert!(!installed(package));
    }
}

fn getent_uid(user: &str) -> Option<String> {
    getent("passwd", user).and_then(|e| e.split(':').nth(2).map(str::to_owned))
}

fn is_root() -> bool {
    run("id", &["-u"]).stdout.trim_ascii() == b"0"
}
