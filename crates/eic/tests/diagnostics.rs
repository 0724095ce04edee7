//! The diagnostics listener against real clients: boto3 calls move the
//! counters that Prometheus's own text parser (prometheus_client) reads
//! from `/metrics`; `/healthz` and `/readyz` answer in JSON.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use common::{run_python_with, Server};

#[test]
fn metrics_and_health_with_boto3() {
    let server = Server::start("");
    let diagnostics = server.diagnostics.to_string();
    run_python_with(
        "diagnostics_metrics.py",
        &server,
        &[("EIC_DIAGNOSTICS", std::ffi::OsStr::new(&diagnostics))],
    );
}

/// `/readyz` says 503 with the store's reason while Redis is down, and 200
/// once it is back; `/healthz` says the process is up throughout.
#[test]
fn readyz_follows_the_store() {
    use common::redis::RedisServer;
    let mut redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_full(data.path(), &[], "", &["--store-url", &redis.url()]);
    let get = |path: &str| -> (u16, serde_json::Value) {
        let mut stream = std::net::TcpStream::connect(server.diagnostics).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (status, _, body) = common::http_exchange(&mut stream, request.as_bytes()).unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    };
    common::wait_until(10, "ready with Redis up", || get("/readyz").0 == 200);
    redis.stop();
    common::wait_until(10, "unready with Redis down", || get("/readyz").0 == 503);
    let (_, reason) = get("/readyz");
    assert_eq!(reason["status"], "not ready", "{reason}");
    assert!(!reason["reason"].as_str().unwrap().is_empty(), "{reason}");
    assert_eq!(get("/healthz").0, 200);
    redis.spawn();
    common::wait_until(20, "ready with Redis back", || get("/readyz").0 == 200);
}
