//! The real peer: botocore's own EC2 parser reads eic-ec2's XML.
//!
//! Each case is rendered here, then `botocore_parse.py` parses it with
//! `botocore.parsers.create_parser('ec2')` and the operation's output shape
//! (DescribeInstances' or DescribeInstanceConnectEndpoints') from
//! botocore's bundled model, exactly as boto3 would, and checks the
//! expectations listed here against the dict botocore returns.
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eic_ec2::{
    describe_endpoints, describe_map, parse_query, render_describe_instance_connect_endpoints,
    render_describe_instances, Ec2Error, EndpointState, EndpointView, InstanceState, InstanceView,
    QueryRequest,
};
use serde_json::{json, Value};

const REQUEST_ID: &str = "5b3c1c2e-0d6f-4a39-9e4c-7f1f0e1a2b3c";

/// 2026-11-28T12:00:00.250Z plus `n` seconds.
fn launch(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_795_867_200_250 + 1000 * n)
}

fn fleet() -> BTreeMap<String, InstanceView> {
    let mut a = InstanceView::new(
        "i-0123456789abcdef0",
        "111122223333",
        InstanceState::Running,
        "t3.micro",
        "us-west-2a",
        launch(0),
    );
    a.image_id = Some("ami-0abcdef1234567890".into());
    a.private_ip = Some("127.0.0.1".parse().unwrap());
    a.public_ip = Some("127.0.10.5".parse().unwrap());
    a.ipv6 = Some("::1".parse().unwrap());
    a.private_dns_name = Some("ip-127-0-0-1.us-west-2.compute.internal".into());
    a.public_dns_name = Some("localhost".into());
    a.vpc_id = Some("vpc-0a1b2c3d4e5f67890".into());
    a.subnet_id = Some("subnet-0a1b2c3d4e5f67890".into());
    a.tags.insert("Name".into(), "web1".into());
    a.tags.insert("team".into(), "a&b <c> \"d\" 'e' é".into());
    a.tags.insert("empty".into(), String::new());

    let mut b = InstanceView::new(
        "i-0123456789abcdef1",
        "111122223333",
        InstanceState::Stopped,
        "m5.large",
        "us-west-2b",
        launch(1),
    );
    b.private_ip = Some("127.0.0.2".parse().unwrap());

    let c = InstanceView::new(
        "i-0123456789abcdef2",
        "111122223333",
        InstanceState::ShuttingDown,
        "t3.micro",
        "us-west-2c",
        launch(2),
    );
    let d = InstanceView::new(
        "i-0123456789abcdef3",
        "111122223333",
        InstanceState::Pending,
        "t3.micro",
        "us-west-2a",
        launch(3),
    );
    [a, b, c, d]
        .into_iter()
        .map(|v| (v.instance_id.clone(), v))
        .collect()
}

fn request(tail: &str) -> eic_ec2::DescribeInstancesRequest {
    let body = format!("Action=DescribeInstances&Version=2016-11-15{tail}");
    let QueryRequest::DescribeInstances(r) = parse_query(body.as_bytes()).unwrap() else {
        panic!("not a DescribeInstances request");
    };
    r
}

fn absent() -> Value {
    json!({"absent": true})
}

fn case(name: &str, status: u16, xml: String, expect: Vec<(Value, Value)>) -> Value {
    operation_case("DescribeInstances", name, status, xml, expect)
}

fn operation_case(
    operation: &str,
    name: &str,
    status: u16,
    xml: String,
    expect: Vec<(Value, Value)>,
) -> Value {
    let expect: Vec<Value> = expect.into_iter().map(|(p, w)| json!([p, w])).collect();
    json!({"name": name, "operation": operation, "status": status, "xml": xml, "expect": expect})
}

fn error_case(name: &str, e: &Ec2Error) -> Value {
    let operation = if e
        .code
        .as_str()
        .starts_with("InvalidInstanceConnectEndpointId")
    {
        "DescribeInstanceConnectEndpoints"
    } else {
        "DescribeInstances"
    };
    operation_case(
        operation,
        name,
        e.status(),
        e.render(REQUEST_ID),
        vec![
            (json!(["Error", "Code"]), json!(e.code.as_str())),
            (json!(["Error", "Message"]), json!(e.message)),
            (json!(["ResponseMetadata", "RequestId"]), json!(REQUEST_ID)),
            (
                json!(["ResponseMetadata", "HTTPStatusCode"]),
                json!(e.status()),
            ),
            (json!(["Reservations"]), absent()),
        ],
    )
}

