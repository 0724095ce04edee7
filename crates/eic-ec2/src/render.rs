//! The DescribeInstances response body.
//!
//! Element names are the `locationName`s of `ec2/2016-11-15/service-2.json`,
//! which botocore and the AWS SDK for Rust both parse by; every list member
//! is `<item>`. Absent optional values are left out, not sent empty, except
//! `groupSet`, which EC2 always sends and eic sends empty (no security
//! groups).

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::describe::Page;
use crate::instance::InstanceView;
use crate::xml::{Xml, PROLOG};

/// The response's `Content-Type`, as EC2 sends it.
pub const CONTENT_TYPE: &str = "text/xml;charset=UTF-8";
/// The namespace of API version 2016-11-15.
pub const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// The 200 body for `page`.
pub fn render_describe_instances(request_id: &str, page: &Page<'_>) -> String {
    let mut x = Xml::with_capacity(256 + 1024 * page.instances.len());
    x.raw(PROLOG);
    x.raw("<DescribeInstancesResponse xmlns=\"");
    x.raw(XMLNS);
    x.raw("\">");
    x.text_element("requestId", request_id);
    if page.instances.is_empty() {
        x.raw("<reservationSet/>");
    } else {
        x.open("reservationSet");
        for v in &page.instances {
            reservation(&mut x, v);
        }
        x.close("reservationSet");
    }
    if let Some(token) = &page.next_token {
        x.text_element("nextToken", token);
    }
    x.raw("</DescribeInstancesResponse>");
    x.finish()
}

fn reservation(x: &mut Xml, v: &InstanceView) {
    x.open("item");
    x.text_element("reservationId", &v.reservation_id());
    x.text_element("ownerId", &v.owner_id);
    x.raw("<groupSet/>");
    x.open("instancesSet");
    instance(x, v);
    x.close("instancesSet");
    x.close("item");
}

fn instance(x: &mut Xml, v: &InstanceView) {
    let opt = |x: &mut Xml, name: &str, value: Option<&str>| {
        if let Some(value) = value {
            x.text_element(name, value);
        }
    };
    x.open("item");
    x.text_element("instanceId", &v.instance_id);
    opt(x, "imageId", v.image_id.as_deref());
    x.open("instanceState");
    x.text_element("code", &v.state.code().to_string());
    x.text_element("name", v.state.name());
    x.close("instanceState");
    opt(x, "privateDnsName", v.private_dns_name.as_deref());
    opt(x, "dnsName", v.public_dns_name.as_deref());
    x.text_element("instanceType", &v.instance_type);
    x.text_element("launchTime", &iso8601_millis(v.launch_time));
    x.open("placement");
    x.text_element("availabilityZone", &v.availability_zone);
    x.text_element("tenancy", "default");
    x.close("placement");
    opt(x, "subnetId", v.subnet_id.as_deref());
    opt(x, "vpcId", v.vpc_id.as_deref());
    opt(
        x,
        "privateIpAddress",
        v.private_ip.map(|a| a.to_string()).as_deref(),
    );
    opt(
        x,
        "ipAddress",
        v.public_ip.map(|a| a.to_string()).as_deref(),
    );
    opt(x, "ipv6Address", v.ipv6.map(|a| a.to_string()).as_deref());
    if !v.tags.is_empty() {
        x.open("tagSet");
        for (key, value) in &v.tags {
            x.open("item");
            x.text_element("key", key);
            x.text_element("value", value);
            x.close("item");
        }
        x.close("tagSet");
    }
    x.close("item");
}

/// `2026-11-28T12:00:00.000Z`: UTC with milliseconds, as EC2 writes
/// `launchTime`. Times before 1970 or after 9999 are clamped to those
/// bounds (the format has four year digits; no launch is that far off).
pub fn iso8601_millis(t: SystemTime) -> String {
    const MAX_MILLIS: u128 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
        .min(MAX_MILLIS);
    // Both in range by the clamp above, so neither conversion fails.
    let secs = (millis / 1000) as i64;
    let ms = (millis % 1000) as u16;
    let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        ms
    )
}
