//! `eic join-token create|list|revoke` and `eic instances
//! list|show|tag|untag|remove`: the enrolled fleet, changed from the
//! servers' configuration and data dir (or Redis) while they run. Every
//! change is audited in the servers' audit log with the operator's OS user.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use eic_store::fleet::{Enrolled, InstanceChange, JoinToken, Network};
use eic_store::{unix_millis, Fleet};
use serde_json::{json, Value};

use crate::audit::{format_iso8601, Admission, AuditLog};
use crate::config::{Config, ServerConfigArgs};
use crate::data_dir::DataDir;
use crate::instance_credentials::InstanceCredentials;
use crate::instances::{check_tag_key, parse_tags, Liveness};
use crate::join_token::JoinTokenText;
use crate::registry::Registry;
use crate::server::fleet::{fleet_event, FleetEvent};
use crate::settings::{self, INSTANCE_CREDENTIALS};

/// The longest a token may live: no 30-day cap as SSM's, but not forever.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

#[derive(Subcommand)]
pub enum JoinTokenCommand {
    /// Create a token machines join with; it is printed once, on stdout.
    Create(CreateTokenArgs),
    /// List tokens (never their secrets): uses, expiry, state.
    List(ListArgs),
    /// Revoke a token by its id (or the whole token).
    Revoke {
        #[command(flatten)]
        server: ServerConfigArgs,
        /// The token's id, as `list` shows it.
        token_id: String,
    },
}

#[derive(Args)]
pub struct CreateTokenArgs {
    #[command(flatten)]
    server: ServerConfigArgs,
    /// The account machines joining with it belong to.
    #[arg(long, value_name = "ID")]
    account: String,
    /// The zone they are placed in (default: what the machine says, else the region's first).
    #[arg(long, value_name = "AZ")]
    availability_zone: Option<String>,
    /// The VPC its machines are in (with --subnet-id): what DescribeInstances reports, and how an Instance Connect Endpoint of that VPC reaches them.
    #[arg(long, value_name = "VPC", requires = "subnet_id")]
    vpc_id: Option<String>,
    /// The subnet its machines are in (with --vpc-id).
    #[arg(long, value_name = "SUBNET", requires = "vpc_id")]
    subnet_id: Option<String>,
    /// A tag every machine joining with it starts with (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
    /// How long it can be used: 90s, 30m, 12h, 30d (at most ten years).
    #[arg(long, default_value = "1h", value_parser = super::parse_duration)]
    ttl: Duration,
    /// How many machines may join with it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    uses: u32,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    server: ServerConfigArgs,
    /// One JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum InstancesCommand {
    /// Every instance: configured and enrolled, with its state.
    List(ListArgs),
    /// One instance in full.
    Show(InstanceArgs),
    /// Set tags on an enrolled instance.
    Tag {
        #[command(flatten)]
        instance: InstanceArgs,
        #[arg(value_name = "KEY=VALUE", required = true)]
        tags: Vec<String>,
    },
    /// Remove tags from an enrolled instance.
    Untag {
        #[command(flatten)]
        instance: InstanceArgs,
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
    /// Terminate an enrolled instance: its keys are no longer served and
    /// its credential stops working, on every node.
    Remove(InstanceArgs),
}

#[derive(Args)]
pub struct InstanceArgs {
    #[command(flatten)]
    server: ServerConfigArgs,
    /// The instance id.
    #[arg(value_name = "ID")]
    id: String,
}

/// What a command works with: the config, the fleet, the audit log.
struct Service {
    config: Config,
    registry: Registry,
    fleet: Arc<dyn Fleet>,
}

impl Service {
    async fn open(args: &ServerConfigArgs) -> anyhow::Result<Service> {
        let config = args.load()?;
        let registry = Registry::from_config(&config)?;
        let fleet = crate::fleet::for_command(&config).await?;
        Ok(Service {
            config,
            registry,
            fleet,
        })
    }

