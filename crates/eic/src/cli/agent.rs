//! `eic agent-config` (what an instance needs to run `eic
//! authorized-keys`) and `eic instance-credential rotate|revoke`.

use clap::{Args, Subcommand};

use crate::agent::AgentConfig;
use crate::config::{Config, ServerConfigArgs};
use crate::data_dir::DataDir;
use crate::instance_credentials::InstanceCredentials;
use crate::registry::Registry;
use crate::settings::{self, INSTANCE_CREDENTIALS};
use crate::tls_ca;

/// `eic agent-config`.
#[derive(Args)]
pub struct AgentConfigArgs {
    #[command(flatten)]
    server: ServerConfigArgs,
    /// The instance the configuration is for (an `[[instances]]` id).
    #[arg(long, value_name = "ID")]
    instance_id: String,
    /// The URL the instance reaches the instance-facing API at (default: [instance_api] public_url, else http(s)://<[instance_api] listen>, https when [instance_api] tls is set).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
}

pub fn agent_config(args: AgentConfigArgs) -> anyhow::Result<()> {
    let (config, registry) = load_server(&args.server)?;
    let Some(instance_api) = &config.instance_api else {
        anyhow::bail!(
            "{} has no [instance_api] section",
            args.server.config.display()
        );
    };
    if registry.instance(&args.instance_id).is_none() {
        anyhow::bail!(
            "no instance {} in {}",
            args.instance_id,
            args.server.config.display()
        );
    }
    let data_dir = DataDir::for_command(&config.data_dir)?;
    let ca_path = data_dir.path().join("pki/ca.pem");
    let trust_anchor = std::fs::read_to_string(&ca_path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {} (has the server started once on this data dir?): {e}",
            ca_path.display()
        )
    })?;
    let endpoint = args.endpoint.unwrap_or_else(|| instance_api.url());
    let tls_ca = tls_ca::instance_api_trust(&config, &data_dir)?.map(|anchor| anchor.pem);
    let agent = AgentConfig {
        endpoint,
        credential: settings::block_on(async {
            let generations = settings::for_command(&config, INSTANCE_CREDENTIALS).await?;
            Ok(InstanceCredentials::load(&data_dir, generations)?.credential(&args.instance_id)?)
        })?,
        instance_id: args.instance_id,
        signer_cn: format!(
            "managed-ssh-signer.{}.{}",
            config.region, instance_api.domain
        ),
        trust_anchor,
        tls_ca,
        insecure_http: false,
        machine: None,
    };
    print!("{}", toml::to_string(&agent)?);
    Ok(())
}

#[derive(Subcommand)]
pub enum InstanceCredentialCommand {
    /// Invalidate the instance's credential and print a new agent credential.
    Rotate(InstanceCredentialArgs),
    /// Invalidate the instance's credential without issuing one to anyone.
    Revoke(InstanceCredentialArgs),
}

#[derive(Args)]
pub struct InstanceCredentialArgs {
    #[command(flatten)]
    server: ServerConfigArgs,
    /// The instance whose credential changes (an `[[instances]]` id).
    #[arg(long, value_name = "ID")]
    instance_id: String,
}

pub fn instance_credential(command: InstanceCredentialCommand) -> anyhow::Result<()> {
    let (args, print) = match command {
        InstanceCredentialCommand::Rotate(a) => (a, true),
        InstanceCredentialCommand::Revoke(a) => (a, false),
    };
    let (config, registry) = load_server(&args.server)?;
    if registry.instance(&args.instance_id).is_none() {
        anyhow::bail!(
            "no instance {} in {}",
            args.instance_id,
            args.server.config.display()
        );
    }
    let credential = settings::block_on(async {
        let generations = settings::for_command(&config, INSTANCE_CREDENTIALS).await?;
        Ok(
            InstanceCredentials::load(&DataDir::for_command(&config.data_dir)?, generations)?
                .rotate(&args.instance_id)
                .await?,
        )
    })?;
    if print {
        println!("{}", credential.expose());
    }
    Ok(())
}

fn load_server(args: &ServerConfigArgs) -> anyhow::Result<(Config, Registry)> {
    let config = args.load()?;
    let registry = Registry::from_config(&config)?;
    Ok((config, registry))
}
