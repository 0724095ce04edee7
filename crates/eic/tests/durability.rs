//! kill -9 durability: every push answered 200 is found by a restart on the
//! same data dir until its expiry, and not after.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{live_keys, run_python, Server, NO_THROTTLING};

#[test]
fn pushes_acknowledged_before_kill_9_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), NO_THROTTLING);
    run_python("push_many.py", &server);
    let pushed: Vec<String> = std::fs::read_to_string(data.path().join("pushed.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(pushed.len(), 50);
    server.kill9();

    let server = Server::start_in(data.path(), NO_THROTTLING);
    let keys = live_keys(data.path(), None);
    for request_id in &pushed {
        assert!(
            keys.iter().any(|k| k["request_id"] == request_id.as_str()),
            "acknowledged push {request_id} lost by kill -9"
        );
    }
    // The restarted server keeps serving and storing.
    run_python("push_many.py", &server);
    assert_eq!(live_keys(data.path(), None).len(), 100);

    // Past their 60 seconds none is live, without waiting for it.
    let latest_expiry = keys
        .iter()
        .map(|k| k["expires_at_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(latest_expiry / 1000 <= now + 61);
    assert!(live_keys(data.path(), Some(latest_expiry / 1000 + 62)).is_empty());

    // A SIGTERM drains and exits 0.
    assert!(server.terminate().success());
}
