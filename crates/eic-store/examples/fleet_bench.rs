//! The embedded fleet at 100,000 enrollments: how long the server takes to
//! open it, how much memory each instance costs, and how many unchanged
//! heartbeats it takes a second.
//!
//! `cargo run --release -p eic-store --example fleet_bench`
// A benchmark: a failure is a panic with its message, nothing to recover.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use eic_store::fleet::{Addresses, Enrollment, FleetState, InstanceChange, MachineFacts};
use eic_store::{EmbeddedFleet, Fleet};

const INSTANCES: u32 = 100_000;
const HEARTBEATS: u64 = 1_000_000;
const HEARTBEAT_TIME: Duration = Duration::from_secs(10);
const T0: u64 = 1_700_000_000_000;

/// Base64-looking text, different for every instance (as real keys are).
fn base64(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[(x >> 58) as usize] as char
        })
        .collect()
}

fn facts(n: u32) -> MachineFacts {
    let seed = u64::from(n) * 3;
    MachineFacts {
        hostname: format!(
            "ip-10-{}-{}-{}.ec2.internal",
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
        host_keys: vec![
            // 80, 160 and 561 characters: ed25519, ECDSA P-256, RSA 3072.
            format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{}", base64(seed, 43)),
            format!(
                "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBB{}",
                base64(seed + 1, 88)
            ),
            format!(
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ{}",
                base64(seed + 2, 523)
            ),
        ],
        os: "Debian GNU/Linux 13 (trixie)".into(),
        kernel: "6.12.38+deb13-cloud-amd64".into(),
    }
}

fn instance_id(n: u32) -> String {
    format!("i-{:017x}", 0x0abc_0000_0000_0000u64 | u64::from(n))
}

fn enrollment(n: u32) -> Enrollment {
    Enrollment {
        network: None,
        instance_id: instance_id(n),
        account: "111122223333".into(),
        token_id: "0f1e2d3c4b5a6978".into(),
        availability_zone: "us-east-1a".into(),
        instance_type: "t3.micro".into(),
        facts: facts(n),
        tags: BTreeMap::from([
            ("Name".to_owned(), format!("web-{n}")),
            ("env".to_owned(), "production".to_owned()),
            ("team".to_owned(), "payments".to_owned()),
        ])
        .into(),
        state: FleetState::Running,
        enrolled_at_ms: T0 + u64::from(n),
        updated_at_ms: T0 + u64::from(n),
    }
}

/// Resident memory, from /proc/self/status (in KiB there, whatever the
/// page size).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // Written as the documented format, not through `enroll`: 100,000
    // fdatasyncs would measure the disk, not the fleet.
    let started = Instant::now();
    let file = std::fs::File::create(dir.path().join("fleet.log")).unwrap();
    let mut log = BufWriter::new(file);
    for n in 0..INSTANCES {
        let record =
            serde_json::json!({"enroll": {"enrollment": enrollment(n), "at": T0 + u64::from(n)}});
        serde_json::to_writer(&mut log, &record).unwrap();
        log.write_all(b"\n").unwrap();
    }
    log.into_inner().unwrap().sync_all().unwrap();
    let log_bytes = std::fs::metadata(dir.path().join("fleet.log"))
        .unwrap()
        .len();
    println!(
        "wrote {INSTANCES} enrollments: {:.1} MB, {} bytes a line, in {:.2?}",
        log_bytes as f64 / 1e6,
        log_bytes / u64::from(INSTANCES),
        started.elapsed()
    );

    let before = resident_bytes();
    let started = Instant::now();
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    let open_time = started.elapsed();
    let after = resident_bytes();
    assert_eq!(fleet.all_enrolled().unwrap().len(), INSTANCES as usize);
    println!("open (replay): {open_time:.2?}");
    println!(
        "resident memory: {:.1} MB more, {} bytes an instance",
        (after - before) as f64 / 1e6,
        (after - before) / u64::from(INSTANCES)
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // A sample of instances heartbeating with what they enrolled with.
    let sample: Vec<(String, MachineFacts)> = (0..1_000)
        .map(|i| {
            let n = i * (INSTANCES / 1_000);
            (instance_id(n), facts(n))
        })
        .collect();
    let (count, elapsed) = runtime.block_on(async {
        let started = Instant::now();
        let mut count = 0u64;
        while count < HEARTBEATS && started.elapsed() < HEARTBEAT_TIME {
            for (id, facts) in &sample {
                fleet
                    .heartbeat(id, FleetState::Running, facts, T0 + 1_000_000 + count)
                    .await
                    .unwrap();
                count += 1;
            }
        }
        (count, started.elapsed())
    });
    println!(
        "unchanged heartbeats: {count} in {elapsed:.2?}, {:.0} a second",
        count as f64 / elapsed.as_secs_f64()
    );

    let changes = 200u32;
    let started = runtime.block_on(async {
        let started = Instant::now();
        for n in 0..changes {
            let tag = BTreeMap::from([("generation".to_owned(), n.to_string())]);
            fleet
                .change(&instance_id(n), InstanceChange::Tag(tag), T0 + 2_000_000)
                .await
                .unwrap();
        }
        started
    });
    let elapsed = started.elapsed();
    println!(
        "durable changes (tag, fdatasync each): {changes} in {elapsed:.2?}, {:.0} a second",
        f64::from(changes) / elapsed.as_secs_f64()
    );

    drop(fleet);
    let started = Instant::now();
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    println!("reopen: {:.2?}", started.elapsed());
    drop(fleet);
}
