//! The user side of an Instance Connect Endpoint: which endpoint reaches an
//! instance (DescribeInstanceConnectEndpoints, as the CLI v2 asks it), and
//! a tunnel through it to the instance's private address, as the CLI v2's
//! `open-tunnel` opens one: a URL presigned with SigV4 (service
//! `ec2-instance-connect`, 60 s), TLS to port 443 of the endpoint's DNS
//! name trusting the system store (`SSL_CERT_FILE`, `SSL_CERT_DIR`
//! honoured), and a WebSocket whose binary frames carry the TCP stream.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context};
use aws_sdk_ec2::types::Filter;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::lookup::{AddressChoice, Target};
use super::{api_error, Aws, AwsArgs};

/// The CLI v2 dials this port whatever the DNS name says.
const TUNNEL_PORT: u16 = 443;
/// How long a presigned URL is good for, as the CLI signs it.
const PRESIGN_LIFETIME: Duration = Duration::from_secs(60);
/// The CLI's frame size, which the server's relay also uses.
const MAX_FRAME_BYTES: usize = 65_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The endpoint states the CLI v2 accepts.
const USABLE_STATES: [&str; 4] = [
    "create-complete",
    "update-in-progress",
    "update-failed",
    "update-complete",
];

/// An endpoint that reaches an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub dns_name: String,
}

/// The usable endpoint of the instance's VPC, preferring one in its
/// subnet; `None` when the VPC has none (or the instance reports no VPC).
pub async fn endpoint_for(aws: &Aws, target: &Target) -> anyhow::Result<Option<Endpoint>> {
    let Some(vpc_id) = &target.vpc_id else {
        return Ok(None);
    };
    let out = aws
        .ec2
        .describe_instance_connect_endpoints()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .filters(
            Filter::builder()
                .name("state")
                .set_values(Some(USABLE_STATES.map(String::from).to_vec()))
                .build(),
        )
        .send()
        .await
        .map_err(|e| api_error(format!("looking up the endpoints of {vpc_id}"), e))?;
    let endpoints = out.instance_connect_endpoints();
    let chosen = endpoints
        .iter()
        .find(|e| e.subnet_id().is_some() && e.subnet_id() == target.subnet_id.as_deref())
        .or(endpoints.first());
    Ok(chosen.and_then(|e| {
        Some(Endpoint {
            id: e.instance_connect_endpoint_id()?.to_owned(),
            dns_name: e.dns_name()?.to_owned(),
        })
    }))
}

/// An open tunnel: a WebSocket over TLS to the endpoint.
pub type Tunnel = WebSocketStream<TlsStream<TcpStream>>;

/// Opens a tunnel through `endpoint` to `address:port`.
pub async fn open(
    aws: &Aws,
    endpoint: &Endpoint,
    address: IpAddr,
    port: u16,
) -> anyhow::Result<Tunnel> {
    let url = presigned_url(aws, endpoint, address, port)?;
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((endpoint.dns_name.as_str(), TUNNEL_PORT)),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "connecting to {}:{TUNNEL_PORT} timed out",
            endpoint.dns_name
        )
    })?
    .with_context(|| format!("cannot connect to {}:{TUNNEL_PORT}", endpoint.dns_name))?;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(endpoint.dns_name.clone())
        .with_context(|| format!("{} is not a DNS name", endpoint.dns_name))?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, tcp)
        .await
        .with_context(|| {
            format!(
                "TLS with {} failed (its certificate must be trusted by the system store or SSL_CERT_FILE)",
                endpoint.dns_name
            )
        })?;
    let request = tungstenite::handshake::client::Request::builder()
        .uri(&url)
        .header("Host", &endpoint.dns_name)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .context("cannot build the tunnel request")?;
    match tokio_tungstenite::client_async_with_config(
        request,
        tls,
        Some(crate::tunnel::relay::websocket_config()),
    )
    .await
    {
        Ok((websocket, _)) => Ok(websocket),
        Err(tungstenite::Error::Http(response)) => Err(anyhow!(
            "{} refused the tunnel ({}): {}",
            endpoint.id,
            response.status(),
            refusal_message(response.body().as_deref().unwrap_or_default())
        )),
        Err(e) => Err(anyhow!("opening the tunnel through {}: {e}", endpoint.id)),
    }
}

