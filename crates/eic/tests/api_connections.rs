//! The API listener serves at most `[api] max_connections` connections at
//! once; the next one waits, unanswered, until a slot frees.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[(
            "listen = \"127.0.0.1:8080\"",
            "listen = \"127.0.0.1:8080\"\nmax_connections = 1",
        )],
        "",
    );
    let ready = b"GET /ready HTTP/1.1\r\nHost: eic\r\nConnection: close\r\n\r\n";

    // The first connection holds the only slot; it proves it is being
    // served by getting an answer on a keep-alive request.
    let mut first = TcpStream::connect(server.api).unwrap();
    first
        .write_all(b"GET /ready HTTP/1.1\r\nHost: eic\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 12];
    first.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");

    let mut second = TcpStream::connect(server.api).unwrap();
    second.write_all(ready).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = second.read(&mut byte).unwrap_err();
    assert!(
        matches!(waited.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{waited:?}"
    );

    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    second.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
