//! DescribeInstanceConnectEndpoints: parsing rule by rule, selecting and
//! paging, and the XML of the answer.
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eic_ec2::{
    describe_endpoints, describe_map, parse_query, render_describe_instance_connect_endpoints,
    requested_action, DescribeInstanceConnectEndpointsRequest, Ec2Error, EndpointFilterName,
    EndpointPage, EndpointState, EndpointView, ErrorCode, Filter, QueryRequest,
};

const HEAD: &str = "Action=DescribeInstanceConnectEndpoints&Version=2016-11-15";

fn ok(tail: &str) -> DescribeInstanceConnectEndpointsRequest {
    let body = format!("{HEAD}{tail}");
    match parse_query(body.as_bytes()) {
        Ok(QueryRequest::DescribeInstanceConnectEndpoints(r)) => r,
        Ok(other) => panic!("{body}: parsed as {other:?}"),
        Err(e) => panic!("{body}: {e}"),
    }
}

fn err_tail(tail: &str) -> Ec2Error {
    let body = format!("{HEAD}{tail}");
    match parse_query(body.as_bytes()) {
        Ok(r) => panic!("{body}: accepted as {r:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_err(e: Ec2Error, code: ErrorCode, message: &str) {
    assert_eq!((e.code, e.message.as_str()), (code, message));
}

fn id(n: u8) -> String {
    format!("eice-{:017x}", 0xa0 + u64::from(n))
}

fn endpoint(n: u8, state: EndpointState, vpc: &str, subnet: &str, zone: &str) -> EndpointView {
    let id = id(n);
    EndpointView::new(
        &id,
        "111122223333",
        format!("arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/{id}"),
        state,
        format!("{id}.eic.example"),
        vpc,
        subnet,
        zone,
        UNIX_EPOCH + Duration::from_secs(u64::from(n)),
    )
}

/// Seven endpoints, given out of id order: two VPCs, several states, tags
/// and IP address types on some.
fn fleet() -> Vec<EndpointView> {
    let mut v = vec![
        endpoint(
            6,
            EndpointState::DeleteComplete,
            "vpc-0b",
            "subnet-0b1",
            "us-west-2b",
        ),
        endpoint(
            0,
            EndpointState::CreateComplete,
            "vpc-0a",
            "subnet-0a1",
            "us-west-2a",
        ),
        endpoint(
            1,
            EndpointState::CreateInProgress,
            "vpc-0a",
            "subnet-0a2",
            "us-west-2b",
        ),
        endpoint(
            2,
            EndpointState::UpdateComplete,
            "vpc-0a",
            "subnet-0a1",
            "us-west-2a",
        ),
        endpoint(
            3,
            EndpointState::UpdateFailed,
            "vpc-0b",
            "subnet-0b1",
            "us-west-2b",
        ),
        endpoint(
            4,
            EndpointState::CreateComplete,
            "vpc-0b",
            "subnet-0b2",
            "us-west-2c",
        ),
        endpoint(
            5,
            EndpointState::CreateFailed,
            "vpc-0a",
            "subnet-0a2",
            "us-west-2a",
        ),
    ];
    v[1].tags = vec![
        ("Name".into(), "main".into()),
        ("env".into(), "prod".into()),
    ];
    v[1].ip_address_type = Some("ipv4".into());
    v[3].tags = vec![("env".into(), "dev*".into())];
    v[3].ip_address_type = Some("dualstack".into());
    v[5].ip_address_type = Some("ipv4".into());
    v
}

fn ids(page: &EndpointPage<'_>) -> Vec<String> {
    page.endpoints
        .iter()
        .map(|e| e.endpoint_id.clone())
        .collect()
}

fn select(tail: &str) -> Vec<String> {
    ids(&describe_endpoints(&ok(tail), &fleet()).unwrap())
}

fn all_of(ns: &[u8]) -> Vec<String> {
    ns.iter().map(|n| id(*n)).collect()
}

// --- Parsing ---

#[test]
fn the_action_its_permission_and_dry_run() {
    assert_eq!(ok(""), DescribeInstanceConnectEndpointsRequest::default());
    let q = parse_query(HEAD.as_bytes()).unwrap();
    assert_eq!(q.action(), "DescribeInstanceConnectEndpoints");
    assert_eq!(q.iam_action(), "ec2:DescribeInstanceConnectEndpoints");
    assert!(q.instance_ids().is_empty());
    assert!(!q.dry_run());
    assert_eq!(q.dry_run_outcome(), Ok(()));
    assert_eq!(
        requested_action(HEAD.as_bytes()),
        Some("DescribeInstanceConnectEndpoints")
    );
    assert!(eic_ec2::ACTIONS.contains(&"DescribeInstanceConnectEndpoints"));

    let q = parse_query(format!("{HEAD}&DryRun=true").as_bytes()).unwrap();
    assert!(q.dry_run());
    assert_err(
        q.dry_run_outcome().unwrap_err(),
        ErrorCode::DryRunOperation,
        "Request would have succeeded, but DryRun flag is set.",
    );
    assert!(!ok("&DryRun=false").dry_run);
    assert_err(
        err_tail("&DryRun=1"),
        ErrorCode::InvalidParameterValue,
        "Value ( 1 ) for parameter DryRun is invalid. Expecting true or false.",
    );
}

#[test]
fn the_cli_body_as_sent() {
    // `aws ec2-instance-connect ssh` without an endpoint id (reference §1.2).
    let r = ok("&Filter.1.Name=state&Filter.1.Value.1=create-complete\
                &Filter.1.Value.2=update-in-progress&Filter.1.Value.3=update-failed\
                &Filter.1.Value.4=update-complete\
                &Filter.2.Name=vpc-id&Filter.2.Value.1=vpc-0a1b2c3d4e5f67890");
    assert_eq!(
        r.filters,
        [
            Filter::new(
                EndpointFilterName::State,
                &[
                    "create-complete",
                    "update-in-progress",
                    "update-failed",
                    "update-complete"
                ]
            ),
            Filter::new(EndpointFilterName::VpcId, &["vpc-0a1b2c3d4e5f67890"]),
        ]
    );
    let r = ok("&InstanceConnectEndpointId.1=eice-0123456789abcdef0&MaxResults=50");
    assert_eq!(r.endpoint_ids, ["eice-0123456789abcdef0"]);
    assert_eq!(r.max_results, Some(50));
}

#[test]
fn endpoint_ids() {
    let r = ok("&InstanceConnectEndpointId.2=eice-0123456789abcdef2\
                &InstanceConnectEndpointId.1=eice-0123456789abcdef1\
                &InstanceConnectEndpointId.3=eice-0123456789abcdef1\
                &InstanceConnectEndpointId.10=eice-abcd1234");
    assert_eq!(
        r.endpoint_ids,
        [
            "eice-0123456789abcdef1",
            "eice-0123456789abcdef2",
            "eice-abcd1234"
        ],
        "in N order (numeric, not textual), each once"
    );
    assert_eq!(
        ok("&InstanceConnectEndpointId.1000=eice-abcd1234").endpoint_ids,
        ["eice-abcd1234"]
    );
    assert_err(
        err_tail("&InstanceConnectEndpointId.1001=eice-abcd1234"),
        ErrorCode::InvalidParameterValue,
        "The request names more than 1000 instance connect endpoint IDs",
    );
    for bad in [
        "eice-",
        "eice-0123456789abcdef",
        "eice-0123456789abcdef01",
        "eice-0123456789ABCDEF0",
        "eice-0123456789abcdefg",
        "eice-abc_1234",
        "EICE-0123456789abcdef0",
        "i-0123456789abcdef0",
        "eice-<b>",
    ] {
        let enc: String = form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        assert_err(
            err_tail(&format!("&InstanceConnectEndpointId.1={enc}")),
            ErrorCode::InvalidInstanceConnectEndpointIdMalformed,
            &format!("Invalid id: \"{bad}\""),
        );
    }
    assert_eq!(
        err_tail("&InstanceConnectEndpointId.1=bad").code.as_str(),
        "InvalidInstanceConnectEndpointId.Malformed"
    );
    assert_err(
        err_tail("&InstanceConnectEndpointId.1="),
        ErrorCode::MissingParameter,
        "The request must contain the parameter InstanceConnectEndpointId",
    );
}

#[test]
fn unknown_and_repeated_parameters() {
    for key in [
        "Foo",
        "InstanceId.1",
        "InstanceConnectEndpointId",
        "InstanceConnectEndpointId.0",
        "InstanceConnectEndpointIds.1",
        "InstanceConnectEndpointId1",
        "instanceConnectEndpointId.1",
        "Filter.1",
        "Filter.1.Value",
        "maxResults",
    ] {
        assert_err(
            err_tail(&format!("&{key}=v")),
            ErrorCode::UnknownParameter,
            &format!("The parameter {key} is not recognized"),
        );
    }
    assert_err(
        err_tail("&MaxResults=5&MaxResults=6"),
        ErrorCode::InvalidParameterValue,
        "The parameter MaxResults is given more than once",
    );
}

#[test]
fn filters() {
    for (name, want) in EndpointFilterName::FIXED {
        let r = ok(&format!("&Filter.1.Name={name}&Filter.1.Value.1=x"));
        assert_eq!(r.filters, [Filter::new(want.clone(), &["x"])]);
        assert_eq!(want.as_string(), name);
    }
    let r = ok("&Filter.1.Name=tag%3AName&Filter.1.Value.1=main");
    assert_eq!(
        r.filters,
        [Filter::new(
            EndpointFilterName::Tag("Name".into()),
            &["main"]
        )]
    );
    assert_eq!(EndpointFilterName::Tag("a:b".into()).as_string(), "tag:a:b");
    // DescribeInstances' names, and other near misses, are not this action's.
    for bad in [
        "instance-id",
        "instance-state-name",
        "owner-id",
        "State",
        "tag:",
        "",
    ] {
        let enc: String = form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        assert_err(
            err_tail(&format!("&Filter.1.Name={enc}&Filter.1.Value.1=y")),
            ErrorCode::InvalidParameterValue,
            &format!("The filter '{bad}' is invalid"),
        );
    }
    assert_err(
        err_tail("&Filter.2.Value.1=create-complete"),
        ErrorCode::MissingParameter,
        "The request must contain the parameter Filter.2.Name",
    );
    assert_err(
        err_tail("&Filter.1.Name=state&Filter.1.Value.201=x"),
        ErrorCode::FilterLimitExceeded,
        "The maximum number of filter values specified on a single call is 200",
    );
}

#[test]
fn max_results() {
    assert_eq!(ok("&MaxResults=1").max_results, Some(1));
    assert_eq!(ok("&MaxResults=50").max_results, Some(50));
    for (v, expect) in [
        ("0", "a value greater than or equal to 1"),
        ("-3", "a value greater than or equal to 1"),
        ("51", "a value less than or equal to 50"),
        ("1000", "a value less than or equal to 50"),
        ("five", "an integer"),
        ("", "an integer"),
    ] {
        assert_err(
            err_tail(&format!("&MaxResults={v}")),
            ErrorCode::InvalidParameterValue,
            &format!("Value ( {v} ) for parameter maxResults is invalid. Expecting {expect}."),
        );
    }
    // Unlike DescribeInstances, ids and MaxResults go together.
    let r = ok("&MaxResults=1&InstanceConnectEndpointId.1=eice-0123456789abcdef0");
    assert_eq!(r.max_results, Some(1));
}

// --- Selecting ---

#[test]
fn everything_in_id_order() {
    assert_eq!(select(""), all_of(&[0, 1, 2, 3, 4, 5, 6]));
    let f = fleet();
    assert_eq!(describe_endpoints(&ok(""), &f).unwrap().next_token, None);
    assert!(describe_endpoints(&ok(""), &[])
        .unwrap()
        .endpoints
        .is_empty());
}

#[test]
fn by_id_exactly_those() {
    let tail = format!(
        "&InstanceConnectEndpointId.1={}&InstanceConnectEndpointId.2={}",
        id(4),
        id(1)
    );
    assert_eq!(select(&tail), all_of(&[1, 4]));
    // Filters narrow the named ones without an error.
    assert_eq!(
        select(&format!(
            "{tail}&Filter.1.Name=state&Filter.1.Value.1=create-complete"
        )),
        all_of(&[4])
    );
}

#[test]
fn unknown_ids_are_not_found() {
    let f = fleet();
    let e = describe_endpoints(
        &ok("&InstanceConnectEndpointId.1=eice-0ffffffffffffffff"),
        &f,
    )
    .unwrap_err();
    assert_err(
        e,
        ErrorCode::InvalidInstanceConnectEndpointIdNotFound,
        "The instanceConnectEndpoint ID 'eice-0ffffffffffffffff' does not exist",
    );
    assert_eq!(
        ErrorCode::InvalidInstanceConnectEndpointIdNotFound.as_str(),
        "InvalidInstanceConnectEndpointId.NotFound"
    );
    assert_eq!(
        ErrorCode::InvalidInstanceConnectEndpointIdNotFound.status(),
        400
    );
    // Every missing one, in request order, even with a known one among them
    // and a filter that would drop everything.
    let e = describe_endpoints(
        &ok(&format!(
            "&InstanceConnectEndpointId.1=eice-0ffffffffffffffff\
             &InstanceConnectEndpointId.2={}\
             &InstanceConnectEndpointId.3=eice-0eeeeeeeeeeeeeeee\
             &Filter.1.Name=tag-key&Filter.1.Value.1=nope",
            id(0)
        )),
        &f,
    )
    .unwrap_err();
    assert_err(
        e,
        ErrorCode::InvalidInstanceConnectEndpointIdNotFound,
        "The instanceConnectEndpoint IDs 'eice-0ffffffffffffffff, eice-0eeeeeeeeeeeeeeee' do not exist",
    );
}

#[test]
fn each_filter_reads_its_attribute() {
    let one = |name: &str, value: &str| {
        let enc: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
        select(&format!("&Filter.1.Name={name}&Filter.1.Value.1={enc}"))
    };
    assert_eq!(one("instance-connect-endpoint-id", &id(3)), all_of(&[3]));
    assert_eq!(one("state", "create-complete"), all_of(&[0, 4]));
    assert_eq!(one("vpc-id", "vpc-0b"), all_of(&[3, 4, 6]));
    assert_eq!(one("subnet-id", "subnet-0a2"), all_of(&[1, 5]));
    assert_eq!(one("availability-zone", "us-west-2c"), all_of(&[4]));
    assert_eq!(one("ip-address-type", "ipv4"), all_of(&[0, 4]));
    assert_eq!(one("tag%3Aenv", "prod"), all_of(&[0]));
    assert_eq!(one("tag%3AEnv", "prod"), all_of(&[]), "keys are exact");
    assert_eq!(one("tag-key", "Name"), all_of(&[0]));
    assert_eq!(one("tag-value", "main"), all_of(&[0]));
    // Without a value: "has the attribute".
    assert_eq!(select("&Filter.1.Name=ip-address-type"), all_of(&[0, 2, 4]));
    assert_eq!(select("&Filter.1.Name=tag%3Aenv"), all_of(&[0, 2]));
    assert_eq!(select("&Filter.1.Name=tag-key"), all_of(&[0, 2]));
}

#[test]
fn wildcards_values_or_filters_and() {
    let f = |tail: &str| select(tail);
    assert_eq!(
        f("&Filter.1.Name=state&Filter.1.Value.1=update-*"),
        all_of(&[2, 3])
    );
    assert_eq!(
        f("&Filter.1.Name=state&Filter.1.Value.1=*-failed"),
        all_of(&[3, 5])
    );
    assert_eq!(
        f("&Filter.1.Name=availability-zone&Filter.1.Value.1=us-west-2%3F"),
        all_of(&[0, 1, 2, 3, 4, 5, 6])
    );
    // An escaped `*` is a literal star.
    assert_eq!(
        f("&Filter.1.Name=tag-value&Filter.1.Value.1=dev%5C*"),
        all_of(&[2])
    );
    assert_eq!(
        f("&Filter.1.Name=tag-value&Filter.1.Value.1=de%5C*"),
        all_of(&[])
    );
    // Values OR, filters AND.
    assert_eq!(
        f("&Filter.1.Name=state&Filter.1.Value.1=create-complete\
           &Filter.1.Value.2=update-complete\
           &Filter.2.Name=vpc-id&Filter.2.Value.1=vpc-0a"),
        all_of(&[0, 2])
    );
}

// --- Paging ---

fn pages(endpoints: &[EndpointView], tail: &str, k: usize) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut t = format!("{tail}&MaxResults={k}");
        if let Some(tok) = &token {
            t.push_str(&format!("&NextToken={tok}"));
        }
        let page = describe_endpoints(&ok(&t), endpoints).unwrap();
        out.push(ids(&page));
        match page.next_token {
            Some(next) => token = Some(next),
            None => return out,
        }
        assert!(out.len() < 100, "paging does not end");
    }
}

