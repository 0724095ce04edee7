//! Against a real primary, replica and three Sentinels: the store follows
//! the master the Sentinels name across a failover.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::time::{Duration, SystemTime};

use common::{eventually, key, user, SentinelGroup};
use eic_store::Store;
use eic_store_redis::RedisStore;

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_the_master_across_a_failover() {
    let mut group = SentinelGroup::start();
    let store = RedisStore::connect(&[group.url()]).await.expect("connect");
    let now = SystemTime::now();
    let ec2 = user("ec2-user");
    store
        .push(key(1, "i-sen", ec2.clone(), now, 60 * SEC))
        .await
        .unwrap();
    let ids = |keys: Vec<eic_store::PushedKey>| -> Vec<String> {
        keys.into_iter().map(|k| k.request_id).collect()
    };
    assert_eq!(
        ids(store.live_keys("i-sen", &ec2, now).await.unwrap()),
        ["req-1"]
    );

    // Replication is asynchronous (eic does not WAIT); here the test waits,
    // so that what the replica holds is known when the primary dies.
    assert_eq!(group.primary.cli(&["WAIT", "1", "5000"]), "1");
    let replica = group.replica.port.to_string();
    group.primary.stop();
    // Unavailable while the Sentinels agree the primary is gone and promote
    // the replica; then served by the new master without a restart.
    eventually(60 * SEC, "pushes to succeed after the failover", || async {
        store
            .push(key(2, "i-sen", ec2.clone(), now, 60 * SEC))
            .await
            .is_ok()
    })
    .await;
    assert_eq!(group.master_port(), replica);
    assert_eq!(
        ids(store.live_keys("i-sen", &ec2, now).await.unwrap()),
        ["req-1", "req-2"]
    );
    assert!(store.ready().await.is_ok());
}
