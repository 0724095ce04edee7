//! Policy evaluation cost per request: the fixture principal alice's
//! one-statement policy, and a ten-statement policy of the kind teams
//! write (per-user OS users, team tags, source networks, a guard Deny).
//!
//! `cargo bench -p eic-policy --bench evaluate`
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use criterion::{criterion_group, criterion_main, Criterion};
use eic_policy::{evaluate, Policy, RequestContext};
use std::hint::black_box;

pub fn ten_statement_policy() -> String {
    let mut statements = Vec::new();
    for i in 0..9 {
        statements.push(format!(
            r#"{{"Sid": "Team{i}", "Effect": "Allow", "Action": ["ec2-instance-connect:Send*"],
                "Resource": "arn:aws:ec2:*:111122223333:instance/*",
                "Condition": {{"StringEquals": {{"ec2:osuser": "user{i}", "aws:ResourceTag/Team": "team{i}"}},
                              "IpAddress": {{"aws:SourceIp": ["10.{i}.0.0/16", "127.0.0.0/8"]}}}}}}"#
        ));
    }
    statements.push(
        r#"{"Sid": "OwnUserOnly", "Effect": "Deny", "Action": "ec2-instance-connect:*", "Resource": "*",
            "Condition": {"StringNotEquals": {"ec2:osuser": "${aws:PrincipalTag/userName}"}}}"#
            .to_owned(),
    );
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
        statements.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let alice = Policy::parse(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "ec2-instance-connect:SendSSHPublicKey",
            "Resource": "arn:aws:ec2:*:111122223333:instance/*",
            "Condition": {"StringEquals": {"ec2:osuser": "ec2-user", "aws:ResourceTag/Team": "dev"}}}]}"#,
    )
    .unwrap();
    let ten = Policy::parse(&ten_statement_policy()).unwrap();
    let context = |user: &str, team: &str| {
        let mut ctx = RequestContext::new(
            "ec2-instance-connect:SendSSHPublicKey",
            "arn:aws:ec2:us-west-2:111122223333:instance/i-0123456789abcdef0",
        )
        .with("ec2:osuser", user)
        .with("aws:SourceIp", "127.0.0.1")
        .with("aws:PrincipalTag/userName", user)
        .with("aws:username", "bench");
        ctx.set_resource_tag("Team", team);
        ctx
    };
    let alice_ctx = context("ec2-user", "dev");
    let ten_ctx = context("user8", "team8");
    assert!(evaluate(std::slice::from_ref(&alice), None, &alice_ctx).is_allowed());
    assert!(evaluate(std::slice::from_ref(&ten), None, &ten_ctx).is_allowed());

    c.bench_function("evaluate/one statement (alice), allowed", |b| {
        b.iter(|| {
            evaluate(
                black_box(std::slice::from_ref(&alice)),
                None,
                black_box(&alice_ctx),
            )
        })
    });
    c.bench_function("evaluate/ten statements, allowed by the ninth", |b| {
        b.iter(|| {
            evaluate(
                black_box(std::slice::from_ref(&ten)),
                None,
                black_box(&ten_ctx),
            )
        })
    });
    c.bench_function("build context (what the server does per request)", |b| {
        b.iter(|| black_box(context(black_box("user8"), black_box("team8"))))
    });
    c.bench_function("parse/ten statements", |b| {
        let text = ten_statement_policy();
        b.iter(|| Policy::parse(black_box(&text)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
