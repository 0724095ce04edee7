//! DescribeInstanceHostKeys, eic's extension: its parameters rule by rule,
//! the lookup's NotFound, and its XML byte for byte.
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::BTreeMap;

use eic_ec2::{
    describe_host_keys, parse_query, render_describe_instance_host_keys, requested_action,
    DescribeInstanceHostKeysRequest, Ec2Error, ErrorCode, InstanceHostKeys, QueryRequest,
    SerialConsoleHostKeys,
};

const HEAD: &str = "Action=DescribeInstanceHostKeys&Version=2016-11-15";
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5";
const ECDSA: &str =
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEXAMPLE=";

fn ok(tail: &str) -> DescribeInstanceHostKeysRequest {
    let body = format!("{HEAD}{tail}");
    match parse_query(body.as_bytes()) {
        Ok(QueryRequest::DescribeInstanceHostKeys(r)) => r,
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

#[test]
fn ids_in_n_order_each_once() {
    let r = ok(
        "&InstanceId.2=i-0123456789abcdef2&InstanceId.1=i-0123456789abcdef1\
                &InstanceId.3=i-0123456789abcdef1&InstanceId.10=i-abcd1234",
    );
    assert_eq!(
        r,
        DescribeInstanceHostKeysRequest {
            instance_ids: vec![
                "i-0123456789abcdef1".into(),
                "i-0123456789abcdef2".into(),
                "i-abcd1234".into()
            ],
            dry_run: false,
        }
    );
    assert_eq!(
        ok("&InstanceId.1000=i-abcd1234").instance_ids,
        ["i-abcd1234"]
    );
    // The client's body, with the charset and all 1,000 ids.
    let mut tail = String::new();
    for n in 1..=1000 {
        tail.push_str(&format!("&InstanceId.{n}=i-{n:017x}"));
    }
    assert_eq!(ok(&tail).instance_ids.len(), 1000);
}

#[test]
fn the_action_its_permission_and_dry_run() {
    let q = parse_query(format!("{HEAD}&InstanceId.1=i-abcd1234").as_bytes()).unwrap();
    assert_eq!(q.action(), "DescribeInstanceHostKeys");
    assert_eq!(q.iam_action(), "ec2:DescribeInstances");
    assert_eq!(q.instance_ids(), ["i-abcd1234"]);
    assert!(!q.dry_run());
    assert_eq!(q.dry_run_outcome(), Ok(()));

    for v in ["true", "TRUE"] {
        let q =
            parse_query(format!("{HEAD}&InstanceId.1=i-abcd1234&DryRun={v}").as_bytes()).unwrap();
        assert!(q.dry_run());
        let e = q.dry_run_outcome().unwrap_err();
        assert_eq!((e.code, e.status()), (ErrorCode::DryRunOperation, 412));
    }
    assert!(!ok("&InstanceId.1=i-abcd1234&DryRun=false").dry_run);
    assert_err(
        err_tail("&InstanceId.1=i-abcd1234&DryRun=1"),
        ErrorCode::InvalidParameterValue,
        "Value ( 1 ) for parameter DryRun is invalid. Expecting true or false.",
    );
    // Parameters in any order; the version is checked as for DescribeInstances.
    let q =
        parse_query(b"InstanceId.1=i-abcd1234&Version=2016-11-15&Action=DescribeInstanceHostKeys")
            .unwrap();
    assert_eq!(q.action(), "DescribeInstanceHostKeys");
    assert_err(
        parse_query(b"Action=DescribeInstanceHostKeys&Version=2014-10-01&InstanceId.1=i-abcd1234")
            .unwrap_err(),
        ErrorCode::NoSuchVersion,
        "The requested version (2014-10-01) of service AmazonEC2 does not exist",
    );
    assert_err(
        parse_query(b"Action=describeinstancehostkeys&Version=2016-11-15").unwrap_err(),
        ErrorCode::InvalidAction,
        "The action describeinstancehostkeys is not valid for this web service.",
    );
}

#[test]
fn ids_are_required() {
    for tail in ["", "&DryRun=true", "&InstanceId.1="] {
        assert_err(
            err_tail(tail),
            ErrorCode::MissingParameter,
            "The request must contain the parameter InstanceId",
        );
    }
}

#[test]
fn malformed_and_too_many_ids() {
    for bad in ["i-123", "i-ABCDEF12", "not-an-id", "i-<x>"] {
        let enc: String = form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        assert_err(
            err_tail(&format!("&InstanceId.1={enc}")),
            ErrorCode::InvalidInstanceIdMalformed,
            &format!("Invalid id: \"{bad}\""),
        );
    }
    assert_err(
        err_tail("&InstanceId.2=bad2&InstanceId.1=bad1"),
        ErrorCode::InvalidInstanceIdMalformed,
        "Invalid id: \"bad1\"",
    );
    assert_err(
        err_tail("&InstanceId.1001=i-abcd1234"),
        ErrorCode::InvalidParameterValue,
        "The request names more than 1000 instance IDs",
    );
    assert_err(
        err_tail("&InstanceId.1=i-abcd1234&InstanceId.1=i-abcd1235"),
        ErrorCode::InvalidParameterValue,
        "The parameter InstanceId.1 is given more than once",
    );
}

#[test]
fn describe_instances_parameters_are_unknown_here() {
    for key in [
        "MaxResults",
        "NextToken",
        "Filter.1.Name",
        "Filter.1.Value.1",
        "InstanceId",
        "InstanceId.0",
        "instanceId.1",
        "Foo",
    ] {
        assert_err(
            err_tail(&format!("&InstanceId.1=i-abcd1234&{key}=v")),
            ErrorCode::UnknownParameter,
            &format!("The parameter {key} is not recognized"),
        );
    }
}

#[test]
fn the_requested_action_is_read_before_validation() {
    assert_eq!(
        requested_action(b"Version=x&Action=DescribeInstanceHostKeys&InstanceId.1=bad"),
        Some("DescribeInstanceHostKeys")
    );
    assert_eq!(
        requested_action(b"Action=DescribeInstances"),
        Some("DescribeInstances")
    );
    assert_eq!(requested_action(b"Action=RunInstances"), None);
    assert_eq!(requested_action(b"Version=2016-11-15"), None);
    assert_eq!(requested_action(b"\xff\xfe"), None);
}

fn keys(id: &str, port: u16, host_keys: &[&str]) -> InstanceHostKeys {
    InstanceHostKeys {
        instance_id: id.into(),
        ssh_port: port,
        host_keys: host_keys.iter().map(|k| k.to_string()).collect(),
    }
}

#[test]
fn lookup_in_request_order_and_not_found_like_describe_instances() {
    let mine: BTreeMap<String, InstanceHostKeys> = [
        keys("i-0123456789abcdef0", 22, &[ED25519]),
        keys("i-abcd1234", 2200, &[]),
    ]
    .into_iter()
    .map(|k| (k.instance_id.clone(), k))
    .collect();
    let request = ok("&InstanceId.1=i-abcd1234&InstanceId.2=i-0123456789abcdef0\
                      &InstanceId.3=i-abcd1234");
    let found = describe_host_keys(&request, |id| mine.get(id)).unwrap();
    let ids: Vec<&str> = found.iter().map(|k| k.instance_id.as_str()).collect();
    assert_eq!(ids, ["i-abcd1234", "i-0123456789abcdef0"]);

    let request = ok("&InstanceId.1=i-0fffffffffffffff1&InstanceId.2=i-abcd1234\
                      &InstanceId.3=i-0fffffffffffffff0");
    let e = describe_host_keys(&request, |id| mine.get(id)).unwrap_err();
    assert_eq!(
        e,
        Ec2Error::instance_not_found(&["i-0fffffffffffffff1", "i-0fffffffffffffff0"])
    );
    assert_eq!(
        e.message,
        "The instance IDs 'i-0fffffffffffffff1, i-0fffffffffffffff0' do not exist"
    );
    assert_eq!(e.status(), 400);
}

#[test]
fn an_instance_with_keys_and_one_without() {
    let a = keys("i-0123456789abcdef0", 22, &[ED25519, ECDSA]);
    let b = keys("i-abcd1234", 2200, &[]);
    assert_eq!(
        render_describe_instance_host_keys("req-1", &[&a, &b], None),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <DescribeInstanceHostKeysResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>req-1</requestId>\
             <instanceSet>\
             <item><instanceId>i-0123456789abcdef0</instanceId><sshPort>22</sshPort>\
             <hostKeySet><item>{ED25519}</item><item>{ECDSA}</item></hostKeySet></item>\
             <item><instanceId>i-abcd1234</instanceId><sshPort>2200</sshPort><hostKeySet/></item>\
             </instanceSet>\
             </DescribeInstanceHostKeysResponse>"
        )
    );
}

#[test]
fn with_the_serial_console_gateway() {
    let a = keys("i-abcd1234", 65535, &[]);
    let serial = SerialConsoleHostKeys {
        port: 2222,
        host_keys: vec![ED25519.into()],
    };
    assert_eq!(
        render_describe_instance_host_keys("req-2", &[&a], Some(&serial)),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <DescribeInstanceHostKeysResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>req-2</requestId>\
             <instanceSet>\
             <item><instanceId>i-abcd1234</instanceId><sshPort>65535</sshPort><hostKeySet/></item>\
             </instanceSet>\
             <serialConsole><port>2222</port><hostKeySet><item>{ED25519}</item></hostKeySet></serialConsole>\
             </DescribeInstanceHostKeysResponse>"
        )
    );
    let bare = SerialConsoleHostKeys {
        port: 1,
        host_keys: Vec::new(),
    };
    assert!(render_describe_instance_host_keys("r", &[&a], Some(&bare))
        .contains("<serialConsole><port>1</port><hostKeySet/></serialConsole>"));
    assert!(!render_describe_instance_host_keys("r", &[&a], None).contains("serialConsole"));
}

#[test]
fn every_text_is_escaped() {
    let a = keys("i-<&>", 22, &["ssh-ed25519 <AAAA&'\"\r\u{1}>"]);
    let serial = SerialConsoleHostKeys {
        port: 22,
        host_keys: vec!["<k>".into()],
    };
    let xml = render_describe_instance_host_keys("r<1>", &[&a], Some(&serial));
    assert!(xml.contains("<requestId>r&lt;1&gt;</requestId>"), "{xml}");
    assert!(
        xml.contains("<instanceId>i-&lt;&amp;&gt;</instanceId>"),
        "{xml}"
    );
    assert!(
        xml.contains("<item>ssh-ed25519 &lt;AAAA&amp;&apos;&quot;&#13;\u{FFFD}&gt;</item>"),
        "{xml}"
    );
    assert!(xml.contains("<item>&lt;k&gt;</item>"), "{xml}");
}

#[test]
fn no_instances_is_an_empty_set() {
    assert_eq!(
        render_describe_instance_host_keys("r", &[], None),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <DescribeInstanceHostKeysResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>r</requestId><instanceSet/></DescribeInstanceHostKeysResponse>"
    );
}