    /// Writes an operator's change to the servers' audit log; the change is
    /// made only once it is on record.
    fn audit(&self, name: &'static str, account: &str, parameters: Value) -> anyhow::Result<()> {
        let audit = AuditLog::open(
            &self.config.audit_path(),
            &self.config.region,
            self.config.audit.limits(),
        )?;
        let event = fleet_event(FleetEvent {
            name,
            identity: operator(),
            source_ip: None,
            account,
            parameters,
            response: Value::Null,
            error: None,
            now: SystemTime::now(),
        });
        audit
            .record(&event, Admission::Outcome)
            .map_err(|e| anyhow::anyhow!("cannot write the audit log: {e}"))?;
        Ok(())
    }
}

/// The operator running a command, as the audit log names them.
fn operator() -> Value {
    let uid = rustix::process::getuid().as_raw();
    let name = std::env::var("USER").unwrap_or_default();
    json!({"type": "Operator", "uid": uid, "userName": crate::audit::bounded(&name, 64)})
}

pub fn join_token(command: JoinTokenCommand) -> anyhow::Result<()> {
    settings::block_on(async {
        match command {
            JoinTokenCommand::Create(args) => create_token(args).await,
            JoinTokenCommand::List(args) => list_tokens(args).await,
            JoinTokenCommand::Revoke { server, token_id } => {
                let service = Service::open(&server).await?;
                // The whole token pasted is accepted too: its id is public.
                let id = JoinTokenText::parse(&token_id).map_or(token_id, |t| t.id);
                let token = service
                    .fleet
                    .tokens()
                    .await?
                    .into_iter()
                    .find(|t| t.id == id)
                    .ok_or_else(|| anyhow::anyhow!("no join token {id}"))?;
                service.audit("RevokeJoinToken", &token.account, json!({"tokenId": id}))?;
                service.fleet.revoke_token(&id).await?;
                eprintln!("revoked join token {id}");
                Ok(())
            }
        }
    })
}

async fn create_token(args: CreateTokenArgs) -> anyhow::Result<()> {
    let service = Service::open(&args.server).await?;
    if service.registry.account(&args.account).is_none() {
        anyhow::bail!(
            "no account {} in {}",
            args.account,
            args.server.config.display()
        );
    }
    if let Some(zone) = &args.availability_zone {
        if !eic_wire::is_valid_availability_zone(zone) {
            anyhow::bail!("'{zone}' is not an availability zone name");
        }
    }
    let network = match (&args.vpc_id, &args.subnet_id) {
        (Some(vpc_id), Some(subnet_id)) => {
            for (flag, id, prefix) in [
                ("--vpc-id", vpc_id, "vpc-"),
                ("--subnet-id", subnet_id, "subnet-"),
            ] {
                if !crate::registry::is_resource_id(id, prefix) {
                    anyhow::bail!("{flag} '{id}' is not {prefix} and 8 to 17 lowercase hex digits");
                }
            }
            Some(Network {
                vpc_id: vpc_id.clone(),
                subnet_id: subnet_id.clone(),
            })
        }
        _ => None,
    };
    if args.ttl > MAX_TOKEN_TTL {
        anyhow::bail!("--ttl is at most ten years");
    }
    let tags = parse_tags(args.tags.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
    let data_dir = DataDir::for_command(&service.config.data_dir)?;
    let ca = crate::tls_ca::instance_api_trust(&service.config, &data_dir)?
        .map(|trust| {
            trust
                .fingerprint
                .strip_prefix("sha256:")
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("unexpected CA fingerprint form"))
        })
        .transpose()?;
    let text = JoinTokenText::generate(ca)?;
    let now = SystemTime::now();
    let now_ms = unix_millis(now);
    let token = JoinToken {
        network,
        id: text.id.clone(),
        secret_sha256: text.secret_sha256(),
        account: args.account.clone(),
        availability_zone: args.availability_zone.clone(),
        tags: tags.clone(),
        created_at_ms: now_ms,
        expires_at_ms: now_ms + args.ttl.as_millis() as u64,
        uses: args.uses,
        used: 0,
        revoked: false,
        created_by: format!("uid:{}", rustix::process::getuid().as_raw()),
    };
    service.audit(
        "CreateJoinToken",
        &args.account,
        json!({
            "tokenId": token.id,
            "availabilityZone": token.availability_zone,
            "vpcId": token.network.as_ref().map(|n| &n.vpc_id),
            "subnetId": token.network.as_ref().map(|n| &n.subnet_id),
            "tags": tags,
            "expiresAt": format_iso8601(ms_time(token.expires_at_ms)),
            "uses": token.uses,
        }),
    )?;
    service.fleet.create_token(token).await?;
    if text.ca_sha256.is_none() {
        eprintln!(
            "warning: the instance-facing listener serves plain http; agents must join with --insecure-http (set [instance_api] tls = \"auto\")"
        );
    }
    println!("{}", text.render().expose());
    Ok(())
}

async fn list_tokens(args: ListArgs) -> anyhow::Result<()> {
    let service = Service::open(&args.server).await?;
    let now_ms = unix_millis(SystemTime::now());
    let tokens = service.fleet.tokens().await?;
    if args.json {
        let list: Vec<Value> = tokens
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "account": t.account,
                    "availabilityZone": t.availability_zone,
                    "vpcId": t.network.as_ref().map(|n| &n.vpc_id),
                    "subnetId": t.network.as_ref().map(|n| &n.subnet_id),
                    "tags": t.tags,
                    "uses": t.uses,
                    "used": t.used,
                    "createdAt": format_iso8601(ms_time(t.created_at_ms)),
                    "expiresAt": format_iso8601(ms_time(t.expires_at_ms)),
                    "state": token_state(t, now_ms),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:<16}  {:<12}  {:<14}  {:>11}  {:<20}  {:<8}  TAGS",
        "ID", "ACCOUNT", "ZONE", "USED/USES", "EXPIRES", "STATE"
    );
    for t in &tokens {
        println!(
            "{:<16}  {:<12}  {:<14}  {:>11}  {:<20}  {:<8}  {}",
            t.id,
            t.account,
            t.availability_zone.as_deref().unwrap_or("-"),
            format!("{}/{}", t.used, t.uses),
            format_iso8601(ms_time(t.expires_at_ms)),
            token_state(t, now_ms),
            tag_text(&t.tags)
        );
    }
    Ok(())
}

