//! The user side of an Instance Connect Endpoint: which endpoint reaches an
//! instance (DescribeInstanceConnectEndpoints, as the CLI v2 asks it), a
//! tunnel through it to the instance's private address signed with the
//! caller's credentials (the dialing itself is `tunnel::dial`'s, as the CLI
//! v2's `open-tunnel` does it), and the relay of stdio over it.

use std::net::IpAddr;
use std::time::SystemTime;

use anyhow::{anyhow, Context};
use aws_sdk_ec2::types::Filter;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use super::lookup::{AddressChoice, Target};
use super::{api_error, Aws, AwsArgs};
use crate::tunnel::dial::{self, MAX_FRAME_BYTES};
pub use crate::tunnel::dial::{Endpoint, Tunnel};

/// The endpoint states the CLI v2 accepts.
const USABLE_STATES: [&str; 4] = [
    "create-complete",
    "update-in-progress",
    "update-failed",
    "update-complete",
];

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

/// Opens a tunnel through `endpoint` to `address:port`, signed with the
/// caller's credentials.
pub async fn open(
    aws: &Aws,
    endpoint: &Endpoint,
    address: IpAddr,
    port: u16,
) -> anyhow::Result<Tunnel> {
    let identity: Identity = aws.credentials.clone().into();
    let signer = dial::Signer {
        identity: &identity,
        region: &aws.region,
        now: SystemTime::now(),
    };
    let url = dial::presigned_url(&signer, endpoint, address, port)?;
    let user_agent = concat!("eic/", env!("CARGO_PKG_VERSION"));
    dial::open(&url, endpoint, dial::client_tls(&[])?, user_agent).await
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
