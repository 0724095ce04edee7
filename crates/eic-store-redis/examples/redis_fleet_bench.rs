//! A 100,000-machine fleet on Redis: how long a node takes to load it,
//! what it costs in memory, and how many unchanged heartbeats it serves.
//!
//! `REDIS_URL=redis://127.0.0.1:PORT cargo run --release -p eic-store-redis --example redis_fleet_bench`
//!
//! Needs a redis-server on loopback with no fleet in it (e.g.
//! `redis-server --port 6390 --save '' --appendonly no`); it enrolls
//! `FLEET_BENCH_INSTANCES` (100,000) machines with three host keys
//! (ed25519, ECDSA P-256, RSA-3072 lengths) and three tags, and deletes the
//! fleet's keys when done. Then:
//!
//! - full load: a fresh `RedisFleet`'s first refresh, timed;
//! - memory: the process's VmRSS before and after that load, per machine;
//! - for reference, the records' HSCAN alone and their decoding alone;
//! - heartbeats: unchanged facts, 64 in flight, until 200,000 calls or
//!   10 s, with the view refreshed every 250 ms meanwhile.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eic_store::fleet::{Addresses, Enrollment, FleetState, HeartbeatOutcome, MachineFacts};
use eic_store::Fleet;
use eic_store_redis::{RedisConnection, RedisFleet, FLEET_REFRESH};

const T0: u64 = 1_800_000_000_000;
const IN_FLIGHT: usize = 64;
const HEARTBEATS: u64 = 200_000;
const HEARTBEAT_TIME: Duration = Duration::from_secs(10);
const FLEET_KEYS: [&str; 4] = [
    "eic:{fleet}:instances",
    "eic:{fleet}:seen",
    "eic:{fleet}:changes",
    "eic:{fleet}:tokens",
];

/// Pseudo-random base64 of `len` characters, different for every seed.
fn base64(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
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
            private_ipv4: Some([127, (n >> 16) as u8, (n >> 8) as u8, n as u8].into()),
            public_ipv4: Some([127, 128 | (n >> 16) as u8, (n >> 8) as u8, n as u8].into()),
            ipv6: None,
            ssh_port: 22,
        },
        host_keys: vec![
            // 68 base64 characters: 80 with the type.
            format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{}", base64(seed, 43)),
            format!(
                "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBB{}",
                base64(seed + 1, 95)
            ),
            format!(
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ{}",
                base64(seed + 2, 518)
            ),
        ],
        os: "Debian GNU/Linux 13 (trixie)".into(),
        kernel: "6.12.0-1-amd64".into(),
    }
}

fn enrollment(n: u32) -> Enrollment {
    Enrollment {
        network: None,
        instance_id: format!("i-{n:017x}"),
        account: "111122223333".into(),
        token_id: "0123456789abcdef".into(),
        availability_zone: "eu-west-3a".into(),
        instance_type: "m7i.large".into(),
        facts: facts(n),
        tags: BTreeMap::from([
            ("Name".into(), format!("web-{n}")),
            ("env".into(), "production".into()),
            ("team".into(), "payments-platform".into()),
        ])
        .into(),
        state: FleetState::Running,
        enrolled_at_ms: T0,
        updated_at_ms: T0,
    }
}

/// This process's resident set, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

