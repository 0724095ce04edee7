//! Whole-policy evaluation: AWS's documented example policies for EC2
//! Instance Connect (verbatim), the "alice" fixture principal, statement
//! elements, boundaries, and IAM's denial messages.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use eic_policy::{denial_message, evaluate, Decision, Policy, PolicyType, RequestContext};

const SEND_SSH: &str = "ec2-instance-connect:SendSSHPublicKey";
const SEND_SERIAL: &str = "ec2-instance-connect:SendSerialConsoleSSHPublicKey";

fn policy(text: &str) -> Policy {
    Policy::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn instance(id: &str) -> String {
    format!("arn:aws:ec2:us-west-2:111122223333:instance/{id}")
}

// "Set up EC2 Instance Connect", task 4: access to specific instances as one OS user.
const DOC_SPECIFIC_INSTANCES: &str = r#"{
       "Version": "2012-10-17",
       "Statement": [
         {
           "Effect": "Allow",
           "Action": "ec2-instance-connect:SendSSHPublicKey",
           "Resource": [
               "arn:aws:ec2:region:account-id:instance/i-1234567890abcdef0",
               "arn:aws:ec2:region:account-id:instance/i-0598c7d356eba48d7"
           ],
           "Condition": {
               "StringEquals": {
                   "ec2:osuser": "ami-username"
               }
           }
         },
         {
           "Effect": "Allow",
           "Action": "ec2:DescribeInstances",
           "Resource": "*"
         }
       ]
   }"#;

// Same page: access to instances carrying a resource tag.
const DOC_RESOURCE_TAG: &str = r#"{ 
      "Version":"2012-10-17",
      "Statement":[ 
         { 
            "Effect":"Allow",
            "Action":"ec2-instance-connect:SendSSHPublicKey",
            "Resource": "arn:aws:ec2:region:account-id:instance/*",
            "Condition":{ 
               "StringEquals":{ 
                  "aws:ResourceTag/tag-key":"tag-value"
               }
            }
         },
         {
           "Effect": "Allow",
           "Action": "ec2:DescribeInstances",
           "Resource": "*"
         }
      ]
   }"#;

// "Configure access to the EC2 Serial Console": tag-based access.
const DOC_SERIAL_TAGS: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowTagBasedSerialConsoleAccess",
            "Effect": "Allow",
            "Action": [
                "ec2-instance-connect:SendSerialConsoleSSHPublicKey",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceTypes",
                "ec2:GetSerialConsoleAccessStatus"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "aws:ResourceTag/SerialConsole": "${aws:PrincipalTag/SerialConsole}"
                }
            }
        }
    ]
}"#;

// Same page: allow every instance's serial console but deny one.
const DOC_SERIAL_DENY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowSerialConsoleAccess",
            "Effect": "Allow",
            "Action": [
                "ec2-instance-connect:SendSerialConsoleSSHPublicKey",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceTypes",
                "ec2:GetSerialConsoleAccessStatus"
            ],
            "Resource": "*"
        },
        {
            "Sid": "DenySerialConsoleAccess",
            "Effect": "Deny",
            "Action": [
                "ec2-instance-connect:SendSerialConsoleSSHPublicKey"
            ],
            "Resource": "arn:aws:ec2:region:account-id:instance/i-0598c7d356eba48d7"
        }
    ]
}"#;

// The guard described for EIC (api-spec §5, after the myoung blog): deny
// pushing a key for any OS user other than the principal's userName tag.
const DENY_OTHER_OS_USERS: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyOtherOsUsers",
            "Effect": "Deny",
            "Action": "ec2-instance-connect:SendSSHPublicKey",
            "Resource": "*",
            "Condition": {
                "StringNotEquals": {
                    "ec2:osuser": "${aws:PrincipalTag/userName}"
                }
            }
        }
    ]
}"#;

const ALLOW_ALL_SSH: &str = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
    "Action": "ec2-instance-connect:*", "Resource": "*"}}"#;

