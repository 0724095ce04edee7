//! The form parser and DescribeInstances validation, rule by rule.
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use eic_ec2::{
    parse_query, DescribeInstancesRequest, Ec2Error, ErrorCode, Filter, FilterName, Pattern,
    QueryRequest,
};

const HEAD: &str = "Action=DescribeInstances&Version=2016-11-15";

fn ok(tail: &str) -> DescribeInstancesRequest {
    let body = format!("{HEAD}{tail}");
    match parse_query(body.as_bytes()) {
        Ok(QueryRequest::DescribeInstances(r)) => r,
        Ok(other) => panic!("{body}: parsed as {other:?}"),
        Err(e) => panic!("{body}: {e}"),
    }
}

fn err(body: &str) -> Ec2Error {
    match parse_query(body.as_bytes()) {
        Ok(r) => panic!("{body}: accepted as {r:?}"),
        Err(e) => e,
    }
}

fn err_tail(tail: &str) -> Ec2Error {
    err(&format!("{HEAD}{tail}"))
}

#[track_caller]
fn assert_err(e: Ec2Error, code: ErrorCode, message: &str) {
    assert_eq!((e.code, e.message.as_str()), (code, message));
}

#[test]
fn bare_request_selects_everything() {
    let r = ok("");
    assert_eq!(r, DescribeInstancesRequest::default());
    let q = parse_query(HEAD.as_bytes()).unwrap();
    assert_eq!(q.action(), "DescribeInstances");
    assert_eq!(q.iam_action(), "ec2:DescribeInstances");
    assert!(!q.dry_run());
    assert_eq!(q.dry_run_outcome(), Ok(()));
}

#[test]
fn botocore_bodies_as_sent() {
    // Verbatim shapes from reference §1.2.
    let r = ok("&InstanceId.1=i-0123456789abcdef0");
    assert_eq!(r.instance_ids, ["i-0123456789abcdef0"]);
    let r = ok(
        "&Filter.1.Name=tag%3AName&Filter.1.Value.1=web1&Filter.1.Value.2=web2\
         &Filter.2.Name=instance-state-name&Filter.2.Value.1=running",
    );
    assert_eq!(
        r.filters,
        [
            Filter::new(FilterName::Tag("Name".into()), &["web1", "web2"]),
            Filter::new(FilterName::InstanceStateName, &["running"]),
        ]
    );
    let r = ok("&MaxResults=5");
    assert_eq!(r.max_results, Some(5));
    // Parameters come in any order; Action and Version need not be first.
    let q = parse_query(b"MaxResults=1000&Version=2016-11-15&Action=DescribeInstances").unwrap();
    let QueryRequest::DescribeInstances(r) = q else {
        panic!("{q:?}");
    };
    assert_eq!(r.max_results, Some(1000));
}

#[test]
fn percent_and_plus_decoding() {
    let r = ok("&Filter.1.Name=tag%3Ateam+name&Filter.1.Value.1=a%20b%2Ac+d");
    assert_eq!(r.filters[0].name, FilterName::Tag("team name".into()));
    assert_eq!(r.filters[0].values, [Pattern::new("a b*c d")]);
    let r = ok("&Filter.1.Name=tag-value&Filter.1.Value.1=%C3%A9t%C3%A9");
    assert!(r.filters[0].values[0].matches("été"));
}

