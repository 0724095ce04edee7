//! The fleet through real redis-server processes: two `RedisFleet` handles
//! on one Redis act as two nodes.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, Cluster, RedisServer};
use eic_store::fleet::{
    Addresses, Enrollment, FleetState, HeartbeatOutcome, InstanceChange, JoinToken, MachineFacts,
    TokenRefusal,
};
use eic_store::{Fleet, StoreError};
use eic_store_redis::{RedisConnection, RedisFleet, FLEET_STALENESS};

const SEC: Duration = Duration::from_secs(1);
const T0: u64 = 1_800_000_000_000;
const SECRET: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

async fn connect(url: &str) -> RedisConnection {
    RedisConnection::connect(&[url.to_string()], 2 * SEC)
        .await
        .unwrap()
}

/// A node: a fleet with its refresher, once its first load is done.
async fn node(url: &str) -> Arc<RedisFleet> {
    let fleet = RedisFleet::start(connect(url).await);
    eventually(10 * SEC, "the node's first view", || async {
        fleet.all_enrolled().is_ok()
    })
    .await;
    fleet
}

fn instance_id(n: u32) -> String {
    format!("i-{n:017x}")
}

fn facts(n: u32) -> MachineFacts {
    MachineFacts {
        hostname: format!("web-{n}"),
        addresses: Addresses {
            private_ipv4: Some([10, 0, (n >> 8) as u8, n as u8].into()),
            public_ipv4: None,
            ipv6: Some("fd00::1".parse().unwrap()),
            ssh_port: 22,
        },
        host_keys: vec![format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{n}")],
        os: "Debian GNU/Linux 13 (trixie)".into(),
        kernel: "6.12.0-1-amd64".into(),
    }
}

fn enrollment(n: u32) -> Enrollment {
    Enrollment {
        network: None,
        instance_id: instance_id(n),
        account: "111122223333".into(),
        token_id: "0123456789abcdef".into(),
        availability_zone: "us-east-1a".into(),
        instance_type: "t3.micro".into(),
        facts: facts(n),
        tags: BTreeMap::from([("Name".into(), format!("web-{n}"))]).into(),
        state: FleetState::Running,
        enrolled_at_ms: T0,
        updated_at_ms: T0,
    }
}

fn token(id: &str, uses: u32, expires_at_ms: u64) -> JoinToken {
    JoinToken {
        network: None,
        id: id.into(),
        secret_sha256: SECRET.into(),
        account: "111122223333".into(),
        availability_zone: None,
        tags: Default::default(),
        created_at_ms: T0,
        expires_at_ms,
        uses,
        used: 0,
        revoked: false,
        created_by: "root".into(),
    }
}

fn last_seen(fleet: &RedisFleet, id: &str) -> Option<u64> {
    Some(fleet.enrolled(id).ok()??.last_seen_ms())
}

fn state(fleet: &RedisFleet, id: &str) -> Option<FleetState> {
    Some(fleet.enrolled(id).ok()??.enrollment.state)
}

fn tags(fleet: &RedisFleet, id: &str) -> Option<BTreeMap<String, String>> {
    Some(fleet.enrolled(id).ok()??.enrollment.tags.to_map())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollments_heartbeats_and_changes_reach_the_other_node() {
    let server = RedisServer::start();
    let a = node(&server.url()).await;
    let b = node(&server.url()).await;
    let id = instance_id(1);

    a.enroll(enrollment(1), T0).await.unwrap();
    assert_eq!(
        a.enrolled(&id).unwrap().unwrap().enrollment,
        enrollment(1),
        "a node reads its own write at once"
    );
    eventually(5 * SEC, "the enrollment reaches B", || async {
        last_seen(&b, &id) == Some(T0)
    })
    .await;
    assert_eq!(b.enrolled(&id).unwrap().unwrap().enrollment, enrollment(1));

    // "Still here": the time moves on B, and nothing durable is written.
    let changes = server.cli(&["XLEN", "eic:{fleet}:changes"]);
    assert_eq!(changes, "1");
    assert_eq!(
        a.heartbeat(&id, FleetState::Running, &facts(1), T0 + 1_000)
            .await
            .unwrap(),
        HeartbeatOutcome::Recorded {
            previous: FleetState::Running,
            last_seen_ms: T0
        }
    );
    eventually(5 * SEC, "the heartbeat reaches B", || async {
        last_seen(&b, &id) == Some(T0 + 1_000)
    })
    .await;
    // Out of order (another node's clock a little behind): never back.
    a.heartbeat(&id, FleetState::Running, &facts(1), T0 + 500)
        .await
        .unwrap();
    assert_eq!(server.cli(&["XLEN", "eic:{fleet}:changes"]), changes);
    assert_eq!(
        server.cli(&["ZSCORE", "eic:{fleet}:seen", &id]),
        (T0 + 1_000).to_string()
    );

    // A clean shutdown is durable, and shows on B.
    assert_eq!(
        a.heartbeat(&id, FleetState::Stopped, &facts(1), T0 + 2_000)
            .await
            .unwrap(),
        HeartbeatOutcome::Recorded {
            previous: FleetState::Running,
            last_seen_ms: T0 + 1_000
        }
    );
    assert_eq!(server.cli(&["XLEN", "eic:{fleet}:changes"]), "2");
    eventually(5 * SEC, "the stop reaches B", || async {
        state(&b, &id) == Some(FleetState::Stopped) && last_seen(&b, &id) == Some(T0 + 2_000)
    })
    .await;
    // New facts (an address changed) are durable too.
    let mut moved = facts(1);
    moved.addresses.public_ipv4 = Some([203, 0, 113, 7].into());
    assert_eq!(
        b.heartbeat(&id, FleetState::Running, &moved, T0 + 3_000)
            .await
            .unwrap(),
        HeartbeatOutcome::Recorded {
            previous: FleetState::Stopped,
            last_seen_ms: T0 + 2_000
        }
    );
    eventually(5 * SEC, "the new address reaches A", || async {
        a.enrolled(&id).unwrap().unwrap().enrollment.facts == moved
    })
    .await;
    let stored = a.enrolled(&id).unwrap().unwrap();
    assert_eq!(stored.enrollment.state, FleetState::Running);
    assert_eq!(stored.enrollment.updated_at_ms, T0 + 3_000);

    // An operator's changes on B show on A.
    let tag = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    assert!(b
        .change(&id, InstanceChange::Tag(tag), T0 + 4_000)
        .await
        .unwrap());
    eventually(5 * SEC, "the tag reaches A", || async {
        tags(&a, &id).is_some_and(|t| t.get("env").map(String::as_str) == Some("prod"))
    })
    .await;
    assert!(b
        .change(&id, InstanceChange::Untag(vec!["Name".into()]), T0 + 5_000)
        .await
        .unwrap());
    eventually(5 * SEC, "the untag reaches A", || async {
        tags(&a, &id).is_some_and(|t| t.len() == 1 && t.contains_key("env"))
    })
    .await;
    assert!(b
        .change(&id, InstanceChange::Terminate, T0 + 6_000)
        .await
        .unwrap());
    eventually(5 * SEC, "the termination reaches A", || async {
        state(&a, &id) == Some(FleetState::Terminated)
    })
    .await;
    assert_eq!(
        a.heartbeat(&id, FleetState::Running, &moved, T0 + 7_000)
            .await
            .unwrap(),
        HeartbeatOutcome::Terminated
    );
    assert_eq!(
        server.cli(&["ZSCORE", "eic:{fleet}:seen", &id]),
        (T0 + 3_000).to_string(),
        "a terminated instance's heartbeat changes nothing"
    );
    assert_eq!(b.all_enrolled().unwrap().len(), 1);

    // Unknown ids.
    let nobody = instance_id(99);
    assert_eq!(
        a.heartbeat(&nobody, FleetState::Running, &facts(99), T0)
            .await
            .unwrap(),
        HeartbeatOutcome::Unknown
    );
    assert!(!a
        .change(&nobody, InstanceChange::Terminate, T0)
        .await
        .unwrap());
    assert!(a.enrolled(&nobody).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_asks_redis_before_answering_unknown() {
    let server = RedisServer::start();
    let a = node(&server.url()).await;
    // A view never refreshed: it cannot answer reads, nor know instance 2.
    let behind = RedisFleet::new(connect(&server.url()).await);
    assert!(matches!(
        behind.enrolled(&instance_id(2)),
        Err(StoreError::Unavailable(_))
    ));
    a.enroll(enrollment(2), T0).await.unwrap();
    assert_eq!(
        behind
            .heartbeat(&instance_id(2), FleetState::Running, &facts(2), T0 + 10)
            .await
            .unwrap(),
        HeartbeatOutcome::Recorded {
            previous: FleetState::Running,
            last_seen_ms: T0
        }
    );
    assert_eq!(
        behind
            .heartbeat(&instance_id(2), FleetState::Stopped, &facts(2), T0 + 20)
            .await
            .unwrap(),
        HeartbeatOutcome::Recorded {
            previous: FleetState::Running,
            last_seen_ms: T0 + 10
        }
    );
    assert!(behind
        .change(&instance_id(2), InstanceChange::Terminate, T0 + 30)
        .await
        .unwrap());
    eventually(5 * SEC, "A sees what the node behind did", || async {
        state(&a, &instance_id(2)) == Some(FleetState::Terminated)
    })
    .await;
    behind.refresh().await.unwrap();
    assert_eq!(
        state(&behind, &instance_id(2)),
        Some(FleetState::Terminated)
    );
    assert_eq!(last_seen(&behind, &instance_id(2)), Some(T0 + 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_on_two_nodes_are_both_kept() {
    let server = RedisServer::start();
    let a = node(&server.url()).await;
    let b = node(&server.url()).await;
    let id = instance_id(3);
    a.enroll(enrollment(3), T0).await.unwrap();
    eventually(5 * SEC, "B sees it", || async {
        b.enrolled(&id).ok().flatten().is_some()
    })
    .await;
    for round in 0..20u32 {
        let (a, b, id_a, id_b) = (a.clone(), b.clone(), id.clone(), id.clone());
        let on_a = tokio::spawn(async move {
            let tag = BTreeMap::from([(format!("a{round}"), "x".to_string())]);
            a.change(&id_a, InstanceChange::Tag(tag), T0).await.unwrap()
        });
        let on_b = tokio::spawn(async move {
            let mut moved = facts(3);
            moved.hostname = format!("renamed-{round}");
            b.heartbeat(&id_b, FleetState::Running, &moved, T0 + u64::from(round))
                .await
                .unwrap()
        });
        assert!(on_a.await.unwrap());
        assert!(matches!(
            on_b.await.unwrap(),
            HeartbeatOutcome::Recorded { .. }
        ));
    }
    let stored: Enrollment =
        serde_json::from_str(&server.cli(&["HGET", "eic:{fleet}:instances", &id])).unwrap();
    assert_eq!(stored.tags.len(), 21, "no tag lost: {:?}", stored.tags);
    assert_eq!(stored.facts.hostname, "renamed-19");
    eventually(5 * SEC, "both views converge", || async {
        [&a, &b].iter().all(|n| {
            n.enrolled(&id).ok().flatten().map(|e| e.enrollment.clone()) == Some(stored.clone())
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_use_token_is_redeemed_once_across_nodes() {
    let server = RedisServer::start();
    let a = node(&server.url()).await;
    let b = node(&server.url()).await;
    for round in 0..50 {
        let id = format!("{round:016x}");
        a.create_token(token(&id, 1, T0 + 60_000)).await.unwrap();
        let redeem = |fleet: Arc<RedisFleet>, id: String| {
            tokio::spawn(async move { fleet.redeem_token(&id, SECRET, T0).await.unwrap() })
        };
        let on_a = redeem(a.clone(), id.clone());
        let on_b = redeem(b.clone(), id.clone());
        let outcomes = [on_a.await.unwrap(), on_b.await.unwrap()];
        let redeemed: Vec<&JoinToken> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(redeemed.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(redeemed[0].used, 1);
        assert!(
            outcomes.contains(&Err(TokenRefusal::UsedUp)),
            "{outcomes:?}"
        );
    }
    // A three-use token among four concurrent redemptions.
    b.create_token(token("ffffffffffffffff", 3, T0 + 60_000))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|n| {
            let fleet = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                fleet
                    .redeem_token("ffffffffffffffff", SECRET, T0)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut used = Vec::new();
    for task in tasks {
        if let Ok(token) = task.await.unwrap() {
            used.push(token.used);
        }
    }
    used.sort();
    assert_eq!(used, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_refused_for_every_reason() {
    let server = RedisServer::start();
    let fleet = RedisFleet::new(connect(&server.url()).await);
    let now = T0 + 1_000;
    fleet
        .create_token(token("000000000000000a", 2, now + 1))
        .await
        .unwrap();
    fleet
        .create_token(token("000000000000000b", 5, now))
        .await
        .unwrap();
    // Far-future expiry, a zone, and tags that look like the counter: the
    // stored JSON is kept byte for byte but for the one use counted.
    let mut odd = token("000000000000000c", 1, u64::MAX);
    odd.availability_zone = Some("eu-west-3b".into());
    odd.tags = BTreeMap::from([
        (
            "used".to_string(),
            r#","used":7,"revoked":false,"#.to_string(),
        ),
        (r#","used":1,"#.to_string(), "é".to_string()),
    ]);
    fleet.create_token(odd.clone()).await.unwrap();
    assert!(
        fleet
            .create_token(token("000000000000000a", 9, now))
            .await
            .is_err(),
        "ids are new"
    );

    let redeem = |id: &'static str, secret: &'static str| {
        let fleet = &fleet;
        async move { fleet.redeem_token(id, secret, now).await.unwrap() }
    };
    let wrong = "0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(
        redeem("000000000000000a", wrong).await,
        Err(TokenRefusal::Unknown),
        "a wrong secret is an unknown token"
    );
    assert_eq!(
        redeem("00000000000000ff", SECRET).await,
        Err(TokenRefusal::Unknown)
    );
    assert_eq!(
        redeem("000000000000000b", SECRET).await,
        Err(TokenRefusal::Expired)
    );
    assert_eq!(redeem("000000000000000a", SECRET).await.unwrap().used, 1);
    assert_eq!(redeem("000000000000000a", SECRET).await.unwrap().used, 2);
    assert_eq!(
        redeem("000000000000000a", SECRET).await,
        Err(TokenRefusal::UsedUp)
    );
    let spent = redeem("000000000000000c", SECRET).await.unwrap();
    assert_eq!(
        spent,
        JoinToken {
            network: None,
            used: 1,
            ..odd.clone()
        }
    );

    assert!(fleet.revoke_token("000000000000000c").await.unwrap());
    assert!(fleet.revoke_token("000000000000000c").await.unwrap());
    assert!(!fleet.revoke_token("00000000000000ff").await.unwrap());
    assert_eq!(
        redeem("000000000000000c", SECRET).await,
        Err(TokenRefusal::Revoked)
    );
    // Without the secret, even a revoked token is unknown.
    assert_eq!(
        redeem("000000000000000c", wrong).await,
        Err(TokenRefusal::Unknown)
    );

    let tokens = fleet.tokens().await.unwrap();
    let ids: Vec<&str> = tokens.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        ["000000000000000a", "000000000000000b", "000000000000000c"]
    );
    assert_eq!(tokens[0].used, 2);
    assert_eq!(
        tokens[2],
        JoinToken {
            network: None,
            used: 1,
            revoked: true,
            ..odd
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_load_reads_every_instance_and_heartbeat() {
    let server = RedisServer::start();
    let writer = Arc::new(RedisFleet::new(connect(&server.url()).await));
    // Many scan batches, and more heartbeats at one time than two reads
    // of the sorted set return.
    let count = 24_000u32;
    let mut tasks = Vec::new();
    for worker in 0..32u32 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            for n in (worker..count).step_by(32) {
                let at = if n % 8 != 0 { T0 } else { T0 + u64::from(n) };
                writer.enroll(enrollment(n), at).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let fresh = RedisFleet::new(connect(&server.url()).await);
    fresh.refresh().await.unwrap();
    let all = fresh.all_enrolled().unwrap();
    assert_eq!(all.len(), count as usize);
    for enrolled in &all {
        let n = u32::from_str_radix(&enrolled.enrollment.instance_id[2..], 16).unwrap();
        assert_eq!(enrolled.enrollment, enrollment(n));
        let at = if n % 8 != 0 { T0 } else { T0 + u64::from(n) };
        assert_eq!(
            enrolled.last_seen_ms(),
            at,
            "{}",
            enrolled.enrollment.instance_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_trimmed_before_a_node_read_them_mean_a_full_load() {
    let server = RedisServer::start();
    let a = RedisFleet::new(connect(&server.url()).await);
    let b = RedisFleet::new(connect(&server.url()).await);
    a.enroll(enrollment(1), T0).await.unwrap();
    b.refresh().await.unwrap();
    assert!(b.enrolled(&instance_id(1)).unwrap().is_some());
    a.enroll(enrollment(2), T0).await.unwrap();
    a.change(&instance_id(1), InstanceChange::Terminate, T0)
        .await
        .unwrap();
    // As if far more changes had come than the stream keeps.
    assert_eq!(
        server.cli(&["XTRIM", "eic:{fleet}:changes", "MAXLEN", "0"]),
        "3"
    );
    b.refresh().await.unwrap();
    assert!(b.enrolled(&instance_id(2)).unwrap().is_some());
    assert_eq!(state(&b, &instance_id(1)), Some(FleetState::Terminated));
    // And a record gone from Redis leaves the view.
    server.cli(&["HDEL", "eic:{fleet}:instances", &instance_id(2)]);
    a.enroll(enrollment(3), T0).await.unwrap();
    server.cli(&["XTRIM", "eic:{fleet}:changes", "MAXLEN", "0"]);
    b.refresh().await.unwrap();
    assert!(b.enrolled(&instance_id(2)).unwrap().is_none());
    assert_eq!(b.all_enrolled().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_through_a_cluster() {
    let cluster = Cluster::start();
    let a = node(&cluster.url()).await;
    let b = node(&cluster.url()).await;
    let id = instance_id(7);
    a.enroll(enrollment(7), T0).await.unwrap();
    eventually(5 * SEC, "the enrollment reaches B", || async {
        b.enrolled(&id).ok().flatten().is_some()
    })
    .await;
    a.heartbeat(&id, FleetState::Running, &facts(7), T0 + 1_000)
        .await
        .unwrap();
    a.heartbeat(&id, FleetState::Stopped, &facts(7), T0 + 2_000)
        .await
        .unwrap();
    eventually(5 * SEC, "the stop reaches B", || async {
        state(&b, &id) == Some(FleetState::Stopped) && last_seen(&b, &id) == Some(T0 + 2_000)
    })
    .await;
    let tag = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    assert!(b.change(&id, InstanceChange::Tag(tag), T0).await.unwrap());
    eventually(5 * SEC, "the tag reaches A", || async {
        tags(&a, &id).is_some_and(|t| t.contains_key("env"))
    })
    .await;
    // The lookup (a pipeline) of a node whose view does not know it yet.
    let behind = RedisFleet::new(connect(&cluster.url()).await);
    assert_eq!(
        behind
            .heartbeat(&id, FleetState::Stopped, &facts(7), T0 + 3_000)
            .await
            .unwrap(),
        HeartbeatOutcome::Recorded {
            previous: FleetState::Stopped,
            last_seen_ms: T0 + 2_000
        }
    );

    a.create_token(token("00000000000000aa", 1, T0 + 1))
        .await
        .unwrap();
    assert_eq!(
        b.redeem_token("00000000000000aa", SECRET, T0)
            .await
            .unwrap()
            .unwrap()
            .used,
        1
    );
    assert_eq!(
        a.redeem_token("00000000000000aa", SECRET, T0)
            .await
            .unwrap(),
        Err(TokenRefusal::UsedUp)
    );
    assert!(b.revoke_token("00000000000000aa").await.unwrap());
    assert_eq!(a.tokens().await.unwrap().len(), 1);

    // Every fleet key on one master, in one slot.
    let keys = [
        "eic:{fleet}:instances",
        "eic:{fleet}:seen",
        "eic:{fleet}:changes",
        "eic:{fleet}:tokens",
    ];
    let holders: Vec<usize> = (0..cluster.nodes.len())
        .filter(|&i| {
            keys.iter()
                .all(|k| cluster.nodes[i].cli(&["EXISTS", k]) == "1")
        })
        .collect();
    assert_eq!(holders.len(), 1, "one master holds the whole fleet");
    let slot = cluster.nodes[0].cli(&["CLUSTER", "KEYSLOT", keys[0]]);
    for key in keys {
        assert_eq!(cluster.nodes[0].cli(&["CLUSTER", "KEYSLOT", key]), slot);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_reads_fail_within_the_bound_then_service_returns() {
    let mut server = RedisServer::start();
    let a = node(&server.url()).await;
    let b = node(&server.url()).await;
    let id = instance_id(5);
    a.enroll(enrollment(5), T0).await.unwrap();
    eventually(5 * SEC, "B sees it", || async {
        b.enrolled(&id).ok().flatten().is_some()
    })
    .await;

    server.stop();
    let stopped = Instant::now();
    eventually(5 * SEC, "reads refuse", || async {
        a.enrolled(&id).is_err() && b.all_enrolled().is_err()
    })
    .await;
    assert!(
        stopped.elapsed() <= FLEET_STALENESS + Duration::from_millis(200),
        "a stale view answered for {:?}",
        stopped.elapsed()
    );
    assert!(matches!(b.enrolled(&id), Err(StoreError::Unavailable(_))));
    let backend = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::Backend { .. }) => {}
        other => panic!("{what}: expected Backend, got {other:?}"),
    };
    let bound = Duration::from_millis(3_000); // 2 s op timeout + slack
    let t = Instant::now();
    backend(a.enroll(enrollment(6), T0).await, "enroll");
    backend(
        a.heartbeat(&id, FleetState::Running, &facts(5), T0 + 1)
            .await
            .map(|_| ()),
        "heartbeat",
    );
    backend(
        b.change(&id, InstanceChange::Terminate, T0)
            .await
            .map(|_| ()),
        "change",
    );
    backend(
        b.create_token(token("0000000000000001", 1, T0)).await,
        "create_token",
    );
    backend(
        a.redeem_token("0000000000000001", SECRET, T0)
            .await
            .map(|_| ()),
        "redeem_token",
    );
    backend(b.tokens().await.map(|_| ()), "tokens");
    assert!(t.elapsed() < 6 * bound, "writes took {:?}", t.elapsed());

    server.spawn();
    eventually(15 * SEC, "reads answer again", || async {
        a.all_enrolled().is_ok() && b.all_enrolled().is_ok()
    })
    .await;
    // The (non-persistent) server lost the fleet: the views follow it.
    assert!(a.enrolled(&id).unwrap().is_none());
    assert!(b.enrolled(&id).unwrap().is_none());
    b.enroll(enrollment(6), T0).await.unwrap();
    eventually(5 * SEC, "a new enrollment reaches A", || async {
        a.enrolled(&instance_id(6)).ok().flatten().is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_claims_each_connection_loss() {
    let server = RedisServer::start();
    let a = RedisFleet::new(connect(&server.url()).await);
    let b = RedisFleet::new(connect(&server.url()).await);
    let id = instance_id(3);
    let (first, second) = tokio::join!(
        a.claim_connection_lost(&id, T0),
        b.claim_connection_lost(&id, T0)
    );
    assert!(first.unwrap() ^ second.unwrap(), "exactly one node claims");
    // A node started later (or restarted) does not record it again.
    let c = RedisFleet::new(connect(&server.url()).await);
    assert!(!c.claim_connection_lost(&id, T0).await.unwrap());
    // The next loss, after the instance was seen again, is a new one.
    assert!(b.claim_connection_lost(&id, T0 + 30_000).await.unwrap());
    assert!(!a.claim_connection_lost(&id, T0 + 30_000).await.unwrap());
    // Each instance has its own.
    assert!(a.claim_connection_lost(&instance_id(4), T0).await.unwrap());
}
