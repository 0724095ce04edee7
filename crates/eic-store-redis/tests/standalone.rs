//! Against a real standalone redis-server.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{eventually, key, user, RedisServer};
use eic_store::{BucketRate, KeyTarget, PortState, SessionLocks, Settings, Store, StoreError};
use eic_store_redis::{
    RedisConnection, RedisSessionLocks, RedisSettings, RedisStore, SETTINGS_STALENESS,
};

const SEC: Duration = Duration::from_secs(1);

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&[server.url()]).await.expect("connect")
}

fn ids(keys: &[eic_store::PushedKey]) -> Vec<&str> {
    keys.iter().map(|k| k.request_id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_live_for_their_time_by_the_callers_clock() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let now = SystemTime::now();
    let ec2 = user("ec2-user");
    store
        .push(key(1, "i-abc", ec2.clone(), now, 60 * SEC))
        .await
        .unwrap();
    store
        .push(key(2, "i-abc", ec2.clone(), now + SEC, 60 * SEC))
        .await
        .unwrap();
    store
        .push(key(3, "i-abc", user("root"), now, 60 * SEC))
        .await
        .unwrap();
    store
        .push(key(4, "i-abc", KeyTarget::SerialPort(0), now, 60 * SEC))
        .await
        .unwrap();
    store
        .push(key(5, "i-other", ec2.clone(), now, 60 * SEC))
        .await
        .unwrap();

    let live = store.live_keys("i-abc", &ec2, now).await.unwrap();
    assert_eq!(
        ids(&live),
        ["req-1", "req-2"],
        "several live at once, oldest first"
    );
    assert_eq!(live[0], key(1, "i-abc", ec2.clone(), now, 60 * SEC));
    let root = store.live_keys("i-abc", &user("root"), now).await.unwrap();
    assert_eq!(ids(&root), ["req-3"]);
    let serial = store
        .live_keys("i-abc", &KeyTarget::SerialPort(0), now)
        .await
        .unwrap();
    assert_eq!(ids(&serial), ["req-4"]);
    assert!(store
        .live_keys("i-abc", &KeyTarget::SerialPort(1), now)
        .await
        .unwrap()
        .is_empty());
    // By the caller's clock, whatever Redis's TTL says.
    let later = store
        .live_keys("i-abc", &ec2, now + Duration::from_millis(60_500))
        .await
        .unwrap();
    assert_eq!(ids(&later), ["req-2"]);
    assert!(store
        .live_keys("i-abc", &ec2, now + 61 * SEC)
        .await
        .unwrap()
        .is_empty());
    // A retried push (same request) is stored once.
    store
        .push(key(1, "i-abc", ec2.clone(), now, 60 * SEC))
        .await
        .unwrap();
    assert_eq!(store.live_keys("i-abc", &ec2, now).await.unwrap().len(), 2);
    // Hash tag: one instance's keys share a slot.
    assert_eq!(
        server.cli(&["CLUSTER", "KEYSLOT", "eic:{i-abc}:keys:user:ec2-user"]),
        server.cli(&["CLUSTER", "KEYSLOT", "eic:{i-abc}:serial:0"])
    );
    let ttl: i64 = server
        .cli(&["PTTL", "eic:{i-abc}:keys:user:ec2-user"])
        .parse()
        .unwrap();
    assert!(
        ttl > 60_000 && ttl <= 91_000,
        "set expires by Redis TTL too: {ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_key_is_not_served_before_redis_ttl_elapses() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let now = SystemTime::now();
    let ec2 = user("ec2-user");
    // Pushed two minutes ago (by a node's clock), expired a minute ago.
    store
        .push(key(9, "i-late", ec2.clone(), now - 120 * SEC, 60 * SEC))
        .await
        .unwrap();
    assert_eq!(
        server.cli(&["ZCARD", "eic:{i-late}:keys:user:ec2-user"]),
        "1"
    );
    let ttl: i64 = server
        .cli(&["PTTL", "eic:{i-late}:keys:user:ec2-user"])
        .parse()
        .unwrap();
    assert!(ttl > 0, "Redis still holds it");
    assert!(store
        .live_keys("i-late", &ec2, now)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .live_keys("i-late", &ec2, now - 61 * SEC)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_burst_and_refill() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let rate = BucketRate {
        rate: 2.0,
        burst: 3.0,
    };
    for _ in 0..3 {
        assert!(store.take_token("api:a", rate, t0).await.unwrap());
    }
    assert!(!store.take_token("api:a", rate, t0).await.unwrap());
    assert!(
        store.take_token("api:b", rate, t0).await.unwrap(),
        "separate buckets"
    );
    let ms = Duration::from_millis;
    assert!(!store.take_token("api:a", rate, t0 + ms(499)).await.unwrap());
    assert!(store.take_token("api:a", rate, t0 + ms(500)).await.unwrap());
    assert!(!store.take_token("api:a", rate, t0 + ms(500)).await.unwrap());
    // A clock going back takes nothing extra.
    assert!(!store.take_token("api:a", rate, t0).await.unwrap());
    let ttl: i64 = server.cli(&["PTTL", "eic:{bucket:api:a}"]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 2_500 + 1_000, "expires when full: {ttl}");
    // Long after: full again, burst available.
    let later = t0 + Duration::from_secs(100);
    for _ in 0..3 {
        assert!(store.take_token("api:a", rate, later).await.unwrap());
    }
    assert!(!store.take_token("api:a", rate, later).await.unwrap());
}

/// Calls of the token script so far (EVALSHA, and EVAL the first time).
fn bucket_round_trips(server: &RedisServer) -> u64 {
    server
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_bucket_is_leased_but_two_nodes_never_admit_more_than_its_burst() {
    let server = RedisServer::start();
    let (a, b) = (store(&server).await, store(&server).await);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // A tenth of a second of rate is 100 tokens, an eighth of the burst 100.
    let busy = BucketRate {
        rate: 1000.0,
        burst: 800.0,
    };
    let before = bucket_round_trips(&server);
    let (mut admitted, mut turns) = (0, 0);
    // Refusals in a row per node: a refill a node started in the background
    // lands before its next few round trips return, so three in a row mean
    // it holds nothing more.
    let (mut a_refused, mut b_refused) = (0, 0);
    while !(a_refused >= 3 && b_refused >= 3) && turns < 10_000 {
        turns += 1;
        // Mostly node A, every third request node B, each until refused.
        let on_b = (turns % 3 == 0 && b_refused < 3) || a_refused >= 3;
        let node = if on_b { &b } else { &a };
        let refused = if on_b { &mut b_refused } else { &mut a_refused };
        if node.take_token("api:busy", busy, t0).await.unwrap() {
            admitted += 1;
            *refused = 0;
        } else {
            *refused += 1;
        }
    }
    // Never more than the burst; less only by what a node leased and could
    // not spend (at most one and a half leases each).
    assert!(admitted <= 800, "{admitted}");
    assert!(admitted >= 800 - 2 * 150, "{admitted}");
    let trips = bucket_round_trips(&server) - before;
    assert!(trips < 100, "{trips} round trips for {admitted} tokens");
    // Later, the bucket refilled: both nodes are admitted again.
    let later = t0 + Duration::from_secs(10);
    assert!(a.take_token("api:busy", busy, later).await.unwrap());
    assert!(b.take_token("api:busy", busy, later).await.unwrap());
}

fn locks(store: &RedisStore, teardown: Duration, lease: Duration) -> RedisSessionLocks {
    RedisSessionLocks::new(store.connection().clone(), teardown, lease)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_is_exclusive_across_nodes_then_tears_down() {
    let server = RedisServer::start();
    let node_a = locks(&store(&server).await, 2 * SEC, 15 * SEC);
    let node_b = locks(&store(&server).await, 2 * SEC, 15 * SEC);
    let lease = node_a.try_acquire("i-1", 0).await.unwrap().expect("free");
    assert!(node_b.try_acquire("i-1", 0).await.unwrap().is_none());
    assert!(node_a.try_acquire("i-1", 0).await.unwrap().is_none());
    assert!(
        node_b.try_acquire("i-1", 1).await.unwrap().is_some(),
        "other port"
    );
    assert!(
        node_b.try_acquire("i-2", 0).await.unwrap().is_some(),
        "other instance"
    );
    assert_eq!(
        node_b.port_state("i-1", 0).await.unwrap(),
        PortState::InSession
    );
    assert_eq!(node_b.port_state("i-3", 0).await.unwrap(), PortState::Free);
    drop(lease);
    eventually(5 * SEC, "teardown marker", || async {
        server
            .cli(&["GET", "eic:{i-1}:serial:0"])
            .starts_with("teardown:")
    })
    .await;
    assert_eq!(
        node_b.port_state("i-1", 0).await.unwrap(),
        PortState::TearingDown
    );
    assert!(node_b.try_acquire("i-1", 0).await.unwrap().is_none());
    let pttl: i64 = server.cli(&["PTTL", "eic:{i-1}:serial:0"]).parse().unwrap();
    assert!(pttl > 0 && pttl <= 2_000, "teardown TTL: {pttl}");
    eventually(6 * SEC, "teardown end", || async {
        node_b.port_state("i-1", 0).await.unwrap() == PortState::Free
    })
    .await;
    assert!(node_b.try_acquire("i-1", 0).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_a_lock_past_its_lease() {
    let server = RedisServer::start();
    let locks = locks(&store(&server).await, 200 * Duration::from_millis(1), SEC);
    let _lease = locks.try_acquire("i-r", 0).await.unwrap().expect("free");
    let start = Instant::now();
    // Observed for three lease periods: never free.
    while start.elapsed() < 3 * SEC {
        assert_eq!(
            locks.port_state("i-r", 0).await.unwrap(),
            PortState::InSession,
            "lapsed at {:?}",
            start.elapsed()
        );
        let pttl: i64 = server.cli(&["PTTL", "eic:{i-r}:serial:0"]).parse().unwrap();
        assert!(pttl <= 1_000, "lease is short: {pttl}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(locks.try_acquire("i-r", 0).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_of_a_dead_node_lapses_after_its_lease() {
    let server = RedisServer::start();
    let url = server.url();
    // The "dead node": its own runtime, which ends with the lease never
    // dropped, so nothing renews or releases it.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = RedisStore::connect(&[url]).await.unwrap();
            let locks = RedisSessionLocks::new(store.connection().clone(), 30 * SEC, SEC);
            let lease = locks.try_acquire("i-dead", 0).await.unwrap().expect("free");
            std::mem::forget(lease);
        });
    })
    .join()
    .unwrap();
    let died = Instant::now();
    let locks = locks(&store(&server).await, 30 * SEC, SEC);
    assert_eq!(
        locks.port_state("i-dead", 0).await.unwrap(),
        PortState::InSession
    );
    eventually(5 * SEC, "dead node's lock lapses", || async {
        locks.port_state("i-dead", 0).await.unwrap() == PortState::Free
    })
    .await;
    assert!(died.elapsed() < 2 * SEC, "lapsed after about one lease");
    assert!(locks.try_acquire("i-dead", 0).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_lock_is_not_touched_on_release() {
    let server = RedisServer::start();
    let locks = locks(&store(&server).await, 2 * SEC, SEC);
    let lease = locks.try_acquire("i-s", 0).await.unwrap().expect("free");
    // As if the lease lapsed and another node took the port.
    server.cli(&["SET", "eic:{i-s}:serial:0", "lease:other", "PX", "60000"]);
    drop(lease);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(700) {
        assert_eq!(server.cli(&["GET", "eic:{i-s}:serial:0"]), "lease:other");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pttl: i64 = server.cli(&["PTTL", "eic:{i-s}:serial:0"]).parse().unwrap();
    assert!(pttl > 50_000, "not renewed or shortened: {pttl}");
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Backend { .. } | StoreError::Unavailable(_)) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_then_service_returns() {
    let mut server = RedisServer::start();
    let store = store(&server).await;
    let locks = locks(&store, SEC, SEC);
    let now = SystemTime::now();
    let rate = BucketRate {
        rate: 1.0,
        burst: 5.0,
    };
    store
        .push(key(1, "i-d", user("u"), now, 60 * SEC))
        .await
        .unwrap();
    let held = locks.try_acquire("i-d", 0).await.unwrap().expect("free");

    server.stop();
    let bound = Duration::from_millis(3_000); // 2 s op timeout + slack
    for round in 0..2 {
        let t = Instant::now();
        unavailable(
            store.push(key(2, "i-d", user("u"), now, 60 * SEC)).await,
            "push",
        );
        assert!(
            t.elapsed() < bound,
            "round {round} push took {:?}",
            t.elapsed()
        );
        let t = Instant::now();
        unavailable(store.live_keys("i-d", &user("u"), now).await, "live_keys");
        assert!(
            t.elapsed() < bound,
            "round {round} live_keys took {:?}",
            t.elapsed()
        );
        let t = Instant::now();
        unavailable(store.take_token("b", rate, now).await, "take_token");
        assert!(
            t.elapsed() < bound,
            "round {round} take_token took {:?}",
            t.elapsed()
        );
        let t = Instant::now();
        assert!(locks.try_acquire("i-d", 1).await.is_err(), "try_acquire");
        assert!(
            t.elapsed() < bound,
            "round {round} try_acquire took {:?}",
            t.elapsed()
        );
        let t = Instant::now();
        assert!(locks.port_state("i-d", 0).await.is_err(), "port_state");
        assert!(
            t.elapsed() < bound,
            "round {round} port_state took {:?}",
            t.elapsed()
        );
    }
    let t = Instant::now();
    unavailable(
        RedisStore::connect(&[server.url()]).await.map(|_| ()),
        "connect",
    );
    assert!(t.elapsed() < bound, "connect took {:?}", t.elapsed());
    drop(held); // releasing while Redis is down must not panic either

    server.spawn();
    eventually(15 * SEC, "push succeeds again", || async {
        store
            .push(key(3, "i-d", user("u"), now, 60 * SEC))
            .await
            .is_ok()
    })
    .await;
    // The data went with the (non-persistent) server; new writes work.
    let live = store.live_keys("i-d", &user("u"), now).await.unwrap();
    assert_eq!(ids(&live), ["req-3"]);
    assert!(store.take_token("b", rate, now).await.unwrap());
    // Held while asked: a dropped lease starts its teardown at once.
    let lease = locks.try_acquire("i-d", 0).await.unwrap();
    assert!(lease.is_some());
    assert_eq!(
        locks.port_state("i-d", 0).await.unwrap(),
        PortState::InSession
    );
    drop(lease);
}

#[tokio::test]
async fn connect_errors() {
    unavailable(RedisStore::connect(&[]).await.map(|_| ()), "no url");
    unavailable(
        RedisConnection::connect(&["redis-cluster://".into()], SEC)
            .await
            .map(|_| ()),
        "empty cluster",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_changed_on_one_node_hold_on_another_within_the_bound() {
    let mut server = RedisServer::start();
    let connect = || async {
        RedisConnection::connect(&[server.url()], 2 * SEC)
            .await
            .unwrap()
    };
    // A node's view, refreshed in the background, and a command's handle.
    let node = RedisSettings::watched(connect().await, "access");
    let command = RedisSettings::new(connect().await, "access");
    eventually(5 * SEC, "the node's first view", || async {
        node.get("acct").is_ok()
    })
    .await;
    assert_eq!(node.get("acct").unwrap(), None);

    command.set("acct", false.into()).await.unwrap();
    assert_eq!(command.get("acct").ok(), None, "unconfirmed: refuses");
    command.refresh().await.unwrap();
    assert_eq!(command.get("acct").unwrap(), Some(false.into()));
    let t = Instant::now();
    eventually(5 * SEC, "the change reaches the node", || async {
        node.get("acct").unwrap() == Some(false.into())
    })
    .await;
    assert!(t.elapsed() <= SETTINGS_STALENESS, "took {:?}", t.elapsed());

    // Increments from several nodes at once are never lost.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let other = RedisSettings::new(connect().await, "access");
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                other.increment("i-abc").await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(command.increment("i-abc").await.unwrap(), 31);
    eventually(5 * SEC, "the node sees every increment", || async {
        node.get("i-abc").unwrap() == Some(31.into())
    })
    .await;
    // Not a counter: an error, never a guess.
    assert!(command.increment("acct").await.is_err());

    // Redis gone: the node refuses once its view is older than the bound,
    // and answers again when Redis is back.
    server.stop();
    let t = Instant::now();
    eventually(5 * SEC, "the node refuses", || async {
        node.get("acct").is_err()
    })
    .await;
    assert!(
        t.elapsed() <= SETTINGS_STALENESS + Duration::from_millis(100),
        "stale view served for {:?}",
        t.elapsed()
    );
    unavailable(command.set("acct", true.into()).await, "set");
    server.spawn();
    eventually(15 * SEC, "the node answers again", || async {
        node.get("acct").is_ok()
    })
    .await;
    // The (non-persistent) server lost the map: the view follows it.
    assert_eq!(node.get("acct").unwrap(), None);
}
