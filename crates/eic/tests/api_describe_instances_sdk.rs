//! EC2 DescribeInstances on the API listener, through the AWS SDK for
//! Rust's `aws-sdk-ec2` client, on the same fixtures and extra config as
//! the boto3 test (tests/api_describe_instances.rs): the same endpoint URL
//! as the Instance Connect API, SigV4 service `ec2`.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use aws_sdk_ec2 as ec2;
use common::{Server, ADMIN, ALICE, BOB, REGION, SEED_KEY};
use ec2::error::{ProvideErrorMetadata, SdkError};
use ec2::operation::describe_instances::{DescribeInstancesError, DescribeInstancesOutput};
use ec2::operation::RequestId;
use ec2::types::{Filter, Instance, InstanceStateName, InstanceType};

/// The boto3 test's extra config, verbatim: a principal of account
/// 111122223333 that may push but not describe, and an inactive key.
const EXTRA: &str = r#"
[[principals]]
arn = "arn:aws:iam::111122223333:user/pusher"
access_keys = [{ id = "AKIDPUSHEREXAMPLE", secret = "pusherSecret/EXAMPLE00000000000000000" }]
policies = ['''
{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Action": "ec2-instance-connect:SendSSHPublicKey",
    "Resource": "*"
  }]
}
''']

[[principals]]
arn = "arn:aws:iam::111122223333:user/retired"
access_keys = [{ id = "AKIDINACTIVEEXAMPLE", secret = "inactiveSecret/EXAMPLE000000000000000", status = "inactive" }]
"#;

const PUSHER: (&str, &str) = ("AKIDPUSHEREXAMPLE", "pusherSecret/EXAMPLE00000000000000000");
const INACTIVE: (&str, &str) = (
    "AKIDINACTIVEEXAMPLE",
    "inactiveSecret/EXAMPLE000000000000000",
);

/// The admin's account's instances, in id order (the order EC2 answers in).
const ADMIN_INSTANCES: [&str; 6] = [
    "i-0123456789abcdef0",
    "i-0aaaaaaaaaaaaaaa1",
    "i-0bbbbbbbbbbbbbbb2",
    "i-0ccccccccccccccc3",
    "i-0ddddddddddddddd4",
    "i-abcd1234",
];

/// The SDK's ec2 client for `server`, signing as `creds` (with a session
/// token for temporary credentials), without retries.
fn client_with_token(server: &Server, creds: (&str, &str), token: Option<&str>) -> ec2::Client {
    let conf = ec2::Config::builder()
        .behavior_version(ec2::config::BehaviorVersion::latest())
        .region(ec2::config::Region::new(REGION))
        .credentials_provider(ec2::config::Credentials::new(
            creds.0,
            creds.1,
            token.map(str::to_owned),
            None,
            "test",
        ))
        .endpoint_url(server.endpoint())
        .retry_config(ec2::config::retry::RetryConfig::disabled())
        .build();
    ec2::Client::from_conf(conf)
}

fn client(server: &Server, creds: (&str, &str)) -> ec2::Client {
    client_with_token(server, creds, None)
}

fn instances(out: &DescribeInstancesOutput) -> Vec<&Instance> {
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect()
}

fn ids(out: &DescribeInstancesOutput) -> Vec<&str> {
    instances(out)
        .into_iter()
        .map(|i| i.instance_id().unwrap())
        .collect()
}

fn filter(name: &str, values: &[&str]) -> Filter {
    let mut f = Filter::builder().name(name);
    for v in values {
        f = f.values(*v);
    }
    f.build()
}

/// The ids that `filters` select, as the admin.
async fn filtered(c: &ec2::Client, filters: Vec<Filter>) -> Vec<String> {
    let out = c
        .describe_instances()
        .set_filters(Some(filters))
        .send()
        .await
        .unwrap();
    ids(&out).into_iter().map(str::to_owned).collect()
}

/// The service error's code and message, and the HTTP status it came with.
fn refused(e: SdkError<DescribeInstancesError>) -> (String, String, u16) {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let e = e.into_service_error();
    assert!(
        e.request_id().is_some_and(|id| id.len() == 36),
        "a request id: {e:?}"
    );
    (
        e.code()
            .unwrap_or_else(|| panic!("a code: {e:?}"))
            .to_owned(),
        e.message().unwrap_or_default().to_owned(),
        status.unwrap(),
    )
}