#[test]
fn doc_example_specific_instances_and_os_user() {
    let p = [policy(DOC_SPECIFIC_INSTANCES)];
    let listed = "arn:aws:ec2:region:account-id:instance/i-1234567890abcdef0";
    let ok = RequestContext::new(SEND_SSH, listed).with("ec2:osuser", "ami-username");
    assert_eq!(evaluate(&p, None, &ok), Decision::Allow);
    let wrong_user = RequestContext::new(SEND_SSH, listed).with("ec2:osuser", "root");
    assert_eq!(
        evaluate(&p, None, &wrong_user),
        Decision::ImplicitDeny(PolicyType::Identity)
    );
    let other = RequestContext::new(SEND_SSH, "arn:aws:ec2:region:account-id:instance/i-0ffff")
        .with("ec2:osuser", "ami-username");
    assert!(!evaluate(&p, None, &other).is_allowed());
    let describe = RequestContext::new("ec2:DescribeInstances", "*");
    assert!(evaluate(&p, None, &describe).is_allowed());
}

#[test]
fn doc_example_resource_tag() {
    let p = [policy(DOC_RESOURCE_TAG)];
    let arn = "arn:aws:ec2:region:account-id:instance/i-1234567890abcdef0";
    let mut tagged = RequestContext::new(SEND_SSH, arn);
    tagged.set_resource_tag("tag-key", "tag-value");
    assert!(evaluate(&p, None, &tagged).is_allowed());
    let mut mistagged = RequestContext::new(SEND_SSH, arn);
    mistagged.set_resource_tag("tag-key", "other");
    assert!(!evaluate(&p, None, &mistagged).is_allowed());
    assert!(!evaluate(&p, None, &RequestContext::new(SEND_SSH, arn)).is_allowed());
    // The ARN's region and account are literal in the example.
    let mut elsewhere = RequestContext::new(SEND_SSH, instance("i-1"));
    elsewhere.set_resource_tag("tag-key", "tag-value");
    assert!(!evaluate(&p, None, &elsewhere).is_allowed());
}

#[test]
fn doc_example_serial_console_tags() {
    let p = [policy(DOC_SERIAL_TAGS)];
    let request = |principal: Option<&str>, resource: Option<&str>| {
        let mut ctx = RequestContext::new(SEND_SERIAL, instance("i-0598c7d356eba48d7"));
        if let Some(v) = principal {
            ctx.set("aws:PrincipalTag/SerialConsole", v);
        }
        if let Some(v) = resource {
            ctx.set_resource_tag("SerialConsole", v);
        }
        evaluate(&p, None, &ctx)
    };
    assert!(request(Some("team-a"), Some("team-a")).is_allowed());
    assert!(!request(Some("team-a"), Some("team-b")).is_allowed());
    assert!(!request(None, Some("team-a")).is_allowed());
    assert!(!request(Some("team-a"), None).is_allowed());
    // The policy grants nothing for plain SSH keys.
    let mut ssh = RequestContext::new(SEND_SSH, instance("i-0598c7d356eba48d7"));
    ssh.set("aws:PrincipalTag/SerialConsole", "x");
    ssh.set_resource_tag("SerialConsole", "x");
    assert!(!evaluate(&p, None, &ssh).is_allowed());
}

#[test]
fn doc_example_serial_console_explicit_deny() {
    let p = [policy(DOC_SERIAL_DENY)];
    let denied = RequestContext::new(
        SEND_SERIAL,
        "arn:aws:ec2:region:account-id:instance/i-0598c7d356eba48d7",
    );
    assert_eq!(
        evaluate(&p, None, &denied),
        Decision::ExplicitDeny(PolicyType::Identity)
    );
    let other = RequestContext::new(SEND_SERIAL, "arn:aws:ec2:region:account-id:instance/i-1");
    assert_eq!(evaluate(&p, None, &other), Decision::Allow);
    // The Deny names only the serial console action.
    let describe = RequestContext::new(
        "ec2:DescribeInstances",
        "arn:aws:ec2:region:account-id:instance/i-0598c7d356eba48d7",
    );
    assert_eq!(evaluate(&p, None, &describe), Decision::Allow);
}