/// The `Message` of the endpoint's JSON refusal, else its text.
fn refusal_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("Message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

/// `wss://DNS/openTunnel?…` signed in its query: the empty payload's hash,
/// `host` the one signed header, 60 s.
fn presigned_url(
    aws: &Aws,
    endpoint: &Endpoint,
    address: IpAddr,
    port: u16,
) -> anyhow::Result<String> {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("instanceConnectEndpointId", &endpoint.id)
        .append_pair("remotePort", &port.to_string())
        .append_pair("privateIpAddress", &address.to_string())
        .finish();
    let mut url = format!("wss://{}/openTunnel?{query}", endpoint.dns_name);
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_LIFETIME);
    let identity: Identity = aws.credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&aws.region)
        .name("ec2-instance-connect")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .context("cannot sign the tunnel request")?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::once(("host", endpoint.dns_name.as_str())),
        SignableBody::Bytes(b""),
    )
    .context("cannot sign the tunnel request")?;
    let (instructions, _signature) = sign(signable, &params)
        .context("cannot sign the tunnel request")?
        .into_parts();
    for (name, value) in instructions.params() {
        url.push('&');
        url.push_str(&form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>());
        url.push('=');
        url.push_str(&form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>());
    }
    Ok(url)
}

/// The system's trust store, as the CLI's awscrt uses it.
fn tls_config() -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        anyhow::bail!("no trusted certificates found (system store, SSL_CERT_FILE, SSL_CERT_DIR)");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("no TLS versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Joins stdin and stdout to the tunnel until it closes: `Ok` on the
/// endpoint's 1000 (the instance closed), the close reason otherwise.
/// stdin and stdout are read and written by plain threads on the raw
/// descriptors (as `eic proxy` does; a blocking read cannot be cancelled),
/// each a frame at a time, so a slow side stalls the other.
pub async fn relay_stdio(tunnel: Tunnel) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    let mut stdin = std::fs::File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot take stdin")?,
    );
    let mut stdout = std::fs::File::from(
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot take stdout")?,
    );
    let (read_tx, mut read_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    std::thread::spawn(move || loop {
        let mut buffer = vec![0u8; MAX_FRAME_BYTES];
        match stdin.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                buffer.truncate(n);
                if read_tx.blocking_send(buffer).is_err() {
                    return;
                }
            }
        }
    });
    let (write_tx, mut write_rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        while let Some(data) = write_rx.blocking_recv() {
            stdout.write_all(&data)?;
        }
        Ok(())
    });

    let (mut to_endpoint, mut from_endpoint) = tunnel.split();
    let upstream = async {
        // ssh closing its side sends nothing more; the instance's answer
        // still comes back.
        while let Some(data) = read_rx.recv().await {
            to_endpoint
                .send(Message::Binary(Bytes::from(data)))
                .await
                .context("the tunnel broke")?;
        }
        std::future::pending().await
    };
    let downstream = async {
        while let Some(message) = from_endpoint.next().await {
            match message.context("the tunnel broke")? {
                Message::Binary(data) => write_tx
                    .send(data)
                    .await
                    .map_err(|_| anyhow!("cannot write stdout"))?,
                Message::Close(Some(frame)) if frame.code != CloseCode::Normal => {
                    return Err(anyhow!("the tunnel closed: {}", frame.reason));
                }
                Message::Close(_) => return Ok(()),
                Message::Text(_) => return Err(anyhow!("the endpoint sent text, not bytes")),
                _ => {}
            }
        }
        Ok(())
    };
    let ended = tokio::select! {
        ended = upstream => ended,
        ended = downstream => ended,
    };
    // What arrived before the end is written out before the exit.
    drop(write_tx);
    // Nothing else runs on this runtime now: a blocking join is fine.
    let _ = writer.join();
    ended
}

#[derive(clap::Args, Debug)]
pub struct OpenTunnelArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The instance to reach (looked up for its private address and VPC when the other flags leave them out).
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// The endpoint (default: the one of the instance's VPC).
    #[arg(long, value_name = "EICE")]
    pub instance_connect_endpoint_id: Option<String>,
    /// The endpoint's DNS name (default: what DescribeInstanceConnectEndpoints reports).
    #[arg(long, value_name = "DNS")]
    pub instance_connect_endpoint_dns_name: Option<String>,
    /// The instance's private address (default: what DescribeInstances reports).
    #[arg(long, value_name = "IP")]
    pub private_ip_address: Option<IpAddr>,
    #[arg(long, default_value_t = 22)]
    pub remote_port: u16,
}