fn run_botocore(cases: &[Value]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/botocore_parse.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (with botocore installed; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "botocore_parse.py failed:\n{report}");
    eprintln!("{report}");
}

#[test]
fn botocore_parses_answers_and_errors() {
    let f = fleet();
    let mut cases = Vec::new();

    // A first page of three (of four), with a NextToken.
    let page = describe_map(&request("&MaxResults=5"), &f).unwrap();
    assert_eq!(page.instances.len(), 4);
    let first = {
        let mut r = request("&MaxResults=5");
        r.max_results = Some(3); // below EC2's minimum, to page a small fleet
        describe_map(&r, &f).unwrap()
    };
    let token = first.next_token.clone().unwrap();
    let i0 = |rest: &[&str]| {
        let mut p = vec![
            json!("Reservations"),
            json!(0),
            json!("Instances"),
            json!(0),
        ];
        p.extend(rest.iter().map(|s| json!(s)));
        Value::Array(p)
    };
    let i1 = |rest: &[&str]| {
        let mut p = vec![
            json!("Reservations"),
            json!(1),
            json!("Instances"),
            json!(0),
        ];
        p.extend(rest.iter().map(|s| json!(s)));
        Value::Array(p)
    };
    cases.push(case(
        "first page",
        200,
        render_describe_instances(REQUEST_ID, &first),
        vec![
            (json!(["ResponseMetadata", "RequestId"]), json!(REQUEST_ID)),
            (json!(["Reservations"]), json!({"len": 3})),
            (
                json!(["Reservations", 0, "ReservationId"]),
                json!("r-0123456789abcdef0"),
            ),
            (json!(["Reservations", 0, "OwnerId"]), json!("111122223333")),
            (json!(["Reservations", 0, "Groups"]), json!([])),
            (json!(["Reservations", 0, "Instances"]), json!({"len": 1})),
            (i0(&["InstanceId"]), json!("i-0123456789abcdef0")),
            (i0(&["ImageId"]), json!("ami-0abcdef1234567890")),
            (i0(&["State", "Name"]), json!("running")),
            (i0(&["State", "Code"]), json!(16)),
            (i0(&["InstanceType"]), json!("t3.micro")),
            (
                i0(&["LaunchTime"]),
                json!({"datetime": "2026-11-28T12:00:00.250000+00:00"}),
            ),
            (i0(&["Placement", "AvailabilityZone"]), json!("us-west-2a")),
            (i0(&["Placement", "Tenancy"]), json!("default")),
            (i0(&["PrivateIpAddress"]), json!("127.0.0.1")),
            (i0(&["PublicIpAddress"]), json!("127.0.10.5")),
            (i0(&["Ipv6Address"]), json!("::1")),
            (
                i0(&["PrivateDnsName"]),
                json!("ip-127-0-0-1.us-west-2.compute.internal"),
            ),
            (i0(&["PublicDnsName"]), json!("localhost")),
            (i0(&["VpcId"]), json!("vpc-0a1b2c3d4e5f67890")),
            (i0(&["SubnetId"]), json!("subnet-0a1b2c3d4e5f67890")),
            (
                i0(&["Tags"]),
                json!([
                    {"Key": "Name", "Value": "web1"},
                    {"Key": "empty", "Value": ""},
                    {"Key": "team", "Value": "a&b <c> \"d\" 'e' é"},
                ]),
            ),
            // The second instance lacks what it lacks.
            (i1(&["InstanceId"]), json!("i-0123456789abcdef1")),
            (i1(&["State", "Name"]), json!("stopped")),
            (i1(&["State", "Code"]), json!(80)),
            (i1(&["Placement", "AvailabilityZone"]), json!("us-west-2b")),
            (i1(&["PrivateIpAddress"]), json!("127.0.0.2")),
            (i1(&["PublicIpAddress"]), absent()),
            (i1(&["PublicDnsName"]), absent()),
            (i1(&["VpcId"]), absent()),
            (i1(&["SubnetId"]), absent()),
            (i1(&["ImageId"]), absent()),
            (i1(&["Tags"]), absent()),
            (
                i1(&["LaunchTime"]),
                json!({"datetime": "2026-11-28T12:00:01.250000+00:00"}),
            ),
            (
                json!(["Reservations", 2, "Instances", 0, "State", "Name"]),
                json!("shutting-down"),
            ),
            (
                json!(["Reservations", 2, "Instances", 0, "State", "Code"]),
                json!(32),
            ),
            (json!(["NextToken"]), json!(token)),
        ],
    ));

    // The last page: the token botocore read, sent back.
    let mut r = request(&format!("&MaxResults=5&NextToken={token}"));
    r.max_results = Some(3);
    let last = describe_map(&r, &f).unwrap();
    cases.push(case(
        "last page",
        200,
        render_describe_instances(REQUEST_ID, &last),
        vec![
            (json!(["Reservations"]), json!({"len": 1})),
            (i0(&["InstanceId"]), json!("i-0123456789abcdef3")),
            (i0(&["State", "Name"]), json!("pending")),
            (i0(&["State", "Code"]), json!(0)),
            (json!(["NextToken"]), absent()),
        ],
    ));

    // By id, as `mssh` and `aws ec2-instance-connect ssh` ask.
    let one = describe_map(&request("&InstanceId.1=i-0123456789abcdef0"), &f).unwrap();
    cases.push(case(
        "by id",
        200,
        render_describe_instances(REQUEST_ID, &one),
        vec![
            (json!(["Reservations"]), json!({"len": 1})),
            (i0(&["InstanceId"]), json!("i-0123456789abcdef0")),
            (json!(["NextToken"]), absent()),
        ],
    ));

    let none = describe_map(&request("&Filter.1.Name=tag%3Anope"), &f).unwrap();
    cases.push(case(
        "nothing matches",
        200,
        render_describe_instances(REQUEST_ID, &none),
        vec![
            (json!(["Reservations"]), json!([])),
            (json!(["NextToken"]), absent()),
            (json!(["ResponseMetadata", "RequestId"]), json!(REQUEST_ID)),
        ],
    ));

    // Every error, each as the code path that raises it builds it.
    let not_found = describe_map(&request("&InstanceId.1=i-0fffffffffffffff0"), &f).unwrap_err();
    let not_found_2 = describe_map(
        &request("&InstanceId.1=i-0fffffffffffffff0&InstanceId.2=i-0eeeeeeeeeeeeeee0"),
        &f,
    )
    .unwrap_err();
    let parse_err = |tail: &str| {
        parse_query(format!("Action=DescribeInstances&Version=2016-11-15{tail}").as_bytes())
            .unwrap_err()
    };
    let (endpoint_not_found, endpoint_malformed) = endpoint_errors();
    let errors = [
        ("InvalidInstanceID.NotFound", not_found),
        (
            "InvalidInstanceConnectEndpointId.NotFound",
            endpoint_not_found,
        ),
        (
            "InvalidInstanceConnectEndpointId.Malformed",
            endpoint_malformed,
        ),
        ("InvalidInstanceID.NotFound (several)", not_found_2),
        (
            "InvalidInstanceID.Malformed",
            parse_err("&InstanceId.1=i-%3Cbad%3E"),
        ),
        (
            "InvalidParameterValue (filter)",
            parse_err("&Filter.1.Name=x"),
        ),
        (
            "InvalidParameterValue (token)",
            parse_err("&NextToken=garbage"),
        ),
        (
            "InvalidParameterCombination",
            parse_err("&MaxResults=5&InstanceId.1=i-0123456789abcdef0"),
        ),
        (
            "MissingParameter",
            parse_query(b"Action=DescribeInstances").unwrap_err(),
        ),
        (
            "MissingAction",
            parse_query(b"Version=2016-11-15").unwrap_err(),
        ),
        (
            "InvalidAction",
            parse_query(b"Action=RunInstances&Version=2016-11-15").unwrap_err(),
        ),
        ("UnknownParameter", parse_err("&Foo=1")),
        (
            "FilterLimitExceeded",
            parse_err("&Filter.1.Name=tag-key&Filter.1.Value.201=x"),
        ),
        (
            "MalformedQueryString",
            parse_err("&Filter.1.Name=tag-key&Filter.1.Value.1=%FF"),
        ),
        (
            "NoSuchVersion",
            parse_query(b"Action=DescribeInstances&Version=2010-08-31").unwrap_err(),
        ),
        (
            "DryRunOperation",
            parse_query(b"Action=DescribeInstances&Version=2016-11-15&DryRun=true")
                .unwrap()
                .dry_run_outcome()
                .unwrap_err(),
        ),
        (
            "UnauthorizedOperation",
            Ec2Error::unauthorized_operation(
                "arn:aws:iam::111122223333:user/alice",
                "ec2:DescribeInstances",
                "because no identity-based policy allows the ec2:DescribeInstances action",
            ),
        ),
        ("AuthFailure", Ec2Error::auth_failure()),
        (
            "MissingAuthenticationToken",
            Ec2Error::missing_authentication_token(),
        ),
        (
            "IncompleteSignature",
            Ec2Error::incomplete_signature("Authorization header requires 'Signature' parameter."),
        ),
        ("RequestExpired", Ec2Error::request_expired()),
        ("RequestLimitExceeded", Ec2Error::request_limit_exceeded()),
        ("InternalError", Ec2Error::internal_error()),
    ];
    let mut codes_seen: Vec<_> = errors.iter().map(|(_, e)| e.code).collect();
    codes_seen.sort_by_key(|c| c.as_str());
    codes_seen.dedup();
    assert_eq!(
        codes_seen.len(),
        eic_ec2::ErrorCode::ALL.len(),
        "every code goes through botocore"
    );
    for (name, e) in &errors {
        cases.push(error_case(name, e));
    }
    cases.extend(endpoint_cases());

    run_botocore(&cases);
}