#[test]
fn deny_os_user_other_than_principal_tag() {
    let p = [policy(ALLOW_ALL_SSH), policy(DENY_OTHER_OS_USERS)];
    let request = |os_user: &str, tag: Option<&str>| {
        let mut ctx = RequestContext::new(SEND_SSH, instance("i-1")).with("ec2:osuser", os_user);
        if let Some(t) = tag {
            ctx.set("aws:PrincipalTag/userName", t);
        }
        evaluate(&p, None, &ctx)
    };
    assert_eq!(request("alice", Some("alice")), Decision::Allow);
    assert_eq!(
        request("root", Some("alice")),
        Decision::ExplicitDeny(PolicyType::Identity)
    );
    // Without the tag the variable cannot match, so StringNotEquals holds and
    // the guard still denies.
    assert_eq!(
        request("alice", None),
        Decision::ExplicitDeny(PolicyType::Identity)
    );
}

/// The fixture principal: SendSSHPublicKey only as `ec2-user`, only on
/// instances tagged `Team=dev`.
const ALICE: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AliceSshAsEc2UserOnDev",
            "Effect": "Allow",
            "Action": "ec2-instance-connect:SendSSHPublicKey",
            "Resource": "arn:aws:ec2:*:111122223333:instance/*",
            "Condition": {
                "StringEquals": {
                    "ec2:osuser": "ec2-user",
                    "aws:ResourceTag/Team": "dev"
                }
            }
        }
    ]
}"#;

const ALICE_ARN: &str = "arn:aws:iam::111122223333:user/alice";

fn alice_request(action: &str, os_user: &str, team: &str) -> RequestContext {
    let mut ctx = RequestContext::new(action, instance("i-0abc"))
        .with("ec2:osuser", os_user)
        .with("aws:username", "alice")
        .with("aws:PrincipalArn", ALICE_ARN)
        .with("aws:PrincipalAccount", "111122223333");
    ctx.set_resource_tag("Team", team);
    ctx
}

#[test]
fn alice_fixture() {
    let p = [policy(ALICE)];
    assert_eq!(
        evaluate(&p, None, &alice_request(SEND_SSH, "ec2-user", "dev")),
        Decision::Allow
    );
    let as_root = alice_request(SEND_SSH, "root", "dev");
    let decision = evaluate(&p, None, &as_root);
    assert_eq!(decision, Decision::ImplicitDeny(PolicyType::Identity));
    assert_eq!(
        denial_message(ALICE_ARN, as_root.action(), as_root.resource(), decision).as_deref(),
        Some(
            "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: \
             ec2-instance-connect:SendSSHPublicKey on resource: \
             arn:aws:ec2:us-west-2:111122223333:instance/i-0abc because no identity-based \
             policy allows the ec2-instance-connect:SendSSHPublicKey action"
        )
    );
    assert!(!evaluate(&p, None, &alice_request(SEND_SSH, "ec2-user", "ops")).is_allowed());
    assert!(!evaluate(&p, None, &alice_request(SEND_SERIAL, "ec2-user", "dev")).is_allowed());
    // Another account's instance is outside the Resource pattern.
    let mut foreign = RequestContext::new(
        SEND_SSH,
        "arn:aws:ec2:us-west-2:444455556666:instance/i-0abc",
    )
    .with("ec2:osuser", "ec2-user");
    foreign.set_resource_tag("Team", "dev");
    assert!(!evaluate(&p, None, &foreign).is_allowed());
}

#[test]
fn action_matching_is_case_insensitive_with_wildcards() {
    let p = [policy(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
            "Action": ["EC2-Instance-Connect:send*publickey", "ec2:Describe?nstances"], "Resource": "*"}}"#,
    )];
    for action in [
        SEND_SSH,
        SEND_SERIAL,
        "EC2-INSTANCE-CONNECT:SENDSSHPUBLICKEY",
        "ec2:DescribeInstances",
    ] {
        assert!(
            evaluate(&p, None, &RequestContext::new(action, instance("i-1"))).is_allowed(),
            "{action}"
        );
    }
    for action in [
        "ec2-instance-connect:OpenTunnel",
        "ec2:DescribeInstanceTypes",
        "ec2",
    ] {
        assert!(
            !evaluate(&p, None, &RequestContext::new(action, instance("i-1"))).is_allowed(),
            "{action}"
        );
    }
    let star = [policy(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#,
    )];
    assert!(evaluate(&star, None, &RequestContext::new("anything:AtAll", "x")).is_allowed());
}