#[test]
fn action_and_version() {
    assert_err(
        err("Version=2016-11-15"),
        ErrorCode::MissingAction,
        "The request must contain the parameter Action",
    );
    assert_err(
        err("Action=&Version=2016-11-15"),
        ErrorCode::MissingAction,
        "The request must contain the parameter Action",
    );
    assert_err(
        err("Action=RunInstances&Version=2016-11-15"),
        ErrorCode::InvalidAction,
        "The action RunInstances is not valid for this web service.",
    );
    assert_err(
        err("Action=describeinstances&Version=2016-11-15"),
        ErrorCode::InvalidAction,
        "The action describeinstances is not valid for this web service.",
    );
    assert_err(
        err("Action=DescribeInstances"),
        ErrorCode::MissingParameter,
        "The request must contain the parameter Version",
    );
    assert_err(
        err("Action=DescribeInstances&Version="),
        ErrorCode::MissingParameter,
        "The request must contain the parameter Version",
    );
    assert_err(
        err("Action=DescribeInstances&Version=2014-10-01"),
        ErrorCode::NoSuchVersion,
        "The requested version (2014-10-01) of service AmazonEC2 does not exist",
    );
    assert_err(
        err(""),
        ErrorCode::MissingAction,
        "The request must contain the parameter Action",
    );
}

#[test]
fn unknown_and_repeated_parameters() {
    for key in [
        "Foo",
        "InstanceId",
        "InstanceId.0",
        "InstanceId.01",
        "InstanceId.-1",
        "InstanceId.1.x",
        "InstanceIds.1",
        "instanceId.1",
        "Filter.1",
        "Filter.1.name",
        "Filter.0.Name",
        "Filter.1.Value",
        "Filter.1.Value.0",
        "Filter.1.Values.1",
        "Filter.x.Name",
        "maxResults",
        "",
    ] {
        assert_err(
            err_tail(&format!("&{key}=v")),
            ErrorCode::UnknownParameter,
            &format!("The parameter {key} is not recognized"),
        );
    }
    let long = "X".repeat(200);
    let e = err_tail(&format!("&{long}=v"));
    assert_eq!(e.code, ErrorCode::UnknownParameter);
    assert!(
        e.message.len() < 120,
        "the quoted name is cut: {}",
        e.message
    );

    assert_err(
        err_tail("&InstanceId.1=i-0123456789abcdef0&InstanceId.1=i-0123456789abcdef1"),
        ErrorCode::InvalidParameterValue,
        "The parameter InstanceId.1 is given more than once",
    );
    assert_err(
        err("Action=DescribeInstances&Action=DescribeInstances&Version=2016-11-15"),
        ErrorCode::InvalidParameterValue,
        "The parameter Action is given more than once",
    );
}

#[test]
fn bounds() {
    let big = vec![b'a'; eic_ec2::MAX_BODY_BYTES + 1];
    assert_eq!(
        parse_query(&big).unwrap_err().code,
        ErrorCode::InvalidParameterValue
    );

    let mut body = HEAD.to_owned();
    for n in 1..=eic_ec2::MAX_PARAMS {
        body.push_str(&format!("&InstanceId.{n}=i-{n:08x}"));
    }
    assert_err(
        err(&body),
        ErrorCode::InvalidParameterValue,
        "The request has more than 1500 parameters",
    );

    let long = "a".repeat(eic_ec2::MAX_VALUE_BYTES + 1);
    assert_err(
        err_tail(&format!("&NextToken={long}")),
        ErrorCode::InvalidParameterValue,
        "The value of parameter NextToken is longer than 1024 bytes",
    );
    assert_err(
        err_tail(&format!("&Filter.1.Name=tag-key&Filter.1.Value.1={long}")),
        ErrorCode::FilterLimitExceeded,
        "The maximum length for a filter value is 255 characters",
    );
}

#[test]
fn not_utf8_is_malformed() {
    for body in [
        format!("{HEAD}&Filter.1.Name=tag-key&Filter.1.Value.1=%FF"),
        format!("{HEAD}&Filter.1.Name=tag-key&Filter.1.Value.1=%C3"),
        format!("{HEAD}&%FF=1"),
    ] {
        assert_err(
            err(&body),
            ErrorCode::MalformedQueryString,
            "The query string contains a syntax error.",
        );
    }
    let mut raw = format!("{HEAD}&Filter.1.Name=tag-key&Filter.1.Value.1=").into_bytes();
    raw.push(0xff);
    assert_eq!(
        parse_query(&raw).unwrap_err().code,
        ErrorCode::MalformedQueryString
    );
}

