//! Against a real three-master Redis Cluster.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, key, user, Cluster};
use eic_store::{BucketRate, KeyTarget, PortState, SessionLocks, Settings, Store};
use eic_store_redis::{RedisSessionLocks, RedisSettings, RedisStore};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_buckets_and_locks_through_a_cluster() {
    let cluster = Cluster::start();
    let store = RedisStore::connect(&[cluster.url()])
        .await
        .expect("connect");
    assert!(store.connection().is_cluster());
    let now = SystemTime::now();
    let ec2 = user("ec2-user");

    // Enough instances to land on every master.
    let instances: Vec<String> = (0..12).map(|n| format!("i-{n:08x}")).collect();
    for (n, instance) in instances.iter().enumerate() {
        let n = n as u32;
        store
            .push(key(n * 10, instance, ec2.clone(), now, 60 * SEC))
            .await
            .unwrap();
        store
            .push(key(n * 10 + 1, instance, ec2.clone(), now + SEC, 60 * SEC))
            .await
            .unwrap();
        store
            .push(key(
                n * 10 + 2,
                instance,
                KeyTarget::SerialPort(0),
                now,
                60 * SEC,
            ))
            .await
            .unwrap();
        store
            .push(key(
                n * 10 + 3,
                instance,
                ec2.clone(),
                now - 120 * SEC,
                60 * SEC,
            ))
            .await
            .unwrap();
    }
    let mut masters_used = std::collections::HashSet::new();
    for (n, instance) in instances.iter().enumerate() {
        let live = store.live_keys(instance, &ec2, now).await.unwrap();
        let ids: Vec<String> = live.iter().map(|k| k.request_id.clone()).collect();
        assert_eq!(
            ids,
            [format!("req-{}", n * 10), format!("req-{}", n * 10 + 1)]
        );
        let serial = store
            .live_keys(instance, &KeyTarget::SerialPort(0), now)
            .await
            .unwrap();
        assert_eq!(serial.len(), 1);
        assert!(store
            .live_keys(instance, &ec2, now + 62 * SEC)
            .await
            .unwrap()
            .is_empty());
        let set = format!("eic:{{{instance}}}:keys:user:ec2-user");
        for (i, node) in cluster.nodes.iter().enumerate() {
            if node.cli(&["EXISTS", &set]) == "1" {
                masters_used.insert(i);
                // The lock key of the instance lives on the same node.
                let lock = format!("eic:{{{instance}}}:serial:0");
                assert_eq!(
                    node.cli(&["CLUSTER", "KEYSLOT", &set]),
                    node.cli(&["CLUSTER", "KEYSLOT", &lock])
                );
            }
        }
    }
    assert_eq!(masters_used.len(), 3, "keys spread over the masters");

    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let rate = BucketRate {
        rate: 1.0,
        burst: 2.0,
    };
    for name in ["a", "b", "c", "d"] {
        assert!(store.take_token(name, rate, t0).await.unwrap());
        assert!(store.take_token(name, rate, t0).await.unwrap());
        assert!(!store.take_token(name, rate, t0).await.unwrap());
        assert!(store.take_token(name, rate, t0 + SEC).await.unwrap());
    }

    let node_a = RedisSessionLocks::new(store.connection().clone(), SEC, SEC);
    let other = RedisStore::connect(&[cluster.url()]).await.unwrap();
    let node_b = RedisSessionLocks::new(other.connection().clone(), SEC, SEC);
    let mut leases = Vec::new();
    for instance in &instances {
        leases.push(
            node_a
                .try_acquire(instance, 0)
                .await
                .unwrap()
                .expect("free"),
        );
        assert!(node_b.try_acquire(instance, 0).await.unwrap().is_none());
    }
    // Renewed past one lease period.
    let start = std::time::Instant::now();
    while start.elapsed() < 2 * SEC {
        assert_eq!(
            node_b.port_state(&instances[0], 0).await.unwrap(),
            PortState::InSession
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(leases);
    for instance in &instances {
        assert_ne!(
            node_b.port_state(instance, 0).await.unwrap(),
            PortState::Free,
            "teardown"
        );
    }
    for instance in &instances {
        eventually(5 * SEC, "teardown end", || async {
            node_b.port_state(instance, 0).await.unwrap() == PortState::Free
        })
        .await;
        assert!(node_b.try_acquire(instance, 0).await.unwrap().is_some());
    }

    // Runtime settings: one map's hash and version share a slot, so its
    // scripts run on a cluster; a change through one node reaches another.
    let command = RedisSettings::new(other.connection().clone(), "access");
    let node = RedisSettings::watched(store.connection().clone(), "access");
    command.set("111122223333", true.into()).await.unwrap();
    assert_eq!(command.increment("i-abc").await.unwrap(), 1);
    eventually(5 * SEC, "the change reaches the other node", || async {
        node.get("111122223333").ok() == Some(Some(true.into()))
            && node.get("i-abc").ok() == Some(Some(1.into()))
    })
    .await;
}