/// `eic open-tunnel`: what `aws ec2-instance-connect open-tunnel` does on
/// stdio, for ssh's ProxyCommand (`eic ssh` uses it through the endpoint).
pub fn open_tunnel(args: OpenTunnelArgs) -> std::process::ExitCode {
    let opened = super::block_on(async {
        let aws = Aws::load(&args.aws).await?;
        let (endpoint, address) = resolve(&aws, &args).await?;
        let tunnel = open(&aws, &endpoint, address, args.remote_port).await?;
        relay_stdio(tunnel).await
    });
    match opened {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eic open-tunnel: {e:#}");
            std::process::ExitCode::from(255)
        }
    }
}

/// The endpoint and address the flags name, looking up what they leave out.
async fn resolve(aws: &Aws, args: &OpenTunnelArgs) -> anyhow::Result<(Endpoint, IpAddr)> {
    let given = (
        &args.instance_connect_endpoint_id,
        &args.instance_connect_endpoint_dns_name,
        args.private_ip_address,
    );
    if let (Some(id), Some(dns_name), Some(address)) = given {
        let endpoint = Endpoint {
            id: id.clone(),
            dns_name: dns_name.clone(),
        };
        return Ok((endpoint, address));
    }
    let Some(instance_id) = &args.instance_id else {
        anyhow::bail!("name the instance (--instance-id) or the endpoint, its DNS name and the private address");
    };
    let target =
        super::lookup::resolve(aws, &super::lookup::InstanceRef::Id(instance_id.clone())).await?;
    let address = match args.private_ip_address {
        Some(address) => address,
        None => target
            .private_ip
            .map(IpAddr::V4)
            .or(target.ipv6.map(IpAddr::V6))
            .ok_or_else(|| anyhow!("{instance_id} has no private address"))?,
    };
    let endpoint = match (
        &args.instance_connect_endpoint_id,
        &args.instance_connect_endpoint_dns_name,
    ) {
        (Some(id), Some(dns_name)) => Endpoint {
            id: id.clone(),
            dns_name: dns_name.clone(),
        },
        _ => endpoint_for(aws, &target)
            .await?
            .filter(|e| {
                args.instance_connect_endpoint_id
                    .as_ref()
                    .is_none_or(|id| *id == e.id)
            })
            .ok_or_else(|| anyhow!("no Instance Connect Endpoint reaches {instance_id}'s VPC"))?,
    };
    Ok((endpoint, address))
}

/// How to reach an instance's sshd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Direct(IpAddr),
    /// Through `endpoint`, to the instance's private `address`.
    Tunnel {
        endpoint: Endpoint,
        address: IpAddr,
    },
}

/// As the CLI v2's `ssh --connection-type auto` chooses: the public
/// address when there is one, else the endpoint of the instance's VPC when
/// it has one, else the address `choice` picks; `force` (`--tunnel`) takes
/// the endpoint or fails. An endpoint that cannot be looked up (a policy
/// without `ec2:DescribeInstanceConnectEndpoints`, a server without
/// endpoints) leaves the direct route.
pub async fn route(
    aws: &Aws,
    target: &Target,
    choice: AddressChoice,
    force: bool,
) -> anyhow::Result<Route> {
    let private = || {
        let address = match choice {
            AddressChoice::Ipv6 => target.ipv6.map(IpAddr::V6),
            _ => target
                .private_ip
                .map(IpAddr::V4)
                .or(target.ipv6.map(IpAddr::V6)),
        };
        address.ok_or_else(|| anyhow!("{} has no private address", target.instance_id))
    };
    if force {
        let endpoint = endpoint_for(aws, target).await?.ok_or_else(|| {
            anyhow!(
                "no Instance Connect Endpoint reaches {} (in {})",
                target.instance_id,
                target.vpc_id.as_deref().unwrap_or("no VPC")
            )
        })?;
        return Ok(Route::Tunnel {
            endpoint,
            address: private()?,
        });
    }
    if choice == AddressChoice::Auto && target.public_ip.is_none() {
        match endpoint_for(aws, target).await {
            Ok(Some(endpoint)) => {
                if let Ok(address) = private() {
                    return Ok(Route::Tunnel { endpoint, address });
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(
                error = format!("{e:#}"),
                "no endpoint lookup; connecting directly"
            ),
        }
    }
    Ok(Route::Direct(target.address(choice)?))
}
