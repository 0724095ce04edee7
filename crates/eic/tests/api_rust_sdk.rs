//! The AWS SDK for Rust against the real server.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

mod common;

use aws_sdk_ec2instanceconnect as eic;
use common::{sdk_client as client, Server, ADMIN, BOB, ED25519_KEY, SEED_KEY};
use eic::error::ProvideErrorMetadata;

#[tokio::test]
async fn rust_sdk_success_and_errors() {
    // A listening socket is all a serial push's reachability probe needs.
    let console = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let console_addr = console.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("127.0.0.1:7000", &console_addr)], "");
    let c = client(&server, ADMIN);

    let out = c
        .send_ssh_public_key()
        .instance_id("i-abcd1234")
        .instance_os_user("ec2-user")
        .availability_zone("us-west-2a")
        .ssh_public_key(SEED_KEY)
        .send()
        .await
        .unwrap();
    assert!(out.success);
    assert_eq!(out.request_id().map(str::len), Some(36));

    // The SDK leaves SerialPort out when unset; the server defaults it to 0.
    let out = c
        .send_serial_console_ssh_public_key()
        .instance_id("i-0123456789abcdef0")
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
        .unwrap();
    assert!(out.success);

    // The SDK does not enforce required members: the server must.
    let err = c
        .send_ssh_public_key()
        .instance_id("i-abcd1234")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_args_exception(), "{err:?}");
    assert!(err.message().unwrap().contains("InstanceOSUser"));

    let err = c
        .send_ssh_public_key()
        .instance_id("i-0aaaaaaaaaaaaaaa1")
        .instance_os_user("ec2-user")
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_ec2_instance_state_invalid_exception(), "{err:?}");

    let err = c
        .send_ssh_public_key()
        .instance_id("i-0123456789abcdef0")
        .instance_os_user("ec2-user")
        .availability_zone("us-west-2a")
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_ec2_instance_not_found_exception(), "{err:?}");

    let err = c
        .send_serial_console_ssh_public_key()
        .instance_id("i-0ccccccccccccccc3")
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_ec2_instance_type_invalid_exception(), "{err:?}");

    let err = c
        .send_serial_console_ssh_public_key()
        .instance_id("i-0123456789abcdef0")
        .serial_port(3)
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_args_exception(), "{err:?}");

    let err = client(&server, BOB)
        .send_serial_console_ssh_public_key()
        .instance_id("i-0eeeeeeeeeeeeeee5")
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_serial_console_access_disabled_exception(), "{err:?}");

    // Unmodeled authentication errors arrive as codes on the Unhandled variant.
    let err = client(
        &server,
        (ADMIN.0, "wrongSecret/EXAMPLE00000000000000000000"),
    )
    .send_ssh_public_key()
    .instance_id("i-abcd1234")
    .instance_os_user("ec2-user")
    .ssh_public_key(ED25519_KEY)
    .send()
    .await
    .unwrap_err()
    .into_service_error();
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    let err = client(&server, ("AKIDNOSUCHKEY", ADMIN.1))
        .send_ssh_public_key()
        .instance_id("i-abcd1234")
        .instance_os_user("ec2-user")
        .ssh_public_key(ED25519_KEY)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("UnrecognizedClientException"));
}