#[test]
fn paging_round_trips() {
    let f = fleet();
    assert_eq!(
        pages(&f, "", 3),
        [all_of(&[0, 1, 2]), all_of(&[3, 4, 5]), all_of(&[6])]
    );
    assert_eq!(pages(&f, "", 1).len(), 7);
    // An exact fit issues no trailing empty page.
    assert_eq!(pages(&f, "", 7), [all_of(&[0, 1, 2, 3, 4, 5, 6])]);
    // The token carries on under the same filters, and with ids.
    assert_eq!(
        pages(&f, "&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-0a", 2),
        [all_of(&[0, 1]), all_of(&[2, 5])]
    );
    let named = format!(
        "&InstanceConnectEndpointId.1={}&InstanceConnectEndpointId.2={}\
         &InstanceConnectEndpointId.3={}",
        id(5),
        id(0),
        id(3)
    );
    assert_eq!(pages(&f, &named, 2), [all_of(&[0, 3]), all_of(&[5])]);
    // The page size may change between pages; without MaxResults the rest
    // comes at once.
    let tok = describe_endpoints(&ok("&MaxResults=2"), &f)
        .unwrap()
        .next_token
        .unwrap();
    let rest = describe_endpoints(&ok(&format!("&NextToken={tok}")), &f).unwrap();
    assert_eq!(ids(&rest), all_of(&[2, 3, 4, 5, 6]));
    assert_eq!(rest.next_token, None);
}

