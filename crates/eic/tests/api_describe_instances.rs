//! EC2 DescribeInstances on the API listener, through boto3's `ec2` client
//! (tests/clients/describe_instances_boto3.py).
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use common::{run_python, Server};

/// A principal of account 111122223333 that may push but not describe.
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

#[test]
fn describe_instances_with_boto3() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), EXTRA);
    run_python("describe_instances_boto3.py", &server);
}

/// The principal's bucket (shared with pushes) refuses with EC2's
/// RequestLimitExceeded.
#[test]
fn describe_instances_throttled() {
    let server = Server::start(
        r#"
[throttling]
principal = { rate = 0.001, burst = 3.0 }
"#,
    );
    run_python("describe_throttled_boto3.py", &server);
}