#[test]
fn not_action_and_not_resource() {
    let p = [policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "NotAction": "ec2-instance-connect:SendSerial*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2-instance-connect:*",
             "NotResource": ["arn:aws:ec2:us-west-2:111122223333:instance/*"]}
        ]}"#,
    )];
    assert!(evaluate(&p, None, &RequestContext::new(SEND_SSH, instance("i-1"))).is_allowed());
    assert_eq!(
        evaluate(&p, None, &RequestContext::new(SEND_SERIAL, instance("i-1"))),
        Decision::ImplicitDeny(PolicyType::Identity)
    );
    assert_eq!(
        evaluate(
            &p,
            None,
            &RequestContext::new(SEND_SSH, "arn:aws:ec2:eu-west-1:111122223333:instance/i-1")
        ),
        Decision::ExplicitDeny(PolicyType::Identity)
    );
    // NotAction allows unrelated services too, as IAM does.
    assert!(evaluate(&p, None, &RequestContext::new("s3:GetObject", "*")).is_allowed());
}

#[test]
fn explicit_deny_beats_allow_across_policies_and_order() {
    let allow = policy(ALLOW_ALL_SSH);
    let deny = policy(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Deny",
            "Action": "ec2-instance-connect:SendSSHPublicKey", "Resource": "*",
            "Condition": {"StringEquals": {"ec2:osuser": "root"}}}}"#,
    );
    let root = RequestContext::new(SEND_SSH, instance("i-1")).with("ec2:osuser", "root");
    let user = RequestContext::new(SEND_SSH, instance("i-1")).with("ec2:osuser", "ec2-user");
    for policies in [[allow.clone(), deny.clone()], [deny.clone(), allow.clone()]] {
        assert_eq!(
            evaluate(&policies, None, &root),
            Decision::ExplicitDeny(PolicyType::Identity)
        );
        assert_eq!(evaluate(&policies, None, &user), Decision::Allow);
    }
    assert_eq!(
        evaluate(&[], None, &user),
        Decision::ImplicitDeny(PolicyType::Identity)
    );
}

#[test]
fn permissions_boundaries() {
    let identity = [policy(ALLOW_ALL_SSH)];
    let boundary = [policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2-instance-connect:SendSSHPublicKey", "Resource": "*"},
            {"Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
        ]}"#,
    )];
    let ssh = |ip: &str| RequestContext::new(SEND_SSH, instance("i-1")).with("aws:SourceIp", ip);
    assert_eq!(
        evaluate(&identity, Some(&boundary), &ssh("10.1.1.1")),
        Decision::Allow
    );
    // The boundary does not allow serial console keys, though identity does.
    let serial = RequestContext::new(SEND_SERIAL, instance("i-1")).with("aws:SourceIp", "10.1.1.1");
    let decision = evaluate(&identity, Some(&boundary), &serial);
    assert_eq!(
        decision,
        Decision::ImplicitDeny(PolicyType::PermissionsBoundary)
    );
    assert_eq!(
        denial_message(ALICE_ARN, SEND_SERIAL, &instance("i-1"), decision).as_deref(),
        Some(
            "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: \
             ec2-instance-connect:SendSerialConsoleSSHPublicKey on resource: \
             arn:aws:ec2:us-west-2:111122223333:instance/i-1 because no permissions boundary \
             allows the ec2-instance-connect:SendSerialConsoleSSHPublicKey action"
        )
    );
    // A deny in the boundary is an explicit deny.
    let decision = evaluate(&identity, Some(&boundary), &ssh("192.0.2.1"));
    assert_eq!(
        decision,
        Decision::ExplicitDeny(PolicyType::PermissionsBoundary)
    );
    assert!(denial_message(ALICE_ARN, SEND_SSH, "r", decision)
        .unwrap()
        .ends_with("with an explicit deny in a permissions boundary"));
    // A boundary grants nothing by itself.
    assert_eq!(
        evaluate(&[], Some(&boundary), &ssh("10.1.1.1")),
        Decision::ImplicitDeny(PolicyType::Identity)
    );
    // An empty boundary set allows nothing.
    assert_eq!(
        evaluate(&identity, Some(&[]), &ssh("10.1.1.1")),
        Decision::ImplicitDeny(PolicyType::PermissionsBoundary)
    );
    // An identity deny is reported before a boundary deny.
    let deny_all = [policy(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "*", "Resource": "*"}}"#,
    )];
    assert_eq!(
        evaluate(&deny_all, Some(&boundary), &ssh("192.0.2.1")),
        Decision::ExplicitDeny(PolicyType::Identity)
    );
}

