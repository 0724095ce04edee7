//! The serial console's peers: socat playing a machine's console, and the
//! real `ssh` client in a session through the gateway.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{wait_until, Server};

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// socat playing a machine's console: a shell on a pty per connection.
pub fn console_backend() -> (Killed, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg("EXEC:/bin/sh,pty,stderr,setsid,sane")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat is installed");
    let addr = format!("127.0.0.1:{port}");
    wait_until(10, "socat to listen", || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    (Killed(child), addr)
}

/// A real `ssh` client in a serial console session.
pub struct Session {
    pub ssh: Killed,
    pub stdin: ChildStdin,
    output: mpsc::Receiver<String>,
}

/// `ssh <instance>.port0@` the server's gateway with `key`.
pub fn ssh_serial(server: &Server, key: &Path, instance: &str) -> Session {
    let mut child = Command::new("ssh")
        .args(["-p", &server.serial.port().to_string(), "-i"])
        .arg(key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            &format!("{instance}.port0@127.0.0.1"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let (tx, output) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    Session {
        ssh: Killed(child),
        stdin,
        output,
    }
}

impl Session {
    /// Whether a line containing `needle` arrives within 20 s.
    pub fn expect(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.output.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    pub fn exit_code(mut self) -> Option<i32> {
        self.ssh.0.wait().ok()?.code()
    }
}
