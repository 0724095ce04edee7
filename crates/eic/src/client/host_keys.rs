//! DescribeInstanceHostKeys, eic's one extension to EC2's Query API: the
//! sshd host keys and port each instance registered, and the serial console
//! gateway's own key and port.
//!
//! The AWS SDK cannot call an action EC2 does not have, so this request is
//! built here: the same form body and SigV4 (service `ec2`) the SDK sends,
//! signed by `aws-sigv4` with the credentials the SDK resolved, to the
//! endpoint the SDK's EC2 client uses. The answer is XML in EC2's shape.
//! An endpoint that does not know the action (AWS itself) answers
//! `InvalidAction`, and callers fall back to the user's known_hosts.

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;

pub use eic_ec2::{InstanceHostKeys, SerialConsoleHostKeys};

use super::Aws;
use crate::agent::http::{Client, Trust};

/// One call; the server answers from memory.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The answer: the shapes the server renders them from (`eic_ec2`), read
/// back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeys {
    pub instances: Vec<InstanceHostKeys>,
    pub serial_console: Option<SerialConsoleHostKeys>,
}

impl HostKeys {
    pub fn instance(&self, id: &str) -> Option<&InstanceHostKeys> {
        self.instances.iter().find(|i| i.instance_id == id)
    }
}

/// An EC2 XML error: `<Response><Errors><Error><Code>…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: String,
    pub message: String,
}

/// The form body for `instance_ids` (each already a well-formed id, so
/// nothing needs percent-encoding).
pub fn form(instance_ids: &[&str]) -> anyhow::Result<String> {
    let mut body = String::from("Action=DescribeInstanceHostKeys&Version=2016-11-15");
    for (n, id) in instance_ids.iter().enumerate() {
        anyhow::ensure!(
            eic_ec2::is_well_formed_instance_id(id),
            "{id:?} is not an instance id"
        );
        body.push_str(&format!("&InstanceId.{}={id}", n + 1));
    }
    Ok(body)
}

/// Reads an answer: the keys on 200, the fault otherwise.
pub fn parse(status: u16, body: &[u8]) -> anyhow::Result<Result<HostKeys, Fault>> {
    let text = std::str::from_utf8(body).context("the answer is not UTF-8")?;
    let doc = roxmltree::Document::parse(text)
        .with_context(|| format!("the answer ({status}) is not XML"))?;
    let root = doc.root_element();
    if status != 200 {
        let error = root
            .descendants()
            .find(|n| n.has_tag_name("Error"))
            .ok_or_else(|| anyhow!("an error answer ({status}) without an Error"))?;
        return Ok(Err(Fault {
            code: child_text(error, "Code").unwrap_or_default().to_owned(),
            message: child_text(error, "Message").unwrap_or_default().to_owned(),
        }));
    }
    anyhow::ensure!(
        root.tag_name().name() == "DescribeInstanceHostKeysResponse",
        "the answer is not a DescribeInstanceHostKeysResponse"
    );
    let mut instances = Vec::new();
    if let Some(set) = child(root, "instanceSet") {
        for item in set.children().filter(|n| n.has_tag_name("item")) {
            instances.push(InstanceHostKeys {
                instance_id: child_text(item, "instanceId")
                    .ok_or_else(|| anyhow!("an instance without instanceId"))?
                    .to_owned(),
                ssh_port: port(item, "sshPort")?,
                host_keys: key_set(item),
            });
        }
    }
    let serial_console = match child(root, "serialConsole") {
        Some(console) => Some(SerialConsoleHostKeys {
            port: port(console, "port")?,
            host_keys: key_set(console),
        }),
        None => None,
    };
    Ok(Ok(HostKeys {
        instances,
        serial_console,
    }))
}

/// Calls the action for `instance_ids`. `None` when the endpoint does not
/// have it (not eic).
pub async fn describe(aws: &Aws, instance_ids: &[&str]) -> anyhow::Result<Option<HostKeys>> {
    let request = signed_request(aws, form(instance_ids)?)?;
    // The machine's roots are read (a few hundred files) only for https.
    let plain = request.uri().scheme_str() == Some("http");
    let reply = tokio::task::spawn_blocking(move || {
        let client = if plain {
            Client::plain_http(TIMEOUT)
        } else {
            Client::new(Trust::System, false, TIMEOUT)?
        };
        client.send(request)
    })
    .await
    .context("the host key lookup did not finish")?
    .context("looking up the registered host keys")?;
    let response = reply.response;
    match parse(response.status().as_u16(), response.body())? {
        Ok(keys) => Ok(Some(keys)),
        Err(fault) if fault.code == "InvalidAction" => Ok(None),
        Err(fault) => Err(super::explain(
            format!("looking up the host keys of {}", instance_ids.join(", ")),
            &fault.code,
            &fault.message,
        )),
    }
}

fn signed_request(aws: &Aws, body: String) -> anyhow::Result<http::Request<Vec<u8>>> {
    let url = format!("{}/", aws.ec2_endpoint.trim_end_matches('/'));
    let mut request = http::Request::post(&url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body.into_bytes())
        .with_context(|| format!("{url} is not a URL"))?;
    let identity: Identity = aws.credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&aws.region)
        .name("ec2")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .context("cannot sign the host key lookup")?
        .into();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )
    .context("cannot sign the host key lookup")?;
    let (instructions, _signature) = sign(signable, &params)
        .context("cannot sign the host key lookup")?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn child_text<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).and_then(|n| n.text()).map(str::trim)
}

