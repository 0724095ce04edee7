//! Property tests: parsing and evaluation never panic, whatever the input.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use eic_policy::{evaluate, Policy, RequestContext};
use proptest::prelude::*;
use serde_json::{json, Value};

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Values of every type condition operators take, plus noise, so that
/// generated policies usually parse and reach evaluation.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "*",
                "ec2-user",
                "dev",
                "${aws:username}",
                "${aws:PrincipalTag/Team, 'dev'}",
                "${*}${?}${$}",
                "d*",
                "?ev",
                "arn:aws:iam::*:user/${aws:username}",
                "arn:aws:ec2:us-*-2:1?1:instance/*",
                "10.0.0.0/8",
                "10.1.2.3",
                "2001:db8::/32",
                "::ffff:10.0.0.1",
                "2024-01-01T00:00:00Z",
                "2024-01-01",
                "1700000000",
                "true",
                "false",
                "-2.5",
                "22",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z0-9:/*?${}',.-]{0,16}",
    ]
}

fn values_for(op: &str) -> BoxedStrategy<String> {
    let pick = |options: &'static [&'static str]| {
        prop::sample::select(options)
            .prop_map(str::to_owned)
            .boxed()
    };
    if op.starts_with("Numeric") {
        pick(&["22", "-2.5", "1024", "0"])
    } else if op.starts_with("Date") {
        pick(&[
            "2024-01-01T00:00:00Z",
            "2024-01-01",
            "1700000000",
            "2030-06-01T12:30:00+02:00",
        ])
    } else if op == "Bool" || op == "Null" {
        pick(&["true", "false", "TRUE"])
    } else if op.contains("IpAddress") {
        pick(&["10.0.0.0/8", "10.1.2.3", "2001:db8::/32", "0.0.0.0/0"])
    } else {
        value().boxed()
    }
}

const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Null",
];

const KEYS: &[&str] = &[
    "ec2:osuser",
    "aws:ResourceTag/Team",
    "aws:PrincipalTag/Team",
    "aws:SourceIp",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:username",
    "aws:PrincipalArn",
    "aws:SecureTransport",
    "aws:TagKeys",
];

const ACTIONS: &[&str] = &[
    "*",
    "ec2-instance-connect:SendSSHPublicKey",
    "ec2-instance-connect:Send*",
    "EC2-INSTANCE-CONNECT:send?shpublickey",
    "ec2:Describe*",
    "*:*",
];

const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:ec2:*:*:instance/*",
    "arn:aws:ec2:us-*-2:1?1:instance/i-${aws:username}",
    "arn:aws:ec2:us-west-2:111122223333:instance/i-0123",
    "arn:aws:ec2:*:instance/*",
    "arn:aws:ec2:us-west-2:111122223333:instance/${aws:PrincipalTag/Team, 'x'}${*}",
];

/// (operator, key, values), with operator spellings that parse.
fn condition() -> impl Strategy<Value = (String, &'static str, Vec<String>)> {
    (
        prop::sample::select(OPERATORS),
        prop::sample::select(&["", "ForAnyValue:", "ForAllValues:"][..]),
        any::<bool>(),
        prop::sample::select(KEYS),
    )
        .prop_flat_map(|(op, qualifier, if_exists, key)| {
            let name = if op == "Null" {
                op.to_owned()
            } else {
                format!("{qualifier}{op}{}", if if_exists { "IfExists" } else { "" })
            };
            (
                Just(name),
                Just(key),
                prop::collection::vec(values_for(op), 1..3),
            )
        })
}

fn statement() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["Allow", "Deny"][..]),
        any::<bool>(),
        prop::collection::vec(prop::sample::select(ACTIONS), 1..3),
        any::<bool>(),
        prop::collection::vec(prop::sample::select(RESOURCES), 1..3),
        prop::collection::vec(condition(), 0..4),
    )
        .prop_map(
            |(effect, not_action, actions, not_resource, resources, conditions)| {
                let mut condition = serde_json::Map::new();
                for (op, key, values) in conditions {
                    let block = condition.entry(op).or_insert_with(|| json!({}));
                    block[key] = json!(values);
                }
                json!({
                    "Effect": effect,
                    (if not_action { "NotAction" } else { "Action" }): actions,
                    (if not_resource { "NotResource" } else { "Resource" }): resources,
                    "Condition": condition,
                })
            },
        )
}

/// The same request twice, the second with every key name upper-cased.
fn context() -> impl Strategy<Value = (RequestContext, RequestContext)> {
    (
        prop::sample::select(
            &[
                "ec2-instance-connect:SendSSHPublicKey",
                "ec2-instance-connect:SendSerialConsoleSSHPublicKey",
                "ec2:DescribeInstances",
                "",
            ][..],
        ),
        prop::sample::select(
            &[
                "arn:aws:ec2:us-west-2:111122223333:instance/i-0123",
                "arn:aws:ec2:us-west-2:111122223333:instance/i-dev*",
                "arn:aws:ec2:eu-west-1:1:instance/i-x",
                "",
            ][..],
        ),
        prop::collection::vec(
            (
                prop::sample::select(KEYS),
                prop::collection::vec(value(), 0..3),
            ),
            0..8,
        ),
    )
        .prop_map(|(action, resource, keys)| {
            let mut ctx = RequestContext::new(action, resource);
            let mut upper = ctx.clone();
            for (key, values) in keys {
                ctx.set_values(key, values.clone());
                upper.set_values(&key.to_uppercase(), values);
            }
            (ctx, upper)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parser_never_panics_on_strings(text in ".{0,200}") {
        let _ = Policy::parse(&text);
    }

    #[test]
    fn parser_never_panics_on_json(value in arbitrary_json()) {
        let _ = Policy::parse(&value.to_string());
        let _ = Policy::parse(&json!({"Version": "2012-10-17", "Statement": value}).to_string());
    }

    #[test]
    fn parser_never_panics_on_mangled_policies(text in "[{}\\[\\]\":, A-Za-z0-9*?$/-]{0,120}") {
        let wrapped = format!(r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", {text}}}}}"#);
        let _ = Policy::parse(&wrapped);
    }

    #[test]
    fn evaluation_never_panics_and_ignores_grouping_order_and_key_case(
        statements in prop::collection::vec(statement(), 1..4),
        boundary in prop::option::of(statement()),
        (ctx, upper_ctx) in context(),
    ) {
        let parse = |s: &Value| Policy::parse(&json!({"Version": "2012-10-17", "Statement": s}).to_string()).ok();
        let identity: Vec<Policy> = parse(&Value::Array(statements.clone())).into_iter().collect();
        let boundary: Option<Vec<Policy>> = boundary.map(|b| parse(&b).into_iter().collect());
        let decision = evaluate(&identity, boundary.as_deref(), &ctx);
        // Without any identity policy nothing can be allowed.
        if identity.is_empty() {
            prop_assert!(!decision.is_allowed());
        }
        prop_assert_eq!(evaluate(&identity, boundary.as_deref(), &upper_ctx), decision);
        // One policy per statement, in reverse order, decides the same.
        let separate: Option<Vec<Policy>> = statements.iter().rev().map(parse).collect();
        if let (Some(separate), false) = (separate, identity.is_empty()) {
            prop_assert_eq!(evaluate(&separate, boundary.as_deref(), &ctx), decision);
        }
    }
}