#[test]
fn denial_messages() {
    let arn = "arn:aws:sts::111122223333:assumed-role/dev/alice";
    let res = instance("i-1");
    assert_eq!(denial_message(arn, SEND_SSH, &res, Decision::Allow), None);
    assert_eq!(
        denial_message(
            arn,
            SEND_SSH,
            &res,
            Decision::ExplicitDeny(PolicyType::Identity)
        )
        .as_deref(),
        Some(
            "User: arn:aws:sts::111122223333:assumed-role/dev/alice is not authorized to perform: \
             ec2-instance-connect:SendSSHPublicKey on resource: \
             arn:aws:ec2:us-west-2:111122223333:instance/i-1 with an explicit deny in an \
             identity-based policy"
        )
    );
}

#[test]
fn resource_patterns_and_variables() {
    let p = [policy(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ec2-instance-connect:*",
            "Resource": ["arn:aws:ec2:us-*-2:*:instance/i-${aws:PrincipalTag/Instance}",
                         "arn:aws:ec2:eu-west-1:111122223333:instance/i-??"]}}"#,
    )];
    let with_tag =
        |arn: &str| RequestContext::new(SEND_SSH, arn).with("aws:PrincipalTag/Instance", "0abc");
    assert!(evaluate(&p, None, &with_tag(&instance("i-0abc"))).is_allowed());
    assert!(!evaluate(&p, None, &with_tag(&instance("i-0abd"))).is_allowed());
    assert!(!evaluate(&p, None, &RequestContext::new(SEND_SSH, instance("i-0abc"))).is_allowed());
    // ARNs are case-sensitive.
    assert!(!evaluate(&p, None, &with_tag(&instance("i-0ABC"))).is_allowed());
    // `us-*-2` stays inside the region segment.
    assert!(!evaluate(
        &p,
        None,
        &with_tag("arn:aws:ec2:us-west-1:2:instance/i-0abc")
    )
    .is_allowed());
    let eu = |id: &str| {
        RequestContext::new(
            SEND_SSH,
            format!("arn:aws:ec2:eu-west-1:111122223333:instance/{id}"),
        )
    };
    assert!(evaluate(&p, None, &eu("i-12")).is_allowed());
    assert!(!evaluate(&p, None, &eu("i-123")).is_allowed());
}

#[test]
fn username_variable_in_resource() {
    let p = [policy(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ec2-instance-connect:*",
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}}}}"#,
    )];
    let mut own = RequestContext::new(SEND_SSH, instance("i-1")).with("aws:username", "alice");
    own.set_resource_tag("Owner", "alice");
    assert!(evaluate(&p, None, &own).is_allowed());
    own.set("aws:username", "bob");
    assert!(!evaluate(&p, None, &own).is_allowed());
}

#[test]
fn version_2008_treats_variables_as_text() {
    let text = r#"{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Action": "ec2-instance-connect:*",
        "Resource": "*", "Condition": {"StringEquals": {"ec2:osuser": "${aws:username}"}}}}"#;
    let p = [policy(text)];
    let ctx = |user: &str| {
        RequestContext::new(SEND_SSH, instance("i-1"))
            .with("aws:username", "alice")
            .with("ec2:osuser", user)
    };
    assert!(evaluate(&p, None, &ctx("${aws:username}")).is_allowed());
    assert!(!evaluate(&p, None, &ctx("alice")).is_allowed());
    // Without a Version element IAM uses the 2008 language too.
    let unversioned = [policy(&text.replace(r#""Version": "2008-10-17", "#, ""))];
    assert_eq!(unversioned[0].version(), eic_policy::Version::V20081017);
    assert!(!evaluate(&unversioned, None, &ctx("alice")).is_allowed());
}
