//! The `/openTunnel` request, pure: the query parameters the CLI v2's
//! `open-tunnel` and Teleport send beside the presigning ones
//! (`instanceConnectEndpointId`, `remotePort`, `privateIpAddress`,
//! `maxTunnelDuration`), validated, and the refusals a client reads before
//! the upgrade.
//!
//! Parameters may come in any order (Teleport's are sorted, the CLI's are
//! not); each at most once. The presigning parameters (`X-Amz-*`) are the
//! verifier's; any other parameter is refused rather than ignored, since
//! everything in the URL is signed and means something to someone.

use std::net::IpAddr;
use std::time::Duration;

use http::StatusCode;

/// The longest tunnel AWS allows, and what `maxTunnelDuration` may ask for.
pub const MAX_TUNNEL_DURATION: Duration = Duration::from_secs(3600);

/// What a caller asked to be connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTunnelRequest {
    pub endpoint_id: String,
    pub remote_port: u16,
    pub private_ip: IpAddr,
    /// `None`: the endpoint's default.
    pub max_duration: Option<Duration>,
}

/// A refusal before the upgrade: the status and the message the client
/// shows (the CLI logs the body at ERROR), with a code for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// The JSON body: `{"__type": code, "Message": message}`.
    pub fn body(&self) -> String {
        serde_json::json!({"__type": self.code, "Message": self.message}).to_string()
    }
}

/// Longest parameter value kept; an endpoint id, a port, an address or a
/// duration is far shorter.
const MAX_VALUE_CHARS: usize = 64;