#[test]
fn forged_and_foreign_tokens_are_refused() {
    let f = fleet();
    let tok = describe_endpoints(&ok("&MaxResults=2"), &f)
        .unwrap()
        .next_token
        .unwrap();
    let refused = |tail: &str, shown: &str| {
        assert_err(
            err_tail(tail),
            ErrorCode::InvalidParameterValue,
            &format!("Value ( {shown} ) for parameter NextToken is invalid. The token is invalid."),
        );
    };
    // Forged: one character changed, cut short, garbage.
    let mut forged = tok.clone().into_bytes();
    forged[20] = if forged[20] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    refused(&format!("&MaxResults=2&NextToken={forged}"), &forged);
    let short = &tok[..tok.len() - 2];
    refused(&format!("&MaxResults=2&NextToken={short}"), short);
    refused("&NextToken=garbage", "garbage");
    // Another query's: other filters, or ids.
    refused(
        &format!(
            "&MaxResults=2&NextToken={tok}&Filter.1.Name=state&Filter.1.Value.1=create-complete"
        ),
        &tok,
    );
    refused(
        &format!("&NextToken={tok}&InstanceConnectEndpointId.1={}", id(0)),
        &tok,
    );
    // Another action's, both ways.
    let instances = std::collections::BTreeMap::from([
        (
            "i-0123456789abcdef0".to_owned(),
            eic_ec2::InstanceView::new(
                "i-0123456789abcdef0",
                "111122223333",
                eic_ec2::InstanceState::Running,
                "t3.micro",
                "us-west-2a",
                SystemTime::UNIX_EPOCH,
            ),
        ),
        (
            "i-0123456789abcdef1".to_owned(),
            eic_ec2::InstanceView::new(
                "i-0123456789abcdef1",
                "111122223333",
                eic_ec2::InstanceState::Running,
                "t3.micro",
                "us-west-2a",
                SystemTime::UNIX_EPOCH,
            ),
        ),
    ]);
    let QueryRequest::DescribeInstances(first) =
        parse_query(b"Action=DescribeInstances&Version=2016-11-15&MaxResults=5").unwrap()
    else {
        panic!("not DescribeInstances");
    };
    let mut first = first;
    first.max_results = Some(1);
    let instance_tok = describe_map(&first, &instances)
        .unwrap()
        .next_token
        .unwrap();
    refused(&format!("&NextToken={instance_tok}"), &instance_tok);
    let e = parse_query(
        format!("Action=DescribeInstances&Version=2016-11-15&NextToken={tok}").as_bytes(),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValue);
}