fn port(node: roxmltree::Node<'_, '_>, name: &str) -> anyhow::Result<u16> {
    child_text(node, name)
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| anyhow!("the answer has no valid {name}"))
}

fn key_set(node: roxmltree::Node<'_, '_>) -> Vec<String> {
    child(node, "hostKeySet")
        .map(|set| {
            set.children()
                .filter(|n| n.has_tag_name("item"))
                .filter_map(|n| n.text())
                .map(|k| k.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBc0R9bPT6r4ZK1xxO6Rw8rQmL5EwMv5d9uYu0D8mD4n";

    #[test]
    fn the_form_names_each_instance() {
        assert_eq!(
            form(&["i-0123456789abcdef0", "i-1234567890abcdef1"]).unwrap(),
            "Action=DescribeInstanceHostKeys&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0&InstanceId.2=i-1234567890abcdef1"
        );
        assert!(form(&["i-0123&Action=x"]).is_err());
    }

    #[test]
    fn an_answer_gives_each_instance_and_the_gateway() {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstanceHostKeysResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
<requestId>r</requestId><instanceSet>
<item><instanceId>i-0123456789abcdef0</instanceId><sshPort>2200</sshPort><hostKeySet><item>{ED}</item></hostKeySet></item>
<item><instanceId>i-1234567890abcdef1</instanceId><sshPort>22</sshPort><hostKeySet/></item>
</instanceSet><serialConsole><port>2222</port><hostKeySet><item>{ED}</item></hostKeySet></serialConsole>
</DescribeInstanceHostKeysResponse>"#
        );
        let keys = parse(200, body.as_bytes()).unwrap().unwrap();
        assert_eq!(
            keys.instance("i-0123456789abcdef0"),
            Some(&InstanceHostKeys {
                instance_id: "i-0123456789abcdef0".into(),
                ssh_port: 2200,
                host_keys: vec![ED.into()],
            })
        );
        assert_eq!(
            keys.instance("i-1234567890abcdef1").unwrap().host_keys,
            Vec::<String>::new()
        );
        assert_eq!(
            keys.serial_console,
            Some(SerialConsoleHostKeys {
                port: 2222,
                host_keys: vec![ED.into()],
            })
        );
    }

    #[test]
    fn without_a_gateway_there_is_no_serial_console() {
        let body = r#"<DescribeInstanceHostKeysResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><instanceSet/></DescribeInstanceHostKeysResponse>"#;
        let keys = parse(200, body.as_bytes()).unwrap().unwrap();
        assert!(keys.instances.is_empty());
        assert_eq!(keys.serial_console, None);
    }

    #[test]
    fn an_error_answer_gives_its_code_and_message() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-0123456789abcdef0' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>"#;
        assert_eq!(
            parse(400, body.as_bytes()).unwrap().unwrap_err(),
            Fault {
                code: "InvalidInstanceID.NotFound".into(),
                message: "The instance ID 'i-0123456789abcdef0' does not exist".into(),
            }
        );
    }

    #[test]
    fn malformed_answers_are_errors_not_keys() {
        for (status, body) in [
            (200, "not xml"),
            (200, "<DescribeInstancesResponse/>"),
            (
                200,
                "<DescribeInstanceHostKeysResponse><instanceSet><item><instanceId>i-0123456789abcdef0</instanceId><sshPort>0</sshPort></item></instanceSet></DescribeInstanceHostKeysResponse>",
            ),
            (500, "<html/>"),
        ] {
            assert!(parse(status, body.as_bytes()).is_err(), "{body}");
        }
    }

    fn key() -> impl Strategy<Value = String> {
        (
            "(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa)",
            "[A-Za-z0-9+/]{16,64}={0,2}",
        )
            .prop_map(|(kind, data)| format!("{kind} {data}"))
    }

    proptest! {
        /// What the server renders, the client reads back exactly.
        #[test]
        fn the_servers_answer_reads_back(
            instances in proptest::collection::vec(
                ("[0-9a-f]{17}", 1u16.., proptest::collection::vec(key(), 0..4)),
                0..6,
            ),
            console in proptest::option::of((1u16.., proptest::collection::vec(key(), 1..3))),
        ) {
            let instances: Vec<InstanceHostKeys> = instances
                .into_iter()
                .map(|(hex, ssh_port, host_keys)| InstanceHostKeys {
                    instance_id: format!("i-{hex}"),
                    ssh_port,
                    host_keys,
                })
                .collect();
            let console = console.map(|(port, host_keys)| SerialConsoleHostKeys { port, host_keys });
            let refs: Vec<&InstanceHostKeys> = instances.iter().collect();
            let body = eic_ec2::render_describe_instance_host_keys("r", &refs, console.as_ref());
            let read = parse(200, body.as_bytes()).unwrap().unwrap();
            prop_assert_eq!(read, HostKeys { instances, serial_console: console });
        }

        /// Any bytes: an answer or an error, never a panic.
        #[test]
        fn any_answer_is_read_without_panicking(
            status in prop_oneof![Just(200u16), Just(400u16), 100u16..600],
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let _ = parse(status, &body);
        }
    }
}
