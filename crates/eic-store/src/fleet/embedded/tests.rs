use std::os::unix::fs::PermissionsExt;

use super::*;

/// Record times in the past, so an open's "seen now" is later than them.
const T0: u64 = 1_700_000_000_000;
const SECRET: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

fn facts(n: u32) -> MachineFacts {
    MachineFacts {
        hostname: format!("web-{n}"),
        addresses: crate::fleet::Addresses {
            private_ipv4: Some(std::net::Ipv4Addr::new(127, 0, 0, 7)),
            public_ipv4: None,
            ipv6: None,
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
        instance_id: format!("i-{n:017x}"),
        account: "111122223333".into(),
        token_id: "0123456789abcdef".into(),
        availability_zone: "us-east-1a".into(),
        instance_type: "t3.micro".into(),
        facts: facts(n),
        tags: BTreeMap::from([("role".to_owned(), "web".to_owned())]).into(),
        state: FleetState::Running,
        enrolled_at_ms: T0,
        updated_at_ms: T0,
    }
}

fn id(n: u32) -> String {
    format!("i-{n:017x}")
}

fn token(id: &str, uses: u32) -> JoinToken {
    JoinToken {
        network: None,
        id: id.into(),
        secret_sha256: SECRET.into(),
        account: "111122223333".into(),
        availability_zone: None,
        tags: Default::default(),
        created_at_ms: T0,
        expires_at_ms: T0 + 3_600_000,
        uses,
        used: 0,
        revoked: false,
        created_by: "root".into(),
    }
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(LOG_FILE)
}

fn log_len(dir: &tempfile::TempDir) -> u64 {
    std::fs::metadata(log_path(dir)).unwrap().len()
}

/// The `generation` tag the compaction tests rewrite.
fn generation(fleet: &EmbeddedFleet, instance_id: &str) -> String {
    let enrolled = fleet.enrolled(instance_id).unwrap().unwrap();
    enrolled
        .enrollment
        .tags
        .get("generation")
        .unwrap()
        .to_owned()
}

fn log_lines(dir: &tempfile::TempDir) -> usize {
    std::fs::read(log_path(dir))
        .unwrap()
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

fn append_raw(dir: &tempfile::TempDir, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(log_path(dir)).unwrap();
    file.write_all(bytes).unwrap();
}

fn tag(key: &str, value: &str) -> InstanceChange {
    InstanceChange::Tag(BTreeMap::from([(key.to_owned(), value.to_owned())]))
}

/// Polls `done` until it holds, failing after a generous deadline.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn an_enrollment_survives_reopening_in_private_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::TempDir::new_in(root.path()).unwrap();
    {
        let fleet = EmbeddedFleet::open(dir.path()).unwrap();
        fleet.enroll(enrollment(1), T0).await.unwrap();
        assert_eq!(fleet.enrolled(&id(1)).unwrap().unwrap().last_seen_ms(), T0);
    }
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    let enrolled = fleet.enrolled(&id(1)).unwrap().unwrap();
    assert_eq!(enrolled.enrollment, enrollment(1));
    assert_eq!(fleet.all_enrolled().unwrap().len(), 1);
    assert!(fleet.enrolled(&id(2)).unwrap().is_none());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&log_path(&dir)), 0o600);
    assert_eq!(mode(dir.path()), 0o700);
}

#[tokio::test]
async fn after_a_restart_every_instance_counts_as_seen_at_the_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let fleet = EmbeddedFleet::open(dir.path()).unwrap();
        fleet.enroll(enrollment(1), T0).await.unwrap();
    }
    let before_open = unix_millis(SystemTime::now());
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    let last_seen = fleet.enrolled(&id(1)).unwrap().unwrap().last_seen_ms();
    assert!(last_seen >= before_open, "{last_seen} < {before_open}");
}

