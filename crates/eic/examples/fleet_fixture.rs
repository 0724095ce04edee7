//! The 100,000-instance fleet bench/fleet.sh measures a server on.
//!
//! `fleet_fixture DATA_DIR HEARTBEATS_FILE [REDIS_URL]`
//!
//! Makes `DATA_DIR` a server's data dir (marker, instance credentials key)
//! and enrolls 100,000 instances of account 111122223333, every tenth
//! tagged `team=blue`, each with realistic facts and three host keys: into
//! `DATA_DIR/fleet.log` in its documented format (crates/eic-store/src/
//! fleet/embedded.rs) without a REDIS_URL, else into that Redis through
//! `RedisFleet::enroll`. Writes `HEARTBEATS_FILE`: for 10,000 of them, one
//! line `credential<TAB>heartbeat body`, the body the facts they enrolled
//! with (so the server takes the heartbeat's unwritten path). Prints
//! `instance <id>`: an enrolled id for DescribeInstances by id.
// A fixture: a failure is a panic with its message, nothing to recover.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use eic::data_dir::{DataDir, SettingsFile};
use eic::enrollment::{HeartbeatRequest, ReportedFacts, ReportedState};
use eic::instance_credentials::InstanceCredentials;
use eic_store::fleet::{Addresses, Enrollment, FleetState, MachineFacts};
use eic_store::{unix_millis, Fleet};
use eic_store_redis::{RedisConnection, RedisFleet, DEFAULT_OP_TIMEOUT};

const INSTANCES: u32 = 100_000;
const HEARTBEATING: u32 = 10_000;
const IN_FLIGHT: usize = 64;

/// Pseudo-random bytes, different for every seed (as real keys are).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// `type base64` of an SSH public key blob made of these strings: real
/// wire shape, so the heartbeat's validation (which decodes the blob and
/// checks the type inside) accepts it and re-encodes it unchanged.
fn host_key(kind: &str, fields: &[&[u8]]) -> String {
    let mut blob = Vec::new();
    for field in std::iter::once(&kind.as_bytes()).chain(fields) {
        blob.extend_from_slice(&(field.len() as u32).to_be_bytes());
        blob.extend_from_slice(field);
    }
    format!("{kind} {}", STANDARD.encode(blob))
}

/// As crates/eic-store/examples/fleet_bench.rs's, with host keys that are
/// valid blobs (its random base64 is refused by a heartbeat).
fn facts(n: u32) -> MachineFacts {
    let seed = u64::from(n) * 3;
    let ecdsa_point = [&[4u8][..], &bytes(seed + 1, 64)].concat();
    let rsa_modulus = [&[0u8, 0xc1][..], &bytes(seed + 2, 383)].concat();
    MachineFacts {
        hostname: format!(
            "ip-10-{}-{}-{}.us-west-2.compute.internal",
            n >> 16,
            (n >> 8) & 255,
            n & 255
        ),
        addresses: Addresses {
            private_ipv4: Some(Ipv4Addr::from(0x7f00_0000 | n)),
            public_ipv4: Some(Ipv4Addr::from(0x7f80_0000 | n)),
            ipv6: None,
            ssh_port: 22,
        },
        // ed25519, ECDSA P-256, RSA 3072: 80, 160 and 552 characters.
        host_keys: vec![
            host_key("ssh-ed25519", &[&bytes(seed, 32)]),
            host_key("ecdsa-sha2-nistp256", &[b"nistp256", &ecdsa_point]),
            host_key("ssh-rsa", &[&[1, 0, 1], &rsa_modulus]),
        ],
        os: "Debian GNU/Linux 13 (trixie)".into(),
        kernel: "6.12.38+deb13-cloud-amd64".into(),
    }
}

fn instance_id(n: u32) -> String {
    format!("i-{:017x}", 0x0abc_0000_0000_0000u64 | u64::from(n))
}