async fn redis<T: redis::FromRedisValue>(connection_url: &str, args: &[&str]) -> T {
    let client = redis::Client::open(connection_url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let host = url
        .strip_prefix("redis://")
        .and_then(|rest| rest.rsplit('@').next())
        .and_then(|rest| rest.split(':').next());
    assert_eq!(
        host,
        Some("127.0.0.1"),
        "a loopback redis:// URL only: {url}"
    );
    let instances: u32 = std::env::var("FLEET_BENCH_INSTANCES")
        .map(|n| n.parse().unwrap())
        .unwrap_or(100_000);
    let existing: u64 = redis(
        &url,
        &["EXISTS", FLEET_KEYS[0], FLEET_KEYS[1], FLEET_KEYS[2]],
    )
    .await;
    assert_eq!(
        existing, 0,
        "this Redis already holds a fleet; use an empty one"
    );
    let connect = || async {
        RedisConnection::connect(std::slice::from_ref(&url), Duration::from_secs(2))
            .await
            .unwrap()
    };

    let writer = Arc::new(RedisFleet::new(connect().await));
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (writer, next) = (writer.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= u64::from(instances) {
                    return;
                }
                let n = n as u32;
                writer
                    .enroll(enrollment(n), T0 + u64::from(n))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let enroll_time = started.elapsed();
    let used: u64 = redis(&url, &["MEMORY", "USAGE", FLEET_KEYS[0], "SAMPLES", "0"]).await;
    let json_len = serde_json::to_string(&enrollment(1)).unwrap().len();
    println!(
        "enrolled {instances} instances in {:.2} s ({:.0}/s, {IN_FLIGHT} in flight); \
         record JSON {json_len} B; Redis hash {:.1} MB ({:.0} B per instance)",
        enroll_time.as_secs_f64(),
        f64::from(instances) / enroll_time.as_secs_f64(),
        used as f64 / 1e6,
        used as f64 / f64::from(instances)
    );

    let node = Arc::new(RedisFleet::new(connect().await));
    let before = rss();
    let started = Instant::now();
    node.refresh().await.unwrap();
    let load_time = started.elapsed();
    let after = rss();
    let loaded = node.all_enrolled().unwrap().len();
    assert_eq!(loaded, instances as usize);
    println!(
        "full load of a fresh view: {loaded} instances in {:.3} s; \
         RSS {:.1} MB -> {:.1} MB, {:.0} B per instance",
        load_time.as_secs_f64(),
        before as f64 / 1e6,
        after as f64 / 1e6,
        (after.saturating_sub(before)) as f64 / f64::from(instances)
    );

    // For reference: the records' transfer alone, without decoding.
    let started = Instant::now();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let (mut cursor, mut bytes) = (0u64, 0usize);
    let mut records = Vec::new();
    loop {
        let (next, batch): (u64, Vec<(String, Vec<u8>)>) = redis::cmd("HSCAN")
            .arg(FLEET_KEYS[0])
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .unwrap();
        bytes += batch.iter().map(|(_, json)| json.len()).sum::<usize>();
        records.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    println!(
        "HSCAN of the records alone: {:.1} MB in {:.3} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let decoded: Vec<Enrollment> = records
        .iter()
        .map(|(_, json)| serde_json::from_slice(json).unwrap())
        .collect();
    println!(
        "decoding them alone: {} in {:.3} s",
        decoded.len(),
        started.elapsed().as_secs_f64()
    );
    drop((decoded, records));

    // Refreshed as RedisFleet::start would, so heartbeats read a fresh view.
    let refresher = {
        let node = node.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLEET_REFRESH);
            loop {
                tick.tick().await;
                node.refresh().await.unwrap();
            }
        })
    };
    let calls = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..IN_FLIGHT as u64 {
        let (node, calls) = (node.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut x = worker + 1;
            loop {
                let call = calls.fetch_add(1, Ordering::Relaxed);
                if call >= HEARTBEATS || started.elapsed() >= HEARTBEAT_TIME {
                    return latencies;
                }
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let n = ((x >> 33) % u64::from(instances)) as u32;
                let facts = facts(n);
                let id = format!("i-{n:017x}");
                let t = Instant::now();
                let outcome = node
                    .heartbeat(&id, FleetState::Running, &facts, T0 + 1_000_000 + call)
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
                assert!(
                    matches!(outcome, HeartbeatOutcome::Recorded { .. }),
                    "{outcome:?}"
                );
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    refresher.abort();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let changes: u64 = redis(&url, &["XLEN", FLEET_KEYS[2]]).await;
    println!(
        "heartbeats (unchanged facts, {IN_FLIGHT} in flight): {} in {:.2} s = {:.0}/s; \
         latency p50 {:?} p99 {:?}; change entries {changes} (one per enrollment)",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.99),
    );

    redis::<u64>(
        &url,
        &[
            "DEL",
            FLEET_KEYS[0],
            FLEET_KEYS[1],
            FLEET_KEYS[2],
            FLEET_KEYS[3],
        ],
    )
    .await;
}