const ENDPOINTS: &str = "Action=DescribeInstanceConnectEndpoints&Version=2016-11-15";

fn endpoints() -> Vec<EndpointView> {
    let endpoint = |n: u64, state| {
        let id = format!("eice-0123456789abcdef{n}");
        EndpointView::new(
            &id,
            "111122223333",
            format!("arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/{id}"),
            state,
            format!("{id}.eic.example"),
            "vpc-0a1b2c3d4e5f67890",
            "subnet-0a1b2c3d4e5f67890",
            "us-west-2a",
            launch(n),
        )
    };
    let mut a = endpoint(0, EndpointState::CreateComplete);
    a.state_message = Some("a&b <c> \"d\" 'e' é".into());
    a.fips_dns_name = Some("fips.eic.example".into());
    a.preserve_client_ip = true;
    a.security_group_ids = vec!["sg-0a1b2c3d".into(), "sg-0e0f0a0b".into()];
    a.network_interface_ids = vec!["eni-0a1b2c3d".into()];
    a.tags = vec![
        ("Name".into(), "main".into()),
        ("empty".into(), String::new()),
    ];
    a.ip_address_type = Some("ipv4".into());
    vec![
        a,
        endpoint(1, EndpointState::UpdateInProgress),
        endpoint(2, EndpointState::DeleteFailed),
    ]
}