// --- Rendering ---

const CREATED: u64 = 1_795_867_200_250; // 2026-11-28T12:00:00.250Z

fn full() -> EndpointView {
    let mut e = EndpointView::new(
        "eice-0123456789abcdef0",
        "111122223333",
        "arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/eice-0123456789abcdef0",
        EndpointState::CreateComplete,
        "eic.example",
        "vpc-0a1b2c3d4e5f67890",
        "subnet-0a1b2c3d4e5f67890",
        "us-west-2a",
        UNIX_EPOCH + Duration::from_millis(CREATED),
    );
    e.state_message = Some("ok".into());
    e.fips_dns_name = Some("fips.eic.example".into());
    e.preserve_client_ip = true;
    e.security_group_ids = vec!["sg-0a".into(), "sg-0b".into()];
    e.network_interface_ids = vec!["eni-0a".into()];
    e.tags = vec![("Name".into(), "main".into())];
    e.ip_address_type = Some("ipv4".into());
    e
}

#[test]
fn a_full_endpoint_and_a_token() {
    let e = full();
    let page = EndpointPage {
        endpoints: vec![&e],
        next_token: Some("tok".into()),
    };
    assert_eq!(
        render_describe_instance_connect_endpoints("req-1", &page),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <DescribeInstanceConnectEndpointsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>req-1</requestId><instanceConnectEndpointSet><item>\
         <ownerId>111122223333</ownerId>\
         <instanceConnectEndpointId>eice-0123456789abcdef0</instanceConnectEndpointId>\
         <instanceConnectEndpointArn>arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/eice-0123456789abcdef0</instanceConnectEndpointArn>\
         <state>create-complete</state><stateMessage>ok</stateMessage>\
         <dnsName>eic.example</dnsName><fipsDnsName>fips.eic.example</fipsDnsName>\
         <networkInterfaceIdSet><item>eni-0a</item></networkInterfaceIdSet>\
         <vpcId>vpc-0a1b2c3d4e5f67890</vpcId><availabilityZone>us-west-2a</availabilityZone>\
         <createdAt>2026-11-28T12:00:00.250Z</createdAt>\
         <subnetId>subnet-0a1b2c3d4e5f67890</subnetId><preserveClientIp>true</preserveClientIp>\
         <securityGroupIdSet><item>sg-0a</item><item>sg-0b</item></securityGroupIdSet>\
         <tagSet><item><key>Name</key><value>main</value></item></tagSet>\
         <ipAddressType>ipv4</ipAddressType>\
         </item></instanceConnectEndpointSet><nextToken>tok</nextToken>\
         </DescribeInstanceConnectEndpointsResponse>"
    );
}

