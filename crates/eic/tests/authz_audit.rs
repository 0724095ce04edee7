//! Throttling, audit and temporary credentials through boto3 and the `eic`
//! commands, against a server with small throttling buckets.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use common::{run_python, Server};

const EXTRA: &str = r#"
[throttling]
principal = { rate = 2.0, burst = 5.0 }
instance = { rate = 0.5, burst = 8.0 }

[[principals]]
arn = "arn:aws:iam::111122223333:user/carol"
access_keys = [{ id = "AKIDCAROLEXAMPLE", secret = "carolSecretKey/EXAMPLE000000000000000000" }]
policies = ['{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2-instance-connect:*", "Resource": "*"}]}']

# Holds temporary credentials only, with alice's policy and its own bucket.
[[principals]]
arn = "arn:aws:iam::111122223333:user/dave"
policies = ['''{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Action": "ec2-instance-connect:SendSSHPublicKey", "Resource": "arn:aws:ec2:*:111122223333:instance/*",
  "Condition": {"StringEquals": {"ec2:osuser": "ec2-user", "aws:ResourceTag/Team": "dev"}}}]}''']
"#;

#[test]
fn throttling_audit_and_temporary_credentials() {
    let server = Server::start(EXTRA);
    run_python("authz_audit_boto3.py", &server);
}