fn endpoints_request(tail: &str) -> eic_ec2::DescribeInstanceConnectEndpointsRequest {
    let body = format!("{ENDPOINTS}{tail}");
    let QueryRequest::DescribeInstanceConnectEndpoints(r) = parse_query(body.as_bytes()).unwrap()
    else {
        panic!("not a DescribeInstanceConnectEndpoints request");
    };
    r
}

/// The endpoint id errors, each as the code path that raises it builds it.
fn endpoint_errors() -> (Ec2Error, Ec2Error) {
    let not_found = describe_endpoints(
        &endpoints_request("&InstanceConnectEndpointId.1=eice-0fffffffffffffff0"),
        &endpoints(),
    )
    .unwrap_err();
    let malformed =
        parse_query(format!("{ENDPOINTS}&InstanceConnectEndpointId.1=eice-%3Cbad%3E").as_bytes())
            .unwrap_err();
    (not_found, malformed)
}

/// What the CLI's `ssh` and `open-tunnel` read: every field, two pages.
fn endpoint_cases() -> Vec<Value> {
    const OP: &str = "DescribeInstanceConnectEndpoints";
    let all = endpoints();
    let first = describe_endpoints(&endpoints_request("&MaxResults=2"), &all).unwrap();
    let token = first.next_token.clone().unwrap();
    let e0 = |rest: &[&str]| {
        let mut p = vec![json!("InstanceConnectEndpoints"), json!(0)];
        p.extend(rest.iter().map(|s| json!(s)));
        Value::Array(p)
    };
    let e1 = |rest: &[&str]| {
        let mut p = vec![json!("InstanceConnectEndpoints"), json!(1)];
        p.extend(rest.iter().map(|s| json!(s)));
        Value::Array(p)
    };
    let first_case = operation_case(
        OP,
        "endpoints, first page",
        200,
        render_describe_instance_connect_endpoints(REQUEST_ID, &first),
        vec![
            (json!(["ResponseMetadata", "RequestId"]), json!(REQUEST_ID)),
            (json!(["InstanceConnectEndpoints"]), json!({"len": 2})),
            (e0(&["OwnerId"]), json!("111122223333")),
            (
                e0(&["InstanceConnectEndpointId"]),
                json!("eice-0123456789abcdef0"),
            ),
            (
                e0(&["InstanceConnectEndpointArn"]),
                json!("arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/eice-0123456789abcdef0"),
            ),
            (e0(&["State"]), json!("create-complete")),
            (e0(&["StateMessage"]), json!("a&b <c> \"d\" 'e' é")),
            (
                e0(&["DnsName"]),
                json!("eice-0123456789abcdef0.eic.example"),
            ),
            (e0(&["FipsDnsName"]), json!("fips.eic.example")),
            (e0(&["NetworkInterfaceIds"]), json!(["eni-0a1b2c3d"])),
            (e0(&["VpcId"]), json!("vpc-0a1b2c3d4e5f67890")),
            (e0(&["AvailabilityZone"]), json!("us-west-2a")),
            (
                e0(&["CreatedAt"]),
                json!({"datetime": "2026-11-28T12:00:00.250000+00:00"}),
            ),
            (e0(&["SubnetId"]), json!("subnet-0a1b2c3d4e5f67890")),
            (e0(&["PreserveClientIp"]), json!(true)),
            (
                e0(&["SecurityGroupIds"]),
                json!(["sg-0a1b2c3d", "sg-0e0f0a0b"]),
            ),
            (
                e0(&["Tags"]),
                json!([{"Key": "Name", "Value": "main"}, {"Key": "empty", "Value": ""}]),
            ),
            (e0(&["IpAddressType"]), json!("ipv4")),
            // The second lacks what it lacks; its sets are empty.
            (e1(&["State"]), json!("update-in-progress")),
            (e1(&["StateMessage"]), absent()),
            (e1(&["FipsDnsName"]), absent()),
            (e1(&["IpAddressType"]), absent()),
            (e1(&["PreserveClientIp"]), json!(false)),
            (e1(&["NetworkInterfaceIds"]), json!([])),
            (e1(&["SecurityGroupIds"]), json!([])),
            (e1(&["Tags"]), json!([])),
            (
                e1(&["CreatedAt"]),
                json!({"datetime": "2026-11-28T12:00:01.250000+00:00"}),
            ),
            (json!(["NextToken"]), json!(token)),
        ],
    );
    // The token botocore read, sent back.
    let last = describe_endpoints(
        &endpoints_request(&format!("&MaxResults=2&NextToken={token}")),
        &all,
    )
    .unwrap();
    let last_case = operation_case(
        OP,
        "endpoints, last page",
        200,
        render_describe_instance_connect_endpoints(REQUEST_ID, &last),
        vec![
            (json!(["InstanceConnectEndpoints"]), json!({"len": 1})),
            (
                e0(&["InstanceConnectEndpointId"]),
                json!("eice-0123456789abcdef2"),
            ),
            (e0(&["State"]), json!("delete-failed")),
            (json!(["NextToken"]), absent()),
        ],
    );
    let none = describe_endpoints(
        &endpoints_request("&Filter.1.Name=state&Filter.1.Value.1=create-failed"),
        &all,
    )
    .unwrap();
    let none_case = operation_case(
        OP,
        "endpoints, nothing matches",
        200,
        render_describe_instance_connect_endpoints(REQUEST_ID, &none),
        vec![
            (json!(["InstanceConnectEndpoints"]), json!([])),
            (json!(["NextToken"]), absent()),
        ],
    );
    vec![first_case, last_case, none_case]
}
