//! DescribeInstanceHostKeys, an eic extension to EC2's Query API: the SSH
//! port and host public keys of instances, so a client (`eic ssh`) can
//! write a known_hosts that verifies the host without a prompt. EC2 has no
//! such action and botocore no model for it; its answer is XML in
//! DescribeInstances' namespace and style:
//!
//! ```text
//! <DescribeInstanceHostKeysResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
//!   <requestId>…</requestId>
//!   <instanceSet><item>
//!     <instanceId>i-…</instanceId><sshPort>22</sshPort>
//!     <hostKeySet><item>ssh-ed25519 AAAA…</item></hostKeySet>
//!   </item></instanceSet>
//!   <serialConsole><port>2222</port><hostKeySet><item>…</item></hostKeySet></serialConsole>
//! </DescribeInstanceHostKeysResponse>
//! ```
//!
//! `hostKeySet` is always present (empty when there are no keys), so a
//! client tells "no keys" from a server that does not know the field;
//! `serialConsole` only when the serial console gateway runs.

use crate::error::Ec2Error;
use crate::query::DescribeInstanceHostKeysRequest;
use crate::render::XMLNS;
use crate::xml::{Xml, PROLOG};

/// What a client needs to reach one instance's sshd and verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHostKeys {
    pub instance_id: String,
    pub ssh_port: u16,
    /// `TYPE BASE64` lines, without comments; empty when the instance
    /// registered none.
    pub host_keys: Vec<String>,
}

/// The serial console gateway's listener port and its own host keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialConsoleHostKeys {
    pub port: u16,
    /// `TYPE BASE64` lines.
    pub host_keys: Vec<String>,
}

/// The instances `request` names, in its order. `lookup` must see only the
/// caller's instances (as for [`crate::describe`]): every id must be found,
/// else `InvalidInstanceID.NotFound` names the missing ones, in request
/// order, exactly as DescribeInstances does.
pub fn describe_host_keys<'a, L>(
    request: &DescribeInstanceHostKeysRequest,
    mut lookup: L,
) -> Result<Vec<&'a InstanceHostKeys>, Ec2Error>
where
    L: FnMut(&str) -> Option<&'a InstanceHostKeys>,
{
    let mut found = Vec::with_capacity(request.instance_ids.len());
    let mut missing = Vec::new();
    for id in &request.instance_ids {
        match lookup(id) {
            Some(keys) => found.push(keys),
            None => missing.push(id.as_str()),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(Ec2Error::instance_not_found(&missing))
    }
}

/// The 200 body: `instances` in the order given, then `serialConsole` when
/// `serial_console` is given.
pub fn render_describe_instance_host_keys(
    request_id: &str,
    instances: &[&InstanceHostKeys],
    serial_console: Option<&SerialConsoleHostKeys>,
) -> String {
    let mut x = Xml::with_capacity(256 + 512 * instances.len());
    x.raw(PROLOG);
    x.raw("<DescribeInstanceHostKeysResponse xmlns=\"");
    x.raw(XMLNS);
    x.raw("\">");
    x.text_element("requestId", request_id);
    if instances.is_empty() {
        x.raw("<instanceSet/>");
    } else {
        x.open("instanceSet");
        for i in instances {
            x.open("item");
            x.text_element("instanceId", &i.instance_id);
            x.text_element("sshPort", &i.ssh_port.to_string());
            x.item_set("hostKeySet", &i.host_keys);
            x.close("item");
        }
        x.close("instanceSet");
    }
    if let Some(serial) = serial_console {
        x.open("serialConsole");
        x.text_element("port", &serial.port.to_string());
        x.item_set("hostKeySet", &serial.host_keys);
        x.close("serialConsole");
    }
    x.raw("</DescribeInstanceHostKeysResponse>");
    x.finish()
}
