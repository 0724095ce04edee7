//! Table-driven condition tests: every operator, qualifier and server key.
//!
//! Each row is a `Condition` block placed in an Allow statement for
//! `ec2-instance-connect:SendSSHPublicKey` on `*`, the request's condition
//! keys, and whether the request is allowed.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use eic_policy::{evaluate, Policy, RequestContext};

const ACTION: &str = "ec2-instance-connect:SendSSHPublicKey";
const INSTANCE: &str = "arn:aws:ec2:us-west-2:111122223333:instance/i-0123456789abcdef0";

type Keys = &'static [(&'static str, &'static [&'static str])];

struct Case {
    condition: &'static str,
    keys: Keys,
    allowed: bool,
}

const fn case(condition: &'static str, keys: Keys, allowed: bool) -> Case {
    Case {
        condition,
        keys,
        allowed,
    }
}

fn run(cases: &[Case]) {
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let text = format!(
            r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", "Action": "{ACTION}",
                "Resource": "*", "Condition": {}}}}}"#,
            c.condition
        );
        let policy = match Policy::parse(&text) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("row {i}: {} did not parse: {e}", c.condition));
                continue;
            }
        };
        let mut ctx = RequestContext::new(ACTION, INSTANCE);
        for (key, values) in c.keys {
            ctx.set_values(key, values.iter().copied());
        }
        let allowed = evaluate(&[policy], None, &ctx).is_allowed();
        if allowed != c.allowed {
            failures.push(format!(
                "row {i}: {} with {:?}: expected allowed={}, got {}",
                c.condition, c.keys, c.allowed, allowed
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
#[rustfmt::skip]
fn string_operators() {
    run(&[
        // StringEquals: exact and case-sensitive; a missing key fails.
        case(r#"{"StringEquals": {"ec2:osuser": "ec2-user"}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringEquals": {"ec2:osuser": "ec2-user"}}"#, &[("ec2:osuser", &["root"])], false),
        case(r#"{"StringEquals": {"ec2:osuser": "ec2-user"}}"#, &[("ec2:osuser", &["EC2-USER"])], false),
        case(r#"{"StringEquals": {"ec2:osuser": "ec2-user"}}"#, &[], false),
        // Values of one key are ORed.
        case(r#"{"StringEquals": {"ec2:osuser": ["ubuntu", "ec2-user"]}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringEquals": {"ec2:osuser": ["ubuntu", "ec2-user"]}}"#, &[("ec2:osuser", &["root"])], false),
        // StringNotEquals: NOR over the values; a missing key passes.
        case(r#"{"StringNotEquals": {"ec2:osuser": "root"}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringNotEquals": {"ec2:osuser": "root"}}"#, &[("ec2:osuser", &["root"])], false),
        case(r#"{"StringNotEquals": {"ec2:osuser": ["root", "admin"]}}"#, &[("ec2:osuser", &["admin"])], false),
        case(r#"{"StringNotEquals": {"ec2:osuser": ["root", "admin"]}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringNotEquals": {"ec2:osuser": "root"}}"#, &[], true),
        // IgnoreCase variants.
        case(r#"{"StringEqualsIgnoreCase": {"ec2:osuser": "EC2-User"}}"#, &[("ec2:osuser", &["ec2-USER"])], true),
        case(r#"{"StringEqualsIgnoreCase": {"ec2:osuser": "ec2-user"}}"#, &[("ec2:osuser", &["ubuntu"])], false),
        case(r#"{"StringEqualsIgnoreCase": {"ec2:osuser": "ec2-user"}}"#, &[], false),
        case(r#"{"StringNotEqualsIgnoreCase": {"ec2:osuser": "ROOT"}}"#, &[("ec2:osuser", &["root"])], false),
        case(r#"{"StringNotEqualsIgnoreCase": {"ec2:osuser": "ROOT"}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringNotEqualsIgnoreCase": {"ec2:osuser": "ROOT"}}"#, &[], true),
        // StringLike: `*` and `?`, case-sensitive.
        case(r#"{"StringLike": {"ec2:osuser": "ec2-*"}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringLike": {"ec2:osuser": "ec2-*"}}"#, &[("ec2:osuser", &["EC2-user"])], false),
        case(r#"{"StringLike": {"ec2:osuser": "user?"}}"#, &[("ec2:osuser", &["user1"])], true),
        case(r#"{"StringLike": {"ec2:osuser": "user?"}}"#, &[("ec2:osuser", &["user12"])], false),
        case(r#"{"StringLike": {"ec2:osuser": "*"}}"#, &[("ec2:osuser", &[""])], true),
        case(r#"{"StringLike": {"ec2:osuser": "*"}}"#, &[], false),
        case(r#"{"StringNotLike": {"ec2:osuser": ["root*", "admin?"]}}"#, &[("ec2:osuser", &["rootkit"])], false),
        case(r#"{"StringNotLike": {"ec2:osuser": ["root*", "admin?"]}}"#, &[("ec2:osuser", &["admin"])], true),
        case(r#"{"StringNotLike": {"ec2:osuser": "root*"}}"#, &[], true),
        // Non-string JSON values compare as their text.
        case(r#"{"StringEquals": {"aws:PrincipalTag/level": 3}}"#, &[("aws:PrincipalTag/level", &["3"])], true),
        case(r#"{"StringEquals": {"aws:PrincipalTag/admin": true}}"#, &[("aws:PrincipalTag/admin", &["true"])], true),
    ]);
}

#[test]
#[rustfmt::skip]
fn if_exists() {
    run(&[
        case(r#"{"StringEqualsIfExists": {"ec2:osuser": "ec2-user"}}"#, &[], true),
        case(r#"{"StringEqualsIfExists": {"ec2:osuser": "ec2-user"}}"#, &[("ec2:osuser", &["root"])], false),
        case(r#"{"StringEqualsIfExists": {"ec2:osuser": "ec2-user"}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringNotEqualsIfExists": {"ec2:osuser": "root"}}"#, &[], true),
        case(r#"{"StringNotEqualsIfExists": {"ec2:osuser": "root"}}"#, &[("ec2:osuser", &["root"])], false),
        case(r#"{"StringEqualsIgnoreCaseIfExists": {"ec2:osuser": "X"}}"#, &[], true),
        case(r#"{"StringNotEqualsIgnoreCaseIfExists": {"ec2:osuser": "X"}}"#, &[("ec2:osuser", &["x"])], false),
        case(r#"{"StringLikeIfExists": {"ec2:osuser": "ec2-*"}}"#, &[], true),
        case(r#"{"StringLikeIfExists": {"ec2:osuser": "ec2-*"}}"#, &[("ec2:osuser", &["root"])], false),
        case(r#"{"StringNotLikeIfExists": {"ec2:osuser": "r*"}}"#, &[("ec2:osuser", &["root"])], false),
        case(r#"{"NumericLessThanIfExists": {"ec2-instance-connect:remotePort": "1024"}}"#, &[], true),
        case(r#"{"NumericLessThanIfExists": {"ec2-instance-connect:remotePort": "1024"}}"#, &[("ec2-instance-connect:remotePort", &["2222"])], false),
        case(r#"{"DateLessThanIfExists": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}"#, &[], true),
        case(r#"{"BoolIfExists": {"aws:SecureTransport": "true"}}"#, &[], true),
        case(r#"{"BoolIfExists": {"aws:SecureTransport": "true"}}"#, &[("aws:SecureTransport", &["false"])], false),
        case(r#"{"IpAddressIfExists": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[], true),
        case(r#"{"NotIpAddressIfExists": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[("aws:SourceIp", &["203.0.113.9"])], false),
        case(r#"{"ArnLikeIfExists": {"aws:PrincipalArn": "arn:aws:iam::*:user/a*"}}"#, &[], true),
        case(r#"{"ArnNotLikeIfExists": {"aws:PrincipalArn": "arn:aws:iam::*:user/a*"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:user/alice"])], false),
    ]);
}

#[test]
#[rustfmt::skip]
fn numeric_operators() {
    const PORT: &str = "ec2-instance-connect:remotePort";
    run(&[
        case(r#"{"NumericEquals": {"ec2-instance-connect:remotePort": "22"}}"#, &[(PORT, &["22"])], true),
        case(r#"{"NumericEquals": {"ec2-instance-connect:remotePort": 22}}"#, &[(PORT, &["22.0"])], true),
        case(r#"{"NumericEquals": {"ec2-instance-connect:remotePort": "22"}}"#, &[(PORT, &["23"])], false),
        case(r#"{"NumericEquals": {"ec2-instance-connect:remotePort": "22"}}"#, &[], false),
        case(r#"{"NumericEquals": {"ec2-instance-connect:remotePort": ["22", "3389"]}}"#, &[(PORT, &["3389"])], true),
        case(r#"{"NumericNotEquals": {"ec2-instance-connect:remotePort": "22"}}"#, &[(PORT, &["22"])], false),
        case(r#"{"NumericNotEquals": {"ec2-instance-connect:remotePort": "22"}}"#, &[(PORT, &["80"])], true),
        case(r#"{"NumericNotEquals": {"ec2-instance-connect:remotePort": "22"}}"#, &[], true),
        case(r#"{"NumericLessThan": {"ec2-instance-connect:remotePort": "1024"}}"#, &[(PORT, &["1023"])], true),
        case(r#"{"NumericLessThan": {"ec2-instance-connect:remotePort": "1024"}}"#, &[(PORT, &["1024"])], false),
        case(r#"{"NumericLessThanEquals": {"ec2-instance-connect:remotePort": "1024"}}"#, &[(PORT, &["1024"])], true),
        case(r#"{"NumericLessThanEquals": {"ec2-instance-connect:remotePort": "1024"}}"#, &[(PORT, &["1025"])], false),
        case(r#"{"NumericGreaterThan": {"ec2-instance-connect:remotePort": "1024"}}"#, &[(PORT, &["1025"])], true),
        case(r#"{"NumericGreaterThan": {"ec2-instance-connect:remotePort": "1024"}}"#, &[(PORT, &["1024"])], false),
        case(r#"{"NumericGreaterThanEquals": {"ec2-instance-connect:remotePort": "-1.5"}}"#, &[(PORT, &["-1.5"])], true),
        case(r#"{"NumericGreaterThanEquals": {"ec2-instance-connect:remotePort": "1024"}}"#, &[(PORT, &["1023.9"])], false),
        // A request value that is not a number matches nothing.
        case(r#"{"NumericLessThan": {"ec2-instance-connect:remotePort": "1024"}}"#, &[(PORT, &["ssh"])], false),
        case(r#"{"NumericNotEquals": {"ec2-instance-connect:remotePort": "22"}}"#, &[(PORT, &["ssh"])], true),
    ]);
}

#[test]
#[rustfmt::skip]
fn date_operators() {
    const NOW: &str = "aws:CurrentTime";
    const EPOCH: &str = "aws:EpochTime";
    run(&[
        case(r#"{"DateEquals": {"aws:CurrentTime": "2024-05-01T12:00:00Z"}}"#, &[(NOW, &["2024-05-01T12:00:00Z"])], true),
        case(r#"{"DateEquals": {"aws:CurrentTime": "2024-05-01T12:00:00Z"}}"#, &[(NOW, &["2024-05-01T14:00:00+02:00"])], true),
        case(r#"{"DateEquals": {"aws:CurrentTime": "2024-05-01T12:00:00Z"}}"#, &[(NOW, &["2024-05-01T12:00:01Z"])], false),
        case(r#"{"DateNotEquals": {"aws:CurrentTime": "2024-05-01T12:00:00Z"}}"#, &[(NOW, &["2024-05-01T12:00:01Z"])], true),
        case(r#"{"DateNotEquals": {"aws:CurrentTime": "2024-05-01T12:00:00Z"}}"#, &[(NOW, &["2024-05-01T12:00:00Z"])], false),
        case(r#"{"DateNotEquals": {"aws:CurrentTime": "2024-05-01T12:00:00Z"}}"#, &[], true),
        case(r#"{"DateLessThan": {"aws:CurrentTime": "2024-06-01"}}"#, &[(NOW, &["2024-05-31T23:59:59Z"])], true),
        case(r#"{"DateLessThan": {"aws:CurrentTime": "2024-06-01"}}"#, &[(NOW, &["2024-06-01T00:00:00Z"])], false),
        case(r#"{"DateLessThan": {"aws:CurrentTime": "2024-06-01"}}"#, &[], false),
        case(r#"{"DateLessThanEquals": {"aws:CurrentTime": "2024-06-01"}}"#, &[(NOW, &["2024-06-01T00:00:00Z"])], true),
        case(r#"{"DateGreaterThan": {"aws:CurrentTime": "2024-06-01T00:00:00Z"}}"#, &[(NOW, &["2024-06-01T00:00:00.001Z"])], true),
        case(r#"{"DateGreaterThan": {"aws:CurrentTime": "2024-06-01T00:00:00Z"}}"#, &[(NOW, &["2024-06-01T00:00:00Z"])], false),
        case(r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2024-06-01T00:00:00Z"}}"#, &[(NOW, &["2024-06-01T00:00:00Z"])], true),
        case(r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2024-06-01T00:00:00Z"}}"#, &[(NOW, &["2024-05-31T00:00:00Z"])], false),
        // Epoch seconds on either side.
        case(r#"{"DateGreaterThan": {"aws:EpochTime": "1717200000"}}"#, &[(EPOCH, &["1717200001"])], true),
        case(r#"{"DateGreaterThan": {"aws:EpochTime": 1717200000}}"#, &[(EPOCH, &["1717200000"])], false),
        case(r#"{"DateEquals": {"aws:EpochTime": "2024-06-01T00:00:00Z"}}"#, &[(EPOCH, &["1717200000"])], true),
        case(r#"{"DateLessThan": {"aws:CurrentTime": "1717200000"}}"#, &[(NOW, &["2024-05-31T23:59:59Z"])], true),
        // An unparseable request value matches nothing.
        case(r#"{"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}"#, &[(NOW, &["soon"])], false),
    ]);
}

#[test]
#[rustfmt::skip]
fn bool_ip_null_operators() {
    const TLS: &str = "aws:SecureTransport";
    const IP: &str = "aws:SourceIp";
    run(&[
        case(r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[(TLS, &["true"])], true),
        case(r#"{"Bool": {"aws:SecureTransport": true}}"#, &[(TLS, &["True"])], true),
        case(r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[(TLS, &["false"])], false),
        case(r#"{"Bool": {"aws:SecureTransport": "false"}}"#, &[(TLS, &["false"])], true),
        case(r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[(TLS, &["yes"])], false),
        case(r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[], false),
        case(r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[(IP, &["203.0.113.77"])], true),
        case(r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[(IP, &["198.51.100.1"])], false),
        case(r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[(IP, &["::ffff:203.0.113.77"])], true),
        case(r#"{"IpAddress": {"aws:SourceIp": "203.0.113.5"}}"#, &[(IP, &["203.0.113.5"])], true),
        case(r#"{"IpAddress": {"aws:SourceIp": "203.0.113.5"}}"#, &[(IP, &["203.0.113.6"])], false),
        case(r#"{"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]}}"#, &[(IP, &["2001:db8:1234:5678::1"])], true),
        case(r#"{"IpAddress": {"aws:SourceIp": "2001:DB8:1234:5678::/64"}}"#, &[(IP, &["2001:db8:1234:5679::1"])], false),
        case(r#"{"IpAddress": {"aws:SourceIp": "2001:db8::1"}}"#, &[(IP, &["2001:db8::1"])], true),
        case(r#"{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#, &[(IP, &["2001:db8::1"])], false),
        case(r#"{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#, &[], false),
        case(r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[(IP, &["198.51.100.1"])], true),
        case(r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[(IP, &["203.0.113.1"])], false),
        case(r#"{"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24", "198.51.100.0/24"]}}"#, &[(IP, &["198.51.100.1"])], false),
        case(r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[], true),
        case(r#"{"Null": {"aws:PrincipalTag/Team": "true"}}"#, &[], true),
        case(r#"{"Null": {"aws:PrincipalTag/Team": "true"}}"#, &[("aws:PrincipalTag/Team", &["dev"])], false),
        case(r#"{"Null": {"aws:PrincipalTag/Team": false}}"#, &[("aws:PrincipalTag/Team", &["dev"])], true),
        case(r#"{"Null": {"aws:PrincipalTag/Team": "false"}}"#, &[], false),
    ]);
}

#[test]
#[rustfmt::skip]
fn arn_operators() {
    const P: &str = "aws:PrincipalArn";
    run(&[
        case(r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/admin-*"}}"#, &[(P, &["arn:aws:iam::111122223333:role/admin-ops"])], true),
        case(r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/admin-*"}}"#, &[(P, &["arn:aws:iam::111122223333:role/dev"])], false),
        case(r#"{"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::*:user/alice"}}"#, &[(P, &["arn:aws:iam::111122223333:user/alice"])], true),
        case(r#"{"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/alice"}}"#, &[(P, &["arn:aws:iam::111122223333:user/Alice"])], false),
        case(r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/alice"}}"#, &[], false),
        case(r#"{"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/admin-*"}}"#, &[(P, &["arn:aws:iam::111122223333:user/alice"])], true),
        case(r#"{"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/admin-*"}}"#, &[(P, &["arn:aws:iam::1:role/admin-x"])], false),
        case(r#"{"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::*:role/admin-*"}}"#, &[], true),
        // IAM's documented example: each component is matched on its own, so
        // the region `*` cannot swallow the colons StringLike would.
        case(r#"{"ArnLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}}"#, &[("aws:SourceArn", &["arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"])], false),
        case(r#"{"StringLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}}"#, &[("aws:SourceArn", &["arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"])], true),
        // The resource component keeps its colons.
        case(r#"{"ArnLike": {"aws:SourceArn": "arn:aws:lambda:*:*:function:f*"}}"#, &[("aws:SourceArn", &["arn:aws:lambda:us-east-1:1:function:fn:prod"])], true),
        case(r#"{"ArnLike": {"aws:SourceArn": "*"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::bucket"])], true),
        case(r#"{"ArnLike": {"aws:SourceArn": "arn:aws:*"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::bucket"])], true),
        case(r#"{"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::bucket:extra"])], false),
        case(r#"{"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket"}}"#, &[("aws:SourceArn", &["not-an-arn"])], false),
    ]);
}

#[test]
#[rustfmt::skip]
fn set_qualifiers() {
    const TAGS: &str = "aws:TagKeys";
    run(&[
        // ForAnyValue: some request value matches some policy value.
        case(r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["Team", "Env"]}}"#, &[(TAGS, &["Owner", "Env"])], true),
        case(r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["Team", "Env"]}}"#, &[(TAGS, &["Owner"])], false),
        case(r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["Team"]}}"#, &[], false),
        case(r#"{"ForAnyValue:StringLike": {"aws:TagKeys": "T*"}}"#, &[(TAGS, &["Owner", "Team"])], true),
        // ForAllValues: every request value matches some policy value;
        // vacuously true for a missing or empty key.
        case(r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["Team", "Env"]}}"#, &[(TAGS, &["Team", "Env"])], true),
        case(r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["Team", "Env"]}}"#, &[(TAGS, &["Team", "Owner"])], false),
        case(r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["Team"]}}"#, &[], true),
        case(r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["Team"]}}"#, &[(TAGS, &[])], true),
        // Negated operators apply per request value.
        case(r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["Secret"]}}"#, &[(TAGS, &["Team", "Env"])], true),
        case(r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["Secret"]}}"#, &[(TAGS, &["Team", "Secret"])], false),
        case(r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["Team"]}}"#, &[(TAGS, &["Team", "Env"])], true),
        case(r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["Team"]}}"#, &[(TAGS, &["Team"])], false),
        case(r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["Team"]}}"#, &[], false),
        case(r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["Team"]}}"#, &[], true),
        // IfExists combined with a qualifier.
        case(r#"{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": ["Team"]}}"#, &[], true),
        // Other operator families take qualifiers too.
        case(r#"{"ForAnyValue:IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[("aws:SourceIp", &["192.0.2.1", "10.1.2.3"])], true),
        case(r#"{"ForAllValues:NumericLessThan": {"ec2-instance-connect:remotePort": "1024"}}"#, &[("ec2-instance-connect:remotePort", &["22", "2222"])], false),
        // Without a qualifier, a multi-valued key passes a positive operator
        // if any value matches and a negated one if none does.
        case(r#"{"StringEquals": {"aws:TagKeys": "Team"}}"#, &[(TAGS, &["Env", "Team"])], true),
        case(r#"{"StringNotEquals": {"aws:TagKeys": "Team"}}"#, &[(TAGS, &["Env", "Team"])], false),
        case(r#"{"StringNotEquals": {"aws:TagKeys": "Team"}}"#, &[(TAGS, &["Env", "Owner"])], true),
    ]);
}

#[test]
#[rustfmt::skip]
fn combining_operators_and_keys() {
    run(&[
        // Keys under one operator are ANDed.
        case(r#"{"StringEquals": {"ec2:osuser": "ec2-user", "aws:ResourceTag/Team": "dev"}}"#, &[("ec2:osuser", &["ec2-user"]), ("aws:ResourceTag/Team", &["dev"])], true),
        case(r#"{"StringEquals": {"ec2:osuser": "ec2-user", "aws:ResourceTag/Team": "dev"}}"#, &[("ec2:osuser", &["ec2-user"]), ("aws:ResourceTag/Team", &["ops"])], false),
        // Operators are ANDed.
        case(r#"{"StringEquals": {"ec2:osuser": "ec2-user"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[("ec2:osuser", &["ec2-user"]), ("aws:SourceIp", &["10.9.9.9"])], true),
        case(r#"{"StringEquals": {"ec2:osuser": "ec2-user"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[("ec2:osuser", &["ec2-user"]), ("aws:SourceIp", &["11.0.0.1"])], false),
        // An empty Condition block holds.
        case(r#"{}"#, &[], true),
    ]);
}

#[test]
#[rustfmt::skip]
fn server_keys() {
    run(&[
        case(r#"{"StringEquals": {"ec2:osuser": "ubuntu"}}"#, &[("ec2:osuser", &["ubuntu"])], true),
        case(r#"{"StringEquals": {"aws:ResourceTag/Team": "dev"}}"#, &[("aws:ResourceTag/Team", &["dev"])], true),
        case(r#"{"StringEquals": {"ec2:ResourceTag/Team": "dev"}}"#, &[("ec2:ResourceTag/Team", &["dev"])], true),
        case(r#"{"StringEquals": {"ec2:ResourceTag/Team": "dev"}}"#, &[("aws:ResourceTag/Team", &["dev"])], false),
        case(r#"{"StringEquals": {"aws:PrincipalTag/Team": "dev"}}"#, &[("aws:PrincipalTag/Team", &["dev"])], true),
        case(r#"{"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}"#, &[("aws:SourceIp", &["192.0.2.10"])], true),
        case(r#"{"DateLessThan": {"aws:CurrentTime": "2100-01-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2024-01-01T00:00:00Z"])], true),
        case(r#"{"DateGreaterThan": {"aws:EpochTime": "0"}}"#, &[("aws:EpochTime", &["1704067200"])], true),
        case(r#"{"StringEquals": {"aws:username": "alice"}}"#, &[("aws:username", &["alice"])], true),
        case(r#"{"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/alice"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:user/alice"])], true),
        case(r#"{"StringEquals": {"aws:PrincipalAccount": "111122223333"}}"#, &[("aws:PrincipalAccount", &["111122223333"])], true),
        case(r#"{"StringEquals": {"aws:PrincipalAccount": "111122223333"}}"#, &[("aws:PrincipalAccount", &["444455556666"])], false),
        case(r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[("aws:SecureTransport", &["true"])], true),
        case(r#"{"StringLike": {"aws:userid": "AIDA*"}}"#, &[("aws:userid", &["AIDAEXAMPLE"])], true),
        case(r#"{"StringLike": {"aws:userid": "AROA*:alice"}}"#, &[("aws:userid", &["AROAEXAMPLE:bob"])], false),
    ]);
}

#[test]
#[rustfmt::skip]
fn case_rules() {
    run(&[
        // Key names, including tag keys, are case-insensitive on both sides.
        case(r#"{"StringEquals": {"EC2:OSUser": "ec2-user"}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringEquals": {"ec2:osuser": "ec2-user"}}"#, &[("Ec2:OsUser", &["ec2-user"])], true),
        case(r#"{"StringEquals": {"aws:resourcetag/team": "dev"}}"#, &[("aws:ResourceTag/Team", &["dev"])], true),
        case(r#"{"StringEquals": {"aws:ResourceTag/TEAM": "dev"}}"#, &[("AWS:RESOURCETAG/team", &["dev"])], true),
        // Values are case-sensitive.
        case(r#"{"StringEquals": {"aws:ResourceTag/Team": "dev"}}"#, &[("aws:ResourceTag/Team", &["Dev"])], false),
        case(r#"{"StringLike": {"aws:ResourceTag/Team": "d*"}}"#, &[("aws:ResourceTag/Team", &["Dev"])], false),
    ]);
}

#[test]
#[rustfmt::skip]
fn policy_variables_in_conditions() {
    run(&[
        case(r#"{"StringEquals": {"ec2:osuser": "${aws:username}"}}"#, &[("ec2:osuser", &["alice"]), ("aws:username", &["alice"])], true),
        case(r#"{"StringEquals": {"ec2:osuser": "${aws:username}"}}"#, &[("ec2:osuser", &["bob"]), ("aws:username", &["alice"])], false),
        // Variable names are case-insensitive like key names.
        case(r#"{"StringEquals": {"ec2:osuser": "${AWS:UserName}"}}"#, &[("ec2:osuser", &["alice"]), ("aws:username", &["alice"])], true),
        case(r#"{"StringEquals": {"aws:ResourceTag/Team": "${aws:PrincipalTag/Team}"}}"#, &[("aws:ResourceTag/Team", &["dev"]), ("aws:PrincipalTag/team", &["dev"])], true),
        case(r#"{"StringLike": {"ec2:osuser": "${aws:username}-*"}}"#, &[("ec2:osuser", &["alice-admin"]), ("aws:username", &["alice"])], true),
        case(r#"{"StringEquals": {"ec2:osuser": "u-${aws:userid}"}}"#, &[("ec2:osuser", &["u-AIDA1"]), ("aws:userid", &["AIDA1"])], true),
        // Default values apply only when the key is absent.
        case(r#"{"StringEquals": {"ec2:osuser": "${aws:PrincipalTag/osuser, 'ec2-user'}"}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringEquals": {"ec2:osuser": "${aws:PrincipalTag/osuser, 'ec2-user'}"}}"#, &[("ec2:osuser", &["ec2-user"]), ("aws:PrincipalTag/osuser", &["ubuntu"])], false),
        // An unresolvable variable makes that value match nothing, so a
        // positive operator fails and a negated one passes.
        case(r#"{"StringEquals": {"ec2:osuser": "${aws:PrincipalTag/osuser}"}}"#, &[("ec2:osuser", &["ec2-user"])], false),
        case(r#"{"StringEquals": {"ec2:osuser": ["${aws:PrincipalTag/osuser}", "ec2-user"]}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringNotEquals": {"ec2:osuser": "${aws:PrincipalTag/osuser}"}}"#, &[("ec2:osuser", &["ec2-user"])], true),
        case(r#"{"StringLike": {"ec2:osuser": "*${aws:PrincipalTag/osuser}"}}"#, &[("ec2:osuser", &["ec2-user"])], false),
        // A multi-valued key cannot be spliced into a string.
        case(r#"{"StringEquals": {"ec2:osuser": "${aws:TagKeys}"}}"#, &[("ec2:osuser", &["a"]), ("aws:TagKeys", &["a", "b"])], false),
        // Escapes produce literal characters; substituted text is literal.
        case(r#"{"StringLike": {"ec2:osuser": "a${*}"}}"#, &[("ec2:osuser", &["a*"])], true),
        case(r#"{"StringLike": {"ec2:osuser": "a${*}"}}"#, &[("ec2:osuser", &["ab"])], false),
        case(r#"{"StringEquals": {"ec2:osuser": "${$}${?}"}}"#, &[("ec2:osuser", &["$?"])], true),
        case(r#"{"StringLike": {"ec2:osuser": "${aws:username}"}}"#, &[("ec2:osuser", &["anything"]), ("aws:username", &["*"])], false),
        case(r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:user/alice"]), ("aws:PrincipalAccount", &["111122223333"]), ("aws:username", &["alice"])], true),
        case(r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:user/alice"]), ("aws:PrincipalAccount", &["444455556666"]), ("aws:username", &["alice"])], false),
    ]);
}
