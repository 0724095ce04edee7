//! boto3, botocore and the AWS CLI against the real server.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use common::{run_python, Server};

/// What the Python suite needs beyond the ACCEPTANCE.md fixtures.
const EXTRA: &str = r#"
[[instances]]
id = "i-0fffffffffffffff6"
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "m5.large"
availability = "unavailable"

[[principals]]
arn = "arn:aws:iam::111122223333:user/retired"
access_keys = [{ id = "AKIDINACTIVEEXAMPLE", secret = "inactiveSecret/EXAMPLE000000000000000", status = "inactive" }]
"#;

#[test]
fn boto3_botocore_and_aws_cli() {
    // A listening socket is all a push's reachability probe needs.
    let console = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let console_addr = console.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("127.0.0.1:7000", &console_addr)], EXTRA);
    run_python("api_boto3.py", &server);
}