#[tokio::test]
async fn an_unchanged_heartbeat_writes_nothing_and_a_change_does() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    fleet.enroll(enrollment(1), T0).await.unwrap();
    let len = log_len(&dir);

    let outcome = fleet
        .heartbeat(&id(1), FleetState::Running, &facts(1), T0 + 1_000)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        HeartbeatOutcome::Recorded {
            previous: FleetState::Running,
            last_seen_ms: T0
        }
    );
    assert_eq!(log_len(&dir), len);
    assert_eq!(
        fleet.enrolled(&id(1)).unwrap().unwrap().last_seen_ms(),
        T0 + 1_000
    );

    let outcome = fleet
        .heartbeat(&id(1), FleetState::Stopped, &facts(1), T0 + 2_000)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        HeartbeatOutcome::Recorded {
            previous: FleetState::Running,
            last_seen_ms: T0 + 1_000
        }
    );
    let after_state = log_len(&dir);
    assert!(after_state > len);
    let enrolled = fleet.enrolled(&id(1)).unwrap().unwrap();
    assert_eq!(enrolled.enrollment.state, FleetState::Stopped);
    assert_eq!(enrolled.enrollment.updated_at_ms, T0 + 2_000);
    assert_eq!(enrolled.last_seen_ms(), T0 + 2_000);

    let mut new_facts = facts(1);
    new_facts.kernel = "6.12.1-1-amd64".into();
    fleet
        .heartbeat(&id(1), FleetState::Stopped, &new_facts, T0 + 3_000)
        .await
        .unwrap();
    assert!(log_len(&dir) > after_state);
    drop(fleet);

    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    let enrolled = fleet.enrolled(&id(1)).unwrap().unwrap();
    assert_eq!(enrolled.enrollment.state, FleetState::Stopped);
    assert_eq!(enrolled.enrollment.facts, new_facts);
}

#[tokio::test]
async fn heartbeats_of_unknown_and_terminated_instances_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    assert_eq!(
        fleet
            .heartbeat(&id(9), FleetState::Running, &facts(9), T0)
            .await
            .unwrap(),
        HeartbeatOutcome::Unknown
    );
    fleet.enroll(enrollment(1), T0).await.unwrap();
    assert!(fleet
        .change(&id(1), InstanceChange::Terminate, T0 + 1)
        .await
        .unwrap());
    let len = log_len(&dir);
    for state in [FleetState::Running, FleetState::Stopped] {
        assert_eq!(
            fleet
                .heartbeat(&id(1), state, &facts(2), T0 + 5_000)
                .await
                .unwrap(),
            HeartbeatOutcome::Terminated
        );
    }
    assert_eq!(log_len(&dir), len);
    let enrolled = fleet.enrolled(&id(1)).unwrap().unwrap();
    assert_eq!(enrolled.enrollment.state, FleetState::Terminated);
    assert_eq!(enrolled.last_seen_ms(), T0);
    assert!(fleet
        .heartbeat(&id(1), FleetState::Terminated, &facts(1), T0)
        .await
        .is_err());
}

#[tokio::test]
async fn operators_tag_untag_and_terminate() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    fleet.enroll(enrollment(1), T0).await.unwrap();
    assert!(!fleet.change(&id(2), tag("a", "b"), T0).await.unwrap());
    let tags = BTreeMap::from([
        ("role".to_owned(), "db".to_owned()),
        ("env".to_owned(), "prod".to_owned()),
    ]);
    assert!(fleet
        .change(&id(1), InstanceChange::Tag(tags.clone()), T0 + 1)
        .await
        .unwrap());
    assert_eq!(
        fleet.enrolled(&id(1)).unwrap().unwrap().enrollment.tags,
        tags
    );
    assert!(fleet
        .change(&id(1), InstanceChange::Untag(vec!["role".into()]), T0 + 2)
        .await
        .unwrap());
    drop(fleet);
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    let enrollment = &fleet.enrolled(&id(1)).unwrap().unwrap().enrollment;
    assert_eq!(
        enrollment.tags,
        BTreeMap::from([("env".to_owned(), "prod".to_owned())])
    );
    assert_eq!(enrollment.updated_at_ms, T0 + 2);
}

#[tokio::test]
async fn a_token_created_by_a_command_is_redeemed_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedFleet::open(dir.path()).unwrap();
    let command = EmbeddedFleet::open(dir.path()).unwrap();
    command
        .create_token(token("00000000000000aa", 2))
        .await
        .unwrap();
    let redeemed = server
        .redeem_token("00000000000000aa", SECRET, T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(redeemed.used, 1);
    // The command sees the server's redemption when it lists.
    let tokens = command.tokens().await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].used, 1);
}