/// Reads the tunnel's parameters from the request's query string.
pub fn parse(query: &str) -> Result<OpenTunnelRequest, Refusal> {
    let mut endpoint_id = None;
    let mut remote_port = None;
    let mut private_ip = None;
    let mut max_duration = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name.starts_with("X-Amz-") {
            continue;
        }
        let slot = match name.as_ref() {
            "instanceConnectEndpointId" => &mut endpoint_id,
            "remotePort" => &mut remote_port,
            "privateIpAddress" => &mut private_ip,
            "maxTunnelDuration" => &mut max_duration,
            other => {
                return Err(Refusal::validation(format!(
                    "Unknown parameter: {}",
                    crate::audit::bounded(other, MAX_VALUE_CHARS)
                )))
            }
        };
        if slot.is_some() {
            return Err(Refusal::validation(format!(
                "The parameter {name} is given more than once."
            )));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(Refusal::validation(format!(
                "The value of {name} is too long."
            )));
        }
        *slot = Some(value.into_owned());
    }
    let required = |value: Option<String>, name: &str| {
        value.ok_or_else(|| Refusal::validation(format!("The parameter {name} is required.")))
    };
    let endpoint_id = required(endpoint_id, "instanceConnectEndpointId")?;
    if !eic_ec2::is_well_formed_endpoint_id(&endpoint_id) {
        return Err(Refusal::validation(format!(
            "Invalid instanceConnectEndpointId '{endpoint_id}'."
        )));
    }
    let remote_port = required(remote_port, "remotePort")?;
    let remote_port = remote_port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && remote_port.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Refusal::validation(format!(
                "Invalid remotePort '{remote_port}': a port from 1 to 65535."
            ))
        })?;
    let private_ip = required(private_ip, "privateIpAddress")?;
    let private_ip = private_ip.parse::<IpAddr>().map_err(|_| {
        Refusal::validation(format!(
            "Invalid privateIpAddress '{private_ip}': an IPv4 or IPv6 address."
        ))
    })?;
    let max_duration = max_duration
        .map(|text| {
            text.parse::<u64>()
                .ok()
                .filter(|secs| {
                    (1..=MAX_TUNNEL_DURATION.as_secs()).contains(secs)
                        && text.bytes().all(|b| b.is_ascii_digit())
                })
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    Refusal::validation(format!(
                        "Invalid maxTunnelDuration '{text}': seconds from 1 to {}.",
                        MAX_TUNNEL_DURATION.as_secs()
                    ))
                })
        })
        .transpose()?;
    Ok(OpenTunnelRequest {
        endpoint_id,
        remote_port,
        private_ip,
        max_duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLI: &str = "instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=22&privateIpAddress=10.0.0.5&maxTunnelDuration=120&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=60&X-Amz-Signature=ab";

    #[test]
    fn reads_the_cli_query_in_any_order() {
        let expected = OpenTunnelRequest {
            endpoint_id: "eice-0123456789abcdef0".into(),
            remote_port: 22,
            private_ip: "10.0.0.5".parse().unwrap(),
            max_duration: Some(Duration::from_secs(120)),
        };
        assert_eq!(parse(CLI).unwrap(), expected);
        let mut pairs: Vec<&str> = CLI.split('&').collect();
        pairs.sort();
        assert_eq!(parse(&pairs.join("&")).unwrap(), expected);
        pairs.reverse();
        assert_eq!(parse(&pairs.join("&")).unwrap(), expected);
    }

    #[test]
    fn duration_is_optional_and_ipv6_is_an_address() {
        let r = parse(
            "instanceConnectEndpointId=eice-0123abcd&remotePort=2222&privateIpAddress=%3A%3A1",
        )
        .unwrap();
        assert_eq!(r.max_duration, None);
        assert_eq!(r.private_ip, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(r.remote_port, 2222);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let base = "instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=22&privateIpAddress=10.0.0.5";
        let cases = [
            ("remotePort=22&privateIpAddress=10.0.0.5", "instanceConnectEndpointId is required"),
            ("instanceConnectEndpointId=eice-0123456789abcdef0&privateIpAddress=10.0.0.5", "remotePort is required"),
            ("instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=22", "privateIpAddress is required"),
            ("instanceConnectEndpointId=i-0123456789abcdef0&remotePort=22&privateIpAddress=10.0.0.5", "Invalid instanceConnectEndpointId"),
            ("instanceConnectEndpointId=eice-0123456789ABCDEF0&remotePort=22&privateIpAddress=10.0.0.5", "Invalid instanceConnectEndpointId"),
            ("instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=0&privateIpAddress=10.0.0.5", "Invalid remotePort"),
            ("instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=65536&privateIpAddress=10.0.0.5", "Invalid remotePort"),
            ("instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=%2B22&privateIpAddress=10.0.0.5", "Invalid remotePort"),
            ("instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=22&privateIpAddress=host.example", "Invalid privateIpAddress"),
        ];
        for (query, expected) in cases {
            let refusal = parse(query).unwrap_err();
            assert_eq!(refusal.status, StatusCode::BAD_REQUEST, "{query}");
            assert!(
                refusal.message.contains(expected),
                "{query}: {}",
                refusal.message
            );
        }
        for duration in ["0", "3601", "-1", "1.5", "+60", "99999999999999999999"] {
            let refusal = parse(&format!("{base}&maxTunnelDuration={duration}")).unwrap_err();
            assert!(
                refusal.message.contains("Invalid maxTunnelDuration"),
                "{duration}"
            );
        }
        assert_eq!(
            parse(&format!("{base}&maxTunnelDuration=3600"))
                .unwrap()
                .max_duration,
            Some(MAX_TUNNEL_DURATION)
        );
        let twice = parse(&format!("{base}&remotePort=23")).unwrap_err();
        assert!(twice.message.contains("remotePort is given more than once"));
        let unknown = parse(&format!("{base}&hostName=db.internal")).unwrap_err();
        assert_eq!(unknown.message, "Unknown parameter: hostName");
        let long = parse(&format!("{base}&maxTunnelDuration={}", "1".repeat(65))).unwrap_err();
        assert!(long.message.contains("too long"));
    }

    #[test]
    fn the_body_carries_the_message_the_cli_logs() {
        let body = Refusal::validation("Invalid remotePort 'x'.").body();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["Message"], "Invalid remotePort 'x'.");
        assert_eq!(value["__type"], "ValidationException");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(query in ".{0,300}") {
            let _ = parse(&query);
        }

        #[test]
        fn a_valid_request_round_trips(port in 1u16.., secs in 1u64..=3600, ip in proptest::arbitrary::any::<std::net::Ipv4Addr>()) {
            let query = format!("privateIpAddress={ip}&maxTunnelDuration={secs}&remotePort={port}&instanceConnectEndpointId=eice-0123456789abcdef0");
            let r = parse(&query).unwrap();
            proptest::prop_assert_eq!(r.remote_port, port);
            proptest::prop_assert_eq!(r.private_ip, IpAddr::V4(ip));
            proptest::prop_assert_eq!(r.max_duration, Some(Duration::from_secs(secs)));
        }
    }
}