fn token_state(token: &JoinToken, now_ms: u64) -> &'static str {
    if token.revoked {
        "revoked"
    } else if now_ms >= token.expires_at_ms {
        "expired"
    } else if token.used >= token.uses {
        "used-up"
    } else {
        "valid"
    }
}

pub fn instances(command: InstancesCommand) -> anyhow::Result<()> {
    settings::block_on(async {
        match command {
            InstancesCommand::List(args) => list_instances(args).await,
            InstancesCommand::Show(args) => {
                let service = Service::open(&args.server).await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&describe(&service, &args.id)?)?
                );
                Ok(())
            }
            InstancesCommand::Tag { instance, tags } => {
                let tags =
                    parse_tags(tags.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
                change(
                    &instance,
                    "TagInstance",
                    json!({"tags": tags}),
                    InstanceChange::Tag(tags.clone()),
                )
                .await
            }
            InstancesCommand::Untag { instance, keys } => {
                for key in &keys {
                    check_tag_key(key).map_err(anyhow::Error::msg)?;
                }
                change(
                    &instance,
                    "UntagInstance",
                    json!({"tagKeys": keys}),
                    InstanceChange::Untag(keys.clone()),
                )
                .await
            }
            InstancesCommand::Remove(instance) => {
                change(
                    &instance,
                    "RemoveInstance",
                    json!({}),
                    InstanceChange::Terminate,
                )
                .await
            }
        }
    })
}

async fn change(
    args: &InstanceArgs,
    event: &'static str,
    mut parameters: Value,
    change: InstanceChange,
) -> anyhow::Result<()> {
    let service = Service::open(&args.server).await?;
    let enrolled = enrolled_or_explain(&service, &args.id)?;
    parameters["instanceId"] = args.id.clone().into();
    service.audit(event, &enrolled.enrollment.account, parameters)?;
    let terminate = change == InstanceChange::Terminate;
    if !service
        .fleet
        .change(&args.id, change, unix_millis(SystemTime::now()))
        .await?
    {
        anyhow::bail!("no enrolled instance {}", args.id);
    }
    if terminate {
        // Its credential dies at once on every node, not only when a node
        // next looks at the instance's state.
        let generations = settings::for_command(&service.config, INSTANCE_CREDENTIALS).await?;
        InstanceCredentials::load(
            &DataDir::for_command(&service.config.data_dir)?,
            generations,
        )?
        .rotate(&args.id)
        .await?;
        eprintln!("{} is terminated", args.id);
    }
    Ok(())
}