#[tokio::test]
async fn tokens_are_listed_by_id_and_a_duplicate_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    for id in ["00000000000000cc", "00000000000000aa", "00000000000000bb"] {
        fleet.create_token(token(id, 1)).await.unwrap();
    }
    let len = log_len(&dir);
    assert!(fleet
        .create_token(token("00000000000000aa", 5))
        .await
        .is_err());
    assert_eq!(log_len(&dir), len);
    let ids: Vec<String> = fleet
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        ids,
        ["00000000000000aa", "00000000000000bb", "00000000000000cc"]
    );
    assert_eq!(fleet.tokens().await.unwrap()[0].uses, 1);
}

#[tokio::test]
async fn tokens_are_refused_when_unknown_wrong_revoked_expired_or_used_up() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    fleet
        .create_token(token("00000000000000aa", 1))
        .await
        .unwrap();
    fleet
        .create_token(token("00000000000000bb", 1))
        .await
        .unwrap();
    let redeem = |id: &'static str, secret: &'static str, now: u64| {
        let fleet = fleet.clone();
        async move { fleet.redeem_token(id, secret, now).await.unwrap() }
    };
    let wrong = "0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(
        redeem("00000000000000ff", SECRET, T0).await,
        Err(TokenRefusal::Unknown)
    );
    assert_eq!(
        redeem("00000000000000aa", wrong, T0).await,
        Err(TokenRefusal::Unknown)
    );
    assert_eq!(
        redeem("00000000000000aa", &SECRET[..10], T0).await,
        Err(TokenRefusal::Unknown)
    );
    let expires = token("00000000000000aa", 1).expires_at_ms;
    assert_eq!(
        redeem("00000000000000aa", SECRET, expires).await,
        Err(TokenRefusal::Expired)
    );
    assert!(redeem("00000000000000aa", SECRET, expires - 1)
        .await
        .is_ok());
    assert_eq!(
        redeem("00000000000000aa", SECRET, T0).await,
        Err(TokenRefusal::UsedUp)
    );
    assert!(!fleet.revoke_token("00000000000000ff").await.unwrap());
    assert!(fleet.revoke_token("00000000000000bb").await.unwrap());
    assert_eq!(
        redeem("00000000000000bb", SECRET, T0).await,
        Err(TokenRefusal::Revoked)
    );
    drop(fleet);
    // The refusals wrote nothing; the use and the revocation are durable.
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    let tokens = fleet.tokens().await.unwrap();
    assert_eq!((tokens[0].used, tokens[0].revoked), (1, false));
    assert_eq!((tokens[1].used, tokens[1].revoked), (0, true));
}

#[tokio::test]
async fn handles_redeeming_a_one_use_token_at_once_succeed_once() {
    let dir = tempfile::tempdir().unwrap();
    // The server and three commands, each a handle of its own.
    let handles: Vec<_> = (0..4)
        .map(|_| EmbeddedFleet::open(dir.path()).unwrap())
        .collect();
    let ids: Vec<String> = (0..50).map(|n| format!("{n:016x}")).collect();
    for id in &ids {
        handles[0].create_token(token(id, 1)).await.unwrap();
    }
    for id in &ids {
        let barrier = Arc::new(std::sync::Barrier::new(handles.len()));
        let redeemers: Vec<_> = handles
            .iter()
            .map(|fleet| {
                let (fleet, id, barrier) = (fleet.clone(), id.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    barrier.wait();
                    runtime
                        .block_on(fleet.redeem_token(&id, SECRET, T0 + 1))
                        .unwrap()
                })
            })
            .collect();
        let outcomes: Vec<_> = redeemers.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            1,
            "{id}: {outcomes:?}"
        );
        assert!(outcomes
            .iter()
            .all(|o| o.is_ok() || *o == Err(TokenRefusal::UsedUp)));
    }
    drop(handles);
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    assert!(fleet.tokens().await.unwrap().iter().all(|t| t.used == 1));
}

#[tokio::test]
async fn a_tag_made_by_a_command_reaches_the_server_on_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedFleet::open(dir.path()).unwrap();
    server.enroll(enrollment(1), T0).await.unwrap();
    server
        .heartbeat(&id(1), FleetState::Running, &facts(1), T0 + 5_000)
        .await
        .unwrap();
    let command = EmbeddedFleet::open(dir.path()).unwrap();
    assert!(command
        .change(&id(1), tag("env", "prod"), T0 + 6_000)
        .await
        .unwrap());
    command.enroll(enrollment(2), T0 + 7_000).await.unwrap();
    server.refresh().unwrap();
    let enrolled = server.enrolled(&id(1)).unwrap().unwrap();
    assert_eq!(enrolled.enrollment.tags.get("env"), Some("prod"));
    // Replaced in the view, still seen when it was.
    assert_eq!(enrolled.last_seen_ms(), T0 + 5_000);
    // Appeared by catching up: seen at its record's time.
    assert_eq!(
        server.enrolled(&id(2)).unwrap().unwrap().last_seen_ms(),
        T0 + 7_000
    );
}