#[tokio::test]
async fn describe_instances_with_the_rust_sdk() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), EXTRA);
    let c = client(&server, ADMIN);

    // --- By ids: every field the fixtures set. ---
    let out = c
        .describe_instances()
        .instance_ids("i-abcd1234")
        .instance_ids("i-0123456789abcdef0")
        .send()
        .await
        .unwrap();
    assert_eq!(out.request_id().map(str::len), Some(36));
    assert_eq!(out.next_token(), None);
    assert_eq!(ids(&out), ["i-0123456789abcdef0", "i-abcd1234"]);
    for r in out.reservations() {
        assert_eq!(r.owner_id(), Some("111122223333"));
        assert_eq!(r.instances().len(), 1);
        let digits = &r.instances()[0].instance_id().unwrap()[2..];
        assert_eq!(r.reservation_id(), Some(format!("r-{digits}").as_str()));
    }
    let found = instances(&out);
    let (ops, dev) = (found[0], found[1]);
    assert_eq!(dev.private_ip_address(), Some("127.0.0.1"));
    assert_eq!(
        dev.private_dns_name(),
        Some("ip-127-0-0-1.us-west-2.compute.internal")
    );
    assert_eq!(dev.public_ip_address(), None);
    assert_eq!(dev.public_dns_name(), None);
    assert_eq!(dev.vpc_id(), Some("vpc-0de00000000000001"));
    assert_eq!(dev.subnet_id(), Some("subnet-0de00000000000001"));
    assert_eq!(
        dev.placement().unwrap().availability_zone(),
        Some("us-west-2a")
    );
    let state = dev.state().unwrap();
    assert_eq!(state.code(), Some(16));
    assert_eq!(state.name(), Some(&InstanceStateName::Running));
    assert_eq!(dev.instance_type(), Some(&InstanceType::T3Micro));
    let tags: Vec<(&str, &str)> = dev
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags, [("Team", "dev")]);
    // LaunchTime parses as a timestamp, and is when the server started:
    // within the last hour.
    let launched = dev.launch_time().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 3600..=now + 60).contains(&launched), "{launched}");
    assert_eq!(ops.launch_time(), dev.launch_time());
    assert_eq!(
        ops.placement().unwrap().availability_zone(),
        Some("us-west-2b")
    );
    assert_eq!(ops.instance_type(), Some(&InstanceType::M5Large));
    assert_eq!(ops.tags().len(), 1);
    assert_eq!(ops.tags()[0].value(), Some("ops"));

    // Instances without a VPC, subnet or tags, in the other states.
    let out = c
        .describe_instances()
        .instance_ids("i-0aaaaaaaaaaaaaaa1")
        .instance_ids("i-0bbbbbbbbbbbbbbb2")
        .instance_ids("i-0ddddddddddddddd4")
        .instance_ids("i-0ccccccccccccccc3")
        .send()
        .await
        .unwrap();
    let states: Vec<(&str, Option<i32>, &str, Option<&str>)> = instances(&out)
        .iter()
        .map(|i| {
            let s = i.state().unwrap();
            (
                s.name().unwrap().as_str(),
                s.code(),
                i.instance_type().unwrap().as_str(),
                i.private_ip_address(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("stopped", Some(80), "t3.micro", Some("127.0.10.1")),
            ("terminated", Some(48), "t3.micro", Some("127.0.10.2")),
            ("running", Some(16), "t2.micro", Some("127.0.10.3")),
            ("pending", Some(0), "t3.micro", Some("127.0.10.4")),
        ]
    );
    for i in instances(&out) {
        assert_eq!(i.vpc_id(), None);
        assert_eq!(i.subnet_id(), None);
        assert!(i.tags().is_empty());
    }

    // Without ids or filters: all of the caller's account, and only it.
    let out = c.describe_instances().send().await.unwrap();
    assert_eq!(ids(&out), ADMIN_INSTANCES);
    let out = client(&server, BOB)
        .describe_instances()
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&out), ["i-0eeeeeeeeeeeeeee5"]);
    assert_eq!(out.reservations()[0].owner_id(), Some("444455556666"));
    let out = client(&server, ALICE)
        .describe_instances()
        .instance_ids("i-abcd1234")
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&out), ["i-abcd1234"]);

    // --- Filters: names, wildcards, ORed values, ANDed filters. ---
    let f = |name: &str, values: &[&str]| filtered(&c, vec![filter(name, values)]);
    assert_eq!(f("tag:Team", &["dev"]).await, ["i-abcd1234"]);
    assert_eq!(f("tag:Team", &["d*"]).await, ["i-abcd1234"]);
    assert_eq!(f("tag:Team", &["DEV"]).await, Vec::<String>::new());
    assert_eq!(
        f("tag:Team", &["o?s", "dev"]).await,
        ["i-0123456789abcdef0", "i-abcd1234"]
    );
    assert_eq!(
        f("tag-key", &["Te?m"]).await,
        ["i-0123456789abcdef0", "i-abcd1234"]
    );
    assert_eq!(f("tag-key", &["Name"]).await, Vec::<String>::new());
    assert_eq!(f("tag-value", &["*ps"]).await, ["i-0123456789abcdef0"]);
    assert_eq!(
        f("instance-state-name", &["stopped"]).await,
        ["i-0aaaaaaaaaaaaaaa1"]
    );
    assert_eq!(
        f("instance-state-name", &["running", "pending"]).await,
        [
            "i-0123456789abcdef0",
            "i-0ccccccccccccccc3",
            "i-0ddddddddddddddd4",
            "i-abcd1234"
        ]
    );
    assert_eq!(
        f("instance-state-name", &["*ing"]).await,
        f("instance-state-name", &["running", "pending"]).await
    );
    assert_eq!(
        f("instance-state-code", &["48"]).await,
        ["i-0bbbbbbbbbbbbbbb2"]
    );
    assert_eq!(
        f("availability-zone", &["us-west-2b"]).await,
        ["i-0123456789abcdef0"]
    );
    assert_eq!(
        f("availability-zone", &["us-west-2?"]).await,
        ADMIN_INSTANCES
    );
    assert_eq!(
        f("private-ip-address", &["127.0.0.1"]).await,
        ["i-0123456789abcdef0", "i-abcd1234"]
    );
    assert_eq!(
        f("private-ip-address", &["127.0.10.*"]).await,
        [
            "i-0aaaaaaaaaaaaaaa1",
            "i-0bbbbbbbbbbbbbbb2",
            "i-0ccccccccccccccc3",
            "i-0ddddddddddddddd4"
        ]
    );
    assert_eq!(
        f("private-dns-name", &["ip-127-0-10-3.*"]).await,
        ["i-0ccccccccccccccc3"]
    );
    assert_eq!(
        f("vpc-id", &["vpc-0de00000000000001"]).await,
        ["i-0123456789abcdef0", "i-abcd1234"]
    );
    assert_eq!(
        f("subnet-id", &["subnet-*"]).await,
        ["i-0123456789abcdef0", "i-abcd1234"]
    );
    // A name without values: the instance has the attribute at all.
    assert_eq!(
        f("vpc-id", &[]).await,
        ["i-0123456789abcdef0", "i-abcd1234"]
    );
    assert_eq!(f("ip-address", &["*"]).await, Vec::<String>::new());
    assert_eq!(
        f("instance-type", &["t?.micro"]).await,
        [
            "i-0aaaaaaaaaaaaaaa1",
            "i-0bbbbbbbbbbbbbbb2",
            "i-0ccccccccccccccc3",
            "i-0ddddddddddddddd4",
            "i-abcd1234"
        ]
    );
    assert_eq!(
        f("instance-type", &["m5.large"]).await,
        ["i-0123456789abcdef0"]
    );
    assert_eq!(f("instance-id", &["i-abcd*"]).await, ["i-abcd1234"]);
    // A backslash makes a wildcard literal.
    assert_eq!(
        f("instance-type", &[r"t\?.micro"]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        filtered(
            &c,
            vec![
                filter("instance-type", &["t3.micro"]),
                filter("instance-state-name", &["running", "stopped"]),
            ]
        )
        .await,
        ["i-0aaaaaaaaaaaaaaa1", "i-abcd1234"]
    );
    // Filters select among the ids asked for.
    let out = c
        .describe_instances()
        .instance_ids("i-abcd1234")
        .instance_ids("i-0aaaaaaaaaaaaaaa1")
        .filters(filter("instance-state-name", &["running"]))
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&out), ["i-abcd1234"]);
    // An empty answer is an empty list, not an error.
    let out = c
        .describe_instances()
        .filters(filter("availability-zone", &["eu-west-1a"]))
        .send()
        .await
        .unwrap();
    assert!(out.reservations().is_empty());
    assert_eq!(out.next_token(), None);

    // --- Paging: the SDK's paginator, and MaxResults/NextToken by hand. ---
    let pages = c
        .describe_instances()
        .into_paginator()
        .page_size(5)
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(ids(&pages[0]).len(), 5);
    assert!(pages[0].next_token().is_some_and(|t| !t.is_empty()));
    assert_eq!(pages[1].next_token(), None);
    let paged: Vec<&str> = pages.iter().flat_map(ids).collect();
    assert_eq!(paged, ADMIN_INSTANCES);
    // The items paginator flattens reservations.
    let reservations = c
        .describe_instances()
        .into_paginator()
        .page_size(5)
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    let items: Vec<&str> = reservations
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| i.instance_id().unwrap())
        .collect();
    assert_eq!(items, ADMIN_INSTANCES);
    // The paginator keeps the filters on every page.
    let pages = c
        .describe_instances()
        .filters(filter("instance-type", &["t?.micro"]))
        .into_paginator()
        .page_size(5)
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 1, "5 match: one full page, no token");
    assert_eq!(ids(&pages[0]).len(), 5);
    assert_eq!(pages[0].next_token(), None);

    let first = c.describe_instances().max_results(5).send().await.unwrap();
    assert_eq!(ids(&first), ADMIN_INSTANCES[..5]);
    let token = first.next_token().unwrap();
    let rest = c
        .describe_instances()
        .max_results(5)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&rest), ["i-abcd1234"]);
    assert_eq!(rest.next_token(), None);

    // --- DryRun. ---
    let (code, message, status) = refused(
        c.describe_instances()
            .dry_run(true)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "DryRunOperation");
    assert_eq!(status, 412);
    assert!(message.contains("would have succeeded"), "{message}");
    let (code, _, _) = refused(
        client(&server, PUSHER)
            .describe_instances()
            .dry_run(true)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "UnauthorizedOperation");
    let out = c.describe_instances().dry_run(false).send().await.unwrap();
    assert_eq!(ids(&out), ADMIN_INSTANCES);

    // --- Errors, by code from the SDK's error metadata. ---
    // Unknown, and another account's: the same error, the same wording.
    let (code, unknown, status) = refused(
        client(&server, BOB)
            .describe_instances()
            .instance_ids("i-0fffffffffffffff9")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((code.as_str(), status), ("InvalidInstanceID.NotFound", 400));
    assert_eq!(
        unknown,
        "The instance ID 'i-0fffffffffffffff9' does not exist"
    );
    let (code, theirs, _) = refused(
        client(&server, BOB)
            .describe_instances()
            .instance_ids("i-abcd1234")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidInstanceID.NotFound");
    assert_eq!(
        theirs.replace("i-abcd1234", "X"),
        unknown.replace("i-0fffffffffffffff9", "X")
    );
    // One known id among unknown ones: the whole call fails, naming them.
    let (code, message, _) = refused(
        c.describe_instances()
            .instance_ids("i-abcd1234")
            .instance_ids("i-0eeeeeeeeeeeeeee5")
            .instance_ids("i-0fffffffffffffff9")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidInstanceID.NotFound");
    assert_eq!(
        message,
        "The instance IDs 'i-0eeeeeeeeeeeeeee5, i-0fffffffffffffff9' do not exist"
    );
    // A thousand ids (EC2's most) in one form body.
    let many: Vec<String> = (0..1000)
        .map(|n| format!("i-{:017x}", 0xf00000000000000_u64 + n))
        .collect();
    let (code, _, _) = refused(
        c.describe_instances()
            .set_instance_ids(Some(many))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidInstanceID.NotFound");

    let (code, message, _) = refused(
        c.describe_instances()
            .instance_ids("not-an-id")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidInstanceID.Malformed");
    assert!(message.contains("not-an-id"), "{message}");

    // The SDK checks no ranges: the server refuses MaxResults out of 5..=1000.
    for bad in [4, 1001, -1] {
        let (code, message, status) = refused(
            c.describe_instances()
                .max_results(bad)
                .send()
                .await
                .unwrap_err(),
        );
        assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));
        assert!(message.contains("maxResults"), "{message}");
    }
    let (code, message, _) = refused(
        c.describe_instances()
            .filters(filter("owner-id", &["111122223333"]))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(message.contains("owner-id"), "{message}");
    let (code, _, _) = refused(
        c.describe_instances()
            .max_results(5)
            .next_token("not-a-token")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidParameterValue");
    // A token is good only for the query that issued it.
    let (code, _, _) = refused(
        c.describe_instances()
            .max_results(5)
            .next_token(token)
            .filters(filter("instance-state-name", &["running"]))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidParameterValue");
    let (code, _, _) = refused(
        c.describe_instances()
            .instance_ids("i-abcd1234")
            .max_results(5)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidParameterCombination");

    // A principal without ec2:DescribeInstances.
    let (code, message, status) = refused(
        client(&server, PUSHER)
            .describe_instances()
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((code.as_str(), status), ("UnauthorizedOperation", 403));
    assert!(
        message.contains("arn:aws:iam::111122223333:user/pusher"),
        "{message}"
    );
    assert!(message.contains("ec2:DescribeInstances"), "{message}");

    // Wrong secret, unknown key, inactive key, bad session token.
    for creds in [
        (ADMIN.0, "wrongSecret/EXAMPLE00000000000000000000"),
        ("AKIDNOSUCHKEY", ADMIN.1),
        INACTIVE,
    ] {
        let (code, _, status) = refused(
            client(&server, creds)
                .describe_instances()
                .send()
                .await
                .unwrap_err(),
        );
        assert_eq!((code.as_str(), status), ("AuthFailure", 401), "{creds:?}");
    }

    // Temporary credentials: the SDK sends X-Amz-Security-Token.
    let (status, out, err) = common::eic(&[
        "credentials",
        "issue",
        "--config",
        server.config.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "--principal",
        "arn:aws:iam::111122223333:user/alice",
        "--ttl",
        "1h",
    ]);
    assert_eq!(status, 0, "{err}");
    let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
    let key = (
        issued["AccessKeyId"].as_str().unwrap(),
        issued["SecretAccessKey"].as_str().unwrap(),
    );
    let out = client_with_token(&server, key, issued["SessionToken"].as_str())
        .describe_instances()
        .instance_ids("i-abcd1234")
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&out), ["i-abcd1234"]);
    let (code, _, _) = refused(
        client_with_token(&server, key, Some("FwoGZXIvYXdzEXAMPLETOKEN"))
            .describe_instances()
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "AuthFailure");

    // The same endpoint still serves Instance Connect.
    let out = common::sdk_client(&server, ADMIN)
        .send_ssh_public_key()
        .instance_id("i-abcd1234")
        .instance_os_user("ec2-user")
        .availability_zone("us-west-2a")
        .ssh_public_key(SEED_KEY)
        .send()
        .await
        .unwrap();
    assert!(out.success);
}

/// More instances than the dev fixtures, in an account of their own:
/// the paginator over several pages, and the address fields the fixtures
/// leave unset (public IPv4, IPv6).
const FLEET_ACCOUNT: &str = "777788889999";
const FLEET: (&str, &str) = ("AKIDFLEETEXAMPLE", "fleetSecret/EXAMPLE0000000000000000000");
const FLEET_SIZE: usize = 23;

fn fleet_id(n: usize) -> String {
    format!("i-0f{n:015x}")
}

/// Fixture addresses stay on loopback: the one IPv6 loopback address goes
/// to instance 10 only, so a filter on it finds exactly that one.
fn fleet_ipv6(n: usize) -> Option<&'static str> {
    (n == 10).then_some("::1")
}

fn fleet_config() -> String {
    let mut toml = format!(
        r#"
[[accounts]]
id = "{FLEET_ACCOUNT}"

[[principals]]
arn = "arn:aws:iam::{FLEET_ACCOUNT}:user/fleet"
access_keys = [{{ id = "{}", secret = "{}" }}]
policies = ['''
{{
  "Version": "2012-10-17",
  "Statement": [{{ "Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*" }}]
}}
''']
"#,
        FLEET.0, FLEET.1
    );
    // Written in reverse: the answer's order is the ids', not the config's.
    for n in (0..FLEET_SIZE).rev() {
        let addresses = if n % 2 == 0 {
            let ipv6 = fleet_ipv6(n)
                .map(|ip| format!("ipv6_address = \"{ip}\"\n"))
                .unwrap_or_default();
            format!("public_ip_address = \"127.0.3.{n}\"\n{ipv6}")
        } else {
            String::new()
        };
        toml.push_str(&format!(
            r#"
[[instances]]
id = "{}"
account = "{FLEET_ACCOUNT}"
state = "running"
availability_zone = "us-west-2c"
instance_type = "c5.large"
private_ip_address = "127.0.2.{n}"
{addresses}tags = {{ Name = "fleet-{n}" }}
"#,
            fleet_id(n)
        ));
    }
    toml
}

#[tokio::test]
async fn paginator_over_several_pages() {
    let server = Server::start(&fleet_config());
    let c = client(&server, FLEET);
    let all: Vec<String> = (0..FLEET_SIZE).map(fleet_id).collect();

    let pages = c
        .describe_instances()
        .into_paginator()
        .page_size(5)
        .send()
        .try_collect()
        .await
        .unwrap();
    let sizes: Vec<usize> = pages.iter().map(|p| ids(p).len()).collect();
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    for (n, page) in pages.iter().enumerate() {
        assert_eq!(page.next_token().is_some(), n + 1 < pages.len(), "page {n}");
    }
    let paged: Vec<&str> = pages.iter().flat_map(ids).collect();
    assert_eq!(paged, all, "every instance exactly once, in order");

    // Filtered pages: the even instances (those with a public address).
    let pages = c
        .describe_instances()
        .filters(filter("ip-address", &["127.0.3.*"]))
        .into_paginator()
        .page_size(5)
        .send()
        .try_collect()
        .await
        .unwrap();
    let sizes: Vec<usize> = pages.iter().map(|p| ids(p).len()).collect();
    assert_eq!(sizes, [5, 5, 2]);
    let even: Vec<String> = (0..FLEET_SIZE).step_by(2).map(fleet_id).collect();
    let paged: Vec<&str> = pages.iter().flat_map(ids).collect();
    assert_eq!(paged, even);
    for i in pages.iter().flat_map(instances) {
        let n = usize::from_str_radix(&i.instance_id().unwrap()[4..], 16).unwrap();
        assert_eq!(i.public_ip_address(), Some(format!("127.0.3.{n}").as_str()));
        assert_eq!(i.ipv6_address(), fleet_ipv6(n));
        assert_eq!(
            i.private_ip_address(),
            Some(format!("127.0.2.{n}").as_str())
        );
        assert_eq!(i.tags()[0].value(), Some(format!("fleet-{n}").as_str()));
    }
    let out = c
        .describe_instances()
        .instance_ids(fleet_id(1))
        .send()
        .await
        .unwrap();
    assert_eq!(instances(&out)[0].public_ip_address(), None);
    assert_eq!(instances(&out)[0].ipv6_address(), None);
    assert_eq!(
        filtered(&c, vec![filter("ipv6-address", &["::1"])]).await,
        [fleet_id(10)]
    );

    // The largest page holds them all, without a token.
    let out = c
        .describe_instances()
        .max_results(1000)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&out), all);
    assert_eq!(out.next_token(), None);
}

/// The principal's bucket (3 tokens, shared with pushes) refuses with
/// RequestLimitExceeded, as in the boto3 test.
#[tokio::test]
async fn describe_instances_throttled() {
    let server = Server::start(
        r#"
[throttling]
principal = { rate = 0.001, burst = 3.0 }
"#,
    );
    let c = client(&server, ADMIN);
    let describe = || c.describe_instances().instance_ids("i-abcd1234").send();
    describe().await.unwrap();
    let pushed = common::sdk_client(&server, ADMIN)
        .send_ssh_public_key()
        .instance_id("i-abcd1234")
        .instance_os_user("ec2-user")
        .ssh_public_key(SEED_KEY)
        .send()
        .await
        .unwrap();
    assert!(pushed.success);
    describe().await.unwrap();
    let (code, _, status) = refused(describe().await.unwrap_err());
    assert_eq!((code.as_str(), status), ("RequestLimitExceeded", 503));
}