fn enrolled_or_explain(service: &Service, id: &str) -> anyhow::Result<Arc<Enrolled>> {
    if service.registry.instance(id).is_some() {
        anyhow::bail!(
            "{id} is a configured [[instances]] block; change it in {}",
            "the configuration"
        );
    }
    service
        .fleet
        .enrolled(id)?
        .ok_or_else(|| anyhow::anyhow!("no instance {id}"))
}

async fn list_instances(args: ListArgs) -> anyhow::Result<()> {
    let service = Service::open(&args.server).await?;
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    for id in service.config.instances.iter().map(|i| &i.id) {
        rows.insert(id.clone(), describe(&service, id)?);
    }
    for enrolled in service.fleet.all_enrolled()? {
        let id = &enrolled.enrollment.instance_id;
        rows.insert(id.clone(), describe(&service, id)?);
    }
    if args.json {
        let list: Vec<&Value> = rows.values().collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:<19}  {:<15}  {:<12}  {:<12}  {:<15}  {:<8}  {:<20}  TAGS",
        "ID", "STATE", "ACCOUNT", "ZONE", "PRIVATE IP", "SOURCE", "LAST SEEN"
    );
    let field = |row: &Value, name: &str| row[name].as_str().unwrap_or("-").to_owned();
    for (id, row) in &rows {
        let tags: BTreeMap<String, String> =
            serde_json::from_value(row["tags"].clone()).unwrap_or_default();
        println!(
            "{:<19}  {:<15}  {:<12}  {:<12}  {:<15}  {:<8}  {:<20}  {}",
            id,
            field(row, "state"),
            field(row, "account"),
            field(row, "availabilityZone"),
            field(row, "privateIpAddress"),
            field(row, "source"),
            field(row, "lastSeen"),
            tag_text(&tags)
        );
    }
    Ok(())
}

/// One instance as `show` and `list --json` print it.
fn describe(service: &Service, id: &str) -> anyhow::Result<Value> {
    if let Some(i) = service.registry.instance(id) {
        return Ok(json!({
            "instanceId": i.id,
            "source": "config",
            "state": i.state.name(),
            "account": i.account,
            "availabilityZone": i.availability_zone,
            "instanceType": i.instance_type,
            "privateIpAddress": i.private_ip_address,
            "publicIpAddress": i.public_ip_address,
            "ipv6Address": i.ipv6_address,
            "vpcId": i.vpc_id,
            "subnetId": i.subnet_id,
            "tags": i.tags,
        }));
    }
    let enrolled = enrolled_or_explain(service, id)?;
    let e = &enrolled.enrollment;
    let liveness = Liveness::of(
        &enrolled,
        SystemTime::now(),
        service.config.fleet.unavailable_after(),
    );
    Ok(json!({
        "instanceId": e.instance_id,
        "source": "enrolled",
        "state": liveness.name(),
        "account": e.account,
        "availabilityZone": e.availability_zone,
        "instanceType": e.instance_type,
        "privateIpAddress": e.facts.addresses.private_ipv4,
        "publicIpAddress": e.facts.addresses.public_ipv4,
        "ipv6Address": e.facts.addresses.ipv6,
        "vpcId": e.network.as_ref().map(|n| &n.vpc_id),
        "subnetId": e.network.as_ref().map(|n| &n.subnet_id),
        "sshPort": e.facts.addresses.ssh_port,
        "hostname": e.facts.hostname,
        "hostKeys": e.facts.host_keys,
        "os": e.facts.os,
        "kernel": e.facts.kernel,
        "tokenId": e.token_id,
        "tags": e.tags,
        "launchTime": format_iso8601(ms_time(e.enrolled_at_ms)),
        "updatedAt": format_iso8601(ms_time(e.updated_at_ms)),
        "lastSeen": format_iso8601(ms_time(enrolled.last_seen_ms())),
    }))
}

fn ms_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn tag_text(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "-".into();
    }
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
