//! The XML of DescribeInstances answers, byte for byte.
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eic_ec2::{iso8601_millis, render_describe_instances, InstanceState, InstanceView, Page};

/// 2026-11-28T12:00:00.250Z
fn launch() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_795_867_200_250)
}

fn full() -> InstanceView {
    let mut v = InstanceView::new(
        "i-0123456789abcdef0",
        "111122223333",
        InstanceState::Running,
        "t3.micro",
        "us-west-2a",
        launch(),
    );
    v.image_id = Some("ami-0abcdef1234567890".into());
    v.private_ip = Some("127.0.0.1".parse().unwrap());
    v.public_ip = Some("127.0.10.5".parse().unwrap());
    v.ipv6 = Some("::1".parse().unwrap());
    v.private_dns_name = Some("ip-127-0-0-1.us-west-2.compute.internal".into());
    v.public_dns_name = Some("localhost".into());
    v.vpc_id = Some("vpc-0a1b2c3d4e5f67890".into());
    v.subnet_id = Some("subnet-0a1b2c3d4e5f67890".into());
    v.tags.insert("Name".into(), "web1".into());
    v.tags.insert("team".into(), "a&b <c>".into());
    v
}

#[test]
fn launch_time_is_iso8601_with_millis() {
    assert_eq!(iso8601_millis(launch()), "2026-11-28T12:00:00.250Z");
    assert_eq!(iso8601_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        iso8601_millis(UNIX_EPOCH + Duration::from_nanos(1_999_999)),
        "1970-01-01T00:00:00.001Z",
        "truncated, not rounded"
    );
    assert_eq!(
        iso8601_millis(UNIX_EPOCH - Duration::from_secs(1)),
        "1970-01-01T00:00:00.000Z"
    );
    assert_eq!(
        iso8601_millis(UNIX_EPOCH + Duration::from_secs(400_000_000_000)),
        "9999-12-31T23:59:59.999Z"
    );
}

#[test]
fn a_full_instance() {
    let v = full();
    let page = Page {
        instances: vec![&v],
        next_token: Some("01ab".into()),
    };
    assert_eq!(
        render_describe_instances("8f7e6d5c-0000-4000-8000-000000000001", &page),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>8f7e6d5c-0000-4000-8000-000000000001</requestId>\
         <reservationSet><item>\
         <reservationId>r-0123456789abcdef0</reservationId>\
         <ownerId>111122223333</ownerId>\
         <groupSet/>\
         <instancesSet><item>\
         <instanceId>i-0123456789abcdef0</instanceId>\
         <imageId>ami-0abcdef1234567890</imageId>\
         <instanceState><code>16</code><name>running</name></instanceState>\
         <privateDnsName>ip-127-0-0-1.us-west-2.compute.internal</privateDnsName>\
         <dnsName>localhost</dnsName>\
         <instanceType>t3.micro</instanceType>\
         <launchTime>2026-11-28T12:00:00.250Z</launchTime>\
         <placement><availabilityZone>us-west-2a</availabilityZone><tenancy>default</tenancy></placement>\
         <subnetId>subnet-0a1b2c3d4e5f67890</subnetId>\
         <vpcId>vpc-0a1b2c3d4e5f67890</vpcId>\
         <privateIpAddress>127.0.0.1</privateIpAddress>\
         <ipAddress>127.0.10.5</ipAddress>\
         <ipv6Address>::1</ipv6Address>\
         <tagSet>\
         <item><key>Name</key><value>web1</value></item>\
         <item><key>team</key><value>a&amp;b &lt;c&gt;</value></item>\
         </tagSet>\
         </item></instancesSet>\
         </item></reservationSet>\
         <nextToken>01ab</nextToken>\
         </DescribeInstancesResponse>"
    );
}

#[test]
fn absent_values_are_left_out() {
    let v = InstanceView::new(
        "i-abcd1234",
        "111122223333",
        InstanceState::Stopped,
        "m5.large",
        "us-west-2b",
        launch(),
    );
    let page = Page {
        instances: vec![&v],
        next_token: None,
    };
    let xml = render_describe_instances("req", &page);
    for absent in [
        "imageId",
        "privateDnsName",
        "dnsName",
        "subnetId",
        "vpcId",
        "privateIpAddress",
        "ipAddress",
        "ipv6Address",
        "tagSet",
        "nextToken",
    ] {
        assert!(!xml.contains(&format!("<{absent}")), "{absent} in {xml}");
    }
    assert!(xml.contains("<instanceState><code>80</code><name>stopped</name></instanceState>"));
    assert!(xml.contains("<placement><availabilityZone>us-west-2b</availabilityZone>"));
}

#[test]
fn one_reservation_per_instance() {
    let a = full();
    let mut b = full();
    b.instance_id = "i-0123456789abcdef1".into();
    let page = Page {
        instances: vec![&a, &b],
        next_token: None,
    };
    let xml = render_describe_instances("req", &page);
    assert_eq!(xml.matches("<reservationId>").count(), 2);
    assert!(xml.contains("<reservationId>r-0123456789abcdef1</reservationId>"));
}

#[test]
fn nothing_found_is_an_empty_set() {
    let page = Page {
        instances: vec![],
        next_token: None,
    };
    assert_eq!(
        render_describe_instances("r<1>", &page),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>r&lt;1&gt;</requestId><reservationSet/></DescribeInstancesResponse>"
    );
}

#[test]
fn every_text_is_escaped() {
    let mut v = full();
    v.owner_id = "<o>".into();
    v.instance_type = "&t".into();
    v.availability_zone = "\"z\"".into();
    v.image_id = Some("'i'".into());
    v.tags.clear();
    v.tags.insert("<k>".into(), "v\r\u{1}".into());
    let page = Page {
        instances: vec![&v],
        next_token: Some("<t>".into()),
    };
    let xml = render_describe_instances("req", &page);
    for raw in ["<o>", "&t<", "\"z\"", "'i'", "<k>", "<t>", "\r", "\u{1}"] {
        assert!(!xml.contains(raw), "{raw:?} unescaped in {xml}");
    }
    assert!(xml.contains("<key>&lt;k&gt;</key><value>v&#13;\u{FFFD}</value>"));
}
