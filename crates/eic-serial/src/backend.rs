//! Where an instance's serial console is and how to open it.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::process::Child;
use tokio::time::timeout;

/// An instance's serial console; in the configuration, `{ kind = "tcp",
/// address = "host:port" }`, `{ kind = "unix", path = "…" }` or `{ kind =
/// "command", program = "virsh", args = ["console", "DOMAIN"] }`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ConsoleBackend {
    /// A TCP serial server (`host:port`): ser2net, QEMU `-serial tcp:…,server`.
    Tcp { address: String },
    /// A Unix stream socket: QEMU `-serial unix:…,server`, libvirt, Firecracker.
    Unix { path: PathBuf },
    /// A program that attaches to the console on its terminal, run on a
    /// pseudo-terminal for the length of the session: `virsh console DOMAIN`,
    /// `ipmitool … sol activate`.
    Command {
        program: String,
        #[serde(default)]
        args: Vec<String>,
    },
}

/// Lookup from instance id to its console.
pub trait Backends: Send + Sync {
    fn backend(&self, instance_id: &str) -> Option<ConsoleBackend>;
}

impl Backends for HashMap<String, ConsoleBackend> {
    fn backend(&self, instance_id: &str) -> Option<ConsoleBackend> {
        self.get(instance_id).cloned()
    }
}

/// Checks that a console can be reached, so the API can answer
/// `SerialConsoleSessionUnavailableException` before a key is pushed.
///
/// TCP and Unix backends are connected to and released at once (a console
/// server that takes one client at a time sees a brief client). A command
/// is not run (that would take the console), only found on disk or `PATH`.
pub async fn probe_backend(backend: &ConsoleBackend, limit: Duration) -> Result<(), String> {
    match backend {
        ConsoleBackend::Tcp { .. } | ConsoleBackend::Unix { .. } => {
            open(backend, limit).await.map(drop)
        }
        ConsoleBackend::Command { program, .. } => find_program(program)
            .map(drop)
            .ok_or_else(|| format!("{program}: no such executable")),
    }
}

/// An open console: its two directions, and for a command the process,
/// which `kill_on_drop` ends with the session.
pub(crate) struct Console {
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    pub _process: Option<Child>,
}

/// Opens the console within `limit`. The error is a short reason fit for
/// the client's terminal: it never names the backend address.
pub(crate) async fn open(backend: &ConsoleBackend, limit: Duration) -> Result<Console, String> {
    let timed_out = || "timed out".to_string();
    match backend {
        ConsoleBackend::Tcp { address } => {
            let stream = timeout(limit, TcpStream::connect(address.as_str()))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| e.to_string())?;
            // Keystrokes must not wait for Nagle's algorithm.
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (reader, writer) = stream.into_split();
            Ok(Console {
                reader: Box::new(reader),
                writer: Box::new(writer),
                _process: None,
            })
        }
        ConsoleBackend::Unix { path } => {
            let stream = timeout(limit, UnixStream::connect(path))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| e.to_string())?;
            let (reader, writer) = stream.into_split();
            Ok(Console {
                reader: Box::new(reader),
                writer: Box::new(writer),
                _process: None,
            })
        }
        ConsoleBackend::Command { program, args } => {
            let (pty, pts) = pty_process::open().map_err(|e| e.to_string())?;
            // A pty starts at 0x0; some console programs misbehave on that.
            pty.resize(pty_process::Size::new(24, 80))
                .map_err(|e| e.to_string())?;
            let child = pty_process::Command::new(program)
                .args(args)
                .kill_on_drop(true)
                .spawn(pts)
                .map_err(|e| format!("{program}: {e}"))?;
            let (reader, writer) = pty.into_split();
            Ok(Console {
                reader: Box::new(reader),
                writer: Box::new(writer),
                _process: Some(child),
            })
        }
    }
}

fn find_program(program: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let up = ConsoleBackend::Tcp {
            address: address.clone(),
        };
        assert_eq!(probe_backend(&up, Duration::from_secs(5)).await, Ok(()));
        drop(listener);
        assert!(probe_backend(&up, Duration::from_secs(5)).await.is_err());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.sock");
        let missing = ConsoleBackend::Unix { path: path.clone() };
        assert!(probe_backend(&missing, Duration::from_secs(5))
            .await
            .is_err());
        let _listener = tokio::net::UnixListener::bind(&path).expect("bind unix");
        assert_eq!(
            probe_backend(&missing, Duration::from_secs(5)).await,
            Ok(())
        );

        let sh = ConsoleBackend::Command {
            program: "sh".into(),
            args: vec![],
        };
        assert_eq!(probe_backend(&sh, Duration::from_secs(5)).await, Ok(()));
        let nope = ConsoleBackend::Command {
            program: "/nonexistent/virsh".into(),
            args: vec![],
        };
        assert!(probe_backend(&nope, Duration::from_secs(5)).await.is_err());
    }
}