fn enrollment(n: u32, now_ms: u64) -> Enrollment {
    let team = if n.is_multiple_of(10) {
        "blue"
    } else {
        "payments"
    };
    Enrollment {
        network: None,
        instance_id: instance_id(n),
        account: "111122223333".into(),
        token_id: "0f1e2d3c4b5a6978".into(),
        availability_zone: format!("us-west-2{}", ['a', 'b', 'c'][n as usize % 3]),
        instance_type: "t3.micro".into(),
        facts: facts(n),
        tags: BTreeMap::from([
            ("Name".to_owned(), format!("web-{n}")),
            ("env".to_owned(), "production".to_owned()),
            ("team".to_owned(), team.to_owned()),
        ])
        .into(),
        state: FleetState::Running,
        enrolled_at_ms: now_ms,
        updated_at_ms: now_ms,
    }
}

/// What the agent would send for instance `n`: the facts it enrolled with.
fn heartbeat_body(n: u32) -> String {
    let f = facts(n);
    let request = HeartbeatRequest {
        state: ReportedState::Running,
        facts: ReportedFacts {
            hostname: f.hostname,
            private_ip_address: f.addresses.private_ipv4,
            public_ip_address: f.addresses.public_ipv4,
            ipv6_address: f.addresses.ipv6,
            ssh_port: f.addresses.ssh_port,
            host_keys: f.host_keys,
            os: f.os,
            kernel: f.kernel,
        },
    };
    let body = serde_json::to_string(&request).unwrap();
    // The cheap path compares what validation makes of it with what is
    // stored: a mismatch here would make every heartbeat a durable write.
    assert_eq!(eic::enrollment::validate(&request.facts).unwrap(), facts(n));
    body
}

/// Written as the documented format, not through `enroll`: 100,000
/// fdatasyncs would take minutes and make the same file.
fn write_log(data_dir: &Path, now_ms: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(data_dir.join("fleet.log"))
        .unwrap();
    let mut log = BufWriter::new(file);
    for n in 0..INSTANCES {
        let record =
            serde_json::json!({"enroll": {"enrollment": enrollment(n, now_ms), "at": now_ms}});
        serde_json::to_writer(&mut log, &record).unwrap();
        log.write_all(b"\n").unwrap();
    }
    log.into_inner().unwrap().sync_all().unwrap();
}

/// Through the Redis fleet's own enroll script, so every key (record,
/// last-seen, change stream) is what a join writes; seen now, so the
/// server does not load them connection-lost.
async fn enroll_redis(url: String, now_ms: u64) {
    let connection = RedisConnection::connect(&[url], DEFAULT_OP_TIMEOUT)
        .await
        .unwrap();
    let fleet = Arc::new(RedisFleet::new(connection));
    fleet.refresh().await.unwrap();
    assert!(
        fleet.all_enrolled().unwrap().is_empty(),
        "this Redis already holds a fleet"
    );
    let next = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (fleet, next) = (fleet.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= INSTANCES {
                        return;
                    }
                    fleet.enroll(enrollment(n, now_ms), now_ms).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (data_dir, heartbeats, redis_url) = match args.as_slice() {
        [d, h] => (d, h, None),
        [d, h, r] => (d, h, Some(r.clone())),
        _ => panic!("usage: fleet_fixture DATA_DIR HEARTBEATS_FILE [REDIS_URL]"),
    };
    let data_dir = DataDir::for_server(Path::new(data_dir)).unwrap();
    // Generation 0 (no setting yet) on either store: the credential a
    // first join hands out.
    let credentials = InstanceCredentials::load(
        &data_dir,
        Arc::new(SettingsFile::new(
            data_dir.path().join("instance-credentials.json"),
        )),
    )
    .unwrap();
    let now_ms = unix_millis(std::time::SystemTime::now());
    match redis_url {
        None => write_log(data_dir.path(), now_ms),
        Some(url) => tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(enroll_redis(url, now_ms)),
    }

    let mut out = BufWriter::new(std::fs::File::create(heartbeats).unwrap());
    for i in 0..HEARTBEATING {
        let n = i * (INSTANCES / HEARTBEATING) + 7;
        let credential = credentials.credential(&instance_id(n)).unwrap();
        writeln!(out, "{}\t{}", credential.expose(), heartbeat_body(n)).unwrap();
    }
    out.flush().unwrap();
    println!("instance {}", instance_id(54_321));
}