#[test]
fn instance_ids() {
    let r = ok(
        "&InstanceId.2=i-0123456789abcdef2&InstanceId.1=i-0123456789abcdef1\
                &InstanceId.3=i-0123456789abcdef1&InstanceId.10=i-abcd1234",
    );
    assert_eq!(
        r.instance_ids,
        ["i-0123456789abcdef1", "i-0123456789abcdef2", "i-abcd1234"],
        "in N order (numeric, not textual), each once"
    );
    // Gaps in N are accepted.
    assert_eq!(ok("&InstanceId.7=i-abcd1234").instance_ids, ["i-abcd1234"]);
    assert_eq!(
        ok("&InstanceId.1000=i-abcd1234").instance_ids,
        ["i-abcd1234"]
    );
    assert_err(
        err_tail("&InstanceId.1001=i-abcd1234"),
        ErrorCode::InvalidParameterValue,
        "The request names more than 1000 instance IDs",
    );

    for bad in [
        "i-123",
        "i-ABCDEF12",
        "i-0123456789abcdefg",
        "0123456789",
        "x-0123456789abcdef0",
        "i-0123456789abcdef0123456789abcdef",
        "i-<script>",
        "i- 12345678",
    ] {
        let enc: String = form_encode(bad);
        assert_err(
            err_tail(&format!("&InstanceId.1={enc}")),
            ErrorCode::InvalidInstanceIdMalformed,
            &format!("Invalid id: \"{bad}\""),
        );
    }
    // What `--instance-ids ''` sends.
    assert_err(
        err_tail("&InstanceId.1="),
        ErrorCode::MissingParameter,
        "The request must contain the parameter InstanceId",
    );
    // The lowest N is reported first.
    assert_err(
        err_tail("&InstanceId.2=bad2&InstanceId.1=bad1"),
        ErrorCode::InvalidInstanceIdMalformed,
        "Invalid id: \"bad1\"",
    );
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn filters() {
    for (name, want) in eic_ec2::FilterName::FIXED {
        let r = ok(&format!("&Filter.1.Name={name}&Filter.1.Value.1=x"));
        assert_eq!(r.filters, [Filter::new(want.clone(), &["x"])]);
    }
    assert_err(
        err_tail("&Filter.1.Name=x&Filter.1.Value.1=y"),
        ErrorCode::InvalidParameterValue,
        "The filter 'x' is invalid",
    );
    assert_err(
        err_tail("&Filter.1.Name=owner-id&Filter.1.Value.1=y"),
        ErrorCode::InvalidParameterValue,
        "The filter 'owner-id' is invalid",
    );
    assert_err(
        err_tail("&Filter.1.Name=tag%3A"),
        ErrorCode::InvalidParameterValue,
        "The filter 'tag:' is invalid",
    );
    assert_err(
        err_tail("&Filter.1.Name="),
        ErrorCode::InvalidParameterValue,
        "The filter '' is invalid",
    );
    assert_err(
        err_tail("&Filter.2.Value.1=running"),
        ErrorCode::MissingParameter,
        "The request must contain the parameter Filter.2.Name",
    );
    // A name without values: "has the attribute".
    let r = ok("&Filter.1.Name=vpc-id");
    assert_eq!(r.filters, [Filter::new(FilterName::VpcId, &[])]);
    // Filters in N order, values in M order.
    let r = ok("&Filter.10.Name=tag-key&Filter.10.Value.1=b\
                &Filter.2.Name=tag-key&Filter.2.Value.2=a2&Filter.2.Value.1=a1");
    assert_eq!(
        r.filters,
        [
            Filter::new(FilterName::TagKey, &["a1", "a2"]),
            Filter::new(FilterName::TagKey, &["b"])
        ]
    );
}

#[test]
fn filter_limits() {
    let value = "v".repeat(255);
    assert_eq!(
        ok(&format!("&Filter.1.Name=tag-key&Filter.1.Value.1={value}")).filters[0].values[0],
        Pattern::new(&value)
    );
    // 255 characters, not bytes.
    let accents = "%C3%A9".repeat(255);
    ok(&format!(
        "&Filter.1.Name=tag-key&Filter.1.Value.1={accents}"
    ));
    assert_err(
        err_tail(&format!("&Filter.1.Name=tag-key&Filter.1.Value.1={value}v")),
        ErrorCode::FilterLimitExceeded,
        "The maximum length for a filter value is 255 characters",
    );

    let mut tail = String::from("&Filter.1.Name=instance-id");
    for m in 1..=200 {
        tail.push_str(&format!("&Filter.1.Value.{m}=i-{m:08x}"));
    }
    assert_eq!(ok(&tail).filters[0].values.len(), 200);
    let mut over = tail.clone();
    over.push_str("&Filter.2.Name=tag-key&Filter.2.Value.1=x");
    assert_err(
        err_tail(&over),
        ErrorCode::FilterLimitExceeded,
        "The maximum number of filter values specified on a single call is 200",
    );
    assert_err(
        err_tail("&Filter.1.Name=tag-key&Filter.1.Value.201=x"),
        ErrorCode::FilterLimitExceeded,
        "The maximum number of filter values specified on a single call is 200",
    );
    assert_err(
        err_tail("&Filter.201.Name=tag-key"),
        ErrorCode::FilterLimitExceeded,
        "The maximum number of filters specified on a single call is 200",
    );
}

#[test]
fn max_results() {
    assert_eq!(ok("&MaxResults=5").max_results, Some(5));
    assert_eq!(ok("&MaxResults=1000").max_results, Some(1000));
    for (v, expect) in [
        ("4", "a value greater than 5"),
        ("1", "a value greater than 5"),
        ("0", "a value greater than 5"),
        ("-7", "a value greater than 5"),
        ("1001", "a value less than or equal to 1000"),
        ("99999999999999999999", "an integer"),
        ("five", "an integer"),
        ("", "an integer"),
        ("5.0", "an integer"),
    ] {
        assert_err(
            err_tail(&format!("&MaxResults={v}")),
            ErrorCode::InvalidParameterValue,
            &format!("Value ( {v} ) for parameter maxResults is invalid. Expecting {expect}."),
        );
    }
    assert_err(
        err_tail("&MaxResults=5&InstanceId.1=i-0123456789abcdef0"),
        ErrorCode::InvalidParameterCombination,
        "The parameter instancesSet cannot be used with the parameter maxResults",
    );
    // Filters and MaxResults go together.
    let r = ok("&MaxResults=5&Filter.1.Name=instance-id&Filter.1.Value.1=i-0123456789abcdef0");
    assert_eq!(r.max_results, Some(5));
}

#[test]
fn dry_run() {
    for v in ["true", "TRUE", "True"] {
        let q = parse_query(format!("{HEAD}&DryRun={v}").as_bytes()).unwrap();
        assert!(q.dry_run());
        let e = q.dry_run_outcome().unwrap_err();
        assert_err(
            e.clone(),
            ErrorCode::DryRunOperation,
            "Request would have succeeded, but DryRun flag is set.",
        );
        assert_eq!(e.status(), 412);
    }
    assert!(!ok("&DryRun=false").dry_run);
    assert_err(
        err_tail("&DryRun=yes"),
        ErrorCode::InvalidParameterValue,
        "Value ( yes ) for parameter DryRun is invalid. Expecting true or false.",
    );
}

#[test]
fn next_token_is_checked() {
    assert_eq!(ok("&NextToken=").after, None, "an empty token is no token");
    for bad in ["garbage", "00", "0123456789abcdef", "%2B%2F%3D"] {
        let e = err_tail(&format!("&NextToken={bad}"));
        let shown = form_urlencoded::parse(format!("t={bad}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        assert_err(
            e,
            ErrorCode::InvalidParameterValue,
            &format!("Value ( {shown} ) for parameter NextToken is invalid. The token is invalid."),
        );
    }
}