#[test]
fn absent_values_are_left_out_and_sets_sent_empty() {
    let e = endpoint(
        0,
        EndpointState::DeleteFailed,
        "vpc-0a",
        "subnet-0a1",
        "us-west-2a",
    );
    let page = EndpointPage {
        endpoints: vec![&e],
        next_token: None,
    };
    let xml = render_describe_instance_connect_endpoints("r", &page);
    for absent in ["stateMessage", "fipsDnsName", "ipAddressType", "nextToken"] {
        assert!(!xml.contains(absent), "{absent} in {xml}");
    }
    for empty in [
        "<networkInterfaceIdSet/>",
        "<securityGroupIdSet/>",
        "<tagSet/>",
        "<preserveClientIp>false</preserveClientIp>",
        "<state>delete-failed</state>",
        "<createdAt>1970-01-01T00:00:00.000Z</createdAt>",
    ] {
        assert!(xml.contains(empty), "{empty} not in {xml}");
    }
    let none = EndpointPage {
        endpoints: Vec::new(),
        next_token: None,
    };
    assert!(render_describe_instance_connect_endpoints("r", &none)
        .contains("<requestId>r</requestId><instanceConnectEndpointSet/></Describe"));
}

#[test]
fn every_state_is_ec2s() {
    let names: Vec<&str> = EndpointState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "create-in-progress",
            "create-complete",
            "create-failed",
            "delete-in-progress",
            "delete-complete",
            "delete-failed",
            "update-in-progress",
            "update-complete",
            "update-failed"
        ]
    );
}

#[test]
fn every_text_is_escaped() {
    let mut e = full();
    e.state_message = Some("<&>".into());
    e.dns_name = "a\"b".into();
    e.tags = vec![("k'".into(), "v\u{1}".into())];
    e.security_group_ids = vec!["<sg>".into()];
    let page = EndpointPage {
        endpoints: vec![&e],
        next_token: None,
    };
    let xml = render_describe_instance_connect_endpoints("<id>", &page);
    for want in [
        "<requestId>&lt;id&gt;</requestId>",
        "<stateMessage>&lt;&amp;&gt;</stateMessage>",
        "<dnsName>a&quot;b</dnsName>",
        "<key>k&apos;</key><value>v\u{FFFD}</value>",
        "<securityGroupIdSet><item>&lt;sg&gt;</item></securityGroupIdSet>",
    ] {
        assert!(xml.contains(want), "{want} not in {xml}");
    }
}