#[tokio::test]
async fn the_refresher_catches_up_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedFleet::open(dir.path()).unwrap();
    let command = EmbeddedFleet::open(dir.path()).unwrap();
    command.enroll(enrollment(1), T0).await.unwrap();
    command
        .change(&id(1), InstanceChange::Terminate, T0 + 1)
        .await
        .unwrap();
    eventually("the server sees the termination", || {
        server
            .enrolled(&id(1))
            .unwrap()
            .is_some_and(|e| e.enrollment.state == FleetState::Terminated)
    });
}

#[tokio::test]
async fn a_torn_last_line_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let fleet = EmbeddedFleet::open(dir.path()).unwrap();
        fleet.enroll(enrollment(1), T0).await.unwrap();
        fleet.enroll(enrollment(2), T0).await.unwrap();
    }
    let whole = std::fs::read(log_path(&dir)).unwrap();
    // As if the process died halfway through writing a third record.
    append_raw(&dir, &whole[..whole.len() / 3]);
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    assert_eq!(fleet.all_enrolled().unwrap().len(), 2);
    assert_eq!(log_len(&dir), whole.len() as u64);
    // And the next write starts a line of its own.
    fleet.enroll(enrollment(3), T0).await.unwrap();
    drop(fleet);
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    assert_eq!(fleet.all_enrolled().unwrap().len(), 3);
}

#[tokio::test]
async fn a_writer_cuts_a_torn_line_another_process_left() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedFleet::open(dir.path()).unwrap();
    server.enroll(enrollment(1), T0).await.unwrap();
    // A command died mid-write while the server ran.
    append_raw(&dir, b"{\"enroll\":{\"enrollment\":{\"inst");
    server.enroll(enrollment(2), T0).await.unwrap();
    drop(server);
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    assert_eq!(fleet.all_enrolled().unwrap().len(), 2);
}

#[tokio::test]
async fn a_damaged_line_in_the_middle_is_refused_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    {
        let fleet = EmbeddedFleet::open(dir.path()).unwrap();
        for n in 1..=3 {
            fleet.enroll(enrollment(n), T0).await.unwrap();
        }
    }
    let text = std::fs::read_to_string(log_path(&dir)).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{\"enroll\":{\"enrollment\":";
    std::fs::write(log_path(&dir), lines.join("\n") + "\n").unwrap();
    let error = EmbeddedFleet::open(dir.path()).err().unwrap().to_string();
    assert!(error.contains("fleet.log line 2:"), "{error}");
}

#[tokio::test]
async fn lines_over_the_limit_are_refused_on_write_and_at_replay() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    let mut huge = enrollment(1);
    huge.facts.hostname = "h".repeat(MAX_LINE_BYTES);
    let error = fleet.enroll(huge, T0).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    fleet.enroll(enrollment(1), T0).await.unwrap();
    let len = log_len(&dir);
    // A change that would make the enrollment too long for one line.
    let error = fleet
        .change(&id(1), tag("notes", &"n".repeat(MAX_LINE_BYTES)), T0)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    assert_eq!(log_len(&dir), len);
    drop(fleet);

    let mut long_line = vec![b' '; MAX_LINE_BYTES + 10];
    long_line.push(b'\n');
    append_raw(&dir, &long_line);
    let error = EmbeddedFleet::open(dir.path()).err().unwrap().to_string();
    assert!(error.contains("fleet.log line 2: longer than"), "{error}");
}

#[tokio::test]
async fn compaction_while_another_handle_is_open_keeps_its_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedFleet::open(dir.path()).unwrap();
    server.enroll(enrollment(1), T0).await.unwrap();
    server
        .create_token(token("00000000000000aa", 5))
        .await
        .unwrap();
    // Many dead records, written as the server would, without 1,200 syncs.
    let mut dead = Vec::new();
    for n in 0..1_200u32 {
        let record = Record::Change {
            id: id(1),
            change: tag("generation", &n.to_string()),
            at: T0 + u64::from(n),
        };
        dead.extend(encode(&record).unwrap());
    }
    append_raw(&dir, &dead);
    server.refresh().unwrap();
    server
        .heartbeat(&id(1), FleetState::Running, &facts(1), T0 + 9_000)
        .await
        .unwrap();

    let command = EmbeddedFleet::open(dir.path()).unwrap();
    assert_eq!(log_lines(&dir), 2);
    assert!(!dir.path().join(COMPACTING_FILE).exists());
    assert_eq!(generation(&command, &id(1)), "1199");

    // The server still has the old file open; its writes must land in the new one.
    assert!(server
        .change(&id(1), tag("after", "compaction"), T0 + 10_000)
        .await
        .unwrap());
    server
        .redeem_token("00000000000000aa", SECRET, T0 + 10_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log_lines(&dir), 4);
    let enrolled = server.enrolled(&id(1)).unwrap().unwrap();
    assert_eq!(enrolled.enrollment.tags.get("after").unwrap(), "compaction");
    assert_eq!(enrolled.last_seen_ms(), T0 + 9_000);
    command.refresh().unwrap();
    assert_eq!(
        command
            .enrolled(&id(1))
            .unwrap()
            .unwrap()
            .enrollment
            .tags
            .get("after")
            .unwrap(),
        "compaction"
    );
    drop((server, command));

    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    let enrollment = &fleet.enrolled(&id(1)).unwrap().unwrap().enrollment;
    assert_eq!(enrollment.tags.get("after").unwrap(), "compaction");
    assert_eq!(enrollment.tags.get("generation").unwrap(), "1199");
    assert_eq!(fleet.tokens().await.unwrap()[0].used, 1);
}

#[tokio::test]
async fn a_compaction_that_fails_leaves_the_log_and_the_start_alone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let fleet = EmbeddedFleet::open(dir.path()).unwrap();
        fleet.enroll(enrollment(1), T0).await.unwrap();
    }
    let mut dead = Vec::new();
    for n in 0..1_200u32 {
        let change = tag("generation", &n.to_string());
        dead.extend(
            encode(&Record::Change {
                id: id(1),
                change,
                at: T0,
            })
            .unwrap(),
        );
    }
    append_raw(&dir, &dead);
    // Where compaction writes, something it cannot replace.
    std::fs::create_dir(dir.path().join(COMPACTING_FILE)).unwrap();
    std::fs::write(dir.path().join(COMPACTING_FILE).join("x"), b"").unwrap();
    let fleet = EmbeddedFleet::open(dir.path()).unwrap();
    assert_eq!(log_lines(&dir), 1_201);
    assert_eq!(generation(&fleet, &id(1)), "1199");
    fleet.change(&id(1), tag("later", "yes"), T0).await.unwrap();
    assert_eq!(log_lines(&dir), 1_202);
}

#[tokio::test]
async fn a_small_log_is_not_compacted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let fleet = EmbeddedFleet::open(dir.path()).unwrap();
        fleet.enroll(enrollment(1), T0).await.unwrap();
        for n in 0..10 {
            fleet
                .change(&id(1), tag("n", &n.to_string()), T0)
                .await
                .unwrap();
        }
    }
    EmbeddedFleet::open(dir.path()).unwrap();
    assert_eq!(log_lines(&dir), 11);
}

#[tokio::test]
async fn a_view_that_cannot_catch_up_fails_closed_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedFleet::open(dir.path()).unwrap();
    server.enroll(enrollment(1), T0).await.unwrap();
    assert!(server.enrolled(&id(1)).unwrap().is_some());
    append_raw(&dir, b"not a record\n");
    let error = server.refresh().unwrap_err();
    assert!(
        format!("{:?}", error).contains("fleet.log line 2"),
        "{error:?}"
    );
    let failed_at = Instant::now();
    eventually("reads fail", || server.enrolled(&id(1)).is_err());
    assert!(failed_at.elapsed() < Duration::from_millis(STALE_AFTER_MS + 1_000));
    assert!(server.all_enrolled().is_err());
    assert!(server
        .heartbeat(&id(1), FleetState::Running, &facts(1), T0 + 1)
        .await
        .is_err());
    // Writes are refused too: they decide on the whole log.
    assert!(server.enroll(enrollment(2), T0).await.is_err());
}
